"""Import files for the whole rule corpus: every target and format, as `convert -f` makes them.

    python bench/convert_formats.py [--folder DIR] [--cli]

In one process: load the rules once, convert them per target, then render and write each
format into a temporary folder. Prints the counts (read = converted + unsupported + failed),
files and bytes written, and the seconds of each step. With --cli, also times one whole
`sigma-transpile convert ... -f sql --report --junit` process.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, need_corpus, time_command

sys.path.insert(0, str(ROOT))

from transpiler import backends, batch, formats  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", default=None, help="rules folder (default: the corpus rules)")
    p.add_argument("--cli", action="store_true", help="also time one whole CLI run")
    args = p.parse_args()
    folder = Path(args.folder) if args.folder else need_corpus("rules")

    start = time.perf_counter()
    rules, errors = batch.load_all([folder])
    print(f"load: {len(rules)} documents, {len(errors)} errors, {time.perf_counter() - start:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        for target in sorted(backends.BACKENDS):
            start = time.perf_counter()
            records, _ = batch.convert_all(backends.get(target)(), rules, errors)
            c = batch.counts(records)
            print(f"{target}: {c['read']} read, {c['converted']} converted, {c['unsupported']} unsupported, "
                  f"{c['failed']} failed, {time.perf_counter() - start:.2f} s")
            for name, fmt in formats.available(target).items():
                mine = [batch.Record(**{**r.__dict__, "errors": list(r.errors), "outputs": []}) for r in records]
                batch.apply_limits(mine, fmt)
                start = time.perf_counter()
                files = formats.Renderer(fmt, target, formats.parse_options(fmt, [])).files(mine)
                rendered = time.perf_counter()
                formats.write_all(Path(tmp) / target / name, files)
                done = time.perf_counter()
                size = sum(len(text.encode()) for _, text, _ in files)
                refused = sum(r.result == "unsupported" for r in mine) - c["unsupported"]
                print(f"  {name:<14} {len(files):>5} files {size / 1e6:>7.2f} MB  render {rendered - start:5.2f} s"
                      f"  write {done - rendered:5.2f} s" + (f"  ({refused} too long for the target)" if refused else ""))
        if args.cli:
            out = Path(tmp) / "cli"
            median, samples, run = time_command(
                [sys.executable, "-m", "transpiler", "convert", str(folder), "-t", "athena", "-f", "sql",
                 "-o", str(out), "--report", str(out) + ".json", "--junit", str(out) + ".xml",
                 "--fail-on", "never"], runs=3)
            print(f"cli athena -f sql --report --junit: median {median:.2f} s "
                  f"({', '.join(f'{s:.2f}' for s in samples)}); {run.stderr.strip().splitlines()[-1]}")


if __name__ == "__main__":
    main()

"""Build the HTML catalog of the whole corpus and print where the time goes.

    python bench/catalog.py [--runs 1] [--folder RULES]

Issue 8 asks for the catalog of /work/shared/corpus/rules in under 30 s. The first figure is
that: the whole `sigma-transpile catalog` process, as a user runs it. The phases below it are
measured in-process, once each, to show what dominates (per-backend conversion is the backends'
own cost; the catalog calls each backend once per rule).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, need_corpus, time_command

sys.path.insert(0, str(ROOT))


def phases(folder: str, out: Path):
    from transpiler.analysis import Corpus, analyze
    from transpiler.catalog import Site
    from transpiler.rule import load_paths

    t = time.perf_counter()
    rules, errors = load_paths([folder])
    load = time.perf_counter() - t
    t = time.perf_counter()
    site = Site(rules, errors=errors)
    index = time.perf_counter() - t
    t = time.perf_counter()
    for r in site.rules:
        analyze(r, site.corpus)
    analysis = time.perf_counter() - t
    convert = {}
    for name, backend, why in site.backends:
        if backend is None:
            convert[name] = (None, 0, 0, why)
            continue
        ok = bad = 0
        t = time.perf_counter()
        for r in site.rules:
            try:
                backend.convert(r)
                ok += 1
            except Exception:      # noqa: BLE001 - counted, as the site shows it
                bad += 1
        convert[name] = (time.perf_counter() - t, ok, bad, "")
    t = time.perf_counter()
    stats = Site(rules, errors=errors).build(out)
    build = time.perf_counter() - t
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return len(site.rules), len(errors), load, index, analysis, convert, build, stats, size


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=1, help="whole-process runs (median)")
    p.add_argument("--folder", default=None)
    args = p.parse_args()
    folder = args.folder or str(need_corpus("rules"))
    with tempfile.TemporaryDirectory() as tmp:
        median, samples, done = time_command(
            [sys.executable, "-m", "transpiler", "catalog", folder, "-o", str(Path(tmp) / "cli")], args.runs)
        print(f"catalog of {folder}")
        print(f"  whole process: median {median:.2f} s over {args.runs} run(s) "
              f"({', '.join(f'{s:.2f}' for s in samples)}); target < 30 s")
        print(f"  {done.stderr.strip().splitlines()[-1]}")
        rules, errors, load, index, analysis, convert, build, stats, size = phases(folder, Path(tmp) / "site")
    print(f"phases (in-process, {rules} rules, {errors} rule errors):")
    print(f"  load + parse rules      {load:6.2f} s")
    print(f"  corpus index            {index:6.2f} s")
    print(f"  analysis of every rule  {analysis:6.2f} s")
    for name, (seconds, ok, bad, why) in convert.items():
        if seconds is None:
            print(f"  convert {name:<15} unavailable: {why}")
        else:
            print(f"  convert {name:<15} {seconds:6.2f} s  ({ok} converted, {bad} unsupported)")
    print(f"  build (all of the above but loading, plus rendering and writing)  {build:6.2f} s")
    print(f"  site: {stats['rules']} rule pages, {stats['queries']} queries, {stats['unsupported']} unsupported, "
          f"{size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

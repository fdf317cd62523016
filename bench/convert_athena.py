"""Convert the SigmaHQ rules to Athena SQL, paired with sigma-cli (pySigma-backend-athena).

    python bench/convert_athena.py [--runs 5] [--folder DIR]

Both tools convert the same files: those sigma-cli converts without aborting (3,055 of the
3,141 SigmaHQ rules: pySigma-backend-athena 0.2.0 aborts the run on the 86 keyword rules).
Whole processes, alternately, cold (ours with --no-cache); prints each tool's median wall and
CPU time and peak RSS, the median of the per-pair ratios and the load average. Then, from one
in-process run, how our time splits between loading and converting.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time

import paired
from common import ROOT, need_corpus


def phases(target: str, rules: list[str]) -> None:
    sys.path.insert(0, str(ROOT))
    from transpiler.backends import get
    from transpiler.errors import Unsupported
    from transpiler.rule import load_paths
    start = time.perf_counter()
    loaded, _ = load_paths(rules)
    middle = time.perf_counter()
    backend = get(target)()
    for rule in loaded:
        try:
            backend.convert(rule)
        except Unsupported:
            pass
    print(f"  in-process: load {middle - start:.2f} s, convert {time.perf_counter() - middle:.2f} s")


def main(target="athena"):
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--folder", default=None)
    p.add_argument("--source-only", action="store_true", help="keep PYTHONDONTWRITEBYTECODE if set")
    args = p.parse_args()
    folder = paired.Path(args.folder) if args.folder else need_corpus("rules", "sigmahq-rules")
    with tempfile.TemporaryDirectory(prefix="bench-athena-") as tmp:
        paired.from_bytecode(tmp, target, args.source_only)
        paired.convert_figure(target, folder, args.runs, *paired.cold())
        # Inside: survivors() runs pip, which writes bytecode under PYTHONPYCACHEPREFIX (tmp).
        phases(target, paired.survivors(target, folder))


if __name__ == "__main__":
    main()

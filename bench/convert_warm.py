"""Warm runs: converting an unchanged rules repository again, and after one rule changed.

    python bench/convert_warm.py [--runs 5] [--target athena] [--folder DIR]

Copies the rules (default: the 3,141 SigmaHQ rules) into a temporary folder with its own
cache folder (XDG_CACHE_HOME), converts them once to fill the cache, then runs pairs:
  - warm (unchanged) against cold (--no-cache), the same files and output;
  - one rule changed (a different rule each pair: a comment line appended) against warm.
Prints medians, the median per-pair ratios and the load average, and checks that the warm
output is byte for byte the cold one.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import paired
from common import need_corpus


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--target", default="athena")
    p.add_argument("--folder", default=None)
    args = p.parse_args()
    source = Path(args.folder) if args.folder else need_corpus("rules", "sigmahq-rules")
    cold = paired.cold()
    if not cold:
        raise SystemExit("this version has no warm cache (convert --no-cache)")
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        rules = Path(tmp) / "rules"
        shutil.copytree(source, rules)
        env = {**os.environ, "XDG_CACHE_HOME": str(Path(tmp) / "cache")}
        files = sorted(rules.rglob("*.yml"))
        ours = paired.ours_convert(args.target, [str(rules)])
        out_cold, out_warm = Path(tmp) / "cold.txt", Path(tmp) / "warm.txt"
        paired.run(ours, env=env, stdout=out_cold)      # fills the cache
        first = paired.run(ours, env=env, stdout=out_warm)
        if out_cold.read_bytes() != out_warm.read_bytes():
            raise SystemExit("the warm output differs from the cold one")
        summary = first.stderr.strip().splitlines()[-1]
        before = paired.load()
        measured = paired.pairs(ours, ours[:-1] + list(cold) + ours[-1:], args.runs, env=env, ok=(0, 1))
        paired.report(f"convert {len(files)} rule files to {args.target} ({summary})", measured,
                      ours="warm", theirs="cold", before=before)
        changed, before = [], paired.load()
        for i in range(args.runs):
            victim = files[(i * 997) % len(files)]
            with open(victim, "a", encoding="utf-8") as f:
                f.write(f"\n# changed {i}\n")
            changed.append(paired.pairs(ours, ours, 1, env=env, ok=(0, 1))[0])
        paired.report(f"after one rule changed (first of each pair; the second is the next warm run)",
                      changed, ours="changed", theirs="warm", before=before)


if __name__ == "__main__":
    main()

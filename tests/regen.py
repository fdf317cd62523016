"""Fill in a target's expected file from what the backend generates now, for review:
    python tests/regen.py athena            # add missing case ids only
    python tests/regen.py athena --all      # rewrite every entry (then read the diff!)
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from caselib import UNSUPPORTED, load_cases, load_expected, write_expected  # noqa: E402

from transpiler.backends import get  # noqa: E402
from transpiler.errors import Unsupported  # noqa: E402


def generate(target: str, case) -> str:
    backend = get(target)()
    try:
        return backend.convert(case.rule())
    except Unsupported as e:
        return f"{UNSUPPORTED}: {e.message}"


def main(argv):
    target, rewrite = argv[0], "--all" in argv
    old = load_expected(target)
    table = {}
    for case in load_cases():
        if case.error:
            continue
        table[case.id] = generate(target, case) if rewrite or case.id not in old else old[case.id]
    write_expected(target, table)
    print(f"{target}: {len(table)} cases, {sum(1 for k in table if k not in old)} new")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Expected query texts for the correlation and filter cases (tests/correlations/*.yaml).

tests/correlations/expected/<target>.yaml maps each case id to the exact text the target
generates (for a correlation case: the correlation's query; for a filter case: the query of
the rule the filters apply to), or `UNSUPPORTED: <fragment of the message>` (as generated:
its first clause, up to "; "). Fill in the
missing ids from what the backend generates now, then READ them:
    python tests/correlation_expected.py kql           # add missing case ids only
    python tests/correlation_expected.py kql --all     # rewrite every entry (then read the diff!)
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import caselib  # noqa: E402
from caselib import UNSUPPORTED  # noqa: E402

from transpiler.backends import get  # noqa: E402
from transpiler.correlation import resolve  # noqa: E402
from transpiler.errors import Unsupported  # noqa: E402
from transpiler.rule import load_text  # noqa: E402

HERE = Path(__file__).resolve().parent / "correlations"
EXPECTED = HERE / "expected"


def correlation_cases() -> list:
    return yaml.safe_load((HERE / "cases.yaml").read_text(encoding="utf-8")) or []


def filter_cases() -> list:
    return yaml.safe_load((HERE / "filters.yaml").read_text(encoding="utf-8")) or []


def resolved(case):
    """(correlations, detections) of a case's rules; load or resolve errors fail loudly."""
    rules, errors = load_text(case["rules"], f"tests/correlations:{case['id']}")
    assert errors == [], [str(e) for e in errors]
    correlations, detections, errors = resolve(rules)
    assert errors == [], [str(e) for e in errors]
    return correlations, detections


def generate(backend, case) -> str:
    """The text a backend gives for a case: the correlation's query, or for a filter case the
    query of the first rule (its filters applied)."""
    correlations, detections = resolved(case)
    try:
        if correlations:
            return backend.convert_correlation(correlations[0])
        return backend.convert(detections[0])
    except Unsupported as e:
        return f"{UNSUPPORTED}: {e.message.split('; ')[0]}"      # a fragment: its first clause


def load_expected(target: str) -> dict:
    return caselib.load_expected(target, EXPECTED)


def write_expected(target: str, table: dict) -> None:
    caselib.write_expected(target, table, EXPECTED)


def main(argv):
    target, rewrite = argv[0], "--all" in argv
    old = load_expected(target)
    table = {}
    for case in correlation_cases() + filter_cases():
        table[case["id"]] = generate(get(target)(), case) if rewrite or case["id"] not in old else old[case["id"]]
    write_expected(target, table)
    print(f"{target}: {len(table)} cases, {sum(1 for k in table if k not in old)} new")


if __name__ == "__main__":
    main(sys.argv[1:])

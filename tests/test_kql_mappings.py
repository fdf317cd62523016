"""The KQL mappings onto documented tables (templates/kql/mappings/), case by case.

tests/kql_mappings.yaml holds one case per thing a mapping does: a rule (logsource and
detection), the exact KQL it converts to (or `UNSUPPORTED: <fragment>`), and events in the
evaluator's shape (flat: each key is a field as the rule names it), each with the verdict the
evaluator must give and the row the table holds for it. A row is what
transpiler/engines/kql_rows.py makes of the event (every column of the table's documented schema; "" for a string, null for others, as
Kusto stores a missing value; ActionType and the like set to the logsource's `rows`; each field
put into its column or JSON member, a transformed one through the inverse of the mapping's
expression), with the case's `row:` on top. `row:` writes out the columns of each transformed
value (a user split into domain and name, a registry key spelled HKEY_LOCAL_MACHINE, a DWORD
stored as a number), so the case pins the transformation, and the model is checked against it. A `row:` with `other_rows: true` is a row of another kind of event in the same
table: the query must leave it out.

Why not tests/cases/*.yaml: those cases are checked against every target, and their rows are
the events themselves; these are one target's mappings, whose rows differ from the events.

Each case is checked these ways: the conversion gives the expected text; the evaluator gives each
verdict; Microsoft's Kusto analyzer finds no diagnostic in the query against the table's
documented schema; duckdb-kql, running the query on a DuckDB table of the schema's shape holding
the rows, selects exactly the rows of the matching events (a case says `duckdb_kql: <why>` when
the query uses a function duckdb-kql lacks; enough cases must run).
Regenerate the expected texts (then read the diff): python tests/test_kql_mappings.py --regen
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transpiler.backends.kql import Kql  # noqa: E402
from transpiler.engines import kql_rows  # noqa: E402
from transpiler.errors import Unsupported  # noqa: E402
from transpiler.evaluate import matches, text  # noqa: E402
from transpiler.rule import rule_from_dict  # noqa: E402

CASES_FILE = Path(__file__).parent / "kql_mappings.yaml"
CASES = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
UNSUPPORTED = "UNSUPPORTED"
ROW_ID = "SigmaCaseRow"          # a column the table gets besides the schema's: which row came back
DUCKDB_TYPES = {"string": "VARCHAR", "long": "BIGINT", "int": "INTEGER", "real": "DOUBLE", "bool": "BOOLEAN",
                "boolean": "BOOLEAN", "datetime": "TIMESTAMP", "dynamic": "JSON", "guid": "VARCHAR"}


def rule_of(case):
    return rule_from_dict({"title": case["id"], "logsource": case["logsource"], "detection": case["detection"]},
                          f"{CASES_FILE.name}:{case['id']}")


def convert(case) -> str:
    try:
        return Kql().convert(rule_of(case))
    except Unsupported as e:
        return f"{UNSUPPORTED}: {e.message}"


def mapping_of(case):
    return Kql().mapping_for(rule_of(case))


def row_of(mapping, item: dict) -> dict:
    """The row the table holds for one event of a case: the model's (kql_rows.row), with the
    case's `row:` on top (for an other_rows item, the row alone)."""
    row = kql_rows.row(mapping, item["event"]) if "event" in item else kql_rows.empty_row(mapping)
    row.update(item.get("row") or {})
    return row


# --- the four checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_conversion(case):
    want = case["kql"]
    got = convert(case)
    if want.startswith(UNSUPPORTED):
        assert got.startswith(UNSUPPORTED) and want[len(UNSUPPORTED) + 2:] in got, got
    else:
        assert got == want


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_evaluator_verdicts(case):
    rule = rule_of(case)
    for item in case.get("events", []):
        if "event" in item:
            assert matches(rule.query, item["event"]) == item["match"], item


@pytest.mark.parametrize("case", [c for c in CASES if any("row" in i and "event" in i for i in c["events"])],
                         ids=lambda c: c["id"])
def test_the_row_model_gives_the_rows_the_cases_pin(case):
    """transpiler/engines/kql_rows.py (the model the kql engine and the corpus test build rows
    with) writes each transformed event as the case's `row:` spells it out."""
    mapping = mapping_of(case)
    for item in case["events"]:
        if "row" in item and "event" in item:
            model = kql_rows.row(mapping, item["event"])
            assert {c: model[c] for c in item["row"]} == item["row"], item


def test_cases_cover_every_mapping():
    """Every built-in KQL mapping onto a documented table has a case (mappings that differ only
    in their logsource, such as Linux's and macOS's, count as one)."""
    from transpiler.mapping import builtin_mappings

    def key(m):
        return m.table, json.dumps({c: list(v) for c, v in m.rows.items()}), tuple(sorted(m.fields))
    covered = {key(mapping_of(c)) for c in CASES}
    missing = [(m.table, m.logsource) for m in builtin_mappings("kql") if m.schema and key(m) not in covered
               and m.table != "WindowsEvent"]   # one WindowsEvent case stands for each kind of its channels
    assert not missing


def test_queries_pass_the_kusto_analyzer():
    from test_kql import _analyze
    items = []
    for case in CASES:
        if not case["kql"].startswith(UNSUPPORTED):
            mapping = mapping_of(case)
            items.append((case["id"], case["kql"], mapping.table, [[c, t] for c, t in mapping.schema.items()]))
    assert len(items) >= 20
    assert _analyze(items) == {}


def test_queries_select_the_rows_of_the_matching_events():
    duckdb_kql = pytest.importorskip("duckdb_kql", reason="pip install 'duckdb-kql[duckdb]' runs the KQL")
    ran = 0
    for case in CASES:
        if case["kql"].startswith(UNSUPPORTED) or case.get("duckdb_kql"):
            continue
        mapping = mapping_of(case)
        items = case["events"]
        con = duckdb_kql.connect()
        columns = list(mapping.schema.items())
        con.execute(f'CREATE TABLE "{mapping.table}" ("{ROW_ID}" INTEGER, '
                    + ", ".join(f'"{c}" {DUCKDB_TYPES[t]}' for c, t in columns) + ")")
        for i, item in enumerate(items):
            row = row_of(mapping, item)
            values = [i] + [json.dumps(row[c]) if t == "dynamic" and row[c] is not None else row[c]
                            for c, t in columns]
            con.execute(f'INSERT INTO "{mapping.table}" VALUES ({", ".join("?" * len(values))})', values)
        selected = sorted(r[0] for r in duckdb_kql.query(con, case["kql"] + f"\n| project {ROW_ID}").fetchall())
        want = [i for i, item in enumerate(items) if item["match"]]
        assert selected == want, (case["id"], [row_of(mapping, items[i]) for i in set(selected) ^ set(want)])
        ran += 1
    assert ran >= 15


# --- regenerate the expected texts --------------------------------------------------------------

def regen():
    """Rewrite each case's kql: from the current conversion (keeping the rest of the file)."""
    source = CASES_FILE.read_text(encoding="utf-8")
    for case in CASES:
        got = convert(case)
        if got == case["kql"]:
            continue
        block = "  kql: |-\n" + "".join(f"    {line}\n" for line in got.splitlines())
        start = source.index(f"- id: {case['id']}\n")
        at = source.index("  kql: ", start)
        end = source.index("\n  ", at + 1)
        while source.startswith("    ", end + 1):
            end = source.index("\n", end + 1)
        source = source[:at] + block.rstrip("\n") + source[end:]
        print("updated", case["id"])
    CASES_FILE.write_text(source, encoding="utf-8")


if __name__ == "__main__" and "--regen" in sys.argv:
    regen()

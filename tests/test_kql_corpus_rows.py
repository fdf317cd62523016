"""SigmaHQ and Suzaku rules on the documented KQL tables, executed: for the rules of each built-in
mapping onto a documented table, events are made from the rules' own values (every value a rule
tests, alone and together, and with each field left out), each event becomes the row its table
holds (transpiler/engines/kql_rows.py, the model the mappings assume; the evaluator sees the
event with every spelling the mapping gives its columns, resultType and ResultType alike, as one
field), and
duckdb-kql runs each rule's query
over the table of all those rows: the rows it selects must be exactly those of the events the
evaluator matches. Events the table cannot hold as the evaluator sees them, and queries using
a function duckdb-kql lacks (tohex, the IP range functions, ...), are counted, not compared.

A fixed sample runs in the tests; `python tests/test_kql_corpus_rows.py` runs every rule.
"""
from __future__ import annotations

import collections
import json
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from transpiler.backends.kql import Kql, empty_ok  # noqa: E402
from transpiler.engines import kql_rows  # noqa: E402
from transpiler.errors import TranspileError  # noqa: E402
from transpiler.evaluate import compile_query, field_values  # noqa: E402
from transpiler.nodes import Match, Op, Wild, walk  # noqa: E402
from transpiler.rule import load_paths  # noqa: E402

ROW_ID = "SigmaCaseRow"
DUCKDB_TYPES = {"string": "VARCHAR", "long": "BIGINT", "int": "INTEGER", "real": "DOUBLE", "bool": "BOOLEAN",
                "boolean": "BOOLEAN", "datetime": "TIMESTAMP", "dynamic": "JSON", "guid": "VARCHAR"}
SAMPLE = 160          # rules per run of the test (fixed seed), over every documented table


def sample_value(m: Match):
    """A value satisfying one Match (None where none can be made up simply)."""
    if m.op is Op.EQ:
        return m.value
    if m.op is Op.CONTAINS:
        return f"x{m.value}x"
    if m.op is Op.STARTSWITH:
        return f"{m.value}x"
    if m.op is Op.ENDSWITH:
        return f"x{m.value}"
    if m.op is Op.GLOB:
        return "".join("ab" if p is Wild.STAR else "c" if p is Wild.ONE else p for p in m.value)
    if m.op in (Op.LT, Op.LTE, Op.GT, Op.GTE) and isinstance(m.value, (int, float)):
        return m.value + {"lt": -1, "lte": 0, "gt": 1, "gte": 0}[m.op.value]
    if m.op is Op.EXISTS and m.value:
        return "present"
    return None


def events_of(rule, limit=14) -> list:
    """Events made of the rule's values: all together, each field left out, each value alone."""
    values = collections.defaultdict(list)
    for node in walk(rule.query):
        if isinstance(node, Match) and node.field:
            v = sample_value(node)
            if v is not None and v not in values[node.field]:
                values[node.field].append(v)
    if not values:
        return []
    base = {f: vs[0] for f, vs in values.items()}
    out = [base]
    out += [{k: v for k, v in base.items() if k != f} for f in base]
    out += [{**base, f: v} for f, vs in values.items() for v in vs[1:]]
    out += [{f: v} for f, vs in values.items() for v in vs]
    unique = []
    for e in out:
        if e and e not in unique:
            unique.append(e)
    return unique[:limit]


def run(rules, seed=None, sample=None) -> collections.Counter:
    """Compare duckdb-kql with the evaluator; returns counts, raises AssertionError on a difference."""
    import duckdb_kql
    backend = Kql()
    groups = collections.defaultdict(list)    # mapping -> [(rule, query)]
    for rule in rules:
        if rule.kind != "rule":
            continue
        try:
            query = backend.convert(rule)
        except TranspileError:
            continue
        mapping = backend.mapping_for(rule)
        if mapping.schema and not any(n.field is None for n in walk(rule.query) if isinstance(n, Match)):
            groups[id(mapping)].append((mapping, rule, query))
    chosen = [item for group in groups.values() for item in group]
    if sample:
        chosen = random.Random(seed).sample(chosen, min(sample, len(chosen)))
    by_mapping = collections.defaultdict(list)
    for mapping, rule, query in chosen:
        by_mapping[id(mapping)].append((mapping, rule, query))
    counts = collections.Counter()
    for items in by_mapping.values():
        mapping = items[0][0]
        events, rows = [], []
        for _, rule, _ in items:
            for event in events_of(rule):
                event = kql_rows.complete(mapping, event)
                try:
                    row, recorded = kql_rows.row(mapping, event), kql_rows.as_recorded(mapping, event)
                except (kql_rows.NotRepresentable, TranspileError):
                    counts["events the table cannot hold"] += 1
                    continue
                rows.append(row)
                events.append(recorded)
        if not events:
            continue
        con = duckdb_kql.connect()
        columns = list(mapping.schema.items())
        con.execute(f'CREATE TABLE "{mapping.table}" ("{ROW_ID}" INTEGER, '
                    + ", ".join(f'"{c}" {DUCKDB_TYPES[t]}' for c, t in columns) + ")")
        con.executemany(f'INSERT INTO "{mapping.table}" VALUES ({", ".join("?" * (len(columns) + 1))})',
                        [[i] + [json.dumps(r[c]) if t == "dynamic" and r[c] is not None
                                else r[c] for c, t in columns] for i, r in enumerate(rows)])
        counts["events"] += len(events)
        for _, rule, query in items:
            try:
                got = {r[0] for r in duckdb_kql.query(con, query + f"\n| project {ROW_ID}").fetchall()}
            except Exception as e:   # duckdb-kql lacks the function or cannot translate it
                counts[f"queries duckdb-kql cannot run ({type(e).__name__})"] += 1
                continue
            matcher = compile_query(rule.query)
            # A missing text reads as "" in the table: where the rule accepts "" for a field, an
            # event without it cannot be told from one with "" (README: known differences).
            blank = {n.field for n in walk(rule.query) if isinstance(n, Match) and n.field
                     and n.op not in (Op.EXISTS, Op.NULL) and empty_ok(n)}
            undecided = {i for i, e in enumerate(events) if any(not field_values(e, f) for f in blank)}
            counts["event and rule pairs undecided (missing or empty)"] += len(undecided)
            want = {i for i, e in enumerate(events) if matcher(e)} - undecided
            got -= undecided
            if got != want:
                diff = sorted(got ^ want)[:3]
                raise AssertionError(f"{rule.path}: duckdb-kql {'selects' if diff[0] in got else 'misses'} "
                                     f"{[events[i] for i in diff]}\n{query}")
            counts["rules compared"] += 1
            counts["matches"] += len(want)
    return counts


@pytest.mark.corpus
def test_corpus_rules_select_on_their_tables_what_the_evaluator_selects():
    pytest.importorskip("duckdb_kql", reason="pip install 'duckdb-kql[duckdb]' runs the KQL")
    from conftest import corpus_path
    root = corpus_path("rules")
    rules, _ = load_paths([root / "sigmahq-rules", root / "suzaku-rules"])
    counts = run(rules, seed=14, sample=SAMPLE)
    print(dict(counts))
    assert counts["rules compared"] >= SAMPLE * 0.8 and counts["matches"] >= SAMPLE


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "rules"
    loaded, _ = load_paths([root / "sigmahq-rules", root / "suzaku-rules"])
    print(dict(run(loaded)))

"""Every golden case through every engine that executes queries here: DuckDB, Athena (executed
with Trino's functions), the pipe-search interpreter and KQL (duckdb-kql). Each must select
exactly the case's `match` events among its events, or refuse the rule with a reason, or name
the events its table cannot hold (and the rest must agree).

OPEN lists the cases an engine still gets wrong, each a finding of the fuzzer with its fix to
come; the test fails when one of them starts to agree (or its backend refuses it), so that the
entry goes with the fix. DOCUMENTED lists the differences the README states.
"""
from __future__ import annotations

import pytest
from caselib import load_cases

import fuzzlib

CASES = [c for c in load_cases() if not c.error]
# The share of golden cases each engine must really execute (measured, then set a little lower).
MIN_SHARE = {"duckdb": 0.9, "athena": 0.85, "pipesearch": 0.75, "kql": 0.6}
# engine -> golden cases it still disagrees on (coordination findings, tests/cases/fuzz.yaml).
OPEN = {
    "duckdb": set(),
    "athena": set(),
    "pipesearch": set(),
    "kql": set(),
}
# engine -> golden cases on which it differs by design, as the README says.
DOCUMENTED = {
    "pipesearch": {"fuzz-fold-dotted-capital-i", "fuzz-fold-final-sigma"},   # Java's full lowercase
}


@pytest.fixture(scope="module")
def engines():
    found = fuzzlib.require_engines()
    yield found
    fuzzlib.close(found)


@pytest.mark.parametrize("name", sorted(MIN_SHARE))
def test_golden_cases_on_engine(engines, name):
    engine = engines[name]
    # One run over every case's rule and all the cases' events (fast: one table load); each rule
    # is then judged on its own case's events only.
    events, starts = [], []
    for case in CASES:
        starts.append(len(events))
        events.extend(case.events)
    out = engine.run([case.rule() for case in CASES], events)
    wrong, executed, refused, not_run = {}, 0, {}, set()
    for n, (case, start) in enumerate(zip(CASES, starts)):
        own = range(start, start + len(case.events))
        if n in out.refused:
            assert out.refused[n], f"{name} refused {case.id} without a reason"
            refused[case.id] = out.refused[n]
            if out.refused[n].startswith(f"{name} engine:"):   # the engine, not the backend: no verdict
                not_run.add(case.id)
            continue
        if n in out.failed:
            wrong[case.id] = f"failed: {out.failed[n]}"
            continue
        executed += 1
        undecided = {i - start for i in out.undecided.get(n, ()) if i in own}
        want = [i for i in range(len(case.match)) if i not in undecided]
        got = [i - start for i in out.matches[n] if i in own]
        if got != want:
            wrong[case.id] = f"selects {got} of {case.events}, the case says {want}"
    unexpected = {k: v for k, v in wrong.items() if k not in OPEN[name] | DOCUMENTED.get(name, set())}
    fixed = OPEN[name] - set(wrong) - not_run
    assert not unexpected, "\n".join(f"{k}: {v}" for k, v in unexpected.items())
    assert not fixed, f"{name} now agrees on {sorted(fixed)}: remove them from OPEN"
    share = executed / len(CASES)
    print(f"\n{name}: {executed} of {len(CASES)} cases executed, {len(refused)} refused")
    assert share >= MIN_SHARE[name], f"{name} executed only {share:.0%} of the golden cases"

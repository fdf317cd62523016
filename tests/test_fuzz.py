"""The differential fuzzer, fixed seed (conftest's profile): random rules over every modifier
family and random events made to hit them, run by every engine that can execute here; each must
select exactly what the evaluator selects, or refuse the rule with a reason, or say which events
its table cannot hold. bench/fuzz.py runs the same longer, with any seed.

A disagreement still open is listed in KNOWN with its golden case (tests/cases/fuzz.yaml) and
finding (coordination notes): the test passes it and says how many it saw, so the suite stays
useful while the fix is made; remove the entry with the fix. Anything else fails, shrunk.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings

import fuzzlib
from transpiler.nodes import Match, Op, walk

EXAMPLES = {"generic": 45, "cloudtrail": 45}
# Of the rules generated, the share each engine must really convert and execute (measured with
# the fixed seed, then set a little lower): a backend refusing everything cannot pass.
MIN_SHARE = {
    "generic": {"duckdb": 0.75, "athena": 0.6, "pipesearch": 0.6, "kql": 0.25},
    "cloudtrail": {"duckdb": 0.7, "athena": 0.75, "pipesearch": 0.25, "kql": 0.2},
}


def _ops(d) -> set:
    return {m.op for m in walk(d.rule.query) if isinstance(m, Match)}


def _special_fold(d) -> bool:
    """An event string holding a letter Python lower-cases to several code points ('İ') or by
    context (a final 'Σ'): SQL's lower() maps code point by code point."""
    texts = fuzzlib.strings_of(d.events)
    return any(len(c.lower()) != 1 or c in "Σ" for t in texts for c in t)


# Open findings: (golden case id, engines, test on the Disagreement). Remove an entry with its fix.
KNOWN = [
    # README: pipe search lowers with Java's full mapping (İ, a final Σ)
    ("fuzz-fold-dotted-capital-i", {"pipesearch"}, _special_fold),
]


def known(d) -> str | None:
    return next((case for case, engines, test in KNOWN if d.engine in engines and test(d)), None)


@pytest.fixture(scope="module")
def engines():
    found = fuzzlib.require_engines()
    yield found
    fuzzlib.close(found)


@pytest.mark.parametrize("shape", ["generic", "cloudtrail"])
def test_every_engine_selects_what_the_evaluator_selects(engines, shape):
    tally = fuzzlib.Tally()
    seen_known = {}

    # No shrinking (slow with four engines per example): bench/fuzz.py --minimize shrinks.
    @settings(max_examples=EXAMPLES[shape], deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(example=fuzzlib.examples(shape))
    def run(example):
        t = fuzzlib.compare(engines, example.rules, example.events, example.docs)
        fuzzlib.merge(tally, t)
        new = []
        for d in t.disagreements:
            case = known(d)
            if case:
                seen_known[case] = seen_known.get(case, 0) + 1
            else:
                new.append(d)
        assert not new, "\n\n".join(str(d) for d in new)

    run()
    print(f"\n{shape}:\n{tally.report()}\nknown open findings seen: {seen_known}")
    for engine, share in MIN_SHARE[shape].items():
        assert tally.share(engine) >= share, f"{engine} executed only {tally.share(engine):.0%} of the rules\n{tally.report()}"
    assert sum(tally.hits.values()) > 0.1 * sum(tally.verdicts.values()), "the events rarely hit the rules"

"""The golden cases, run through the evaluator and every backend's expected text."""
from __future__ import annotations

import pytest
from caselib import UNSUPPORTED, load_cases, load_expected

from transpiler.backends import BACKENDS, get
from transpiler.errors import TranspileError, Unsupported
from transpiler.evaluate import matches

CASES = load_cases()
VALID = [c for c in CASES if not c.error]
INVALID = [c for c in CASES if c.error]


def test_enough_cases():
    assert len(VALID) >= 150, len(VALID)


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_evaluator(case):
    rule = case.rule()
    for event in case.match:
        assert matches(rule.query, event), f"{case.id}: should match {event}\n{rule.query}"
    for event in case.no_match:
        assert not matches(rule.query, event), f"{case.id}: should not match {event}\n{rule.query}"


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.id)
def test_error_kind(case):
    with pytest.raises(TranspileError) as info:
        case.rule()
    assert info.value.kind == case.error, str(info.value)


def _available_targets():
    out = []
    for name in sorted(BACKENDS):
        try:
            get(name)
        except ImportError:
            continue
        out.append(name)
    return out


TARGETS = _available_targets()


@pytest.mark.parametrize("target", TARGETS)
def test_every_case_has_expected_text(target):
    expected = load_expected(target)
    missing = [c.id for c in VALID if c.id not in expected]
    stale = sorted(set(expected) - {c.id for c in VALID})
    assert not missing, f"{target}: no expected text for {missing} (python tests/regen.py {target})"
    assert not stale, f"{target}: expected text for unknown cases {stale}"


@pytest.mark.parametrize("target,case", [(t, c) for t in TARGETS for c in VALID],
                         ids=lambda x: x if isinstance(x, str) else x.id)
def test_backend_text(target, case):
    want = load_expected(target).get(case.id)
    if want is None:
        pytest.skip("no expected text yet (see test_every_case_has_expected_text)")
    backend = get(target)()
    if want.startswith(UNSUPPORTED):
        with pytest.raises(Unsupported) as info:
            backend.convert(case.rule())
        fragment = want[len(UNSUPPORTED):].lstrip(": ")
        assert fragment in info.value.message
    else:
        assert backend.convert(case.rule()) == want

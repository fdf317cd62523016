"""Correlations and filters through the reference evaluator (tests/correlations/*.yaml)."""
from pathlib import Path

import pytest
import yaml

from transpiler.correlation import evaluate, resolve, standalone
from transpiler.errors import TranspileError
from transpiler.evaluate import matches
from transpiler.rule import load_text

HERE = Path(__file__).resolve().parent / "correlations"
CORRELATIONS = yaml.safe_load((HERE / "cases.yaml").read_text())
FILTERS = yaml.safe_load((HERE / "filters.yaml").read_text())


def _load(text):
    rules, errors = load_text(text, "case.yml")
    assert errors == [], [str(e) for e in errors]
    correlations, detections, errors = resolve(rules)
    assert errors == [], [str(e) for e in errors]
    return correlations, detections


@pytest.mark.parametrize("case", CORRELATIONS, ids=lambda c: c["id"])
def test_correlation(case):
    correlations, detections = _load(case["rules"])
    assert len(correlations) == 1
    alerts = [a.as_dict() for a in evaluate(correlations[0], case["events"])]
    got = [{k: a[k] for k in ("group", "first_trigger", "last_trigger", "triggers")} for a in alerts]
    assert got == case["alerts"]
    assert standalone(detections, correlations) == []      # generate: false hides the base rules


@pytest.mark.parametrize("case", FILTERS, ids=lambda c: c["id"])
def test_filter(case):
    correlations, detections = _load(case["rules"])
    rule = detections[0]
    for event in case["match"]:
        assert matches(rule.query, event), event
    for event in case["no_match"]:
        assert not matches(rule.query, event), event


def test_events_are_taken_in_time_order_whatever_the_input_order():
    case = CORRELATIONS[0]
    correlations, _ = _load(case["rules"])
    forward = evaluate(correlations[0], case["events"])
    assert evaluate(correlations[0], list(reversed(case["events"]))) == forward


BAD = [
    ("type: nope", "type 'nope'"),
    ("rules: [missing]", "no loaded rule has id, name or title 'missing'"),
    ("timespan: 5 minutes", "timespan '5 minutes'"),
    ("condition: {gte: many}", "needs a number"),
    ("condition: {more: 1}", "unknown condition keys: more"),
    ("type: value_count", "needs condition.field"),
    ("timespan: 99999999999999d", "timespan 99999999999999d is longer than 3652058d"),
    ("timespan: 3652059d", "longer than 3652058d"),
    ("timespan: " + "9" * 5000 + "s", "(5001 characters) is longer than"),
]


@pytest.mark.parametrize("change,fragment", BAD)
def test_bad_correlations_name_the_key(change, fragment):
    body = {"type": "event_count", "rules": ["base"], "group-by": ["x"], "timespan": "5m", "condition": {"gte": 2}}
    key, value = change.split(": ", 1)
    body[key] = yaml.safe_load(value)
    text = yaml.safe_dump({"title": "c", "logsource": {}, "correlation": body}) + \
        "---\ntitle: base\nname: base\nlogsource: {}\ndetection: {sel: {a: 1}, condition: sel}\n"
    rules, errors = load_text(text, "c.yml")
    assert errors == []
    _, _, errors = resolve(rules)
    assert len(errors) == 1 and isinstance(errors[0], TranspileError)
    assert fragment in errors[0].message and errors[0].where.startswith("correlation")


def test_the_longest_timespan_runs_from_year_1_to_9999():
    """3652058d, the span from 0001-01-01 to 9999-12-31, is the longest timespan (longer ones
    are refused above): events at both ends of time are in one window, without OverflowError."""
    text = """
title: c
logsource: {}
correlation: {type: event_count, rules: [base], group-by: [u], timespan: 3652058d, condition: {gte: 3}}
---
title: base
logsource: {}
detection: {sel: {a: 1}, condition: sel}
"""
    correlations, _ = _load(text)
    events = [{"a": 1, "u": "x", "eventTime": t}
              for t in ("0001-01-01T00:00:00Z", "2024-01-01T00:00:00Z", "9999-12-31T00:00:00Z")]
    alerts = [a.as_dict() for a in evaluate(correlations[0], events)]
    assert [(a["first_trigger"], a["triggers"]) for a in alerts] == [("9999-12-31T00:00:00Z", 1)]


def test_cloudtrail_times_read_fast_are_the_general_readings():
    """evaluate.timestamp's shortcut for CloudTrail's form gives what the ISO-8601 grammar and
    fromisoformat give, for any digits (month 13, February 30, hour 24, year 0000...)."""
    import random

    from transpiler.evaluate import _iso_8601, timestamp
    rng = random.Random(7)

    def two():
        return rng.choice(["00", "01", "02", "09", "12", "13", "23", "24", "28", "29", "30", "31", "59", "60", "99",
                           f"{rng.randrange(100):02d}"])
    texts = ["2024-05-01T10:00:00Z", "0000-01-01T00:00:00Z", "2024-05-01T10:00:00.5Z", "2024-05-01T10:00:00.123456Z",
             "2024-02-29T23:59:59Z", "2023-02-29T00:00:00Z", "٢٠٢٤-05-01T10:00:00Z"]
    texts += [f"{two()}{two()}-{two()}-{two()}T{two()}:{two()}:{two()}" + rng.choice(["Z", ".7Z", ".1234567Z"])
              for _ in range(3000)]
    assert [timestamp(t) for t in texts] == [_iso_8601(t) for t in texts]
    assert len({timestamp(t) for t in texts}) > 100       # many of them are times

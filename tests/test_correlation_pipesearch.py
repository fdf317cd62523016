"""Pipe-search (Logpresso) correlations and filters: every correlation type is refused with
the reason Logpresso cannot express it (see transpiler/backends/pipesearch.py), and the
queries of filtered rules run like the evaluator in the search interpreter of
transpiler/engines/pipesearch.py."""
from __future__ import annotations

import json

import pytest
from correlation_expected import correlation_cases, filter_cases, generate, load_expected, resolved

from transpiler.backends.pipesearch import CORRELATION_GAPS, PipeSearch
from transpiler.correlation import TYPES, evaluate, resolve
from transpiler.engines.pipesearch import NotRepresentable, Row, parse
from transpiler.errors import Unsupported
from transpiler.evaluate import matches
from transpiler.rule import load_paths

CASES = correlation_cases()
FILTERS = filter_cases()
EXPECTED = load_expected("pipesearch")
UNSUPPORTED = "UNSUPPORTED"


@pytest.mark.parametrize("case", CASES + FILTERS, ids=lambda c: c["id"])
def test_golden_text(case):
    want = EXPECTED.get(case["id"])
    assert want is not None, f"no expected text for {case['id']}: run python tests/correlation_expected.py pipesearch"
    got = generate(PipeSearch(), case)
    if want.startswith(UNSUPPORTED):
        assert got.startswith(UNSUPPORTED) and want[len(UNSUPPORTED) + 2:] in got, got
    else:
        assert got == want


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_every_correlation_is_refused_with_its_reason(case):
    correlations, _ = resolved(case)
    c = correlations[0]
    with pytest.raises(Unsupported) as e:
        PipeSearch().convert_correlation(c)
    assert e.value.kind == "correlation" and e.value.where == "correlation" and e.value.path == c.rule.label
    message = e.value.message
    assert message.startswith(f"pipesearch: {c.type} needs")
    if c.type == "temporal_ordered":
        assert "no documented command keeps state across rows" in message
    else:
        assert "sliding window" in message and "timechart fixed buckets" in message
    if c.type == "value_percentile":
        assert "exact (interpolated) percentile" in message


def test_every_type_has_a_reason():
    assert set(CORRELATION_GAPS) == set(TYPES)


def test_filters_reach_the_query():
    assert 'not(lower(user_agent) == "*terraform*")' in EXPECTED["filter-by-id"]
    text = EXPECTED["filter-by-name-two-filters"]
    assert 'not(in(lower(User), "admin1", "admin2"))' in text and 'not(lower(Computer) == "build-*")' in text
    assert "root" not in EXPECTED["filter-other-logsource-ignored"]


@pytest.mark.parametrize("case", FILTERS, ids=lambda c: c["id"])
def test_filtered_rule_runs_like_the_evaluator(engine, case):
    _, detections = resolved(case)
    rule = detections[0]
    backend = PipeSearch()
    query = backend.convert(rule)
    search = next(line for line in query.splitlines() if line.startswith("| search "))[len("| search "):]
    tree = parse(search)
    mapping = backend.mapping_for(rule)
    ran = 0
    for event, want in [(e, True) for e in case["match"]] + [(e, False) for e in case["no_match"]]:
        assert matches(rule.query, event) == want
        try:
            got = engine.passes(tree, Row(event, mapping))
        except NotRepresentable:
            continue
        ran += 1
        assert got == want, f"{case['id']}: {query}\nevent {event}"
    assert ran == len(case["match"]) + len(case["no_match"])


@pytest.mark.corpus
def test_suzaku_correlations_load_evaluate_and_are_refused_one_by_one():
    from conftest import corpus_path
    from transpiler.events import read_events
    folder = corpus_path("rules", "suzaku-rules", "suzaku", "aws", "cloudtrail")
    rules, errors = load_paths([folder])
    assert errors == []
    correlations, detections, errors = resolve(rules)
    assert errors == [] and len(correlations) == 5
    events, _ = read_events([corpus_path("cloudtrail", "stratus-red-team.cloud")])
    for c in correlations:
        evaluate(c, [e.data for e in events])
        with pytest.raises(Unsupported, match=f"pipesearch: {c.type} needs"):
            PipeSearch().convert_correlation(c)
        for base in c.rules:   # the base rules convert, or are refused for a key inside a map (lists)
            try:
                PipeSearch().convert(base)
            except Unsupported as e:
                assert "a search expression cannot test a list's elements" in str(e), e


@pytest.mark.corpus
def test_convert_batch_reports_each_suzaku_correlation_unsupported(tmp_path):
    from conftest import corpus_path
    from transpiler.cli import main
    folder = corpus_path("rules", "suzaku-rules", "suzaku", "aws", "cloudtrail")
    names = ["aws_cloudtrail_many_failed_logins.yml", "aws_cloudtrail_many_access_denied.yml",
             "aws_cloudtrail_many_recon_events.yml", "aws_cloudtrail_s3_enum_after_getcalleridentity.yml",
             "aws_cloudtrail_iam_persistence_chain.yml"]
    report = tmp_path / "report.json"
    main(["convert", "-t", "pipesearch", "-f", "logpresso", "--no-progress", "--fail-on", "never",
          "-o", str(tmp_path / "out"), "--report", str(report), *(str(folder / n) for n in names)])
    rows = json.loads(report.read_text())["rules"]
    correlations = [r for r in rows if r["kind"] == "correlation"]
    assert len(correlations) == 5
    assert all(r["result"] == "unsupported" and "pipesearch: " in r["errors"][0]["message"] for r in correlations)
    assert not [r for r in rows if r["result"] == "failed"]

"""KQL correlations and filters: golden texts, Microsoft's Kusto analyzer on every generated
query (the suzaku correlation rules too), and a step-by-step Python model of the correlation
query run against the reference evaluator.

There is no Kusto engine here. The model below replays, operator by operator, what the query
in templates/kql/correlation.j2 does to its rows (the time-key join, the between window, the
two-step distinct counts, the rank arithmetic of the percentile, the one-step scan of
temporal_ordered), with each base rule's where clause stood in for by the evaluator (the where
clauses themselves are the golden cases of test_kql.py). Its alerts must equal the evaluator's
on the golden cases and on random event streams.
"""
from __future__ import annotations

import datetime
import itertools
import math
import re

import pytest
import yaml
from correlation_expected import correlation_cases, filter_cases, generate, load_expected, resolved
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_kql import _analyze, cloudtrail_columns, schema

from transpiler.backends.kql import Kql
from transpiler.correlation import OPERATORS, _aggregate, evaluate, event_time, resolve
from transpiler.errors import Unsupported
from transpiler.evaluate import compile_query, field_values, text
from transpiler.rule import load_paths, load_text

CASES = correlation_cases()
FILTERS = filter_cases()
EXPECTED = load_expected("kql")
UNSUPPORTED = "UNSUPPORTED"


# --- golden texts ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES + FILTERS, ids=lambda c: c["id"])
def test_golden_text(case):
    want = EXPECTED.get(case["id"])
    assert want is not None, f"no expected KQL for {case['id']}: run python tests/correlation_expected.py kql"
    got = generate(Kql(), case)
    if want.startswith(UNSUPPORTED):
        assert got.startswith(UNSUPPORTED) and want[len(UNSUPPORTED) + 2:] in got, got
    else:
        assert got == want


def test_every_type_has_a_golden_case():
    types = {resolved(c)[0][0].type for c in CASES}
    assert types == {"event_count", "value_count", "temporal", "temporal_ordered", "value_sum", "value_avg",
                     "value_percentile"}


def test_filters_reach_the_query():
    assert 'not(UserAgent contains "terraform")' in EXPECTED["filter-by-id"]
    assert "not(User in~" in EXPECTED["filter-by-name-two-filters"]
    assert 'not(DeviceName startswith "BUILD-")' in EXPECTED["filter-by-name-two-filters"]   # Defender XDR: Computer is DeviceName
    assert "root" not in EXPECTED["filter-other-logsource-ignored"]


# --- the analyzer ----------------------------------------------------------------------------

def correlation_schema(backend: Kql, c) -> tuple[str, list]:
    """The table and columns a correlation query reads: AWSCloudTrail's real schema, or for a
    generic table every column its rules, group keys and value use, plus the time column."""
    tables, columns = set(), {}
    for base in c.rules:
        table, cols = schema(backend, base)
        tables.add(table)
        columns.update(cols)
        backend.mapping = backend.mapping_for(base)
        for name in [*c.group_fields(base), *([c.value_field(base)] if c.field else [])]:
            t = backend.resolve(name)
            columns.setdefault(t.column, {"bool": "bool", "number": "real"}.get(t.type, "string"))
    assert len(tables) == 1, tables
    table = tables.pop()
    if table == "AWSCloudTrail":
        return table, [list(col) for col in cloudtrail_columns()]
    columns.setdefault(backend.options.get("time_column") or "TimeGenerated", "datetime")
    return table, sorted([k, v] for k, v in columns.items())


def test_golden_queries_pass_the_analyzer():
    items = []
    for case in CASES:
        want = EXPECTED.get(case["id"], UNSUPPORTED)
        if not want.startswith(UNSUPPORTED):
            items.append((case["id"], want, *correlation_schema(Kql(), resolved(case)[0][0])))
    for case in FILTERS:
        want = EXPECTED[case["id"]]
        items.append((case["id"], want, *schema(Kql(), resolved(case)[1][0])))
    assert len(items) == len(CASES) + len(FILTERS)
    assert _analyze(items) == {}


def suzaku_correlations():
    from conftest import corpus_path
    folder = corpus_path("rules", "suzaku-rules", "suzaku", "aws", "cloudtrail")
    rules, errors = load_paths([folder])
    assert errors == [], [str(e) for e in errors[:3]]
    correlations, _, errors = resolve(rules)
    assert errors == [], [str(e) for e in errors[:3]]
    return correlations


@pytest.mark.corpus
def test_suzaku_correlations_load_evaluate_convert_and_pass_the_analyzer():
    from conftest import corpus_path
    from transpiler.events import read_events
    correlations = suzaku_correlations()
    assert len(correlations) == 5
    events, _ = read_events([corpus_path("cloudtrail", "stratus-red-team.cloud")])
    items = []
    for c in correlations:
        evaluate(c, [e.data for e in events])          # the reference evaluates it without error
        backend = Kql()
        query = backend.convert_correlation(c)       # all five convert: no Unsupported
        items.append((c.rule.title, query, *correlation_schema(backend, c)))
    assert {c.type for c in correlations} == {"event_count", "value_count", "temporal_ordered"}
    assert _analyze(items) == {}


def test_group_by_a_datetime_column_is_unsupported():
    text = CASES[0]["rules"].replace("group-by: [sourceIPAddress]", "group-by: [eventTime]")
    rules, _ = load_text(text, "c.yml")
    correlations, _, _ = resolve(rules)
    with pytest.raises(Unsupported, match="datetime column TimeGenerated") as e:
        Kql().convert_correlation(correlations[0])
    assert e.value.path == "c.yml" and e.value.where == "correlation"


def test_group_by_named_like_an_alert_column_is_unsupported():
    text = CASES[0]["rules"].replace("group-by: [sourceIPAddress]", "group-by: [triggers]")
    rules, _ = load_text(text, "c.yml")
    correlations, _, _ = resolve(rules)
    with pytest.raises(Unsupported, match="alert column"):
        Kql().convert_correlation(correlations[0])


def test_unsupported_base_rule_names_the_rule():
    text = CASES[0]["rules"].replace("responseElements.ConsoleLogin: Failure", "userIdentity.sourceIdentity: x")
    rules, _ = load_text(text, "c.yml")
    correlations, _, _ = resolve(rules)
    with pytest.raises(Unsupported, match="sourceIdentity") as e:
        Kql().convert_correlation(correlations[0])
    assert e.value.path == "c.yml#1"


def test_time_column_option_and_mapping_entry(tmp_path):
    correlations, _ = resolved(CASES[2])        # generic table
    assert "isnotnull(EventTime)" in Kql(time_column="EventTime").convert_correlation(correlations[0])
    mapping = tmp_path / "m.yml"
    mapping.write_text("table: Logs_CL\ntime_column: event time\n", encoding="utf-8")
    query = Kql(mapping_file=mapping).convert_correlation(correlations[0])
    assert query.startswith("let Events = materialize(Logs_CL\n") and "Time = ['event time']" in query


def test_timespans_in_kusto_units():
    from transpiler.backends.kql import timespan
    assert [timespan(s) for s in (45, 300, 5400, 7200, 604800)] == ["45s", "5m", "90m", "2h", "7d"]


def test_same_correlation_same_text():
    correlations, _ = resolved(CASES[5])
    assert Kql().convert_correlation(correlations[0]) == Kql().convert_correlation(correlations[0])


# --- a model of the query, operator by operator ------------------------------------------------

_NUMBER = re.compile(r"^[ \t\n\f\r]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?[ \t\n\f\r]*$")
_EPOCH = datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)


def _first_text(event, field):
    """A string column's value: the text, "" when missing (KQL strings are never null)."""
    values = field_values(event, field)
    return text(values[0]) if values else ""


def model_events(c, events) -> list:
    """`let Events`: one row per (event, matching rule) with a time and non-empty keys."""
    rows, tests = [], [compile_query(b.query) for b in c.rules]
    names = list(dict.fromkeys(c.group_by))
    for event in events:
        for i, test in enumerate(tests):
            moment = event_time(event)
            if not test(event) or moment is None:
                continue
            fields = dict(zip(c.group_by, c.group_fields(c.rules[i])))
            keys = tuple(_first_text(event, fields[n]) for n in names)
            if "" in keys:
                continue
            row = {"Time": moment, "Keys": keys, "Rule": i}
            if c.field:
                value = _first_text(event, c.value_field(c.rules[i]))
                row.update(Value=value, HasValue=value != "",
                           Number=float(value.strip(" \t\n\f\r")) if _NUMBER.match(value) else None)
            rows.append(row)
    for n, row in enumerate(rows, 1):          # serialize Row = row_number()
        row["Row"] = n
    return rows


def _bin(moment, span):
    return _EPOCH + (moment - _EPOCH) // span * span


def model_windows(c, rows):
    """The join, where and summarize steps: (event row, its window's aggregate) for every
    event the join keeps."""
    span = datetime.timedelta(seconds=c.timespan)
    numeric = c.type in ("value_sum", "value_avg", "value_percentile")
    right = {}
    for w in rows:
        if not numeric or w["Number"] is not None:
            right.setdefault((w["Keys"], _bin(w["Time"], span)), []).append(w)
    out = []
    for e in rows:
        keys, low, high = [], _bin(e["Time"] - span, span), _bin(e["Time"], span)
        while low <= high:                       # range(bin(Time - span), bin(Time), span)
            keys.append(low)
            low += span
        assert len(keys) == 2
        window = [w for key in keys for w in right.get((e["Keys"], key), ())
                  if e["Time"] - span <= w["Time"] <= e["Time"]]
        if not window:
            continue                             # no pair: the join drops the event
        if c.type == "event_count":
            value = len(window)
        elif c.type == "value_count":
            value = sum(1 for v, has in {(w["Value"], w["HasValue"]) for w in window} if has)
        elif c.type == "temporal":
            value = len({w["Rule"] for w in window})
        elif c.type == "value_sum":
            value = sum(w["Number"] for w in window)
        elif c.type == "value_avg":
            value = sum(w["Number"] for w in window) / len(window)
        else:
            value = _model_percentile(window, c.percentile)
        out.append((e, value))
    return out


def _model_percentile(window, p):
    up = sorted(window, key=lambda w: (w["Number"], w["Row"]))
    rank = {id(w): n for n, w in enumerate(up)}                       # row_number(0, ...)
    down = sorted(window, key=lambda w: (w["Number"], w["Row"]), reverse=True)
    size = {id(w): rank[id(w)] + n for n, w in enumerate(down, 1)}    # Rank + row_number(1, ...)
    picked = {}
    for w in window:
        position = (size[id(w)] - 1) * p / 100.0
        low = int(position // 1)
        high = min(low + 1, size[id(w)] - 1)
        picked.setdefault("pos", set()).add((position, low))
        if rank[id(w)] == low:
            picked["low"] = w["Number"]
        if rank[id(w)] == high:
            picked["high"] = w["Number"]
    (position, low), = picked["pos"]           # take_any: one value per event
    return picked["low"] + (picked["high"] - picked["low"]) * (position - low)


def model_ordered(c, rows):
    """Group numbers, sort, prev() and the one-step scan, then the trigger test."""
    span = datetime.timedelta(seconds=c.timespan)
    groups = {}
    for r in rows:
        groups.setdefault(r["Keys"], len(groups) + 1)
    ordered = sorted(rows, key=lambda r: (groups[r["Keys"]], r["Time"], r["Rule"]))
    last, state, previous, out = len(c.rules) - 1, [None] * len(c.rules), 0, []
    for r in ordered:
        same = groups[r["Keys"]] == previous
        previous = groups[r["Keys"]]
        new = [r["Time"] if r["Rule"] == 0 else (state[0] if same else None)]
        for i in range(1, len(c.rules)):
            chain = (same and r["Rule"] == i and state[i - 1] is not None and r["Time"] - state[i - 1] <= span
                     and (state[i] is None or state[i - 1] > state[i]))
            new.append(state[i - 1] if chain else (state[i] if same else None))
        state = new                            # the assignments all read the previous state
        if r["Rule"] == last and state[last] is not None and r["Time"] - state[last] <= span:
            out.append(r)
    return out


def model_alerts(c, events) -> list:
    rows = model_events(c, events)
    if c.type == "temporal_ordered":
        triggered = model_ordered(c, rows)
    else:
        triggered = [e for e, value in model_windows(c, rows)
                     if all(OPERATORS[op](value, limit) for op, limit in c.condition)]
    alerts = {}
    for r in triggered:
        first, last, n = alerts.get(r["Keys"], (r["Time"], r["Time"], 0))
        alerts[r["Keys"]] = (min(first, r["Time"]), max(last, r["Time"]), n + 1)
    names = list(dict.fromkeys(c.group_by))
    return sorted((tuple(zip(names, k)), *v) for k, v in alerts.items())


def reference_alerts(c, events) -> list:
    return sorted((a.group, a.first, a.last, a.triggers) for a in evaluate(c, events))


def reference_values(c, events) -> list:
    """(keys, time, aggregate) at every event, as evaluate() computes them before the condition
    (transpiler.correlation._aggregate over the same window); None: no numbers, no value."""
    out = []
    for event in events:
        for i, base in enumerate(c.rules):
            if compile_query(base.query)(event) and event_time(event) is not None:
                out.append((event, i))
    values = []
    span = datetime.timedelta(seconds=c.timespan)
    names = list(dict.fromkeys(c.group_by))
    rows = []
    for event, i in out:
        fields = dict(zip(c.group_by, c.group_fields(c.rules[i])))
        keys = tuple(_first_text(event, fields[n]) for n in names)
        if "" in keys:
            continue
        values_of = field_values(event, c.value_field(c.rules[i])) if c.field else []
        rows.append((keys, event_time(event), i, values_of[0] if values_of else None))
    for keys, moment, _, _ in rows:
        window = [(t, i, v) for k, t, i, v in rows if k == keys and moment - span <= t <= moment]
        values.append((keys, moment, _aggregate(c, window)))
    return sorted(values, key=repr)


def _close(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-12))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_model_of_the_query_agrees_with_the_evaluator_on_the_cases(case):
    correlations, _ = resolved(case)
    alerts = model_alerts(correlations[0], case["events"])
    assert alerts == reference_alerts(correlations[0], case["events"])
    assert len(alerts) == len(case["alerts"])


def _correlation_text(kind, k, group_by, span, condition):
    body = {"type": kind, "rules": [f"r{i}" for i in range(k)], "group-by": group_by, "timespan": span}
    if condition is not None:
        body["condition"] = condition
    docs = [{"title": "c", "logsource": {"product": "test"}, "correlation": body}]
    docs += [{"title": f"r{i}", "name": f"r{i}", "logsource": {"product": "test"},
              "detection": {"sel": {"action|contains": f"a{i}"}, "condition": "sel"}} for i in range(k)]
    return yaml.safe_dump_all(docs)


_LIMIT = st.sampled_from([0, 1, 2, 2.5, 3, 4, 10])
CONDITIONS = st.fixed_dictionaries({}, optional={"gte": _LIMIT, "gt": _LIMIT, "lte": _LIMIT, "lt": _LIMIT,
                                                  "eq": _LIMIT, "neq": _LIMIT}).filter(bool)
_TIMES = st.integers(0, 40).map(
    lambda n: (datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=n * 15)).isoformat() + "Z")
EVENTS = st.lists(st.fixed_dictionaries({
    "eventTime": st.one_of(_TIMES, _TIMES, _TIMES, st.none()),
    "action": st.sampled_from(["a0", "a1", "a2", "a0a1", "a1a2", "a2a0", "zz"]),
    "host": st.sampled_from(["h", "h", "H"]),
    "user": st.sampled_from(["u", "v"]),
    "v": st.sampled_from([1, 2, 7.5, "3", " 4 ", "x", "-1e1", True, None, 2]),
}), min_size=3, max_size=40)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["event_count", "value_count", "temporal", "temporal_ordered", "value_sum",
                             "value_avg", "value_percentile"]),
       k=st.integers(1, 3), group_by=st.sampled_from([[], ["host"], ["host", "user"]]), span=st.sampled_from(["15s", "1m", "2m", "10m"]),
       condition=CONDITIONS, percentile=st.sampled_from([0, 25, 50, 90, 99.5, 100]), events=EVENTS)
def test_model_of_the_query_agrees_with_the_evaluator(kind, k, group_by, span, condition, percentile, events):
    if kind == "temporal_ordered":
        condition = None                       # the default: all rules, in order
    elif kind in ("value_count", "value_sum", "value_avg", "value_percentile"):
        condition = {**condition, "field": "v"}
        if kind == "value_percentile":
            condition["percentile"] = percentile
    text = _correlation_text(kind, k, group_by, span, condition)
    rules, errors = load_text(text, "c.yml")
    assert errors == []
    correlations, _, errors = resolve(rules)
    assert errors == []
    c = correlations[0]
    assert model_alerts(c, events) == reference_alerts(c, events)
    if kind != "temporal_ordered":              # and the aggregate at every event, trigger or not
        model = sorted(((e["Keys"], e["Time"], v) for e, v in model_windows(c, model_events(c, events))), key=repr)
        reference = [r for r in reference_values(c, events) if r[2] is not None]
        assert len(model) == len(reference)
        assert all(m[:2] == r[:2] and _close(m[2], r[2]) for m, r in zip(sorted(model), sorted(reference)))
    query = Kql().convert_correlation(c)      # and it converts
    assert query.endswith("| project " + "".join(f"{n} = Key{i}, " for i, n in enumerate(group_by))
                          + "first_trigger, last_trigger, triggers")


@pytest.mark.parametrize("k", [1, 2, 3])
def test_model_of_temporal_ordered_agrees_on_every_small_stream(k):
    """Every stream of up to three events over three instants one timespan apart (the window
    boundaries) and every combination of the rules: the scan's chain logic, exhaustively."""
    rules, _ = load_text(_correlation_text("temporal_ordered", k, ["host"], "15s", None), "c.yml")
    c = resolve(rules)[0][0]
    kinds = [{"eventTime": f"2024-01-01T00:00:{s:02d}Z", "action": a, "host": "h"}
             for s in (0, 15, 30) for a in ("a0", "a1", "a2", "a0a1", "a1a2")]
    checked = 0
    for n in (1, 2, 3):
        for stream in itertools.product(kinds, repeat=n):
            assert model_alerts(c, stream) == reference_alerts(c, stream), stream
            checked += 1
    assert checked == 15 + 15 ** 2 + 15 ** 3


def test_generated_correlation_queries_pass_the_analyzer():
    """Every type, one to three rules, one or two keys, ranges: through the analyzer at once."""
    items = []
    for kind in ("event_count", "value_count", "temporal", "temporal_ordered", "value_sum", "value_avg",
                 "value_percentile"):
        for k in (1, 2, 3):
            for group_by in ([], ["host"], ["host", "a.b"]):
                condition = {"gt": 1, "lte": 2.5, "neq": 2}
                if kind in ("value_count", "value_sum", "value_avg", "value_percentile"):
                    condition["field"] = "v"
                if kind == "value_percentile":
                    condition["percentile"] = 99.5
                text = _correlation_text(kind, k, group_by, "90s", None if kind == "temporal_ordered" else condition)
                rules, _ = load_text(text, "c.yml")
                correlations, _, errors = resolve(rules)
                assert errors == []
                backend = Kql()
                query = backend.convert_correlation(correlations[0])
                items.append((f"{kind}/{k}/{len(group_by)}", query, *correlation_schema(backend, correlations[0])))
    assert _analyze(items) == {}


def test_json_group_key_refused_and_number_column(tmp_path):
    """A key inside JSON text is tested value by value (an mv-apply), so it is no column a
    correlation can group by: refused with the reason. A number column is the value summed."""
    mapping = tmp_path / "m.yml"
    mapping.write_text("table: Logs_CL\nfields: {ms: {column: Ms, type: number}, ok: {column: Ok, type: bool}}\n"
                       "json: {request: Request}\n", encoding="utf-8")
    backend = Kql(mapping_file=mapping)
    text = _correlation_text("value_sum", 1, ["request.host", "ok"], "5m", {"gte": 10, "field": "ms"})
    correlations, _, _ = resolve(load_text(text, "c.yml")[0])
    with pytest.raises(Unsupported, match="request.host is a key inside the JSON text of Request"):
        backend.convert_correlation(correlations[0])
    text = _correlation_text("value_sum", 1, ["ok"], "5m", {"gte": 10, "field": "ms"})
    correlations, _, _ = resolve(load_text(text, "c.yml")[0])
    query = backend.convert_correlation(correlations[0])
    assert "Key0 = tostring(Ok), Number = Ms" in query
    columns = [["TimeGenerated", "datetime"], ["Request", "string"], ["Ok", "bool"], ["Ms", "real"],
               ["action", "string"]]
    assert _analyze([("json", query, "Logs_CL", columns)]) == {}


@pytest.mark.parametrize("value", ["5", " 5 ", "\t-1.5e3\n", "+.5", "5.", "1e400", "0x10", "NaN", "Infinity", "",
                                   " ", "1 2", "\u00a05", "\x0b5", "٣", "5\n\n"])
def test_numbers_read_as_the_evaluator_reads_them(value):
    """The decimal test of match.j2 (where clauses and correlation values), run as a Python
    regex (the pattern is ASCII-only, so both engines read it alike), agrees with
    evaluate.number on which texts are numbers, and trim() leaves what float() parses."""
    from transpiler.evaluate import number
    query = Kql().convert(load_text("title: t\nlogsource: {category: x}\ndetection: {s: {n|gt: 3}, condition: s}\n",
                                    "t.yml")[0][0])
    pattern = re.search(r'matches regex @"(.*?)"', query).group(1).replace("$", r"\Z")
    trimmed = value.strip(" \t\n\f\r")
    assert bool(re.match(pattern, value)) == (number(value) is not None)
    if number(value) is not None:
        assert float(trimmed) == number(value)

"""The athena and kql engines themselves: Trino's functions as Trino's source defines them, and
duckdb-kql's known gaps refused or left undecided with their reason, never compared."""
from __future__ import annotations

import datetime

import pytest

from transpiler.engines import athena
from transpiler.rule import rule_from_dict


def rule(detection, logsource=None):
    return rule_from_dict({"title": "t", "logsource": logsource or {"category": "test"},
                           "detection": {**detection, "condition": "sel"}})


CLOUDTRAIL = {"product": "aws", "service": "cloudtrail"}


@pytest.mark.parametrize("text,keys,want", [
    ('{"a": "x"}', ["a"], "x"),
    ('{"a": 1.50}', ["a"], "1.50"),                  # a number as written (Jackson's getText)
    ('{"a": true}', ["a"], "true"),
    ('{"a": null}', ["a"], None),
    ('{"a": [1]}', ["a"], None),                     # arrays and objects are no scalar
    ('{"a": {"b": 1}}', ["a"], None),
    ('{"a": [{"b": 1}]}', ["a", "b"], None),         # no "any element" in the legacy path
    ('{"a": ["x", "y"]}', ["a", "1"], "y"),          # a key on an array is an index
    ('{"a": 1, "a": 2}', ["a"], "1"),                # the first of duplicate keys
    ("not json", ["a"], None),
    ('{"a": NaN}', ["a"], None),
])
def test_json_extract_scalar(text, keys, want):
    import json
    assert athena.json_extract_scalar(text, json.dumps(keys)) == want


def test_contains_ip_as_athena_has_it():
    v4 = athena.ipaddress_cast("10.1.2.3")
    assert athena.contains("10.0.0.0/8", v4) is True
    assert athena.contains("10.0.0.0/8", athena.ipaddress_cast("::ffff:10.1.2.3")) is True   # mapped is IPv4
    with pytest.raises(athena.TrinoError, match="IP address version should be the same"):
        athena.contains("10.0.0.0/8", athena.ipaddress_cast("2001:db8::1"))
    with pytest.raises(athena.TrinoError, match="Prefix length exceeds"):
        athena.contains("::ffff:10.0.0.0/104", v4)
    assert athena.ipaddress_cast("010.1.2.3") is None and athena.ipaddress_cast("AWS Internal") is None


@pytest.mark.parametrize("s,want", [("İ", "i"), ("ΑΣ", "ασ"), ("\u212a", "k"), ("ABC", "abc")])
def test_lower_code_point_by_code_point(s, want):
    assert athena.lower(s) == want


@pytest.mark.parametrize("s,want", [(" 5 ", 5.0), ("\n5\t", 5.0), ("5d", 5.0), ("NaN", "nan"), ("0x10", None),
                                    ("", None), ("1e2", 100.0)])
def test_parse_double_as_java(s, want):
    got = athena.parse_double(s)
    assert (str(got) == want) if want == "nan" else got == want


@pytest.mark.parametrize("s,want", [
    ("2024-06-15T03:30:59Z", (2024, 6, 15, 3, 30, 59, 0)),
    ("2024-06-15T03:30:59.1239+05:30", (2024, 6, 15, 3, 30, 59, 5.5)),
    ("2024-06-15", (2024, 6, 15, 0, 0, 0, 0)),
    ("2024-06-15 03:30:59", None),                  # Joda needs the 'T'
    ("20240615T033059", None),                      # and the extended format
    ("2024-06-15T24:00:00Z", None),
])
def test_from_iso8601_timestamp_as_joda(s, want):
    got = athena.from_iso8601_timestamp(s)
    if want is None:
        assert got is None
    else:
        *parts, hours = want
        assert got == datetime.datetime(*parts, 123000 if ".123" in s else 0,
                                        tzinfo=datetime.timezone(datetime.timedelta(hours=hours)))


def test_athena_engine_reports_what_athena_would_abort_and_what_it_refuses():
    engine = athena.Athena()
    if engine.unavailable():
        pytest.skip(engine.unavailable())
    keywords = rule({"sel": ["x"]})
    cidr = rule({"sel": {"sourceIPAddress|cidr": "10.0.0.0/8"}}, CLOUDTRAIL)
    out = engine.run([keywords, cidr], [{"sourceIPAddress": "10.1.2.3"}, {"sourceIPAddress": "2001:db8::1"}])
    engine.close()
    assert "keywords" in out.refused[0]
    assert out.matches[1] == [0]      # the backend guards contains() by family: no abort


def test_kql_engine_refuses_its_gaps_with_the_reason():
    from transpiler.engines.kql import Kql
    engine = Kql()
    if engine.unavailable():
        pytest.skip(engine.unavailable())
    rules = [rule({"sel": {"f": "a\x01b"}}), rule({"sel": {"f|re": "^a"}}),
             rule({"sel": {"sourceIPAddress|cidr": "10.0.0.0/8"}}, CLOUDTRAIL),
             rule({"sel": {"f|exists": True}})]
    events = [{"f": "a\x01b"}, {"f": ""}, {}]
    out = engine.run(rules, events)
    assert "\\uXXXX" in out.refused[0]
    assert "RE2" in out.refused[1]
    assert "range functions" in out.refused[2]
    assert out.matches[3] == [0] and out.undecided[3] == [1, 2]  # "" and missing: one string in Kusto
    assert all("engine" in out.refused[n] for n in range(3))


def test_kql_engine_leaves_json_nulls_undecided():
    from transpiler.engines import kql
    assert kql._json_cell({"k": None})[1] == "duckdb-kql reads a JSON null as a value (Kusto: null)"
    assert kql._json_cell({"k": [1, {"a": 2}]}) == ('{"k":[1,{"a":2}]}', None)

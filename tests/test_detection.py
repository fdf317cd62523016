"""Sigma values and modifiers -> the IR: the only place Sigma syntax is interpreted."""
import pytest

from transpiler.detection import base64_offsets, selection
from transpiler.errors import RuleError
from transpiler.nodes import And, Match, Not, Op, Or, TimePart, Wild

S, O = Wild.STAR, Wild.ONE

SHAPES = [
    # selection body, expected IR
    ({"f": "abc"}, Match("f", Op.EQ, "abc")),
    ({"f": "*abc*"}, Match("f", Op.CONTAINS, "abc")),
    ({"f": "abc*"}, Match("f", Op.STARTSWITH, "abc")),
    ({"f": "*abc"}, Match("f", Op.ENDSWITH, "abc")),
    ({"f": "a*c"}, Match("f", Op.GLOB, ("a", S, "c"))),
    ({"f": "a?c"}, Match("f", Op.GLOB, ("a", O, "c"))),
    ({"f": "**a**"}, Match("f", Op.CONTAINS, "a")),
    ({"f": "*"}, Match("f", Op.EXISTS, True)),
    ({"f": r"a\*c"}, Match("f", Op.EQ, "a*c")),
    ({"f": r"a\?c"}, Match("f", Op.EQ, "a?c")),
    ({"f": "a\\\\*"}, Match("f", Op.STARTSWITH, "a\\")),
    ({"f": "a\\\\\\*"}, Match("f", Op.EQ, "a\\*")),
    ({"f": r"C:\Windows"}, Match("f", Op.EQ, r"C:\Windows")),
    ({"f": "C:\\\\Windows"}, Match("f", Op.EQ, r"C:\Windows")),
    ({"f": "trailing\\"}, Match("f", Op.EQ, "trailing\\")),
    ({"f|contains": "a"}, Match("f", Op.CONTAINS, "a")),
    ({"f|contains": "*a"}, Match("f", Op.CONTAINS, "a")),
    ({"f|startswith": "a*b"}, Match("f", Op.GLOB, ("a", S, "b", S))),
    ({"f|endswith": "?b"}, Match("f", Op.GLOB, (S, O, "b"))),
    ({"f|cased": "A"}, Match("f", Op.EQ, "A", True)),
    ({"f|contains|cased": "A"}, Match("f", Op.CONTAINS, "A", True)),
    ({"f": 5}, Match("f", Op.EQ, 5)),
    ({"f": 1.5}, Match("f", Op.EQ, 1.5)),
    ({"f": True}, Match("f", Op.EQ, True)),
    ({"f": None}, Match("f", Op.NULL, None)),
    ({"f": ""}, Match("f", Op.EQ, "")),
    ({"f|contains": 5}, Match("f", Op.CONTAINS, "5")),
    ({"f": ["a", "b"]}, Or((Match("f", Op.EQ, "a"), Match("f", Op.EQ, "b")))),
    ({"f|all": ["a", "b"]}, And((Match("f", Op.EQ, "a"), Match("f", Op.EQ, "b")))),
    ({"f": ["a", "a"]}, Match("f", Op.EQ, "a")),
    ({"f": "a", "g": "b"}, And((Match("f", Op.EQ, "a"), Match("g", Op.EQ, "b")))),
    ({"f|exists": True}, Match("f", Op.EXISTS, True)),
    ({"f|exists": False}, Match("f", Op.EXISTS, False)),
    ({"f|neq": "a"}, Not(Match("f", Op.EQ, "a"))),
    ({"f|neq": ["a", "b"]}, Not(Or((Match("f", Op.EQ, "a"), Match("f", Op.EQ, "b"))))),
    ({"f|re": "a.b"}, Match("f", Op.RE, "a.b")),
    ({"f|re|i|s": "a.b"}, Match("f", Op.RE, "(?is)a.b")),
    ({"f|re|i": "(?m)^a"}, Match("f", Op.RE, "(?im)^a")),
    ({"f|cidr": "10.1.2.3/8"}, Match("f", Op.CIDR, "10.0.0.0/8")),
    ({"f|cidr": "2001:DB8::/32"}, Match("f", Op.CIDR, "2001:db8::/32")),
    ({"f|lt": 5}, Match("f", Op.LT, 5)),
    ({"f|gte": "2.5"}, Match("f", Op.GTE, 2.5)),
    ({"f|fieldref": "g"}, Match("f", Op.FIELDREF, "g")),
    ({"f|fieldref|neq": "g"}, Not(Match("f", Op.FIELDREF, "g"))),
    ({"f|hour": 3}, Match("f", Op.TIMEPART, TimePart("hour", "eq", 3))),
    ({"f|month|lt": 4}, Match("f", Op.TIMEPART, TimePart("month", "lt", 4))),
    ({"f|base64": "abc"}, Match("f", Op.EQ, "YWJj")),
    ({"f|base64|contains": "abc"}, Match("f", Op.CONTAINS, "YWJj")),
    ({"f|utf16le|base64": "a"}, Match("f", Op.EQ, "YQA=")),
    ({"f|wide|base64": "a"}, Match("f", Op.EQ, "YQA=")),
    ({"f|utf16be|base64": "a"}, Match("f", Op.EQ, "AGE=")),
    ({"f|utf16|base64": "a"}, Match("f", Op.EQ, "//5hAA==")),
    ({"f|windash|contains": " -x"}, Or(tuple(Match("f", Op.CONTAINS, f" {d}x")
                                             for d in ("-", "/", "\u2013", "\u2014", "\u2015")))),
    ({"f|windash": "a-b"}, Match("f", Op.EQ, "a-b")),
]


@pytest.mark.parametrize("body,expected", SHAPES, ids=lambda x: repr(x)[:40])
def test_shapes(body, expected):
    assert selection("sel", body) == expected


def test_keywords_are_contains_anywhere():
    assert selection("k", ["a", "b*c"]) == Or((Match(None, Op.CONTAINS, "a"),
                                               Match(None, Op.GLOB, (S, "b", S, "c", S))))


def test_base64offset_spec_example():
    # The three shifted forms of "/bin/bash" as pySigma and the spec's generator give them.
    assert base64_offsets(b"/bin/bash") == ["L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"]


def test_expand_substitutes_every_value():
    got = selection("s", {"f|expand": "%x%"}, {"x": ["a", "b*"]})
    assert got == Or((Match("f", Op.EQ, "a"), Match("f", Op.STARTSWITH, "b")))


ERRORS = [
    ({"f|nope": 1}, "modifier", "unknown modifier 'nope'"),
    ({"f|contans": 1}, "modifier", "did you mean contains"),
    ({"f|contains|endswith": "a"}, "modifier", "cannot be combined"),
    ({"f|lt|gt": 1}, "modifier", "cannot be combined"),
    ({"f|re|contains": "a"}, "modifier", "cannot be combined"),
    ({"f|i": "a"}, "modifier", "only applies to re"),
    ({"f|utf16le": "a"}, "modifier", "followed by base64"),
    ({"f|base64": "a*"}, "modifier", "cannot encode wildcards"),
    ({"f|exists": "yes"}, "value", "true or false"),
    ({"f|lt": "x"}, "value", "not a number"),
    ({"f|hour": 1.5}, "value", "whole number"),
    ({"f|cidr": "nope"}, "value", "not a CIDR"),
    ({"f|re": "("}, "value", "invalid regular expression"),
    ({"f|expand": "%p%"}, "placeholder", "%p% has no values"),
    ({"f": {"a": 1}}, "value", "not a map"),
    ({"f": []}, "value", "empty list"),
    ({"f|windash": "-a -b -c -d -e -f"}, "value", "too many alternatives"),
]


@pytest.mark.parametrize("body,kind,fragment", ERRORS, ids=lambda x: repr(x)[:40])
def test_errors_name_the_key(body, kind, fragment):
    with pytest.raises(RuleError) as info:
        selection("sel", body)
    assert info.value.kind == kind
    assert fragment in info.value.message
    assert info.value.where == "detection.sel." + next(iter(body))

"""Condition text -> AST, and the errors users see for bad conditions."""
import pytest

from transpiler.condition import parse_condition
from transpiler.errors import ConditionError
from transpiler.nodes import AllOf, And, Not, OneOf, Or, Ref

A, B, C = Ref("a"), Ref("b"), Ref("c")

PARSES = [
    ("a", A),
    ("a and b", And((A, B))),
    ("a or b", Or((A, B))),
    ("a and b and c", And((A, B, C))),
    ("a or b and c", Or((A, And((B, C))))),
    ("a and b or c", Or((And((A, B)), C))),
    ("(a or b) and c", And((Or((A, B)), C))),
    ("not a", Not(A)),
    ("not a and b", And((Not(A), B))),
    ("not (a and b)", Not(And((A, B)))),
    ("not not a", Not(Not(A))),
    ("1 of sel_*", OneOf("sel_*")),
    ("any of sel_*", OneOf("sel_*")),
    ("all of sel_*", AllOf("sel_*")),
    ("1 of them", OneOf("them")),
    ("all of them", AllOf("them")),
    ("a and not 1 of filter_*", And((A, Not(OneOf("filter_*"))))),
    ("A AND NOT B", And((Ref("A"), Not(Ref("B"))))),
    ("  a\tand\nb  ", And((A, B))),
    ("((a))", A),
    ("android and notice and order", And((Ref("android"), Ref("notice"), Ref("order")))),
    ("sel-1.x and sel?", And((Ref("sel-1.x"), Ref("sel?")))),
]


@pytest.mark.parametrize("text,tree", PARSES)
def test_parses(text, tree):
    assert parse_condition(text) == tree


ERRORS = [
    # text, column, fragment of the message
    ("a and or b", 7, "found 'or'"),
    ("a and", 6, "found the end"),
    ("(a", 3, "expected ')'"),
    ("a b", 3, "found 'b'"),
    ("a & b", 3, "unexpected character '&'"),
    ("sel | count() > 5", 5, "correlation rule"),
    ("", None, "empty"),
    ("1 of", 5, "found the end"),
    ("all them", 5, "'of'"),
]


@pytest.mark.parametrize("text,col,fragment", ERRORS)
def test_errors(text, col, fragment):
    with pytest.raises(ConditionError) as info:
        parse_condition(text)
    assert info.value.col == col
    assert fragment in info.value.message


def test_caret_points_at_the_column():
    with pytest.raises(ConditionError) as info:
        parse_condition("sel and or filter")
    lines = str(info.value).splitlines()
    assert lines[0] == "col 9: expected '(' or '1 of' or 'all of' or 'not' or a search identifier, found 'or'"
    assert lines[2].index("^") - 4 == 8

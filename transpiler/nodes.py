"""The data types every layer shares: the condition AST and the query IR.

The parser returns a Condition (Ref/OneOf/AllOf/Not/And/Or); `rule.py` replaces its
leaves by selection subtrees, so the evaluator, the backends and the analysis only ever
see a Query: And/Or/Not over Match leaves. No Sigma syntax is left inside a Match.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Union


class Op(str, Enum):
    """What a Match tests. The value is also the evaluator's table key, the Jinja macro
    name in every templates/<backend>/match.j2 and the word used in golden cases."""

    EQ = "eq"                    # value: str | int | float | bool
    CONTAINS = "contains"        # value: str
    STARTSWITH = "startswith"    # value: str
    ENDSWITH = "endswith"        # value: str
    GLOB = "glob"                # value: tuple of str parts and Wild tokens (mixed wildcards)
    RE = "re"                    # value: regex text, flags inline as a leading (?ims)
    CIDR = "cidr"                # value: network text, e.g. "10.0.0.0/8" or "2001:db8::/32"
    LT = "lt"                    # value: int | float
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    EXISTS = "exists"            # value: True (present and not null) | False
    NULL = "null"                # value: None; field missing or null
    FIELDREF = "fieldref"        # value: the other field's name; equal values
    TIMEPART = "timepart"        # value: TimePart(part, cmp, number)

    def __str__(self) -> str:
        return self.value


class Wild(Enum):
    """A wildcard token inside a GLOB value: `*` any run, `?` one character."""

    STAR = "*"
    ONE = "?"

    def __repr__(self) -> str:
        return f"Wild.{self.name}"


@dataclass(frozen=True)
class TimePart:
    """`field|hour|gte: 22`: take the hour of a timestamp, compare it with a number."""

    part: str      # minute | hour | day | week | month | year
    cmp: str       # eq | lt | lte | gt | gte
    number: int


Value = Union[str, int, float, bool, None, tuple, TimePart]


@dataclass(frozen=True)
class Match:
    """One normalized predicate. field None is a keyword (full-text) search.

    Equality and hashing see the value's type too: Python has True == 1 == 1.0, but the
    rule values `true`, `1` and `1.0` have different texts ("true", "1", "1.0"), and the
    evaluator's compile cache, the SQL render cache and value de-duplication key on Matches."""

    field: str | None
    op: Op
    value: Value
    cased: bool = False
    value_type: type = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "value_type", type(self.value))


@dataclass(frozen=True)
class Ref:
    """A search identifier in a condition: `selection`."""

    name: str
    col: int = field(default=0, compare=False)


@dataclass(frozen=True)
class OneOf:
    """`1 of filter_*`, `any of them`."""

    pattern: str
    col: int = field(default=0, compare=False)


@dataclass(frozen=True)
class AllOf:
    """`all of selection_*`, `all of them`."""

    pattern: str
    col: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Not:
    arg: object


@dataclass(frozen=True)
class And:
    args: tuple


@dataclass(frozen=True)
class Or:
    args: tuple


Condition = Union[Ref, OneOf, AllOf, Not, And, Or]
Query = Union[Match, Not, And, Or]


def and_(args) -> Query:
    """n-ary And, flattened; a single argument stands alone."""
    return _joined(And, args)


def or_(args) -> Query:
    """n-ary Or, flattened; a single argument stands alone."""
    return _joined(Or, args)


def _joined(kind, args):
    flat = []
    for arg in args:
        flat.extend(arg.args if type(arg) is kind else (arg,))
    if not flat:
        raise ValueError(f"empty {kind.__name__}")
    return flat[0] if len(flat) == 1 else kind(tuple(flat))


def walk(query: Query):
    """Every node of a query, depth first, parents before children."""
    yield query
    if isinstance(query, Not):
        yield from walk(query.arg)
    elif isinstance(query, (And, Or)):
        for arg in query.args:
            yield from walk(arg)

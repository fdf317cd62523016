"""The reference evaluator: does a Query select a JSON event? The oracle for every backend.

Semantics (README "Matching semantics" says the same for users):
- A field name resolves as a literal key and as a dotted path into nested objects
  (`userIdentity.sessionContext.sessionIssuer.type`); lists along the way are entered,
  so a field has zero or more values. null values are not values.
- Every value is compared through its text form: strings as they are, true/false,
  numbers as JSON writes them (22, 1.5), objects as compact JSON text.
- Strings compare case-insensitively (str.lower on both sides) unless the Match is cased.
- A positive predicate holds if any value satisfies it; a field without values satisfies
  none, so `not` of it holds (Sigma: not matches when the field is missing).
- Keywords (field None) look at every string value anywhere in the event.
- lt/lte/gt/gte compare numbers: JSON numbers, or strings that are plain decimal numbers.
- Regexes are searched (not anchored), case-sensitive unless (?i), on RE2 (regex.py).

Queries are compiled once into closures, so matching many events costs one call each.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import math
import operator
import re
from functools import lru_cache

from .nodes import And, Match, Not, Op, Or, Query
from .regex import compile_regex, glob_regex, searchable

_CMP = {"eq": operator.eq, "lt": operator.lt, "lte": operator.le, "gt": operator.gt, "gte": operator.ge}
# ASCII digits and blanks only, as SQL and KQL read numbers.
_NUMBER = re.compile(r"[ \t\n\f\r]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?[ \t\n\f\r]*")


def matches(query: Query, event: dict) -> bool:
    """True if the query selects the event."""
    return compile_query(query)(event)


@lru_cache(maxsize=8192)
def compile_query(query: Query):
    """The query as a function event -> bool."""
    if isinstance(query, Match):
        return _compile_match(query)
    if isinstance(query, Not):
        inner = compile_query(query.arg)
        return lambda e: not inner(e)
    if isinstance(query, And):
        parts = tuple(compile_query(a) for a in query.args)
        return lambda e: all(p(e) for p in parts)
    if isinstance(query, Or):
        parts = tuple(compile_query(a) for a in query.args)
        return lambda e: any(p(e) for p in parts)
    raise TypeError(f"not a query node: {query!r}")


# --- field values ---------------------------------------------------------------------

def field_values(event, name: str) -> list:
    """The values of a field: literal key or dotted path, lists entered, nulls dropped."""
    out = []
    _resolve(event, name.split("."), out)
    return out


def _resolve(obj, parts, out):
    if not parts:
        _flatten(obj, out)
    elif isinstance(obj, dict):
        # The longest literal key first: {"a.b": 1} and {"a": {"b": 1}} both answer a.b.
        for i in range(len(parts), 0, -1):
            key = ".".join(parts[:i]) if i > 1 else parts[0]
            if key in obj:
                _resolve(obj[key], parts[i:], out)
    elif isinstance(obj, list):
        for item in obj:
            _resolve(item, parts, out)


def _flatten(value, out):
    if isinstance(value, list):
        for item in value:
            _flatten(item, out)
    elif value is not None:
        out.append(value)


def _getter(name: str):
    if "." not in name:
        def get(event):
            value = event.get(name)
            if value is None:
                return ()
            if isinstance(value, list):
                out = []
                _flatten(value, out)
                return out
            return (value,)
        return get
    parts = name.split(".")

    def get_path(event):
        out = []
        _resolve(event, parts, out)
        return out
    return get_path


def text(value) -> str:
    """A value's text form: what string predicates compare."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# Case-insensitive comparison lowers each character on its own (Unicode's simple lowercase
# mapping), as SQL's lower() does: str.lower() also maps İ to "i" + U+0307 and a final Σ to ς.
_SIMPLE_LOWER = str.maketrans({"\u0130": "i", "\u03a3": "\u03c3"})


def fold(s: str) -> str:
    """A text as case-insensitive comparisons see it."""
    return s.lower() if s.isascii() else s.translate(_SIMPLE_LOWER).lower()


# What a time is (README "Matching semantics"), once every Z is +00:00: between blanks (what
# str.isspace() takes), a date YYYY-MM-DD or YYYYMMDD from year 0001, then optionally any one
# character and a clock: hh:mm:ss or hhmmss with an optional fraction ([.,] digits), or hh,
# hh:mm, hhmm; then optionally an offset +hh, +hh:mm or +hhmm (or -), hours under 24. Groups:
# date, clock with seconds, fraction, shorter clock, sign, offset. Python's fromisoformat reads
# more (week dates, offsets with seconds, a fraction after minutes); SQL engines read this.
_BLANK = r"[\t-\r\x1c-\x20\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
_YEAR = r"(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"
ISO_8601 = (rf"^{_BLANK}*({_YEAR}(?:-[0-9]{{2}}-[0-9]{{2}}|[0-9]{{4}}))"
            r"(?:(?s:.)(?:([0-9]{2}(?::[0-9]{2}:[0-9]{2}|[0-9]{4}))(?:[.,]([0-9]+))?|([0-9]{2}(?::?[0-9]{2})?))"
            rf"(?:([+-])((?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?))?)?{_BLANK}*$")


def number(value):
    """A value as a number, or None: JSON numbers and plain decimal strings only."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return float(value)
    return None


def strings(obj, out):
    """Every string value anywhere inside obj (for keywords)."""
    if isinstance(obj, str):
        out.append(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            strings(v, out)
    elif isinstance(obj, list):
        for v in obj:
            strings(v, out)
    return out


# --- predicates -------------------------------------------------------------------------

def _compile_match(m: Match):
    test = _PREDICATES[m.op](m)
    if m.op is Op.FIELDREF:
        return test
    if m.field is None:
        return lambda e: any(test(s) for s in strings(e, []))
    get = _getter(m.field)
    if m.op in (Op.EXISTS, Op.NULL):
        return lambda e: test(get(e))
    return lambda e: any(test(v) for v in get(e))


def _folded(m: Match):
    """(the rule value's text, how to read an event value) with case folding unless cased.
    Numbers and booleans are their text too: `true` is "true", which also matches "True"."""
    if m.cased:
        return text(m.value), text
    return fold(text(m.value)), lambda v: fold(text(v))


def _eq(m):
    want, read = _folded(m)
    return lambda v: read(v) == want


def _contains(m):
    want, read = _folded(m)
    return lambda v: want in read(v)


def _startswith(m):
    want, read = _folded(m)
    return lambda v: read(v).startswith(want)


def _endswith(m):
    want, read = _folded(m)
    return lambda v: read(v).endswith(want)


def _glob(m):
    pattern = compile_regex(glob_regex(m.value, fold=None if m.cased else fold))
    read = text if m.cased else (lambda v: fold(text(v)))
    return lambda v: pattern.search(searchable(read(v))) is not None


def _re(m):
    pattern = compile_regex(m.value)
    return lambda v: pattern.search(searchable(text(v))) is not None


def _cidr(m):
    network = ipaddress.ip_network(m.value)

    def test(v):
        try:
            return ipaddress.ip_address(text(v)) in network
        except ValueError:
            return False
    return test


def _compare(m):
    # As 64-bit floats, as every engine compares (detection keeps the limit within them).
    cmp, limit = _CMP[m.op.value], float(m.value)

    def test(v):
        n = number(v)
        return n is not None and cmp(double(n), limit)
    return test


def double(n) -> float:
    """A number as a 64-bit float; an integer beyond the float range is infinite, as SQL's
    CAST(... AS DOUBLE) and Java's parseDouble read its text."""
    try:
        return float(n)
    except OverflowError:
        return math.inf if n > 0 else -math.inf


def _exists(m):
    return (lambda values: len(values) > 0) if m.value else (lambda values: len(values) == 0)


def _null(m):
    return lambda values: len(values) == 0


def _fieldref(m):
    left, right = _getter(m.field), _getter(m.value)
    read = text if m.cased else (lambda v: fold(text(v)))

    def test(e):
        others = {read(v) for v in right(e)}
        return any(read(v) in others for v in left(e))
    return test


def _timepart(m):
    part, cmp, limit = m.value.part, _CMP[m.value.cmp], m.value.number

    def test(v):
        moment = timestamp(v)
        moment = moment and in_utc(moment)
        return moment is not None and cmp(time_part(moment, part), limit)
    return test


# CloudTrail's own form of a time (UTC, to the second or finer), which ISO_8601 reads but for
# year 0000 (no date for fromisoformat either).
_CLOUDTRAIL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z")


def timestamp(value):
    """A text of the ISO_8601 grammar as a datetime (aware if it has an offset), or None."""
    if not isinstance(value, str):
        return None
    if _CLOUDTRAIL_TIME.fullmatch(value):     # the same answer without RE2: a fifth of the time
        try:
            return datetime.datetime.fromisoformat(value[:-1] + "+00:00")
        except ValueError:    # February 30, hour 24, year 0000, ...
            return None
    return _iso_8601(value)


def _iso_8601(value: str):
    value = value.replace("Z", "+00:00")
    if compile_regex(ISO_8601).fullmatch(searchable(value)) is None:
        return None
    try:
        return datetime.datetime.fromisoformat(value.strip())
    except ValueError:    # February 30, hour 24, ...
        return None


def in_utc(moment: datetime.datetime):
    """A time in UTC (a time without offset is UTC already), or None beyond year 1..9999."""
    if moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(datetime.timezone.utc)
    except OverflowError:
        return None


def time_part(moment: datetime.datetime, part: str) -> int:
    if part == "week":
        return moment.isocalendar()[1]
    return getattr(moment, part)


_PREDICATES = {
    Op.EQ: _eq, Op.CONTAINS: _contains, Op.STARTSWITH: _startswith, Op.ENDSWITH: _endswith,
    Op.GLOB: _glob, Op.RE: _re, Op.CIDR: _cidr, Op.LT: _compare, Op.LTE: _compare,
    Op.GT: _compare, Op.GTE: _compare, Op.EXISTS: _exists, Op.NULL: _null,
    Op.FIELDREF: _fieldref, Op.TIMEPART: _timepart,
}

"""One search identifier (a YAML map, list of maps, or keyword list) -> Query IR.

The ONLY place that understands Sigma modifiers, wildcards and escapes. Afterwards
`*foo*` is Match(CONTAINS, "foo"), `|all` is an And, `|windash`, `|base64offset` and
`|expand` are Ors of plain values, and only truly mixed patterns stay a GLOB whose value
is a tuple of literal parts and Wild tokens.

Values pass through the modifiers left to right, as the spec reads: `|utf16le|base64offset|contains`
encodes, then shifts, then wraps in wildcards.
"""
from __future__ import annotations

import base64
import datetime
import ipaddress
import math
import re
from functools import lru_cache
from itertools import product

from .errors import RuleError
from .evaluate import text
from .regex import compile_regex
from .nodes import Match, Not, Op, TimePart, Wild, and_, or_

MODIFIERS = {
    "contains", "startswith", "endswith", "all", "exists", "cased", "neq", "windash",
    "re", "i", "m", "s", "base64", "base64offset", "utf16le", "utf16be", "utf16", "wide",
    "lt", "lte", "gt", "gte", "minute", "hour", "day", "week", "month", "year",
    "cidr", "expand", "fieldref",
}
_POSITION = ("contains", "startswith", "endswith")
_COMPARE = ("lt", "lte", "gt", "gte")
_TIME = ("minute", "hour", "day", "week", "month", "year")
_ENCODING = ("utf16le", "utf16be", "utf16", "wide")
_RE_FLAGS = ("i", "m", "s")
# Windows accepts these for a leading option dash (spec: windash).
WINDASHES = ("-", "/", "\u2013", "\u2014", "\u2015")
_WINDASH_AT = re.compile(r"\B[-/\u2013\u2014\u2015]\b")
# With |expand, `%name%` is a placeholder and `\%` a plain percent sign (spec: Placeholders);
# `\\`, `\*` and `\?` stay for the wildcard parser, so `\\%x%` is a backslash, then %x%.
_PLACEHOLDER = re.compile(r"\\[\\*?%]|%([A-Za-z0-9_.\-]+)%")
# Guards against one value expanding into millions of alternatives (a bounded-work promise).
MAX_ALTERNATIVES = 10_000
MAX_WINDASH_VARIANTS = 5 ** 5


class _Text(tuple):
    """A Sigma string after wildcard parsing: literal str chunks and Wild tokens."""


class _Bytes(bytes):
    """A string after a utf16 modifier: must still be base64-encoded."""


def selection(name: str, body, placeholders=None) -> object:
    """The Query for one search identifier `name` of a rule's detection."""
    where = f"detection.{name}"
    if isinstance(body, dict):
        return _map(body, where, placeholders)
    if isinstance(body, list):
        if not body:
            raise RuleError("an empty list matches nothing", where=where, kind="value")
        if all(isinstance(item, dict) for item in body):
            return or_([_map(item, f"{where}[{i}]", placeholders) for i, item in enumerate(body)])
        if any(isinstance(item, (dict, list)) for item in body):
            raise RuleError("a list must hold either maps (field selections) or plain values (keywords)",
                            where=where, kind="structure")
        return _field(None, [], body, where, placeholders)
    if isinstance(body, (str, int, float)) and not isinstance(body, bool):
        return _field(None, [], [body], where, placeholders)
    raise RuleError(f"a search identifier must be a map, a list of maps or a list of values, "
                    f"not {_kind(body)}", where=where, kind="structure")


def _map(body: dict, where: str, placeholders) -> object:
    if not body:
        raise RuleError("an empty map matches everything; say what to match", where=where, kind="structure")
    parts = []
    for key, value in body.items():
        if not isinstance(key, str):
            raise RuleError(f"field name {key!r} is not a string", where=where, kind="structure")
        name, *mods = key.split("|")
        values = value if isinstance(value, list) else [value]
        parts.append(_field(name or None, mods, values, f"{where}.{key}", placeholders))
    return and_(parts)


def _field(field, mods: list, values: list, where: str, placeholders) -> object:
    for mod in mods:
        if mod not in MODIFIERS:
            close = [m for m in MODIFIERS if m.startswith(mod[:3])] if mod else []
            hint = f" (did you mean {', '.join(sorted(close))}?)" if close else ""
            raise RuleError(f"unknown modifier {mod!r}{hint}", where=where, kind="modifier")
    try:
        return _build(field, mods, values, placeholders)
    except RuleError as e:
        raise e.located(where=where) from None


def _build(field, mods, values, placeholders):
    mods = tuple(mods)
    mset = _check_combination(mods)
    if not values:
        raise RuleError("an empty list matches nothing", kind="value")
    cased = "cased" in mset
    negate = "neq" in mset
    join = and_ if "all" in mset else or_

    if "exists" in mset:
        if len(values) != 1 or not isinstance(values[0], bool):
            raise RuleError("exists takes true or false", kind="value")
        return Match(field, Op.EXISTS, values[0])
    if "fieldref" in mset:
        refs = [_need_str(v, "fieldref takes a field name") for v in values]
        matches = [Match(field, Op.FIELDREF, ref, cased) for ref in refs]
        return _negate_each(matches, join, negate)

    # Each value gives its alternatives (windash, base64offset, expand: any one will do); with
    # |all every value must match, so the values' Ors are ANDed. A repeated value adds nothing.
    plain = _plain_op(mods, field is None)
    alternatives = [[Match(field, plain, value, cased)] if plain is not None and _plain(value)
                    else list(dict.fromkeys(_matches(field, mods, mset, value, cased, placeholders)))
                    for value in values]
    if join is or_:
        matches = list(dict.fromkeys(m for alts in alternatives for m in alts))
    else:
        matches = list(dict.fromkeys(or_(alts) for alts in alternatives))
    return _negate_each(matches, join, negate)


def _negate_each(matches, join, negate):
    if negate:
        # neq: the field differs from every value (spec: "different from the specified values").
        return Not(or_(matches)) if join is or_ else Not(and_(matches))
    return join(matches)


def _plain(value) -> bool:
    """A non-empty string with no wildcard and no escape: no `*`, `?` or two backslashes (a
    lone backslash is itself)."""
    return (type(value) is str and value != "" and "*" not in value and "?" not in value
            and "\\\\" not in value)


@lru_cache(maxsize=1024)
def _plain_op(mods: tuple, keyword: bool):
    """The Op a _plain value takes under `mods`, where _matches would only parse and classify
    it: the common case, done directly (tests/test_detection_fast.py checks they agree).
    None when the modifiers transform values (or are wrong: _matches says how)."""
    if not set(mods) <= {"contains", "startswith", "endswith", "cased", "all", "neq"}:
        return None
    if keyword:
        return Op.CONTAINS
    position = [m for m in mods if m in _POSITION]
    if len(position) > 1:
        return None
    return {"contains": Op.CONTAINS, "startswith": Op.STARTSWITH, "endswith": Op.ENDSWITH}.get(
        position[0] if position else None, Op.EQ)


@lru_cache(maxsize=1024)
def _check_combination(mods: tuple) -> frozenset:
    """The set of `mods`, if they can be combined; RuleError if not."""
    mset = frozenset(mods)

    def clash(group):
        found = [m for m in mods if m in group]
        if len(set(found)) > 1:
            raise RuleError(f"modifiers {found[0]!r} and {found[1]!r} cannot be combined", kind="modifier")

    clash(_POSITION + ("re", "cidr") + _COMPARE + ("exists", "fieldref"))
    clash(_COMPARE)
    clash(_TIME)
    clash(("base64", "base64offset"))
    clash(_ENCODING)
    if "exists" in mset and len(mset) > 1:
        raise RuleError("exists cannot be combined with other modifiers", kind="modifier")
    if "fieldref" in mset and mset - {"fieldref", "neq", "cased", "all"}:
        raise RuleError("fieldref can only be combined with neq and cased", kind="modifier")
    for flag in _RE_FLAGS:
        if flag in mset and "re" not in mset:
            raise RuleError(f"modifier {flag!r} only applies to re", kind="modifier")
    if "re" in mset and mset - {"re", "all", "neq", "cased", *_RE_FLAGS}:
        raise RuleError("re cannot be combined with value modifiers", kind="modifier")
    if "cidr" in mset and mset - {"cidr", "all", "neq"}:
        raise RuleError("cidr cannot be combined with value modifiers", kind="modifier")
    for enc in _ENCODING:
        if enc in mods:
            after = mods[mods.index(enc) + 1:]
            if not any(m in ("base64", "base64offset") for m in after):
                raise RuleError(f"{enc} must be followed by base64 or base64offset", kind="modifier")
    if mset & set(_TIME) and mset - {*_TIME, *_COMPARE, "neq", "all"}:
        raise RuleError("time modifiers only combine with lt, lte, gt, gte and neq", kind="modifier")
    return mset


def _matches(field, mods, mset, value, cased, placeholders) -> list:
    if value is None:
        if mset - {"neq", "all", "cased"}:
            raise RuleError("null cannot take value modifiers", kind="value")
        return [Match(field, Op.NULL, None)]
    if isinstance(value, (dict, list)):
        raise RuleError(f"a value must be a string, number or boolean, not {_kind(value)}", kind="value")
    if isinstance(value, (datetime.date, datetime.datetime)):
        value = value.isoformat()   # YAML reads unquoted 2024-01-01 as a date

    time_part = next((m for m in mods if m in _TIME), None)
    if time_part:
        cmp = next((m for m in mods if m in _COMPARE), "eq")
        return [Match(field, Op.TIMEPART, TimePart(time_part, cmp, _need_int(value)))]
    compare = next((m for m in mods if m in _COMPARE), None)
    if compare:
        return [Match(field, Op(compare), _need_number(value))]
    if "re" in mset:
        return [Match(field, Op.RE, _regex(_need_str(value, "re takes a string"), mods))]
    if "cidr" in mset:
        return [Match(field, Op.CIDR, _network(value))]
    if isinstance(value, (int, float)) and field is not None and not (mset - {"neq", "all", "cased"}):
        # A number or boolean alone keeps its type (a KQL bool column compares it as a bool);
        # it still means its text, as with every other modifier below.
        return [Match(field, Op.EQ, value, cased)]

    raw = [text(value)]
    if "expand" in mset:
        raw = _expand(raw[0], placeholders)
    texts = [_parse_wildcards(r) for r in raw]
    for mod in mods:
        texts = _apply(mod, texts)
    if field is None:   # keywords: found anywhere in a string of the event
        texts = [_Text((Wild.STAR, *t, Wild.STAR)) for t in texts]
    return [_classify(field, t, cased) for t in _unique(texts)]


def _apply(mod, texts):
    if mod == "windash":
        return [v for t in texts for v in _windash(t)]
    if mod in ("utf16le", "wide"):
        return [_Bytes(_literal(t, mod).encode("utf-16-le")) for t in texts]
    if mod == "utf16be":
        return [_Bytes(_literal(t, mod).encode("utf-16-be")) for t in texts]
    if mod == "utf16":
        return [_Bytes(b"\xff\xfe" + _literal(t, mod).encode("utf-16-le")) for t in texts]
    if mod == "base64":
        return [_Text((base64.b64encode(_bytes(t, mod)).decode("ascii"),)) for t in texts]
    if mod == "base64offset":
        return [_Text((v,)) for t in texts for v in base64_offsets(_bytes(t, mod))]
    if mod == "contains":
        return [_Text((Wild.STAR, *t, Wild.STAR)) for t in texts]
    if mod == "startswith":
        return [_Text((*t, Wild.STAR)) for t in texts]
    if mod == "endswith":
        return [_Text((Wild.STAR, *t)) for t in texts]
    return texts   # all, cased, neq, expand: handled by the caller


def base64_offsets(data: bytes) -> list[str]:
    """The three base64 forms of `data` at byte offsets 0, 1 and 2 of an enclosing string,
    cut to the characters that do not depend on the neighbouring bytes (spec: base64offset)."""
    starts = (0, 2, 3)
    ends = (None, -3, -2)
    out = []
    for shift in range(3):
        encoded = base64.b64encode(b" " * shift + data).decode("ascii")
        out.append(encoded[starts[shift]:ends[(len(data) + shift) % 3]])
    return out


def _windash(text):
    """Every combination of the five dashes at each option dash (a dash that starts a word)."""
    slots = []     # (part index, offset) of each dash to permute
    for i, part in enumerate(text):
        if isinstance(part, str):
            slots.extend((i, m.start()) for m in _WINDASH_AT.finditer(part))
    if not slots:
        return [text]
    if len(WINDASHES) ** len(slots) > MAX_WINDASH_VARIANTS:
        raise RuleError(f"windash on {len(slots)} dashes makes too many alternatives", kind="value")
    out = []
    for choice in product(WINDASHES, repeat=len(slots)):
        parts = list(text)
        for (i, offset), dash in sorted(zip(slots, choice), reverse=True):
            s = parts[i]
            parts[i] = s[:offset] + dash + s[offset + 1:]
        out.append(_Text(parts))
    return out


def _parse_wildcards(raw: str) -> _Text:
    """Sigma string -> parts. `*` and `?` are wildcards; `\\*`, `\\?`, `\\\\` are the literal
    characters; a backslash before anything else is itself (spec: Wildcards / Escaping)."""
    if not any(c in raw for c in "*?\\"):
        return _Text((raw,) if raw else ())    # the common case: nothing to interpret
    parts, buf, i = [], [], 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw) and raw[i + 1] in "*?\\":
            buf.append(raw[i + 1])
            i += 2
            continue
        if c in "*?":
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append(Wild.STAR if c == "*" else Wild.ONE)
        else:
            buf.append(c)
        i += 1
    if buf:
        parts.append("".join(buf))
    return _Text(parts)


def _classify(field, text, cased) -> Match:
    """Name the pattern's shape: eq, contains, startswith, endswith, exists or glob."""
    parts = _merge(text)
    stars = [p is Wild.STAR for p in parts]
    literals = [p for p in parts if isinstance(p, str)]
    if Wild.ONE not in parts and len(literals) <= 1:
        lit = literals[0] if literals else ""
        if not any(stars):
            return Match(field, Op.EQ, lit, cased)
        if not literals:
            # `*` alone: any value at all, i.e. the field is present and not null.
            return Match(field, Op.EXISTS, True) if field else Match(None, Op.GLOB, (Wild.STAR,), cased)
        if stars[0] and stars[-1]:
            return Match(field, Op.CONTAINS, lit, cased)
        if stars[-1]:
            return Match(field, Op.STARTSWITH, lit, cased)
        return Match(field, Op.ENDSWITH, lit, cased)
    return Match(field, Op.GLOB, tuple(parts), cased)


def _merge(text) -> list:
    """Join adjacent literals and collapse runs of `*`."""
    out = []
    for p in text:
        if isinstance(p, str):
            if not p:
                continue
            if out and isinstance(out[-1], str):
                out[-1] += p
                continue
        elif p is Wild.STAR and out and out[-1] is Wild.STAR:
            continue
        out.append(p)
    return out


def _expand(raw: str, placeholders) -> list[str]:
    """Every value `raw` stands for: each placeholder replaced by each of its values (which
    are Sigma strings themselves: `srv*` is a pattern), `\\%` by a plain `%`."""
    choices, last = [], 0     # literal text and placeholder values, alternately
    for m in _PLACEHOLDER.finditer(raw):
        if m.group(1) is None and m.group() != "\\%":
            continue          # a wildcard escape: the wildcard parser reads it
        choices.append([raw[last:m.start()] + ("%" if m.group(1) is None else "")])
        last = m.end()
        if m.group(1) is not None:
            choices.append(_placeholder_values(m.group(1), placeholders))
    choices.append([raw[last:]])
    total = 1
    for c in choices:
        total *= len(c)
    if total > MAX_ALTERNATIVES:
        raise RuleError(f"the placeholders expand into {total} values (limit {MAX_ALTERNATIVES})", kind="value")
    return ["".join(combo) for combo in product(*choices)]


def _placeholder_values(name: str, placeholders) -> list[str]:
    values = (placeholders or {}).get(name)
    if not values:
        raise RuleError(f"placeholder %{name}% has no values; pass --placeholders FILE "
                        f"mapping {name} to a list of values", kind="placeholder")
    return [values] if isinstance(values, str) else [text(v) for v in values]


def _regex(pattern: str, mods) -> str:
    flags = "".join(f for f in _RE_FLAGS if f in mods)
    try:
        compile_regex(pattern)
    except ValueError as e:
        raise RuleError(f"invalid regular expression: {e}", kind="value") from None
    if not flags:
        return pattern
    lead = re.match(r"\(\?([a-zA-Z]+)\)", pattern)   # merge with the pattern's own leading flags
    if lead:
        flags = "".join(sorted(set(flags) | set(lead.group(1))))
        pattern = pattern[lead.end():]
    return f"(?{flags}){pattern}"


def _network(value) -> str:
    try:
        return str(ipaddress.ip_network(str(value).strip(), strict=False))
    except ValueError:
        raise RuleError(f"{value!r} is not a CIDR network", kind="value") from None


def _literal(text, mod) -> str:
    if any(isinstance(p, Wild) for p in text):
        raise RuleError(f"{mod} cannot encode wildcards; apply contains/startswith/endswith after it",
                        kind="modifier")
    return "".join(text)


def _bytes(text, mod) -> bytes:
    return bytes(text) if isinstance(text, _Bytes) else _literal(text, mod).encode("utf-8")


def _unique(texts):
    seen, out = set(), []
    for t in texts:
        key = tuple(t)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def _need_str(value, message) -> str:
    if not isinstance(value, str):
        raise RuleError(message, kind="value")
    return value


def _need_number(value):
    """A comparison's number. Every engine compares 64-bit floats (the evaluator too), so the
    number must be one: finite, and an integer beyond 2**53 becomes the float nearest to it
    (the engines would round it so; written as an integer it can overflow a SQL literal)."""
    if isinstance(value, bool):
        raise RuleError("a number is needed, not a boolean", kind="value")
    number = value
    if not isinstance(value, (int, float)):
        try:
            number = int(value)
        except (TypeError, ValueError):
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise RuleError(f"{value!r} is not a number", kind="value") from None
    try:
        double = float(number)
    except OverflowError:
        double = math.inf
    if not math.isfinite(double):
        shown = str(value) if len(str(value)) <= 40 else str(value)[:37] + "..."
        raise RuleError(f"{shown} is not a finite 64-bit floating-point number, which engines compare with",
                        kind="value")
    return number if isinstance(number, float) or abs(number) <= 2 ** 53 else double


# Every time part lies in 0..9999 (a year at most): a number beyond this bound compares as
# the bound does, and stays a small SQL literal.
_TIME_BOUND = 10 ** 6


def _need_int(value) -> int:
    number = _need_number(value)
    if number != int(number):
        raise RuleError(f"{value!r} is not a whole number", kind="value")
    return max(-_TIME_BOUND, min(_TIME_BOUND, int(number)))


def _kind(value) -> str:
    return {dict: "a map", list: "a list", type(None): "null"}.get(type(value), type(value).__name__)

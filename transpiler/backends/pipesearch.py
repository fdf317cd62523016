"""Logpresso-style pipe search: `table T | search EXPR | eval ... | rename ... | fields ...`.

Every word of the query language is in templates/pipesearch/; this file resolves fields,
escapes values and picks the per-logsource enrichment. The engine facts it relies on are in
shared/research/logpresso.md (vendor docs https://docs.logpresso.com/en/query/query-syntax and
the source of Araqne LogDB, the Apache-licensed engine Logpresso grew from, tagged [S] there):
- a string literal is "..." and knows only the escapes \\ and \" (ExpressionParser
  findClosingQuote); before parsing, the expression is NFC-normalised, look-alike characters
  (dashes, smart quotes, U+2223 ...) are rewritten to ASCII and tabs/line breaks become spaces,
  inside literals too. Values holding such characters go through match() with \\uXXXX escapes.
- `==` against a string constant is case-sensitive and reads `*` as a wildcard; `?` is literal.
- match() is java.util.regex, unanchored (find()).

Correlations (Sigma v2.1, transpiler/correlation.py): none of the types is supported, each
for a named reason (CORRELATION_GAPS). Every type is defined on a sliding window that ends
at each event (t - timespan <= time <= t, per group), or for temporal_ordered on a chain
state carried from event to event. Logpresso's documented aggregation commands are `stats`
(a whole group at once) and `timechart span=` (fixed buckets: two events a second apart can
fall into different buckets, so counts differ from a window's); `sort`, `eval` and `search`
work on one row at a time, and `join` is documented for subquery rows with unique keys only.
Nothing documented computes a value per event over the events before it, so a query could
only approximate the semantics; the rules are reported unsupported instead. Filters need no
support of their own: they are ANDed into the rules they name before conversion.
"""
from __future__ import annotations

import ipaddress
import re
import unicodedata
from decimal import Decimal

from ..errors import RuleError, Unsupported
from ..evaluate import fold, text
from ..nodes import And, Match, Not, Op, Or, Wild
from ..regex import glob_regex, java_regex
from .base import Backend, covers_ipv4_mapped

# A field name written bare: one token for ExpressionParser (no operator, quote, bracket,
# comma or space), not a keyword, not a number. Anything else goes through field("...").
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_KEYWORDS = {"and", "or", "not", "from", "union", "true", "false", "null"}
# Characters ExpressionParser.normalizeQueryStr rewrites (its UniToAsciiMap), plus U+00AB..
# U+00F7 that the same map lists (skipped today only by its `c < 0x128` slip).
_REWRITTEN = set(
    "\u00ab\u00ad\u00b4\u00bb\u00f7\u01c0\u01c3\u02b9\u02ba\u02bc\u02c4\u02c6\u02c8\u02cb\u02cd"
    "\u02dc\u0300\u0301\u0302\u0303\u030b\u030e\u0331\u0332\u0338\u0589\u05c0\u05c3\u066a\u066d"
    "\u200b\u2010\u2011\u2012\u2013\u2014\u2015\u2016\u2017\u2018\u2019\u201a\u201b\u201c\u201d"
    "\u201e\u201f\u2032\u2033\u2034\u2035\u2036\u2037\u2038\u2039\u203a\u203d\u2044\u204e\u2052"
    "\u2053\u2060\u20e5\u2212\u2215\u2216\u2217\u2223\u2236\u223c\u2264\u2265\u2266\u2267\u2303"
    "\u2329\u232a\u266f\u2731\u2758\u2762\u27e6\u27e8\u27e9\u2983\u2984\u3003\u3008\u3009\u301b"
    "\u301c\u301d\u301e\ufeff")
# Control, format, separator, surrogate and unassigned characters are never written raw.
_RAW_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
# `# ` and `# [` start comments in a query; `\"` after a backslash fools the command splitter
# (QueryTokenizer.parseCommands counts at most one escaping backslash). Regexes spell them out.
_HAZARD = re.compile(r'#[\s\[]|\\"')
_REGEX_META = set("\\.[]{}()*+?^$|")
_STRING_OPS = (Op.EQ, Op.CONTAINS, Op.STARTSWITH, Op.ENDSWITH)
# evaluate.number, in Java: ASCII digits, and blanks without \x0B (which Java's \s takes).
_NUMERIC = r"^[\t\n\f\r ]*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?[\t\n\f\r ]*\z"


class PipeSearch(Backend):
    name = "pipesearch"
    default_options = {"table": None, "duration": None}

    def filters(self) -> dict:
        return {"field": self.field, "lit": literal, "plain": plain, "re_lit": regex_literal,
                "java_re": java_re, "glob_re": glob_re, "want": want, "caseless": caseless,
                "num": number, "network": network, "pattern": pattern, "char_classes": char_classes}

    def template_globals(self) -> dict:
        return {"enrichment": self.enrichment, "NUMERIC": _NUMERIC}

    def table(self) -> str:
        name = super().table()
        if not re.fullmatch(r"(\w+:)?[\w*.-]+", name):
            raise RuleError(f"pipesearch: {name!r} is not a table name", kind="option")
        duration = self.options.get("duration")
        if duration and not re.fullmatch(r"\d+(mon|[wdhms])", str(duration)):
            raise RuleError(f"pipesearch: duration {duration!r} must look like 10m, 1h, 7d, 1mon", kind="option")
        return name

    def render(self, query, parent=None):
        m = self.macros
        if isinstance(query, Match) and query.field is None:
            _keyword_stays_in_one_value(query)
        if isinstance(query, Not):
            arg = query.arg
            # exists/null never yield null, so their negation is the opposite test.
            if isinstance(arg, Match) and arg.op in (Op.EXISTS, Op.NULL):
                return self.render(Match(arg.field, Op.EXISTS, arg.op is Op.NULL or not arg.value), parent)
            return m.not_(self.render(arg))             # not(...) brings its own parentheses
        if isinstance(query, Or):
            parts = self._or_parts(query.args)
            text = m.or_(parts)
            if len(parts) == 1:
                return text
            return m.group(text) if parent not in (None, Or) else text
        text = super().render(query, parent)
        # A leaf written as `x and y` (a guard) is grouped under or; and binds tighter anyway.
        return m.group(text) if isinstance(query, Match) and parent is Or and " and " in text else text

    def _or_parts(self, args) -> list:
        """An Or's children, with tests of one field folded: variants that differ in single
        characters (windash: -, /, en dash ...) into one match() with [classes], other string
        tests (exact, prefix, suffix, substring) into one in(lower(f), "a", "b*", "*c*"), IPv4
        networks into one cidr_any. Order of first appearance is kept: deterministic output."""
        strings = {}
        for a in args:
            if isinstance(a, Match) and a.field and a.op in _STRING_OPS and isinstance(a.value, str):
                strings.setdefault((a.field, a.op, a.cased), []).append(a)
        folded = {id(a): ("match_any", k) for k, ms in strings.items() if char_classes(ms) for a in ms}

        def key(a):
            if id(a) in folded:
                return folded[id(a)]
            if not isinstance(a, Match) or a.field is None or a.cased:
                return None
            if a.op in _STRING_OPS and isinstance(a.value, str) and plain(want(a)):
                return "in_", a.field
            if a.op is Op.CIDR and ":" not in a.value:
                return "cidr_any", a.field
            return None
        def fold(k, group):     # a folded `and` chain needs brackets inside a longer `or`
            text = getattr(self.macros, k[0])(group)
            return self.macros.group(text) if " and " in text and len(args) > len(group) else text
        return self.fold_or(args, key, fold)

    # --- correlations --------------------------------------------------------------------------
    def convert_correlation(self, correlation) -> str:
        """Always Unsupported, with the reason its type cannot be expressed (module docstring)."""
        c = correlation
        raise Unsupported(f"pipesearch: {c.type} " + CORRELATION_GAPS[c.type].format(span=_span(c.timespan)),
                          path=c.rule.label, where="correlation", kind="correlation")

    # --- fields --------------------------------------------------------------------------------
    def field(self, m) -> str:
        """The expression reading a Match's field (or a field name, for fieldref's other side)."""
        name, op = (m, None) if isinstance(m, str) else (m.field, m.op)
        if name is None:
            keywords = self.mapping.extra.get("pipesearch", {}).get("keywords")
            if not keywords:
                raise Unsupported("pipesearch: keywords need a raw-text field; set pipesearch.keywords "
                                  "in the mapping", kind="keywords")
            return identifier(keywords)
        t = self.resolve(name)
        if t.json_path:
            # The evaluator enters lists anywhere on the path; valueof() reads one value.
            raise Unsupported(f"pipesearch: {name} is a key inside the map {t.column}, where an event may hold a "
                              "list; a search expression cannot test a list's elements", kind="array")
        if t.element is not None:
            raise Unsupported(f"pipesearch: {name} is inside the array {t.column}; a search expression "
                              "cannot test its elements", kind="array")
        if t.type == "json" and op not in (Op.EXISTS, Op.NULL):
            raise Unsupported(f"pipesearch: {name} is the map {t.column}; Logpresso compares a map as "
                              "Java text, not as JSON", kind="map")
        expr = identifier(t.column)
        # toString() of an IP value is "/1.2.3.4"; string() gives "1.2.3.4".
        return f"string({expr})" if t.type == "ip" else expr

    # --- enrichment: eval / rename / fields / message per logsource (and eventName) -----------
    def enrichment(self, rule) -> dict:
        """The mapping's `pipesearch.enrich` section, overlaid by `pipesearch.enrich_by.values`
        for the value the rule requires of `enrich_by.field` (e.g. eventName: CreateUser)."""
        section = self.mapping.extra.get("pipesearch", {}) if self.mapping else {}
        base = section.get("enrich") or {}
        out = {"eval": dict(base.get("eval") or {}), "rename": dict(base.get("rename") or {}),
               "fields": list(base.get("fields") or []), "message": base.get("message")}
        by = section.get("enrich_by") or {}
        value = required_value(rule.query, by.get("field")) if by else None
        entry = next((v for k, v in (by.get("values") or {}).items()
                      if value is not None and str(k).lower() == value.lower()), None) or {}
        out["eval"].update(entry.get("eval") or {})
        out["rename"].update(entry.get("rename") or {})
        out["fields"] = list(entry.get("fields") or out["fields"])
        out["message"] = entry.get("message") or out["message"] or rule.title
        for name in [*out["eval"], *out["rename"], *out["rename"].values(), *out["fields"]]:
            if not _TOKEN.fullmatch(str(name)):
                raise RuleError(f"pipesearch enrichment: {name!r} is not a plain field name", kind="mapping")
        return out

    def message(self, rule) -> str:
        """The alert message template ($field placeholders) for a rule."""
        self.mapping = self.mapping_for(rule)
        return self.enrichment(rule)["message"]

    def output_fields(self, rule) -> list:
        """The output field order for a rule (empty: all fields)."""
        self.mapping = self.mapping_for(rule)
        return self.enrichment(rule)["fields"]


_WINDOW = ("needs, at each event, {what} over the events of its group from {span} before it up to it (a sliding "
           "window); Logpresso's stats aggregates whole groups and timechart fixed buckets (span=), which are not "
           "such windows, and no documented command aggregates per event over the events before it")
CORRELATION_GAPS = {
    "event_count": _WINDOW.replace("{what}", "a count"),
    "value_count": _WINDOW.replace("{what}", "a count of distinct values"),
    "temporal": _WINDOW.replace("{what}", "a count of distinct rules"),
    "value_sum": _WINDOW.replace("{what}", "a sum"),
    "value_avg": _WINDOW.replace("{what}", "an average"),
    "value_percentile": _WINDOW.replace("{what}", "a percentile") + ", nor an exact (interpolated) percentile",
    "temporal_ordered": "needs the start of the current chain of rule matches carried from event to event in "
                        "each group (the rules' events in order within {span}); no documented command keeps "
                        "state across rows: sort, eval and search see one row at a time",
}


def _keyword_stays_in_one_value(m: Match):
    """A keyword is found inside one string of the event; the raw line holds them all, one
    after another, so a wildcard between two literal parts, or a line break, could join two."""
    parts = m.value if m.op is Op.GLOB else (m.value,)
    inner = [p for p in parts[1:-1] if isinstance(p, Wild)] if m.op is Op.GLOB else []
    if inner or any(isinstance(p, str) and "\n" in p for p in parts):
        raise Unsupported("pipesearch: this keyword could match across two values of the event in the raw line "
                          "(a wildcard between literal text, or a line break)", kind="keywords")


def _span(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def required_value(query, field):
    """The one string a query requires `field` to equal (a top-level conjunct), or None."""
    if not field:
        return None
    parts = query.args if isinstance(query, And) else (query,)
    found = {m.value for m in parts if isinstance(m, Match) and m.op is Op.EQ
             and isinstance(m.value, str) and (m.field or "").lower() == field.lower()}
    return found.pop() if len(found) == 1 else None


# --- escaping: every value reaches the query text through one of these ---------------------

def raw_ok(value: str) -> bool:
    """True if `value` can sit inside a "..." literal unchanged by the parser's rewrites."""
    return (unicodedata.normalize("NFC", value) == value and not _HAZARD.search(value)
            and not any(c in _REWRITTEN or unicodedata.category(c) in _RAW_UNSAFE_CATEGORIES
                        for c in value))


def literal(value) -> str:
    """A string literal that decodes to `value`: only \\ and \" are escaped, as the parser
    knows no other escape (ExpressionParser.findClosingQuote)."""
    value = str(value)
    if not raw_ok(value):
        raise Unsupported(f"pipesearch: {value!r} holds characters the Logpresso parser rewrites",
                          kind="value")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def plain(value) -> bool:
    """True if `value` can be the right side of == as it is: no `*` (a wildcard there)
    and nothing the parser rewrites."""
    return "*" not in value and raw_ok(value)


def pattern(m: Match) -> str:
    """A plain string test as the right side of == or an in() item: v, v*, *v or *v*."""
    return {Op.EQ: "{}", Op.CONTAINS: "*{}*", Op.STARTSWITH: "{}*", Op.ENDSWITH: "*{}"}[m.op].format(want(m))


def char_classes(ms) -> str | None:
    """One regex for tests (one field, op, case) whose values are every combination of a few
    single-character choices, e.g. |windash's `-a`, `/a`, `\u2013a`, ...: `[-/\u2013...]a`.
    None unless they are, and unless a choice needs a regex anyway (else in() reads better)."""
    values = list(dict.fromkeys(want(m) for m in ms))
    if len(values) < 2 or len({len(v) for v in values}) > 1 or all(map(plain, values)):
        return None
    columns = [list(dict.fromkeys(chars)) for chars in zip(*values)]
    size = 1
    for col in columns:
        size *= len(col)
    if size != len(values):
        return None
    body = "".join(_char(col[0]) if len(col) == 1 else "[" + "".join(
        "\\" + c if c in "\\[]^-&" else _char(c) for c in col) + "]" for col in columns)
    op = ms[0].op
    return _safe(("^" if op in (Op.EQ, Op.STARTSWITH) else "") + body + ("\\z" if op in (Op.EQ, Op.ENDSWITH) else ""))


def identifier(name: str) -> str:
    """A field name: bare when it is one plain token, else field("name")."""
    if _TOKEN.fullmatch(name) and name.lower() not in _KEYWORDS:
        return name
    return f"field({literal(name)})"


def want(m: Match) -> str:
    """The text a Match compares with: folded to lower case unless cased, numbers in JSON form."""
    value = m.value if isinstance(m.value, str) else text(m.value)
    return value if m.cased else _lowered(value)


# Logpresso's lower() is Java's String.toLowerCase(): İ becomes "i" + U+0307 and a final Σ
# becomes ς, where the evaluator lowers each character on its own (evaluate.fold).
_FULL_CASE = set("\u0130\u03a3\u03c3\u03c2")


def _lowered(value: str) -> str:
    if _FULL_CASE & set(value):
        raise Unsupported(f"pipesearch: {value!r} holds İ or a sigma, which Logpresso's lower() (Java's "
                          "toLowerCase) folds otherwise than character by character", kind="value")
    return fold(value)


def caseless(value: str) -> bool:
    """True if lower-casing cannot matter: ASCII without letters (digits, punctuation)."""
    return value.isascii() and not any(c.isalpha() for c in value)


def number(value) -> str:
    """A number constant in plain decimal: `1e+16` would read as `1e + 16`."""
    if isinstance(value, int):
        return str(value)
    text = format(Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"   # a double: digits alone read as an int or long


def network(value: str) -> tuple:
    """(address, prefix, covers IPv4-mapped addresses) of a network; the address as network()
    returns it: Java getHostAddress(), so IPv6 is written in full, lower case, without leading
    zeros or `::` (Network.java)."""
    net = ipaddress.ip_network(value)
    address = net.network_address
    if address.version == 6:
        text = ":".join(f"{int(h, 16):x}" for h in address.exploded.split(":"))
        return text, net.prefixlen, covers_ipv4_mapped(value)
    return str(address), net.prefixlen, False


_CONTROL = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}


def _char(c: str) -> str:
    """One character as a Java regex atom that the query parser leaves alone."""
    if c in _REGEX_META:
        return "\\" + c
    if c in _CONTROL:
        return _CONTROL[c]
    if not raw_ok(c) or not c.isprintable():
        return f"\\x{{{ord(c):x}}}" if ord(c) > 0xFFFF else f"\\u{ord(c):04x}"
    return c


def _safe(regex: str) -> str:
    """A regex fit for a literal: no `"` right after a backslash (parseCommands would take it
    for the closing quote) and no `# ` or `#[` (comment starts); \\uXXXX is the same character."""
    regex = regex.replace('\\"', '\\\\u0022')
    return re.sub(r"#(?=[\s\[])", r"\\u0023", regex)


def regex_literal(value: str, start=False, end=False) -> str:
    """A Java regex matching `value` literally, anchored at the start (^) and/or end (\\z)."""
    body = "".join(_char(c) for c in value)
    return _safe(("^" if start else "") + body + ("\\z" if end else ""))


def glob_re(m: Match) -> str:
    """A GLOB as a Java regex for match() on the lower-cased text unless cased."""
    return _safe(java_regex(glob_regex(m.value, fold=None if m.cased else _lowered), "pipesearch"))


def java_re(pattern: str) -> str:
    """An RE2 pattern for match(), which is java.util.regex (regex.java_regex), fit for a literal."""
    return _safe(java_regex(pattern, "pipesearch"))

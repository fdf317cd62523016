"""KQL for Microsoft Sentinel / Azure Data Explorer: `Table | where <predicate>`.

Every word of KQL is in templates/kql/; this file resolves fields and escapes values.
Language reference: https://learn.microsoft.com/kusto/query/ (string operators:
datatypes-string-operators, literals: scalar-data-types/string, regex: regex).

Correlations (Sigma v2.1, transpiler/correlation.py) become one query whose rows are the
alerts: every type is supported, with the sliding-window semantics of the evaluator; how each
step keeps them exact is argued in templates/kql/correlation.j2. The events' time is a
datetime column: the `time_column` option, else the mapping's `time_column`, else
TimeGenerated (AWSCloudTrail's copy of CloudTrail's eventTime).
"""
from __future__ import annotations

import dataclasses
import re

from ..errors import TranspileError, Unsupported
from ..evaluate import compile_query, text as text_form
from ..mapping import Target
from ..nodes import And, Match, Not, Op, Or, Wild, walk
from ..regex import compile_regex, glob_regex, rust_regex
from ..resources import resource_dir
from .base import Backend, covers_ipv4_mapped, text_pattern

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Characters written as escapes inside a "..." literal. A raw line break is a syntax error and
# \t, \n, \r are the only short escapes the parser knows besides \\ \" \' (an unknown escape
# such as \d is a syntax error), so other control characters, line separators and lone
# surrogates become \uXXXX (https://learn.microsoft.com/kusto/query/scalar-data-types/string).
_SHORT = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_RAW_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# Any character string() writes otherwise than as itself, per quote.
_ESCAPED = {q: re.compile(r"[\\\n\r\t" + q + r"\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]") for q in "\"'"}
CHUNK = 100             # terms of one `or` chain, at most
MAX_REGEX_GROUPS = 16   # "The maximum number of regex groups is 16." (matches-regex-operator)


class Kql(Backend):
    name = "kql"
    default_options = {"table": None, "time_column": None}

    def __init__(self, mapping_file=None, **options):
        super().__init__(mapping_file, **options)
        self._negations = 0   # how many Not nodes enclose the Match being rendered
        self._leaves: dict = {}    # memo: (mapping, negated, Match or fold key and group) -> text
        self._targets: dict = {}   # memo: (mapping, field) -> Target
        self._computed: dict = {}  # the computed columns (a mapping's expr fields) of the query being made
        self._places: dict = {}    # memo: (mapping, field) -> (column, keys) inside JSON text, or None
        self._json: dict = {}      # the rule's keys inside JSON text: (column, keys) -> {test: count's name}
        self._json_uses = 0        # how many JSON tests were rendered (query_parts: which conjuncts need them)

    def filters(self) -> dict:
        return {"str": string, "regex": regex, "ident": identifier, "ref": self.reference,
                "glob": glob, "num": text_form, "caseless": caseless, "empty_ok": empty_ok,
                "ipv6": lambda net: ":" in net, "mapped": covers_ipv4_mapped}

    def template_globals(self) -> dict:
        return {"target": self.target, "negated": lambda: self._negations > 0,
                "keyword_matches": self.keyword_matches, "with_field": dataclasses.replace,
                "computed_columns": lambda: list(self._computed.items())}

    # --- the tree walk: track negation (for coalesce) and fold Or lists ------------------------
    def render(self, query, parent=None):
        if isinstance(query, Match) and self.json_place(query.field):
            return self._json_leaf(query)
        if isinstance(query, Not):
            arg = query.arg
            if isinstance(arg, Match) and arg.op in (Op.EXISTS, Op.NULL):   # never null: the opposite test
                return self.render(Match(arg.field, Op.EXISTS, arg.op is Op.NULL or not arg.value))
            self._negations += 1
            try:
                return self.macros.not_(self.render(arg))   # not(...) brackets it already
            finally:
                self._negations -= 1
        if isinstance(query, Or):
            parts = self._render_or_args(query.args)
            if len(parts) == 1:   # one in_() or cidr_any(): a single predicate
                return parts[0]
            text = self.macros.or_(self._chunked(parts, self.macros.or_))
            return self.macros.group(text) if parent not in (None, Or) else text
        if isinstance(query, And):
            text = self.macros.and_(self._chunked([self.render(a, And) for a in query.args], self.macros.and_))
            return self.macros.group(text) if parent not in (None, And) else text
        if isinstance(query, Match):
            return self._leaf(query, lambda: self.macros.boolean(query, truths(query)) if self._on_bool(query)
                              else super(Kql, self).render(query, parent))
        return super().render(query, parent)

    def _leaf(self, key, render):
        """render() once per (mapping, negation, key): a leaf's text depends on nothing else,
        and rules repeat values."""
        key = (id(self.mapping), self._negations > 0, key)
        done = self._leaves.get(key)
        if done is None:
            done = self._leaves[key] = render()
        return done

    def _on_bool(self, m: Match) -> bool:
        """Whether m tests a bool column (exists and null excepted: they need no text)."""
        if m.field is None or m.op in (Op.EXISTS, Op.NULL):
            return False
        if m.op is Op.FIELDREF and "bool" in (self.target(m.field).type, self.target(m.value).type):
            raise Unsupported(f"{self.name}: fieldref with the bool column of {m.field} or {m.value}: Kusto does "
                              "not document the text of a bool", kind="bool")
        return m.op is not Op.FIELDREF and self.target(m.field).type == "bool"

    def _chunked(self, parts: list, join) -> list:
        """Long lists in bracketed groups of CHUNK: Kusto's parser refuses an `or` chain of some
        hundreds of terms ("Query syntax depth exceeds maximum safe limit", KS245)."""
        while len(parts) > CHUNK:
            parts = [self.macros.group(join(parts[i:i + CHUNK])) for i in range(0, len(parts), CHUNK)]
        return parts

    def _render_or_args(self, args) -> list[str]:
        """An Or's children, with equalities on one field folded into in_(), networks of one
        family on one field into cidr_any() and tests of one bool column into one boolean();
        order of first appearance kept."""
        def key(a):
            if isinstance(a, Match) and self.json_place(a.field):
                return ("json", a.field, a.cased) if a.op is Op.EQ else None
            if isinstance(a, Match) and a.field is not None:
                if self._on_bool(a):
                    return "boolean", a.field
                if a.op is Op.EQ and not isinstance(a.value, bool):
                    return "in_", a.field, a.cased
                if a.op is Op.CIDR:
                    return "cidr_any", a.field, ":" in a.value
            return None

        def fold(k, group):
            if k[0] == "json":
                return self._json_leaf(tuple(group))
            if k[0] == "boolean":
                held = {word for m in group for word in truths(m)}
                return self.macros.boolean(group[0], [w for w in ("true", "false") if w in held])
            return getattr(self.macros, k[0])(group)
        return self.fold_or(args, key, lambda k, group: fold(k, group) if k[0] == "json"
                            else self._leaf((k, tuple(group)), lambda: fold(k, group)))

    # --- keys inside JSON text ---------------------------------------------------------------
    def query_parts(self, query) -> dict:
        """The where clause; with keys inside JSON text, also the mv-apply blocks that count their
        values' tests per event (`json`, their counts `counts`) and, when the query is an And, its
        conjuncts that need none of them (`before`, a where ahead of the blocks)."""
        self._json = {}
        if not isinstance(query, And):
            return {"where": self.render(query), **self._json_blocks(None)}
        before, after = [], []
        for a in query.args:
            uses = self._json_uses
            text = self.render(a, And)
            (after if self._json_uses > uses else before).append(text)
        if not self._json:
            return {"where": self.macros.and_(self._chunked(before, self.macros.and_)), **self._json_blocks(None)}
        return {"where": self.macros.and_(self._chunked(after, self.macros.and_)),
                **self._json_blocks(self.macros.and_(self._chunked(before, self.macros.and_)) if before else None)}

    def _counted(self) -> int:
        return sum(len(leaves) for leaves in self._json.values())

    def json_place(self, field):
        """(column, keys) when the field is a key inside the JSON text of a column (or a member
        of the elements of a JSON array column), else None."""
        if field is None:
            return None
        key = (id(self.mapping), field)
        if key not in self._places:
            t = self.resolve(field)
            keys = t.json_path or (tuple(t.element.split(".")) if t.element is not None else ())
            self._places[key] = (t.column, keys) if keys else None
        return self._places[key]

    def _json_leaf(self, m) -> str:
        """A test of a key inside JSON text (m, or a tuple of equalities on one key): the number
        of the key's values it holds for, counted per event by an mv-apply before the where
        (templates/kql/match.j2 json_values), compared with 0 here."""
        ms = m if isinstance(m, tuple) else (m,)
        first = ms[0]
        place = self.json_place(first.field)
        if len(place[1]) > MAX_JSON_KEYS:
            raise Unsupported(f"{self.name}: {first.field} has more than {MAX_JSON_KEYS} keys inside {place[0]}",
                              kind="json")
        if first.op in (Op.EXISTS, Op.NULL):
            holds = first.op is Op.EXISTS and first.value is True
            m = Match(first.field, Op.EXISTS, True)
        else:
            holds = True
            for one in ms:
                json_test(one)   # Unsupported where Kusto's values cannot be tested exactly
        self._json_uses += 1
        leaves = self._json.setdefault(place, {})
        if m not in leaves:
            leaves[m] = f"sigma_match{self._counted() + 1}"
        return self.macros.json_count(leaves[m], holds)

    def _json_blocks(self, before) -> dict:
        """query.j2's `before`, `json` (an mv-apply per JSON place) and `counts` (their columns)."""
        blocks, counts = [], []
        for (column, keys), leaves in self._json.items():
            splits = _splits(keys)
            stages = []
            for i in range(len(keys)):   # each reading's key at this step (None: it has none left)
                by_key: dict = {}
                for n, split in enumerate(splits, 1):
                    by_key.setdefault(split[i] if i < len(split) else None, []).append(n)
                stages.append(sorted(by_key.items(), key=lambda item: item[0] is None))
            tests = [(name, self._json_test_text(m)) for m, name in leaves.items()]
            blocks.append(self.macros.json_values(column, len(splits), stages, tests))
            counts.extend(name for name, _ in tests)
        return {"before": before, "json": blocks, "counts": counts}

    def _json_test_text(self, m) -> str:
        """The test of one value (sigma_value, its text sigma_text and type sigma_type)."""
        ms = m if isinstance(m, tuple) else (m,)
        if ms[0].op is Op.EXISTS:
            return self.macros.json_test(None, None)
        # several: equalities (_render_or_args), which no number, typed string or object passes
        spec = json_test(ms[0])
        on_text = [dataclasses.replace(one, field=VALUE) for one in ms]
        text = self.macros.in_(on_text) if len(ms) > 1 else super().render(on_text[0])
        held = {word for one in ms for word in truths(one)}
        return self.macros.json_test(text, {**spec, "bools": [w for w in ("true", "false") if w in held]})

    # --- correlations --------------------------------------------------------------------------
    def convert_correlation(self, correlation) -> str:
        """One query whose rows are the correlation's alerts (templates/kql/correlation.j2)."""
        c = correlation
        try:
            names = list(dict.fromkeys(c.group_by))
            clash = set(names) & set(ALERT_COLUMNS)
            if clash:
                raise Unsupported(f"{self.name}: group-by field {sorted(clash)[0]!r} has the name of an alert "
                                  f"column ({', '.join(ALERT_COLUMNS)})", kind="correlation")
            branches = [self._branch(c, base, names) for base in c.rules]
            return self.env.get_template("kql/correlation.j2").render(
                c=c, branches=branches, names=[identifier(n) for n in names],
                span=timespan(c.timespan), number=text_form).strip()
        except TranspileError as e:
            raise e.located(c.rule.label, "correlation") from None

    def _branch(self, c, base, names) -> dict:
        """One referenced rule's part of the correlation: its table and where clause, and the
        expressions for the time, the group keys and the value, in that rule's mapping."""
        try:
            self.mapping = self.mapping_for(base)
            query = self.mapping.rewrite(base.query)
            parts = self.query_parts(query)
        except TranspileError as e:
            raise e.located(base.label, "detection") from None
        fields = dict(zip(c.group_by, c.group_fields(base)))
        computed = self.computed_columns(query, list(fields.values()) + ([c.value_field(base)] if c.field else []))
        keys = [self._part(fields[n], "group-by") for n in names]
        value = self._part(c.value_field(base), "condition.field") if c.field else None
        time = self.options.get("time_column") or self.mapping.extra.get("time_column") or "TimeGenerated"
        return {"table": identifier(self.table()), "rows": self.mapping.rows, "where": parts["where"],
                "before": parts["before"], "json": parts["json"], "computed": list(computed.items()),
                "time": identifier(time), "keys": keys, "value": value}

    def _part(self, field: str, role: str) -> dict:
        """A field as the correlation reads it: its text (what the evaluator groups and counts
        by), a test that it has a value, and its number (or a null real)."""
        t = self.target(field)
        if t.type == "datetime":
            raise Unsupported(f"{self.name}: {role} {field} is the datetime column {t.column}, whose text "
                              f"differs from the event's", kind="correlation")
        present = Match(field, Op.EXISTS, True)
        return {"text": self.macros.text(t), "present": self.macros.exists(present),
                "number": t.type == "number" and self.reference(t)}

    # --- fields --------------------------------------------------------------------------------
    def target(self, field: str):
        """The mapping's Target for a field: a column, never a place inside JSON text."""
        key = (id(self.mapping), field)
        found = self._targets.get(key)
        if found is None:
            found = self._targets[key] = self._target(field)
        return found

    def _target(self, field: str):
        if field == VALUE:
            return Target("sigma_text", sigma="the JSON value")
        t = self.resolve(field)
        if t.json_path or t.element is not None:
            # Its values are counted by an mv-apply (json_place); they are no column to compare
            # with another field, group by or aggregate.
            raise Unsupported(f"{self.name}: {field} is a key inside the JSON text of {t.column}, whose values "
                              "are tested one by one; they cannot be compared with another field or used by a "
                              "correlation", kind="json-array")
        return t

    def reference(self, t) -> str:
        """A Target's column as a KQL expression; a field the mapping computes is read by the
        name `| extend` gives it, or written out where it is short (a member of a dynamic column)."""
        if t.expr:
            return t.expr if t.inline else identifier(t.name or t.sigma)
        return identifier(t.column)

    # --- a mapping's value-level rules, computed fields and dynamic columns (mapping.py) --------
    def convert(self, rule) -> str:
        """As every backend converts, after the mapping's value-level rules (Mapping.rewrite),
        with the computed columns the query reads (query.j2 writes them as one `| extend`)."""
        try:
            self.mapping = self.mapping_for(rule)
            query = self.mapping.rewrite(rule.query)
            self._computed = self.computed_columns(query)
        except TranspileError as e:
            raise e.located(getattr(rule, "path", None), "detection") from None
        return super().convert(rule if query is rule.query else dataclasses.replace(rule, query=query))

    def computed_columns(self, query, fields=()) -> dict:
        """name -> expression of every computed field the query (and the other fields named)
        reads, in order of first use. Found in the query, not while rendering it: leaf texts are
        memoized."""
        names = [n.field for n in walk(query) if isinstance(n, Match) and n.field is not None]
        names += [n.value for n in walk(query) if isinstance(n, Match) and n.op is Op.FIELDREF]
        out = {}
        for name in list(dict.fromkeys(names)) + list(fields):
            t = self.resolve(name)   # not target(): a key inside JSON text is no column, yet no error here
            if t.expr and not t.inline:
                out.setdefault(t.name or t.sigma, t.expr)
        return out

    def resolve(self, field: str):
        """The mapping's Target; a member of a dynamic column that holds single values (the
        mapping's `scalar_json` columns, such as WindowsEvent's EventData) is read as the
        text of that member, tostring(Column.member), as the evaluator reads a value."""
        t = super().resolve(field)
        if t.json_path and t.column in (self.mapping.extra.get("scalar_json") or ()):
            keys = "".join(f".{k}" if _IDENT.fullmatch(k) and k not in RESERVED else f"[{string(k)}]"
                           for k in t.json_path)
            return dataclasses.replace(t, json_path=(), expr=f"tostring({identifier(t.column)}{keys})", inline=True)
        return t

    def keyword_matches(self, m: Match) -> list:
        """A keyword Match on each field the mapping's `keywords` list names as the event's text."""
        fields = self.mapping.extra.get("keywords") or []
        if not fields:
            raise Unsupported(f"{self.name}: keywords (a value anywhere in the event) need the fields that "
                              f"hold the event's text: list them under `keywords` in a mapping", kind="keywords")
        return [dataclasses.replace(m, field=f) for f in ([fields] if isinstance(fields, str) else fields)]


ALERT_COLUMNS = ("first_trigger", "last_trigger", "triggers")


# --- keys inside JSON text -----------------------------------------------------------------------
# A key's values are found as the evaluator finds them (evaluate.field_values): parse_json, lists
# entered (two deep at each key, as the SQL backends), every reading of the keys as literal dotted
# keys, JSON null no value; templates/kql/match.j2 json_values counts per event the values each
# test holds for. Kusto's values are not the evaluator's in two documented ways (the dynamic data
# type, https://learn.microsoft.com/kusto/query/scalar-data-types/dynamic): "Kusto will parse
# strings as strongly-typed values if they can be parsed as such ... datetime, real, long, and
# guid", and a property bag's order is not kept, so its text is Kusto's. json_test decides a test
# on strings by their text, on true and false as the evaluator reads them, and leaves out every
# other value (numbers, and strings Kusto read as one of those types) and objects where no such
# value's text can pass the test (or takes them all where every one does); else it refuses.

VALUE = "\0value"   # the field the tests of one JSON value are rendered on: column sigma_text
MAX_JSON_KEYS = 4   # keys of a field inside JSON text: 2**(n-1) readings as dotted keys

# The texts Kusto may read as a datetime, real, long or guid: its documented datetime formats
# (ISO 8601, RFC 822 with its zones, RFC 850, sortable: digits, blanks, `,.:-+/` and letters of
# these words, or one letter), numbers (.NET's, with NaN and Infinity) and GUIDs (hex digits in
# its five forms); scalar-data-types/datetime, .../dynamic.
_TYPED_CHARS = frozenset("0123456789 \t\n\r\f\v,.:/-+\u221e\u2212"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_TYPED_WORDS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
                "october", "november", "december", "monday", "tuesday", "wednesday", "thursday", "friday",
                "saturday", "sunday", "gmt", "utc", "est", "edt", "cst", "cdt", "mst", "mdt", "pst", "pdt",
                "nan", "infinity")
_NUMBER = re.compile(r"\s*[+\-\u2212]?((\d[\d,]*(\.\d*)?|\.\d+)([eE][+\-]?\d+)?|nan|infinity|\u221e)\s*", re.I)
_GUID_CHARS = frozenset("0123456789abcdefABCDEF{}(),-xX \t")
# Inside an object's JSON text a literal is found alike in Kusto's text and the evaluator's when it
# lies in one key or string (no quote, brace, comma or blank), holds only characters every JSON
# writer writes as themselves, and cannot start inside an escape (\\n, \\u00e9).
_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789$_@#%!?=~^|;*.-()")
_ESCAPE_TAIL = frozenset("uU0123456789abcdefABCDEFnrtbf\"\\/")


def json_test(m: Match) -> dict:
    """How a text test m of a key inside JSON text is decided on Kusto's values: strings by
    their text (sigma_text), true and false by kql.truths, and {"objects": "none" | "all" |
    "text" (by Kusto's JSON text), "others": "none" | "all"} for objects and every other
    value. Unsupported where that would not be exact."""
    from ..analysis import value_text
    test = f"{m.field}|{m.op.value}{'|cased' if m.cased else ''} {value_text(m)!r}"
    parts = text_pattern(m)
    if parts is None:
        raise Unsupported(f"kql: {test}: a key inside JSON text is tested with eq, contains, startswith, endswith, "
                          "wildcards, exists and null only (Kusto may read a string there as a number, a time or "
                          "a GUID, and writes an object in its own key order)", kind="json")
    literals = [p for p in parts if isinstance(p, str)]
    if not literals:
        if Wild.STAR in parts and parts.count(Wild.ONE) <= 1:
            return {"objects": "all", "others": "all"}   # every text (but maybe ""): every value
        if not parts:
            return {"objects": "none", "others": "none"}   # "": a string only
        raise Unsupported(f"kql: {test}: a test of a text's length inside JSON text, where Kusto may read a "
                          "string as a number, a time or a GUID and write it its own way", kind="json")
    typed = _typed(literals[0]) if m.op is Op.EQ else all(_may_be_typed(p) for p in literals)
    if typed:
        raise Unsupported(f"kql: {test} could hold for a JSON string Kusto reads as a number, a time or a GUID "
                          "(the dynamic type's documentation), or for a number, whose text is then Kusto's",
                          kind="json")
    if isinstance(parts[0], str) and not parts[0].startswith("{") or \
            isinstance(parts[-1], str) and not parts[-1].endswith("}"):
        return {"objects": "none", "others": "none"}
    lit = literals[0]
    if parts == [Wild.STAR, lit, Wild.STAR] and set(lit) <= _PLAIN and lit[0] not in _ESCAPE_TAIL:
        return {"objects": "text", "others": "none"}
    raise Unsupported(f"kql: {test} could hold for an object there, whose JSON text Kusto writes in its own key "
                      "order and escapes", kind="json")


def _typed(text: str) -> bool:
    """Whether a whole text could be one Kusto reads as a datetime, real, long or guid."""
    hexes = sum(c in "0123456789abcdefABCDEF" for c in text)
    return bool(_NUMBER.fullmatch(text)) or (set(text) <= _GUID_CHARS and hexes >= 32) or \
        (any(c.isdigit() for c in text) and _in_time(text))


def _may_be_typed(literal: str) -> bool:
    """Whether a literal could lie inside a text Kusto reads as a datetime, real, long or guid."""
    return _in_time(literal) or set(literal) <= _GUID_CHARS


def _in_time(text: str) -> bool:
    """Whether text could lie inside a datetime or number text: its characters and letter runs."""
    return set(text) <= _TYPED_CHARS and all(len(run) == 1 or any(run in w for w in _TYPED_WORDS)
                                              for run in re.findall(r"[a-z]+", text.lower()))


def _splits(keys) -> list:
    """Every reading of the keys as literal keys, some dotted: (a, b) -> [(a, b), ("a.b",)]."""
    if len(keys) == 1:
        return [tuple(keys)]
    return [(keys[0], *rest) for rest in _splits(keys[1:])] + \
           [(f"{keys[0]}.{rest[0]}", *rest[1:]) for rest in _splits(keys[1:])]


def timespan(seconds: int) -> str:
    """A timespan literal in the largest unit that divides it (KQL has no weeks)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# --- escaping: every value reaches the query text through one of these ---------------------

def string(value, quote='"') -> str:
    """A string literal that reads back as `value` (KustoFacts.GetDoubleQuotedStringLiteral)."""
    value = str(value)
    if not _ESCAPED[quote].search(value):      # the common case: nothing to escape
        return quote + value + quote
    body = []
    for c in str(value):
        if c in _SHORT:
            body.append(_SHORT[c])
        elif c == quote:
            body.append("\\" + c)
        elif _RAW_UNSAFE.match(c):
            body.append(f"\\u{ord(c):04x}")
        else:
            body.append(c)
    return quote + "".join(body) + quote


def identifier(name: str) -> str:
    """A column or table name: bare when it is a plain identifier and no keyword, else
    ['name'] (https://learn.microsoft.com/kusto/query/schema-entities/entity-names)."""
    if _IDENT.fullmatch(name) and name not in RESERVED:
        return name
    return f"[{string(name, quote=chr(39))}]"


def regex(pattern: str) -> str:
    """A regex literal for `matches regex`: RE2's meaning in Kusto's (Rust) syntax, written
    verbatim (@"...", only `"` doubled) unless it holds characters that need escapes."""
    if compile_regex(pattern).groups > MAX_REGEX_GROUPS:
        raise Unsupported(f"kql: the regex has more than {MAX_REGEX_GROUPS} groups, Kusto's limit",
                          kind="regex")
    rust = rust_regex(pattern)
    if _RAW_UNSAFE.search(rust):
        return string(rust)
    return '@"' + rust.replace('"', '""') + '"'


def glob(m: Match) -> str:
    """A GLOB value as a regex for `matches regex` (which searches): i unless cased."""
    return glob_regex(m.value, caseless=not m.cased)


def caseless(values) -> bool:
    """True if no value has letters that change with case: then == is the same as =~."""
    values = values if isinstance(values, (list, tuple)) else (values,)
    return all(v.lower() == v.upper() for v in map(str, values))


def truths(m: Match) -> list:
    """The bools ("true", "false") a Match on a bool column holds for: such a column has no
    other values, and its values' texts are "true" and "false", as the evaluator reads them."""
    test = compile_query(dataclasses.replace(m, field="f"))
    return [word for word, value in (("true", True), ("false", False)) if test({"f": value})]


def empty_ok(m: Match) -> bool:
    """Whether the predicate holds for an empty string, which is also how KQL reads a missing
    value: such predicates need a presence test on values that can be null."""
    return compile_query(dataclasses.replace(m, field="f"))({"f": ""})


def _load_reserved() -> frozenset:
    # Generated from Kusto.Language's KustoFacts.BracketNameIfNecessary (tests/kusto/reserved.js).
    path = resource_dir("templates") / "kql" / "reserved.txt"
    return frozenset(path.read_text(encoding="utf-8").split())

RESERVED = _load_reserved()

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
from ..nodes import And, Match, Not, Op, Or, walk
from ..regex import compile_regex, glob_regex, rust_regex
from ..resources import resource_dir
from .base import Backend, covers_ipv4_mapped

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
        if isinstance(query, Not):
            arg = query.arg
            if isinstance(arg, Match) and arg.op in (Op.EXISTS, Op.NULL):   # never null: the opposite test
                return self.macros.exists(Match(arg.field, Op.EXISTS, arg.op is Op.NULL or not arg.value))
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
            if isinstance(a, Match) and a.field is not None:
                if self._on_bool(a):
                    return "boolean", a.field
                if a.op is Op.EQ and not isinstance(a.value, bool):
                    return "in_", a.field, a.cased
                if a.op is Op.CIDR:
                    return "cidr_any", a.field, ":" in a.value
            return None

        def fold(k, group):
            if k[0] == "boolean":
                held = {word for m in group for word in truths(m)}
                return self.macros.boolean(group[0], [w for w in ("true", "false") if w in held])
            return getattr(self.macros, k[0])(group)
        return self.fold_or(args, key, lambda k, group: self._leaf((k, tuple(group)), lambda: fold(k, group)))

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
            where = self.render(query)
        except TranspileError as e:
            raise e.located(base.label, "detection") from None
        fields = dict(zip(c.group_by, c.group_fields(base)))
        computed = self.computed_columns(query, list(fields.values()) + ([c.value_field(base)] if c.field else []))
        keys = [self._part(fields[n], "group-by") for n in names]
        value = self._part(c.value_field(base), "condition.field") if c.field else None
        time = self.options.get("time_column") or self.mapping.extra.get("time_column") or "TimeGenerated"
        return {"table": identifier(self.table()), "rows": self.mapping.rows, "where": where,
                "computed": list(computed.items()), "time": identifier(time),
                "keys": keys, "value": value}

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
        t = self.resolve(field)
        if t.json_path:
            # The evaluator enters lists anywhere on the path (and reads "a.b" keys as a.b); KQL's
            # parse_json(...).a.b reads one value, and a where clause cannot test a list's elements.
            raise Unsupported(f"{self.name}: {field} is a key inside the JSON text of {t.column}, where an event "
                              "may hold a list; a where clause cannot test a list's elements", kind="json-array")
        if t.element is not None:
            raise Unsupported(f"{self.name}: {field} is a member of the elements of the JSON array in "
                              f"{t.column}; a where clause cannot test the elements", kind="json-array")
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
            t = self.target(name)
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

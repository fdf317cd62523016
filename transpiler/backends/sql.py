"""Athena (Trino SQL) and DuckDB: one SQL family.

templates/sql/match.j2 holds the macros both dialects share; templates/<dialect>/match.j2
holds the handful that differ (JSON access, "any element" of a list, regex, cidr, time
parts). Templates look macros up as `dialect.NAME`, the dialect's own first: the same
override idea as sqlglot's per-dialect generators. Mappings in templates/sql/mappings/
(CloudTrail) serve both dialects; each dialect adds its own generic.yml.

Correlations (convert_correlation) are one query each, templates/sql/correlation.j2: the
referenced rules' events, a sliding window per event (RANGE ... PRECEDING AND CURRENT ROW),
one row per alert. The time_field option names the event time (default eventTime).

This file only resolves fields and escapes values; every word of SQL is in the templates.
"""
from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..errors import TranspileError, Unsupported
from ..evaluate import ISO_8601, fold, text
from ..mapping import builtin_mappings
from ..nodes import Match, Not, Op, Or, Wild
from ..regex import java_regex
from ..resources import resource_dir
from .base import Backend, covers_ipv4_mapped, direct, object_text_differs

# Reserved words of Trino (https://trino.io/docs/current/language/reserved.html), Athena
# (https://docs.aws.amazon.com/athena/latest/ug/reserved-words.html) and DuckDB
# (SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'):
# an identifier spelled like one of them is double-quoted.
RESERVED = frozenset("""
all alter analyse analyze and any array as asc asymmetric between both by case cast check
collate column constraint create cross cube current_catalog current_date current_path
current_role current_schema current_time current_timestamp current_user deallocate default
deferrable delete desc describe distinct do drop else end escape except execute exists
extract false fetch first for foreign from full group grouping having in initially inner
insert intersect into is join json_array json_exists json_object json_query json_table
json_value lambda last lateral leading left like limit listagg localtime localtimestamp
natural normalize not null offset on only or order outer pivot pivot_longer pivot_wider
placing prepare primary qualify recursive references returning right rollup select show
skip some summarize symmetric table then to trailing trim true uescape union unique unnest
unpivot using values variadic when where window with
""".split())

_PLAIN_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_PLAIN_JSON_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

# Text the evaluator reads as a number (evaluate.number): no NaN, Infinity, hex or digit
# groups, which the engines' casts to DOUBLE would also accept.
# The blanks are spelled out: Trino's \s would also take \x0B.
NUMBER = r"^[\t\n\f\r ]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?[\t\n\f\r ]*$"
# An IPv4 address as Python's ipaddress accepts it: a dotted quad without leading zeros.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"^{_OCTET}(\.{_OCTET}){{3}}$"
# What a time is (evaluate.ISO_8601): time parts and correlations read texts of that grammar,
# as the evaluator does. Groups: date, clock with seconds, fraction, shorter clock, sign, offset.
INSTANT = ISO_8601


# Lists inside JSON text are entered this deep at each key (the evaluator: at any depth), and a
# field may have this many keys inside a JSON column (every split of them is a literal key).
JSON_LIST_DEPTH = 2
MAX_JSON_KEYS = 8


@dataclass(frozen=True)
class Place:
    """Where a field's values are, in the dialect's words, for the templates.

    kind  value: `expr` is the value (a column or struct path), `type` its column type;
          json:  a key inside JSON text: `expr` the column, `keys` the key path in it, `path`
                 its JSON path literal (None where the dialect cannot write one): `values`
                 is the list of the field's values there, as the evaluator finds them;
          list:  any element of the list `expr` counts; `item` is one element's value,
                 written with the lambda variable; `dense` lists hold no nulls and are
                 NULL rather than empty, so `expr IS NOT NULL` says the field exists.
    """

    kind: str
    expr: str
    path: str = ""
    item: str = ""
    type: str = "string"
    dense: bool = False
    keys: tuple = ()
    values: str = ""


class _Macros:
    """The dialect's macros over the shared ones: what `dialect.NAME` and base.Backend see."""

    def __init__(self):
        self.modules = ()

    def __getattr__(self, name):   # only on a first lookup: the macro is then kept as an attribute
        for module in self.__dict__["modules"]:
            macro = getattr(module, name, None)
            if macro is not None:
                macro = direct(macro)
                setattr(self, name, macro)
                return macro
        raise AttributeError(name)


class Sql(Backend):
    """What Athena and DuckDB share; a dialect sets `name` and its JSON path syntax."""

    # time_field: the Sigma field holding an event's time, for correlations (resolved through
    # the mapping like any field; CloudTrail's eventTime is the column eventtime).
    default_options = {"table": None, "time_field": "eventTime"}
    object_text = ""   # how the dialect writes an object's JSON text (base.object_text_differs)

    def __init__(self, mapping_file=None, **options):
        super().__init__(self._optional_mapping(mapping_file), **options)
        self._dialect = _Macros()
        self._leaves: dict = {}     # memo: (mapping, macro, Match) -> text
        self._places: dict = {}     # memo: (mapping, field, var) -> Place

    def _optional_mapping(self, mapping_file):
        """`-m security-lake`: a mapping shipped in templates/<dialect>/mappings/optional/."""
        if mapping_file is None or Path(mapping_file).exists():
            return mapping_file
        shipped = resource_dir("templates") / self.name / "mappings" / "optional" / f"{mapping_file}.yml"
        return shipped if shipped.exists() else mapping_file

    @cached_property
    def builtin_mappings(self):
        found = builtin_mappings(self.name) + builtin_mappings("sql")
        return sorted(found, key=lambda m: not m.logsource)   # stable: the generic ones last

    @cached_property
    def macros(self):
        self.env.globals["dialect"] = self._dialect   # before any module binds its globals
        self._dialect.modules = (self.env.get_template(f"{self.name}/match.j2").module,
                                 self.env.get_template("sql/match.j2").module)
        return self._dialect

    def render(self, query, parent=None):
        if isinstance(query, Match):
            return self.leaf(query.op.value, query)
        if isinstance(query, Not):
            arg = query.arg
            if isinstance(arg, Match) and arg.op in (Op.EXISTS, Op.NULL):   # never NULL: the opposite test
                return self.leaf("exists", Match(arg.field, Op.EXISTS, arg.op is Op.NULL or not arg.value))
            if isinstance(arg, Not):   # NULL where the inner test is NULL: "no match", as not-not
                return self.render(arg.arg, parent)
            return self.macros.not_(self.render(arg))   # inside COALESCE(): no parentheses
        if isinstance(query, Or):
            parts = self._render_or_args(query.args)
            if len(parts) == 1:   # all folded into one in_()
                return parts[0]
            text = self.macros.or_(parts)
            return self.macros.group(text) if parent not in (None, Or) else text
        return super().render(query, parent)

    def leaf(self, name: str, m):
        """macro `name`(m, x) on the field's value x, or on each element of a list (any one may
        match). exists, null and fieldref take only m: they look at the field's place
        themselves. m is a Match, or for in_ a tuple of them. Memoized: rules repeat values."""
        key = (id(self.mapping), name, m)
        done = self._leaves.get(key)
        if done is not None:
            return done
        macro, d = self._macro(name), self.macros
        if name in ("exists", "null", "fieldref"):
            if name == "fieldref":
                self._object_text(m, self.place(m.field), self.place(m.value))
            done = macro(m)
        else:
            p = self.place(m[0].field if isinstance(m, tuple) else m.field)
            if p.kind == "json":
                self._object_text(m, p)
                done = d.any_(p.values, "x", macro(m, d.json_text("x")))
            else:
                x = p.item if p.kind == "list" else p.expr
                x = x if p.type in ("string", "json") else d.text(x, p.type)
                done = macro(m, x) if p.kind != "list" else d.any_(p.expr, "x", macro(m, x))
        self._leaves[key] = done
        return done

    def _object_text(self, m, *places):
        """Unsupported where a key inside JSON text may hold an object, compared as its JSON
        text, and m could tell the evaluator's text of it from the dialect's."""
        json = [p for p in places if p.kind == "json"]
        for one in (m if isinstance(m, tuple) else (m,)):
            if json and object_text_differs(one):
                from ..analysis import value_text
                test = f"{one.field}|{one.op.value}{'|cased' if one.cased else ''} {value_text(one)!r}"
                raise Unsupported(f"{self.name}: {test} could select an object (a key inside the JSON text of "
                                  f"{json[0].expr} may hold one) otherwise than the evaluator, which writes its "
                                  f"JSON with the event's key order, Python's numbers and \\u001f escapes: "
                                  f"{self.object_text}", kind="json")

    # --- correlations -------------------------------------------------------------------------
    def convert_correlation(self, c) -> str:
        """One query for a correlation (transpiler.correlation.Correlation): a row per alert with
        the group-by values, first_trigger, last_trigger and triggers, as correlation.evaluate
        reports them with time_field as the event time. templates/sql/correlation.j2 says how."""
        try:
            if c.type == "temporal_ordered" and c.condition != (("gte", len(c.rules)),):
                raise Unsupported("temporal_ordered takes no condition (the rules in their order is the "
                                  "condition); this one has " + ", ".join(f"{op}: {n}" for op, n in c.condition))
            sources = [self._source(c, base) for base in c.rules]
            return self.env.get_template("sql/correlation.j2").render(
                c=c, sources=sources, keys=[f"g{n}" for n in range(1, len(c.group_by) + 1)],
                names=[identifier(g) for g in c.group_by]).strip()
        except TranspileError as e:
            raise e.located(c.rule.label, "correlation") from None

    def _source(self, c, base) -> dict:
        """What one referenced rule adds to the correlation: its table and condition, and the
        first value of its time, group-by fields (aliases applied) and aggregated field."""
        try:
            self.mapping = self.mapping_for(base)
            d = self.macros
            return {"table": self.table(), "where": self.render(base.query),
                    "time": d.event_time(self.place(self.options["time_field"])),
                    "groups": [d.first(self.place(f)) for f in c.group_fields(base)],
                    "value": d.first(self.place(c.value_field(base))) if c.field else None}
        except Unsupported as e:
            raise Unsupported(f"rule {base.title!r}: {e.message}", kind=e.kind) from None

    def _render_or_args(self, args) -> list[str]:
        """An Or's children, equalities on one field (numbers too) folded into one in_()."""
        def key(a):
            if isinstance(a, Match) and a.op is Op.EQ:
                return "in_", a.field, a.cased
            return None
        return self.fold_or(args, key, lambda k, group: self.leaf("in_", tuple(group)))

    def table(self) -> str:
        return self.qualified(super().table())

    def template_globals(self) -> dict:
        return {"NUMBER": NUMBER, "IPV4": IPV4, "INSTANT": INSTANT}

    def filters(self) -> dict:
        return {"lit": literal, "like": like_pattern, "needle": needle, "folds": folds,
                "num": number_literal, "double": double_literal, "place": self.place, "ident": identifier,
                "interval": interval}

    # --- where a field is -------------------------------------------------------------------
    def place(self, field, var="x") -> Place:
        key = (id(self.mapping), field, var)
        if key not in self._places:
            self._places[key] = self._place(field, var)
        return self._places[key]

    def _place(self, field, var) -> Place:
        extra = self.mapping.extra
        if field is None:
            if "keywords" not in extra:
                raise Unsupported(f"{self.name}: keywords (a value anywhere in the event) need a column of "
                                  f"every string; the table {self.mapping.table!r} of this mapping has none")
            return Place("list", identifier(extra["keywords"]), item=var)
        if "values" in extra:   # generic DuckDB table: a map from every field name to its values
            return Place("list", f"{identifier(extra['values'])}[{literal(field)}]", item=var, dense=True)
        target = self.resolve(field)
        if target.element:
            return Place("list", self.qualified(target.column), item=self.qualified(f"{var}.{target.element}"),
                         type=target.type)
        if target.json_path:
            column, keys = self.qualified(target.column), target.json_path
            try:
                path = literal(self.json_path(keys))
            except Unsupported:
                path = None
            return Place("json", column, path=path, keys=keys, values=self.json_values(column, keys))
        return Place("value", self.qualified(target.column), type=target.type)

    def json_path(self, keys) -> str:
        raise NotImplementedError

    def json_values(self, column: str, keys) -> str:
        """The values of the field `keys` inside the JSON text `column`, as the evaluator finds
        them (evaluate.field_values): a key is also a literal dotted key (requestParameters'
        "a.b" answers a.b), and lists are entered, here up to JSON_LIST_DEPTH deep at each key;
        JSON nulls are no values. A list of JSON items, which dialect.json_text reads."""
        if len(keys) > MAX_JSON_KEYS:
            raise Unsupported(f"{self.name}: {'.'.join(keys)} has more than {MAX_JSON_KEYS} keys inside "
                              f"{column}", kind="json")
        d = self.macros

        def entered(seq):
            for _ in range(JSON_LIST_DEPTH):
                seq = d.json_unwrap(seq)
            return seq

        # found[j]: the items that keys[:j] lead to, by any split of them into literal keys;
        # each one is named once (s0, s1, ...) and the later ones refer to it.
        names = [f"s{j}" for j in range(len(keys))]
        found = [entered(d.json_root(column))]
        ref = (lambda i: names[i]) if len(keys) > 1 else (lambda i: found[0])
        for j in range(1, len(keys) + 1):
            found.append(d.json_concat([entered(d.json_member(ref(i), ".".join(keys[i:j]))) for i in range(j)]))
        text = d.json_values(found[-1])
        for j in reversed(range(1, len(keys))):
            text = d.bind(found[j], names[j], text)
        return d.bind(found[0], names[0], text) if len(keys) > 1 else text

    @staticmethod
    def qualified(dotted: str) -> str:
        return ".".join(identifier(part) for part in dotted.split("."))


class Athena(Sql):
    name = "athena"
    object_text = "Trino's JSON type sorts the keys and writes fractions as Java doubles (1.5E7) and \\u001F"

    def filters(self) -> dict:
        # Trino compiles patterns with Joni in its Java syntax: regex.java_regex spells RE2's meaning.
        return {**super().filters(), "regex": lambda p: java_regex(p, "athena"), "mapped": covers_ipv4_mapped}

    def json_path(self, keys) -> str:
        # Trino's JSONPath for json_extract*: $.key for letters and digits, $["key"] for any
        # other key; the quoted form has no escape for `"`
        # (https://trino.io/docs/current/functions/json.html#json-extract).
        out = ["$"]
        for key in keys:
            if _PLAIN_JSON_KEY.fullmatch(key) and "_" not in key:
                out.append(f".{key}")
            elif '"' in key or "\\" in key:
                raise Unsupported(f"athena: JSON key {key!r} cannot be written in a Trino JSON path")
            else:
                out.append(f'["{key}"]')
        return "".join(out)


class DuckDB(Sql):
    name = "duckdb"
    object_text = "DuckDB writes fractions its own way (1e-7, 15000000000000000.0) and \\u001F"

    def filters(self) -> dict:
        # DuckDB's regexp_matches is RE2 with RE2's defaults, like the evaluator (regex.py).
        return {**super().filters(), "ipv4_range": ipv4_range, "regex": str,
                "pointer": lambda key: "/" + key.replace("~", "~0").replace("/", "~1")}

    def json_path(self, keys) -> str:
        # $.key, $."any key" without `"` or backslash; else a JSON Pointer, which spells any
        # key (~ is ~0, / is ~1) but reads an all-digit key as an array index
        # (https://duckdb.org/docs/stable/data/json/json_functions#json-extraction-functions).
        if not any('"' in k or "\\" in k for k in keys):
            return "$" + "".join(f".{k}" if _PLAIN_JSON_KEY.fullmatch(k) else f'."{k}"' for k in keys)
        if any(k.isdigit() for k in keys):
            raise Unsupported(f"duckdb: the JSON path {keys!r} cannot be written for DuckDB")
        return "".join("/" + k.replace("~", "~0").replace("/", "~1") for k in keys)


# --- escaping: every value reaches the SQL text through one of these -----------------------

def literal(value: str) -> str:
    """A string literal: quote doubled, nothing else special (backslash is an ordinary
    character). Trino: https://trino.io/docs/current/language/types.html#varchar ;
    DuckDB: https://duckdb.org/docs/stable/sql/data_types/literal_types#string-literals"""
    if "\x00" in value:
        raise Unsupported("a NUL character cannot be written in a SQL string literal")
    return "'" + value.replace("'", "''") + "'"


def identifier(name: str) -> str:
    """A column or table name: bare when plain and not reserved, else double-quoted with `"`
    doubled (https://trino.io/docs/current/language/reserved.html)."""
    if _PLAIN_IDENT.fullmatch(name) and name.lower() not in RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def _like_escape(s: str) -> str:
    # LIKE has no default escape; with ESCAPE '\' these three are literal after a backslash
    # (https://trino.io/docs/current/functions/comparison.html#like ,
    #  https://duckdb.org/docs/stable/sql/functions/pattern_matching#like).
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_pattern(m: Match) -> str:
    """The LIKE pattern of a contains/startswith/endswith/glob Match, lower-cased unless cased."""
    if m.op is Op.GLOB:
        parts = m.value
    else:
        parts = {Op.CONTAINS: (Wild.STAR, m.value, Wild.STAR), Op.STARTSWITH: (m.value, Wild.STAR),
                 Op.ENDSWITH: (Wild.STAR, m.value)}[m.op]
    out = []
    for p in parts:
        if p is Wild.STAR:
            out.append("%")
        elif p is Wild.ONE:
            out.append("_")
        else:
            out.append(_like_escape(p if m.cased else fold(p)))
    return "".join(out)


def needle(m: Match) -> str:
    """What an eq Match compares with: its text form (numbers and booleans too, like the
    evaluator), lower-cased unless cased."""
    return text(m.value) if m.cased else fold(text(m.value))


def folds(ms) -> bool:
    """Whether the field needs lower(): not when cased, nor when the compared texts have no
    letters (lower() only changes letters, and no non-ASCII letter lowers to ASCII non-letters)."""
    ms = ms if isinstance(ms, (list, tuple)) else (ms,)
    return any(_folds(m) for m in ms)


def _folds(m: Match) -> bool:
    if m.cased:
        return False
    if m.op is Op.GLOB:
        value = "".join(p for p in m.value if isinstance(p, str))
    else:
        value = m.value if isinstance(m.value, str) else text(m.value)
    return not (value.isascii() and value.lower() == value.upper())


def ipv4_range(network: str) -> tuple[int, int]:
    """An IPv4 network's first and last address as numbers; IPv6 cannot be checked in DuckDB."""
    net = ipaddress.ip_network(network)
    if net.version != 4:
        raise Unsupported(f"duckdb: cidr {network} is IPv6; DuckDB has no IPv6 type without the inet extension")
    return int(net.network_address), int(net.broadcast_address)


def double_literal(value) -> str:
    """A number that computes as the evaluator's does: an int as it is, a float as a DOUBLE
    literal (99.9E0), since SQL reads 99.9 as a DECIMAL, whose exact arithmetic differs."""
    text = number_literal(value)
    return text if isinstance(value, int) or "e" in text.lower() else text + "E0"


def interval(seconds: int) -> str:
    """A correlation's timespan in its largest whole unit: INTERVAL '5' MINUTE."""
    for unit, size in (("DAY", 86400), ("HOUR", 3600), ("MINUTE", 60)):
        if seconds % size == 0:
            return f"INTERVAL '{seconds // size}' {unit}"
    return f"INTERVAL '{seconds}' SECOND"


def number_literal(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise Unsupported(f"cannot compare with {value}")
    return repr(value) if isinstance(value, float) else str(int(value))

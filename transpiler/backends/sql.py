"""Athena (Trino SQL) and DuckDB: one SQL family.

templates/sql/match.j2 holds the macros both dialects share; templates/<dialect>/match.j2
holds the handful that differ (JSON access, "any element" of a list, regex, cidr, time
parts). Templates look macros up as `dialect.NAME`, the dialect's own first: the same
override idea as sqlglot's per-dialect generators. Mappings in templates/sql/mappings/
(CloudTrail) serve both dialects; each dialect adds its own generic.yml.

This file only resolves fields and escapes values; every word of SQL is in the templates.
"""
from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..errors import Unsupported
from ..evaluate import text
from ..mapping import builtin_mappings, load_mapping_file
from ..nodes import Match, Not, Op, Or, Wild
from ..resources import resource_dir
from .base import Backend

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

# Text the evaluator reads as a number (evaluate.number): no NaN, Infinity, hex or digit
# groups, which the engines' casts to DOUBLE would also accept.
NUMBER = r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"
# An IPv4 address as Python's ipaddress accepts it: a dotted quad without leading zeros.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"^{_OCTET}(\.{_OCTET}){{3}}$"


@dataclass(frozen=True)
class Place:
    """Where a field's values are, in the dialect's words, for the templates.

    kind  value: `expr` is the value (a column or struct path), `type` its column type;
          json:  a key inside JSON text: `expr` the column, `path` the JSON path literal;
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


class _Macros:
    """The dialect's macros over the shared ones: what `dialect.NAME` and base.Backend see."""

    def __init__(self):
        self.modules = ()

    def __getattr__(self, name):
        for module in self.__dict__["modules"]:
            macro = getattr(module, name, None)
            if macro is not None:
                return macro
        raise AttributeError(name)


class Sql(Backend):
    """What Athena and DuckDB share; a dialect sets `name` and its JSON path syntax."""

    default_options = {"table": None}
    json_key = re.compile(r"[A-Za-z0-9_]+")   # keys written plainly in a JSON path

    def __init__(self, mapping_file=None, **options):
        super().__init__(self._optional_mapping(mapping_file), **options)
        self._dialect = _Macros()

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
        if isinstance(query, Not):
            arg = query.arg
            if isinstance(arg, Match) and arg.op in (Op.EXISTS, Op.NULL):   # not exists = null
                return self.macros.exists(Match(arg.field, Op.EXISTS, arg.op is Op.NULL))
            return self.macros.not_(self.render(arg))   # inside COALESCE(): no parentheses
        if isinstance(query, Or):
            parts = self._render_or_args(query.args)
            if len(parts) == 1:   # all folded into one in_()
                return parts[0]
            text = self.macros.or_(parts)
            return self.macros.group(text) if parent not in (None, Or) else text
        return super().render(query, parent)

    def _render_or_args(self, args) -> list[str]:
        """An Or's children, equalities on one field (numbers too) folded into one in_()."""
        groups: dict = {}
        for a in args:
            if isinstance(a, Match) and a.op is Op.EQ:
                groups.setdefault((a.field, a.cased and isinstance(a.value, str)), []).append(a)
        parts, done = [], set()
        for a in args:
            key = (a.field, a.cased and isinstance(a.value, str)) if isinstance(a, Match) and a.op is Op.EQ else None
            if key is not None and len(groups[key]) > 1:
                if key not in done:
                    done.add(key)
                    parts.append(self.macros.in_(groups[key]))
                continue
            parts.append(self.render(a, Or))
        return parts

    def table(self) -> str:
        return self.qualified(super().table())

    def template_globals(self) -> dict:
        return {"NUMBER": NUMBER, "IPV4": IPV4}

    def filters(self) -> dict:
        return {"lit": literal, "like": like_pattern, "needle": needle, "folds": folds,
                "num": number_literal, "place": self.place, "ident": identifier}

    # --- where a field is -------------------------------------------------------------------
    def place(self, field, var="x") -> Place:
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
            return Place("json", self.qualified(target.column), path=literal(self.json_path(target.json_path)))
        return Place("value", self.qualified(target.column), type=target.type)

    def json_path(self, keys) -> str:
        raise NotImplementedError

    @staticmethod
    def qualified(dotted: str) -> str:
        return ".".join(identifier(part) for part in dotted.split("."))


class Athena(Sql):
    name = "athena"

    def json_path(self, keys) -> str:
        # Trino's JSONPath for json_extract*: $.key, or $["key"] for any other key; the quoted
        # form has no escape for `"` (https://trino.io/docs/current/functions/json.html#json-extract).
        out = ["$"]
        for key in keys:
            if self.json_key.fullmatch(key):
                out.append(f".{key}")
            elif '"' in key or "\\" in key:
                raise Unsupported(f"athena: JSON key {key!r} cannot be written in a Trino JSON path")
            else:
                out.append(f'["{key}"]')
        return "".join(out)


class DuckDB(Sql):
    name = "duckdb"

    def filters(self) -> dict:
        return {**super().filters(), "ipv4_range": ipv4_range}

    def json_path(self, keys) -> str:
        # $.a.b for plain keys, else a JSON Pointer, which can spell any key: ~ is ~0, / is ~1
        # (https://duckdb.org/docs/stable/data/json/json_functions#json-extraction-functions).
        if all(self.json_key.fullmatch(k) for k in keys):
            return "$." + ".".join(keys)
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
            out.append(_like_escape(p if m.cased else p.lower()))
    return "".join(out)


def needle(m: Match) -> str:
    """What an eq Match compares with: its text form, lower-cased unless cased (numbers and
    booleans compare by text form, case-insensitively, like the evaluator)."""
    if isinstance(m.value, str):
        return m.value if m.cased else m.value.lower()
    return text(m.value).lower()


def folds(ms) -> bool:
    """Whether the field needs lower(): not when cased, nor when the compared texts have no
    letters (lower() only changes letters, and no non-ASCII letter lowers to ASCII non-letters)."""
    ms = ms if isinstance(ms, (list, tuple)) else (ms,)
    return any(_folds(m) for m in ms)


def _folds(m: Match) -> bool:
    if m.cased and (m.op is not Op.EQ or isinstance(m.value, str)):   # numbers ignore cased
        return False
    value = like_pattern(m) if m.op in (Op.CONTAINS, Op.STARTSWITH, Op.ENDSWITH, Op.GLOB) else needle(m)
    return not (value.isascii() and not any(c.isalpha() for c in value))


def ipv4_range(network: str) -> tuple[int, int]:
    """An IPv4 network's first and last address as numbers; IPv6 cannot be checked in DuckDB."""
    net = ipaddress.ip_network(network)
    if net.version != 4:
        raise Unsupported(f"duckdb: cidr {network} is IPv6; DuckDB has no IPv6 type without the inet extension")
    return int(net.network_address), int(net.broadcast_address)


def number_literal(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise Unsupported(f"cannot compare with {value}")
    return repr(value) if isinstance(value, float) else str(int(value))

"""What every backend shares: the Jinja environment, one walk over the query IR, the mapping.

A backend is a small subclass (its name = its folder under templates/, its escaping
filters, its option defaults) plus templates/<name>/:
  match.j2   one macro per Op taking the Match (`eq(m)`, `contains(m)`, ...), plus
             and_(parts), or_(parts), not_(part), group(part); optionally in_(matches)
             to fold an Or of equalities on one field. A missing macro = unsupported.
  query.j2   the whole query, from `where`, `rule`, `mapping`, `options`.
  mappings/  field mappings per logsource (see mapping.py).
"""
from __future__ import annotations

import ipaddress
from functools import cached_property

from ..errors import TranspileError, Unsupported
from ..mapping import Mapping, Target, builtin_mappings, choose, load_mappings, logsource_key
from ..nodes import And, Match, Not, Op, Or, Query, Wild
from ..resources import resource_dir


class Backend:
    name = ""                       # templates/<name>/
    default_options: dict = {}      # option -> default, shown by `convert --help`

    def __init__(self, mapping_file=None, **options):
        self.options = {**self.default_options, **{k: v for k, v in options.items() if v is not None}}
        self._user_mappings = load_mappings(mapping_file) if mapping_file else None   # -m: one, or a set
        self.mapping: Mapping | None = None   # the mapping of the rule being rendered
        self._chosen: dict = {}               # memo: logsource_key -> mapping (choose tries them all)

    # --- filters: a subclass adds its escaping functions here --------------------------
    def filters(self) -> dict:
        return {}

    def template_globals(self) -> dict:
        return {}

    @cached_property
    def env(self):
        import jinja2      # when the first rule is rendered: a warm convert renders none
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
            undefined=jinja2.StrictUndefined, autoescape=False, auto_reload=False,   # no stat per use
            keep_trailing_newline=False, trim_blocks=True, lstrip_blocks=True)
        env.context_class = _direct_calls_context()
        env.filters.update(self.filters())
        env.globals.update(unsupported=self._unsupported, Op=Op, **self.template_globals())
        return env

    @cached_property
    def macros(self):
        return DirectMacros(self.env.get_template(f"{self.name}/match.j2").module)

    @cached_property
    def builtin_mappings(self) -> list[Mapping]:
        return builtin_mappings(self.name)

    # --- conversion ---------------------------------------------------------------------
    def mapping_for(self, rule) -> Mapping:
        """The user's mapping (one mapping serves every rule; of a set, the one that fits the
        rule's logsource), else the built-in one for the logsource."""
        mappings = self._user_mappings or self.builtin_mappings
        if self._user_mappings is not None and len(mappings) == 1:
            return mappings[0]
        logsource = getattr(rule, "logsource", {})
        key = logsource_key(logsource)
        mapping = self._chosen.get(key)
        if mapping is None:
            mapping = self._chosen[key] = choose(mappings, logsource)
        if mapping is None:
            where = f"mapping {mappings[0].source}" if self._user_mappings else self.name
            raise Unsupported(f"{where} has no field mapping for logsource {rule.logsource}")
        return mapping

    def resolve(self, field: str) -> Target:
        return self.mapping.resolve(field)

    def table(self) -> str:
        return self.options.get("table") or self.mapping.table

    def convert(self, rule) -> str:
        """The query text for one rule; Unsupported if the target cannot say it exactly."""
        try:
            self.mapping = self.mapping_for(rule)
            return self.env.get_template(f"{self.name}/query.j2").render(
                **self.query_parts(rule.query), rule=rule, mapping=self.mapping, table=self.table(),
                options=self.options).strip()
        except TranspileError as e:
            raise e.located(getattr(rule, "path", None), "detection") from None

    def query_parts(self, query) -> dict:
        """What query.j2 renders besides the rule, mapping, table and options: `where`."""
        return {"where": self.render(query)}

    def convert_correlation(self, correlation) -> str:
        """The query for a correlation (transpiler.correlation.Correlation); a backend that
        can express correlations overrides this."""
        raise Unsupported(f"{self.name} cannot convert {correlation.type} correlations",
                          path=correlation.rule.label, where="correlation")

    def render(self, query: Query, parent=None) -> str:
        m = self.macros
        if isinstance(query, Match):
            return self._macro(query.op.value)(query)
        if isinstance(query, Not):
            return m.not_(self.render(query.arg, Not))
        if isinstance(query, And):
            text = m.and_([self.render(a, And) for a in query.args])
        elif isinstance(query, Or):
            text = m.or_(self._render_or_args(query.args))
        else:
            raise TypeError(f"not a query node: {query!r}")
        # Parenthesize any And/Or under a different operator: right for every precedence order.
        return m.group(text) if parent not in (None, type(query)) else text

    def _render_or_args(self, args) -> list[str]:
        """Render an Or's children, folding string equalities on one field into in_() where the
        backend has that macro."""
        if getattr(self.macros, "in_", None) is None:
            return [self.render(a, Or) for a in args]

        def key(a):
            if isinstance(a, Match) and a.op is Op.EQ and isinstance(a.value, str):
                return "in_", a.field, a.cased
            return None
        return self.fold_or(args, key)

    def fold_or(self, args, key, fold=None) -> list[str]:
        """An Or's children, those with the same key(child) (a tuple whose first item names the
        macro) rendered together by fold(key, children), by default that macro; the rest one by
        one. Order of first appearance is kept: deterministic output."""
        fold = fold or (lambda k, group: getattr(self.macros, k[0])(group))
        keys = [key(a) for a in args]
        groups: dict = {}
        for a, k in zip(args, keys):
            if k is not None:
                groups.setdefault(k, []).append(a)
        parts, done = [], set()
        for a, k in zip(args, keys):
            if k is not None and len(groups[k]) > 1:
                if k not in done:
                    done.add(k)
                    parts.append(fold(k, groups[k]))
                continue
            parts.append(self.render(a, Or))
        return parts

    def _macro(self, name: str):
        macro = getattr(self.macros, name, None)
        if macro is None:
            raise Unsupported(f"{self.name} cannot express the '{name}' operation")
        return macro

    def _unsupported(self, message: str):
        raise Unsupported(f"{self.name}: {message}")


# --- calling macros ---------------------------------------------------------------------------
# A query is thousands of calls of small macros. Jinja calls each through a generic path for any
# callable (Context.call, then Macro.__call__ sorting out keyword arguments, defaults, `caller`
# and autoescaping) that costs more than the macro's own work. Our calls pass exactly the
# macro's positional arguments, with autoescaping off (Backend.env): for those the macro's
# compiled function is called straight, which is what Jinja does in the end; any other call
# takes Jinja's path.

def direct(macro):
    """The macro as a function: its compiled body where the call needs nothing else."""
    from jinja2.runtime import Macro
    if type(macro) is not Macro or macro.caller or macro.catch_kwargs or macro.catch_varargs:
        return macro
    body, count = macro._func, macro._argument_count

    def call(*args, **kwargs):
        return body(*args) if len(args) == count and not kwargs else macro(*args, **kwargs)
    return call


class DirectMacros:
    """A template module's macros, each called as direct() calls it."""

    def __init__(self, module):
        self.__dict__["_module"] = module

    def __getattr__(self, name):   # only on a first lookup: the function is then kept as an attribute
        found = direct(getattr(self.__dict__["_module"], name))
        setattr(self, name, found)
        return found


_context_class = None


def _direct_calls_context():
    """Jinja's Context class, with template-side macro calls made as direct() makes them."""
    global _context_class
    if _context_class is None:
        from jinja2.runtime import Context, Macro

        class DirectCalls(Context):
            def call(__self, __obj, *args, **kwargs):  # noqa: N805 - Jinja's own spelling
                if type(__obj) is Macro and not kwargs and len(args) == __obj._argument_count \
                        and not (__obj.caller or __obj.catch_kwargs or __obj.catch_varargs):
                    return __obj._func(*args)
                return Context.call(__self, __obj, *args, **kwargs)
        _context_class = DirectCalls
    return _context_class


# ::ffff:a.b.c.d, an IPv4 address written as IPv6. The evaluator reads it as the IPv6 address it
# is written as (README, cidr); Trino, Java and Kusto may read it as the IPv4 a.b.c.d.
IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")


def covers_ipv4_mapped(network: str) -> bool:
    """Whether an IPv6 network overlaps the IPv4-mapped addresses."""
    net = ipaddress.ip_network(network)
    return net.version == 6 and net.overlaps(IPV4_MAPPED)


# --- an object's JSON text -------------------------------------------------------------------
# The evaluator compares an object by its compact JSON text: keys in the event's order, numbers
# as Python writes them, control characters as \u001f (evaluate.text). An engine that reads
# JSON text writes an object back its own way: Trino's JSON type sorts the keys and writes
# fractions as Java doubles (1.23456785E7), DuckDB writes 1e-7 and 15000000000000000.0, both
# write \u001F. Each member ("key":value) of an object whose value is no object or list is
# written alike, strings, true, false, null and integers; only the members' order and the
# spelling of fractions and of those escapes differ. A test that cannot tell the two texts
# apart selects the same objects in both.

_NUMBER_CHARS = frozenset("0123456789.eE+-")
_VALUE_END = '"0123456789el}]'      # the last character of a JSON value, in either text
_VALUE_START = '"0123456789-tfn{['  # its first
# Where two members or elements meet, JSON's own punctuation stands: a character of these is
# that punctuation only between what may come before it and what may come after it.
_BETWEEN = {"{": (",:[", '"}'), "[": (",:[", _VALUE_START + "]"), "}": (_VALUE_END + "{", ",}]"),
            "]": (_VALUE_END + "[", ",}]"), ",": (_VALUE_END, _VALUE_START)}


def object_text_differs(m) -> bool:
    """Whether the text test m (eq, contains, startswith, endswith, glob, re, fieldref; lowered
    on both sides unless cased) could hold for an object's JSON text as the evaluator writes
    it and not as the engine does, or the reverse. False where no object's text can pass (a
    value not starting with `{`), where every one passes (`*`), and for a contained literal
    that lies inside one member wherever it is found (no punctuation where members meet),
    cannot be part of a number, and under |cased cannot meet the hexadecimal letter of a
    \\u001a escape."""
    if m.op in (Op.CIDR, Op.LT, Op.LTE, Op.GT, Op.GTE, Op.TIMEPART, Op.EXISTS, Op.NULL):
        return False   # no object's text is an address, a number or a time
    parts = text_pattern(m)
    if parts is None:
        return True    # a regex or another field's value: any text
    if parts == ["{}"]:
        return False   # the empty object's text, in both
    literals = [p for p in parts if isinstance(p, str)]
    if not literals:   # only wildcards: a test of the length, and every object's text has 2 or 6+
        return parts.count(Wild.ONE) > 6
    if isinstance(parts[0], str) and not parts[0].startswith("{"):
        return False
    if isinstance(parts[-1], str) and not parts[-1].endswith("}"):
        return False
    if parts != [Wild.STAR, literals[0], Wild.STAR]:
        return True    # several literals, `?`, or a whole object: the order and spelling show
    lit = literals[0]
    return _may_cross_members(lit) or _may_meet_number(lit) or (m.cased and _may_meet_escape(lit))


def text_pattern(m) -> list | None:
    """A text test (eq, contains, startswith, endswith, glob) as the whole text's pattern: its
    literal parts (lowered unless cased; no empty ones) and Wild tokens; None for other tests."""
    from ..evaluate import fold, text
    if m.op is Op.EQ:
        parts = [text(m.value)]
    elif m.op is Op.GLOB:
        parts = list(m.value)
    elif m.op in (Op.CONTAINS, Op.STARTSWITH, Op.ENDSWITH):
        parts = {Op.CONTAINS: [Wild.STAR, m.value, Wild.STAR], Op.STARTSWITH: [m.value, Wild.STAR],
                 Op.ENDSWITH: [Wild.STAR, m.value]}[m.op]
    else:
        return None
    return [p if not isinstance(p, str) or m.cased else fold(p) for p in parts if p != ""]


def _may_cross_members(lit: str) -> bool:
    """Whether some character of lit could be the punctuation between members or elements."""
    for i, c in enumerate(lit):
        if c in _BETWEEN:
            before, after = _BETWEEN[c]
            if (i == 0 or lit[i - 1] in before) and (i == len(lit) - 1 or lit[i + 1] in after):
                return True
    return False


def _may_meet_number(lit: str) -> bool:
    """Whether lit, inside one member, could cover part of a number: all of it number
    characters, or a key's colon then the number's first character."""
    return set(lit) <= _NUMBER_CHARS or any(
        c == ":" and (i == 0 or lit[i - 1] == '"') and lit[i + 1:i + 2] in tuple("0123456789-")
        for i, c in enumerate(lit) if i + 1 < len(lit))


def _may_meet_escape(lit: str) -> bool:
    """Whether lit could cover the last hexadecimal letter of a \\u000b..\\u001f escape."""
    return any(c in "abcdefABCDEF" and ("\\u000".endswith(lit[max(0, j - 5):j]) or
                                        "\\u001".endswith(lit[max(0, j - 5):j]))
               for j, c in enumerate(lit))

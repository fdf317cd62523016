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
from ..mapping import Mapping, Target, builtin_mappings, choose, load_mappings
from ..nodes import And, Match, Not, Op, Or, Query
from ..resources import resource_dir


class Backend:
    name = ""                       # templates/<name>/
    default_options: dict = {}      # option -> default, shown by `convert --help`

    def __init__(self, mapping_file=None, **options):
        self.options = {**self.default_options, **{k: v for k, v in options.items() if v is not None}}
        self._user_mappings = load_mappings(mapping_file) if mapping_file else None   # -m: one, or a set
        self.mapping: Mapping | None = None   # the mapping of the rule being rendered

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
        env.filters.update(self.filters())
        env.globals.update(unsupported=self._unsupported, Op=Op, **self.template_globals())
        return env

    @cached_property
    def macros(self):
        return self.env.get_template(f"{self.name}/match.j2").module

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
        mapping = choose(mappings, getattr(rule, "logsource", {}))
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
            where = self.render(rule.query)
            return self.env.get_template(f"{self.name}/query.j2").render(
                where=where, rule=rule, mapping=self.mapping, table=self.table(),
                options=self.options).strip()
        except TranspileError as e:
            raise e.located(getattr(rule, "path", None), "detection") from None

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


# ::ffff:a.b.c.d, an IPv4 address written as IPv6. The evaluator reads it as the IPv6 address it
# is written as (README, cidr); Trino, Java and Kusto may read it as the IPv4 a.b.c.d.
IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")


def covers_ipv4_mapped(network: str) -> bool:
    """Whether an IPv6 network overlaps the IPv4-mapped addresses."""
    net = ipaddress.ip_network(network)
    return net.version == 6 and net.overlaps(IPV4_MAPPED)

"""Analysis of a loaded rule: what a detection engineer reads in a rule catalog.

For one rule, from its query IR (And/Or/Not over Match) and its condition AST:
  stages       stage 0 is the condition; then each selection it uses, or `not <filter>`
               for one it negates, with that selection's predicates;
  exclusions   the top-level NOT(...) conjuncts: what the rule actively suppresses;
  indicators   every field/operator/value the rule matches positively (under an even
               number of NOTs), with how many OTHER rules of a corpus look for the same;
  events       the actions it covers: (provider, event) from fields such as
               eventSource/eventName, found per AND-branch, so `eventSource: iam` with
               `eventName: [A, B]` covers (iam, A) and (iam, B), never a cross product of
               unrelated branches;
  attack       ATT&CK tactics and techniques named by its tags (names from the bundled
               table transpiler/data/attack.json, no network);
  same_action  the corpus rules that cover one of the same events.

A Corpus indexes many rules once, so analysing each of them stays linear.
"""
from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import yaml

from . import detection
from .condition import parse_condition
from .errors import TranspileError
from .nodes import AllOf, And, Match, Not, OneOf, Op, Or, Ref, TimePart, Wild

try:
    _Dumper = yaml.CSafeDumper
except AttributeError:  # pragma: no cover
    _Dumper = yaml.SafeDumper

KEYWORD = "(keyword)"          # how a field-less (full-text) Match is shown
NO_VALUE = "(no value, null check)"

# Where the action a rule detects is written, per logsource product: the event fields,
# the provider fields, and the provider's display name. AWS: eventSource iam.amazonaws.com
# + eventName CreateUser is the event (AWS-iam, CreateUser).
EVENT_FIELDS = {
    "aws": ("AWS", ("eventName",), ("eventSource",)),
    "gcp": ("GCP", ("gcp.audit.method_name", "protoPayload.methodName", "data.protoPayload.methodName",
                    "eventName"), ("protoPayload.serviceName", "data.protoPayload.serviceName")),
    "azure": ("Azure", ("operationName", "OperationName", "OperationNameValue"), ()),
    "m365": ("M365", ("Operation", "eventName"), ("Workload", "eventSource")),
    "okta": ("Okta", ("eventType",), ()),
    "github": ("GitHub", ("action",), ()),
    "windows": ("Windows", ("EventID",), ("Provider_Name",)),
}
_SERVICE_HOST = re.compile(r"^([^.]+)\.(amazonaws|googleapis)\.com$", re.I)
_MAX_BRANCHES = 256            # past this many AND-branches, merge them (coverage stays a superset)
_TECHNIQUE = re.compile(r"^t\d{4}(\.\d{3})?$")
_TACTIC_LIKE = re.compile(r"^[a-z]+([-_][a-z]+)*$")    # stealth, defense-impairment; not g0016, s0002


# --- result types ---------------------------------------------------------------------------

@dataclass
class Predicate:
    field: str                 # KEYWORD for full-text
    kind: str                  # the Op name; exists/null become is_not_null / is_null
    value: str                 # display text
    cased: bool = False


@dataclass
class Stage:
    index: int
    name: str                  # "condition", "selection", "not filter"
    source: str                # condition text, or the selection's YAML as written
    negated: bool = False
    tree: list = field(default_factory=list)          # nested {"all"|"any"|"not": ...} / Predicate dicts
    predicates: list = field(default_factory=list)    # every Predicate of the stage, tree order


@dataclass
class Row:
    """An exclusion: a field and kind the rule suppresses, with the values."""
    field: str
    kind: str
    values: list
    stage: str = ""            # the negated stage it comes from, when one matches exactly


@dataclass
class Indicator:
    field: str
    kind: str
    value: str
    cased: bool = False
    corpus: int | None = None  # other rules of the corpus with the same indicator; None: no corpus

    @property
    def key(self):
        return (self.field, self.kind, self.value if self.cased else self.value.lower(), self.cased)


@dataclass(frozen=True)
class Event:
    family: str                # logsource product: aws, windows, ...
    provider: str              # AWS-iam, or AWS when the rule names no provider
    event: str                 # CreateUser
    specific: bool = True      # False: the provider is only the product

    def same_action(self, other: "Event") -> bool:
        return (self.family == other.family and self.event.lower() == other.event.lower()
                and (self.provider == other.provider or not self.specific or not other.specific))


@dataclass
class Tactic:
    id: str
    name: str
    shortname: str
    techniques: list = field(default_factory=list)   # [{"id", "name"}]


@dataclass
class Analysis:
    title: str
    id: str | None
    path: str
    level: str | None
    status: str | None
    logsource: dict
    stages: list
    exclusions: list
    indicators: list
    events: list
    attack: list               # Tactic rows, matrix order
    other_tags: list           # tags that are neither tactics nor techniques (groups, software, ...)
    same_action: list          # [{"title", "id", "path", "events"}]

    def as_dict(self) -> dict:
        out = asdict(self)
        out["events"] = [{"provider": e.provider, "event": e.event} for e in self.events]
        return out


# --- the entry point ------------------------------------------------------------------------

def analyze(rule, corpus: "Corpus | None" = None, placeholders=None) -> Analysis:
    """Analyse one loaded rule (kind 'rule'); with a corpus, count and relate it to others."""
    if rule.query is None:
        raise ValueError(f"{rule.label}: only detection rules can be analysed, not a {rule.kind}")
    found = corpus.indicators_of(rule) if corpus is not None else indicators(rule)
    events_ = corpus.events_of(rule) if corpus is not None else events(rule)
    same = []
    if corpus is not None:
        for ind in found:
            ind.corpus = corpus.count(ind.key, rule)
        same = [{"title": r.title, "id": r.id, "path": r.label,
                 "events": sorted({f"{e.provider} {e.event}" for e in corpus.events_of(r)
                                   if any(e.same_action(mine) for mine in events_)})}
                for r in corpus.same_action(rule, events_)]
    tactics, others = attack(rule.tags)
    used = _used(rule, placeholders)
    return Analysis(rule.title, rule.id, rule.label, rule.level, rule.status, dict(rule.logsource),
                    stages(rule, placeholders, used), exclusions(rule, placeholders, used), found, events_,
                    tactics, others, same)


# --- stages ---------------------------------------------------------------------------------

def stages(rule, placeholders=None, used=None) -> list[Stage]:
    """Stage 0 is the condition; then every selection it uses, in order of first use, named
    `not <name>` when it is used under an odd number of NOTs."""
    out = [Stage(0, "condition", "\n".join(str(c) for c in rule.conditions))]
    section = getattr(rule, "detection", None) or {}
    for name, negated, query in (used if used is not None else _used(rule, placeholders)):
        stage = Stage(len(out), f"not {name}" if negated else name, _yaml({name: section[name]}), negated)
        if query is not None:
            stage.tree = [_tree(q) for q in (query.args if isinstance(query, And) else (query,))]
            stage.predicates = [_predicate_dict(m) for m in _matches(query)]
        out.append(stage)
    return out


def _used(rule, placeholders) -> list:
    """(name, negated, query) for each selection the condition(s) use, in order of first use."""
    section = getattr(rule, "detection", None) or {}
    names = [n for n in section if isinstance(n, str) and n not in ("condition", "timeframe", "rules")]
    seen = []
    for text in rule.conditions:
        try:
            ast = parse_condition(text)
        except TranspileError:
            continue
        for name, negated in _leaves(ast, names, False):
            if (name, negated) not in seen:
                seen.append((name, negated))
    out = []
    for name, negated in seen:
        try:
            query = detection.selection(name, section[name], placeholders)
        except TranspileError:
            query = None
        out.append((name, negated, query))
    return out


def _leaves(node, names, negated):
    if isinstance(node, Ref):
        if node.name in names:
            yield node.name, negated
    elif isinstance(node, (OneOf, AllOf)):
        for name in _expand(node.pattern, names):
            yield name, negated
    elif isinstance(node, Not):
        yield from _leaves(node.arg, names, not negated)
    else:
        for arg in node.args:
            yield from _leaves(arg, names, negated)


def _expand(pattern, names):
    """The names `1 of pattern` / `all of pattern` stands for (as rule.py resolves them)."""
    if pattern == "them":
        return [n for n in names if not n.startswith("_")]
    regex = re.compile(fnmatch.translate(pattern))
    return [n for n in names if regex.match(n)]


def _tree(query):
    if isinstance(query, Match):
        return _predicate_dict(query)
    if isinstance(query, Not):
        return {"not": _tree(query.arg)}
    return {"all" if isinstance(query, And) else "any": [_tree(a) for a in query.args]}


def tree_lines(nodes, indent="") -> list[str]:
    """A stage's predicate tree as indented text lines (top level: all must hold)."""
    lines = []
    for node in nodes:
        if "field" in node:
            cased = ", cased" if node["cased"] else ""
            value = "" if node["kind"] in ("is_null", "is_not_null") else f" {node['value']}"
            lines.append(f"{indent}{node['field']} {node['kind']}{cased}{value}")
        elif "not" in node:
            lines.append(f"{indent}not:")
            lines.extend(tree_lines([node["not"]], indent + "  "))
        else:
            key = "all" if "all" in node else "any"
            lines.append(f"{indent}{key} of:")
            lines.extend(tree_lines(node[key], indent + "  "))
    return lines


# --- exclusions -----------------------------------------------------------------------------

def exclusions(rule, placeholders=None, used=None) -> list[Row]:
    """The top-level NOT(...) conjuncts, as rows of field, kind and excluded values.
    A row names the negated stage it comes from when the NOT is exactly that selection."""
    query = rule.query
    conjuncts = query.args if isinstance(query, And) else (query,)
    negated = {}
    for name, neg, sel in (used if used is not None else _used(rule, placeholders)):
        if neg and sel is not None:
            negated.setdefault(sel, f"not {name}")
    rows: dict = {}
    for conjunct in conjuncts:
        if not isinstance(conjunct, Not):
            continue
        stage = negated.get(conjunct.arg, "")
        for m in _matches(conjunct.arg, positive_only=True):
            p = _predicate(m)
            row = rows.setdefault((stage, p.field, p.kind), Row(p.field, p.kind, [], stage))
            value = NO_VALUE if p.kind in ("is_null", "is_not_null") else p.value
            if value not in row.values:
                row.values.append(value)
    return list(rows.values())


# --- indicators -----------------------------------------------------------------------------

def indicators(rule) -> list[Indicator]:
    """Every (field, kind, value) matched positively, each once, sorted by field, kind, value."""
    seen = {}
    for m in _matches(rule.query, positive_only=True):
        p = _predicate(m)
        ind = Indicator(p.field, p.kind, p.value, p.cased)
        seen.setdefault(ind.key, ind)
    return sorted(seen.values(), key=lambda i: (i.field == KEYWORD, i.field, i.kind, i.value, i.cased))


# --- event coverage -------------------------------------------------------------------------

def events(rule) -> list[Event]:
    """The (provider, event) pairs the rule can match, from its positive equality tests."""
    product = str(rule.logsource.get("product") or "").lower()
    spec = EVENT_FIELDS.get(product)
    if spec is None or rule.query is None:
        return []
    label, event_fields, provider_fields = spec
    found = set()
    for providers, names in _branches(rule.query, event_fields, provider_fields):
        if not names:
            continue
        for name in names:
            for provider in sorted(providers) if providers else (None,):
                if provider is None:
                    found.add(Event(product, label, name, specific=False))
                else:
                    found.add(Event(product, _provider_name(label, provider), name))
    return sorted(found, key=lambda e: (e.provider, e.event))


def _provider_name(label, value) -> str:
    host = _SERVICE_HOST.match(value)
    return f"{label}-{host.group(1) if host else value}"


def _branches(query, event_fields, provider_fields, positive=True) -> list:
    """The query as OR-alternatives of (providers, events): sets of values, None = any.
    Alternatives with equal providers are merged (a union of events), which is exact."""
    if isinstance(query, Match):
        if positive and query.op is Op.EQ and not isinstance(query.value, bool):
            text = _scalar(query.value)
            if query.field in event_fields:
                return [(None, frozenset((text,)))]
            if query.field in provider_fields:
                return [(frozenset((text,)), None)]
        return [(None, None)]
    if isinstance(query, Not):
        return [(None, None)]    # a negation says what is NOT seen, never which event is
    parts = [_branches(a, event_fields, provider_fields, positive) for a in query.args]
    if isinstance(query, Or):
        return _merge([alt for part in parts for alt in part])
    combined = [(None, None)]
    for part in parts:
        combined = _merge([(_meet(p1, p2), _meet(n1, n2)) for p1, n1 in combined for p2, n2 in part])
        combined = [alt for alt in combined if alt[0] != frozenset() and alt[1] != frozenset()]
        if len(combined) > _MAX_BRANCHES:
            combined = [(_join(a[0] for a in combined), _join(a[1] for a in combined))]
    return combined


def _meet(a, b):
    return b if a is None else a if b is None else a & b


def _join(sets):
    out = frozenset()
    for s in sets:
        if s is None:
            return None
        out |= s
    return out


def _merge(alternatives) -> list:
    by_provider: dict = {}
    for providers, names in alternatives:
        if providers in by_provider:
            old = by_provider[providers]
            by_provider[providers] = None if old is None or names is None else old | names
        else:
            by_provider[providers] = names
    return sorted(by_provider.items(), key=lambda kv: (sorted(kv[0] or ()), sorted(kv[1] or ())))


# --- ATT&CK ---------------------------------------------------------------------------------

@cache
def attack_table() -> dict:
    """The bundled ATT&CK table: tactics in matrix order, techniques id -> name, tactics."""
    return json.loads((Path(__file__).parent / "data" / "attack.json").read_text(encoding="utf-8"))


def attack(tags) -> tuple[list[Tactic], list[str]]:
    """Tactic rows (matrix order) with the tagged techniques under them, and the other tags.
    A technique goes under the tagged tactics it belongs to, or all of its tactics if the
    rule tags none of them; an unknown technique goes under an 'Unknown' row."""
    table = attack_table()
    by_short = {t["shortname"]: t for t in table["tactics"]}
    tactics, techniques, others = [], [], []
    for tag in tags:
        low = str(tag).lower()
        if not low.startswith("attack."):
            continue
        name = low[len("attack."):]
        if _TECHNIQUE.match(name):
            if name.upper() not in techniques:
                techniques.append(name.upper())
        elif name.replace("_", "-") in by_short or _TACTIC_LIKE.match(name):
            # a tactic; one the table does not know (a newer ATT&CK's) keeps its tag's words
            if name.replace("_", "-") not in tactics:
                tactics.append(name.replace("_", "-"))
        elif tag not in others:
            others.append(tag)
    rows = {}
    for short in tactics:
        t = by_short.get(short)
        rows[short] = Tactic(t["id"], t["name"], short) if t else Tactic("", _words(short), short)
    for tid in techniques:
        entry = table["techniques"].get(tid)
        if entry is None:
            homes = ["unknown"]
        else:
            homes = [t for t in entry["tactics"] if t in tactics] or list(entry["tactics"]) or ["unknown"]
        for home in homes:
            if home not in rows:
                t = by_short.get(home)
                rows[home] = Tactic(t["id"], t["name"], home) if t else Tactic("", "Technique not in the ATT&CK table", "unknown")
            rows[home].techniques.append({"id": tid, "name": entry["name"] if entry else "(not in the ATT&CK table)"})
    order = {t["shortname"]: i for i, t in enumerate(table["tactics"])}
    order["unknown"] = len(order) + 1
    return sorted(rows.values(), key=lambda r: (order.get(r.shortname, len(table["tactics"])), r.shortname)), others


def _words(shortname: str) -> str:
    return " ".join(w.capitalize() if w not in ("and", "of") else w for w in shortname.split("-"))


# --- a corpus of rules ----------------------------------------------------------------------

class Corpus:
    """Many rules indexed once: indicator counts and rules detecting the same action."""

    def __init__(self, rules):
        self.rules = [r for r in rules if r.kind == "rule" and r.query is not None]
        self._indicators: dict = {}      # indicator key -> identities of the rules using it
        self._found: dict = {}           # id(rule) -> (rule, its indicators)
        self._events: dict = {}          # id(rule) -> (rule, its events)
        self._by_event: dict = {}
        for r in self.rules:
            ident = identity(r)
            found = indicators(r)
            self._found[id(r)] = (r, found)
            for ind in found:
                self._indicators.setdefault(ind.key, set()).add(ident)
            evs = events(r)
            self._events[id(r)] = (r, evs)
            for e in evs:
                self._by_event.setdefault((e.family, e.event.lower()), []).append((e, r))

    def count(self, key, rule) -> int:
        """How many other rules (by id, or by file where there is none) use this indicator."""
        found = self._indicators.get(key, ())
        return len(found) - (identity(rule) in found)

    def indicators_of(self, rule) -> list[Indicator]:
        """The rule's indicators, fresh copies (analyze fills in their counts)."""
        mine, found = self._found.get(id(rule), (None, None))
        if mine is not rule:
            return indicators(rule)
        return [Indicator(i.field, i.kind, i.value, i.cased) for i in found]

    def events_of(self, rule) -> list[Event]:
        mine, evs = self._events.get(id(rule), (None, None))
        return evs if mine is rule else events(rule)

    def same_action(self, rule, events_) -> list:
        """The other rules covering one of these events, sorted by title and path."""
        me = identity(rule)
        found = {}
        for mine in events_:
            for e, other in self._by_event.get((mine.family, mine.event.lower()), ()):
                if identity(other) != me and e.same_action(mine):
                    found.setdefault(id(other), other)
        return sorted(found.values(), key=lambda r: (r.title.lower(), r.label))


def identity(rule) -> str:
    return str(rule.id) if rule.id else rule.label


# --- helpers --------------------------------------------------------------------------------

def _matches(query, positive_only=False, positive=True):
    """The Match leaves of a query in tree order; with positive_only, those under an even
    number of NOTs."""
    if isinstance(query, Match):
        if positive or not positive_only:
            yield query
    elif isinstance(query, Not):
        yield from _matches(query.arg, positive_only, not positive)
    else:
        for arg in query.args:
            yield from _matches(arg, positive_only, positive)


def _predicate(m: Match) -> Predicate:
    if m.op is Op.EXISTS:
        kind = "is_not_null" if m.value else "is_null"
    elif m.op is Op.NULL:
        kind = "is_null"
    else:
        kind = m.op.value
    return Predicate(m.field if m.field is not None else KEYWORD, kind, value_text(m), m.cased)


def _predicate_dict(m: Match) -> dict:
    p = _predicate(m)
    return {"field": p.field, "kind": p.kind, "value": p.value, "cased": p.cased}


def value_text(m: Match) -> str:
    """A Match value as people read it: globs with * and ? (literal ones escaped)."""
    if m.op is Op.GLOB:
        return "".join(p.value if isinstance(p, Wild) else re.sub(r"([*?\\])", r"\\\1", p) for p in m.value)
    if m.op in (Op.EXISTS, Op.NULL):
        return ""
    if isinstance(m.value, TimePart):
        return f"{m.value.part} {m.value.cmp} {m.value.number}"
    return _scalar(m.value)


def _scalar(value) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    return json.dumps(value)


def _yaml(data) -> str:
    try:
        return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                         allow_unicode=True, indent=4, width=1000).rstrip("\n")
    except yaml.YAMLError:     # pragma: no cover - the section was loaded from YAML
        return repr(data)


# --- text for people ------------------------------------------------------------------------

def render_text(a: Analysis) -> str:
    """The analysis as plain text, sections in the catalog page's order."""
    out = [a.title + (f"  ({a.id})" if a.id else ""), a.path]
    facts = [f"level {a.level}" if a.level else "", f"status {a.status}" if a.status else "",
             "logsource " + ", ".join(f"{k} {v}" for k, v in a.logsource.items()) if a.logsource else ""]
    if any(facts):
        out.append(", ".join(f for f in facts if f))

    out += ["", "Stages"]
    for st in a.stages:
        out.append(f"  Stage {st.index}: {st.name}")
        if st.index == 0:
            out.extend("    " + line for line in st.source.splitlines())
        else:
            out.extend(tree_lines(st.tree, "    "))

    out += ["", "Exclusions"]
    out += _table(["field", "kind", "excluded values", "from"],
                  [[r.field, r.kind, ", ".join(r.values), r.stage] for r in a.exclusions]) or ["  (none)"]

    out += ["", "Indicators"]
    out += _table(["field", "kind", "value", "corpus"],
                  [[i.field, i.kind + (", cased" if i.cased else ""), i.value,
                    "" if i.corpus is None else str(i.corpus)] for i in a.indicators]) or ["  (none)"]

    out += ["", "Event coverage"]
    out += _table(["provider", "event"], [[e.provider, e.event] for e in a.events]) or ["  (none)"]

    out += ["", "ATT&CK"]
    rows = []
    for t in a.attack:
        techs = "; ".join(f"{x['id']} {x['name']}" for x in t.techniques)
        rows.append([f"{t.name} ({t.id})" if t.id else t.name, techs])
    out += _table(["tactic", "techniques"], rows) or ["  (none)"]
    if a.other_tags:
        out.append("  other tags: " + ", ".join(a.other_tags))

    out += ["", "Rules detecting the same action"]
    out += _table(["rule", "path", "events"],
                  [[r["title"], r["path"], ", ".join(r["events"])] for r in a.same_action]) or ["  (none)"]
    return "\n".join(out) + "\n"


def _table(header, rows) -> list[str]:
    if not rows:
        return []
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells):
        return ("  " + "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))).rstrip()

    return [line(header)] + [line(r) for r in rows]

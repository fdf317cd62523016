"""Match many rules against many events fast, with the reference evaluator.

Most CloudTrail rules require an equality on a few fields (eventName, eventSource): a rule
whose query is `eventName = CreateUser and ...` cannot select an event whose eventName is
anything else. Each rule is indexed under one such required field and its values, so an
event is evaluated only against the rules that can match it, plus the rules with no such
field. The answers are exactly those of evaluate.matches (the index only skips rules whose
required equality already fails).
"""
from __future__ import annotations

from collections import Counter, defaultdict

from .evaluate import _getter, compile_query, text
from .nodes import And, Match, Op, Or


def required_values(query):
    """{field: values} pairs the query requires: for each, an event must have one of the
    values (compared lower-case) in that field to be selectable at all."""
    if isinstance(query, Match):
        if query.op is Op.EQ and query.field is not None and query.value is not None:
            return {query.field: frozenset({text(query.value).lower()})}
        return {}
    if isinstance(query, And):
        # Two conjuncts on one field: either's values are required, not their intersection,
        # since a list holds several values (Tags|all: [a, b] selects {Tags: [a, b]}).
        out = {}
        for arg in query.args:
            for field, values in required_values(arg).items():
                if field not in out or len(values) < len(out[field]):
                    out[field] = values
        return out
    if isinstance(query, Or):
        branches = [required_values(a) for a in query.args]
        common = set.intersection(*(set(b) for b in branches))
        return {f: frozenset().union(*(b[f] for b in branches)) for f in common}
    return {}


class RuleSet:
    def __init__(self, rules):
        self.rules = [r for r in rules if r.query is not None]
        self._tests = [compile_query(r.query) for r in self.rules]
        required = [required_values(r.query) for r in self.rules]
        # Index each rule under its most common required field, so events look up few fields.
        popularity = Counter(f for req in required for f in req)
        self._index = defaultdict(lambda: defaultdict(list))   # field -> value -> [rule nos]
        self._always = []
        self._fields = None     # (value getter, value -> rule nos) per indexed field
        for n, req in enumerate(required):
            if not req:
                self._always.append(n)
                continue
            field = max(req, key=lambda f: (popularity[f], f))
            for value in req[field]:
                self._index[field][value].append(n)

    def matching(self, event: dict) -> list:
        """The rules that select the event, in rule order."""
        return [self.rules[n] for n in self.numbers(event)]

    def numbers(self, event: dict) -> list:
        """The positions (in self.rules) of the rules that select the event, in order."""
        return [n for n in self.candidates(event) if self._tests[n](event)]

    def candidates(self, event: dict) -> list:
        """The positions of the rules whose required values the event has, in order."""
        if self._fields is None:
            self._fields = [(_getter(field), by_value) for field, by_value in self._index.items()]
        candidates = set(self._always)
        for get, by_value in self._fields:
            for value in get(event):
                found = by_value.get(value.lower() if isinstance(value, str) else text(value).lower())
                if found:
                    candidates.update(found)
        return sorted(candidates)

    def test(self, n: int, event: dict) -> bool:
        return self._tests[n](event)

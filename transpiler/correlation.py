"""Sigma correlations and filters (specification v2.1): resolving them against the loaded
rules, and the reference semantics for evaluating correlations over an event stream.

Window semantics, shared by the evaluator and every backend that converts correlations:
events selected by the referenced rules are grouped by the group-by fields (an event that
lacks one of them is not counted) and ordered by time. At each such event e, the window is
every event of the group whose time t satisfies t_e - timespan <= t <= t_e (a sliding
window ending at e, like SQL's RANGE BETWEEN INTERVAL 'timespan' PRECEDING AND CURRENT ROW).
The correlation triggers at e when the window's aggregate satisfies the condition. One alert
is reported per group: first and last trigger time and how many events triggered.

- event_count: number of events in the window.
- value_count: number of distinct values (text form, exact) of `field` in the window.
- value_sum, value_avg, value_percentile: sum, mean, percentile (linear interpolation) of
  the numeric values of `field` in the window; no numeric value, no trigger.
- temporal: number of distinct referenced rules with an event in the window; the default
  condition is "all of them".
- temporal_ordered: the referenced rules' events occur in the listed order within timespan.
"""
from __future__ import annotations

import bisect
import datetime
import re
from collections import defaultdict
from dataclasses import dataclass, field as dc_field, replace

from .errors import RuleError, TranspileError, Unsupported
from .evaluate import compile_query, field_values, number, text, timestamp
from .nodes import and_

TYPES = ("event_count", "value_count", "temporal", "temporal_ordered", "value_sum", "value_avg",
         "value_percentile")
NEEDS_FIELD = ("value_count", "value_sum", "value_avg", "value_percentile")
OPERATORS = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b,
             "lte": lambda a, b: a <= b, "eq": lambda a, b: a == b, "neq": lambda a, b: a != b}
_TIMESPAN = re.compile(r"([1-9][0-9]*)([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# The longest timespan: from 0001-01-01 to 9999-12-31, the times an event can have (Python's
# datetime, ISO-8601's four-digit years); Python, SQL intervals and KQL timespans all hold it.
MAX_TIMESPAN = (datetime.date.max - datetime.date.min).days * 86400
# Fields tried, in order, for an event's time when the caller names none.
TIME_FIELDS = ("eventTime", "@timestamp", "timestamp", "TimeGenerated", "time", "EventTime", "UtcTime")


@dataclass(frozen=True)
class Correlation:
    rule: object                  # the correlation's own Rule (meta: title, id, level, ...)
    type: str
    rules: tuple                  # the referenced Rules (kind 'rule'), in the listed order
    group_by: tuple
    timespan: int                 # seconds
    condition: tuple              # ((operator, number), ...): all must hold
    field: str | None = None
    percentile: float | None = None
    aliases: dict = dc_field(default_factory=dict, compare=False)   # alias -> {rule name/id/title: field}
    generate: bool = False

    def group_fields(self, base) -> tuple:
        """The event fields that hold this correlation's group-by values for one base rule."""
        return tuple(self._alias(name, base) for name in self.group_by)

    def value_field(self, base) -> str | None:
        return self._alias(self.field, base) if self.field else None

    def _alias(self, name, base):
        mapping = self.aliases.get(name)
        if not mapping:
            return name
        for key in (base.name, base.id, base.title):
            if key in mapping:
                return mapping[key]
        return name


def resolve(rules) -> tuple[list[Correlation], list, list[TranspileError]]:
    """Apply filters to the rules they name and resolve every correlation.

    Returns the correlations, the detection rules (filters applied), and the errors."""
    errors = []
    detections = [r for r in rules if r.kind == "rule"]
    detections = apply_filters(detections, [r for r in rules if r.kind == "filter"], errors)
    index = _index(detections)
    chained = _index([r for r in rules if r.kind == "correlation"])
    correlations = []
    for doc in (r for r in rules if r.kind == "correlation"):
        try:
            correlations.append(_correlation(doc, index, chained))
        except TranspileError as e:
            errors.append(e.located(doc.label, "correlation"))
    return correlations, detections, errors


def standalone(detections, correlations) -> list:
    """The rules that report their own matches: all but those a correlation uses with
    `generate: false` (the spec's default)."""
    hidden = {id(b) for c in correlations if not c.generate for b in c.rules}
    return [r for r in detections if id(r) not in hidden]


def _index(detections) -> dict:
    """Reference -> rule, by id, then name, then title (suzaku names base rules by title)."""
    index = {}
    for key in ("title", "name", "id"):          # later keys win: id beats name beats title
        for r in detections:
            value = getattr(r, key)
            if value:
                index[str(value)] = r
    return index


def _correlation(doc, index, chained=None) -> Correlation:
    body = doc.body
    kind = body.get("type")
    if kind not in TYPES:
        raise RuleError(f"type {kind!r} is not one of {', '.join(TYPES)}", where="correlation.type",
                        kind="correlation")
    refs = body.get("rules")
    if isinstance(refs, str):
        refs = [refs]
    if not isinstance(refs, list) or not refs:
        raise RuleError("rules must list the referenced rules' ids or names", where="correlation.rules",
                        kind="correlation")
    base = []
    for ref in refs:
        rule = index.get(str(ref))
        if rule is None and str(ref) in (chained or {}):
            raise Unsupported(f"{ref!r} is a correlation: correlations of correlations (chains) are not "
                              "supported", where="correlation.rules")
        if rule is None:
            raise RuleError(f"no loaded rule has id, name or title {ref!r}", where="correlation.rules",
                            kind="correlation")
        base.append(rule)
    group_by = body.get("group-by") or []
    if isinstance(group_by, str):
        group_by = [group_by]
    if not isinstance(group_by, list) or not all(isinstance(g, str) for g in group_by):
        raise RuleError("group-by must be a list of field names", where="correlation.group-by", kind="correlation")
    condition, value_field, percentile = _condition(body.get("condition"), kind, len(base))
    aliases = body.get("aliases") or {}
    if not isinstance(aliases, dict) or not all(isinstance(v, dict) for v in aliases.values()):
        raise RuleError("aliases must map alias -> {rule name: field}", where="correlation.aliases",
                        kind="correlation")
    return Correlation(doc, kind, tuple(base), tuple(group_by), timespan_seconds(body.get("timespan")),
                       condition, value_field, percentile, aliases, bool(body.get("generate", False)))


def timespan_seconds(spec) -> int:
    m = _TIMESPAN.fullmatch(str(spec)) if spec is not None else None
    if not m:
        raise RuleError(f"timespan {spec!r} must be a number and a unit s, m, h, d or w (e.g. 5m)",
                        where="correlation.timespan", kind="correlation")
    digits = m.group(1)
    seconds = int(digits) * _UNIT[m.group(2)] if len(digits) <= 15 else MAX_TIMESPAN + 1
    if seconds > MAX_TIMESPAN:
        raise RuleError(f"timespan {_clip(str(spec))} is longer than {MAX_TIMESPAN // 86400}d, the span from year "
                        "1 to 9999 that event times can have", where="correlation.timespan", kind="correlation")
    return seconds


def _clip(text: str, size: int = 40) -> str:
    return text if len(text) <= size else f"{text[:size // 2]}...({len(text)} characters)"


def _condition(cond, kind, rule_count):
    where = "correlation.condition"
    if cond is None and kind in ("temporal", "temporal_ordered"):
        return (("gte", rule_count),), None, None
    if not isinstance(cond, dict):
        raise RuleError("condition must be a map such as {gte: 10}", where=where, kind="correlation")
    unknown = set(cond) - set(OPERATORS) - {"field", "percentile"}
    if unknown:
        raise RuleError(f"unknown condition keys: {', '.join(sorted(map(str, unknown)))}", where=where,
                        kind="correlation")
    ops = []
    for op in OPERATORS:
        if op in cond:
            value = cond[op]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise RuleError(f"{op} needs a number, not {value!r}", where=where, kind="correlation")
            ops.append((op, value))
    if not ops:
        raise RuleError("condition needs one of gt, gte, lt, lte, eq, neq", where=where, kind="correlation")
    value_field = cond.get("field")
    if kind in NEEDS_FIELD and not isinstance(value_field, str):
        raise RuleError(f"{kind} needs condition.field naming the field to aggregate", where=where,
                        kind="correlation")
    percentile = cond.get("percentile")
    if kind == "value_percentile":
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 0 <= percentile <= 100:
            raise RuleError("value_percentile needs condition.percentile between 0 and 100", where=where,
                            kind="correlation")
    return tuple(ops), value_field if kind in NEEDS_FIELD else None, percentile


# --- filters ------------------------------------------------------------------------------

def apply_filters(detections, filters, errors) -> list:
    """Each filter adds its condition (AND) to the rules it names whose logsource it fits."""
    if not filters:
        return detections
    index = _index(detections)
    extra = defaultdict(list)
    for f in filters:
        names = f.body.get("rules")
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not names:
            errors.append(RuleError("filter.rules must list the rules to filter", path=f.label,
                                    where="filter.rules", kind="filter"))
            continue
        for name in names:
            rule = index.get(str(name))
            if rule is None:
                errors.append(RuleError(f"no loaded rule has id, name or title {name!r}", path=f.label,
                                        where="filter.rules", kind="filter"))
            elif _fits(f.logsource, rule.logsource):
                extra[id(rule)].append(f.query)
    out = []
    for rule in detections:
        if id(rule) in extra:
            rule = _with_query(rule, and_([rule.query, *extra[id(rule)]]))
        out.append(rule)
    return out


def _fits(filter_source: dict, rule_source: dict) -> bool:
    rule = {str(k).lower(): str(v).lower() for k, v in (rule_source or {}).items()}
    return all(rule.get(str(k).lower()) == str(v).lower() for k, v in (filter_source or {}).items())


def _with_query(rule, query):
    return replace(rule, query=query)


# --- evaluation ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Alert:
    correlation: Correlation
    group: tuple            # ((field, value), ...)
    first: datetime.datetime
    last: datetime.datetime
    triggers: int           # events at which the condition held

    def as_dict(self) -> dict:
        c = self.correlation.rule
        return {"rule_id": c.id, "title": c.title, "level": c.level, "type": self.correlation.type,
                "group": dict(self.group), "first_trigger": _iso(self.first), "last_trigger": _iso(self.last),
                "triggers": self.triggers}


def _iso(moment) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment.tzinfo \
        else moment.isoformat()


def event_time(event: dict, time_field: str | None = None):
    """An event's time as an aware datetime (naive ISO text is taken as UTC), or None."""
    for name in ((time_field,) if time_field else TIME_FIELDS):
        for value in field_values(event, name):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                try:
                    return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
                except (OverflowError, OSError, ValueError):    # beyond year 1..9999 (epoch ms): no time
                    continue
            moment = timestamp(value)
            if moment is not None:
                return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)
    return None


def evaluate(correlation: Correlation, events, time_field=None) -> list[Alert]:
    """The alerts a correlation raises over events (dicts in any order)."""
    tests = [compile_query(b.query) for b in correlation.rules]
    return alerts(correlation, ((event, [i for i, test in enumerate(tests) if test(event)]) for event in events),
                  time_field)


def alerts(correlation: Correlation, selected, time_field=None) -> list[Alert]:
    """The alerts of a correlation, given (event, indexes of the referenced rules that select
    it) pairs in event order: evaluate() without the matching, for engines that match the
    rules themselves (`hunt` on DuckDB)."""
    rows = defaultdict(list)    # group -> [(time, rule index, value)]
    for event, hits in selected:
        if not hits:
            continue
        moment = event_time(event, time_field)
        if moment is None:
            continue
        for i in hits:
            base = correlation.rules[i]
            key = _group_key(event, correlation.group_fields(base))
            if key is None:
                continue
            value = None
            if correlation.field:
                values = field_values(event, correlation.value_field(base))
                value = values[0] if values else None
            rows[tuple(zip(correlation.group_by, key))].append((moment, i, value))
    out = []
    for group in sorted(rows, key=lambda g: [(k, v) for k, v in g]):
        series = sorted(rows[group], key=lambda r: (r[0], r[1]))
        triggers = (_ordered_triggers if correlation.type == "temporal_ordered" else _window_triggers)(
            correlation, series)
        if triggers:
            out.append(Alert(correlation, group, triggers[0], triggers[-1], len(triggers)))
    return out


def _group_key(event, fields):
    key = []
    for name in fields:
        values = field_values(event, name)
        if not values:
            return None
        key.append(text(values[0]))
    return tuple(key)


def _window_triggers(c: Correlation, series) -> list:
    times = [r[0] for r in series]
    span = datetime.timedelta(seconds=c.timespan)
    out = []
    for n, (moment, _, _) in enumerate(series):
        start = bisect.bisect_left(times, _earlier(moment, span))
        end = bisect.bisect_right(times, moment)        # peers with the same time are in the window
        value = _aggregate(c, series[start:end])
        if value is not None and all(OPERATORS[op](value, limit) for op, limit in c.condition):
            out.append(moment)
    return out


def _earlier(moment, span):
    """moment - span, or the earliest time there is when that is before year 1."""
    try:
        return moment - span
    except OverflowError:
        return datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)


def _aggregate(c: Correlation, window):
    if c.type == "event_count":
        return len(window)
    if c.type == "temporal":
        return len({i for _, i, _ in window})
    if c.type == "value_count":
        return len({text(v) for _, _, v in window if v is not None})
    numbers = sorted(n for n in (number(v) for _, _, v in window if v is not None) if n is not None)
    if not numbers:
        return None
    if c.type == "value_sum":
        return sum(numbers)
    if c.type == "value_avg":
        return sum(numbers) / len(numbers)
    return percentile(numbers, c.percentile)


def percentile(ordered: list, p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, DuckDB's quantile_cont)."""
    pos = (len(ordered) - 1) * p / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _ordered_triggers(c: Correlation, series) -> list:
    """Times at which rule 0, 1, ..., k-1 have matched in that order within timespan."""
    span = datetime.timedelta(seconds=c.timespan)
    last = len(c.rules) - 1
    start_of = [None] * len(c.rules)    # latest start time of a chain ending at step i
    out = []
    for moment, i, _ in series:
        if i == 0:
            start_of[0] = moment
        elif start_of[i - 1] is not None and moment - start_of[i - 1] <= span:
            if start_of[i] is None or start_of[i - 1] > start_of[i]:
                start_of[i] = start_of[i - 1]
        if i == last and start_of[last] is not None and moment - start_of[last] <= span:
            out.append(moment)
    return out

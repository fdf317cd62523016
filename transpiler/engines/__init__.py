"""Engines run rules over events: the one interface `match`, `hunt`, `test` and the
differential tests share.

An engine answers, for a list of rules (and correlations) and a list of events, which events
each rule selects and which correlation alerts fire, or that it cannot run a rule and why.
The evaluator defines the answer; every other engine executes the query a backend writes
(DuckDB SQL in DuckDB, Athena SQL as executed here, pipe search in its interpreter, KQL in
duckdb-kql) and must give the same answer or refuse the rule.

    engine = engines.get("duckdb")()
    if engine.unavailable() is None:
        outcome = engine.run(rules, events)
        outcome.matches[0]      # sorted positions in `events` that rules[0] selects

Events are a list of dicts (an event is named by its position) or Files: log files read by
the engine itself (DuckDB parses them without building Python objects), an event named by
key(file no, position in the file), optionally counting each CloudTrail eventID once. A
caller with other work meanwhile calls load(source) first (DuckDB reads the files on its own
thread) and passes what it returns to run(); load() returns a context manager that frees the
engine's resources and stops its threads, also when interrupted.

plan() decides what to run of the rules loaded (filters applied, correlations resolved, the
rules a correlation hides); a command is then that plan, one run() and its output.

An explicit table of engines, no plugin discovery: add a line to add an engine.
"""
from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import import_module
from itertools import islice

from .. import correlation
from ..errors import TranspileError
from ..evaluate import timestamp
from ..events import MAX_EVENT_BYTES, event_files

try:                    # the C function json.dumps uses for strings (ensure_ascii=False)
    from _json import encode_basestring as _json_string
except ImportError:     # pragma: no cover  (Python without the _json accelerator)
    from json.encoder import py_encode_basestring as _json_string

ENGINES = {
    # name -> "module:Class"; each module imports its heavy dependencies (duckdb, ...) itself,
    # so that listing or choosing an engine never needs them.
    "athena": "transpiler.engines.athena:Athena",
    "kql": "transpiler.engines.kql:Kql",
    "evaluator": "transpiler.engines.evaluator:Evaluator",
    "duckdb": "transpiler.engines.duckdb:DuckDB",
    "pipesearch": "transpiler.engines.pipesearch:PipeSearch",
}

_FILE_BITS = 32     # key = file no << 32 | position: in file order, positions up to 4 billion
_POSITION = (1 << _FILE_BITS) - 1


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_MICROSECOND = datetime.timedelta(microseconds=1)

PART = 4096         # items per list of Outcome.timeline_parts()


def in_lists(items, size: int | None = None):
    """The items, in lists of `size` (default PART; the last one shorter)."""
    items, size = iter(items), size or PART
    while part := list(islice(items, size)):
        yield part


def time_order(value) -> tuple:
    """Where a time sorts in a timeline: times (ISO-8601 texts, evaluate.timestamp; one without
    offset is UTC) first, in time order to the microsecond, equal ones by their text; then other
    texts; then none: (0, microseconds since 1970 UTC, text), (1, 0, text), (2, 0, "")."""
    moment = timestamp(value)
    if moment is not None:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        return 0, (moment - _EPOCH) // _MICROSECOND, value
    return (1, 0, value) if value is not None else (2, 0, "")


def key(file_no: int, index: int) -> int:
    return file_no << _FILE_BITS | index


def place(event_key: int) -> tuple[int, int]:
    """(file no, position in the file) of an event key."""
    return event_key >> _FILE_BITS, event_key & _POSITION


@dataclass(frozen=True)
class Files:
    """Event files as a source, read in the order given (events.event_files expands folders),
    as events.py reads them (at most max_bytes of JSON each). dedupe: a record whose eventID
    an earlier record has is left out (CloudTrail delivers records at least once, so the same
    record may sit in several files)."""

    paths: tuple
    dedupe: bool = False
    max_bytes: int = MAX_EVENT_BYTES

    @classmethod
    def under(cls, paths, dedupe: bool = False, max_bytes: int = MAX_EVENT_BYTES) -> "Files":
        return cls(tuple(event_files(paths)), dedupe, max_bytes)


@dataclass
class Read:
    """What an engine read of its events."""

    files: list = field(default_factory=list)       # str paths; place(key)[0] indexes it
    errors: list = field(default_factory=list)      # EventsError per file that could not be read
    records: int = 0                                # records read, duplicates included
    duplicates: int = 0                             # records left out: an earlier one had their eventID


@dataclass
class Outcome:
    """What an engine found. Rules and correlations are named by their position in the lists
    given, events by their position in the list or their key (Files)."""

    matches: dict = field(default_factory=dict)    # rule no -> sorted event nos it selects
    alerts: list = field(default_factory=list)     # correlation.Alert, for the correlations given
    refused: dict = field(default_factory=dict)    # rule no (or "c<no>" for a correlation) -> reason
    failed: dict = field(default_factory=dict)     # the same -> error: accepted, but running it failed
    fallback: dict = field(default_factory=dict)   # the same -> why it ran on the evaluator (fallback=True)
    undecided: dict = field(default_factory=dict)  # rule no -> event nos the engine cannot represent
    rows: dict = field(default_factory=dict)       # event -> {path: value} of `show`, for selected events
    read: Read = field(default_factory=Read)
    stats: dict = field(default_factory=dict)      # engine-specific counts (e.g. rules run as SQL)
    phases: dict = field(default_factory=dict)     # seconds per step

    def counts(self) -> dict:
        """rule no -> how many events it selects."""
        return {n: len(keys) for n, keys in self.matches.items()}

    def timeline_parts(self, rank: dict, time: str, tie: str, line: "Line | None" = None):
        """timeline() in lists of a few thousand items (the way an engine that reads its
        results in chunks reads them): fewer steps per item for whoever writes them."""
        return in_lists(self.timeline(rank, time, tie, line))

    def timeline(self, rank: dict, time: str, tie: str, line: "Line | None" = None):
        """(event, rule no, its row, time_order of its time, its tie text) for each event each
        rule in `rank` (rule no -> its place among them; equal places are ordered by the
        events) selects, in the order of a timeline: by the event's `time` (time_order), then
        its `tie` text (none as ""), then the rule's place, then the event, then the rule.
        `time` and `tie` are paths of the rows (run's `show`). The row is its values in `show`
        order, or with `line` its text as that Line writes it. Engines that hold their results
        elsewhere (DuckDB) sort and write there, the same way."""
        if isinstance(self.rows, Rows):         # tuples of values: read by position
            held, paths = self.rows.held, self.rows.paths
            at = {p: i for i, p in enumerate(paths)}

            def value(row, path):
                i = at.get(path)
                return None if i is None else row[i]
            write = None if line is None else line.writer(paths, self.read)
        else:
            held = self.rows

            def value(row, path):
                return row.get(path)
        # found: (class, microseconds, text of time_order, tie, rank, event, rule), flat: a flat
        # tuple sorts faster than one holding the time_order tuple.
        found, order, orders = [], {}, {}       # orders: time -> time_order (events share times)
        for n, place in rank.items():
            for k in self.matches.get(n, ()):
                key = order.get(k)
                if key is None:
                    row = held[k]
                    moment = value(row, time)
                    when = orders.get(moment) if moment.__class__ is str else None
                    if when is None:
                        when = time_order(moment)
                        if moment.__class__ is str:
                            orders[moment] = when
                    key = order[k] = (*when, value(row, tie) or "")
                found.append((*key, place, k, n))
        del order, orders
        found.sort()
        for cls, micros, text, tied, _, k, n in found:
            when = cls, micros, text
            row = held[k]
            if held is self.rows:
                yield k, n, tuple(row.values()) if line is None else line.text(n, row, self.read, k), when, tied
            else:
                yield k, n, row if write is None else write(n, row, k), when, tied


class Rows(Mapping):
    """Outcome.rows held compactly (an engine's results may hold millions): event -> the
    values of `paths` as a tuple, read as the {path: value} dict of those."""

    def __init__(self, paths):
        self.paths = tuple(dict.fromkeys(paths))     # as a dict of them holds them: each once
        self.held = {}                               # event -> tuple of values in `paths` order

    def __getitem__(self, k):
        return dict(zip(self.paths, self.held[k]))

    def __iter__(self):
        return iter(self.held)

    def __len__(self):
        return len(self.held)


@dataclass(frozen=True)
class Line:
    """A timeline row as a line of JSON Lines: json.dumps({key: value, ...}, ensure_ascii=False),
    key by key as `fields` says, (key, how), how being ("show", path, ...): the first of these
    paths of the row that is not null; ("rule", {rule no: value}); ("file",): the event's
    file; ("index",): its position in the file; ("value", v): v."""

    fields: tuple

    def text(self, n: int, row: dict, read: Read, k: int) -> str:
        paths = tuple(row)
        return self.writer(paths, read)(n, tuple(row[p] for p in paths), k)

    def writer(self, paths, read: Read):
        """text() of rows given as tuples of the values of `paths`: (n, values, k) -> str.
        The line is written in runs of fields: those of the rule are written once per rule,
        those of the event once per event (a timeline lists an event's rules one after the
        other), the constant text once."""
        plan = self._plan
        if plan is None:                    # keys json.dumps would write otherwise: as it does
            def slow(n, values, k):
                return self._dumps(n, dict(zip(paths, values)), read, k)
            return slow
        runs, tail = plan
        at = {}
        for i, p in enumerate(paths):
            at.setdefault(p, i)
        event_runs = [[(prefix, how, [at[p] for p in args if p in at] if how == "show" else None)
                       for prefix, how, args in items] for of_rule, items in runs if not of_rule]
        order = [(of_rule, sum(1 for r, _ in runs[:i] if r == of_rule)) for i, (of_rule, _) in enumerate(runs)]
        by_rule = self._rule_texts
        last = [None, None, None]           # k, values, their texts

        files = read.files

        def event_texts(values, k):
            out = []
            for items in event_runs:
                text = ""
                for prefix, how, where in items:
                    if how == "show":
                        value = None
                        for i in where:
                            value = values[i]
                            if value is not None:
                                break
                    elif how == "file":
                        value = files[k >> _FILE_BITS] if files else None
                    else:
                        value = k & _POSITION
                    # _value(value), its most common case inline: millions of lines
                    text += prefix + (_json_string(value) if value.__class__ is str else _value(value))
                out.append(text)
            return out

        def write(n, values, k):
            if k == last[0] and values is last[1]:
                texts = last[2]
            else:
                texts = event_texts(values, k)
                last[:] = k, values, texts
            rule = by_rule.get(n)
            if rule is None:
                rule = by_rule[n] = self._rule_run_texts(n)
            return "".join([rule[i] if of_rule else texts[i] for of_rule, i in order]) + tail
        return write

    @cached_property
    def _plan(self):
        """(runs, tail): the fields in runs (of the rule: True, of the event: False) of
        (text before the value, how, args), the constant text joined to what follows it; or
        None when json.dumps would not write the keys each once, as given."""
        keys = [key for key, _ in self.fields]
        if any(key.__class__ is not str for key in keys) or len(set(keys)) < len(keys):
            return None
        runs, pending = [], "{"
        for key, (how, *args) in self.fields:
            pending += _json_string(key) + ": "
            if how == "value":
                pending += _value(args[0]) + ", "
                continue
            of_rule = how == "rule"
            if not runs or runs[-1][0] != of_rule:
                runs.append((of_rule, []))
            runs[-1][1].append((pending, how, args))
            pending = ", "
        tail = pending[:-2] + "}" if pending.endswith(", ") else pending + "}"
        return runs, tail

    @cached_property
    def _rule_texts(self) -> dict:
        return {}       # rule no -> texts of the rule's runs

    def _rule_run_texts(self, n) -> list:
        return ["".join(prefix + _value(args[0][n]) for prefix, _, args in items)
                for of_rule, items in self._plan[0] if of_rule]

    def _dumps(self, n: int, row: dict, read: Read, k: int) -> str:
        out = {}
        for key, (how, *args) in self.fields:
            if how == "show":
                value = None
                for p in args:
                    value = row.get(p)
                    if value is not None:
                        break
                out[key] = value
            elif how == "rule":
                out[key] = args[0][n]
            elif how in ("file", "index"):
                f, index = place(k)
                out[key] = (read.files[f] if read.files else None) if how == "file" else index
            else:
                out[key] = args[0]
        return _JSON(out)


# json.dumps(..., ensure_ascii=False) without building an encoder per line (a timeline has millions)
_JSON = json.JSONEncoder(ensure_ascii=False).encode


def _value(value) -> str:
    """A value as _JSON writes it, alone or inside an object (the same text either way)."""
    if value.__class__ is str:
        return _json_string(value)
    if value is None:
        return "null"
    if value.__class__ is int:
        return int.__repr__(value)
    return _JSON(value)


class Loaded:
    """Events as an engine holds them after load(); closing frees them."""

    def __init__(self, source):
        self.source = source

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Engine:
    """Base of every engine. A subclass sets `name` and implements run().

    Options every engine takes: time_field, the field holding an event's time for
    correlations; fallback, for `hunt`: a rule or correlation the engine cannot run (or whose
    run fails) runs on the evaluator instead and is listed in Outcome.fallback, rather than
    being refused or failed."""

    name = ""

    def __init__(self, time_field: str | None = "eventTime", fallback: bool = False):
        self.time_field = time_field
        self.fallback = fallback

    def unavailable(self) -> str | None:
        """Why this engine cannot run here (a missing package or tool), or None."""
        return None

    def load(self, source, progress=None) -> Loaded:
        """Start reading `source` (a list of dicts or Files); run() takes what this returns."""
        return Loaded(source)

    def run(self, rules, events, correlations=(), show=(), progress=None) -> Outcome:
        """Run `rules` (rule.Rule with a query) and `correlations` (correlation.Correlation over
        those rules) over `events` (a list of dicts, Files, or what load() returned). A rule
        the engine's backend refuses is in `refused` with the reason and has no entry in
        `matches`. `show`: column paths of the CloudTrail table (cloudtrail.SCHEMA: `eventid`,
        `useridentity.arn`) to report in Outcome.rows for every event a rule selects, as that
        table holds them (cloudtrail.values).
        progress(label, done, total) follows the slow steps."""
        raise NotImplementedError


@dataclass
class Plan:
    """What to run of the rules loaded: `match`, `hunt` and `test` plan alike."""

    rules: list                  # detection rules, filters applied; the correlations' rules included
    shown: set                   # ids of those that report their own matches (not generate: false)
    correlations: list           # correlation.Correlation over those rules
    skipped: int = 0             # rules and correlations `keep` left out
    errors: list = field(default_factory=list)    # TranspileError: loading, filters, correlations

    def failures(self, outcome: Outcome) -> list:
        """The rules and correlations an engine accepted but failed to run, as errors."""
        out = []
        for n, reason in outcome.failed.items():
            owner = self.correlations[int(n[1:])].rule if isinstance(n, str) else self.rules[n]
            out.append(TranspileError(reason, path=owner.label, kind="internal"))
        return out


def plan(rules, errors=(), keep=None) -> Plan:
    """Filters applied and correlations resolved (correlation.resolve); only the detection rules
    `keep(rule)` accepts (all by default) and the correlations over them alone."""
    correlations, detections, resolve_errors = correlation.resolve(rules)
    run = [r for r in detections if r.query is not None and (keep is None or keep(r))]
    ids = {id(r) for r in run}
    kept = [c for c in correlations if all(id(b) in ids for b in c.rules)]
    skipped = len(detections) - len(run) + len(correlations) - len(kept)
    shown = {id(r) for r in correlation.standalone(run, correlations)}
    return Plan(run, shown, kept, skipped, list(errors) + list(resolve_errors))


def get(name: str):
    """The engine class called `name`; KeyError names the known ones."""
    try:
        module, cls = ENGINES[name].split(":")
    except KeyError:
        raise KeyError(f"unknown engine {name!r}; known: {', '.join(sorted(ENGINES))}") from None
    return getattr(import_module(module), cls)


def loaded(engine: Engine, events):
    """`events` as the engine's Loaded, and whether the caller must close it."""
    if isinstance(events, Loaded):
        return events, False
    return engine.load(events), True

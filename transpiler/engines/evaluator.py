"""The reference evaluator as an engine: every event through ruleset.RuleSet (evaluate.py),
correlation.alerts over the events the correlations' rules select. It defines the answer the
other engines are compared with. Log files are read one at a time (events.py), so memory
holds the events some rule selected, not the logs.
"""
from __future__ import annotations

import time
from collections import defaultdict

from .. import cloudtrail, correlation
from ..errors import EventsError
from ..evaluate import text
from ..events import MAX_EVENT_BYTES, parse_events, read_text
from ..ruleset import RuleSet
from . import Engine, Files, Loaded, Outcome, key


class Evaluator(Engine):
    """time_field None: an event's time is the first of correlation.TIME_FIELDS it has."""

    name = "evaluator"

    def run(self, rules, events, correlations=(), show=(), progress=None) -> Outcome:
        start = time.perf_counter()
        source = events.source if isinstance(events, Loaded) else events
        out = Outcome()
        usable = [n for n, r in enumerate(rules) if r.query is not None]
        for n, r in enumerate(rules):
            if r.query is None:
                out.refused[n] = "not a detection rule (a correlation or filter document)"
        ruleset = RuleSet([rules[n] for n in usable])
        uses = _uses(rules, correlations)     # rule no -> [(correlation no, its place there)]
        selected = [[] for _ in correlations]
        hits_of = {n: [] for n in usable}
        for event_key, event in _events(source, out.read, progress):
            hits = [usable[i] for i in _numbers(ruleset, event, event_key, usable, out.failed)]
            if not hits:
                continue
            for n in hits:
                hits_of[n].append(event_key)
            if show:
                out.rows[event_key] = cloudtrail.values(event, show)
            found = defaultdict(list)
            for n in hits:
                for c_no, k in uses.get(n, ()):
                    found[c_no].append(k)
            for c_no, ks in found.items():
                selected[c_no].append((event, sorted(ks)))
        out.matches = hits_of
        out.phases["match"] = time.perf_counter() - start
        for c_no, c in enumerate(correlations):
            try:
                out.alerts.extend(correlation.alerts(c, selected[c_no], self.time_field))
            except Exception as e:        # noqa: BLE001  one correlation, reported; the others go on
                out.failed[f"c{c_no}"] = f"{type(e).__name__}: {e}"
        return out


def _uses(rules, correlations) -> dict:
    number = {id(r): n for n, r in enumerate(rules)}
    uses = defaultdict(list)
    for c_no, c in enumerate(correlations):
        for k, base in enumerate(c.rules):
            if id(base) not in number:
                raise ValueError(f"correlation {c.rule.label}: its rule {base.label} is not among the rules run")
            uses[number[id(base)]].append((c_no, k))
    return uses


def _numbers(ruleset, event, event_key, usable, failed) -> list:
    """The positions in the ruleset of the rules selecting the event. A rule whose test raises
    (an event shaped beyond what it can evaluate) is reported in `failed`, not the run."""
    try:
        return ruleset.numbers(event)
    except Exception:                     # noqa: BLE001  find the rule, keep the others
        hits = []
        for i in ruleset.candidates(event):
            try:
                if ruleset.test(i, event):
                    hits.append(i)
            except Exception as e:        # noqa: BLE001
                failed.setdefault(usable[i], f"event {event_key}: {type(e).__name__}: {e}")
        return hits


def _events(source, read, progress):
    """(event no or key, event) of a list or of Files, filling `read`."""
    if isinstance(source, Files):
        yield from records(source, read, progress)
        return
    read.records = len(source)
    for n, event in enumerate(source):
        if progress is not None and n % 1000 == 0:
            progress("running rules", n, len(source))
        yield n, event


def records(source: Files, read, progress=None):
    """(key, record) for every record of the files, in file order, the first of each eventID
    only when source.dedupe; read.files, errors, records and duplicates filled in."""
    read.files = [str(p) for p in source.paths]
    seen = set()
    for f, path in enumerate(read.files):
        if progress is not None:
            progress("running rules", f + 1, len(read.files))
        try:
            found = file_events(path, source.max_bytes)
        except EventsError as e:
            read.errors.append(e)
            continue
        read.records += len(found)
        for i, event in enumerate(found):
            if source.dedupe:
                event_id = event.get("eventID")
                if event_id is not None:
                    eid = text(event_id)
                    if eid in seen:
                        read.duplicates += 1
                        continue
                    seen.add(eid)
            yield key(f, i), event


def file_events(path: str, max_bytes: int = MAX_EVENT_BYTES) -> list:
    """The records of one file as events.py reads them; EventsError says why it cannot."""
    try:
        return parse_events(read_text(path, max_bytes), path)
    except RecursionError:
        raise EventsError("JSON nested too deeply", path=path) from None

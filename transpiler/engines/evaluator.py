"""The reference evaluator as an engine: every event through ruleset.RuleSet (evaluate.py),
correlation.alerts over the events the correlations' rules select. It defines the answer the
other engines are compared with. Log files are read one at a time (events.py), so memory
holds what some rule selected of the events, not the logs: the shown values of each (a
tuple) and, for correlations, only the fields they read.

Files are scanned in parts of consecutive files; with several CPUs and logs worth it, the
parts are scanned by worker processes (forked: they share the rules compiled here), and
their findings are taken in file order here, so the answer is the same whatever the number
of workers, eventIDs counted once in file order included.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import defaultdict

from .. import cloudtrail, correlation
from ..errors import EventsError
from ..evaluate import field_values, text
from ..events import MAX_EVENT_BYTES, parse_events, read_text
from ..ruleset import RuleSet
from . import Engine, Files, Loaded, Outcome, Rows, key

PART_BYTES = 4 << 20        # bytes of log files (as stored) per part scanned at once
PARALLEL_BYTES = 8 << 20    # fewer bytes of logs than this: scanned here, no workers


class Evaluator(Engine):
    """time_field None: an event's time is the first of correlation.TIME_FIELDS it has.
    jobs: worker processes scanning Files (None: one per CPU when the logs are large enough;
    1: none, all here)."""

    name = "evaluator"

    def __init__(self, time_field: str | None = "eventTime", fallback: bool = False, jobs: int | None = None):
        super().__init__(time_field, fallback)
        self.jobs = jobs

    def run(self, rules, events, correlations=(), show=(), progress=None) -> Outcome:
        start = time.perf_counter()
        source = events.source if isinstance(events, Loaded) else events
        out = Outcome()
        usable = [n for n, r in enumerate(rules) if r.query is not None]
        for n, r in enumerate(rules):
            if r.query is None:
                out.refused[n] = "not a detection rule (a correlation or filter document)"
        scan = _Scan([rules[n] for n in usable], usable, _uses(rules, correlations), correlations, show,
                     self.time_field)
        selected = [[] for _ in correlations]
        hits_of = {n: [] for n in usable}
        if show:
            out.rows = Rows(show)
            rows = out.rows.held
        if isinstance(source, Files):
            found = _files(source, scan, out, progress, self.jobs)
        else:
            found = _listed(source, scan, out, progress)
        with contextlib.closing(found):        # workers (if any) end here, interrupted or not
            for event_key, hits, row, picks in found:
                for n in hits:
                    hits_of[n].append(event_key)
                if show:
                    rows[event_key] = row
                if picks is not None:
                    event, places = picks
                    for c_no, ks in places:
                        selected[c_no].append((event, ks))
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


class _Scan:
    """What the rules find in one event: (rule nos, shown values, (what correlations read of
    it, [(correlation no, places of its rules selecting it)]) or None), or None for nothing."""

    def __init__(self, rules, usable, uses, correlations, show, time_field):
        self.ruleset = RuleSet(rules)
        self.usable, self.uses, self.show = usable, uses, show
        self.row = cloudtrail.reader(show)
        self.fields = _read_fields(correlations, time_field)

    def event(self, event, event_key, failed):
        hits = rules_selecting(self.ruleset, event, event_key, self.usable, failed)
        if not hits:
            return None
        hits = [self.usable[i] for i in hits]
        row = self.row(event) if self.show else None
        found = None
        for n in hits:
            for c_no, k in self.uses.get(n, ()):
                if found is None:
                    found = defaultdict(list)
                found[c_no].append(k)
        if found is None:
            return hits, row, None
        return hits, row, (self._kept(event), [(c_no, sorted(ks)) for c_no, ks in found.items()])

    def _kept(self, event):
        """What correlation.alerts reads of the event (field_values of the time, group-by
        and value fields), as an event giving the same values: {field: its values}; or the
        event itself when one field is a dotted prefix of another (field_values would read
        the shorter one's values too)."""
        if self.fields is None:
            return event
        return {name: field_values(event, name) for name in self.fields}


def _read_fields(correlations, time_field):
    """The fields correlation.alerts reads of an event, or None when one of them is a dotted
    prefix of another (`a.b` and `a.b.c`)."""
    if not correlations:
        return ()
    names = {time_field} if time_field else set(correlation.TIME_FIELDS)
    for c in correlations:
        for base in c.rules:
            names.update(c.group_fields(base))
            if c.field:
                names.add(c.value_field(base))
    for name in names:
        parts = name.split(".")
        if any(".".join(parts[:i]) in names for i in range(1, len(parts))):
            return None
    return tuple(sorted(names))


def rules_selecting(ruleset, event, event_key, usable, failed) -> list:
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


def _listed(source, scan, out, progress):
    """(event no, rule nos, row, correlations' part) of each event of a list some rule selects."""
    out.read.records = len(source)
    for n, event in enumerate(source):
        if progress is not None and n % 1000 == 0:
            progress("running rules", n, len(source))
        found = scan.event(event, n, out.failed)
        if found is not None:
            yield (n, *found)


def _files(source: Files, scan, out, progress, jobs):
    """(key, rule nos, row, correlations' part) of each event of the files some rule selects,
    in file order, the first of each eventID only when source.dedupe; out.read and
    out.failed filled in. The parts are scanned here or by workers; either way each part's
    findings are taken here, in file order, which decides which copy of an eventID counts."""
    read = out.read
    read.files = [str(p) for p in source.paths]
    parts = _parts(read.files)
    seen = set()
    workers = _workers(jobs, parts, read.files)
    if workers > 1:
        scanned = _parallel(workers, scan, parts, read.files, source)
    else:       # here: a part's scan can skip what earlier parts have seen
        scanned = (_scan_part(scan, part, read.files, source, seen) for part in parts)
    with contextlib.closing(scanned):
        yield from _taken(scanned, out, progress, seen)


def _taken(scanned, out, progress, seen):
    """The findings of the scanned parts, in file order, but those of duplicates."""
    read = out.read
    for part in scanned:
        for f, error, count, ids, found, failures in part:
            if progress is not None:
                progress("running rules", f + 1, len(read.files))
            if error is not None:
                read.errors.append(error)
                continue
            read.records += count
            if ids is not None:          # dedupe: an eventID counts in its first record
                copies = set()
                for i, event_id in enumerate(ids):
                    if event_id is not None:
                        if event_id in seen:
                            copies.add(i)
                        else:
                            seen.add(event_id)
                if copies:
                    read.duplicates += len(copies)
                    found = [item for item in found if item[0] not in copies]
                    failures = [item for item in failures if item[0] not in copies]
            for _, n, reason in failures:
                out.failed.setdefault(n, reason)
            for i, *rest in found:
                yield (key(f, i), *rest)


def _parts(paths) -> list:
    """The file nos in parts of consecutive files of about PART_BYTES (as stored) each."""
    parts, part, size = [], [], 0
    for f, path in enumerate(paths):
        part.append(f)
        try:
            size += os.stat(path).st_size
        except OSError:
            pass
        if size >= PART_BYTES:
            parts.append(part)
            part, size = [], 0
    if part:
        parts.append(part)
    return parts


def _workers(jobs, parts, paths) -> int:
    """How many worker processes scan the parts (1: none, the run scans them)."""
    if len(parts) < 2 or not hasattr(os, "fork") or not hasattr(signal, "pthread_sigmask"):
        return 1
    if jobs is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:
            cpus = os.cpu_count() or 1
        size = 0
        for path in paths:
            try:
                size += os.stat(path).st_size
            except OSError:
                pass
            if size >= PARALLEL_BYTES:
                return cpus
        return 1
    return max(1, min(jobs, len(parts)))


def _scan_part(scan, part, paths, source, seen=()):
    """[(file no, error, records, eventIDs, findings, failures)] of each file of the part:
    eventIDs (text, None where there is none) of every record when source.dedupe, else None;
    findings (position, rule nos, row, correlations' part) of the records some rule selects,
    failures (position, rule no, reason). A record whose eventID an earlier record of the
    part, or `seen`, has is a duplicate whatever comes before: it is not scanned."""
    out, mine = [], set()
    for f in part:
        try:
            records = file_events(paths[f], source.max_bytes)
        except EventsError as e:
            out.append((f, e, 0, None, (), ()))
            continue
        ids = [] if source.dedupe else None
        found, failures = [], _Failures()
        for i, event in enumerate(records):
            if ids is not None:
                event_id = event.get("eventID")
                if event_id is not None:
                    event_id = text(event_id)
                    ids.append(event_id)
                    if event_id in mine or event_id in seen:
                        continue
                    mine.add(event_id)
                else:
                    ids.append(None)
            failures.at = i
            hit = scan.event(event, key(f, i), failures)
            if hit is not None:
                found.append((i, *hit))
        out.append((f, None, len(records), ids, found, failures))
    return out


class _Failures(list):
    """`failed` for a part: every failure, with its record's position (the record may prove
    a duplicate); the run keeps the first of each rule among the records it keeps."""

    at = 0

    def setdefault(self, n, reason):
        self.append((self.at, n, reason))


def _parallel(workers, scan, parts, paths, source):
    """_scan_part of each part by `workers` forked processes (part p by worker p % workers),
    the results in part order, at most two parts per worker in flight (bounded memory).
    Ctrl-C, an error or the end of the run here ends the workers."""
    import multiprocessing
    from multiprocessing.connection import wait
    context = multiprocessing.get_context("fork")
    # Signals blocked while forking: a worker must not run the run's Ctrl-C handler.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    started = []
    try:
        for _ in range(workers):
            mine, theirs = context.Pipe()
            process = context.Process(target=_worker, args=(theirs, scan, paths, source), daemon=True)
            process.start()
            theirs.close()
            started.append((process, mine))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    try:
        sent = 0
        for p in range(len(parts)):
            while sent < len(parts) and sent < p + 2 * workers:
                started[sent % workers][1].send(parts[sent])
                sent += 1
            process, conn = started[p % workers]
            wait([conn, process.sentinel])
            try:
                failed, result = conn.recv()
            except EOFError:              # it ended: killed (the kernel's out-of-memory killer?)
                process.join()
                raise MemoryError if process.exitcode == -signal.SIGKILL else \
                    RuntimeError(f"an evaluator worker ended (exit status {process.exitcode})") from None
            if failed:
                raise result
            yield result
    finally:
        for process, conn in started:
            process.terminate()
        for process, conn in started:
            process.join()
            conn.close()


def _worker(conn, scan, paths, source):
    """A worker: parts in, their _scan_part out, until the run ends it. Ctrl-C reaches the
    whole process group: the run decides, and ends the workers (SIGTERM)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    while True:
        part = conn.recv()
        try:
            result = False, _scan_part(scan, part, paths, source)
        except Exception as e:            # noqa: BLE001  raised by the run, as if scanned there
            result = True, e
        try:
            conn.send(result)
        except Exception as e:            # noqa: BLE001  an error that cannot be pickled
            conn.send((True, RuntimeError(f"{type(e).__name__}: {e}")))


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

"""DuckDB as an engine: the queries `convert -t duckdb` writes, executed in an in-memory DuckDB
over the events loaded into the tables they read (duckdb_events: rules for CloudTrail read
the CloudTrail table of cloudtrail.SCHEMA, the same text runs on Athena; other rules read the
generic table). The only module that imports duckdb, through duckdb_events.connect().

- Rules run fifty to a statement (UNION ALL: planning grows faster than linear). A statement
  that fails runs again rule by rule, so a failure is that rule's alone (Outcome.failed).
- A CloudTrail rule whose required eventName/eventSource values (ruleset.required_values) no
  event has is not run: it can select nothing. The others only look at rows with those values
  (a lower-case copy of the two columns).
- Correlations run as the query `convert -t duckdb` writes for them.
- fallback (hunt): a rule the backend refuses or DuckDB fails on runs on the evaluator, over
  the events its required values leave, read again from their files; a correlation without
  a query, or whose query fails, is computed by correlation.alerts over the rows DuckDB
  selected, its values read from the columns the queries read.
- Files: duckdb_events stages them (Python reads and unzips them), then DuckDB parses them on
  a thread of its own while the caller loads its rules (DuckDB works without Python's lock).
  close() interrupts DuckDB and waits for that thread: no DuckDB work outlives the run, also
  when Ctrl-C stops it (a thread still inside DuckDB when Python exits aborts the process).
"""
from __future__ import annotations

import atexit
import datetime
import importlib.util
import os
import threading
import time
import weakref
from collections import defaultdict

from .. import cloudtrail, correlation, duckdb_events
from ..backends.sql import DuckDB as DuckDBBackend
from ..backends.sql import identifier, literal
from ..errors import TranspileError, Unsupported
from ..evaluate import compile_query, text
from ..ruleset import required_values
from . import Engine, Files, Loaded, Outcome, Read, loaded, place
from .evaluator import file_events, records

BATCH = 50                       # rules per UNION ALL statement
SMALL_LOGS = 128 << 20           # bytes of JSON DuckDB parses in about the time rules take to load
GENERIC = "events"               # the generic mapping's table (templates/duckdb/mappings/generic.yml)
# Fields the rule index narrows rows by: CloudTrail columns with a lower-case copy.
PREFILTER = {"eventName": "eventname", "eventSource": "eventsource"}


class DuckDB(Engine):
    """threads: DuckDB's worker threads (default: every CPU); mapping_file: the backend's
    mapping (`-m`), whose tables must be the two this engine loads."""

    name = "duckdb"

    def __init__(self, time_field: str | None = "eventTime", fallback: bool = False, threads: int | None = None,
                 mapping_file=None):
        super().__init__(time_field, fallback)
        self.threads = int(threads or os.cpu_count() or 1)
        self.mapping_file = mapping_file

    def unavailable(self) -> str | None:
        try:
            found = importlib.util.find_spec("duckdb") is not None
        except (ImportError, ValueError):     # hidden, or left half-imported
            found = False
        return None if found else "the duckdb package is not installed (pip install duckdb)"

    def load(self, source, progress=None) -> "Tables":
        return Tables(source, self.threads, progress)

    def run(self, rules, events, correlations=(), show=(), progress=None) -> Outcome:
        tables, own = loaded(self, events)
        try:
            return _run(self, tables, rules, correlations, show, progress)
        finally:
            if own:
                tables.close()


class Tables(Loaded):
    """The events in DuckDB: the CloudTrail table (row_id = the event's number or key), built
    from Files on a thread of its own; the generic table when a rule needs it."""

    def __init__(self, source, threads: int, progress=None):
        super().__init__(source)
        self.threads = threads
        self.con = None if isinstance(source, Files) else duckdb_events.connect()   # Files: on the thread
        self.made = set()            # tables loaded
        self.read = Read(records=0 if isinstance(source, Files) else len(source))
        self.seconds = 0.0
        self._thread = self._error = None
        self._done = threading.Event()     # set by the thread when it leaves DuckDB for good
        self._stopping = False
        if isinstance(source, Files):
            try:
                staged = duckdb_events.stage_files(source.paths, (
                    lambda done, total: progress("reading logs", done, total)) if progress else None,
                    source.max_bytes)
            except BaseException:
                self._done.set()
                raise
            self._thread = threading.Thread(target=self._scan, args=(staged,), daemon=True)
            _LIVE.add(self)
            self._thread.start()

    def _scan(self, staged):
        start = time.perf_counter()
        try:
            self.con = duckdb_events.connect()
            if self._stopping:
                return
            # One DuckDB thread while Python loads the rules on the other core, unless the logs
            # take much longer than that; all of them for the queries.
            self.con.execute(f"SET threads = {1 if staged.size < SMALL_LOGS else self.threads}")
            scan = duckdb_events.load_staged(self.con, staged, cloudtrail.TABLE, dedupe=self.source.dedupe,
                                             lowered=tuple(PREFILTER.values()))
            self.con.execute(f"SET threads = {self.threads}")
            self.read = Read(scan.files, list(scan.errors), scan.rows + scan.duplicates, scan.duplicates)
            self.made.add(cloudtrail.TABLE)
        except BaseException as e:   # re-raised by ready(), on the caller's thread
            self._error = e
        finally:
            staged.cleanup()
            self.seconds = time.perf_counter() - start
            self._done.set()

    def ready(self):
        """Wait for the files to be in DuckDB."""
        if self._thread is not None:
            self._done.wait()
            self._thread.join()
            self._thread = None
            if self._error is not None:
                raise self._error

    def table(self, name: str):
        """Make sure `name` (the CloudTrail or the generic table) holds the events."""
        self.ready()
        if name in self.made:
            return
        if isinstance(self.source, Files):
            numbered = list(records(self.source, Read()))
            ids, events = [k for k, _ in numbered], [e for _, e in numbered]
        else:
            ids, events = None, self.source
        if name == cloudtrail.TABLE:
            duckdb_events.load_cloudtrail(self.con, events, name, lowered=tuple(PREFILTER.values()), ids=ids)
        else:
            duckdb_events.load_events(self.con, events, name, ids=ids)
        self.made.add(name)

    def events(self, keys) -> dict:
        """key -> the event as events.py reads it (from its file again, for Files)."""
        if not isinstance(self.source, Files):
            return {k: self.source[k] for k in keys}
        by_file = defaultdict(list)
        for k in keys:
            by_file[place(k)[0]].append(k)
        out = {}
        for f, wanted in sorted(by_file.items()):
            try:
                found = file_events(self.read.files[f], self.source.max_bytes)
            except Exception:     # noqa: BLE001  changed since it was read: its events are left out
                continue
            out.update((k, found[place(k)[1]]) for k in wanted if place(k)[1] < len(found))
        return out

    def close(self):
        # Not Thread.is_alive(): a join() that Ctrl-C interrupted may have marked the thread
        # stopped while it still runs (CPython 3.11).
        self._stopping = True
        if self._thread is not None and self._thread.ident is not None:
            if not self._done.is_set() and self.con is not None:
                self.con.interrupt()
            self._done.wait()
            self._thread.join()
        self._thread = None
        _LIVE.discard(self)
        if self.con is not None:
            self.con.close()


# Tables whose thread may still be inside DuckDB. At exit, before Python stops its threads (a
# thread stopped inside DuckDB aborts the process), each is closed: a safety net for a run
# interrupted between starting the thread and entering the `with` that would close it.
_LIVE = weakref.WeakSet()
atexit.register(lambda: [t.close() for t in list(_LIVE)])


def _run(engine: DuckDB, tables: Tables, rules, correlations, show, progress) -> Outcome:
    tables.ready()
    import duckdb            # imported by duckdb_events.connect() by now, signals held meanwhile
    start = time.perf_counter()
    out = Outcome(read=tables.read)
    out.phases["logs"] = tables.seconds
    con = tables.con
    backend = DuckDBBackend(mapping_file=engine.mapping_file, time_field=engine.time_field or "eventTime")
    statements, slow, present = [], [], None     # (rule no, SQL); (rule no, why it runs on the evaluator)
    for n, rule in enumerate(rules):
        if rule.query is None:
            out.refused[n] = "not a detection rule (a correlation or filter document)"
            continue
        try:
            where, table = _query(backend, rule)
        except TranspileError as e:
            if not engine.fallback:
                out.refused[n] = e.message
                continue
            slow.append((n, e.message))
            continue
        tables.table(table)
        narrow = []
        if table == cloudtrail.TABLE:
            if present is None:
                present = _present(con)
            narrow = _prefilter(rule.query, present)
            if narrow is None:        # a required value no event has: nothing to select
                out.matches[n] = []
                continue
        statements.append((n, f"SELECT {n} AS rule, row_id FROM {table} WHERE {_narrow_sql(narrow)} AND ({where})"))
    out.stats["sql"] = len(statements)
    hits = defaultdict(list)
    batches = [statements[i:i + BATCH] for i in range(0, len(statements), BATCH)]
    for b, batch in enumerate(batches, 1):
        for n, row_id in _execute(con, batch, out, engine.fallback, slow, duckdb):
            hits[n].append(row_id)
        if progress is not None:
            progress("running rules", b, len(batches))
    elsewhere = set(out.failed) | {n for n, _ in slow}
    for n, _ in statements:
        if n not in elsewhere:
            out.matches[n] = sorted(hits.get(n, ()))
    out.phases["queries"] = time.perf_counter() - start
    start = time.perf_counter()
    for n, reason in slow:            # fallback: the evaluator, over the events the prefilter leaves
        out.fallback[n] = reason
        out.matches[n] = _on_evaluator(tables, rules[n], present)
    if show:
        tables.table(cloudtrail.TABLE)
        out.rows = _rows(con, sorted({k for ks in out.matches.values() for k in ks}), show)
    for c_no, c in enumerate(correlations):
        _correlate(engine, tables, backend, c, c_no, rules, out, duckdb)
    out.phases["results"] = time.perf_counter() - start
    return out


def _query(backend, rule) -> tuple[str, str]:
    """The WHERE clause `convert -t duckdb` writes for the rule (its query is SELECT * FROM
    table WHERE that: templates/duckdb/query.j2), and the table."""
    try:
        backend.mapping = backend.mapping_for(rule)
        table = backend.table()
        if table not in (cloudtrail.TABLE, GENERIC):
            raise Unsupported(f"the mapping reads table {table!r}; this engine loads events into "
                              f"{cloudtrail.TABLE} and {GENERIC} only")
        return backend.render(rule.query), table
    except TranspileError as e:
        raise e.located(rule.label, "detection") from None


def _execute(con, batch, out, fallback, slow, duckdb) -> list:
    """(rule no, row id) of one UNION ALL statement; where it fails, of each rule alone, and
    a rule that fails alone is out.failed (or slow, with fallback)."""
    try:
        return con.execute("\nUNION ALL\n".join(sql for _, sql in batch)).fetchall()
    except duckdb.InterruptException:
        raise
    except duckdb.Error:
        pass
    found = []
    for n, sql in batch:
        try:
            found += con.execute(sql).fetchall()
        except duckdb.InterruptException:
            raise
        except duckdb.Error as e:
            reason = f"DuckDB could not run its query: {_first_line(e)}"
            if fallback:
                slow.append((n, reason))
            else:
                out.failed[n] = reason
    return found


def _first_line(error) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _present(con) -> dict:
    """The lower-case eventName and eventSource values the CloudTrail table has."""
    return {column: {v for (v,) in con.execute(f"SELECT DISTINCT _lower_{column} FROM {cloudtrail.TABLE} "
                                              f"WHERE _lower_{column} IS NOT NULL").fetchall()}
            for column in PREFILTER.values()}


def _prefilter(query, present):
    """[(column, values)]: the rule can only select rows whose lower-case column has one of
    the values; None when it cannot select any row. Only ASCII values, which Python and DuckDB
    lower-case alike."""
    narrow = []
    for name, values in required_values(query).items():
        column = PREFILTER.get(name)
        if column is None or not all(v.isascii() for v in values):
            continue
        values = values & present[column]
        if not values:
            return None
        narrow.append((column, values))
    return narrow


def _narrow_sql(narrow) -> str:
    return " AND ".join(f"_lower_{column} IN ({', '.join(map(literal, sorted(values)))})"
                        for column, values in narrow) or "TRUE"


def _on_evaluator(tables: Tables, rule, present) -> list:
    """The events the evaluator selects for the rule, among those its prefilter leaves."""
    if cloudtrail.TABLE in tables.made or isinstance(tables.source, Files):
        tables.table(cloudtrail.TABLE)
        narrow = _prefilter(rule.query, present if present is not None else _present(tables.con))
        if narrow is None:
            return []
        candidates = [r for (r,) in tables.con.execute(
            f"SELECT row_id FROM {cloudtrail.TABLE} WHERE {_narrow_sql(narrow)} ORDER BY row_id").fetchall()]
    else:
        candidates = range(len(tables.source))
    test = compile_query(rule.query)
    events = tables.events(candidates)
    return [k for k in candidates if k in events and test(events[k])]


def _rows(con, keys, show) -> dict:
    """key -> {path: value} of the CloudTrail table, for the column paths asked."""
    if not keys:
        return {}
    columns = ", ".join(".".join(map(identifier, path.split("."))) for path in show)
    found = con.execute(f"SELECT row_id, {columns} FROM {cloudtrail.TABLE} WHERE row_id IN (SELECT unnest($rows))",
                        {"rows": keys}).fetchall()
    return {r[0]: dict(zip(show, r[1:])) for r in found}


# --- correlations ---------------------------------------------------------------------------

def _correlate(engine, tables, backend, c, c_no, rules, out, duckdb):
    """The correlation's alerts from its query; with fallback, from correlation.alerts over
    the rows DuckDB selected where there is no query or it fails."""
    name = f"c{c_no}"
    reason = None
    if engine.time_field is None:
        reason = "DuckDB needs the field of the event time (time_field)"
    else:
        try:
            sql = backend.convert_correlation(c)
            for base in c.rules:
                backend.mapping = backend.mapping_for(base)
                tables.table(backend.table())
            out.alerts.extend(_alerts(c, tables.con.execute(sql).fetchall()))
            return
        except TranspileError as e:
            reason = e.message
        except duckdb.InterruptException:
            raise
        except duckdb.Error as e:
            reason = f"DuckDB could not run its query: {_first_line(e)}"
            if not engine.fallback:
                out.failed[name] = reason
                return
    if not engine.fallback:
        out.refused[name] = reason
        return
    out.fallback[name] = reason
    number = {id(r): n for n, r in enumerate(rules)}
    hits = [out.matches.get(number[id(b)], []) for b in c.rules]
    out.alerts.extend(_alerts_in_python(engine, tables, backend, c, hits))


def _alerts(c, rows) -> list:
    out = []
    width = len(c.group_by)
    for row in rows:
        group = tuple((name, text(value)) for name, value in zip(c.group_by, row[:width]))
        first, last, triggers = row[width:width + 3]
        out.append(correlation.Alert(c, group, _utc(first), _utc(last), int(triggers)))
    return out


def _utc(moment):
    """A time from SQL (TIMESTAMP: UTC, naive) as correlation.Alert holds it (aware)."""
    utc = datetime.timezone.utc
    return moment.replace(tzinfo=utc) if moment.tzinfo is None else moment.astimezone(utc)


def _alerts_in_python(engine, tables, backend, c, hits) -> list:
    """correlation.alerts over the rows DuckDB selected for each referenced rule: each row as
    an event of the fields the correlation reads (literal dotted keys: field_values reads
    them), with the values the queries read; the events from their files where a field has no
    column (or the time field is not given)."""
    rows = sorted({r for rs in hits for r in rs})
    if not rows:
        return []
    fields = sorted({engine.time_field or ""} | {f for b in c.rules for f in c.group_fields(b)} |
                    {c.value_field(b) for b in c.rules if c.field})
    try:
        if engine.time_field is None:
            raise Unsupported("no time field")
        backend.mapping = backend.mapping_for(c.rules[0])
        table = backend.table()
        tables.table(table)
        exprs = [backend.macros.first(backend.place(f)) for f in fields]
    except TranspileError:
        events = tables.events(rows)
    else:
        found = tables.con.execute(f"SELECT row_id, {', '.join(exprs)} FROM {table} "
                                   f"WHERE row_id IN (SELECT unnest($rows))", {"rows": rows}).fetchall()
        events = {r[0]: {f: v for f, v in zip(fields, r[1:]) if v is not None} for r in found}
    members = [set(rs) for rs in hits]
    selected = ((events[r], [k for k, m in enumerate(members) if r in m]) for r in rows if r in events)
    return correlation.alerts(c, selected, engine.time_field)

"""`hunt`: Sigma rules over a folder of CloudTrail logs, without a SIEM.

Two engines give the same answers:
- duckdb: the files go once into an in-memory DuckDB table shaped like AWS's Athena table for
  CloudTrail (duckdb_events.scan_cloudtrail), and every rule runs as the WHERE clause that
  `convert -t duckdb` writes for it, fifty rules per UNION ALL statement. A rule whose
  required eventName/eventSource values (ruleset.required_values) do not occur in the logs
  is not run at all; the others only look at rows with those values. The same rules converted
  with `-t athena` run on Athena over the S3 bucket. A rule DuckDB cannot express runs on the
  reference evaluator, over the events its required values leave, read again from their files.
- evaluator: the reference evaluator (evaluate.py, through ruleset.RuleSet) over the events
  events.py reads.

Both read the files events.py reads, in the same order; a file that cannot be read is
reported and skipped. CloudTrail delivers records at least once, so the same record (the same
eventID) may sit in several files: only the first, in file order, counts.

Correlations: the evaluator engine runs correlation.evaluate; the duckdb engine runs the query
`convert -t duckdb` writes for the correlation (Athena's is its twin), and where there is none,
feeds the rows DuckDB selected to correlation.alerts (the same windows), with the event time and
the group-by and aggregated values read from the columns the queries read. Only rules for
CloudTrail (logsource product aws, service cloudtrail) are run; others are counted as skipped.
CloudTrail-Digest files (hashes of the log files) are left out.

Detections are sorted by event time, then eventID, then rule title (then rule id and path,
file and position): the output is the same for both engines and from run to run.
"""
from __future__ import annotations

import contextlib
import datetime
import gc
import importlib.util
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from . import correlation
from .cloudtrail import SCHEMA as CLOUDTRAIL
from .cloudtrail import record as _record
from .errors import EventsError, TranspileError, Unsupported
from .evaluate import compile_query, text, timestamp
from .events import _read, event_files, parse_events
from .ruleset import RuleSet, required_values

ENGINES = ("duckdb", "evaluator")
TIME_FIELD = "eventTime"
CLOUDTRAIL_SOURCE = {"product": "aws", "service": "cloudtrail"}
LEVELS = ("critical", "high", "medium", "low", "informational")
BATCH = 50                       # rules per UNION ALL statement (planning grows faster than linear)
SMALL_LOGS = 128 << 20           # bytes of JSON DuckDB parses in about the time the rules take to load
# Fields the rule index narrows rows by: columns with a lower-case copy in the table.
PREFILTER = {"eventName": "eventname", "eventSource": "eventsource"}
# What a detection shows of its event, shaped as the CloudTrail table holds it.
_SHOWN = ("eventtime", "eventname", "useridentity", "sourceipaddress", "awsregion", "eventid")
_SHOWN_SPEC = tuple(c for c in CLOUDTRAIL if c[0] in _SHOWN)
_USER = ("arn", "username", "invokedby", "principalid")   # the first that is there


@dataclass(frozen=True)
class Detection:
    """A rule selected an event."""

    time: str | None
    event_name: str | None
    user: str | None
    source_ip: str | None
    region: str | None
    event_id: str | None
    title: str
    level: str | None
    rule_id: str | None
    rule_path: str
    file: str
    index: int

    def sort_key(self):
        return (time_key(self.time), self.event_id or "", self.title, self.rule_id or "", self.rule_path,
                self.file, self.index)

    def as_dict(self) -> dict:
        return {"kind": "detection", "time": self.time, "rule": self.title, "level": self.level,
                "event_name": self.event_name, "user": self.user, "source_ip": self.source_ip,
                "region": self.region, "event_id": self.event_id, "rule_id": self.rule_id,
                "rule_path": self.rule_path, "file": self.file, "index": self.index}


def alert_dict(alert) -> dict:
    d = alert.as_dict()
    return {"kind": "correlation", "time": d["first_trigger"], "rule": d["title"], "level": d["level"],
            "correlation_type": d["type"], "last_time": d["last_trigger"], "triggers": d["triggers"],
            "group": d["group"], "rule_id": d["rule_id"], "rule_path": alert.correlation.rule.label}


def alert_key(alert):
    d = alert.as_dict()
    return (time_key(d["first_trigger"]), "", d["title"], d["rule_id"] or "", alert.correlation.rule.label,
            sorted(d["group"].items()))


@lru_cache(maxsize=65536)
def time_key(value):
    """Sort key of an event time: parsed ISO-8601 times in order (naive ones as UTC), then any
    other text, then none."""
    moment = timestamp(value) if value is not None else None
    if moment is not None:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        return (0, moment.timestamp(), value)
    return (1, 0.0, value or "") if value is not None else (2, 0.0, "")


@dataclass
class Report:
    engine: str
    detections: list = field(default_factory=list)    # Detection, sorted
    alerts: list = field(default_factory=list)        # correlation.Alert, sorted
    rules: int = 0                 # rules run (CloudTrail detection rules, correlations' included)
    correlations: int = 0
    skipped: int = 0               # rules and correlations for other log sources
    digests: int = 0               # CloudTrail-Digest files left out
    files: int = 0
    records: int = 0               # records read, duplicates included
    duplicates: int = 0            # records left out: an earlier one has their eventID
    bad_files: list = field(default_factory=list)     # EventsError
    rule_errors: list = field(default_factory=list)   # TranspileError
    on_evaluator: list = field(default_factory=list)  # duckdb: Unsupported of rules the evaluator ran
    queries: int = 0               # duckdb: rules run as SQL (the others could not select anything)
    phases: dict = field(default_factory=dict)        # seconds

    @property
    def events(self) -> int:
        return self.records - self.duplicates


def run(rule_paths, log_paths, engine="duckdb", placeholders=None, progress=None, threads=2) -> Report:
    """Load the rules, read the logs, run every CloudTrail rule and correlation on `engine`.
    progress(label, done, total) follows the slow steps."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}")
    with _no_gc():
        return _run(rule_paths, log_paths, engine, placeholders, progress, threads)


@contextlib.contextmanager
def _no_gc():
    """Hundreds of thousands of events and detections, and no reference cycles among them: the
    cyclic garbage collector would walk them again and again for nothing."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _run(rule_paths, log_paths, engine, placeholders, progress, threads) -> Report:
    start = time.perf_counter()
    report = Report(engine)
    files = log_files(log_paths, report)
    if engine == "duckdb":
        if importlib.util.find_spec("duckdb") is None:
            raise TranspileError("the duckdb engine needs the duckdb package (pip install duckdb); "
                                 "--engine evaluator needs nothing more", kind="option")
        from .duckdb_events import stage_files
        staged = stage_files(files, (lambda done, total: progress("reading logs", done, total))
                             if progress else None)
        report.phases["files"] = time.perf_counter() - start
        reader = _DuckReader(staged, threads)
        reader.start()                 # DuckDB parses the logs while Python loads the rules
        rules, errors = _load_rules(rule_paths, placeholders, progress)
        plan = _plan(rules, errors, report)
        report.phases["rules"] = time.perf_counter() - start - report.phases["files"]
        reader.join()
        report.phases["logs"] = reader.seconds
        _run_duckdb(plan, reader, report, progress)
    else:
        rules, errors = _load_rules(rule_paths, placeholders, progress)
        plan = _plan(rules, errors, report)
        report.phases["rules"] = time.perf_counter() - start
        _run_evaluator(plan, files, report, progress)
    report.detections.sort(key=Detection.sort_key)
    report.alerts.sort(key=alert_key)
    report.phases["total"] = time.perf_counter() - start
    return report


def log_files(paths, report=None) -> list:
    """The event files under paths (events.event_files), but CloudTrail's digest files
    (AWSLogs/<account>/CloudTrail-Digest/...: hashes of the log files, not events)."""
    files = event_files(paths)
    kept = [f for f in files if "CloudTrail-Digest" not in f.parts[:-1]]
    if report is not None:
        report.digests = len(files) - len(kept)
    return kept


def _load_rules(paths, placeholders, progress):
    from .batch import load_all
    return load_all(paths, placeholders, _Bar(progress, "loading rules") if progress else None)


class _Bar:
    """batch's progress(done, total) interface onto run()'s progress(label, done, total)."""

    def __init__(self, progress, label):
        self.progress, self.label = progress, label

    def update(self, done, total):
        self.progress(self.label, done, total)


@dataclass
class _Plan:
    run: list            # the CloudTrail detection rules, filters applied
    shown: set           # ids of those that report their own matches
    correlations: list   # correlations over CloudTrail rules


def _plan(rules, errors, report) -> _Plan:
    correlations, detections, resolve_errors = correlation.resolve(rules)
    report.rule_errors = list(errors) + list(resolve_errors)
    run = [r for r in detections if r.query is not None and is_cloudtrail(r)]
    ids = {id(r) for r in run}
    kept = [c for c in correlations if all(id(b) in ids for b in c.rules)]
    report.skipped = len(detections) - len(run) + len(correlations) - len(kept)
    report.rules, report.correlations = len(run), len(kept)
    shown = {id(r) for r in correlation.standalone(run, correlations)}
    return _Plan(run, shown, kept)


def is_cloudtrail(rule) -> bool:
    source = {str(k).lower(): str(v).lower() for k, v in (rule.logsource or {}).items()}
    return all(source.get(k) == v for k, v in CLOUDTRAIL_SOURCE.items())


def _detection(rule, shown: dict, file: str, index: int) -> Detection:
    return Detection(shown["eventtime"], shown["eventname"], shown["user"], shown["sourceipaddress"],
                     shown["awsregion"], shown["eventid"], rule.title, rule.level, rule.id, rule.label, file, index)


def shown_fields(event: dict) -> dict:
    """What a detection shows of a CloudTrail record, read as the CloudTrail table holds it."""
    row = _record(event, _SHOWN_SPEC) or {}
    identity = row.pop("useridentity", None) or {}
    row["user"] = next((identity[k] for k in _USER if identity.get(k) is not None), None)
    return row


# --- the evaluator -------------------------------------------------------------------------------

def _run_evaluator(plan: _Plan, files, report: Report, progress):
    start = time.perf_counter()
    events, seen = [], set()           # (file, index, dict), first of each eventID
    for n, path in enumerate(files, 1):
        if progress is not None:
            progress("reading logs", n, len(files))
        try:
            found = parse_events(_read(path), str(path))
        except EventsError as e:
            report.bad_files.append(e)
            continue
        except RecursionError:
            report.bad_files.append(EventsError("JSON nested too deeply", path=path))
            continue
        report.records += len(found)
        for i, e in enumerate(found):
            event_id = e.get("eventID")
            if event_id is not None:
                key = text(event_id)
                if key in seen:
                    report.duplicates += 1
                    continue
                seen.add(key)
            events.append((str(path), i, e))
    report.files = len(files)
    report.phases["logs"] = time.perf_counter() - start
    start = time.perf_counter()
    ruleset = RuleSet(plan.run)          # the correlations' rules too: each event is matched once
    uses = defaultdict(list)             # rule -> (correlation no, its place in the correlation)
    for c_no, c in enumerate(plan.correlations):
        for k, base in enumerate(c.rules):
            uses[id(base)].append((c_no, k))
    selected = [[] for _ in plan.correlations]
    for n, (path, i, event) in enumerate(events, 1):
        if progress is not None and n % 1000 == 0:
            progress("running rules", n, len(events))
        matched = ruleset.matching(event)
        if not matched:
            continue
        shown = [r for r in matched if id(r) in plan.shown]
        if shown:
            fields = shown_fields(event)
            report.detections.extend(_detection(r, fields, path, i) for r in shown)
        hits = defaultdict(list)
        for r in matched:
            for c_no, k in uses.get(id(r), ()):
                hits[c_no].append(k)
        for c_no, ks in hits.items():
            selected[c_no].append((event, sorted(ks)))
    report.alerts = [a for c, chosen in zip(plan.correlations, selected)
                     for a in correlation.alerts(c, chosen, TIME_FIELD)]
    report.phases["match"] = time.perf_counter() - start


# --- DuckDB --------------------------------------------------------------------------------------

class _DuckReader(threading.Thread):
    """Loads the staged logs into DuckDB on its own thread: DuckDB works without Python's lock,
    so the rules load meanwhile."""

    def __init__(self, staged, threads):
        super().__init__(daemon=True)
        self.staged, self.threads = staged, threads
        self.con = self.scan = self.error = None
        self.seconds = 0.0

    def run(self):
        start = time.perf_counter()
        try:
            import duckdb

            from .duckdb_events import load_staged
            self.con = duckdb.connect(":memory:")
            # One DuckDB thread while Python loads the rules on the other core (a few hundred
            # milliseconds), unless the logs take much longer than that; all for the queries.
            self.con.execute(f"SET threads = {1 if self.staged.size < SMALL_LOGS else int(self.threads)}")
            self.scan = load_staged(self.con, self.staged, dedupe=True, lowered=tuple(PREFILTER.values()))
            self.con.execute(f"SET threads = {int(self.threads)}")
        except BaseException as e:    # re-raised on the main thread
            self.error = e
        finally:
            self.staged.cleanup()
        self.seconds = time.perf_counter() - start

    def join(self, timeout=None):
        super().join(timeout)
        if self.error is not None:
            raise self.error


def _run_duckdb(plan: _Plan, reader: _DuckReader, report: Report, progress):
    from .backends.sql import DuckDB
    start = time.perf_counter()
    con, scan = reader.con, reader.scan
    report.files, report.bad_files = len(scan.files), list(scan.errors)
    report.records, report.duplicates = scan.rows + scan.duplicates, scan.duplicates
    present = {column: {v for (v,) in con.execute(f"SELECT DISTINCT _lower_{column} FROM cloudtrail_logs "
                                                  f"WHERE _lower_{column} IS NOT NULL").fetchall()}
               for column in PREFILTER.values()}
    backend = DuckDB()
    statements, slow = [], []          # (rule no, SQL), (rule no, prefilter, Unsupported)
    for n, rule in enumerate(plan.run):
        narrow = _prefilter(rule.query, present)
        if narrow is None:            # a required value the logs do not have: nothing to select
            continue
        try:
            where = _where(backend, rule)
        except TranspileError as e:
            slow.append((n, narrow, e))
            continue
        statements.append(f"SELECT {n} AS rule, row_id FROM cloudtrail_logs WHERE {_narrow_sql(narrow)} AND ({where})")
    report.queries = len(statements)
    hits = defaultdict(list)           # rule no -> row ids
    batches = [statements[i:i + BATCH] for i in range(0, len(statements), BATCH)]
    for b, batch in enumerate(batches, 1):
        for n, row_id in con.execute("\nUNION ALL\n".join(batch)).fetchall():
            hits[n].append(row_id)
        if progress is not None:
            progress("running rules", b, len(batches))
    report.phases["queries"] = time.perf_counter() - start
    start = time.perf_counter()
    for n, narrow, error in slow:      # on the evaluator, over the events the prefilter leaves
        report.on_evaluator.append(error)
        test = compile_query(plan.run[n].query)
        candidates = [r for (r,) in con.execute(f"SELECT row_id FROM cloudtrail_logs WHERE {_narrow_sql(narrow)}")
                      .fetchall()]
        events = _events(con, scan, candidates)
        hits[n].extend(r for r in candidates if r in events and test(events[r]))
    for rows in hits.values():
        rows.sort()
    shown_rows = sorted({r for n, rows in hits.items() if id(plan.run[n]) in plan.shown for r in rows})
    shown = _shown_rows(con, scan, shown_rows)
    for n, rows in sorted(hits.items()):
        rule = plan.run[n]
        if id(rule) in plan.shown:
            meta = (rule.title, rule.level, rule.id, rule.label)
            report.detections.extend(Detection(*shown[r][0], *meta, shown[r][1], shown[r][2]) for r in rows)
    number = {id(r): n for n, r in enumerate(plan.run)}
    for c in plan.correlations:
        alerts = _correlate_sql(con, backend, c)
        if alerts is None:             # no SQL for it: correlation.alerts over the rows DuckDB selected
            alerts = _correlate(con, scan, backend, c, [hits.get(number[id(b)], []) for b in c.rules])
        report.alerts.extend(alerts)
    report.phases["results"] = time.perf_counter() - start


def _where(backend, rule) -> str:
    """The rule's WHERE clause, as `convert -t duckdb` writes it for the CloudTrail table."""
    try:
        backend.mapping = backend.mapping_for(rule)
        if backend.table() != "cloudtrail_logs":
            raise Unsupported(f"the mapping for {rule.logsource} reads table {backend.table()!r}")
        return backend.render(rule.query)
    except TranspileError as e:
        raise e.located(rule.label, "detection") from None


def _prefilter(query, present):
    """[(column, values)]: the rule can only select rows whose lower-case column has one of
    the values; None when it cannot select any row of these logs. Only ASCII values, which
    Python and DuckDB lower-case alike."""
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


_SHOWN_SQL = ("t.eventtime, t.eventname, coalesce(" + ", ".join(f"t.useridentity.{k}" for k in _USER) +
              "), t.sourceipaddress, t.awsregion, t.eventid")


def _narrow_sql(narrow) -> str:
    from .backends.sql import literal
    return " AND ".join(f"_lower_{column} IN ({', '.join(map(literal, sorted(values)))})"
                        for column, values in narrow) or "TRUE"


def _shown_rows(con, scan, rows) -> dict:
    """row id -> (shown fields, file, index)."""
    if not rows:
        return {}
    found = con.execute(f"SELECT t.row_id, {_SHOWN_SQL}, s.file, s.idx FROM cloudtrail_logs t "
                        f"JOIN cloudtrail_logs_sources s USING (row_id) WHERE t.row_id IN (SELECT unnest($rows))",
                        {"rows": rows}).fetchall()
    return {r[0]: (r[1:7], scan.files[r[7]], r[8]) for r in found}


def _events(con, scan, rows) -> dict:
    """row id -> the record as events.py reads it, from its file again."""
    if not rows:
        return {}
    where = con.execute("SELECT row_id, file, idx FROM cloudtrail_logs_sources WHERE row_id IN (SELECT unnest($rows))",
                        {"rows": rows}).fetchall()
    by_file = defaultdict(list)
    for row_id, f, idx in where:
        by_file[f].append((row_id, idx))
    out = {}
    for f, wanted in sorted(by_file.items()):
        path = scan.files[f]
        try:
            records = parse_events(_read(Path(path)), path)
        except (EventsError, RecursionError):
            continue    # changed since it was read: its rows are left out
        out.update((row_id, records[idx]) for row_id, idx in wanted if idx < len(records))
    return out


def _correlate_sql(con, backend, c):
    """The correlation's alerts from the query `convert -t duckdb` writes for it (the same
    query runs on Athena), or None where the backend has none for it."""
    convert = getattr(backend, "convert_correlation", None)
    try:
        sql = convert(c) if convert is not None else None
    except Unsupported:
        return None
    if sql is None:
        return None
    out = []
    width = len(c.group_by)
    for row in con.execute(sql).fetchall():
        group = tuple((name, text(value)) for name, value in zip(c.group_by, row[:width]))
        first, last, triggers = row[width:width + 3]
        out.append(correlation.Alert(c, group, _utc(first), _utc(last), int(triggers)))
    return out


def _utc(moment):
    """A time from SQL (TIMESTAMP: UTC, naive) as correlation.Alert holds it (aware)."""
    utc = datetime.timezone.utc
    return moment.replace(tzinfo=utc) if moment.tzinfo is None else moment.astimezone(utc)


def _correlate(con, scan, backend, c, hits) -> list:
    """correlation.alerts over the rows DuckDB selected for each referenced rule: each row as an
    event of the fields the correlation reads (literal dotted keys: field_values reads them),
    with the values the SQL columns hold; an event read again from its file where a field has
    no column."""
    rows = sorted({r for rs in hits for r in rs})
    if not rows:
        return []
    fields = sorted({TIME_FIELD} | {f for b in c.rules for f in c.group_fields(b)} |
                    {c.value_field(b) for b in c.rules if c.field})
    backend.mapping = backend.mapping_for(c.rules[0])
    try:
        exprs = [_first_value(backend, f) for f in fields]
    except Unsupported:
        events = _events(con, scan, rows)
    else:
        found = con.execute(f"SELECT row_id, {', '.join(exprs)} FROM cloudtrail_logs "
                            f"WHERE row_id IN (SELECT unnest($rows))", {"rows": rows}).fetchall()
        events = {r[0]: {f: v for f, v in zip(fields, r[1:]) if v is not None} for r in found}
    members = [set(rs) for rs in hits]
    selected = ((events[r], [k for k, m in enumerate(members) if r in m]) for r in rows if r in events)
    return correlation.alerts(c, selected, TIME_FIELD)


def _first_value(backend, name: str) -> str:
    """SQL for the text of a field's first value, as the queries read the field."""
    p = backend.place(name)
    d = backend.macros
    if p.kind == "json":
        return d.json_scalar(p.expr, p.path)
    if p.kind == "list":
        item = d.text(p.item, p.type)
        return f"list_filter(list_transform({p.expr}, lambda x: {item}), lambda v: v IS NOT NULL)[1]"
    return d.text(p.expr, p.type)


# --- output ---------------------------------------------------------------------------------------

COLUMNS = (("time", "Time"), ("rule", "Rule"), ("level", "Level"), ("event_name", "Event"), ("user", "User"),
           ("source_ip", "Source IP"), ("region", "Region"), ("event_id", "Event ID"))
ALERT_COLUMNS = (("time", "First"), ("last_time", "Last"), ("rule", "Rule"), ("level", "Level"),
                 ("correlation_type", "Type"), ("triggers", "Triggers"), ("group", "Group"))
CSV_FIELDS = ("kind", "time", "rule", "level", "event_name", "user", "source_ip", "region", "event_id",
              "rule_id", "rule_path", "file", "index", "correlation_type", "last_time", "triggers", "group")


def rows(report: Report) -> list[dict]:
    """Detections and correlation alerts in one timeline (an alert at its first trigger)."""
    items = [(d.sort_key(), 0, d.as_dict()) for d in report.detections]
    items += [(alert_key(a), 1, alert_dict(a)) for a in report.alerts]
    return [row for _, _, row in sorted(items, key=lambda item: (item[0][:3], item[1], item[0][3:]))]


def write(report: Report, fmt: str, out) -> None:
    with _no_gc():
        _write(report, fmt, out)


def _write(report: Report, fmt: str, out) -> None:
    if fmt == "jsonl":
        import json
        for row in rows(report):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        import csv
        writer = csv.DictWriter(out, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows(report):
            if row["kind"] == "correlation":
                row = {**row, "group": ", ".join(f"{k}={v}" for k, v in row["group"].items())}
            writer.writerow(row)
    else:
        out.write(table([d.as_dict() for d in report.detections], COLUMNS))
        if report.alerts:
            alerts = [{**alert_dict(a), "group": ", ".join(f"{k}={v}" for k, v in a.group)}
                      for a in report.alerts]
            out.write("\nCorrelation alerts\n" + table(alerts, ALERT_COLUMNS))


def table(items: list[dict], columns) -> str:
    """Plain aligned columns; `-` for no value; a cell's line breaks and tabs as spaces."""
    keys = [key for key, _ in columns]
    cells = [[str(item.get(key)) if item.get(key) not in (None, "") else "-" for key in keys] for item in items]
    cells = [[_cell(c) for c in row] if _BREAKS.search("".join(row)) else row for row in cells]
    heads = [head for _, head in columns]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(heads)]
    pad = [f"{{:<{w}}}" for w in widths]
    template = "  ".join(pad)

    def line(values):
        return template.format(*values).rstrip() + "\n"
    return line(heads) + line(["-" * w for w in widths]) + "".join(line(row) for row in cells)


_BREAKS = re.compile(r"[\t\n\r\x0b\x0c]")


def _cell(value: str) -> str:
    return " ".join(value.split()) if _BREAKS.search(value) else value


def summary(report: Report) -> str:
    """Counts, then detections by level and by rule (most severe first), then correlation alerts."""
    r = report
    lines = [f"hunt ({r.engine}): {r.files} files ({len(r.bad_files)} unreadable"
             + (f", {r.digests} CloudTrail-Digest files left out" if r.digests else "") + f"), {r.records} records, "
             f"{r.duplicates} duplicates left out (same eventID as an earlier record), {r.events} events; "
             f"{r.rules} rules and {r.correlations} correlations for CloudTrail"
             + (f" ({r.skipped} for other log sources skipped)" if r.skipped else "")
             + (f", {len(r.rule_errors)} rule errors" if r.rule_errors else "")
             + f"; {r.phases.get('total', 0):.2f} s"]
    if r.engine == "duckdb":
        lines.append(f"  {r.queries} rules ran as DuckDB SQL; the others need eventName/eventSource values "
                     f"these logs do not have" + (f"; {len(r.on_evaluator)} ran on the evaluator "
                                                  f"(DuckDB cannot express them)" if r.on_evaluator else ""))
    levels = defaultdict(int)
    by_rule = defaultdict(int)
    for d in r.detections:
        levels[d.level] += 1
        by_rule[(d.level, d.title, d.rule_id or "")] += 1
    lines.append(f"{len(r.detections)} detections" + (": " + ", ".join(
        f"{levels[lv]} {lv or 'no level'}" for lv in sorted(levels, key=_severity)) if levels else ""))
    for (level, title, _), count in sorted(by_rule.items(), key=lambda kv: (_severity(kv[0][0]), -kv[1], kv[0])):
        lines.append(f"  {count:>6}  {level or '-':<13} {title}")
    if r.alerts:
        alert_levels = defaultdict(int)
        for a in r.alerts:
            alert_levels[a.correlation.rule.level] += 1
        lines.append(f"{len(r.alerts)} correlation alerts: " + ", ".join(
            f"{alert_levels[lv]} {lv or 'no level'}" for lv in sorted(alert_levels, key=_severity)))
    return "\n".join(lines) + "\n"


def _severity(level):
    return (LEVELS.index(level), "") if level in LEVELS else (len(LEVELS), str(level))

"""`hunt`: Sigma rules over a folder of CloudTrail logs, without a SIEM: which rules to run,
and the timeline. The work is an engine's (transpiler/engines), and both engines `hunt`
offers give the same answers:
- duckdb: the files go into an in-memory DuckDB table shaped like AWS's Athena table for
  CloudTrail (cloudtrail.SCHEMA), read by DuckDB while the rules load, and every rule runs as
  the query `convert -t duckdb` writes for it (the same rules converted with `-t athena` run
  on Athena over the S3 bucket). A rule DuckDB cannot express or run runs on the evaluator.
- evaluator: the reference evaluator over the events events.py reads.

Only rules for CloudTrail (logsource product aws, service cloudtrail) are run, and the
correlations over them; others are counted as skipped. CloudTrail-Digest files are left out,
and a record counts once: the first with its eventID, in file order. An event is shown as the
CloudTrail table holds it (cloudtrail.record), so both engines print the same text.

Detections are sorted by event time, then eventID, then rule title (then rule id and path,
file and position): the output is the same for both engines and from run to run.
"""
from __future__ import annotations

import contextlib
import gc
import operator
import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from . import cloudtrail, engines
from .duckdb_events import scratch_root
from .engines import time_order
from .errors import TranspileError, printable
from .events import MAX_EVENT_BYTES, find_event_files
from .files import errors_name

try:                    # the C function json.dumps uses for strings (ensure_ascii=False)
    from _json import encode_basestring as _json_string
except ImportError:     # pragma: no cover  (Python without the _json accelerator)
    from json.encoder import py_encode_basestring as _json_string

ENGINES = ("duckdb", "evaluator")
LEVELS = ("critical", "high", "medium", "low", "informational")
# What a detection shows of its event: these CloudTrail columns, and as the user the first of
# userIdentity's arn, userName, invokedBy, principalId that is there.
_USER = ("useridentity.arn", "useridentity.username", "useridentity.invokedby", "useridentity.principalid")
SHOWN = ("eventtime", "eventname", *_USER, "sourceipaddress", "awsregion", "eventid")


class Detection(NamedTuple):
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
    """Sort key of an event time (engines.time_order): ISO-8601 times in time order (naive
    ones as UTC), then any other text, then none."""
    return time_order(value)


@dataclass
class Report:
    engine: str
    detections: list | None = None   # Detection, sorted: run() fills it; hunting() streams them (timeline())
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
    on_evaluator: list = field(default_factory=list)  # duckdb: why each rule the evaluator ran could not run as SQL
    queries: int = 0               # duckdb: rules run as SQL (the others could not select anything)
    counts: dict = field(default_factory=dict)        # (level, title, rule id) -> detections
    phases: dict = field(default_factory=dict)        # seconds
    temp_dir: str | None = None    # where temporary files go (None: duckdb_events.scratch_root())
    _stream: object = None         # () -> (time_order, Detection) in timeline order, while hunting()
    _lines: object = None          # () -> jsonl() from the engine, while hunting()

    @property
    def events(self) -> int:
        return self.records - self.duplicates

    def timeline(self):
        """(time_order of its time, Detection) for every detection, in timeline order."""
        if self.detections is not None:
            return ((time_key(d.time), d) for d in self.detections)
        return self._stream()

    def jsonl(self):
        """(time_order, eventID, title, its jsonl line) for every detection, in timeline order,
        in lists of a few thousand."""
        if self.detections is not None:
            return engines.in_lists((time_key(d.time), d.event_id or "", d.title, _jsonl(d))
                                    for d in self.detections)
        return self._lines()


def run(rule_paths, log_paths, engine="duckdb", placeholders=None, progress=None,
        max_bytes: int = MAX_EVENT_BYTES, memory: int | None = None, temp_dir=None) -> Report:
    """Load the rules, read the logs, run every CloudTrail rule and correlation on `engine`;
    the Report holds every detection (Report.detections). For logs of any size, hunting()
    streams them instead. progress(label, done, total) follows the slow steps."""
    with hunting(rule_paths, log_paths, engine, placeholders, progress, max_bytes, memory, temp_dir) as report:
        report.detections = [d for _, d in report.timeline()]
    return report


@contextlib.contextmanager
def hunting(rule_paths, log_paths, engine="duckdb", placeholders=None, progress=None,
            max_bytes: int = MAX_EVENT_BYTES, memory: int | None = None, temp_dir=None):
    """run(), as a context: the Report's detections are not held but streamed by
    Report.timeline() (for the DuckDB engine sorted in DuckDB, within its memory limit) until
    the block ends. memory, temp_dir: the DuckDB engine's memory limit in bytes and where it
    stages and spills (engines.duckdb)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}")
    options = {"memory": memory, "temp_dir": temp_dir} if engine == "duckdb" else {}
    chosen = engines.get(engine)(time_field=cloudtrail.TIME_FIELD, fallback=True, **options)
    missing = chosen.unavailable()
    if missing:
        raise TranspileError(f"the {engine} engine cannot run: {missing}", kind="option")
    with _no_gc():
        start = time.perf_counter()
        report = Report(chosen.name, temp_dir=temp_dir)
        found, report.bad_files = find_event_files(log_paths)
        files, report.digests = cloudtrail.log_files(found)
        with chosen.load(engines.Files(tuple(files), dedupe=True, max_bytes=max_bytes), progress) as logs:
            report.phases["files"] = time.perf_counter() - start
            _run(chosen, report, logs, rule_paths, placeholders, progress)
            report.phases["total"] = time.perf_counter() - start
            yield report


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


def _run(engine, report, logs, rule_paths, placeholders, progress):
    start = time.perf_counter()
    rules, errors = _load_rules(rule_paths, placeholders, progress)
    plan = engines.plan(rules, errors, keep=cloudtrail.is_cloudtrail)
    report.phases["rules"] = time.perf_counter() - start
    outcome = engine.run(plan.rules, logs, plan.correlations, show=SHOWN, progress=progress)
    report.rules, report.correlations, report.skipped = len(plan.rules), len(plan.correlations), plan.skipped
    report.rule_errors = plan.errors + plan.failures(outcome)
    report.files = len(outcome.read.files)
    report.bad_files += outcome.read.errors
    report.records, report.duplicates = outcome.read.records, outcome.read.duplicates
    report.on_evaluator = [reason for n, reason in outcome.fallback.items() if isinstance(n, int)]
    report.queries = outcome.stats.get("sql", 0)
    report.phases.update(outcome.phases)
    meta = {n: (r.title, r.level, r.id, r.label) for n in outcome.matches if id(r := plan.rules[n]) in plan.shown}
    for n, count in outcome.counts().items():
        if n in meta and count:
            title, level, rule_id, _ = meta[n]
            report.counts[(level, title, rule_id or "")] = report.counts.get((level, title, rule_id or ""), 0) + count
    # Rules in the order of their title, id and file; equal ones share a rank (then the event decides).
    ranks, rank = {}, {}
    for n in sorted(meta, key=lambda n: _rule_order(meta[n])):
        rank[n] = ranks.setdefault(_rule_order(meta[n]), len(ranks))
    files = outcome.read.files

    def stream():
        place = engines.place
        for k, n, values, when, _ in outcome.timeline(rank, "eventtime", "eventid"):
            f, index = place(k)
            time, name, arn, user_name, invoked_by, principal, ip, region, event_id = values      # SHOWN
            user = (arn if arn is not None else user_name if user_name is not None else
                    invoked_by if invoked_by is not None else principal)
            yield when, Detection(time, name, user, ip, region, event_id, *meta[n], files[f], index)
    def lines():
        line, title = jsonl_line(meta), {n: m[0] for n, m in meta.items()}
        for part in outcome.timeline_parts(rank, "eventtime", "eventid", line):
            yield [(when, event_id, title[n], text) for _, n, text, when, event_id in part]
    report._stream, report._lines = stream, lines
    report.alerts = sorted(outcome.alerts, key=alert_key)


def jsonl_line(meta: dict) -> engines.Line:
    """Detection.as_dict() (what _jsonl writes) for an engine to write: meta is rule no ->
    (title, level, id, path)."""
    def rule(i):
        return "rule", {n: m[i] for n, m in meta.items()}
    return engines.Line((
        ("kind", ("value", "detection")), ("time", ("show", "eventtime")), ("rule", rule(0)), ("level", rule(1)),
        ("event_name", ("show", "eventname")), ("user", ("show", *_USER)), ("source_ip", ("show", "sourceipaddress")),
        ("region", ("show", "awsregion")), ("event_id", ("show", "eventid")), ("rule_id", rule(2)),
        ("rule_path", rule(3)), ("file", ("file",)), ("index", ("index",))))


def _rule_order(meta) -> tuple:
    title, _, rule_id, path = meta
    return title, rule_id or "", path


def _load_rules(paths, placeholders, progress):
    from .batch import load_all
    return load_all(paths, placeholders, _Bar(progress, "loading rules") if progress else None)


class _Bar:
    """batch's progress(done, total) interface onto run()'s progress(label, done, total)."""

    def __init__(self, progress, label):
        self.progress, self.label = progress, label

    def update(self, done, total):
        self.progress(self.label, done, total)


def shown_values(row: dict) -> tuple:
    """(time, eventName, user, source IP, region, eventID) of the SHOWN values of a row."""
    user = next((row[k] for k in _USER if row.get(k) is not None), None)
    return (row.get("eventtime"), row.get("eventname"), user, row.get("sourceipaddress"), row.get("awsregion"),
            row.get("eventid"))


def shown_fields(event: dict) -> dict:
    """What a detection shows of a CloudTrail record, read as the CloudTrail table holds it."""
    values = shown_values(cloudtrail.values(event, SHOWN))
    return dict(zip(("eventtime", "eventname", "user", "sourceipaddress", "awsregion", "eventid"), values))


# --- output ---------------------------------------------------------------------------------------

COLUMNS = (("time", "Time"), ("rule", "Rule"), ("level", "Level"), ("event_name", "Event"), ("user", "User"),
           ("source_ip", "Source IP"), ("region", "Region"), ("event_id", "Event ID"))
ALERT_COLUMNS = (("time", "First"), ("last_time", "Last"), ("rule", "Rule"), ("level", "Level"),
                 ("correlation_type", "Type"), ("triggers", "Triggers"), ("group", "Group"))
# Where each column's value sits in a Detection (the rule is its title).
_DETECTION_AT = {key: Detection._fields.index("title" if key == "rule" else key) for key, _ in COLUMNS}
SPOOL = 16 << 20        # bytes of table cells held in memory; past that, on disk
CSV_FIELDS = ("kind", "time", "rule", "level", "event_name", "user", "source_ip", "region", "event_id",
              "rule_id", "rule_path", "file", "index", "correlation_type", "last_time", "triggers", "group")
# Columns a narrow terminal shortens, down to _LEAST characters (the others keep their width),
# and the order in which columns matter: a terminal too narrow for all leaves out the last ones.
_SHRINK = ("rule", "user", "group")
_LEAST = 16
_PRIORITY = ("time", "rule", "level", "user", "event_name", "source_ip", "event_id", "region",
             "group", "triggers", "correlation_type", "last_time")


def entries(report: Report):
    """Detections and correlation alerts in one timeline: Detection and correlation.Alert items."""
    parts = engines.in_lists((when, d.event_id or "", d.title, d) for when, d in report.timeline())
    for part in _merged(parts, report.alerts):
        yield from part


def _merged(parts, alerts):
    """The items, lists of (time_order, eventID, title, item) in timeline order, and the alerts
    in one timeline, as lists: an alert at its first trigger, after the detections of its
    time, eventID ("") and title. A list that ends before the next alert is taken whole."""
    pending = [(alert_key(a)[:3] + (1,), a) for a in alerts]
    i = 0
    for part in parts:
        if i < len(pending) and pending[i][0] < (*part[-1][:3], 0):
            merged = []
            for when, event_id, title, item in part:
                here = (when, event_id, title, 0)
                while i < len(pending) and pending[i][0] < here:
                    merged.append(pending[i][1])
                    i += 1
                merged.append(item)
            yield merged
        else:
            yield [entry[3] for entry in part]
    yield [a for _, a in pending[i:]]


def rows(report: Report) -> list[dict]:
    """entries() as dicts (the jsonl lines)."""
    return [_row(item) for item in entries(report)]


def _jsonl(d: Detection) -> str:
    """json.dumps(d.as_dict(), ensure_ascii=False), without the dict: a timeline may have
    millions of lines."""
    time, name, user, ip, region, event_id, title, level, rule_id, path, file, index = map(_json_value, d)
    return (f'{{"kind": "detection", "time": {time}, "rule": {title}, "level": {level}, "event_name": {name}, '
            f'"user": {user}, "source_ip": {ip}, "region": {region}, "event_id": {event_id}, '
            f'"rule_id": {rule_id}, "rule_path": {path}, "file": {file}, "index": {index}}}')


def _json_value(value) -> str:
    """A value as json.dumps(value, ensure_ascii=False) writes it."""
    if value.__class__ is str:
        return _json_string(value)
    if value is None:
        return "null"
    if value.__class__ is int:
        return int.__repr__(value)
    import json
    return json.dumps(value, ensure_ascii=False)


def _row(item) -> dict:
    return item.as_dict() if isinstance(item, Detection) else alert_dict(item)


def write(report: Report, fmt: str, out, width: int | None = None) -> None:
    """The timeline in `fmt` (table, csv, jsonl), a line at a time. A table wider than `width`
    characters has its long cells shortened in the middle (…); csv and jsonl hold every
    value whole."""
    with _no_gc():
        _write(report, fmt, out, width)


def _write(report: Report, fmt: str, out, width) -> None:
    if fmt == "jsonl":
        import json
        encode = json.JSONEncoder(ensure_ascii=False).encode      # json.dumps(row, ensure_ascii=False)
        for part in _merged(report.jsonl(), report.alerts):      # a write per list, not per line
            if part:
                out.write("\n".join([item if item.__class__ is str else encode(alert_dict(item))
                                     for item in part]) + "\n")
    elif fmt == "csv":
        import csv
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        for item in entries(report):
            row = _row(item)
            if row["kind"] == "correlation":
                row["group"] = ", ".join(f"{k}={v}" for k, v in row["group"].items())
            writer.writerow([spreadsheet_cell(row.get(k)) for k in CSV_FIELDS])
    else:
        shown = operator.itemgetter(*(_DETECTION_AT[key] for key, _ in COLUMNS))
        out.writelines(table_lines((shown(d) for _, d in report.timeline()), COLUMNS, width,
                                   scratch_root(report.temp_dir)))
        if report.alerts:
            alerts = [{**alert_dict(a), "group": ", ".join(f"{k}={v}" for k, v in a.group)}
                      for a in report.alerts]
            out.write("\nCorrelation alerts\n" + table(alerts, ALERT_COLUMNS, width))


# A cell a spreadsheet would read as a formula (or, after a tab or line break, as the start of
# one): OWASP's CSV injection guidance (https://owasp.org/www-community/attacks/CSV_Injection)
# is to prefix it with a single quote, which the spreadsheet shows as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def spreadsheet_cell(value):
    """A CSV cell that no spreadsheet runs: text starting like a formula gets a leading '."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def table(items: list[dict], columns, width: int | None = None) -> str:
    """table_lines() of a list of dicts, as one text."""
    keys = [key for key, _ in columns]
    return "".join(table_lines(([item.get(key) for key in keys] for item in items), columns, width))


def table_lines(rows, columns, width: int | None = None, scratch=None):
    """Plain aligned columns; `-` for no value; control characters escaped (errors.printable).
    rows: the values of each row in `columns` order, read once: their cells wait in a
    temporary file (in memory up to SPOOL bytes, past that in the folder `scratch`) until every
    width is known. Wider than `width`: the least useful columns (_PRIORITY) are left out until
    the rest fit with rule, user and group at _LEAST characters or more, the widest of those
    give up characters first, and a cell longer than its column keeps its start and end (…)."""
    widths = [len(head) for _, head in columns]
    with tempfile.SpooledTemporaryFile(SPOOL, mode="w+", encoding="utf-8", newline="\n", dir=scratch) as cells:
        for part in engines.in_lists(rows):
            part = [["-" if value is None or value == "" else     # printable(), its test inline
                     value if value.__class__ is str and value.isprintable() else printable(value)
                     for value in values] for values in part]
            widths = [max(w, *map(len, column)) for w, column in zip(widths, zip(*part))]
            with errors_name(scratch or tempfile.gettempdir()):    # past SPOOL bytes: a file there
                cells.write("\n".join(map("\t".join, part)) + "\n")   # printable() escapes tabs and line breaks
        cells.seek(0)
        shown = list(range(len(columns)))
        if width is not None:
            least = [min(w, _LEAST) if key in _SHRINK else w for (key, _), w in zip(columns, widths)]
            while len(shown) > 2 and sum(least[i] + 2 for i in shown) - 2 > width:
                shown.remove(max(shown, key=lambda i: _PRIORITY.index(columns[i][0])))
            widths = _fit([widths[i] for i in shown], [least[i] for i in shown], width)
        template = "  ".join(f"{{:<{w}}}" for w in widths)

        def line(values):
            return template.format(*values).rstrip() + "\n"
        yield line([columns[i][1] for i in shown])
        yield line(["-" * w for w in widths])
        for text in cells:
            row = text[:-1].split("\t")
            yield line([_elide(row[i], w) for i, w in zip(shown, widths)] if width is not None else row)


def _fit(widths, least, width) -> list:
    """Column widths that fit `width` (with two spaces between columns), taking one character
    at a time from the widest column that can still give one."""
    widths = list(widths)
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    while excess > 0:
        give = [i for i, w in enumerate(widths) if w > least[i]]
        if not give:
            break
        widest = max(give, key=lambda i: (widths[i], -i))
        widths[widest] -= 1
        excess -= 1
    return widths


def _elide(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    if width < 2:
        return "…"[:width]
    head = width // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def terminal_width(stream) -> int | None:
    """The width of the terminal `stream` writes to, or None when it is not a terminal."""
    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return shutil.get_terminal_size().columns


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
                                                  f"(DuckDB cannot express or run them)" if r.on_evaluator else ""))
    levels = defaultdict(int)
    for (level, _, _), count in r.counts.items():
        levels[level] += count
    lines.append(f"{sum(r.counts.values())} detections" + (": " + ", ".join(
        f"{levels[lv]} {printable(str(lv)) if lv else 'no level'}" for lv in sorted(levels, key=_severity))
        if levels else ""))
    for (level, title, _), count in sorted(r.counts.items(), key=lambda kv: (_severity(kv[0][0]), -kv[1], kv[0])):
        lines.append(f"  {count:>6}  {printable(str(level or '-')):<13} {printable(title)}")
    if r.alerts:
        alert_levels = defaultdict(int)
        for a in r.alerts:
            alert_levels[a.correlation.rule.level] += 1
        lines.append(f"{len(r.alerts)} correlation alerts: " + ", ".join(
            f"{alert_levels[lv]} {printable(str(lv)) if lv else 'no level'}" for lv in sorted(alert_levels, key=_severity)))
    return "\n".join(lines) + "\n"


def _severity(level):
    return (LEVELS.index(level), "") if level in LEVELS else (len(LEVELS), str(level))


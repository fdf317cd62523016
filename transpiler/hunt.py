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
import datetime
import gc
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

from . import cloudtrail, engines
from .errors import TranspileError, printable
from .evaluate import timestamp
from .events import MAX_EVENT_BYTES, find_event_files

ENGINES = ("duckdb", "evaluator")
LEVELS = ("critical", "high", "medium", "low", "informational")
# What a detection shows of its event: these CloudTrail columns, and as the user the first of
# userIdentity's arn, userName, invokedBy, principalId that is there.
_USER = ("useridentity.arn", "useridentity.username", "useridentity.invokedby", "useridentity.principalid")
SHOWN = ("eventtime", "eventname", *_USER, "sourceipaddress", "awsregion", "eventid")


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
    on_evaluator: list = field(default_factory=list)  # duckdb: why each rule the evaluator ran could not run as SQL
    queries: int = 0               # duckdb: rules run as SQL (the others could not select anything)
    phases: dict = field(default_factory=dict)        # seconds

    @property
    def events(self) -> int:
        return self.records - self.duplicates


def run(rule_paths, log_paths, engine="duckdb", placeholders=None, progress=None,
        max_bytes: int = MAX_EVENT_BYTES) -> Report:
    """Load the rules, read the logs, run every CloudTrail rule and correlation on `engine`.
    progress(label, done, total) follows the slow steps."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}")
    chosen = engines.get(engine)(time_field=cloudtrail.TIME_FIELD, fallback=True)
    missing = chosen.unavailable()
    if missing:
        raise TranspileError(f"the {engine} engine cannot run: {missing}", kind="option")
    with _no_gc():
        return _run(chosen, rule_paths, log_paths, placeholders, progress, max_bytes)


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


def _run(engine, rule_paths, log_paths, placeholders, progress, max_bytes) -> Report:
    start = time.perf_counter()
    report = Report(engine.name)
    found, report.bad_files = find_event_files(log_paths)
    files, report.digests = cloudtrail.log_files(found)
    with engine.load(engines.Files(tuple(files), dedupe=True, max_bytes=max_bytes), progress) as logs:
        report.phases["files"] = time.perf_counter() - start
        rules, errors = _load_rules(rule_paths, placeholders, progress)
        plan = engines.plan(rules, errors, keep=cloudtrail.is_cloudtrail)
        report.phases["rules"] = time.perf_counter() - start - report.phases["files"]
        outcome = engine.run(plan.rules, logs, plan.correlations, show=SHOWN, progress=progress)
    report.rules, report.correlations, report.skipped = len(plan.rules), len(plan.correlations), plan.skipped
    report.rule_errors = plan.errors + plan.failures(outcome)
    report.files = len(outcome.read.files)
    report.bad_files += outcome.read.errors
    report.records, report.duplicates = outcome.read.records, outcome.read.duplicates
    report.on_evaluator = [reason for n, reason in outcome.fallback.items() if isinstance(n, int)]
    report.queries = outcome.stats.get("sql", 0)
    report.phases.update(outcome.phases)
    for n, keys in outcome.matches.items():
        rule = plan.rules[n]
        if id(rule) in plan.shown:
            meta = (rule.title, rule.level, rule.id, rule.label)
            for k in keys:
                f, index = engines.place(k)
                report.detections.append(Detection(*shown(outcome.rows[k]), *meta, outcome.read.files[f], index))
    report.alerts = list(outcome.alerts)
    report.detections.sort(key=Detection.sort_key)
    report.alerts.sort(key=alert_key)
    report.phases["total"] = time.perf_counter() - start
    return report


def _load_rules(paths, placeholders, progress):
    from .batch import load_all
    return load_all(paths, placeholders, _Bar(progress, "loading rules") if progress else None)


class _Bar:
    """batch's progress(done, total) interface onto run()'s progress(label, done, total)."""

    def __init__(self, progress, label):
        self.progress, self.label = progress, label

    def update(self, done, total):
        self.progress(self.label, done, total)


def shown(row: dict) -> tuple:
    """(time, eventName, user, source IP, region, eventID) of the SHOWN values of a row."""
    user = next((row[k] for k in _USER if row.get(k) is not None), None)
    return (row.get("eventtime"), row.get("eventname"), user, row.get("sourceipaddress"), row.get("awsregion"),
            row.get("eventid"))


def shown_fields(event: dict) -> dict:
    """What a detection shows of a CloudTrail record, read as the CloudTrail table holds it."""
    values = shown(cloudtrail.values(event, SHOWN))
    return dict(zip(("eventtime", "eventname", "user", "sourceipaddress", "awsregion", "eventid"), values))


# --- output ---------------------------------------------------------------------------------------

COLUMNS = (("time", "Time"), ("rule", "Rule"), ("level", "Level"), ("event_name", "Event"), ("user", "User"),
           ("source_ip", "Source IP"), ("region", "Region"), ("event_id", "Event ID"))
ALERT_COLUMNS = (("time", "First"), ("last_time", "Last"), ("rule", "Rule"), ("level", "Level"),
                 ("correlation_type", "Type"), ("triggers", "Triggers"), ("group", "Group"))
CSV_FIELDS = ("kind", "time", "rule", "level", "event_name", "user", "source_ip", "region", "event_id",
              "rule_id", "rule_path", "file", "index", "correlation_type", "last_time", "triggers", "group")
# Columns a narrow terminal shortens, down to _LEAST characters (the others keep their width),
# and the order in which columns matter: a terminal too narrow for all leaves out the last ones.
_SHRINK = ("rule", "user", "group")
_LEAST = 16
_PRIORITY = ("time", "rule", "level", "user", "event_name", "source_ip", "event_id", "region",
             "group", "triggers", "correlation_type", "last_time")


def rows(report: Report) -> list[dict]:
    """Detections and correlation alerts in one timeline (an alert at its first trigger)."""
    items = [(d.sort_key(), 0, d.as_dict()) for d in report.detections]
    items += [(alert_key(a), 1, alert_dict(a)) for a in report.alerts]
    return [row for _, _, row in sorted(items, key=lambda item: (item[0][:3], item[1], item[0][3:]))]


def write(report: Report, fmt: str, out, width: int | None = None) -> None:
    """The timeline in `fmt` (table, csv, jsonl). A table wider than `width` characters has
    its long cells shortened in the middle (…); csv and jsonl hold every value whole."""
    with _no_gc():
        _write(report, fmt, out, width)


def _write(report: Report, fmt: str, out, width) -> None:
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
            writer.writerow({k: spreadsheet_cell(v) for k, v in row.items()})
    else:
        out.write(table([d.as_dict() for d in report.detections], COLUMNS, width))
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
    """Plain aligned columns; `-` for no value; control characters escaped (errors.printable).
    Wider than `width`: the least useful columns (_PRIORITY) are left out until the rest fit
    with rule, user and group at _LEAST characters or more, the widest of those give up
    characters first, and a cell longer than its column keeps its start and end (…)."""
    cells = [[printable(str(item.get(key))) if item.get(key) not in (None, "") else "-" for key, _ in columns]
             for item in items]
    widths = [max([len(head)] + [len(row[i]) for row in cells]) for i, (_, head) in enumerate(columns)]
    if width is not None:
        least = [min(w, _LEAST) if key in _SHRINK else w for (key, _), w in zip(columns, widths)]
        shown = list(range(len(columns)))
        while len(shown) > 2 and sum(least[i] + 2 for i in shown) - 2 > width:
            shown.remove(max(shown, key=lambda i: _PRIORITY.index(columns[i][0])))
        columns, widths = [columns[i] for i in shown], _fit([widths[i] for i in shown], [least[i] for i in shown], width)
        cells = [[_elide(row[i], w) for i, w in zip(shown, widths)] for row in cells]
    template = "  ".join(f"{{:<{w}}}" for w in widths)

    def line(values):
        return template.format(*values).rstrip() + "\n"
    return line([head for _, head in columns]) + line(["-" * w for w in widths]) + "".join(line(row) for row in cells)


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
    by_rule = defaultdict(int)
    for d in r.detections:
        levels[d.level] += 1
        by_rule[(d.level, d.title, d.rule_id or "")] += 1
    lines.append(f"{len(r.detections)} detections" + (": " + ", ".join(
        f"{levels[lv]} {printable(str(lv)) if lv else 'no level'}" for lv in sorted(levels, key=_severity))
        if levels else ""))
    for (level, title, _), count in sorted(by_rule.items(), key=lambda kv: (_severity(kv[0][0]), -kv[1], kv[0])):
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


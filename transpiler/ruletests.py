"""Each rule's own tests: finding them, reading their events, running them on engines.

Two layouts are read:

- SigmaHQ's: the rule's `regression_tests_path` names an info.yml whose
  `regression_tests_info` lists event files (`type: evtx`, `path`, `match_count`). Paths are
  relative to the repository root, found as SigmaHQ's runner finds it: the nearest folder,
  from the rule's own upwards, where the path exists. An .evtx is read with the evtx parser
  (transpiler/winevent.py), or, where that is not installed, the JSON exported beside it. The
  rule passes a file when it selects at least `match_count` of its events (at least one when
  no count is given); more is noted, as SigmaHQ's runner warns.
- The native one: NAME.tests.yml beside NAME.yml, a map (or a list of maps, one per document
  of a multi-document file) with `match:` (every event must be selected) and `no_match:` (none
  may be), each a list of inline events or event files (paths relative to the tests file;
  .evtx, and whatever `match --events` reads); for a correlation, `events:` and the `alerts:`
  it must raise over them, exactly. `rule:` (id, name or title) says which document a map
  tests; it may be left out when the file has one detection rule (or one correlation).

run() gives one Result per rule and target: pass, fail (with the event, expected and actual),
not-executable (why) or error (the tests cannot be read). Every engine gets the same rules
and the same events (transpiler/engines): the evaluator defines the answer the tests expect
of them all.
"""
from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import correlation, engines, winevent
from .errors import EventsError, TranspileError
from .evaluate import text, timestamp
from .events import read_events
from .rule import MAX_FILE_BYTES, TESTS_SUFFIXES, _check_size, _too_deep, _yaml_message

EXPECTS = ("match", "no_match")
BLOCK_KEYS = ("rule", "match", "no_match", "events", "alerts")
ALERT_KEYS = ("group", "triggers", "first_trigger", "last_trigger")
STATUSES = ("pass", "fail", "not-executable", "error")
CHUNK = 50            # rules per engine run: bounds the events held at once, and moves the progress bar


class _Loader(yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader):
    """Test files hold events: a timestamp stays the text it was written as (eventTime)."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))


@dataclass
class Sample:
    """Events, and what a rule must do with them."""

    name: str                 # match[2], no_match[0], or the info.yml test's name
    where: str                # the tests file and key it comes from
    expect: str               # match | no_match | count
    events: list              # event dicts
    source: str               # the event file, or the tests file for inline events
    count: int | None = None  # expect == count: at least this many selected (SigmaHQ match_count)


@dataclass
class AlertCase:
    """A stream of events, and exactly the alerts a correlation must raise over it."""

    name: str
    where: str
    events: list
    alerts: list              # expected: {"group": {...}, "triggers"?, "first_trigger"?, "last_trigger"?}


@dataclass
class RuleTests:
    """One rule document's tests, read from one or both layouts."""

    rule: object                                  # rule.Rule (filters applied) or the correlation's Rule
    correlation: object = None                    # correlation.Correlation for a correlation document
    files: list = field(default_factory=list)     # the info.yml / NAME.tests.yml files read
    samples: list = field(default_factory=list)
    alert_cases: list = field(default_factory=list)
    errors: list = field(default_factory=list)    # TranspileError: the tests cannot be run

    @property
    def events(self) -> int:
        return sum(len(s.events) for s in self.samples) + sum(len(c.events) for c in self.alert_cases)


@dataclass
class Result:
    """One rule on one target."""

    tests: RuleTests
    target: str
    status: str = "pass"                          # pass | fail | not-executable | error
    checked: int = 0                              # events (and alert cases) checked
    failures: list = field(default_factory=list)  # {"sample", "where", "expected", "actual", "event"?}
    reason: str | None = None                     # why not executable, or the error
    notes: list = field(default_factory=list)

    def as_dict(self) -> dict:
        rule = self.tests.rule
        return {"rule": rule.label, "id": rule.id, "title": rule.title, "target": self.target,
                "status": self.status, "checked": self.checked, "failures": self.failures,
                "reason": self.reason, "notes": self.notes, "tests": self.tests.files}


# --- finding and reading tests -------------------------------------------------------------------

def collect(rules) -> tuple[list[RuleTests], list]:
    """The tests of every detection rule and correlation among `rules` (loaded documents), and
    the documents that have none. Filters among them are applied to the rules they name."""
    correlations, detections, resolve_errors = correlation.resolve(rules)
    filtered = dict(zip((id(r) for r in rules if r.kind == "rule"), detections))
    by_rule = {id(c.rule): c for c in correlations}
    unresolved, in_file = {}, {}
    for e in resolve_errors:
        unresolved.setdefault(e.path, []).append(e)
    for doc in rules:
        in_file.setdefault(doc.path, []).append(doc)
    found, untested, native = [], [], {}
    for doc in rules:
        if doc.kind not in ("rule", "correlation"):
            continue
        tests = RuleTests(filtered.get(id(doc), doc), by_rule.get(id(doc)))
        if doc.meta.get("regression_tests_path") is not None:
            _read_sigmahq(tests)
        tests_file = native_file(doc.path)
        if tests_file is not None:
            if tests_file not in native:
                native[tests_file] = _native_blocks(tests_file)
            _read_native(tests, tests_file, native[tests_file], in_file[doc.path])
        if not tests.files:
            untested.append(doc)
            continue
        if doc.kind == "correlation" and tests.correlation is None:
            tests.errors += unresolved.get(doc.label) or [TranspileError(
                "the correlation cannot be resolved", path=doc.label, kind="tests")]
        found.append(tests)
    return found, untested


def native_file(rule_path) -> Path | None:
    """NAME.tests.yml (or .tests.yaml) beside NAME.yml, when there is one."""
    path = Path(rule_path)
    for suffix in TESTS_SUFFIXES:
        candidate = path.with_name(path.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def locate(start, relative) -> Path | None:
    """A path as SigmaHQ writes it (relative to the repository root, / or \\ separated): the
    first folder from `start` upwards where it exists, or None."""
    relative = Path(*str(relative).replace("\\", "/").split("/"))
    if relative.is_absolute():
        return relative if relative.exists() else None
    folder = Path(os.path.abspath(start))        # not resolve(): a symlinked folder's parents are its own
    for base in (folder, *folder.parents):
        if (base / relative).exists():
            return base / relative
    return None


def _read_sigmahq(tests: RuleTests):
    rule = tests.rule
    named = rule.meta["regression_tests_path"]
    info = locate(Path(rule.path).parent, named)
    if info is None or not info.is_file():
        tests.files.append(str(named))
        tests.errors.append(TranspileError(f"{named}: no such file here or in a parent folder", path=rule.label, where="regression_tests_path",
                                           kind="tests"))
        return
    tests.files.append(str(info))
    try:
        data = _load_yaml(info)[0] if info.stat().st_size else None
    except TranspileError as e:
        tests.errors.append(e)
        return
    if not isinstance(data, dict) or not isinstance(data.get("regression_tests_info"), list) \
            or not data["regression_tests_info"]:
        tests.errors.append(TranspileError("regression_tests_info must list the test files", path=info,
                                           where="regression_tests_info", kind="tests"))
        return
    ids = [str(m.get("id")) for m in data.get("rule_metadata") or () if isinstance(m, dict) and m.get("id")]
    if ids and rule.id and str(rule.id) not in ids:
        tests.errors.append(TranspileError(f"names rule id {ids[0]}, not {rule.id} ({rule.label})", path=info,
                                           where="rule_metadata", kind="tests"))
    for n, entry in enumerate(data["regression_tests_info"]):
        where = f"regression_tests_info[{n}]"
        problem = _entry_problem(entry)
        if problem:
            tests.errors.append(TranspileError(problem, path=info, where=where, kind="tests"))
            continue
        found = locate(Path(rule.path).parent, entry["path"])
        if found is None:
            tests.errors.append(TranspileError(f"{entry['path']}: no such file here or in a parent folder",
                                               path=info, where=f"{where}.path", kind="tests"))
            continue
        try:
            events = _read_windows(found)
        except EventsError as e:
            tests.errors.append(e)
            continue
        tests.samples.append(Sample(str(entry.get("name") or where), f"{info}: {where}", "count", events,
                                    str(found), entry.get("match_count")))


def _entry_problem(entry) -> str | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
        return "each test needs a path"
    if str(entry.get("type", "evtx")).lower() != "evtx":
        return f"test type {entry.get('type')!r} cannot be read (only evtx)"
    count = entry.get("match_count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        return f"match_count must be a whole number, not {count!r}"
    return None


def _read_windows(path: Path) -> list:
    """An .evtx file's events (through evtx, or its JSON export where evtx is missing), or an
    EVTX JSON export named directly."""
    export = path.with_suffix(".json")
    if path.suffix.lower() == ".evtx" and (winevent.unavailable() is None or not export.is_file()):
        return winevent.read_evtx(path)
    return winevent.read_export(export if path.suffix.lower() == ".evtx" else path)


def _load_yaml(path: Path) -> list:
    """Every YAML document of a tests file, read with the rule loader's bounds."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TranspileError(f"cannot read: {e.strerror or e}", path=path, kind="tests") from None
    if len(data) > MAX_FILE_BYTES:
        raise TranspileError(f"larger than {MAX_FILE_BYTES // 2**20} MiB", path=path, kind="tests")
    try:
        source = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TranspileError(f"not UTF-8 text (byte {e.start})", path=path, kind="tests") from None
    if _too_deep(source):
        raise TranspileError("YAML nested too deeply", path=path, kind="tests")
    try:
        docs = [d for d in yaml.load_all(source, Loader=_Loader) if d is not None]
        if "&" in source:
            for d in docs:
                _check_size(d)
    except yaml.YAMLError as e:
        raise TranspileError(_yaml_message(e), path=path, kind="tests") from None
    except RecursionError:
        raise TranspileError("YAML nested too deeply", path=path, kind="tests") from None
    except TranspileError as e:
        raise TranspileError(e.message, path=path, kind="tests") from None
    return docs


def _native_blocks(path: Path):
    """The maps of a tests file, or the TranspileError that keeps it from being read."""
    try:
        docs = _load_yaml(path)
    except TranspileError as e:
        return e
    blocks = []
    for doc in docs:
        items = doc if isinstance(doc, list) else [doc]
        for item in items:
            if not isinstance(item, dict):
                return TranspileError("a tests file holds maps with match/no_match (or events/alerts)",
                                      path=path, kind="tests")
            blocks.append(item)
    return blocks


def _read_native(tests: RuleTests, path: Path, blocks, documents):
    """The blocks of `path` that test tests.rule (by `rule:`, or the only fitting document)."""
    if isinstance(blocks, TranspileError):
        tests.files.append(str(path))
        tests.errors.append(blocks)
        return
    doc = tests.rule
    applied = False
    for n, block in enumerate(blocks):
        where = f"[{n}]" if len(blocks) > 1 else ""
        problem = _block_problem(block)
        wants = "correlation" if "alerts" in block or "events" in block else "rule"
        if "rule" in block:
            named = {d.label for d in documents if str(block["rule"]) in {str(d.id), str(d.name), d.title}}
            if not named:
                problem = problem or (f"no document of {doc.path} has id, name or title {block['rule']!r}",
                                      "rule")
            elif doc.label not in named:
                continue
        elif doc.kind != wants:
            continue
        elif sum(d.kind == wants for d in documents) != 1:
            problem = problem or (f"{doc.path} holds several {wants}s: say which with rule:", None)
        applied = True
        if problem:
            tests.errors.append(TranspileError(problem[0], path=path, where=_join(where, problem[1]) or None,
                                               kind="tests"))
        elif wants == "correlation":
            _read_alert_case(tests, path, where, block)
        else:
            for expect in EXPECTS:
                _read_samples(tests, path, where, block, expect)
    if applied:
        tests.files.append(str(path))
        if not tests.samples and not tests.alert_cases and not tests.errors:
            tests.errors.append(TranspileError("lists no events to test", path=path, kind="tests"))


def _block_problem(block) -> tuple | None:
    """(message, key) when a map of a tests file has the wrong keys."""
    unknown = [str(k) for k in block if k not in BLOCK_KEYS]
    if unknown:
        return f"unknown key {unknown[0]!r} (known: {', '.join(BLOCK_KEYS)})", unknown[0]
    if ("alerts" in block or "events" in block) and ("match" in block or "no_match" in block):
        return "match/no_match test a detection rule, events/alerts a correlation: not both in one map", None
    return None


def _join(where, key):
    if not key:
        return where
    return f"{where}.{key}" if where else key


def _read_samples(tests, path, where, block, expect):
    entries = block.get(expect)
    if entries is None:
        return
    key = _join(where, expect)
    if not isinstance(entries, list):
        tests.errors.append(TranspileError(f"{expect} must be a list of events or event files", path=path,
                                           where=key, kind="tests"))
        return
    if tests.rule.kind != "rule":
        tests.errors.append(TranspileError(f"{expect} tests a detection rule, not a {tests.rule.kind}",
                                           path=path, where=key, kind="tests"))
        return
    for i, entry in enumerate(entries):
        try:
            events, source = _entry_events(path, entry)
        except TranspileError as e:
            tests.errors.append(e.located(where=f"{key}[{i}]"))
            continue
        tests.samples.append(Sample(f"{expect}[{i}]", f"{path}: {key}[{i}]", expect, events, source))


def _read_alert_case(tests, path, where, block):
    if tests.rule.kind != "correlation":
        tests.errors.append(TranspileError("events/alerts test a correlation, not a detection rule",
                                           path=path, where=where or None, kind="tests"))
        return
    events = []
    for i, entry in enumerate(block.get("events") or []):
        try:
            events += _entry_events(path, entry)[0]
        except TranspileError as e:
            tests.errors.append(e.located(where=f"{_join(where, 'events')}[{i}]"))
    alerts = block.get("alerts")
    if not isinstance(alerts, list) or not all(_alert_ok(a) for a in alerts):
        tests.errors.append(TranspileError(
            "alerts must list the alerts expected, each a map with group: {field: value} and optionally "
            "triggers, first_trigger, last_trigger ([] for none)", path=path, where=_join(where, "alerts"),
            kind="tests"))
        return
    tests.alert_cases.append(AlertCase(_join(where, "alerts"), f"{path}: {_join(where, 'alerts')}",
                                       events, alerts))


def _alert_ok(alert) -> bool:
    return isinstance(alert, dict) and isinstance(alert.get("group"), dict) and set(alert) <= set(ALERT_KEYS)


def _entry_events(tests_file: Path, entry) -> tuple[list, str]:
    """An inline event, or the events of a file named relative to the tests file."""
    if isinstance(entry, dict):
        entry = json.loads(json.dumps(entry, default=str))    # JSON values only: keys text, no YAML types
        return [winevent.flatten(entry) if winevent.is_record(entry) else entry], str(tests_file)
    if not isinstance(entry, str) or not entry:
        raise TranspileError("an entry is an event (a map) or an event file's path", path=tests_file,
                             kind="tests")
    path = tests_file.parent / entry
    if not path.exists():
        raise TranspileError(f"{entry}: no such file", path=tests_file, kind="tests")
    if path.suffix.lower() == ".evtx":
        return winevent.read_evtx(path), str(path)
    found, bad = read_events([path])
    if bad:
        try:                                      # an EVTX JSON export: records one after another
            return winevent.read_export(path), str(path)
        except EventsError:
            raise bad[0] from None
    return [winevent.flatten(e.data) if winevent.is_record(e.data) else e.data for e in found], str(path)


# --- running --------------------------------------------------------------------------------------

def run(suite: list[RuleTests], targets, progress=None, time_field=None) -> list[Result]:
    """Every rule's tests on every target: one Result per rule and target, in suite order.
    time_field: the event time for correlations (default: each engine's)."""
    results = {}
    runnable = []
    for tests in suite:
        if tests.errors:
            reason = "; ".join(e.headline() for e in tests.errors)
            for target in targets:
                results[id(tests), target] = Result(tests, target, "error", reason=reason)
        else:
            runnable.append(tests)
    steps = len(targets) * max(len(runnable), 1)
    for t, target in enumerate(targets):
        engine, reason = _engine(target, time_field)
        if reason is not None:
            for tests in runnable:
                results[id(tests), target] = Result(tests, target, "not-executable", reason=reason)
            continue
        detections = [x for x in runnable if x.samples]
        for start in range(0, len(detections), CHUNK):
            chunk = detections[start:start + CHUNK]
            for tests, result in zip(chunk, _run_detections(engine, target, chunk)):
                results[id(tests), target] = result
            if progress is not None:
                progress.update(t * len(runnable) + start + len(chunk), steps)
        for n, tests in enumerate(x for x in runnable if x.alert_cases):
            results[id(tests), target] = _run_correlation(engine, target, tests)
            if progress is not None:
                progress.update(t * len(runnable) + len(detections) + n + 1, steps)
    return [results[id(tests), target] for tests in suite for target in targets]


def _engine(name, time_field=None):
    try:
        engine = engines.get(name)(**({"time_field": time_field} if time_field else {}))
    except KeyError as e:
        return None, str(e.args[0])
    except Exception as e:      # an engine that cannot start is this target's problem, not the run's
        return None, f"cannot start: {type(e).__name__}: {e}"
    return engine, engine.unavailable()


def _run_detections(engine, target, chunk) -> list[Result]:
    events, spans = [], []
    for tests in chunk:
        for sample in tests.samples:
            spans.append((len(events), sample))
            events += sample.events
    try:
        outcome = engine.run([tests.rule for tests in chunk], events)
    except Exception as e:      # an engine bug: every rule of the run reports it, the others go on
        return [Result(tests, target, "error", reason=f"internal error in {target}: {type(e).__name__}: {e}")
                for tests in chunk]
    out, position = [], 0
    for n, tests in enumerate(chunk):
        result = Result(tests, target)
        if n in outcome.refused:
            result.status, result.reason = "not-executable", str(outcome.refused[n])
        elif n in outcome.failed:
            result.status, result.reason = "error", f"{target} failed to run it: {outcome.failed[n]}"
        else:
            selected = set(outcome.matches.get(n, ()))
            mine = spans[position:position + len(tests.samples)]
            first, last = mine[0][0], mine[-1][0] + len(mine[-1][1].events)
            left_out = {k: v for k, v in _left_out(outcome, n, target).items() if first <= k < last}
            for start, sample in mine:
                _grade(result, sample, start, selected, left_out)
            if left_out and not result.checked:
                result.status = "not-executable"
                result.reason = sorted(set(left_out.values()))[0]
        position += len(tests.samples)
        if result.status == "pass" and result.failures:
            result.status = "fail"
        out.append(result)
    return out


def _left_out(outcome, n, target) -> dict:
    """Event no -> why: the events `target` cannot represent for rule n (Outcome.undecided)."""
    undecided = outcome.undecided.get(n) or ()
    if isinstance(undecided, dict):
        return {k: str(v) for k, v in undecided.items()}
    return {k: f"{target} cannot represent this event for this rule" for k in undecided}


def _grade(result: Result, sample: Sample, start: int, selected: set, left_out: dict):
    positions = [start + i for i in range(len(sample.events)) if start + i not in left_out]
    if len(positions) < len(sample.events):
        reasons = sorted({str(left_out[start + i]) for i in range(len(sample.events)) if start + i in left_out})
        result.notes.append(f"{sample.name}: {len(sample.events) - len(positions)} events this target cannot "
                            f"hold: {'; '.join(reasons)}")
    if not positions:
        return
    result.checked += len(positions)
    if sample.expect == "count":
        hits = sum(p in selected for p in positions)
        want = 1 if sample.count is None else sample.count
        if hits < want:
            missed = next(p for p in positions if p not in selected)
            result.failures.append({"sample": sample.name, "where": sample.where, "source": sample.source,
                                    "expected": f"at least {want} of {len(positions)} events selected",
                                    "actual": f"{hits} selected", "event": sample.events[missed - start]})
        elif sample.count is not None and hits > want:
            result.notes.append(f"{sample.name}: {hits} events selected, match_count says {want}")
        return
    for p in positions:
        if (p in selected) != (sample.expect == "match"):
            result.failures.append({"sample": sample.name, "where": sample.where, "source": sample.source,
                                    "expected": "selected" if sample.expect == "match" else "not selected",
                                    "actual": "selected" if p in selected else "not selected",
                                    "event": sample.events[p - start]})


def _run_correlation(engine, target, tests) -> Result:
    c = tests.correlation
    result = Result(tests, target)
    for case in tests.alert_cases:
        try:
            outcome = engine.run(list(c.rules), case.events, [c])
        except Exception as e:
            return Result(tests, target, "error", reason=f"internal error in {target}: {type(e).__name__}: {e}")
        refused = outcome.refused.get("c0") or next(iter(outcome.refused.values()), None)
        if refused is not None:
            return Result(tests, target, "not-executable", reason=str(refused))
        failed = outcome.failed.get("c0") or next(iter(outcome.failed.values()), None)
        if failed is not None:
            return Result(tests, target, "error", reason=f"{target} failed to run it: {failed}")
        result.checked += 1
        actual = [a.as_dict() for a in outcome.alerts]
        if not _same_alerts(case.alerts, actual):
            result.failures.append({"sample": case.name, "where": case.where, "source": case.where,
                                    "expected": case.alerts, "actual": [_shown(a) for a in actual]})
    if result.failures:
        result.status = "fail"
    return result


def _same_alerts(expected, actual) -> bool:
    """Every expected alert matches its own actual alert, and there are no others."""
    left = list(actual)
    for want in expected:
        found = next((a for a in left if _alert_fits(want, a)), None)
        if found is None:
            return False
        left.remove(found)
    return not left


def _alert_fits(want, alert) -> bool:
    group = {str(k): text(v) for k, v in want["group"].items()}
    if group != {str(k): text(v) for k, v in alert["group"].items()}:
        return False
    if "triggers" in want and text(want["triggers"]) != text(alert["triggers"]):
        return False
    return all(_same_time(want[k], alert[k]) for k in ("first_trigger", "last_trigger") if k in want)


def _same_time(written, actual) -> bool:
    a, b = timestamp(text(written)), timestamp(actual)
    if a is None or b is None:
        return text(written) == actual
    utc = datetime.timezone.utc
    return (a if a.tzinfo else a.replace(tzinfo=utc)) == (b if b.tzinfo else b.replace(tzinfo=utc))


def _shown(alert: dict) -> dict:
    return {k: alert[k] for k in ALERT_KEYS}


# --- what the catalog and check use -------------------------------------------------------------

def status(rule, rules=None) -> dict:
    """A rule's tests for its catalog page: `status` none | pass | fail | error (run on the
    evaluator), the test files, and each sample (name, expectation, event file, how many events)."""
    suite, _ = collect(rules if rules is not None else [rule])
    mine = next((t for t in suite if t.rule.label == rule.label), None)
    if mine is None:
        return {"status": "none", "files": [], "samples": [], "messages": []}
    result = run([mine], ["evaluator"])[0]
    samples = [{"name": s.name, "expect": s.expect, "count": s.count, "source": s.source,
                "events": len(s.events)} for s in mine.samples]
    samples += [{"name": c.name, "expect": "alerts", "count": len(c.alerts), "source": c.where,
                 "events": len(c.events)} for c in mine.alert_cases]
    messages = ([result.reason] if result.reason else []) + \
        [f"{f['sample']}: expected {f['expected']}, got {f['actual']}" for f in result.failures]
    return {"status": result.status, "files": mine.files, "samples": samples, "messages": messages}


def problems(rules) -> list[TranspileError]:
    """For `check --require-tests`: each rule or correlation without tests, and every tests
    file that cannot be read."""
    suite, untested = collect(rules)
    out = [TranspileError("no tests: add NAME.tests.yml beside it (match/no_match) or regression_tests_path",
                          path=r.label, kind="tests") for r in untested]
    seen = set()
    for tests in suite:
        for e in tests.errors:
            if str(e) not in seen:
                seen.add(str(e))
                out.append(e)
    return out


# --- reports --------------------------------------------------------------------------------------

def counts(results, targets) -> dict:
    """Per target: rules, events checked, and how many of each status."""
    out = {t: {"rules": 0, "checked": 0, **{s: 0 for s in STATUSES}} for t in targets}
    for r in results:
        c = out[r.target]
        c["rules"] += 1
        c["checked"] += r.checked
        c[r.status] += 1
    return out


def exit_code(results, load_errors, fail_on: str) -> int:
    if fail_on == "never":
        return 0
    return int(bool(load_errors) or not results or any(r.status in ("fail", "error") for r in results))


def report_json(results, targets, untested, load_errors, seconds) -> str:
    from .formats import to_json
    data = {"targets": list(targets), "summary": counts(results, targets),
            "untested": [r.label for r in untested], "rule_errors": [e.as_dict() for e in load_errors],
            "seconds": round(seconds, 3), "results": [r.as_dict() for r in results]}
    return to_json(data, indent=2) + "\n"


def report_text(results, targets) -> str:
    """One line per rule (its status on each target), then every failure, error and reason."""
    lines, details = [], []
    by_rule: dict = {}
    for r in results:
        by_rule.setdefault(id(r.tests), []).append(r)
    for group in by_rule.values():
        rule = group[0].tests.rule
        lines.append(f"{rule.label}: " + ", ".join(f"{r.target} {r.status}" for r in group))
        for r in group:
            if r.status == "fail":
                for f in r.failures:
                    details.append(f"FAIL {rule.label} on {r.target}: {f['where']}: expected "
                                   f"{_brief(f['expected'])}, got {_brief(f['actual'])}")
                    if "event" in f:
                        details.append(f"    event: {_brief(f['event'], 400)}")
            elif r.status != "pass":
                details.append(f"{r.status.upper()} {rule.label} on {r.target}: {r.reason}")
            details += [f"note {rule.label} on {r.target}: {n}" for n in r.notes]
    return "".join(f"{line}\n" for line in lines + details)


def _brief(value, limit=200) -> str:
    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True,
                                                            default=str)
    return shown if len(shown) <= limit else shown[:limit] + "..."


def summary_line(results, targets, suite, untested, seconds) -> str:
    c = counts(results, targets)
    parts = []
    for t in targets:
        shown = [f"{c[t][s]} {s}" for s in ("pass", "fail", "not-executable", "error") if c[t][s]]
        parts.append(f"{t}: {', '.join(shown) or 'nothing'}")
    events = sum(tests.events for tests in suite)
    return (f"{len(suite)} rules with tests ({len(untested)} without), {events} events; "
            f"{'; '.join(parts)}; {seconds:.2f} s")


def report_junit(results, targets, seconds) -> bytes:
    """JUnit XML: a testsuite per target, a testcase per rule; fail -> <failure>, error ->
    <error>, not-executable -> <skipped>."""
    import xml.etree.ElementTree as ET
    from .batch import _xml
    c = counts(results, targets)
    top = ET.Element("testsuites", name="sigma-transpile test", tests=str(len(results)),
                     failures=str(sum(v["fail"] for v in c.values())),
                     errors=str(sum(v["error"] for v in c.values())),
                     skipped=str(sum(v["not-executable"] for v in c.values())), time=f"{seconds:.3f}")
    suites = {t: ET.SubElement(top, "testsuite", name=_xml(t), tests=str(c[t]["rules"]),
                               failures=str(c[t]["fail"]), errors=str(c[t]["error"]),
                               skipped=str(c[t]["not-executable"])) for t in targets}
    for r in results:
        rule = r.tests.rule
        p = Path(rule.path)
        case = ET.SubElement(suites[r.target], "testcase", classname=_xml(f"{r.target}." + (
            ".".join(p.parent.parts) or ".")), name=_xml(p.name + (f"#{rule.doc}" if rule.doc else "")),
            file=_xml(rule.path))
        if r.status == "fail":
            first = r.failures[0]
            el = ET.SubElement(case, "failure", type="fail", message=_xml(
                f"{first['where']}: expected {_brief(first['expected'])}, got {_brief(first['actual'])}"))
            el.text = _xml(report_text([r], [r.target]))
        elif r.status == "error":
            ET.SubElement(case, "error", type="tests", message=_xml(r.reason))
        elif r.status == "not-executable":
            ET.SubElement(case, "skipped", message=_xml(r.reason))
    ET.indent(top)
    return ET.tostring(top, encoding="utf-8", xml_declaration=True) + b"\n"

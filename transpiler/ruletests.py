"""Each rule's own tests: finding them in either layout and reading their events.

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

transpiler/testrun.py runs them on the engines and reports.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import correlation, files, winevent
from .errors import EventsError, TranspileError
from .events import read_events
from .rule import MAX_FILE_BYTES, TESTS_SUFFIXES, _check_size, _too_deep, _yaml_message

EXPECTS = ("match", "no_match")
BLOCK_KEYS = ("rule", "match", "no_match", "events", "alerts")
_TESTS = {"rule": "match/no_match test a detection rule", "correlation": "events/alerts test a correlation"}
ALERT_KEYS = ("group", "triggers", "first_trigger", "last_trigger")


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
    """NAME.tests.yml (or .tests.yaml) beside NAME.yml, when there is one: anything so named
    but a folder (a FIFO, a broken link: reading it says what is wrong, not "no tests")."""
    path = Path(rule_path)
    for suffix in TESTS_SUFFIXES:
        candidate = path.with_name(path.stem + suffix)
        if os.path.lexists(candidate) and not candidate.is_dir():
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
    if info is None or info.is_dir():
        tests.files.append(str(named))
        tests.errors.append(TranspileError(f"{named}: no such file here or in a parent folder", path=rule.label,
                                           where="regression_tests_path", kind="tests"))
        return
    tests.files.append(str(info))
    try:
        docs = _load_yaml(info)
    except TranspileError as e:
        tests.errors.append(e)
        return
    data = docs[0] if docs else None
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
        data = files.read_limited(path, MAX_FILE_BYTES)     # a regular file: a FIFO would hang
    except files.Unreadable as e:
        raise TranspileError(str(e), path=path, kind="tests") from None
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
    """The maps of `path` that test tests.rule (by `rule:`, or the only fitting document)."""
    if isinstance(blocks, TranspileError):
        tests.files.append(str(path))
        tests.errors.append(blocks)
        return
    applied = False
    for n, block in enumerate(blocks):
        where = f"[{n}]" if len(blocks) > 1 else ""
        applies, problem = _applies(block, tests.rule, documents)
        if not applies:
            continue
        applied = True
        problem = _block_problem(block) or problem
        if problem:
            tests.errors.append(TranspileError(problem[0], path=path, where=_join(where, problem[1]) or None,
                                               kind="tests"))
        elif "alerts" in block or "events" in block:
            _read_alert_case(tests, path, where, block)
        else:
            for expect in EXPECTS:
                _read_samples(tests, path, where, block, expect)
    if applied:
        tests.files.append(str(path))
        if not tests.samples and not tests.alert_cases and not tests.errors:
            tests.errors.append(TranspileError("lists no events to test", path=path, kind="tests"))


def _applies(block, doc, documents) -> tuple[bool, tuple | None]:
    """Whether a map of a tests file tests `doc`, and (message, key) when the map is wrong."""
    wants = "correlation" if "alerts" in block or "events" in block else "rule"
    if "rule" in block:
        named = {d.label for d in documents if str(block["rule"]) in {str(d.id), str(d.name), d.title}}
        if not named:
            return True, (f"no document of {doc.path} has id, name or title {block['rule']!r}", "rule")
        return doc.label in named, None
    fitting = sum(d.kind == wants for d in documents)
    if doc.kind != wants:      # the map tests another document; or none fits, which every document reports
        return (False, None) if fitting else (True, (f"{_TESTS[wants]}; {doc.path} holds none", None))
    if fitting > 1:
        return True, (f"{doc.path} holds several {wants}s: say which with rule:", None)
    return True, None


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


# --- what check --require-tests uses ------------------------------------------------------------

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

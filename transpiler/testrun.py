"""`sigma-transpile test`: each rule's tests (transpiler/ruletests.py) run on engines, graded, reported.

run() gives one Result per rule and target: pass, fail (with the event, expected and actual),
not-executable (why) or error (the tests cannot be read, or the engine failed). Every engine
gets the same rules and the same events (transpiler/engines): the evaluator defines the
answer the tests expect of them all. Reports: text, JSON, and JUnit XML with a testsuite per
target and a testcase per rule.
"""
from __future__ import annotations

import datetime
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from . import engines
from .batch import _xml
from .errors import printable
from .evaluate import text, timestamp
from .formats import to_json
from .ruletests import ALERT_KEYS, RuleTests, Sample, collect

STATUSES = ("pass", "fail", "not-executable", "error")
CHUNK = 50            # rules per engine run: bounds the events held at once, and moves the progress bar


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
        try:
            _run_target(engine, target, runnable, results, lambda done: progress is None or progress.update(
                t * len(runnable) + done, steps))
        finally:
            close = getattr(engine, "close", None)     # engines holding a JVM stop it here
            if callable(close):
                close()
    return [results[id(tests), target] for tests in suite for target in targets]


def _run_target(engine, target, runnable, results, moved):
    detections = [x for x in runnable if x.samples]
    for start in range(0, len(detections), CHUNK):
        chunk = detections[start:start + CHUNK]
        for tests, result in zip(chunk, _run_detections(engine, target, chunk)):
            results[id(tests), target] = result
        moved(start + len(chunk))
    for n, tests in enumerate(x for x in runnable if x.alert_cases):
        results[id(tests), target] = _run_correlation(engine, target, tests)
        moved(len(detections) + n + 1)


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
    why = "; ".join(sorted(map(str, outcome.stats.get("undecided") or ()))) or \
        f"{target} cannot represent this event for this rule"
    return {k: why for k in undecided}


def _grade(result: Result, sample: Sample, start: int, selected: set, left_out: dict):
    positions = [start + i for i in range(len(sample.events)) if start + i not in left_out]
    if len(positions) < len(sample.events):
        reasons = sorted({str(left_out[start + i]) for i in range(len(sample.events)) if start + i in left_out})
        held = len(sample.events) - len(positions)
        result.notes.append(f"{sample.name}: {held} event{'s' if held != 1 else ''} this target cannot hold: "
                            f"{'; '.join(reasons)}")
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


# --- what the catalog uses ----------------------------------------------------------------------

def status(rule, rules=None) -> dict:
    """A rule's tests for its catalog page: `status` none | pass | fail | error (run on the
    evaluator), the test files, and each sample (name, expectation, event file, how many events)."""
    suite, _ = collect(rules if rules is not None else [rule])
    mine = [t for t in suite if t.rule.label == rule.label]
    return statuses_of(mine).get(rule.label, NO_TESTS)


def statuses_of(suite) -> dict:
    """status() of every rule in `suite` (ruletests.collect), its tests run once on the evaluator:
    {rule label: status}."""
    out = {}
    for tests, result in zip(suite, run(suite, ["evaluator"])):
        samples = [{"name": s.name, "expect": s.expect, "count": s.count, "source": s.source,
                    "events": len(s.events)} for s in tests.samples]
        samples += [{"name": c.name, "expect": "alerts", "count": len(c.alerts), "source": c.where,
                     "events": len(c.events)} for c in tests.alert_cases]
        messages = ([result.reason] if result.reason else []) + \
            [f"{f['sample']}: expected {f['expected']}, got {f['actual']}" for f in result.failures]
        out[tests.rule.label] = {"status": result.status, "files": tests.files, "samples": samples,
                                 "messages": messages}
    return out


NO_TESTS = {"status": "none", "files": [], "samples": [], "messages": []}


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
    return "".join(f"{printable(line)}\n" for line in lines + details)   # paths and events: no escapes


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

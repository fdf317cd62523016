"""`sigma-transpile test`: each rule's own tests (NAME.tests.yml, SigmaHQ's regression_data),
read, flattened (Windows events) and run on every engine; `check --require-tests`."""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from conftest import corpus_path, missing_tool

from transpiler import engines, testrun, winevent
from transpiler.cli import main
from transpiler.errors import EventsError
from transpiler.rule import load_paths, load_rule

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIGMAHQ = HERE / "ruletests" / "sigmahq"
SIGMAHQ_RULES = [SIGMAHQ / "rules", SIGMAHQ / "rules-emerging-threats"]
# The engines every positive test must pass on; the others pass or say why they cannot run it.
MUST_PASS = ("evaluator", "duckdb")


def run_cli(capsys, *argv):
    code = main(["test", *map(str, argv), "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def statuses(report: Path) -> dict:
    """{(rule file name, target): status} from a --report file."""
    data = json.loads(report.read_text())
    return {(Path(r["rule"]).name, r["target"]): r["status"] for r in data["results"]}


def assert_passes(report: Path, rules: int):
    """Every rule passes on MUST_PASS; on each other engine it passes or has a reason not to run."""
    data = json.loads(report.read_text())
    assert set(MUST_PASS) <= set(data["targets"])
    for target in data["targets"]:
        assert data["summary"][target]["rules"] == rules, target
    for r in data["results"]:
        allowed = ("pass",) if r["target"] in MUST_PASS else ("pass", "not-executable")
        assert r["status"] in allowed, r
        assert r["status"] == "pass" or r["reason"], r
    return data


# --- flattening Windows events -------------------------------------------------------------------

SYSTEM = {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing", "Guid": "{5478}"}},
          "EventID": {"#attributes": {"Qualifiers": 0}, "#text": 4625}, "Channel": "Security",
          "Correlation": None, "TimeCreated": {"#attributes": {"SystemTime": "2026-01-02T03:04:05Z"}}}
FLATTEN = [
    ("system", {"Event": {"System": SYSTEM}},
     {"Provider_Name": "Microsoft-Windows-Security-Auditing", "Provider_Guid": "{5478}", "EventID": 4625,
      "EventID_Qualifiers": 0, "Channel": "Security", "TimeCreated_SystemTime": "2026-01-02T03:04:05Z"}),
    ("eventdata-names-without-spaces",
     {"Event": {"System": {"EventID": 1116}, "EventData": {"Threat Name": "EICAR", "Process Name": "a.exe",
                                                           "#attributes": {"Name": "x"}}}},
     {"EventID": 1116, "ThreatName": "EICAR", "ProcessName": "a.exe"}),
    ("unnamed-data", {"Event": {"System": {"EventID": 400}, "EventData": {"Data": {"#text": ["a", "b"]}}}},
     {"EventID": 400, "Data": ["a", "b"]}),
    ("userdata-inner-element",
     {"Event": {"System": {"EventID": 1102}, "UserData": {"LogFileCleared": {
         "#attributes": {"xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"},
         "SubjectUserName": "bob", "Subject Domain Name": "CORP"}}}},
     {"EventID": 1102, "SubjectUserName": "bob", "SubjectDomainName": "CORP"}),
    ("system-wins-a-clash", {"Event": {"System": {"EventID": 1, "Channel": "c"},
                                       "EventData": {"Channel": "other", "Image": None}}},
     {"EventID": 1, "Channel": "c"}),
]


@pytest.mark.parametrize("record, expected", [c[1:] for c in FLATTEN], ids=[c[0] for c in FLATTEN])
def test_flatten(record, expected):
    assert winevent.is_record(record)
    assert winevent.flatten(record) == expected


EXPORTS = [
    ("two-records", "{\"Event\": {\"System\": {\"EventID\": 1}}}\n{\n  \"Event\": {\"System\": {\"EventID\": 2}}\n}\n",
     [{"EventID": 1}, {"EventID": 2}]),
    ("empty", "\n", []),
    ("bad-json", "{\"Event\": {\"System\": {}}}\n{nope", "invalid JSON: line 2"),
    ("not-a-record", "{\"eventName\": \"CreateUser\"}", "record 0 is not an EVTX record"),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in EXPORTS], ids=[c[0] for c in EXPORTS])
def test_read_export(tmp_path, text, expected):
    path = tmp_path / "x.json"
    path.write_text(text)
    if isinstance(expected, str):
        with pytest.raises(EventsError, match=expected):
            winevent.read_export(path)
    else:
        assert winevent.read_export(path) == expected


def test_evtx_files_read_as_their_json_exports():
    """Every fixture .evtx, through the evtx parser, gives the events of the JSON exported beside
    it; only trailing blanks differ (the export trims them: the .evtx is what SigmaHQ runs)."""
    evtx_files = sorted(SIGMAHQ.rglob("*.evtx"))
    assert len(evtx_files) == 5
    trimmed = 0
    for path in evtx_files:
        read, exported = winevent.read_evtx(path), winevent.read_export(path.with_suffix(".json"))
        assert len(read) == len(exported) >= 1
        for a, b in zip(read, exported):
            assert a.keys() == b.keys(), path
            for k in a:
                if a[k] != b[k]:
                    assert a[k].rstrip() == b[k], (path, k)
                    trimmed += 1
    assert trimmed == 8      # (Parent)CommandLine and ErrorDescription values that end in a blank
    wmi = winevent.read_evtx(next(SIGMAHQ.rglob("d4f1a2b3-*.evtx")))[0]
    assert wmi["Provider_Name"] == "Microsoft-Windows-WMI-Activity" and wmi["EventID"] == 5858
    assert "Win32_NTEventlogFile" in wmi["Operation"]                          # from UserData
    defender = winevent.read_evtx(next(SIGMAHQ.rglob("a7c3e5f2-*.evtx")))[0]
    assert defender["ThreatName"].endswith("EICAR_Test_File")                   # "Threat Name"


def test_broken_evtx_is_a_one_line_error(tmp_path):
    path = tmp_path / "x.evtx"
    path.write_bytes(b"ElfFile\x00" + b"\x00" * 100)
    with pytest.raises(EventsError, match="not a readable .evtx file"):
        winevent.read_evtx(path)


# --- the shipped tests: SigmaHQ sample, seed rules ------------------------------------------------

def test_sigmahq_sample_passes_everywhere(tmp_path, capsys):
    report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    code, out, err = run_cli(capsys, *SIGMAHQ_RULES, "--report", report, "--junit", junit)
    assert code == 0, out + err
    data = assert_passes(report, rules=5)
    assert sum(r["checked"] for r in data["results"] if r["target"] == "evaluator") == 7
    assert "5 rules with tests (0 without), 7 events" in err
    cases = ET.parse(junit).getroot().iter("testcase")
    assert len(list(cases)) == 5 * len(data["targets"])


def test_seed_rules_pass_everywhere(tmp_path, capsys):
    report = tmp_path / "report.json"
    code, out, err = run_cli(capsys, ROOT / "rules", "--report", report)
    assert code == 0, out + err
    data = assert_passes(report, rules=2)
    checked = {(Path(r["rule"]).name, r["target"]): r["checked"] for r in data["results"]}
    assert checked["aws_iam_user_created.yml", "evaluator"] == 2
    assert checked["aws_iam_access_key_creation_attempt.yml", "evaluator"] == 2


def test_status_for_the_catalog():
    rules, _ = load_paths([ROOT / "rules"])
    found = testrun.status(next(r for r in rules if r.title == "IAM User Created"), rules)
    assert found["status"] == "pass"
    assert found["files"] == [str(ROOT / "rules" / "aws_iam_user_created.tests.yml")]
    assert [(s["name"], s["expect"], s["events"]) for s in found["samples"]] == [("match[0]", "match", 1),
                                                                                   ("no_match[0]", "no_match", 1)]
    sigmahq, _ = load_paths([SIGMAHQ / "rules"])
    assert testrun.status(sigmahq[0])["status"] == "pass"         # SigmaHQ layout, the rule alone
    assert testrun.status(load_rule(RULE.format(title="T", id=ID)))["status"] == "none"


# --- the command on small hand-made cases -------------------------------------------------------

RULE = """title: {title}
id: {id}
logsource: {{product: aws, service: cloudtrail}}
detection:
    selection: {{eventName: CreateUser}}
    filter: {{errorCode|exists: true}}
    condition: selection and not filter
"""
ID = "8f3a7b2c-1d4e-5f6a-9b0c-2e3d4f5a6b7c"
CREATE = {"eventName": "CreateUser", "eventSource": "iam.amazonaws.com"}
DENIED = {**CREATE, "errorCode": "AccessDenied"}
GOOD_TESTS = {"match": [CREATE], "no_match": [DENIED]}
CORRELATION = """title: Base
id: 11111111-1111-4111-8111-111111111111
name: base
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {eventName: ConsoleLogin}
    condition: selection
---
title: Many logins
id: 22222222-2222-4222-8222-222222222222
correlation:
    type: event_count
    rules: [base]
    group-by: [sourceIPAddress]
    timespan: 5m
    condition: {gte: 2}
"""
LOGINS = [{"eventName": "ConsoleLogin", "sourceIPAddress": "1.2.3.4", "eventTime": f"2026-01-01T00:0{m}:00Z"}
          for m in (0, 1, 9)]
INFO = "regression_data/x/info.yml"


def _info(**changes):
    info = {"rule_metadata": [{"id": ID}], "regression_tests_info": [
        {"name": "Positive", "type": "evtx", "match_count": 1, "path": "regression_data/x/events.json"}]}
    info.update(changes)
    return yaml.safe_dump(info)


def _export(*events):
    return "".join(json.dumps({"Event": {"System": {"EventID": 1}, "EventData": e}}) + "\n" for e in events)


# id, files (path -> text or data for NAME.tests.yml), extra options,
# exit code, {rule file: status on evaluator}, fragments expected in stdout + stderr
COMMAND_CASES = [
    ("native-pass", {"r.yml": RULE, "r.tests.yml": GOOD_TESTS}, [], 0, {"r.yml": "pass"},
     ["r.yml: evaluator pass", "1 rules with tests (0 without), 2 events"]),
    ("native-event-file", {"r.yml": RULE, "r.tests.yml": {"match": ["ev/ok.json"], "no_match": ["ev/no.jsonl"]},
                           "ev/ok.json": json.dumps({"Records": [CREATE, CREATE]}),
                           "ev/no.jsonl": json.dumps(DENIED) + "\n" + json.dumps({"eventName": "x"})},
     [], 0, {"r.yml": "pass"}, ["4 events"]),
    ("missing-event-file", {"r.yml": RULE, "r.tests.yml": {"match": ["nothere.json"]}}, [], 1,
     {"r.yml": "error"}, ["r.tests.yml: match[0]: nothere.json: no such file"]),
    ("failing-match", {"r.yml": RULE, "r.tests.yml": {"match": [DENIED]}}, [], 1, {"r.yml": "fail"},
     ["FAIL", "r.tests.yml: match[0]: expected selected, got not selected", '"errorCode": "AccessDenied"']),
    ("failing-no-match", {"r.yml": RULE, "r.tests.yml": {"no_match": [CREATE]}}, [], 1, {"r.yml": "fail"},
     ["expected not selected, got selected"]),
    ("fail-on-never", {"r.yml": RULE, "r.tests.yml": {"match": [DENIED]}}, ["--fail-on", "never"], 0,
     {"r.yml": "fail"}, []),
    ("unknown-key", {"r.yml": RULE, "r.tests.yml": {"matches": [CREATE]}}, [], 1, {"r.yml": "error"},
     ["r.tests.yml: matches: unknown key 'matches'"]),
    ("not-a-list", {"r.yml": RULE, "r.tests.yml": {"match": CREATE}}, [], 1, {"r.yml": "error"},
     ["match must be a list"]),
    ("broken-yaml", {"r.yml": RULE, "r.tests.yml": "match: [\n"}, [], 1, {"r.yml": "error"},
     ["r.tests.yml: invalid YAML"]),
    ("no-events", {"r.yml": RULE, "r.tests.yml": {"match": []}}, [], 1, {"r.yml": "error"},
     ["lists no events to test"]),
    ("alerts-for-a-detection-rule", {"r.yml": RULE, "r.tests.yml": {"events": [CREATE], "alerts": []}}, [], 1,
     {"r.yml": "error"}, ["events/alerts test a correlation; ", "r.yml holds none"]),
    ("hostile-path", {"r.yml": RULE, "r.tests.yml": {"match": ["x\0y.json"]}}, [], 1, {"r.yml": "error"},
     ["match[0]: x\\x00y.json: no such file"]),
    ("no-tests-at-all", {"r.yml": RULE}, [], 1, {}, ["0 rules with tests (1 without)", "no tests found"]),
    ("correlation-alerts", {"c.yml": CORRELATION, "c.tests.yml": [
        {"rule": "base", "match": [LOGINS[0]], "no_match": [{"eventName": "ListUsers"}]},
        {"events": LOGINS, "alerts": [{"group": {"sourceIPAddress": "1.2.3.4"}, "triggers": 1,
                                       "first_trigger": "2026-01-01T00:01:00Z"}]}]},
     [], 0, {"c.yml": "pass", "c.yml#1": "pass"}, ["2 rules with tests"]),
    ("correlation-wrong-alerts", {"c.yml": CORRELATION, "c.tests.yml": [
        {"rule": "base", "match": [LOGINS[0]]}, {"events": LOGINS, "alerts": []}]},
     [], 1, {"c.yml": "pass", "c.yml#1": "fail"}, ['got [{"first_trigger": "2026-01-01T00:01:00Z"']),
    ("rule-names-nothing", {"c.yml": CORRELATION, "c.tests.yml": {"rule": "nope", "match": [LOGINS[0]]}},
     [], 1, {"c.yml": "error", "c.yml#1": "error"}, ["rule: no document of", "'nope'"]),
    ("sigmahq-pass", {"rules/r.yml": RULE + f"regression_tests_path: {INFO}\n", INFO: _info(),
                      "regression_data/x/events.json": _export(CREATE)}, [], 0, {"r.yml": "pass"}, []),
    ("sigmahq-count-not-reached", {"rules/r.yml": RULE + f"regression_tests_path: {INFO}\n",
                                   INFO: _info(regression_tests_info=[{"type": "evtx", "match_count": 2,
                                               "path": "regression_data/x/events.json"}]),
                                   "regression_data/x/events.json": _export(CREATE, DENIED)},
     [], 1, {"r.yml": "fail"}, ["expected at least 2 of 2 events selected, got 1 selected"]),
    ("sigmahq-count-passed", {"rules/r.yml": RULE + f"regression_tests_path: {INFO}\n", INFO: _info(),
                              "regression_data/x/events.json": _export(CREATE, CREATE)},
     [], 0, {"r.yml": "pass"}, ["note", "Positive: 2 events selected, match_count says 1"]),
    ("sigmahq-missing-info", {"rules/r.yml": RULE + f"regression_tests_path: {INFO}\n"}, [], 1,
     {"r.yml": "error"}, ["regression_tests_path: regression_data/x/info.yml: no such file here or in a parent"]),
    ("sigmahq-broken-info", {"rules/r.yml": RULE + f"regression_tests_path: {INFO}\n", INFO: "a: [b\n"},
     [], 1, {"r.yml": "error"}, ["info.yml: invalid YAML"]),
    ("sigmahq-info-without-tests", {"rules/r.yml": RULE + f"regression_tests_path: {INFO}\n",
                                    INFO: _info(regression_tests_info=None)},
     [], 1, {"r.yml": "error"}, ["info.yml: regression_tests_info: regression_tests_info must list the test files"]),
    ("sigmahq-bad-count", {"rules/r.yml": RULE + f"regression_tests_path: {INFO}\n",
                           INFO: _info(regression_tests_info=[{"match_count": "one", "path": "x.evtx"}])},
     [], 1, {"r.yml": "error"}, ["regression_tests_info[0]: match_count must be a whole number"]),
    ("sigmahq-unknown-type", {"rules/r.yml": RULE + f"regression_tests_path: {INFO}\n",
                              INFO: _info(regression_tests_info=[{"type": "raw", "path": "x.raw"}])},
     [], 1, {"r.yml": "error"}, ["test type 'raw' cannot be read (only evtx)"]),
    ("sigmahq-missing-event-file", {"rules/r.yml": RULE + f"regression_tests_path: {INFO}\n", INFO: _info()},
     [], 1, {"r.yml": "error"}, ["regression_tests_info[0].path: regression_data/x/events.json: no such file"]),
    ("sigmahq-other-rule", {"rules/r.yml": RULE + f"regression_tests_path: {INFO}\n",
                            INFO: _info(rule_metadata=[{"id": "0d6b2a53-8c1e-4f4e-9a77-6c1a3a2b9e10"}]),
                            "regression_data/x/events.json": _export(CREATE)},
     [], 1, {"r.yml": "error"}, ["rule_metadata: names rule id 0d6b2a53"]),
]


def _write(root: Path, files: dict):
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not isinstance(content, str):
            content = yaml.safe_dump(content, sort_keys=False)
        path.write_text(content.format(title="Create user", id=ID) if name.endswith("r.yml") else content)


@pytest.mark.parametrize("files, options, code, expected, fragments", [c[1:] for c in COMMAND_CASES],
                         ids=[c[0] for c in COMMAND_CASES])
def test_command(tmp_path, capsys, files, options, code, expected, fragments):
    _write(tmp_path, files)
    report = tmp_path / "report.json"
    rules = tmp_path / "rules" if (tmp_path / "rules").is_dir() else tmp_path     # SigmaHQ: not regression_data
    got, out, err = run_cli(capsys, rules, "--targets", "evaluator", "--report", report, *options)
    assert got == code, out + err
    found = {}
    for r in json.loads(report.read_text())["results"]:
        found[Path(r["rule"]).name] = r["status"]
    assert found == expected
    for fragment in fragments:
        assert fragment in out + err


def test_a_rule_a_target_cannot_execute(tmp_path, capsys):
    """Keywords: no Athena column holds every string of an event, so Athena cannot run the rule;
    that is reported with the reason and is not a failure."""
    _write(tmp_path, {"k.yml": "title: K\nlogsource: {product: aws, service: cloudtrail}\n"
                               "detection: {keywords: [backdoor], condition: keywords}\n",
                      "k.tests.yml": {"match": [{"eventName": "CreateUser", "requestParameters": {"userName": "backdoor"}}],
                                      "no_match": [CREATE]}})
    report, junit = tmp_path / "r.json", tmp_path / "j.xml"
    code, out, err = run_cli(capsys, tmp_path / "k.yml", "--targets", "evaluator,athena", "--report", report,
                             "--junit", junit)
    assert code == 0, out + err
    assert statuses(report) == {("k.yml", "evaluator"): "pass", ("k.yml", "athena"): "not-executable"}
    assert "NOT-EXECUTABLE" in out and "keyword" in out.lower()
    skipped = list(ET.parse(junit).getroot().iter("skipped"))
    assert len(skipped) == 1 and "keyword" in skipped[0].get("message").lower()


def test_events_a_target_cannot_hold(tmp_path, capsys):
    """KQL cannot tell an empty string from a missing one: where the rule tells them apart, an
    event with errorCode "" or none is left out of that target's answer, with the reason; with
    no event left the rule is not executable there, and with some left it is graded on those."""
    reason = engines.get("kql")().unavailable()
    if reason:
        missing_tool(reason)
    empty = {**CREATE, "errorCode": ""}
    _write(tmp_path, {"a/r.yml": RULE, "a/r.tests.yml": {"no_match": [empty]},
                      "b/r.yml": RULE, "b/r.tests.yml": {"match": [CREATE], "no_match": [DENIED, empty]}})
    report = tmp_path / "report.json"
    code, out, err = run_cli(capsys, tmp_path, "--targets", "evaluator,kql", "--report", report)
    assert code == 0, out + err
    found = {(Path(r["rule"]).parent.name, r["target"]): r for r in json.loads(report.read_text())["results"]}
    assert {k: r["status"] for k, r in found.items()} == {
        ("a", "evaluator"): "pass", ("a", "kql"): "not-executable", ("b", "evaluator"): "pass", ("b", "kql"): "pass"}
    assert '""' in found["a", "kql"]["reason"]
    assert found["b", "kql"]["checked"] == 1 and found["b", "evaluator"]["checked"] == 3
    why = found['a', 'kql']['reason']
    assert found["b", "kql"]["notes"] == [f"match[0]: 1 event this target cannot hold: {why}",
                                          f"no_match[1]: 1 event this target cannot hold: {why}"]


def test_junit_is_well_formed(tmp_path, capsys):
    """One testcase per rule and target, in a testsuite per target; counts agree with the
    elements; hostile text (control characters, quotes, <) stays well-formed XML."""
    _write(tmp_path, {"a/r.yml": RULE, "a/r.tests.yml": {"match": [{**DENIED, "x": "\x01<&\"'"}]},
                      "b/r.yml": RULE, "b/r.tests.yml": GOOD_TESTS,
                      "c/r.yml": RULE, "c/r.tests.yml": {"match": ["gone.json"]}})
    junit = tmp_path / "j.xml"
    code, out, err = run_cli(capsys, tmp_path, "--targets", "evaluator,duckdb", "--junit", junit)
    assert code == 1
    top = ET.parse(junit).getroot()
    assert top.tag == "testsuites"
    suites = top.findall("testsuite")
    assert [s.get("name") for s in suites] == ["evaluator", "duckdb"]
    for suite in suites:
        cases = suite.findall("testcase")
        assert len(cases) == int(suite.get("tests")) == 3
        assert len(suite.findall("testcase/failure")) == int(suite.get("failures")) == 1
        assert len(suite.findall("testcase/error")) == int(suite.get("errors")) == 1
        assert {c.get("file") for c in cases} == {str(tmp_path / d / "r.yml") for d in "abc"}
    assert int(top.get("tests")) == 6
    assert "<&" in top.find("testsuite/testcase/failure").text


def test_options(tmp_path, capsys):
    _write(tmp_path, {"r.yml": RULE, "r.tests.yml": GOOD_TESTS})
    assert main(["test", str(tmp_path), "--targets", "evaluator,nope"]) == 2
    assert "--targets: unknown target 'nope'" in capsys.readouterr().err
    assert main(["test", str(tmp_path), "--targets", "evaluator", "--junit", str(tmp_path)]) == 2
    assert f"--junit {tmp_path}: " in capsys.readouterr().err        # refused before anything runs
    assert main(["test", str(tmp_path), "--targets", "evaluator", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["evaluator"]["pass"] == 1 and data["untested"] == []


def test_evtx_parser_missing_reads_the_export(tmp_path, capsys, monkeypatch):
    """Without the evtx package the JSON exported beside each .evtx is read; an .evtx without
    one is an error that says what to install."""
    monkeypatch.setattr(winevent, "unavailable", lambda: "reading .evtx needs the evtx package")
    report = tmp_path / "report.json"
    code, out, err = run_cli(capsys, *SIGMAHQ_RULES, "--targets", "evaluator", "--report", report)
    assert code == 0, out + err
    assert set(statuses(report).values()) == {"pass"}
    lone = tmp_path / "lone"
    shutil.copytree(SIGMAHQ, lone)
    for export in lone.rglob("*.json"):
        export.unlink()
    code, out, err = run_cli(capsys, lone / "rules", "--targets", "evaluator")
    assert code == 1 and "needs the evtx package" in out


def test_check_require_tests(tmp_path, capsys):
    assert main(["check", str(ROOT / "rules"), "--require-tests"]) == 0
    capsys.readouterr()
    _write(tmp_path, {"r.yml": RULE, "s.yml": RULE.format(title="S", id="4a6b8c0d-2e3f-5a7b-9c1d-3e4f5a6b7c8e"),
                      "s.tests.yml": {"match": ["gone.json"]}})
    assert main(["check", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["check", str(tmp_path), "--require-tests"]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'r.yml'}: no tests" in out
    assert f"{tmp_path / 's.tests.yml'}: match[0]: gone.json: no such file" in out


def test_every_engine_is_known():
    """`--targets` defaults to every registered engine, evaluator first."""
    assert "evaluator" in engines.ENGINES and "duckdb" in engines.ENGINES


# --- suzaku-rules AWS rules on corpus records (native layout, built in a temporary folder) ---------

def _corpus_records(trail: Path, wanted) -> dict:
    """(file, eventID) -> record, reading only the files named."""
    from transpiler.events import read_events
    out = {}
    for name in sorted({w["file"] for w in wanted}):
        events, bad = read_events([trail / name])
        assert not bad, bad
        for e in events:
            out.setdefault((name, e.data.get("eventID")), e.data)
    return out


@pytest.mark.corpus
def test_suzaku_rules(tmp_path, capsys):
    suzaku, trail = corpus_path("rules", "suzaku-rules"), corpus_path("cloudtrail")
    cases = yaml.safe_load((HERE / "ruletests" / "suzaku.yaml").read_text())
    assert len(cases) >= 20
    records = _corpus_records(trail, [w for c in cases for w in c["match"] + c["no_match"]])
    for case in cases:
        rule = suzaku / case["rule"]
        folder = tmp_path / Path(case["rule"]).parent.parts[0]      # suzaku/ and sigma/ hold same names
        folder.mkdir(exist_ok=True)
        shutil.copy(rule, folder / rule.name)
        positives = [records[w["file"], w["eventID"]] for w in case["match"]]
        (folder / f"{rule.stem}.match.json").write_text(json.dumps({"Records": positives}))
        tests = {"match": [f"{rule.stem}.match.json"],
                 "no_match": [records[w["file"], w["eventID"]] for w in case["no_match"]]}
        (folder / f"{rule.stem}.tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    report = tmp_path / "report.json"
    code, out, err = run_cli(capsys, tmp_path, "--report", report)
    assert code == 0, out + err
    data = assert_passes(report, rules=len(cases))
    events = sum(len(c["match"]) + len(c["no_match"]) for c in cases)
    assert sum(r["checked"] for r in data["results"] if r["target"] == "evaluator") == events
    print(err.strip())

"""The command line, end to end, in-process and through `python -m transpiler`."""
import json
import subprocess
import sys

import pytest

from transpiler import cli
from transpiler.cli import main

RULE = """title: {title}
id: {id}
level: high
logsource: {{product: aws, service: cloudtrail}}
detection:
    selection: {{eventName: {event}}}
    condition: selection
"""


@pytest.fixture
def rules(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "create_user.yml").write_text(RULE.format(title="Create user", id="8f3a7b2c-1d4e-5f6a-9b0c-2e3d4f5a6b7c",
                                                   event="CreateUser"))
    (d / "stop_logging.yml").write_text(RULE.format(title="Stop logging", id="4a6b8c0d-2e3f-5a7b-9c1d-3e4f5a6b7c8e",
                                                    event="StopLogging"))
    return d


@pytest.fixture
def events(tmp_path):
    f = tmp_path / "trail.json"
    f.write_text(json.dumps({"Records": [
        {"eventID": "e1", "eventName": "CreateUser"},
        {"eventID": "e2", "eventName": "ListUsers"},
        {"eventID": "e3", "eventName": "stoplogging"}]}))
    (tmp_path / "broken.json").write_text("{nope")
    return f


def test_check_valid(rules, capsys):
    assert main(["check", str(rules)]) == 0
    assert "2 valid (2 rules), 0 problems" in capsys.readouterr().err


def test_check_reports_every_problem(rules, capsys):
    (rules / "bad.yml").write_text("title: x\nlogsource: {}\ndetection: {sel: {a|nope: 1}, condition: sel or x}\n")
    (rules / "worse.yml").write_text("title: [")
    assert main(["check", str(rules)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    assert out[0].endswith("bad.yml: detection.sel.a|nope: unknown modifier 'nope'")
    assert out[1].endswith("bad.yml: detection.condition: col 8: unknown search identifier 'x'")
    assert "worse.yml: invalid YAML" in out[2]


def test_check_json(rules, capsys):
    (rules / "bad.yml").write_text("title: x\nlogsource: {}\ndetection: {sel: {a: 1}, condition: sel and}\n")
    assert main(["check", str(rules), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] == 2 and report["errors"] == 1 and report["documents"] == 3
    assert report["problems"][0]["kind"] == "syntax" and report["problems"][0]["col"] == 8


def test_match_text_and_broken_event_file(rules, events, capsys):
    assert main(["match", str(rules), "--events", str(events.parent)]) == 1   # broken.json
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2
    assert "'Create user'" in lines[0] and "trail.json#0 eventID=e1" in lines[0]
    assert "'Stop logging'" in lines[1] and "#2 eventID=e3" in lines[1]
    assert "broken.json: invalid JSON" in captured.err
    assert "2 rules, 0 correlations, 3 events, 2 matches, 0 correlation alerts" in captured.err


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_match_machine_formats(rules, events, capsys, fmt):
    assert main(["match", str(rules), "--events", str(events), "--format", fmt]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out) if fmt == "json" else [json.loads(line) for line in out.splitlines()]
    assert [(r["title"], r["index"], r["event_id"]) for r in rows] == [("Create user", 0, "e1"), ("Stop logging", 2, "e3")]
    assert rows[0]["rule_id"] == "8f3a7b2c-1d4e-5f6a-9b0c-2e3d4f5a6b7c"


def test_python_dash_m(rules):
    done = subprocess.run([sys.executable, "-m", "transpiler", "check", str(rules)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_placeholders_file(tmp_path, capsys):
    rule = tmp_path / "p.yml"
    rule.write_text("title: p\nlogsource: {}\ndetection: {sel: {User|expand: '%admins%'}, condition: sel}\n")
    assert main(["check", str(rule)]) == 1
    assert "placeholder %admins% has no values" in capsys.readouterr().out
    values = tmp_path / "values.yml"
    values.write_text("admins: [root, admin]\n")
    assert main(["check", str(rule), "--placeholders", str(values)]) == 0


def test_match_correlation(tmp_path, capsys):
    rules = tmp_path / "corr.yml"
    rules.write_text("""title: Many failures
id: 68f8de62-97cd-4a9a-afba-7804fddf43d4
logsource: {product: test}
correlation: {type: event_count, rules: [fail], group-by: [host], timespan: 1m, condition: {gte: 2}}
---
title: One failure
name: fail
logsource: {product: test}
detection: {sel: {action: fail}, condition: sel}
""")
    events = tmp_path / "events.jsonl"
    events.write_text('{"ts": "2024-01-01T00:00:00Z", "action": "fail", "host": "a"}\n'
                      '{"ts": "2024-01-01T00:00:30Z", "action": "fail", "host": "a"}\n')
    assert main(["match", str(rules), "--events", str(events), "--time-field", "ts"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["68f8de62-97cd-4a9a-afba-7804fddf43d4 'Many failures': event_count [host=a] triggered 1x "
                   "from 2024-01-01T00:00:30Z to 2024-01-01T00:00:30Z"]


def test_check_reports_unresolved_correlation(tmp_path, capsys):
    rules = tmp_path / "corr.yml"
    rules.write_text("title: c\nlogsource: {}\ncorrelation: {type: event_count, rules: [gone], group-by: [h], "
                     "timespan: 1m, condition: {gte: 2}}\n")
    assert main(["check", str(rules)]) == 1
    assert "correlation.rules: no loaded rule has id, name or title 'gone'" in capsys.readouterr().out


def test_check_reports_duplicates_with_both_paths(rules, capsys):
    """Repeated ids, titles and file names passed check (sigma-cli flags all three)."""
    (rules / "copies").mkdir()
    (rules / "copies" / "create_user.yml").write_text(
        RULE.format(title="Create user", id="8f3a7b2c-1d4e-5f6a-9b0c-2e3d4f5a6b7c", event="CreateUser"))
    assert main(["check", str(rules)]) == 1
    first, copy = rules / "copies" / "create_user.yml", rules / "create_user.yml"   # in path order
    assert capsys.readouterr().out.splitlines() == [
        f"{copy}: id: '8f3a7b2c-1d4e-5f6a-9b0c-2e3d4f5a6b7c' is also the id of {first}",
        f"{copy}: title: 'Create user' is also the title of {first}",
        f"{copy}: the file name 'create_user.yml' is also used by {first}"]
    assert main(["check", str(rules), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["documents"], report["valid"], report["errors"]) == (3, 3, 3)   # 3 rules, 3 problems


def test_match_max_event_size(rules, events, capsys):
    assert main(["match", str(rules), "--events", str(events), "--max-event-size", "100"]) == 1
    assert f"{events}: more than 100 bytes of JSON, the limit (--max-event-size raises it)" in capsys.readouterr().err
    assert main(["match", str(rules), "--events", str(events), "--max-event-size", "1K"]) == 0
    with pytest.raises(SystemExit):
        main(["match", str(rules), "--events", str(events), "--max-event-size", "lots"])
    assert "'lots' is not a size such as 512M, 2G or 1048576" in capsys.readouterr().err


def test_ctrl_c_is_one_line_and_exit_130(rules, monkeypatch, capsys):
    """check, match, explain and catalog had no answer to Ctrl-C but a KeyboardInterrupt traceback."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "load_paths", interrupted)
    assert main(["check", str(rules)]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_explain_catalog_path_without_rules_is_an_error(rules, tmp_path, capsys):
    (tmp_path / "typo").mkdir()
    assert main(["explain", str(rules / "create_user.yml"), "--catalog", str(tmp_path / "typo")]) == 1
    assert f"{tmp_path / 'typo'}: no rule files (.yml, .yaml) in this folder or below" in capsys.readouterr().err
    assert main(["explain", str(rules / "create_user.yml"), "--catalog", str(rules)]) == 0

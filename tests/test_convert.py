"""`convert` for CI: import formats (structure, not just existence), counts, reports, exit
status, filters, determinism and atomic writes."""
import copy
import json
import errno
import os
import re
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from transpiler import backends, batch, files, formats
from transpiler.cli import main
from transpiler.rule import load_paths

from conftest import corpus_path

ROOT = Path(__file__).resolve().parent.parent

RULE = """title: {title}
{id_line}status: {status}
level: {level}
description: {description}
author: Tester
references: [https://example.com/{name}]
falsepositives: [Admins creating users]
tags: {tags}
logsource: {{product: aws, service: cloudtrail}}
detection:
    selection: {{eventSource: iam.amazonaws.com, eventName: {event}}}
    condition: selection
"""
CREATE_USER_ID = "8f3a7b2c-1d4e-4f6a-9b0c-2e3d4f5a6b7c"


def write_rule(folder, name, *, title=None, id=None, level="medium", status="test", event="CreateUser",
               tags=("attack.persistence", "attack.t1136.003"), description="Detects a thing."):
    id_line = "" if id is False else f"id: {id or uuid.uuid5(uuid.NAMESPACE_URL, name)}\n"
    (folder / f"{name}.yml").write_text(RULE.format(
        title=json.dumps(title or name), id_line=id_line, status=status, level=level, name=name,
        description=json.dumps(description), tags=json.dumps(list(tags)), event=event), encoding="utf-8")


@pytest.fixture
def rules(tmp_path):
    """Converted, unsupported (keywords; a correlation) and failed (bad YAML) documents."""
    d = tmp_path / "rules"
    d.mkdir()
    write_rule(d, "create_user", title="AWS IAM User Created", id=CREATE_USER_ID,
               tags=("attack.persistence", "attack.privilege_escalation", "attack.stealth",
                     "attack.t1136.003", "attack.t1078", "attack.g0016"),
               description="Detects a new IAM user.\nQuotes \" and 'single', <b>&amp;</b>, a line\u2028separator, "
                           "tab\tand a backslash \\ here.")
    write_rule(d, "stop_logging", title="[Sigma] Trail stopped [test]", level="critical", status="stable",
               event="StopLogging", tags=("attack.defense-impairment", "attack.t1562.008"))
    write_rule(d, "no_id", id=False, level="low", status="experimental", event="ListUsers", tags=())
    write_rule(d, "same_id", id=CREATE_USER_ID, level="high", event="CreateLoginProfile", tags=("attack.t1098",))
    (d / "keywords.yml").write_text(
        "title: Keyword\nlevel: low\nlogsource: {product: aws, service: cloudtrail}\n"
        "detection: {keywords: [evil], condition: keywords}\n")
    (d / "two.yml").write_text(
        RULE.format(title="First", id_line="", status="test", level="high", name="two", description='"one"',
                    tags="[]", event="DeleteTrail")
        + "---\n" + RULE.format(title="Second", id_line="", status="test", level="high", name="two",
                                description='"two"', tags="[]", event="UpdateTrail"))
    (d / "correlation.yml").write_text(
        "title: Many users\nid: 0a1b2c3d-0000-4000-8000-000000000001\nlevel: high\n"
        "logsource: {product: aws, service: cloudtrail}\n"
        "correlation: {type: event_count, rules: [AWS IAM User Created], group-by: [userIdentity.arn], "
        "timespan: 1h, condition: {gte: 10}, generate: true}\n")
    (d / "broken.yml").write_text("title: [unclosed\n")
    return d


def run(*argv):
    return main(["convert", *(str(a) for a in argv)])


def report_of(tmp_path, *argv, name="report.json"):
    code = run(*argv, "--report", tmp_path / name)
    return code, json.loads((tmp_path / name).read_text())


# --- the counts ------------------------------------------------------------------------------------

def test_every_document_is_counted_once(rules, tmp_path, capsys):
    code, report = report_of(tmp_path, rules, "-t", "athena")
    s = report["summary"]
    assert (s["read"], s["converted"], s["unsupported"], s["failed"]) == (9, 7, 1, 1)
    assert s["read"] == s["converted"] + s["unsupported"] + s["failed"]
    by_result = {}
    for row in report["rules"]:
        by_result.setdefault(row["result"], []).append(Path(row["path"]).name + (f"#{row['doc']}" if row["doc"] else ""))
    assert sorted(by_result["unsupported"]) == ["keywords.yml"]
    assert by_result["failed"] == ["broken.yml"]
    correlation = next(r for r in report["rules"] if r["kind"] == "correlation")
    assert correlation["result"] == "converted"                      # athena: one query per correlation
    err = capsys.readouterr().err
    assert err.rstrip().splitlines()[-1].startswith("9 rules read, 7 converted, 1 unsupported, 1 failed")
    assert code == 1                                   # a failed rule, --fail-on error (the default)


@pytest.mark.parametrize("fail_on, code", [("error", 1), ("unsupported", 1), ("never", 0)])
def test_fail_on(rules, fail_on, code):
    assert run(rules, "-t", "athena", "--fail-on", fail_on) == code


@pytest.mark.parametrize("fail_on, code", [("error", 0), ("unsupported", 1), ("never", 0)])
def test_fail_on_without_failures(rules, fail_on, code):
    (rules / "broken.yml").unlink()
    assert run(rules, "-t", "athena", "--fail-on", fail_on) == code


def test_junit_one_case_per_rule(rules, tmp_path):
    run(rules, "-t", "kql", "--junit", tmp_path / "junit.xml", "--fail-on", "never")
    root = ET.parse(tmp_path / "junit.xml").getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == int(suite.get("tests")) == 9
    failed = [c for c in cases if c.find("failure") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert [c.get("name") for c in failed] == ["broken.yml"]
    assert sorted(c.get("name") for c in skipped) == ["keywords.yml"]      # kql converts the correlation
    assert (suite.get("failures"), suite.get("skipped"), suite.get("errors")) == ("1", "1", "0")
    assert {c.get("name") for c in cases} >= {"two.yml", "two.yml#1"}
    title = cases[[c.get("name") for c in cases].index("create_user.yml")].find("properties/property")
    assert title.get("value") == "AWS IAM User Created"


def test_junit_unsupported_are_failures_when_they_fail_the_run(rules, tmp_path):
    run(rules, "-t", "kql", "--junit", tmp_path / "junit.xml", "--fail-on", "unsupported")
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert (suite.get("failures"), suite.get("skipped")) == ("2", "0")     # broken.yml, keywords.yml


def test_junit_stays_valid_xml_with_control_characters(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    write_rule(d, "ctl", title="bell \x07 and escape \x1b", description="nul-free \x0b")
    (d / "bad.yml").write_bytes(b"title: x\x01y\n")
    run(d, "-t", "athena", "--junit", tmp_path / "j.xml", "--report", tmp_path / "r.json")
    ET.parse(tmp_path / "j.xml")
    json.loads((tmp_path / "r.json").read_text())


# --- rule filters ------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, titles", [
    (["--level", "high+"], ["[Sigma] Trail stopped [test]", "Many users", "First", "Second", "same_id"]),
    (["--level", "low,critical"], ["[Sigma] Trail stopped [test]", "Keyword", "no_id"]),
    (["--status", "stable", "--status", "experimental"], ["[Sigma] Trail stopped [test]", "no_id"]),
    (["--tag", "ATTACK.T1136*,attack.t1098"], ["AWS IAM User Created", "same_id"]),
    (["--tag", "attack.persistence", "--level", "medium"], ["AWS IAM User Created"]),
])
def test_filters(rules, tmp_path, args, titles):
    (rules / "broken.yml").unlink()
    _, report = report_of(tmp_path, rules, "-t", "athena", *args)
    assert sorted(r["title"] for r in report["rules"]) == sorted(titles)
    s = report["summary"]
    assert s["read"] == len(titles) and s["excluded"] == 8 - len(titles)
    assert s["read"] == s["converted"] + s["unsupported"] + s["failed"]


def test_bad_filter_value(rules, capsys):
    assert run(rules, "-t", "athena", "--level", "severe") == 2
    assert "levels are informational" in capsys.readouterr().err


# --- formats: structure ----------------------------------------------------------------------------

SENTINEL_TACTICS = {"Collection", "CommandAndControl", "CredentialAccess", "DefenseEvasion", "Discovery",
                    "Execution", "Exfiltration", "Impact", "ImpairProcessControl", "InhibitResponseFunction",
                    "InitialAccess", "LateralMovement", "Persistence", "PreAttack", "PrivilegeEscalation",
                    "Reconnaissance", "ResourceDevelopment"}


def queries(target, folder):
    """What the backend itself makes of every convertible rule and correlation in folder:
    {title: query}."""
    from transpiler.correlation import resolve
    found, _ = load_paths([folder])
    backend = backends.get(target)()
    correlations = {id(c.rule): c for c in resolve(found)[0]}
    out = {}
    for r in found:
        try:
            out[r.title] = backend.convert_correlation(correlations[id(r)]) if id(r) in correlations \
                else backend.convert(r)
        except Exception:
            pass
    return out


def test_sentinel_arm(rules, tmp_path):
    out = tmp_path / "arm"
    run(rules, "-t", "kql", "-f", "sentinel_arm", "-o", out)
    assert [p.name for p in out.iterdir()] == ["sentinel_arm-001.json"]
    doc = json.loads((out / "sentinel_arm-001.json").read_text(encoding="utf-8"))
    assert doc["$schema"].endswith("deploymentTemplate.json#") and doc["contentVersion"] == "1.0.0.0"
    assert doc["parameters"]["workspace"]["type"] == "string"
    expected = queries("kql", rules)
    assert len(doc["resources"]) == len(expected) == 7      # six rules and the correlation
    names = set()
    for res in doc["resources"]:
        assert res["type"] == "Microsoft.OperationalInsights/workspaces/providers/alertRules"
        assert res["kind"] == "Scheduled" and res["apiVersion"] == "2023-02-01"
        m = re.fullmatch(r"\[concat\(parameters\('workspace'\), '/Microsoft\.SecurityInsights/([0-9a-f-]{36})'\)\]",
                         res["name"])
        assert m, res["name"]
        names.add(m.group(1))
        p = res["properties"]
        for key in ("displayName", "enabled", "suppressionDuration", "suppressionEnabled", "query",
                    "queryFrequency", "queryPeriod", "severity", "triggerOperator", "triggerThreshold",
                    "tactics", "techniques", "description"):
            assert key in p, key
        assert p["enabled"] is True and p["suppressionEnabled"] is False
        assert (p["queryFrequency"], p["queryPeriod"], p["suppressionDuration"]) == ("PT1H", "PT1H", "PT5H")
        assert p["severity"] in {"Informational", "Low", "Medium", "High"}
        assert p["triggerOperator"] == "GreaterThan" and p["triggerThreshold"] == 0
        assert set(p["tactics"]) <= SENTINEL_TACTICS
        assert all(re.fullmatch(r"T\d{4}", t) for t in p["techniques"])
        title = p["displayName"][1:] if p["displayName"].startswith("[[") else p["displayName"]
        assert p["query"] == expected[title]
    assert len(names) == 7                                  # same Sigma id twice: still unique
    by_title = {r["properties"]["displayName"]: r["properties"] for r in doc["resources"]}
    user = by_title["AWS IAM User Created"]
    # stealth -> DefenseEvasion; InitialAccess added: Sentinel's table puts T1078 there too (sentinel.py)
    assert user["tactics"] == ["InitialAccess", "Persistence", "PrivilegeEscalation", "DefenseEvasion"]
    assert user["techniques"] == ["T1078", "T1136"]
    assert user["severity"] == "Medium"
    assert user["description"].startswith("Detects a new IAM user.\nQuotes \" and 'single', <b>&amp;</b>")
    assert "line\u2028separator" in user["description"]
    assert {e["entityType"] for e in user["entityMappings"]} == {"Account", "IP"}
    stop = by_title["[[Sigma] Trail stopped [test]"]          # ARM would read "[...]" as an expression
    assert stop["severity"] == "High" and stop["tactics"] == ["DefenseEvasion"]
    assert by_title["no_id"]["tactics"] == [] and by_title["no_id"]["severity"] == "Low"


def test_sentinel_arm_id_is_uuid5_of_the_rule_id(rules, tmp_path):
    run(rules, "-t", "kql", "-f", "sentinel_arm", "-o", tmp_path / "o")
    doc = json.loads((tmp_path / "o" / "sentinel_arm-001.json").read_text())
    user = next(r for r in doc["resources"] if r["properties"]["displayName"] == "AWS IAM User Created")
    assert str(uuid.uuid5(formats.NAMESPACE, CREATE_USER_ID)) in user["name"]


def test_sentinel_arm_options_and_preview_subtechniques(rules, tmp_path):
    run(rules, "-t", "kql", "-f", "sentinel_arm", "-o", tmp_path / "o", "-O", "frequency=1h", "-O", "period=2d",
        "-O", "suppression=1h", "-O", "enabled=false", "-O", "api_version=2024-01-01-preview", "-O", "threshold=3")
    doc = json.loads((tmp_path / "o" / "sentinel_arm-001.json").read_text())
    p = next(r["properties"] for r in doc["resources"] if r["properties"]["displayName"] == "AWS IAM User Created")
    assert (p["queryFrequency"], p["queryPeriod"], p["suppressionDuration"]) == ("PT1H", "P2D", "PT1H")
    assert p["suppressionEnabled"] is True and p["enabled"] is False and p["triggerThreshold"] == 3
    assert p["techniques"] == ["T1078", "T1136"] and p["subTechniques"] == ["T1136.003"]


@pytest.mark.parametrize("option, message", [
    ("frequency=1w", "duration like"), ("period=15d", "between 5m and 14d"), ("frequency=2h", "at least the frequency"),
    ("enabled=maybe", "true or false"), ("colour=red", "has no option"), ("threshold=x", "whole number")])
def test_bad_format_options(rules, tmp_path, capsys, option, message):
    assert run(rules, "-t", "kql", "-f", "sentinel_arm", "-o", tmp_path / "out", "-O", option) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_sentinel_arm_files_hold_at_most_50_rules(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    for i in range(101):
        write_rule(d, f"r{i:03d}", event=f"Event{i}")
    run(d, "-t", "kql", "-f", "sentinel_arm", "-o", tmp_path / "out")
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == ["sentinel_arm-001.json", "sentinel_arm-002.json", "sentinel_arm-003.json"]
    sizes = [len(json.loads(f.read_text())["resources"]) for f in files]
    assert sizes == [50, 50, 1]


def test_sentinel_yaml(rules, tmp_path):
    out = tmp_path / "yaml"
    run(rules, "-t", "kql", "-f", "sentinel", "-o", out)
    expected = queries("kql", rules)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["correlation.yaml", "create_user.yaml", "no_id.yaml", "same_id.yaml", "stop_logging.yaml",
                     "two.yaml", "two_1.yaml"]
    ids = set()
    for f in out.iterdir():
        doc = yaml.safe_load(f.read_text(encoding="utf-8"))
        for key in ("id", "name", "description", "kind", "severity", "requiredDataConnectors", "query",
                    "queryFrequency", "queryPeriod", "triggerOperator", "triggerThreshold"):
            assert key in doc, (f.name, key)
        assert isinstance(doc["id"], str) and uuid.UUID(doc["id"])
        ids.add(doc["id"])
        assert doc["kind"] == "Scheduled" and doc["severity"] in {"Informational", "Low", "Medium", "High"}
        assert (doc["queryFrequency"], doc["queryPeriod"], doc["triggerOperator"], doc["triggerThreshold"]) == \
            ("1h", "1h", "gt", 0)
        assert doc["query"] == expected[doc["name"]]
        assert doc["requiredDataConnectors"] == [{"connectorId": "AWS", "dataTypes": ["AWSCloudTrail"]},
                                                 {"connectorId": "AWSS3", "dataTypes": ["AWSCloudTrail"]}]
        assert set(doc["tactics"]) <= SENTINEL_TACTICS
        assert all(re.fullmatch(r"T\d{4}(\.\d{3})?", t) for t in doc["relevantTechniques"])
        assert re.fullmatch(r"\d+\.\d+\.\d+", doc["version"])
        for mapping in doc.get("entityMappings", []):     # none for a correlation: its rows are alerts
            assert mapping["entityType"] and 1 <= len(mapping["fieldMappings"]) <= 3
    assert len(ids) == 7
    user = yaml.safe_load((out / "create_user.yaml").read_text(encoding="utf-8"))
    assert user["relevantTechniques"] == ["T1078", "T1136.003"]
    assert user["description"].endswith("tab\tand a backslash \\ here.")
    assert "line\u2028separator" in user["description"]


def test_athena_sql_files(rules, tmp_path):
    run(rules, "-t", "athena", "-f", "sql", "-o", tmp_path / "o")
    expected = queries("athena", rules)
    assert len(list((tmp_path / "o").glob("*.sql"))) == len(expected) == 7     # six rules, the correlation
    text = (tmp_path / "o" / "create_user.sql").read_text(encoding="utf-8")
    header, query = text.split("\nSELECT", 1)
    lines = header.splitlines()
    assert all(line.startswith("-- ") for line in lines)        # the U+2028 in the description is a space
    assert lines[0] == "-- AWS IAM User Created"
    assert f"-- id: {CREATE_USER_ID}" in lines and "-- level: medium, status: test" in lines
    assert "-- ATT&CK: Persistence, Privilege Escalation, Stealth, T1078, T1136.003" in lines
    assert "SELECT" + query == expected["AWS IAM User Created"] + "\n"


def test_athena_cloudformation(rules, tmp_path):
    run(rules, "-t", "athena", "-f", "cloudformation", "-o", tmp_path / "o", "-O", "database=security")
    doc = yaml.safe_load((tmp_path / "o" / "cloudformation-001.yaml").read_text(encoding="utf-8"))
    assert doc["AWSTemplateFormatVersion"] == "2010-09-09"
    assert doc["Parameters"]["Database"] == {"Type": "String", "Default": "security",
                                             "Description": "The Athena (AWS Glue) database the queries run in"}
    expected = queries("athena", rules)
    assert len(doc["Resources"]) == len(expected) == 7
    for logical_id, res in doc["Resources"].items():
        assert re.fullmatch(r"[A-Za-z0-9]{1,255}", logical_id)
        assert res["Type"] == "AWS::Athena::NamedQuery"
        p = res["Properties"]
        assert p["Database"] == {"Ref": "Database"} and p["WorkGroup"] == {"Ref": "WorkGroup"}
        assert 1 <= len(p["Name"]) <= 128 and 1 <= len(p["Description"]) <= 1024
        assert p["QueryString"] == expected[p["Name"]]
    user = next(r for r in doc["Resources"].values() if r["Properties"]["Name"] == "AWS IAM User Created")
    assert user["Metadata"] == {"SigmaId": CREATE_USER_ID, "Level": "medium",
                                "Attack": ["Persistence", "Privilege Escalation", "Stealth", "T1078", "T1136.003"]}


def test_logpresso_export(rules, tmp_path):
    run(rules, "-t", "pipesearch", "-f", "logpresso", "-o", tmp_path / "o")
    doc = json.loads((tmp_path / "o" / "logpresso.json").read_text(encoding="utf-8"))
    expected = queries("pipesearch", rules)
    assert len(doc["rules"]) == len(expected) == 6
    backend = backends.get("pipesearch")()
    found, _ = load_paths([rules])
    rule = next(r for r in found if r.title == "AWS IAM User Created")
    entry = next(e for e in doc["rules"] if e["title"] == "AWS IAM User Created")
    assert entry["query"] == expected["AWS IAM User Created"]
    assert entry["message"] == backend.message(rule) and "$" in entry["message"]
    assert entry["output_fields"] == backend.output_fields(rule) and entry["output_fields"]
    assert entry["severity"] == "medium" and entry["sigma_id"] == CREATE_USER_ID
    assert entry["attack"] == {"tactics": ["Persistence", "Privilege Escalation", "Stealth"],
                               "techniques": ["T1078", "T1136.003"]}
    assert entry["false_positives"] == ["Admins creating users"]
    assert entry["references"] == ["https://example.com/create_user"]
    assert entry["description"].startswith("Detects a new IAM user.")


@pytest.mark.parametrize("target", sorted(backends.BACKENDS))
def test_jsonl_lists_every_rule(rules, tmp_path, target):
    run(rules, "-t", target, "-f", "jsonl", "-o", tmp_path / "all.jsonl")      # -o names the file
    lines = (tmp_path / "all.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 9
    for row in rows:
        assert set(row) >= {"id", "title", "level", "tags", "target", "query", "errors"}
        assert row["target"] == target
        assert (row["query"] is None) == bool(row["errors"])
    broken = next(r for r in rows if r["path"].endswith("broken.yml"))
    assert broken["result"] == "failed" and broken["title"] is None and "invalid YAML" in broken["errors"][0]["message"]


def test_set_format_to_stdout(rules, capsys):
    run(rules, "-t", "athena", "-f", "jsonl")
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 9 and json.loads(out.splitlines()[0])["target"] == "athena"


def test_multi_file_format_needs_a_folder(rules, capsys):
    assert run(rules, "-t", "athena", "-f", "sql") == 2
    assert "give a folder with -o" in capsys.readouterr().err


def test_several_files_need_a_folder_not_a_file_name(rules, tmp_path, capsys):
    assert run(rules, "-t", "kql", "-f", "sentinel_arm", "-o", tmp_path / "rules.json") == 2
    assert not (tmp_path / "rules.json").exists()


def test_sentinel_for_a_table_without_entity_columns(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "proc.yml").write_text("title: Whoami\nlevel: low\nlogsource: {product: windows, category: process_creation}\n"
                                "detection: {sel: {Image|endswith: '\\\\whoami.exe'}, condition: sel}\n")
    run(d, "-t", "kql", "-f", "sentinel", "-o", tmp_path / "y", "--table", "DeviceProcessEvents")
    doc = yaml.safe_load((tmp_path / "y" / "proc.yaml").read_text())
    assert doc["requiredDataConnectors"] == [] and "entityMappings" not in doc
    assert doc["query"].startswith("DeviceProcessEvents\n")
    run(d, "-t", "kql", "-f", "sentinel_arm", "-o", tmp_path / "a")
    props = json.loads((tmp_path / "a" / "sentinel_arm-001.json").read_text())["resources"][0]["properties"]
    assert "entityMappings" not in props and props["tactics"] == [] and props["techniques"] == []


def test_placeholders_reach_the_queries(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "p.yml").write_text("title: p\nlogsource: {product: aws, service: cloudtrail}\n"
                             "detection: {sel: {userIdentity.userName|expand: '%admins%'}, condition: sel}\n")
    (tmp_path / "values.yml").write_text("admins: [root, admin]\n")
    assert run(d, "-t", "athena", "-f", "jsonl", "-o", tmp_path / "a.jsonl", "--placeholders", tmp_path / "values.yml") == 0
    assert "'root'" in json.loads((tmp_path / "a.jsonl").read_text())["query"]


def test_unknown_format(rules, capsys):
    assert run(rules, "-t", "athena", "-f", "sentinel_arm") == 2
    assert "athena has no format 'sentinel_arm'; it has: cloudformation, sql, jsonl" in capsys.readouterr().err


def test_too_long_for_sentinel_is_unsupported_there(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    values = ", ".join(f"User{i:05d}" for i in range(1200))
    (d / "long.yml").write_text("title: Long\nlogsource: {product: aws, service: cloudtrail}\n"
                                f"detection: {{sel: {{userIdentity.userName: [{values}]}}, condition: sel}}\n")
    write_rule(d, "short")
    _, report = report_of(tmp_path, d, "-t", "kql", "-f", "sentinel_arm", "-o", tmp_path / "out")
    row = next(r for r in report["rules"] if r["title"] == "Long")
    assert row["result"] == "unsupported" and "at most 10,000" in row["errors"][0]["message"]
    assert len(json.loads((tmp_path / "out" / "sentinel_arm-001.json").read_text())["resources"]) == 1
    _, report = report_of(tmp_path, d, "-t", "kql", "-f", "jsonl", "-o", tmp_path / "all.jsonl")
    assert report["summary"]["converted"] == 2


# --- the default output: queries alone -----------------------------------------------------------

def test_default_queries_to_stdout(rules, capsys):
    run(rules, "-t", "athena")
    out = capsys.readouterr().out
    assert out.count("SELECT *\nFROM") == 6 and out.count("WITH selected AS") == 1 and out.endswith("\n\n")


def test_default_queries_to_files(rules, tmp_path):
    run(rules, "-t", "athena", "-o", tmp_path / "out")
    assert len(list((tmp_path / "out").iterdir())) == 7
    assert (tmp_path / "out" / "two_1.sql").read_text().startswith("SELECT *")       # the target's extension


# --- determinism and atomic writes --------------------------------------------------------------

FORMATS = [(t, f) for t in sorted(backends.BACKENDS) for f in formats.available(t)]


@pytest.mark.parametrize("target, fmt", FORMATS)
def test_same_rules_same_bytes(rules, tmp_path, target, fmt):
    for out in ("a", "b"):
        run(rules, "-t", target, "-f", fmt, "-o", tmp_path / out)
    a = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    b = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}
    assert a == b and a


def test_interrupted_run_leaves_no_partial_file(rules, tmp_path, monkeypatch, capsys):
    """The third file's write is interrupted: the two before it are whole, it does not exist,
    and no temporary file is left behind."""
    real_replace, calls = os.replace, []

    def replace(src, dst):
        if str(tmp_path / "out") in str(dst):      # not the caches' files (grammar, templates)
            calls.append(dst)
            if len(calls) == 3:
                raise KeyboardInterrupt
        real_replace(src, dst)
    monkeypatch.setattr(files.os, "replace", replace)
    assert run(rules, "-t", "athena", "-f", "sql", "-o", tmp_path / "out") == 130
    assert "interrupted" in capsys.readouterr().err
    left = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert left == sorted(Path(c).name for c in calls[:2])
    for name in left:
        assert (tmp_path / "out" / name).read_text().rstrip().endswith(("'", "ORDER BY g1"))   # whole query


def test_a_full_disk_writes_no_file(rules, tmp_path, monkeypatch, capsys):
    """The disk fills up at the third file of a folder: 50 of a hundred rules' files were
    replaced and the rest kept last run's. Now every file is written beside its place first
    and renamed only when all are: the folder is as it was, the error names the file."""
    out = tmp_path / "out"
    assert run(rules, "-t", "athena", "-f", "sql", "-o", out) in (0, 1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real, calls = files.tempfile.mkstemp, []

    def mkstemp(*args, **kw):
        if str(out) in str(kw.get("dir")):      # not the caches' files (grammar, templates)
            calls.append(1)
            if len(calls) == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kw)
    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
    write_rule(rules, "new_rule", event="NewEvent")
    capsys.readouterr()
    assert run(rules, "-t", "athena", "-f", "sql", "-o", out) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"error: {out}/")


def test_interrupted_set_file_is_not_written(rules, tmp_path, monkeypatch):
    def boom(*a):
        raise KeyboardInterrupt
    monkeypatch.setattr(files.os, "replace", boom)
    assert run(rules, "-t", "athena", "-f", "jsonl", "-o", tmp_path / "out") == 130
    assert list((tmp_path / "out").iterdir()) == []


def test_rendering_error_writes_nothing(rules, tmp_path, monkeypatch):
    real = formats.Renderer._render
    seen = []

    def render(self, **context):
        seen.append(1)
        if len(seen) == 4:
            raise RuntimeError("template bug")
        return real(self, **context)
    monkeypatch.setattr(formats.Renderer, "_render", render)
    with pytest.raises(RuntimeError):
        run(rules, "-t", "athena", "-f", "sql", "-o", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_sigterm_mid_run_leaves_only_whole_files(tmp_path):
    """A cancelled CI job: SIGTERM once files appear. Every file left is whole (parses) and
    no temporary file remains."""
    d = tmp_path / "rules"
    d.mkdir()
    for i in range(1500):
        write_rule(d, f"r{i:04d}", event=f"Event{i}")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "transpiler", "convert", str(d), "-t", "kql", "-f", "sentinel",
                             "-o", str(out)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None and not (out.exists() and any(out.iterdir())):
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    names = [p.name for p in out.iterdir()]
    assert not [n for n in names if n.endswith(".tmp")], names
    for name in names:
        assert yaml.safe_load((out / name).read_text())["kind"] == "Scheduled"
    assert proc.returncode in (0, 130), err
    if proc.returncode == 130:
        assert len(names) < 1500


# --- progress ---------------------------------------------------------------------------------------

class FakeTty:
    def __init__(self, tty):
        self.tty, self.text = tty, ""

    def isatty(self):
        return self.tty

    def write(self, s):
        self.text += s

    def flush(self):
        pass


@pytest.mark.parametrize("tty", [True, False])
def test_progress_bar_only_on_a_terminal(tty):
    stream = FakeTty(tty)
    p = batch.Progress(stream)
    for i in range(1, 6):
        p.update(i, 5)
    p.clear()
    assert ("5/5" in stream.text and stream.text.endswith("\r\x1b[K")) if tty else stream.text == ""


def test_progress_can_be_turned_off():
    stream = FakeTty(True)
    p = batch.Progress(stream, enabled=False)
    p.update(1, 1)
    assert stream.text == ""


# --- the filters every value goes through -----------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.text())
def test_json_filter_reads_back_in_json_and_yaml(text):
    encoded = formats.to_json(text)
    assert json.loads(encoded) == text
    assert yaml.safe_load("k: " + encoded) == {"k": text}
    assert "<" not in encoded or "<" in text                # never HTML-escaped


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60).map(lambda s: s + "\n" + s[::-1]))
def test_yaml_block_reads_back(text):
    assert yaml.safe_load("top:\n  k: " + formats.yaml_block(text, 4)) == {"top": {"k": text}}


def test_yaml_block_prefers_a_literal_block():
    assert formats.yaml_block("a\n| where b", 2) == "|-\n  a\n  | where b"
    assert formats.yaml_block("one line", 2) == '"one line"'
    assert formats.yaml_block(" leading\nspace", 2) == '" leading\\nspace"'


@pytest.mark.parametrize("value, expected", [
    ("[x]", '"[[x]"'), ("[x] y", '"[x] y"'), ("x [y]", '"x [y]"'), (["[a]", {"k": "[b]"}], '["[[a]", {"k": "[[b]"}]')])
def test_arm_escapes_expressions(value, expected):
    assert formats.arm(value) == expected


def test_comment_cannot_end_the_comment():
    assert formats.comment("a\nDROP TABLE x\r\u2028b") == "a DROP TABLE x b"


def test_iso_duration_and_pascal():
    assert [formats.iso_duration(d) for d in ("5m", "1h", "14d")] == ["PT5M", "PT1H", "P14D"]
    assert formats.pascal("Command and Control") == "CommandAndControl"


def test_attack_tags():
    tactics, techniques = formats.attack(["attack.credential_access", "attack.t1110.001", "attack.t1110",
                                          "attack.s0002", "attack.g0016", "attack.stealth", "cve.2024-1"])
    assert [t["name"] for t in tactics] == ["Credential Access", "Stealth"]
    assert [(t["id"], t["parent"], t["sub"]) for t in techniques] == [("T1110", "T1110", False),
                                                                       ("T1110.001", "T1110", True)]
    assert techniques[0]["name"] == "Brute Force"


# --- the whole corpus, every target and format ------------------------------------------------------

@pytest.fixture(scope="module")
def corpus():
    """The corpus, loaded once for every target and format (loading is most of the time)."""
    return load_paths([corpus_path("rules")])


def entries(fmt, path: Path) -> int:
    """How many rules one output file holds, read the way its consumer reads it."""
    text = path.read_text(encoding="utf-8")
    if fmt.name == "sentinel_arm":
        return len(json.loads(text)["resources"])
    if fmt.name == "cloudformation":
        return len(yaml.safe_load(text)["Resources"])
    if fmt.name == "logpresso":
        return len(json.loads(text)["rules"])
    if fmt.name == "jsonl":
        return sum(1 for line in text.splitlines() if json.loads(line)["query"] is not None)
    if fmt.name == "sentinel":
        assert yaml.safe_load(text)["kind"] == "Scheduled"
    return 1


@pytest.mark.corpus
@pytest.mark.parametrize("target", sorted(backends.BACKENDS))
def test_corpus_every_format(corpus, tmp_path, target):
    """Each format writes one entry per convertible rule, files parse, and
    read = converted + unsupported + failed."""
    rules, errors = corpus
    records, excluded = batch.convert_all(backends.get(target)(), rules, errors)
    assert excluded == 0
    c = batch.counts(records)
    assert c["read"] == len({(r.path, r.doc) for r in records}) == c["converted"] + c["unsupported"] + c["failed"]
    assert c["converted"] > 4000
    assert not [e for r in records for e in r.errors if e.kind == "internal"]
    for name, fmt in formats.available(target).items():
        mine = [copy.copy(r) for r in records]
        for r in mine:
            r.errors = list(r.errors)
        batch.apply_limits(mine, fmt)
        out = tmp_path / name
        files = formats.Renderer(fmt, target, formats.parse_options(fmt, [])).files(mine)
        formats.write_all(out, files)
        converted = sum(r.result == "converted" for r in mine)
        assert sum(entries(fmt, p) for p in out.iterdir()) == converted, name
        assert len({n for n, _, _ in files}) == len(files)
        if fmt.layout.files == "rule":
            assert len(files) == converted
        m = batch.counts(mine)
        assert m["read"] == m["converted"] + m["unsupported"] + m["failed"] == c["read"]


@pytest.mark.corpus
def test_corpus_cli_report(tmp_path):
    """End to end through the command line: the report adds up and names every rule."""
    code = main(["convert", str(corpus_path("rules")), "-t", "athena", "-f", "sql", "-o", str(tmp_path / "out"),
                 "--report", str(tmp_path / "r.json"), "--junit", str(tmp_path / "j.xml"), "--fail-on", "never"])
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    s = report["summary"]
    assert s["read"] == s["converted"] + s["unsupported"] + s["failed"] == len(report["rules"])
    assert len(list((tmp_path / "out").iterdir())) == s["converted"]
    assert sum(bool(r["outputs"]) for r in report["rules"]) == s["converted"]
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert len(suite.findall("testcase")) == s["read"]
    assert int(suite.get("failures")) == s["failed"] and int(suite.get("skipped")) == s["unsupported"]


def test_filters_are_applied_and_hidden_base_rules_not_converted(tmp_path, capsys):
    d = tmp_path / "r"
    d.mkdir()
    (d / "rules.yml").write_text("""title: IAM User Created
id: 8f3a7b2c-1d4e-5f6a-9b0c-2e3d4f5a6b7c
logsource: {product: aws, service: cloudtrail}
detection: {selection: {eventName: CreateUser}, condition: selection}
---
title: Not by Terraform
logsource: {product: aws, service: cloudtrail}
filter:
  rules: [8f3a7b2c-1d4e-5f6a-9b0c-2e3d4f5a6b7c]
  selection: {userAgent|contains: terraform}
  condition: not selection
---
title: Many failed logins
logsource: {product: aws, service: cloudtrail}
correlation: {type: event_count, rules: [failed], group-by: [sourceIPAddress], timespan: 5m, condition: {gte: 3}}
---
title: Failed login
name: failed
logsource: {product: aws, service: cloudtrail}
detection: {selection: {eventName: ConsoleLogin, errorMessage: Failed authentication}, condition: selection}
""")
    code, report = report_of(tmp_path, d, "-t", "athena", "--fail-on", "never")
    rows = {r["doc"]: r for r in report["rules"]}
    assert rows[0]["result"] == rows[1]["result"] == "converted"     # the rule, and the filter applied to it
    out = capsys.readouterr().out
    assert out.count("SELECT *\nFROM") == 1                          # the filter has no query of its own
    assert rows[2]["result"] == "converted" and out.count("WITH selected AS") == 1   # the correlation
    assert "NOT COALESCE(lower(useragent) LIKE '%terraform%'" in out
    assert rows[3]["result"] == "unsupported" and "generate: false" in rows[3]["errors"][0]["message"]
    s = report["summary"]
    assert s["read"] == 4 == s["converted"] + s["unsupported"] + s["failed"]


# --- output files: modes, paths that cannot be written, names (issue 13) --------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_files_written_follow_the_umask(rules, tmp_path, monkeypatch, umask, mode):
    """Every file convert wrote was 0600 whatever the umask (mkstemp's mode, renamed as it was)."""
    monkeypatch.setattr(files, "_umask", lambda: umask)
    out = tmp_path / "out"
    run(rules, "-t", "kql", "-f", "sentinel", "-o", out, "--report", out / "r.json", "--junit", out / "j.xml")
    written = list(out.iterdir())
    assert len(written) > 3 and {p.name for p in written} >= {"r.json", "j.xml"}
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(mode)}
    (out / "r.json").chmod(0o604)                      # a file that exists keeps its mode
    run(rules, "-t", "kql", "--report", out / "r.json")
    assert oct((out / "r.json").stat().st_mode & 0o777) == oct(0o604)


@pytest.mark.parametrize("args, message", [
    (["-o", "{file}"], "-o {file}: is a file, not a folder"),
    (["-f", "jsonl", "-o", "{folder}/sub.jsonl/x.jsonl"], "-o {folder}/sub.jsonl/x.jsonl: {folder}/sub.jsonl is not a folder"),
    (["--report", "{folder}"], "--report {folder}: is a folder, not a regular file; name a file"),
    (["--junit", "{folder}"], "--junit {folder}: is a folder, not a regular file; name a file"),
    (["--report", "/dev/null"], "--report /dev/null: is a character device, not a regular file"),
    (["--junit", "{file}/j.xml"], "--junit {file}/j.xml: {file} is not a folder"),
])
def test_outputs_that_cannot_be_written_are_refused_first(rules, tmp_path, capsys, args, message):
    """These were tracebacks (FileExistsError, IsADirectoryError) after the whole conversion."""
    folder, file = tmp_path / "folder", tmp_path / "file"     # no extension: -o file.txt would name a file to write
    folder.mkdir()
    (folder / "sub.jsonl").write_text("x")
    file.write_text("keep me")
    argv = [a.format(folder=folder, file=file) for a in args]
    assert run(rules, "-t", "athena", *argv) == 2
    assert capsys.readouterr().err == f"error: {message.format(folder=folder, file=file)}\n"
    assert file.read_text() == "keep me" and sorted(p.name for p in folder.iterdir()) == ["sub.jsonl"]


@pytest.mark.parametrize("table, message", [
    (".", "'.': an empty name before or after a dot"), ("db.", "'db.': an empty name before or after a dot"),
    ("a..b", "'a..b': an empty name before or after a dot"), ("", "the table name is empty"), (" ", "the table name is empty"),
    ("a\x1bb", "'a\\\\x1bb': control characters in a table name"),
])
def test_bad_table_names_are_refused(rules, capsys, table, message):
    """--table . wrote FROM "".""; --table '' fell back to the default table."""
    with pytest.raises(SystemExit) as stop:
        run(rules, "-t", "duckdb", "--table", table)
    assert stop.value.code == 2 and f"argument --table: {message}" in capsys.readouterr().err


def test_file_names_that_fit():
    long = "x" * 300
    name = files.fitting_name(long, "yaml")
    assert len(name) == 150 and name.startswith("x" * 100) and name.endswith(".yaml")
    assert name == files.fitting_name(long, "yaml") != files.fitting_name(long + "y", "yaml")
    assert files.fitting_name("short", "sql") == "short.sql"
    wide = files.fitting_name("\u00e9" * 200, "json")          # cut between characters, in bytes
    assert len(os.fsencode(wide)) <= 150 and wide.startswith("\u00e9" * 60)


def test_duplicates_are_reported_and_their_siem_ids_explicit(rules, tmp_path, capsys):
    """same_id.yml repeats create_user.yml's id: convert said nothing, and which copy got which
    Sentinel id depended on path order, unseen. Now both are named, and the report says each
    rule's id (copies numbered in path order: uuid5(id), then uuid5(id#2))."""
    code, report = report_of(tmp_path, rules, "-t", "kql", "-f", "sentinel_arm", "-o", tmp_path / "o")
    err = capsys.readouterr().err
    first, second = str(rules / "create_user.yml"), str(rules / "same_id.yml")
    assert f"{second}: id: '{CREATE_USER_ID}' is also the id of {first}" in err
    assert "1 duplicate (id, title or file name)" in err.splitlines()[-1]
    assert report["summary"]["duplicates"] == 1
    assert [(d["path"], d["kind"]) for d in report["duplicates"]] == [(second, "duplicate")]
    guid = {row["path"]: row["guid"] for row in report["rules"]}
    assert guid[first] == str(uuid.uuid5(formats.NAMESPACE, CREATE_USER_ID))
    assert guid[second] == str(uuid.uuid5(formats.NAMESPACE, CREATE_USER_ID + "#2"))

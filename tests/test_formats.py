"""Import files that deploy as they are: CloudFormation split by bytes and resources, checked by
cfn-lint; Athena NamedQuery limits; Microsoft Sentinel's ATT&CK table and option bounds,
checked by a port of Azure-Sentinel's template validation (tests/sentinel_schema.py)."""
from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
import yaml

from transpiler import sentinel

import sentinel_schema
from conftest import corpus_path, missing_tool
from test_convert import ROOT, report_of, run, write_rule

SEEDS = ROOT / "rules"


@pytest.fixture(scope="module")
def cfn_errors():
    """cfn-lint's error matches (E rules) for a template file, as text."""
    try:
        from cfnlint.api import lint_file
    except ImportError:
        missing_tool("cfn-lint is not installed (pip install -e '.[test]')")

    def errors(path: Path) -> list[str]:
        return [f"{m.rule.id} {m.message}" for m in lint_file(Path(path)) if m.rule.id.startswith("E")]
    return errors


def long_rule(folder, name, values: int, width: int = 80):
    """A rule whose Athena query is about values * width bytes long."""
    pad = "x" * max(0, width - 40)
    items = "\n".join(f"      - 'arn:aws:iam::{n:012d}:role/{pad}{n:06d}'" for n in range(values))
    (folder / f"{name}.yml").write_text(
        f"title: {name}\nid: {uuid.uuid5(uuid.NAMESPACE_URL, name)}\nlevel: low\n"
        f"logsource: {{product: aws, service: cloudtrail}}\n"
        f"detection:\n  selection:\n    userIdentity.arn:\n{items}\n  condition: selection\n", encoding="utf-8")


# --- CloudFormation ---------------------------------------------------------------------------------

def test_cloudformation_splits_by_bytes(tmp_path, cfn_errors):
    """Five rules of about 240 KB each made one 1.2 MB template (cfn-lint E1002); now each file
    stays under CloudFormation's 1,000,000 bytes, and every rule is in one of them."""
    d = tmp_path / "rules"
    d.mkdir()
    for i in range(5):
        long_rule(d, f"long{i}", 3000)
    out = tmp_path / "cfn"
    assert run(d, "-t", "athena", "-f", "cloudformation", "-o", out) == 0
    files = sorted(out.iterdir())
    assert len(files) == 2
    names = []
    for f in files:
        assert f.stat().st_size <= 1_000_000
        names += [r["Properties"]["Name"] for r in yaml.safe_load(f.read_text())["Resources"].values()]
        assert cfn_errors(f) == []
    assert sorted(names) == [f"long{i}" for i in range(5)]


def test_cloudformation_max_bytes_for_deploy_without_s3(tmp_path, capsys):
    """-O max_bytes=51200: files `aws cloudformation deploy` takes without --s3-bucket; a rule
    that cannot fit alone is unsupported, with the reason."""
    d = tmp_path / "rules"
    d.mkdir()
    for i in range(40):
        write_rule(d, f"small{i:02d}", event=f"Event{i}", description="x" * 900)
    long_rule(d, "big", 800)
    code, report = report_of(tmp_path, d, "-t", "athena", "-f", "cloudformation", "-o", tmp_path / "cfn",
                             "-O", "max_bytes=51200")
    assert code == 0
    rows = {Path(r["path"]).stem: r for r in report["rules"]}
    assert rows["big"]["result"] == "unsupported" and rows["big"]["errors"][0]["kind"] == "too-long"
    assert "over max_bytes=51,200" in rows["big"]["errors"][0]["message"]
    assert "big.yml: cloudformation: a file holding only this rule is" in capsys.readouterr().err
    files = sorted((tmp_path / "cfn").iterdir())
    assert len(files) > 1 and all(f.stat().st_size <= 51_200 for f in files)
    held = sum(len(yaml.safe_load(f.read_text())["Resources"]) for f in files)
    assert held == 40 == report["summary"]["converted"]


def test_named_query_limits(tmp_path):
    """Name at most 128 characters, Description 1,024, QueryString 262,144 bytes (over: unsupported)."""
    d = tmp_path / "rules"
    d.mkdir()
    write_rule(d, "wordy", title="T" * 300, description="d" * 3000)
    long_rule(d, "huge", 3300)
    code, report = report_of(tmp_path, d, "-t", "athena", "-f", "cloudformation", "-o", tmp_path / "cfn")
    rows = {Path(r["path"]).stem: r for r in report["rules"]}
    assert rows["huge"]["result"] == "unsupported" and "262,144" in rows["huge"]["errors"][0]["message"]
    doc = yaml.safe_load(next((tmp_path / "cfn").iterdir()).read_text())
    (props,) = [r["Properties"] for r in doc["Resources"].values()]
    assert len(props["Name"]) == 128 and props["Name"].endswith("…")
    assert len(props["Description"]) == 1024


HOSTILE_TITLES = ['Quotes " and \' and: colons', "[Sigma] looks like [an expression]", "Line\nbreak\u2028and\ttab",
                  "Ünïcödé — dashes – and a star ★", "!Ref Database", "{a: b}", "- list item", "#not a comment"]


def test_cfn_lint_on_seed_and_hostile_rules(tmp_path, cfn_errors):
    d = tmp_path / "rules"
    d.mkdir()
    for i, title in enumerate(HOSTILE_TITLES):
        write_rule(d, f"h{i}", title=title, description=title + "\n" + title, event=f"Ev{i}")
    for seed in SEEDS.glob("*.yml"):
        (d / seed.name).write_text(seed.read_text(encoding="utf-8"), encoding="utf-8")
    for extra in ([], ["-O", "max_bytes=51200", "-O", "workgroup=my.work_group-1", "-O", "database=sigma"]):
        out = tmp_path / f"cfn{len(extra)}"
        assert run(d, "-t", "athena", "-f", "cloudformation", "-o", out, *extra) == 0
        (f,) = out.iterdir()
        titles = {r["Properties"]["Name"] for r in yaml.safe_load(f.read_text())["Resources"].values()}
        assert set(HOSTILE_TITLES) <= titles
        assert cfn_errors(f) == []


@pytest.mark.parametrize("fmt, option, message", [
    ("sentinel", "period=2d", "a period of 2 days or more needs a frequency of at least 1h"),
    ("sentinel_arm", "threshold=10001", "threshold must be between 0 and 10000"),
    ("sentinel", "threshold=-1", "threshold must be between 0 and 10000"),
    ("sentinel_arm", "suppression=25h", "suppression must be between 5m and 24h"),
    ("sentinel_arm", "suppression=2m", "suppression must be between 5m and 24h"),
    ("cloudformation", "workgroup=my group", "workgroup must be"),
    ("cloudformation", "database=", "database must be"),
    ("cloudformation", "max_bytes=1000001", "max_bytes must be between 1 and 1,000,000"),
])
def test_option_bounds(tmp_path, capsys, fmt, option, message):
    target = "athena" if fmt == "cloudformation" else "kql"
    d = tmp_path / "rules"
    d.mkdir()
    write_rule(d, "one")
    extra = ["-O", "frequency=30m"] if option == "period=2d" else []
    assert run(d, "-t", target, "-f", fmt, "-o", tmp_path / "out", "-O", option, *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- Logpresso: what is confirmed ------------------------------------------------------------------

def test_readme_lists_every_logpresso_function_and_field():
    """The README says how sure each function, command and CloudTrail field name the pipe-search
    queries use is: every one the golden queries and the mapping use is named there."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**What is Logpresso's, and what is this project's.**"):]
    section = section[:section.index("\n\n**", 10)]
    expected = yaml.safe_load((ROOT / "tests" / "cases" / "expected" / "pipesearch.yaml").read_text(encoding="utf-8"))
    queries = [re.sub(r'"(?:[^"\\]|\\.)*"', '""', q) for q in expected.values()    # string literals out
               if isinstance(q, str) and not q.startswith("UNSUPPORTED")]
    assert len(queries) > 100
    functions = {f for q in queries for f in re.findall(r"\b([a-z]+)\(", q)}
    commands = {c for q in queries for c in re.findall(r"^(?:\| )?([a-z]+) ", q, re.M)}
    assert {"lower", "match", "not", "valueof"} <= functions and {"table", "search"} <= commands
    missing = sorted(f"{f}()" for f in functions if f"`{f}()`" not in section)
    missing += sorted(c for c in commands if f"`{c}`" not in section)
    mapping = yaml.safe_load((ROOT / "templates" / "pipesearch" / "mappings" / "aws_cloudtrail.yml").read_text())
    columns = [v if isinstance(v, str) else v["column"] for v in mapping["fields"].values()]
    columns += list(mapping["json"].values()) + [a["column"] for a in mapping["arrays"].values()]
    missing += sorted(c for c in columns if f"`{c}`" not in section)
    assert missing == []


# --- Athena correlations ------------------------------------------------------------------------

def test_correlation_result_columns_keep_their_case(tmp_path, capsys):
    """Trino lower-cases unquoted aliases: every result column is quoted, named as the rule
    names the group-by field."""
    sqlglot = pytest.importorskip("sqlglot")
    d = tmp_path / "rules"
    d.mkdir()
    (d / "c.yml").write_text(
        "title: Failed login\nname: failed\nlogsource: {product: aws, service: cloudtrail}\n"
        "detection: {selection: {eventName: ConsoleLogin}, condition: selection}\n---\n"
        "title: Many failed logins\nlogsource: {product: aws, service: cloudtrail}\n"
        "correlation: {type: event_count, rules: [failed], group-by: [sourceIPAddress, userIdentity.arn], "
        "timespan: 5m, condition: {gte: 3}}\n")
    assert run(d, "-t", "athena") == 0
    query = capsys.readouterr().out.split("WITH selected AS", 1)[1]
    select = sqlglot.parse_one("WITH selected AS" + query, read="athena")
    aliases = [s.args["alias"] for s in select.selects]
    assert [a.name for a in aliases] == ["sourceIPAddress", "userIdentity.arn", "first_trigger", "last_trigger",
                                         "triggers"]
    assert all(a.quoted for a in aliases)


# --- Microsoft Sentinel ----------------------------------------------------------------------------

def test_sentinel_table_facts():
    """Spot checks of the table copied from Azure-Sentinel (the cases the issue names)."""
    names, homes = sentinel.table()
    assert len(names) == 16 and "PreAttack" not in names
    assert homes["T1098"] == ["Persistence"]
    assert homes["T1078"] == ["InitialAccess", "Persistence", "PrivilegeEscalation", "DefenseEvasion"]
    for unknown in ("T1654", "T1685", "T1686"):
        assert unknown not in homes


ATTACK_CASES = [
    # tags -> (tactics, techniques, words in the notes)
    (["attack.privilege-escalation", "attack.t1098"], ["Persistence", "PrivilegeEscalation"], ["T1098"],
     ["tactic Persistence added for T1098"]),
    (["attack.discovery", "attack.t1654", "attack.t1087.004"], ["Discovery"], ["T1087.004"],
     ["technique T1654 left out"]),
    (["attack.stealth", "attack.t1685.002"], ["DefenseEvasion"], [], ["technique T1685.002 left out"]),
    (["attack.initial-access", "attack.t1078.004"],
     ["InitialAccess", "Persistence", "PrivilegeEscalation", "DefenseEvasion"], ["T1078.004"],
     ["tactic Persistence, PrivilegeEscalation, DefenseEvasion added for T1078.004"]),
    (["attack.persistence", "attack.t1136.003"], ["Persistence"], ["T1136.003"], []),
]


@pytest.mark.parametrize("tags, tactics, techniques, notes", ATTACK_CASES)
def test_sentinel_attack(tmp_path, capsys, tags, tactics, techniques, notes):
    """YAML and ARM both get the tactics and techniques Sentinel accepts, pass the port of its
    validation (both versions of the tactic check), and say what changed (stderr, report)."""
    d = tmp_path / "rules"
    d.mkdir()
    write_rule(d, "r", tags=tags)
    for fmt in ("sentinel", "sentinel_arm"):
        code, report = report_of(tmp_path, d, "-t", "kql", "-f", fmt, "-o", tmp_path / fmt)
        assert code == 0
        (f,) = (tmp_path / fmt).iterdir()
        if fmt == "sentinel":
            doc = yaml.safe_load(f.read_text())
            assert (doc["tactics"], doc["relevantTechniques"]) == (tactics, techniques)
            for mode in ("any", "all"):
                assert sentinel_schema.problems(doc, mode) == []
        else:
            (res,) = json.loads(f.read_text())["resources"]
            p = res["properties"]
            assert (p["tactics"], p["techniques"]) == (tactics, sorted({t.split(".")[0] for t in techniques}))
            for mode in ("any", "all"):
                assert sentinel_schema.arm_problems(p, mode) == []
        (row,) = report["rules"]
        assert len(row["notes"]) == len(notes) and all(n in got for n, got in zip(notes, row["notes"]))
        err = capsys.readouterr().err
        assert all(f"r.yml: note: {n}" in err for n in notes)


def test_sentinel_schema_port_refuses_what_sentinel_refuses():
    """The port can fail: each bad field of a good rule gives its problem."""
    good = {"id": "6b7f0e2a-0a50-4a35-9c4b-6c1f1f2d7a01", "name": "n", "description": "d", "severity": "Medium",
            "requiredDataConnectors": [{"connectorId": "AWS", "dataTypes": ["AWSCloudTrail"]}],
            "queryFrequency": "1h", "queryPeriod": "1h", "triggerOperator": "gt", "triggerThreshold": 0,
            "tactics": ["Persistence"], "relevantTechniques": ["T1098"], "query": "AWSCloudTrail",
            "version": "1.0.0", "kind": "Scheduled"}
    assert sentinel_schema.problems(good) == []
    bad = [({"tactics": ["PrivilegeEscalation"]}, "No valid tactic corresponding to the technique T1098"),
           ({"relevantTechniques": ["T1654"]}, "technique T1654"), ({"tactics": ["Stealth"]}, "unknown tactic"),
           ({"queryPeriod": "2d", "queryFrequency": "30m"}, "2 days or more"), ({"triggerThreshold": 10001}, "0 to 10000"),
           ({"queryFrequency": "2h"}, "at least queryFrequency"), ({"queryPeriod": "15d"}, "between 5 minutes"),
           ({"severity": "Critical"}, "severity"), ({"query": "x" * 10001}, "10000 characters"),
           ({"version": "1.0"}, "X.Y.Z"), ({"id": "nope"}, "GUID"), ({"name": "n" * 257}, "256"),
           ({"requiredDataConnectors": [{"connectorId": "Nope", "dataTypes": []}]}, "valid connector"),
           ({"entityMappings": [{"entityType": "Account", "fieldMappings": [
               {"identifier": "Nope", "columnName": "x"}]}]}, "invalid identifier")]
    for change, words in bad:
        found = sentinel_schema.problems({**good, **change})
        assert any(words in p for p in found), (change, found)
    all_only = {**good, "tactics": ["InitialAccess"], "relevantTechniques": ["T1078"]}
    assert sentinel_schema.problems(all_only, "any") == [] and sentinel_schema.problems(all_only, "all")


# --- the whole corpus --------------------------------------------------------------------------------

@pytest.mark.corpus
def test_corpus_sentinel_files_pass_sentinel_validation(tmp_path_factory):
    """Every converted rule of every corpus, YAML and ARM, passes the port of Azure-Sentinel's
    checks, in both versions of its tactic check."""
    out = tmp_path_factory.mktemp("sentinel")
    rules = corpus_path("rules")
    problems = {}
    for fmt in ("sentinel", "sentinel_arm"):
        assert run(rules, "-t", "kql", "-f", fmt, "-o", out / fmt, "--fail-on", "never", "--no-progress") == 0
        for f in sorted((out / fmt).iterdir()):
            if fmt == "sentinel":
                doc = yaml.load(f.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
                docs = [sentinel_schema.problems(doc, m) for m in ("any", "all")]
            else:
                docs = [sentinel_schema.arm_problems(r["properties"], m)
                        for r in json.loads(f.read_text())["resources"] for m in ("any", "all")]
            found = [p for d in docs for p in d]
            if found:
                problems[f.name] = found
    assert len(list((out / "sentinel").iterdir())) > 4000
    assert problems == {}


@pytest.mark.corpus
@pytest.mark.slow
def test_corpus_cloudformation_cfn_lint(tmp_path, cfn_errors):
    """cfn-lint finds no error in the CloudFormation templates of the whole corpus (about 50 s)."""
    out = tmp_path / "cfn"
    assert run(corpus_path("rules"), "-t", "athena", "-f", "cloudformation", "-o", out, "--fail-on", "never",
               "--no-progress") == 0
    files = sorted(out.iterdir())
    assert len(files) >= 5
    found = {f.name: cfn_errors(f) for f in files}
    assert {k: v for k, v in found.items() if v} == {}
    assert all(f.stat().st_size <= 1_000_000 for f in files)

"""Rule analysis (transpiler/analysis.py) and `sigma-transpile explain`."""
import json
from pathlib import Path

import pytest

from transpiler.analysis import NO_VALUE, Corpus, analyze, attack, events, render_text
from transpiler.cli import main
from transpiler.rule import load_file, load_rule

ROOT = Path(__file__).resolve().parent.parent


def seed_path(name: str) -> Path:
    """A seed rule (shared/seeds/catalog-page-*.txt), as shipped in rules/."""
    return ROOT / "rules" / name


def seed(name: str):
    rules, errors = load_file(seed_path(name))
    assert not errors and len(rules) == 1
    return rules[0]


USER_CREATED = "aws_iam_user_created.yml"
ACCESS_KEY = "aws_iam_access_key_creation_attempt.yml"


def preds(stage):
    return [(p["field"], p["kind"], p["value"]) for p in stage.predicates]


def test_seed_user_created():
    a = analyze(seed(USER_CREATED))
    assert [(s.index, s.name) for s in a.stages] == [(0, "condition"), (1, "selection"), (2, "not filter")]
    assert a.stages[0].source == "selection and not filter"
    assert preds(a.stages[1]) == [("eventSource", "eq", "iam.amazonaws.com"), ("eventName", "eq", "CreateUser")]
    assert preds(a.stages[2]) == [("errorCode", "is_not_null", "")]
    assert a.stages[2].source == "filter:\n    errorCode|exists: true"
    assert [(r.field, r.kind, r.values) for r in a.exclusions] == [("errorCode", "is_not_null", [NO_VALUE])]
    assert a.exclusions[0].stage == "not filter"
    assert [(i.field, i.kind, i.value) for i in a.indicators] == [
        ("eventName", "eq", "CreateUser"), ("eventSource", "eq", "iam.amazonaws.com")]
    assert all(i.corpus is None for i in a.indicators)          # no corpus given
    assert [(e.provider, e.event) for e in a.events] == [("AWS-iam", "CreateUser")]
    assert [(t.name, t.techniques) for t in a.attack] == [
        ("Persistence", [{"id": "T1136.003", "name": "Create Account: Cloud Account"}])]


def test_seed_access_key_creation_attempt():
    a = analyze(seed(ACCESS_KEY))
    assert [(s.index, s.name) for s in a.stages] == [(0, "condition"), (1, "selection")]
    assert preds(a.stages[1]) == [("eventSource", "eq", "iam.amazonaws.com"), ("eventName", "eq", "CreateAccessKey"),
                                  ("errorCode", "eq", "AccessDenied")]
    assert a.exclusions == []
    assert [(i.field, i.kind, i.value) for i in a.indicators] == [
        ("errorCode", "eq", "AccessDenied"), ("eventName", "eq", "CreateAccessKey"),
        ("eventSource", "eq", "iam.amazonaws.com")]
    assert [(e.provider, e.event) for e in a.events] == [("AWS-iam", "CreateAccessKey")]
    assert [(t.id, [x["id"] for x in t.techniques]) for t in a.attack] == [("TA0003", ["T1098.001"])]


def rule(detection: str, tags="", logsource="{product: aws, service: cloudtrail}", title="t", rid=None):
    text = f"title: {title}\n" + (f"id: {rid}\n" if rid else "") + f"logsource: {logsource}\n"
    if tags:
        text += f"tags: {tags}\n"
    return load_rule(text + "detection:\n" + "\n".join("    " + line for line in detection.strip().splitlines()))


def test_corpus_counts_other_rules_only():
    user, key = seed(USER_CREATED), seed(ACCESS_KEY)
    other = rule("sel: {eventSource: IAM.amazonaws.com, eventName: DeleteUser}\ncondition: sel",
                 rid="4a6b8c0d-2e3f-5a7b-9c1d-3e4f5a6b7c8e")
    corpus = Corpus([user, key, other])
    counts = {(i.field, i.value): i.corpus for i in analyze(user, corpus).indicators}
    # iam.amazonaws.com: the two others (case-insensitive, as the evaluator compares);
    # CreateUser: nobody else, the rule itself is not counted.
    assert counts == {("eventName", "CreateUser"): 0, ("eventSource", "iam.amazonaws.com"): 2}


def test_same_action():
    user = seed(USER_CREATED)
    twin = rule("sel: {eventSource: iam.amazonaws.com, eventName: CreateUser, errorCode: AccessDenied}\n"
                "condition: sel", title="Twin", rid="00000000-0000-0000-0000-000000000001")
    unnamed = rule("sel: {eventName: createuser}\ncondition: sel", title="No provider",   # provider unknown: same
                   rid="00000000-0000-0000-0000-000000000002")
    elsewhere = rule("sel: {eventSource: sts.amazonaws.com, eventName: CreateUser}\ncondition: sel", title="STS",
                     rid="00000000-0000-0000-0000-000000000003")
    a = analyze(user, Corpus([user, twin, unnamed, elsewhere]))
    assert [r["title"] for r in a.same_action] == ["No provider", "Twin"]
    assert a.same_action[1]["events"] == ["AWS-iam CreateUser"]


def test_stages_follow_the_condition():
    r = rule("""
sel: {eventName: A}
filter_a: {userAgent|contains: terraform}
filter_b: {errorCode: null}
_private: {x: 1}
condition: sel and not 1 of filter_*
""")
    a = analyze(r)
    assert [s.name for s in a.stages] == ["condition", "sel", "not filter_a", "not filter_b"]
    # `not 1 of filter_*` is NOT(a OR b): one top-level NOT, both filters' predicates excluded
    assert [(x.field, x.kind, x.values) for x in a.exclusions] == [
        ("userAgent", "contains", ["terraform"]), ("errorCode", "is_null", [NO_VALUE])]
    assert [(i.field, i.value) for i in a.indicators] == [("eventName", "A")]


def test_double_negation_is_positive_and_them_skips_private():
    r = rule("""
a: {eventName: A}
b: {eventName: B}
_c: {eventName: C}
condition: not (a and not b) or all of them
""")
    a = analyze(r)
    assert [s.name for s in a.stages] == ["condition", "not a", "b", "a"]
    assert [i.value for i in a.indicators] == ["A", "B"]          # A via `all of them`, B under two NOTs
    assert a.exclusions == []                                       # the top level is an OR


def test_predicate_tree_and_kinds():
    r = rule("""
sel:
    - {eventName|startswith: Get, userIdentity.type|cased: Root}
    - {sourceIPAddress|cidr: 10.0.0.0/8}
kw: ['evil*cmd?']
condition: sel and kw
""")
    a = analyze(r)
    tree = a.stages[1].tree
    assert list(tree[0]) == ["any"] and [list(n) for n in tree[0]["any"]] == [["all"], ["field", "kind", "value", "cased"]]
    text = render_text(a)
    assert "      eventName startswith Get\n" in text
    assert "      userIdentity.type eq, cased Root\n" in text
    assert "    sourceIPAddress cidr 10.0.0.0/8\n" in text
    kinds = {(i.field, i.kind, i.value) for i in a.indicators}
    assert ("(keyword)", "glob", "*evil*cmd?*") in kinds


def test_events_per_branch_not_a_cross_product():
    r = rule("""
iam: {eventSource: iam.amazonaws.com, eventName: [CreateUser, DeleteUser]}
s3: {eventSource: s3.amazonaws.com, eventName: PutBucketPolicy}
condition: iam or s3
""")
    assert [(e.provider, e.event) for e in events(r)] == [
        ("AWS-iam", "CreateUser"), ("AWS-iam", "DeleteUser"), ("AWS-s3", "PutBucketPolicy")]
    negated = rule("sel: {eventName: A}\nnot_this: {eventName: B}\ncondition: sel and not not_this")
    assert [e.event for e in events(negated)] == ["A"]
    windows = rule("sel: {EventID: [4720, 4726]}\ncondition: sel", logsource="{product: windows, service: security}")
    assert [(e.provider, e.event) for e in events(windows)] == [("Windows", "4720"), ("Windows", "4726")]
    assert events(rule("sel: {Image|endswith: x.exe}\ncondition: sel", logsource="{product: linux}")) == []


def test_attack_tags():
    tactics, others = attack(["attack.defense_evasion", "attack.t1562.008", "attack.T1078", "attack.g0016",
                              "attack.t9999", "cve.2021-44228"])
    rows = {t.shortname: [x["id"] for x in t.techniques] for t in tactics}
    assert rows["defense-evasion"] == ["T1562.008", "T1078"]       # under the tagged tactic only
    assert "persistence" not in rows                                 # T1078 is also persistence, not tagged
    assert rows["unknown"] == ["T9999"]
    assert [t.shortname for t in tactics][-1] == "unknown"
    assert others == ["attack.g0016"]
    newer, _ = attack(["attack.stealth", "attack.defense-impairment", "attack.t1685"])   # ATT&CK v19 tags
    assert [(t.id, t.name, [x["id"] for x in t.techniques]) for t in newer] == [
        ("", "Defense Impairment", []), ("", "Stealth", []), ("", "Technique not in the ATT&CK table", ["T1685"])]
    alone, _ = attack(["attack.t1136.003"])                          # no tactic tagged: the technique's own
    assert [(t.name, t.id) for t in alone] == [("Persistence", "TA0003")]


def test_explain_cli_text(capsys, tmp_path):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    for name in (USER_CREATED, ACCESS_KEY):
        (catalog / name).write_text(seed_path(name).read_text())
    assert main(["explain", str(seed_path(USER_CREATED)), "--catalog", str(catalog)]) == 0
    out = capsys.readouterr().out
    assert """
Stages
  Stage 0: condition
    selection and not filter
  Stage 1: selection
    eventSource eq iam.amazonaws.com
    eventName eq CreateUser
  Stage 2: not filter
    errorCode is_not_null

Exclusions
  field      kind         excluded values         from
  errorCode  is_not_null  (no value, null check)  not filter

Indicators
  field        kind  value              corpus
  eventName    eq    CreateUser         0
  eventSource  eq    iam.amazonaws.com  1

Event coverage
  provider  event
  AWS-iam   CreateUser

ATT&CK
  tactic                techniques
  Persistence (TA0003)  T1136.003 Create Account: Cloud Account
""" in out


def test_explain_cli_json(capsys):
    assert main(["explain", str(seed_path(ACCESS_KEY)), "--format", "json"]) == 0
    [a] = json.loads(capsys.readouterr().out)
    assert a["title"] == "IAM Access Key Creation Attempt"
    assert [s["name"] for s in a["stages"]] == ["condition", "selection"]
    assert a["exclusions"] == []
    assert {(i["field"], i["kind"], i["value"]) for i in a["indicators"]} == {
        ("errorCode", "eq", "AccessDenied"), ("eventName", "eq", "CreateAccessKey"),
        ("eventSource", "eq", "iam.amazonaws.com")}
    assert a["events"] == [{"provider": "AWS-iam", "event": "CreateAccessKey"}]
    assert a["attack"][0]["techniques"] == [{"id": "T1098.001", "name": "Account Manipulation: Additional Cloud Credentials"}]


def test_explain_is_deterministic(capsys):
    args = ["explain", str(seed_path(USER_CREATED)), str(seed_path(ACCESS_KEY)), "--format", "json"]
    main(args)
    first = capsys.readouterr().out
    main(args)
    assert capsys.readouterr().out == first


@pytest.mark.corpus
def test_every_corpus_rule_analyses():
    from conftest import corpus_path
    from transpiler.rule import load_paths
    rules, _ = load_paths([corpus_path("rules")])
    corpus = Corpus(rules)
    for r in corpus.rules:
        a = analyze(r, corpus)
        assert a.stages[0].name == "condition" and len(a.stages) > 1, r.label
        json.dumps(a.as_dict())

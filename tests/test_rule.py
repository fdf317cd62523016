"""Loading rule files: documents, metadata checks, errors that name file and key."""
import os

import pytest

from transpiler.nodes import Match, Op
from transpiler.rule import duplicates, find_rule_files, load_file, load_paths, load_rule, load_text

GOOD = """
title: IAM User Created
id: 8f3a7b2c-1d4e-5f6a-9b0c-2e3d4f5a6b7c
status: test
level: high
date: 2026-05-03
tags: [attack.persistence, attack.t1136.003]
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {eventName: CreateUser}
    condition: selection
"""


def test_good_rule():
    rule = load_rule(GOOD)
    assert rule.kind == "rule" and rule.title == "IAM User Created" and rule.level == "high"
    assert rule.query == Match("eventName", Op.EQ, "CreateUser")
    assert rule.meta["date"] == "2026-05-03"          # YAML dates become text
    assert rule.logsource == {"product": "aws", "service": "cloudtrail"}


def test_multi_document_with_correlation_and_filter(tmp_path):
    f = tmp_path / "multi.yml"
    f.write_text(GOOD + """
---
title: Many users
correlation: {type: event_count, rules: [8f3a7b2c-1d4e-5f6a-9b0c-2e3d4f5a6b7c], group-by: [x], timespan: 1h,
              condition: {gte: 5}}
---
title: Not the admins
logsource: {product: aws, service: cloudtrail}
filter:
    rules: [8f3a7b2c-1d4e-5f6a-9b0c-2e3d4f5a6b7c]
    selection: {userIdentity.userName: admin}
    condition: not selection
""")
    rules, errors = load_file(f)
    assert errors == []
    assert [r.kind for r in rules] == ["rule", "correlation", "filter"]
    assert rules[1].body["type"] == "event_count"
    assert rules[2].body["rules"] == ["8f3a7b2c-1d4e-5f6a-9b0c-2e3d4f5a6b7c"]
    assert rules[2].label.endswith("multi.yml#2")


BAD = [
    # (yaml, kind, where, message fragment)
    ("title: x\nlogsource: {}\ndetection: {sel: {a: 1}, condition: sel and}", "syntax", "detection.condition", "found the end"),
    ("title: x\nlogsource: {}\ndetection: {sel: {a: 1}, condition: [sel, sle]}", "unknown-identifier",
     "detection.condition[1]", "did you mean 'sel'"),
    ("title: x\nlogsource: {}\ndetection: {sel: {a|nope: 1}, condition: sel}", "modifier", "detection.sel.a|nope", "nope"),
    ("logsource: {}\ndetection: {sel: {a: 1}, condition: sel}", "metadata", "title", "title"),
    ("title: x\nlevel: severe\nlogsource: {}\ndetection: {sel: {a: 1}, condition: sel}", "metadata", "level", "severe"),
    ("title: x\nstatus: done\nlogsource: {}\ndetection: {sel: {a: 1}, condition: sel}", "metadata", "status", "done"),
    ("title: x\nid: 42\nlogsource: {}\ndetection: {sel: {a: 1}, condition: sel}", "metadata", "id", "UUID"),
    ("title: x\ndetection: {sel: {a: 1}, condition: sel}", "structure", "logsource", "logsource"),
    ("title: x\nlogsource: {}", "structure", "detection", "detection"),
    ("title: x\nlogsource: {}\ndetection: [1]", "structure", "detection", "not a map"),
    ("- just\n- a list", "structure", None, "YAML map"),
    ("title: [unclosed", "yaml", None, "invalid YAML: line 2 col 1"),
]


@pytest.mark.parametrize("text,kind,where,fragment", BAD)
def test_errors(text, kind, where, fragment):
    rules, errors = load_text(text, "r.yml")
    assert rules == []
    assert errors[0].kind == kind, str(errors[0])
    assert errors[0].where == where
    assert fragment in errors[0].message
    assert str(errors[0]).startswith("r.yml: ")


def test_every_problem_of_a_rule_is_reported():
    text = "title: x\nlevel: bad\nlogsource: {}\ndetection: {a: {f|nope: 1}, b: {g|lt: x}, condition: a and c}"
    _, errors = load_text(text, "r.yml")
    assert [e.where for e in errors] == ["level", "detection.a.f|nope", "detection.b.g|lt", "detection.condition"]
    assert "unknown search identifier 'c'" in errors[-1].message   # broken a/b are not "unknown"


def test_broken_selection_is_not_called_unknown():
    _, errors = load_text("title: x\nlogsource: {}\ndetection: {a: {f|nope: 1}, condition: a}", "r.yml")
    assert len(errors) == 1 and errors[0].kind == "modifier"


def test_binary_and_non_utf8_files(tmp_path):
    (tmp_path / "bin.yml").write_bytes(b"\x00\x01\x02title")
    (tmp_path / "latin.yml").write_bytes("title: caf\xe9".encode("latin-1"))
    (tmp_path / "good.yml").write_text(GOOD)
    rules, errors = load_paths([tmp_path])
    assert len(rules) == 1
    assert sorted(e.message.split(",")[0] for e in errors) == ["binary file", "not UTF-8 text (byte 10)"]


def test_a_bad_document_keeps_the_good_ones(tmp_path):
    f = tmp_path / "two.yml"
    f.write_text(GOOD + "\n---\ntitle: broken\nlogsource: {}\ndetection: {condition: x}\n")
    rules, errors = load_file(f)
    assert len(rules) == 1 and len(errors) == 1 and errors[0].path.endswith("two.yml#1")


def test_folders_are_read_recursively_and_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.yaml").write_text(GOOD)
    (tmp_path / "a.yml").write_text(GOOD)
    (tmp_path / "notes.txt").write_text("not a rule")
    rules, errors = load_paths([tmp_path])
    assert [r.path.split("/")[-1] for r in rules] == ["a.yml", "z.yaml"] and not errors


# --- files and folders, duplicates (issue 13) ----------------------------------------------------

ONE = "title: {title}\n{id}logsource: {{product: test}}\ndetection: {{sel: {{x: 1}}, condition: sel}}\n"


def test_only_regular_files_are_read(tmp_path):
    os.mkfifo(tmp_path / "pipe.yml")
    with open(tmp_path / "sparse.yml", "wb") as f:
        f.truncate(2**40)                     # a terabyte, of which nothing is read
    for path, why in ((tmp_path / "pipe.yml", "cannot read: a named pipe (FIFO), not a regular file"),
                      ("/dev/zero", "cannot read: a character device, not a regular file"),
                      (tmp_path / "sparse.yml", "file is larger than 10 MiB"),
                      (tmp_path / "gone.yml", "cannot read: No such file or directory")):
        rules, errors = load_file(path)
        assert rules == [] and [e.message for e in errors] == [why]


def test_rule_files_leave_rule_tests_out_and_name_empty_folders(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "a.yml").write_text(ONE.format(title="a", id=""))
    (tmp_path / "r" / "a.tests.yml").write_text("tests: []\n")
    (tmp_path / "only_tests").mkdir()
    (tmp_path / "only_tests" / "b.tests.yaml").write_text("tests: []\n")
    found, errors = find_rule_files([tmp_path / "r", tmp_path / "only_tests", tmp_path / "r" / "a.tests.yml"])
    assert found == [str(tmp_path / "r" / "a.yml")]
    assert [(e.path, e.kind, e.message) for e in errors] == [
        (str(tmp_path / "only_tests"), "empty", "no rule files (.yml, .yaml) in this folder or below")]


def test_duplicates_name_both_files(tmp_path):
    same = "8f3a7b2c-1d4e-5f6a-9b0c-2e3d4f5a6b7c"
    for folder, name, title, rule_id in (("a", "x.yml", "One", f"id: {same}\n"), ("b", "x.yml", "Two", ""),
                                         ("b", "y.yml", "' one'", f"id: {same.upper()}\n"),
                                         ("b", "z.yml", "Three", "")):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_text(ONE.format(title=title, id=rule_id))
    rules, errors = load_paths([tmp_path])
    a, bx, by = (str(tmp_path / p) for p in ("a/x.yml", "b/x.yml", "b/y.yml"))
    assert [(e.path, e.where, e.kind, e.message) for e in duplicates(rules)] == [
        (bx, None, "duplicate", f"the file name 'x.yml' is also used by {a}"),
        (by, "id", "duplicate", f"'8F3A7B2C-1D4E-5F6A-9B0C-2E3D4F5A6B7C' is also the id of {a}"),
        (by, "title", "duplicate", f"' one' is also the title of {a}")]


def test_rule_files_are_found_once_however_they_are_named(tmp_path, monkeypatch):
    (tmp_path / "r" / "sub").mkdir(parents=True)
    for name in ("r/a.yml", "r/sub/b.yml"):
        (tmp_path / name).write_text(ONE.format(title=name, id=""))
    monkeypatch.chdir(tmp_path / "r")
    found, errors = find_rule_files([".", "a.yml", "./sub/", "sub//b.yml", str(tmp_path / "r")])
    # the absolute name is the same folder, read once already
    assert (found, errors) == (["a.yml", "sub/b.yml"], [])

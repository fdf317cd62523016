"""The command line as sigma-cli users expect it: --version, `list targets|formats|mappings`,
mappings named in --help and in errors, help text for every --format, queries on stdout that
say which rule they came from (in a comment no title can break), query files with the target's
extension, and `-o out.kql` as one file."""
from __future__ import annotations

import argparse

import pytest

from transpiler import backends, formats
from transpiler.cli import _parser, main

from test_convert import run, write_rule

HOSTILE = 'Evil\nDROP TABLE t; -- x\r\u2028*/ ]|" \u2223\u201c\x1b[31m red // # [ end'


@pytest.fixture
def rules(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    write_rule(d, "plain", title="IAM User Created")
    write_rule(d, "hostile", title=HOSTILE, event="DeleteUser")
    return d


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("sigma-transpile ") and "sigma-transpiler" in out


def test_list(capsys):
    assert main(["list", "targets"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == sorted(backends.BACKENDS)
    assert any(line.split()[1] == ".kql" for line in out)
    assert main(["list", "formats"]) == 0
    out = capsys.readouterr().out
    for target in backends.BACKENDS:
        for name, fmt in formats.available(target).items():
            assert f"{name} " in out and fmt.about in out
    assert "max_bytes=1000000" in out and "not a Logpresso import format" in out
    assert main(["list", "mappings"]) == 0
    out = capsys.readouterr().out
    assert "security-lake   with -m security-lake" in out and "table AWSCloudTrail" in out


def test_mappings_in_help_and_in_the_error_for_a_wrong_name(rules, capsys):
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    assert "security-lake" in capsys.readouterr().out
    assert run(rules, "-t", "athena", "-m", "securitylake") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "-m securitylake" in err[0] and "security-lake" in err[0]
    assert run(rules, "-t", "athena", "-m", "security-lake", "--table", "lake") == 0


def test_every_format_option_has_help():
    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    found = 0
    for name, sub in commands.items():
        for action in sub._actions:
            if "--format" in action.option_strings:
                assert action.help, f"{name} --format has no help text"
                found += 1
    assert found >= 5


def blocks(text: str) -> list[str]:
    return [b for b in text.split("\n\n") if b.strip()]


@pytest.mark.parametrize("target", sorted(backends.BACKENDS))
def test_stdout_names_each_rule_in_a_comment(rules, tmp_path, capsys, target):
    """Each query on stdout comes with a comment naming its rule; the comment is one line in the
    target's syntax, whatever the title holds, and the query itself is unchanged."""
    assert run(rules, "-t", target, "-o", tmp_path / "files") == 0
    plain = {p.stem: p.read_text().rstrip("\n") for p in (tmp_path / "files").iterdir()}
    capsys.readouterr()
    assert run(rules, "-t", target) == 0
    out = blocks(capsys.readouterr().out)
    assert len(out) == 2
    q = formats.query_text(target)
    for block, stem in zip(out, sorted(plain)):
        lines = block.split("\n")
        comment, query = (lines[-1], "\n".join(lines[:-1])) if q.after else (lines[0], "\n".join(lines[1:]))
        assert query == plain[stem]
        assert f"{stem}.yml: " in comment
        prefix, suffix = q.comment.split("{}")
        assert comment.startswith(prefix) and comment.endswith(suffix)
        inner = comment[len(prefix):len(comment) - len(suffix)]
        assert "\x1b" not in inner and "\r" not in inner and "\u2028" not in inner
        if target == "pipesearch":
            assert not set(inner) & set('|[]"\u2223\u201c')


def test_comments_parse_as_comments(rules, capsys):
    """Athena: sqlglot reads the same query with and without the comment. KQL: Microsoft's
    analyzer finds no error and the same string tokens."""
    sqlglot = pytest.importorskip("sqlglot")
    from test_kql import cloudtrail_columns, kusto
    for target in ("athena", "kql"):
        assert run(rules, "-t", target) == 0
        out = blocks(capsys.readouterr().out)
        plain = ["\n".join(b.split("\n")[1:]) for b in out]
        if target == "athena":
            for labelled, bare in zip(out, plain):
                assert sqlglot.parse_one(labelled, read="athena").sql(comments=False) == \
                    sqlglot.parse_one(bare, read="athena").sql(comments=False)
        else:
            columns = [list(c) for c in cloudtrail_columns()]
            got = kusto({"queries": [{"id": str(n), "query": q, "table": "AWSCloudTrail", "columns": columns}
                                     for n, q in enumerate(out)], "strings": out + plain})
            assert all(not [d for d in diags if d["severity"] == "Error"] for diags in got["queries"].values())
            assert got["strings"][:len(out)] == got["strings"][len(out):]


@pytest.mark.parametrize("target, extension", [("athena", "sql"), ("duckdb", "sql"), ("kql", "kql"),
                                                ("pipesearch", "txt")])
def test_query_files_get_the_target_extension(rules, tmp_path, target, extension):
    assert run(rules, "-t", target, "-o", tmp_path / "out") == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"hostile.{extension}", f"plain.{extension}"]


def test_o_with_an_extension_is_one_file(rules, tmp_path, capsys):
    """`-o out.kql` writes one file holding what stdout would show, as sigma-cli does; an
    existing folder stays a folder."""
    assert run(rules, "-t", "kql") == 0
    shown = capsys.readouterr().out
    assert run(rules, "-t", "kql", "-o", tmp_path / "out.kql", "--report", tmp_path / "r.json") == 0
    assert (tmp_path / "out.kql").is_file() and (tmp_path / "out.kql").read_text() == shown
    assert "1 file written" in capsys.readouterr().err
    (tmp_path / "dir.kql").mkdir()
    assert run(rules, "-t", "kql", "-o", tmp_path / "dir.kql") == 0
    assert len(list((tmp_path / "dir.kql").iterdir())) == 2
    assert run(rules, "-t", "kql", "-o", tmp_path / "folder") == 0
    assert (tmp_path / "folder").is_dir()


@pytest.mark.parametrize("command", [
    ["convert", "-t", "kql", "{rules}", "--report", "{out}/r.json", "--junit", "{out}/j.xml"],
    ["test", "{rules}", "--report", "{out}/r.json", "--junit", "{out}/j.xml", "--fail-on", "never"],
    ["hunt", "{rules}", "--logs", "{logs}", "-o", "{out}/h.txt"],
])
def test_output_files_in_a_missing_folder_are_written(rules, tmp_path, capsys, command):
    """A folder that does not exist yet is made, as convert's -o does: hunt -o failed after all
    its work with the temporary file's name ("No such file or directory")."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.json").write_text('{"Records": [{"eventName": "CreateUser", "eventID": "1"}]}')
    out = tmp_path / "missing" / "deeper"
    main([a.format(rules=rules, logs=logs, out=out) for a in command] + ["--no-progress"])
    assert sorted(p.name for p in out.iterdir()) == sorted(a.rsplit("/", 1)[1] for a in command if "{out}" in a)

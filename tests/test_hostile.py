"""Hostile and malformed rule files: each gets a clear per-rule error within bounded time and
memory, with no traceback, and the rest of the batch is still converted.

The bounds are enforced by the operating system (a 1 GiB address-space limit and a 10 s
timeout on the child process), not by timing assertions."""
import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

HOSTILE = Path(__file__).resolve().parent / "hostile"
GOOD = "title: good\nlogsource: {product: test}\ndetection: {sel: {x: 1}, condition: sel}\n"


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))


def run_cli(*args):
    done = subprocess.run([sys.executable, "-m", "transpiler", *map(str, args)], capture_output=True,
                          text=True, timeout=10, preexec_fn=_limit_memory)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def generated(tmp_path):
    """The hostile samples too big to keep in the repository, made on the fly."""
    deep = "(sel and (sel or " * 1500 + "sel" + "))" * 1500    # alternating: And/Or cannot flatten
    (tmp_path / "deep_condition.yml").write_text(f"title: deep\nlogsource: {{}}\ndetection: {{sel: {{x: 1}}, condition: '{deep}'}}\n")
    nots = "not " * 5000 + "sel"
    (tmp_path / "deep_not.yml").write_text(f"title: nots\nlogsource: {{}}\ndetection: {{sel: {{x: 1}}, condition: '{nots}'}}\n")
    (tmp_path / "deep_yaml.yml").write_text("title: deep yaml\nlogsource: {}\ndetection: {sel: {x: " + "[" * 50000 + "]" * 50000 + "}, condition: sel}\n")
    (tmp_path / "deep_dashes.yml").write_text("title: deep dashes\nlogsource: {}\nx: " + "- " * 50000 + "x\n")
    (tmp_path / "parentheses.yml").write_text("title: parens\nlogsource: {}\ndetection: {sel: {x: 1}, condition: '" + "(" * 5000 + "sel" + ")" * 5000 + "'}\n")
    with open(tmp_path / "huge.yml", "w") as f:
        f.write("title: huge\nlogsource: {}\ndetection:\n  sel:\n    x:\n")
        line = "      - " + "a" * 100 + "\n"
        f.write(line * 120_000)
        f.write("  condition: sel\n")
    values = "".join(f"      - value{i}\n" for i in range(200_000))
    (tmp_path / "many_values.yml").write_text(f"title: many\nlogsource: {{product: test}}\ndetection:\n  sel:\n    x:\n{values}  condition: sel\n")
    return tmp_path


EXPECTED = {
    # file: fragment of its error message
    "alias_bomb.yml": "expands to more than",
    "tabs.yml": "invalid YAML",
    "duplicate_keys.yml": "duplicate key 'eventName'",
    "lookaround_regex.yml": "invalid regular expression",
    "invalid_utf8.yml": "not UTF-8",
    "binary.yml": "binary file",
    "recursive.yml": "",            # a cycle: refused one way or another, never a hang
    "deep_condition.yml": "nests deeper than",
    "deep_not.yml": "nests deeper than",
    "deep_yaml.yml": "nested deeper than 500",
    "deep_dashes.yml": "nested deeper than 500",
    "huge.yml": "larger than 10 MiB",
}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    folder = generated(tmp_path_factory.mktemp("hostile"))
    for f in HOSTILE.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "good.yml").write_text(GOOD)
    return folder


def test_check_reports_each_and_goes_on(batch):
    done = run_cli("check", batch, "--format", "json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    by_file = {}
    for p in report["problems"]:
        by_file.setdefault(Path(p["path"].split("#")[0]).name, []).append(p["message"])
    for name, fragment in EXPECTED.items():
        assert name in by_file, f"{name} was not reported"
        assert any(fragment in m for m in by_file[name]), (name, by_file[name])
    # Valid, if unusual: the catastrophic regex runs on RE2; the long list and the injection load.
    assert not {"catastrophic_regex.yml", "many_values.yml", "injection.yml", "good.yml",
                "parentheses.yml"} & set(by_file)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_kind_alone(batch, name):
    done = run_cli("check", batch / name)
    assert done.returncode == 1 and done.stdout.strip()


def test_catastrophic_regex_is_linear(batch, tmp_path):
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"CommandLine": "a" * 100_000 + "!"}, {"CommandLine": "aaaa"}]))
    done = run_cli("match", batch / "catastrophic_regex.yml", "--events", events, "--format", "jsonl")
    assert done.returncode == 0
    assert [json.loads(line)["index"] for line in done.stdout.splitlines()] == [1]

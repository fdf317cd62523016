"""convert's warm cache (transpiler/cache.py): a warm run gives exactly the cold run's outputs,
converts nothing it has converted before, only what changed, and survives corrupt entries,
concurrent runs and --no-cache."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from transpiler import backends, batch, cache
from transpiler.cli import main

ROOT = Path(__file__).resolve().parent.parent
RULE = """title: {title}
id: {id}
level: high
logsource: {{product: aws, service: cloudtrail}}
detection:
    selection: {{eventSource: iam.amazonaws.com, eventName: {event}}}
    condition: selection
"""


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """Rules (converted, unsupported: keywords, failed: bad YAML and an unknown modifier) and an
    empty cache folder of their own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SIGMA_TRANSPILE_NO_CACHE", raising=False)
    d = tmp_path / "rules"
    d.mkdir()
    for i, event in enumerate(["CreateUser", "DeleteUser", "CreateAccessKey", "PutUserPolicy"]):
        (d / f"r{i}.yml").write_text(RULE.format(title=f"rule {i}", id=f"00000000-0000-4000-8000-00000000000{i}",
                                                 event=event))
    (d / "keywords.yml").write_text("title: kw\nlogsource: {product: windows}\ndetection: {k: [evil], condition: k}\n")
    (d / "bad.yml").write_text("title: bad\n  x: [\n")
    (d / "modifier.yml").write_text("title: m\nlogsource: {}\ndetection: {s: {a|contans: x}, condition: s}\n")
    (d / "two.yml").write_text(RULE.format(title="two a", id="00000000-0000-4000-8000-0000000000a1", event="A")
                               + "---\n" + RULE.format(title="two b", id="00000000-0000-4000-8000-0000000000b1",
                                                       event="B"))
    return d


def convert(capsys, *args):
    """(exit status, stdout, stderr without the seconds) of one convert run."""
    status = main(["convert", "--no-progress", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, "\n".join(line.rsplit(", ", 1)[0] if line.endswith(" s") else line
                                  for line in err.splitlines())


@pytest.fixture
def conversions(monkeypatch):
    """The rules each run converts: batch.convert_one's calls, by file name."""
    seen = []
    real = batch.convert_one

    def counted(backend, rule, correlated=None):
        seen.append(Path(rule.path).name)
        return real(backend, rule, correlated)
    monkeypatch.setattr(batch, "convert_one", counted)
    return seen


def report(path):
    data = json.loads(Path(path).read_text())
    data["summary"].pop("seconds")
    return data


@pytest.mark.parametrize("target", sorted(backends.BACKENDS))
def test_warm_run_gives_the_cold_outputs_and_converts_nothing(repo, capsys, conversions, target, tmp_path):
    cold = convert(capsys, "-t", target, repo, "--no-cache", "--report", tmp_path / "cold.json")
    assert conversions and not list((tmp_path / "cache").glob("**/*")), "--no-cache writes nothing"
    conversions.clear()
    first = convert(capsys, "-t", target, repo, "--report", tmp_path / "first.json")
    assert len(conversions) == 7          # every rule: a miss
    conversions.clear()
    warm = convert(capsys, "-t", target, repo, "--report", tmp_path / "warm.json")
    assert conversions == []              # every rule: a hit
    assert cold == first == warm
    assert report(tmp_path / "cold.json") == report(tmp_path / "first.json") == report(tmp_path / "warm.json")


def test_a_changed_rule_is_the_only_one_converted(repo, capsys, conversions):
    convert(capsys, "-t", "athena", repo)
    (repo / "r2.yml").write_text((repo / "r2.yml").read_text().replace("CreateAccessKey", "DeleteAccessKey"))
    conversions.clear()
    changed = convert(capsys, "-t", "athena", repo)
    assert conversions == ["r2.yml"]
    assert changed == convert(capsys, "-t", "athena", repo, "--no-cache")
    assert "deleteaccesskey" in changed[1]


def test_the_key_covers_target_table_and_placeholders(repo, capsys, conversions, tmp_path):
    convert(capsys, "-t", "athena", repo)
    for args in (["-t", "duckdb"], ["-t", "athena", "--table", "other"]):
        conversions.clear()
        convert(capsys, *args, repo)
        assert len(conversions) == 7, args
    values = tmp_path / "values.yml"
    values.write_text("x: [1]\n")
    conversions.clear()
    convert(capsys, "-t", "athena", repo, "--placeholders", values)
    assert len(conversions) == 7


def test_level_filter_keeps_entries_whole(repo, capsys, conversions):
    (repo / "r0.yml").write_text((repo / "r0.yml").read_text().replace("level: high", "level: low"))
    high = convert(capsys, "-t", "athena", repo, "--level", "high")
    everything = convert(capsys, "-t", "athena", repo)
    conversions.clear()
    assert convert(capsys, "-t", "athena", repo, "--level", "high") == high
    assert convert(capsys, "-t", "athena", repo) == everything
    assert conversions == []


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage"])
def test_a_damaged_entry_is_a_miss_and_is_written_again(repo, capsys, conversions, tmp_path, damage):
    cold = convert(capsys, "-t", "kql", repo)
    entries = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert entries
    for p in entries:
        data = bytearray(p.read_bytes())
        if damage == "flip":
            data[-1] ^= 1
        elif damage == "truncate":
            data = data[:len(data) // 2]
        elif damage == "empty":
            data = b""
        else:
            data = b"STC1" + bytes(32) + b"\x00not marshal"
        p.write_bytes(bytes(data))
    conversions.clear()
    assert convert(capsys, "-t", "kql", repo) == cold
    assert len(conversions) == 7
    conversions.clear()
    assert convert(capsys, "-t", "kql", repo) == cold
    assert conversions == []


def test_entries_are_plain_data_checked_by_their_checksum(tmp_path):
    store = cache.Store(tmp_path)
    store.put("ab" * 32, {"docs": [(0, "rule", {"title": "t"}, {}, ("sel",), None)], "errors": []})
    assert store.get("ab" * 32)["docs"][0][2] == {"title": "t"}
    assert store.get("cd" * 32) is None
    assert not store.put("ef" * 32, {"x": object()})         # not plain data: not cached
    assert store.get("ef" * 32) is None


def test_concurrent_runs(repo, tmp_path):
    """Several processes fill the same cache at once: each gives the cold output, and so does
    the warm run after them."""
    argv = [sys.executable, "-m", "transpiler", "convert", "-t", "athena", "--no-progress", str(repo)]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    cold = subprocess.run(argv + ["--no-cache"], capture_output=True, text=True, env=env, cwd=ROOT).stdout
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
            for _ in range(4)]
    assert [p.communicate()[0] for p in runs] == [cold] * 4
    assert subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT).stdout == cold
    assert not [p for p in (tmp_path / "cache").rglob(".tmp-*")], "no temporary file left"


def test_no_cache_variable(repo, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SIGMA_TRANSPILE_NO_CACHE", "1")
    convert(capsys, "-t", "athena", repo)
    assert not (tmp_path / "cache").exists()


def test_filters_and_correlations_convert_everything(repo, capsys, conversions):
    convert(capsys, "-t", "athena", repo)
    (repo / "filter.yml").write_text("title: f\nlogsource: {product: aws, service: cloudtrail}\n"
                                     "filter: {rules: [rule 1], selection: {userAgent|contains: terraform}, condition: not selection}\n")
    conversions.clear()
    filtered = convert(capsys, "-t", "athena", repo)
    assert len(conversions) == 7
    assert filtered == convert(capsys, "-t", "athena", repo, "--no-cache")
    assert "terraform" in filtered[1]


def test_size_bound(tmp_path):
    store = cache.Store(tmp_path, max_bytes=20_000)
    for i in range(100):
        store.put(f"{i:064x}", "x" * 1000)
    store.prune()
    total = sum(p.stat().st_size for p in (tmp_path / "v1").rglob("*") if p.is_file())
    assert 10_000 <= total <= 20_000 * cache.KEEP_FRACTION   # pruned to the bound's share, no further


def test_compiled_grammar_and_templates_are_kept_and_a_damaged_one_is_rebuilt(repo, tmp_path):
    """The analysed condition grammar (Lark) and the compiled templates (Jinja) go to the cache
    folder; damaged, they are built again and the output does not change."""
    argv = [sys.executable, "-m", "transpiler", "convert", "-t", "kql", "--no-progress", str(repo)]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    run = lambda *extra: subprocess.run(argv + list(extra), capture_output=True, text=True, env=env, cwd=ROOT)  # noqa: E731
    cold = run("--no-cache")
    assert not (tmp_path / "cache").exists()
    assert run().stdout == cold.stdout
    kept = [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.parent.name in ("lark", "jinja")]
    assert {p.parent.name for p in kept} == {"lark", "jinja"}
    for p in kept:
        p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2] + b"\x00garbage")
    (repo / "r0.yml").write_text((repo / "r0.yml").read_text() + "\n# changed\n")   # a miss: compiles again
    again = run()
    assert again.returncode == cold.returncode and "Traceback" not in again.stderr
    assert again.stdout == run("--no-cache").stdout


def _entries(tmp_path, packs: bool):
    return [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.parent.parent.name == "v1"
            and (p.parent.name == cache.PACKS) == packs]


def test_a_warm_run_reads_the_pack_of_its_files(repo, capsys, conversions, tmp_path):
    """A warm run's entries come from one file, the pack of the files it was given; a changed
    rule updates the pack; a damaged pack is ignored (the entries are read one by one) and
    written again."""
    cold = convert(capsys, "-t", "athena", repo)
    assert len(_entries(tmp_path, packs=True)) == 1 and _entries(tmp_path, packs=False)
    for p in _entries(tmp_path, packs=False):
        p.unlink()
    conversions.clear()
    assert convert(capsys, "-t", "athena", repo) == cold
    assert conversions == []                       # every entry from the pack
    (repo / "r2.yml").write_text((repo / "r2.yml").read_text().replace("CreateAccessKey", "DeleteAccessKey"))
    changed = convert(capsys, "-t", "athena", repo)
    assert conversions == ["r2.yml"]
    for p in _entries(tmp_path, packs=False):
        p.unlink()
    conversions.clear()
    assert convert(capsys, "-t", "athena", repo) == changed
    assert conversions == []                       # the pack holds the changed rule's entry
    [pack] = _entries(tmp_path, packs=True)
    pack.write_bytes(pack.read_bytes()[:-1] + b"\x00")
    assert convert(capsys, "-t", "athena", repo) == changed
    assert len(conversions) == 7                   # no entries left but the damaged pack: misses
    conversions.clear()
    for p in _entries(tmp_path, packs=False):
        p.unlink()
    assert convert(capsys, "-t", "athena", repo) == changed
    assert conversions == []                       # the pack was written again


def test_a_pack_is_per_set_of_files(repo, capsys, conversions, tmp_path):
    """Converting part of the rules uses (and writes) a pack of its own; the whole set's is kept."""
    convert(capsys, "-t", "athena", repo)
    part = convert(capsys, "-t", "athena", repo / "r0.yml", repo / "r1.yml")
    assert len(_entries(tmp_path, packs=True)) == 2
    for p in _entries(tmp_path, packs=False):
        p.unlink()
    conversions.clear()
    assert convert(capsys, "-t", "athena", repo / "r0.yml", repo / "r1.yml") == part
    convert(capsys, "-t", "athena", repo)
    assert conversions == []

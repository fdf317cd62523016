"""Work shared among processes (transpiler/parallel.py) and a cold `convert` shared that way
(cache.Conversion.prepare): the same results as one process, a failed worker costs time only,
Ctrl-C leaves no worker behind."""
import json
import os
import sys
import time
from pathlib import Path

import pytest

from transpiler import backends, cache, parallel
from transpiler.cli import main

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only")


def children() -> list:
    """This process's child processes (Linux)."""
    me = os.getpid()
    return [int(p) for t in os.listdir(f"/proc/{me}/task")
            for p in Path(f"/proc/{me}/task/{t}/children").read_text().split()]


@pytest.mark.parametrize("count", [2, 3])
def test_split_gives_every_result_in_order(count):
    items = list(range(3000))
    assert parallel.split(items, lambda x: [x, str(x) * 2], count) == [[x, str(x) * 2] for x in items]
    assert children() == []


def test_a_worker_that_dies_loses_its_chunk_only():
    caller = os.getpid()
    results = parallel.split(list(range(500)), lambda x: x if os.getpid() == caller else os._exit(1), 2)
    assert all(r in (x, None) for x, r in zip(range(500), results))
    assert results.count(None) <= 1          # the worker died on the first item it claimed
    assert children() == []


def test_a_result_that_is_no_plain_data_comes_back_none():
    caller = os.getpid()
    results = parallel.split(list(range(300)), lambda x: x if os.getpid() == caller else object(), 2)
    assert all(r in (x, None) for x, r in zip(range(300), results))


def test_interrupted_the_workers_are_gone():
    caller = os.getpid()

    def work(x):
        if os.getpid() != caller:
            time.sleep(0.001)     # slow workers: this process claims items too, however busy the machine
            return x
        if x >= 50:
            raise KeyboardInterrupt
        return x
    with pytest.raises(KeyboardInterrupt):
        parallel.split(list(range(10_000)), work, 3)
    assert children() == []


def test_one_process_without_fork_or_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert parallel.processes(10_000, 100) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    assert parallel.processes(10_000, 100) == parallel.MAX_PROCESSES
    assert parallel.processes(250, 100) == 2


# --- convert on several processes ---------------------------------------------------------------

RULE = """title: rule {n}
id: 00000000-0000-4000-8000-{n:012d}
level: {level}
logsource: {{product: aws, service: cloudtrail}}
detection:
    selection:
        eventSource: iam.amazonaws.com
        eventName|{op}: {value}
    condition: selection
"""


@pytest.fixture
def rules(tmp_path, monkeypatch):
    """250 rule files (more than two processes' least share): converted, unsupported
    (keywords), failed (bad YAML, an unknown modifier), two documents in one file."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SIGMA_TRANSPILE_NO_CACHE", raising=False)
    d = tmp_path / "rules"
    d.mkdir()
    ops = ["contains", "startswith", "endswith", "re", "cidr"]
    for n in range(240):
        op = ops[n % len(ops)]
        value = f"10.{n}.0.0/16" if op == "cidr" else f"Create{n}.*" if op == "re" else f"User{n}"
        (d / f"r{n:03d}.yml").write_text(RULE.format(n=n, level=("low", "high")[n % 2], op=op, value=value))
    (d / "keywords.yml").write_text("title: kw\nlogsource: {product: windows}\ndetection: {k: [evil], condition: k}\n")
    (d / "bad.yml").write_text("title: bad\n  x: [\n")
    (d / "modifier.yml").write_text("title: m\nlogsource: {}\ndetection: {s: {a|contans: x}, condition: s}\n")
    (d / "two.yml").write_text(RULE.format(n=900, level="high", op="contains", value="A") + "---\n"
                               + RULE.format(n=901, level="low", op="contains", value="B"))
    return d


def run(capsys, monkeypatch, count, *args):
    """(status, stdout, stderr without the seconds, report) of convert on `count` processes."""
    monkeypatch.setattr(parallel, "processes", lambda items, least: count)
    report = Path(args[-1]).parent / f"report-{count}.json"
    status = main(["convert", "--no-progress", "--report", str(report), *map(str, args)])
    out, err = capsys.readouterr()
    data = json.loads(report.read_text())
    data["summary"].pop("seconds")
    return status, out, [line.rsplit(", ", 1)[0] if line.endswith(" s") else line for line in err.splitlines()], data


@pytest.mark.parametrize("target", sorted(backends.BACKENDS))
@pytest.mark.parametrize("options", [["--no-cache"], ["--no-cache", "--level", "high"], []])
def test_convert_on_several_processes_gives_what_one_gives(rules, capsys, monkeypatch, target, options):
    one = run(capsys, monkeypatch, 1, "-t", target, *options, rules)
    if not options:       # the cache is on: run the cold run again, in a fresh cache folder
        monkeypatch.setenv("XDG_CACHE_HOME", str(rules.parent / "cache2"))
    made_here = []
    real = cache.Conversion._made
    monkeypatch.setattr(cache.Conversion, "_made", lambda self, *a: made_here.append(a) or real(self, *a))
    several = run(capsys, monkeypatch, 2, "-t", target, *options, rules)
    assert several == one
    assert one[3]["summary"]["converted"] > 100
    assert 0 < len(made_here) < len(list(rules.iterdir()))    # the worker made the other files' entries


def test_a_cold_run_on_several_processes_fills_the_cache(rules, capsys, monkeypatch):
    cold = run(capsys, monkeypatch, 3, "-t", "kql", rules)
    store = Path(os.environ["XDG_CACHE_HOME"]) / "sigma-transpile" / "v1"
    entries = [f for d in store.iterdir() if len(d.name) == 2 for f in d.iterdir()]
    assert len(entries) == len(list(rules.iterdir()))     # one per file, the broken ones too
    made = []
    monkeypatch.setattr(cache.Conversion, "_made", lambda *a: made.append(a))
    warm = run(capsys, monkeypatch, 3, "-t", "kql", rules)
    assert warm == cold and made == []


def test_filters_and_correlations_are_converted_in_one_process(rules, capsys, monkeypatch):
    (rules / "zz_correlation.yml").write_text(
        "title: many\ncorrelation:\n  type: event_count\n  rules: [rule 1]\n  group-by: [userIdentity.arn]\n"
        "  timespan: 1h\n  condition: {gte: 2}\n")
    one = run(capsys, monkeypatch, 1, "-t", "athena", "--no-cache", rules)
    monkeypatch.setattr(parallel, "split", lambda *a: pytest.fail("shared a set with a correlation"))
    several = run(capsys, monkeypatch, 2, "-t", "athena", "--no-cache", rules)
    assert several == one


@pytest.mark.parametrize("text, links", [
    (b"filter:\n  rules: [a]\n", True),
    (b"title: t\ncorrelation:\n  type: event_count\n", True),
    (b"title: t\r\n'filter' :\r\n", True),
    (b'title: t\n"correlation": {}\n', True),
    (b"title: t\ndetection:\n  filter:\n    a: 1\n", False),      # a selection named filter
    (b"title: t\ndescription: see filter: x\n", False),
    (b"title: t\nfilter_main: 1\n", False),
])
def test_a_set_with_filters_or_correlations_is_known_by_a_top_level_key(text, links):
    assert cache._links(text) is links


@pytest.mark.parametrize("options", [["--no-cache"], []])
def test_a_worker_that_dies_in_a_cold_convert_costs_time_only(rules, capsys, monkeypatch, options):
    """The files whose entries a dead worker took are loaded here: the same output. (With the
    pack, prepare() unpacked each result as a pair: a lost one, None, ended the run.)"""
    one = run(capsys, monkeypatch, 1, "-t", "athena", "--no-cache", rules)
    if not options:
        monkeypatch.setenv("XDG_CACHE_HOME", str(rules.parent / "cache3"))
    caller, real = os.getpid(), cache.Conversion._made
    monkeypatch.setattr(cache.Conversion, "_made",
                        lambda self, *a: real(self, *a) if os.getpid() == caller else os._exit(1))
    assert run(capsys, monkeypatch, 2, "-t", "athena", *options, rules) == one
    assert children() == []

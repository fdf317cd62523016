"""Ctrl-C and SIGTERM at any moment of a `hunt`: exit 130 with one line "interrupted", no
traceback and no abort (a thread left inside DuckDB at exit dies by SIGABRT), the -o file is
the previous one or the new one whole, and nothing is left in /dev/shm or beside the output.

The child imports the package first and says READY: the moments are spread over the run
itself (imports before `main` are the entry point's business).
"""
from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("duckdb")

CHILD = """
import sys
import transpiler.cli, transpiler.hunt, transpiler.engines.duckdb, transpiler.engines.evaluator, duckdb
transpiler.engines.duckdb.DuckDB.part = 8192    # the timeline in parts: one is written while the next sorts
print("READY", flush=True)
raise SystemExit(transpiler.cli.main(sys.argv[1:]))
"""
RULES = 100
PREVIOUS = "the previous timeline\n"


@pytest.fixture(scope="module")
def hunt_set(tmp_path_factory):
    """100 rules and 30 gzip files of 800 records (24,000 events, ~19,000 detections)."""
    root = tmp_path_factory.mktemp("sweep")
    rng = random.Random(7)
    (root / "rules").mkdir()
    (root / "logs").mkdir()
    for i in range(RULES):
        (root / "rules" / f"r{i:03d}.yml").write_text(f"""title: Rule {i}
id: 00000000-0000-4000-8000-{i:012d}
level: medium
logsource: {{product: aws, service: cloudtrail}}
detection:
    sel: {{eventName: Op{i}}}
    filter: {{requestParameters.userName|endswith: '{i % 10}'}}
    condition: sel and not filter
""")
    n = 0
    for f in range(30):
        records = []
        for _ in range(800):
            n += 1
            records.append({"eventVersion": "1.08", "eventID": f"id-{n}", "eventName": f"Op{rng.randrange(RULES)}",
                            "eventTime": f"2024-05-{1 + n % 28:02d}T10:{n % 60:02d}:{n % 59:02d}Z",
                            "eventSource": "iam.amazonaws.com", "sourceIPAddress": f"198.51.100.{n % 250}",
                            "requestParameters": {"userName": f"user{n % 97}"},
                            "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::111122223333:user/u{n % 13}"}})
        with gzip.open(root / "logs" / f"f{f:03d}.json.gz", "wt", compresslevel=1) as out:
            json.dump({"Records": records}, out, separators=(",", ":"))
    return root


def start(root, engine):
    argv = [sys.executable, "-c", CHILD, "hunt", str(root / "rules"), "--logs", str(root / "logs"),
            "--engine", engine, "--format", "jsonl", "-o", str(root / "out" / "timeline.jsonl"), "--no-progress"]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "READY\n"
    return child, time.perf_counter()


def leftovers(root, pid) -> list:
    found = [p.name for p in (root / "out").iterdir() if p.name != "timeline.jsonl"]
    for folder in {"/dev/shm", tempfile.gettempdir()}:
        if os.path.isdir(folder):
            found += [name for name in os.listdir(folder) if name.startswith(f"sigma-scan-{pid}-")]
    return found


def test_interrupt_at_ten_moments(hunt_set):
    out = hunt_set / "out" / "timeline.jsonl"
    out.parent.mkdir(exist_ok=True)
    spans = {}
    for engine in ("duckdb", "evaluator"):          # a whole run of each: its length, its output
        child, began = start(hunt_set, engine)
        child.communicate()
        spans[engine] = time.perf_counter() - began
        assert child.returncode == 0
        whole = out.read_text() if engine == "duckdb" else whole
        assert out.read_text() == whole and whole.count("\n") > 10000
    # Spread over the first 80% of each engine's run: another run may well be quicker (a shared
    # machine), and a signal after the end interrupts nothing.
    moments = [(engine, spans[engine] * (0.03 + 0.77 * k / (count - 1)), signal.SIGTERM if k % 3 == 2 else signal.SIGINT)
               for engine, count in (("duckdb", 7), ("evaluator", 3)) for k in range(count)]
    interrupted = 0
    for engine, moment, sig in moments:
        out.write_text(PREVIOUS)
        child, began = start(hunt_set, engine)
        time.sleep(max(0.0, moment - (time.perf_counter() - began)))
        child.send_signal(sig)
        _, err = child.communicate()
        where = f"{engine} {sig.name} at {moment:.2f} s of {spans[engine]:.2f} s: exit {child.returncode}\n{err}"
        assert "Traceback" not in err and "terminate called" not in err and "FATAL" not in err, where
        assert out.read_text() in (PREVIOUS, whole), where
        assert not leftovers(hunt_set, child.pid), where
        if child.returncode == 130:
            interrupted += 1
            assert err.splitlines()[-1] == "interrupted", where
        else:                                   # it had finished before the signal came
            # After the summary, with its handlers restored, the process may still be exiting:
            # a signal then ends it as signals end processes (the entry point's to close).
            assert out.read_text() == whole and " detections" in err and child.returncode in (0, -sig), where
    assert interrupted >= 7, interrupted

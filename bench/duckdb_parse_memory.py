"""The least DuckDB memory limit that parses a batch of logs, by batch size and threads: the
figures behind transpiler/engines/duckdb.py's sizing() (PARSE_BASE, PER_THREAD).

    python bench/scale_logs.py /data/scale/x10 --times 10        # 430 MiB of JSON, on a disk
    python bench/duckdb_parse_memory.py /data/scale/x10 --batches 4,16,64,256 --threads 1,2,4,8,16

For each batch size (MiB of JSON, staged as hunt stages it) and thread count: a bisection, to
8 MiB, of the memory_limit under which hunt's parse statement (duckdb_events.load_staged, every
column, with deduplication) runs out of memory; each try on a new connection that spills into a
folder next to the logs. Prints one line per batch size.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import common  # noqa: F401  (the checkout on sys.path)
from transpiler import duckdb_events
from transpiler.backends.sql import literal


def parses(staged, memory_mib: int, threads: int, spill: str) -> bool:
    con = duckdb_events.connect()
    try:
        con.execute(f"SET memory_limit = '{memory_mib}MiB'")
        con.execute(f"SET threads = {threads}")
        con.execute(f"SET temp_directory = {literal(spill)}")
        duckdb_events.load_staged(con, staged, "cloudtrail_logs", True, ("eventname", "eventsource"), None, "_seen")
        return True
    except Exception as e:     # noqa: BLE001  only running out of memory is an answer
        if "Out of Memory" not in str(e):
            raise
        return False
    finally:
        con.close()


def least(staged, threads: int, spill: str, low: int = 16, high: int = 8192) -> int:
    while high - low > 8:
        middle = (low + high) // 2
        low, high = (low, middle) if parses(staged, middle, threads, spill) else (middle, high)
    return high


def main():
    p = argparse.ArgumentParser()
    p.add_argument("logs")
    p.add_argument("--batches", default="4,8,16,32,64,256", help="MiB of JSON per batch, comma separated")
    p.add_argument("--threads", default="1,2,4,8,16", help="DuckDB threads, comma separated")
    args = p.parse_args()
    paths = sorted(path for path in Path(args.logs).rglob("*") if path.is_file())
    work = tempfile.mkdtemp(prefix="bench-parse-memory-", dir=Path(args.logs).parent)
    try:
        for batch in map(int, args.batches.split(",")):
            staged = duckdb_events.Staged(iter(enumerate(paths)), work, batch << 20)
            try:
                found = [f"{t} threads {least(staged, t, tempfile.mkdtemp(dir=work))} MiB"
                         for t in map(int, args.threads.split(","))]
            finally:
                staged.cleanup()
            print(f"batch {staged.size / 2**20:6.1f} MiB of JSON: " + ", ".join(found), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

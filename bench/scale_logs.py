"""Scaled copies of the CloudTrail corpus, for measuring `hunt` at scale (never committed: write
them outside the repository, on a disk, and delete them after).

    python bench/scale_logs.py OUT --times 300            # ~9.2M records, distinct copies
    python bench/scale_logs.py OUT --times 30 --identical # 30 byte-identical copies (duplicates)

Distinct copies: copy k (0 <= k < times) holds every record of the corpus in file order, with
`-k` appended to its eventID (copy 0 keeps the corpus's own) and its eventTime moved k days on,
so the copies are different records (the corpus's own duplicates stay duplicates within a copy)
and a correlation's window never spans two copies. Each copy's records are written as
CloudTrail writes them: gzip files of `{"Records": [...]}` on one line, --per-file records each
(AWS delivers a file per account, region and five minutes: a few to thousands of records),
under `OUT/copyNNN/`. Files the corpus cannot read (broken JSON) are copied into copy 0 as
they are, so a scaled set has unreadable files too.

Identical copies: the corpus's files, byte for byte, `times` over (`OUT/copyNNN/<path>`).

Runs on several processes (--jobs, default every CPU); gzip at level 6, as gzip's default.
"""
from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import need_corpus  # noqa: E402

from transpiler.errors import EventsError  # noqa: E402
from transpiler.events import event_files, parse_events, read_text  # noqa: E402

_ID, _TIME = "@@sigma-scale-eventID@@", "@@sigma-scale-eventTime@@"


def templates(corpus: Path) -> tuple[list, list]:
    """(parts, eventID, eventTime) per record of the corpus, in file order: the record's JSON
    split where its eventID and eventTime go; and the files that cannot be read."""
    out, broken = [], []
    for path in event_files([corpus]):
        try:
            records = parse_events(read_text(path), str(path))
        except EventsError:
            broken.append(path)
            continue
        for r in records:
            event_id, moment = r.get("eventID"), r.get("eventTime")
            marked = dict(r)
            if isinstance(event_id, str):
                marked["eventID"] = _ID
            if isinstance(moment, str) and _parse(moment) is not None:
                marked["eventTime"] = _TIME
            text = json.dumps(marked, separators=(",", ":"), ensure_ascii=False)
            out.append((text, event_id, moment))
    return out, broken


def _parse(moment: str):
    try:
        return datetime.datetime.strptime(moment, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None


def _record(template, k: int) -> str:
    text, event_id, moment = template
    if _ID in text:
        text = text.replace(_ID, json.dumps(event_id if k == 0 else f"{event_id}-{k}")[1:-1])
    if _TIME in text:
        later = _parse(moment) + datetime.timedelta(days=k)
        text = text.replace(_TIME, later.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return text


def write_copy(args) -> int:
    out, k, records, per_file = args
    folder = Path(out) / f"copy{k:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    for n, start in enumerate(range(0, len(records), per_file)):
        body = ",".join(_record(t, k) for t in records[start:start + per_file])
        data = ('{"Records":[' + body + "]}").encode()
        name = folder / f"111122223333_CloudTrail_us-east-1_{k:03d}_{n:05d}.json.gz"
        name.write_bytes(gzip.compress(data, 6, mtime=0))
    return k


def identical_copy(args) -> int:
    out, k, corpus = args
    shutil.copytree(corpus, Path(out) / f"copy{k:03d}")
    return k


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--times", type=int, required=True)
    p.add_argument("--per-file", type=int, default=300, help="records per file (default 300)")
    p.add_argument("--identical", action="store_true", help="byte-identical copies of the corpus files")
    p.add_argument("--jobs", type=int, default=os.cpu_count())
    args = p.parse_args()
    corpus = need_corpus("cloudtrail")
    if args.out.exists():
        sys.exit(f"{args.out} exists: remove it first")
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        if args.identical:
            list(pool.map(identical_copy, [(args.out, k, corpus) for k in range(args.times)]))
        else:
            records, broken = templates(corpus)
            for path in broken:
                target = args.out / "copy000" / "broken" / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
            list(pool.map(write_copy, [(args.out, k, records, args.per_file) for k in range(args.times)]))
    files = sum(len(f) for _, _, f in os.walk(args.out))
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs)
    print(f"{args.out}: {files} files, {size / 1e6:.0f} MB, in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

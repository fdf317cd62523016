"""The incumbent for `hunt`: pySigma's SQLite backend over CloudTrail logs, as a Zircolite-style
tool does it. Run with the sigma-cli venv's Python (bench/README.md):

    ../venv-sigmacli/bin/python bench/sigmacli_hunt.py RULES... --logs LOGS

Reads every CloudTrail file under LOGS (.json, .json.gz; {"Records": [...]}), keeps the first
record of each eventID (as `hunt` does), flattens each into dotted field names (a list or map
below them as JSON text), loads them into an in-memory SQLite table `logs` whose columns are
TEXT COLLATE NOCASE, converts each rule with pySigma-backend-sqlite (no pipeline: Sigma's field
names are the dotted CloudTrail paths) and runs its query. Prints the counts on stderr.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sqlite3
import sys
from pathlib import Path

from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection


def records(folder: Path):
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith((".json", ".json.gz"))):
        data = path.read_bytes()
        try:
            doc = json.loads(gzip.decompress(data) if path.name.endswith(".gz") else data)
        except ValueError:
            continue
        found = doc.get("Records") if isinstance(doc, dict) else doc
        yield from (r for r in found or () if isinstance(r, dict))


def flat(record: dict, prefix="") -> dict:
    out = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat(value, name + "."))
        elif isinstance(value, (dict, list)):
            out[name] = json.dumps(value)
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        else:
            out[name] = None if value is None else str(value)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("rules", nargs="+")
    p.add_argument("--logs", required=True)
    args = p.parse_args()
    rows, seen = [], set()
    for r in records(Path(args.logs)):
        key = r.get("eventID")
        if key is not None and key in seen:
            continue
        seen.add(key)
        rows.append(flat(r))
    columns = sorted({c for row in rows for c in row})
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE logs (" + ", ".join(f'"{c}" TEXT COLLATE NOCASE' for c in columns) + ")")
    db.executemany(f"INSERT INTO logs VALUES ({', '.join('?' * len(columns))})",
                   ([row.get(c) for c in columns] for row in rows))
    backend = sqliteBackend(collect_errors=True)
    rules = queries = failed = detections = 0
    for folder in args.rules:
        for path in sorted(Path(folder).rglob("*.yml")):
            try:
                collection = SigmaCollection.from_yaml(path.read_text(encoding="utf-8"))
                converted = backend.convert(collection)
            except Exception:  # noqa: BLE001 - a rule the incumbent cannot take counts as failed
                failed += 1
                continue
            rules += 1
            for query in converted:
                try:
                    detections += len(db.execute(query).fetchall())
                    queries += 1
                except sqlite3.Error:   # a column no record has: no match
                    failed += 1
    print(f"{rules} rules, {queries} queries run, {failed} failed, {len(rows)} records, {detections} detections",
          file=sys.stderr)


if __name__ == "__main__":
    main()

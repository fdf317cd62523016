"""Event files -> events. CloudTrail `{"Records": [...]}`, a JSON array, one object, or
JSON Lines; gzip-compressed when the name ends in .gz; folders are read recursively.

A broken file is reported as an EventsError and the other files are still read.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import EventsError

EVENT_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")


@dataclass(frozen=True)
class Event:
    source: str     # the file it came from
    index: int      # its position in that file
    data: dict

    @property
    def event_id(self):
        """CloudTrail's eventID, when the event has one."""
        return self.data.get("eventID")


def event_files(paths) -> list[Path]:
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(f for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(EVENT_SUFFIXES))
        else:
            found.append(p)
    return sorted(set(found), key=str)


def read_events(paths) -> tuple[list[Event], list[EventsError]]:
    """Every event under the given files and folders, in file order, and every file's error."""
    events, errors = [], []
    for f in event_files(paths):
        try:
            events.extend(Event(str(f), i, e) for i, e in enumerate(parse_events(_read(f), str(f))))
        except EventsError as e:
            errors.append(e)
    return events, errors


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()
        if path.name.lower().endswith(".gz") or data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        return data.decode("utf-8-sig")
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise EventsError(f"cannot read: {e}", path=path) from None
    except UnicodeDecodeError as e:
        raise EventsError(f"not UTF-8 text (byte {e.start})", path=path) from None


def parse_events(text: str, path: str = "<string>") -> list[dict]:
    """The events in one file's text, whichever of the four shapes it has."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        data = json.loads(stripped)
    except RecursionError:
        raise EventsError("JSON nested too deeply", path=path) from None
    except json.JSONDecodeError as whole:
        if stripped.startswith("{") and "\n" in stripped:
            return _json_lines(stripped, path)
        raise EventsError(f"invalid JSON: line {whole.lineno} col {whole.colno}: {whole.msg}",
                          path=path) from None
    if isinstance(data, dict) and isinstance(data.get("Records"), list):
        data = data["Records"]
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        bad = next((i for i, e in enumerate(data) if not isinstance(e, dict)), None)
        if bad is not None:
            raise EventsError(f"item {bad} is not a JSON object", path=path)
        return data
    raise EventsError("expected a JSON object, an array of objects, or JSON Lines", path=path)


def _json_lines(text: str, path: str) -> list[dict]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except RecursionError:
            raise EventsError(f"line {n}: JSON nested too deeply", path=path) from None
        except json.JSONDecodeError as e:
            raise EventsError(f"invalid JSON Lines: line {n} col {e.colno}: {e.msg}", path=path) from None
        if not isinstance(item, dict):
            raise EventsError(f"line {n} is not a JSON object", path=path)
        out.append(item)
    return out

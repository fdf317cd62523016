"""Event files -> events. CloudTrail `{"Records": [...]}`, a JSON array, one object, or
JSON Lines; gzip-compressed when the name ends in .gz (or the bytes say so); folders are
read recursively, symlinked folders too.

A broken file is reported as an EventsError and the other files are still read. Reading is
bounded: only regular files, at most MAX_EVENT_BYTES of JSON each after decompression
(`--max-event-size` raises it), so a FIFO cannot hang a run nor a gzip bomb fill the memory.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from . import files
from .errors import EventsError

EVENT_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
MAX_EVENT_BYTES = 512 << 20     # JSON bytes in one event file, after decompression


@dataclass(frozen=True)
class Event:
    source: str     # the file it came from
    index: int      # its position in that file
    data: dict

    @property
    def event_id(self):
        """CloudTrail's eventID, when the event has one."""
        return self.data.get("eventID")


def find_event_files(paths) -> tuple[list[Path], list[EventsError]]:
    """The event files under the given files and folders (files.walk: sorted, each once,
    symlinked folders followed), and an error for each folder that cannot be read or that
    was named but holds no event file."""
    found, unreadable, empty = files.walk(paths, EVENT_SUFFIXES)
    return [Path(f) for f in found], ([EventsError(why, path=folder) for folder, why in unreadable] +
                   [EventsError("no event files (.json, .jsonl, .ndjson, .gz) in this folder or below",
                                path=folder, kind="empty") for folder in empty])


def event_files(paths) -> list[Path]:
    """find_event_files() without the errors."""
    return find_event_files(paths)[0]


def read_events(paths, max_bytes: int = MAX_EVENT_BYTES) -> tuple[list[Event], list[EventsError]]:
    """Every event under the given files and folders, in file order, and every file's error."""
    found, errors = find_event_files(paths)
    events = []
    for f in found:
        try:
            events.extend(Event(str(f), i, e) for i, e in enumerate(parse_events(read_text(f, max_bytes), str(f))))
        except EventsError as e:
            errors.append(e)
        except MemoryError:          # what is left of the file is garbage now; the others may fit
            errors.append(EventsError("not enough memory to hold this file's events", path=f))
    return events, errors


def read_event_bytes(path, max_bytes: int = MAX_EVENT_BYTES) -> bytes:
    """One event file's bytes, gunzipped when it is gzip (named .gz or starting with the gzip
    magic number); EventsError for anything but a regular file, and for more than max_bytes
    after decompression (stopped there, holding at most 128 MiB). The one way event files are
    read, by the evaluator and by DuckDB's staging alike."""
    try:
        return files.read_maybe_gzip(path, max_bytes, gz=str(path).lower().endswith(".gz"))
    except files.TooLarge:
        raise EventsError(f"more than {files.size_text(max_bytes)} of JSON, the limit "
                          "(--max-event-size raises it)", path=path) from None
    except files.Unreadable as e:
        raise EventsError(str(e), path=path) from None


def read_text(path, max_bytes: int = MAX_EVENT_BYTES) -> str:
    """read_event_bytes() as text (UTF-8, a byte order mark dropped)."""
    data = read_event_bytes(path, max_bytes)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise EventsError(f"not UTF-8 text (byte {e.start})", path=path) from None


def parse_events(text: str, path: str = "<string>") -> list[dict]:
    """The events in one file's text, whichever of the four shapes it has."""
    stripped = text.strip()
    if not stripped:
        return []
    events = _parsed(stripped, path)
    if _SURROGATE_ESCAPE.search(stripped):
        _no_lone_surrogates(events, path)
    return events


# JSON lets a string escape half of a UTF-16 pair alone ("\ud800"); Python's json reads it,
# but it is no Unicode text: DuckDB's JSON reader refuses it, RE2 cannot search it, and no
# output holding it can be written as UTF-8. A file holding one is refused, whoever reads it.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _no_lone_surrogates(events, path):
    try:
        json.dumps(events, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise EventsError("JSON nested too deeply", path=path) from None
    except UnicodeEncodeError as e:
        code = ord(e.object[e.start])
        raise EventsError(f"invalid JSON text: a lone surrogate \\u{code:04x} (half of a UTF-16 pair), "
                          "which is not Unicode text", path=path) from None


class _OutOfRange(ValueError):
    """A JSON number beyond a double's range (1e400)."""


def _finite(literal: str) -> float:
    """json's parse_float: a number beyond a double's range is no value Python (infinity),
    DuckDB (the text) and SIEMs agree on, so its file is refused."""
    value = float(literal)
    if value in (math.inf, -math.inf):
        raise _OutOfRange(literal)
    return value


def _parsed(stripped: str, path: str) -> list[dict]:
    try:
        data = json.loads(stripped, parse_float=_finite)
    except RecursionError:
        raise EventsError("JSON nested too deeply", path=path) from None
    except _OutOfRange as e:
        raise EventsError(f"invalid JSON: the number {e} is beyond a double's range", path=path) from None
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
            item = json.loads(line, parse_float=_finite)
        except RecursionError:
            raise EventsError(f"line {n}: JSON nested too deeply", path=path) from None
        except _OutOfRange as e:
            raise EventsError(f"invalid JSON Lines: line {n}: the number {e} is beyond a double's range",
                              path=path) from None
        except json.JSONDecodeError as e:
            raise EventsError(f"invalid JSON Lines: line {n} col {e.colno}: {e.msg}", path=path) from None
        if not isinstance(item, dict):
            raise EventsError(f"line {n} is not a JSON object", path=path)
        out.append(item)
    return out

"""Events into DuckDB, in the two tables the duckdb backend's queries read.

- load_cloudtrail(): CloudTrail records in the table AWS documents for Athena
  (cloudtrail.SCHEMA, which templates/sql/mappings/cloudtrail.yml maps): lower-case columns, userIdentity, tlsDetails and
  addendum as structs, resources as a list of structs, requestParameters and the other
  JSON-valued members as JSON text. The same query text runs on Athena and here.
- load_events(): any JSON events (the generic mapping): `fields` maps every field name,
  dotted paths included, to that field's values as text, resolved exactly as the evaluator
  resolves fields (literal dotted keys, nested objects, lists entered, nulls dropped);
  `strings` holds every string value in the event (for keywords); `event` the JSON itself.

Each row carries `row_id`: the event's position in the list given, to map rows back.
Values are stored as the evaluator's text forms (evaluate.text): strings as they are,
true/false, numbers as JSON writes them, objects as compact JSON.

Files go into the same CloudTrail table without building the events in Python: a batch of
files is read and gunzipped into JSON lines in a folder on disk (Staged), then DuckDB parses
them (load_staged), only the columns asked for, leaving out records whose eventID an earlier
batch kept. scan_cloudtrail() does both for a set of files at once.

duckdb itself is imported by connect() only: the callers hand in a connection.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import re2

from . import cloudtrail, evaluate
from .backends.sql import identifier, literal
from .cloudtrail import JSON, MAP, TEXT
from .errors import EventsError
from .evaluate import strings, text
from .events import MAX_EVENT_BYTES, Event, event_files, parse_events, read_event_bytes, read_events, read_text
from .files import errors_name

CLOUDTRAIL = cloudtrail.SCHEMA
GENERIC = (("event", None, JSON), ("fields", None, "MAP(VARCHAR, VARCHAR[])"), ("strings", None, "VARCHAR[]"))


def load_cloudtrail(con, events, table: str = "cloudtrail_logs", lowered: tuple = (), ids=None) -> int:
    """(Re)create `table` from CloudTrail records (dicts or events.Event); the row count.
    `lowered` columns get a lower-case copy `_lower_<column>`, as in scan_cloudtrail().
    ids: each event's row_id (default: its position)."""
    count = _load(con, table, CLOUDTRAIL, [cloudtrail.record(e) for e in _dicts(events)], ids)
    for column in lowered:
        copy = identifier("_lower_" + column)
        con.execute(f"ALTER TABLE {identifier(table)} ADD COLUMN {copy} VARCHAR")
        con.execute(f"UPDATE {identifier(table)} SET {copy} = lower({identifier(column)})")
    return count


def load_events(con, events, table: str = "events", ids=None) -> int:
    """(Re)create `table` of the generic shape from any JSON events; the row count.
    ids: each event's row_id (default: its position)."""
    rows = [{"event": json.dumps(e, ensure_ascii=False), "fields": field_values(e), "strings": strings(e, [])}
            for e in _dicts(events)]
    return _load(con, table, GENERIC, rows, ids)


def read_cloudtrail(con, paths, table: str = "cloudtrail_logs"):
    """Read CloudTrail files and folders (events.read_events) into `table`: (events, errors);
    row_id n is events[n]."""
    events, errors = read_events(paths)
    load_cloudtrail(con, events, table)
    return events, errors


def connect():
    """A new in-memory DuckDB database (the only place this module imports duckdb).

    SIGINT and SIGTERM wait until the import is done: its initialisation runs Python code
    through the C API, where a KeyboardInterrupt makes the interpreter die by SIGINT at exit,
    whatever the program did with the exception."""
    blocked = {signal.SIGINT, signal.SIGTERM}
    held = threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask")
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked) if held else None
    try:
        import duckdb
        return duckdb.connect(":memory:")
    finally:
        if held:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


# --- rows -----------------------------------------------------------------------------------

def field_values(event: dict) -> dict:
    """Every field name -> its values' text forms, as evaluate.field_values resolves names:
    a value is reachable under the dot-joined keys leading to it, lists are entered at any
    depth, nulls are no values, and an object is a value too (its compact JSON)."""
    out: dict = {}

    def walk(obj, path):
        if isinstance(obj, list):
            for item in obj:
                walk(item, path)
        elif obj is not None:
            if path is not None:
                out.setdefault(path, []).append(text(obj))
            if isinstance(obj, dict):
                for key, value in obj.items():
                    walk(value, key if path is None else f"{path}.{key}")

    walk(event, None)
    # Where a name has several values, list them in the evaluator's order (a literal dotted key
    # before the path through objects): a correlation takes a field's first value.
    for name, values in out.items():
        if "." in name and len(values) > 1:
            out[name] = [text(v) for v in evaluate.field_values(event, name)]
    return out


def _dicts(events):
    for e in events:
        yield e.data if isinstance(e, Event) else e


def _duck_type(kind) -> str:
    if isinstance(kind, tuple):
        return "STRUCT(" + ", ".join(f"{identifier(c)} {_duck_type(k)}" for c, _, k in kind) + ")"
    if isinstance(kind, list):
        return _duck_type(kind[0]) + "[]"
    if kind == MAP:
        return "MAP(VARCHAR, VARCHAR)"
    if kind == JSON:
        return "VARCHAR"   # JSON text in a string column, as in Athena
    return kind


def _load(con, table, spec, rows, ids=None) -> int:
    columns = ", ".join(f"{identifier(c)} {_duck_type(k)}" for c, _, k in spec)
    name = identifier(table)
    con.execute(f"CREATE OR REPLACE TABLE {name} (row_id BIGINT, {columns})")
    if rows:
        structure = json.dumps({"row_id": "BIGINT", **{c: _duck_type(k) for c, _, k in spec}})
        ids = range(len(rows)) if ids is None else ids
        payload = [json.dumps({"row_id": n, **row}, ensure_ascii=False) for n, row in zip(ids, rows)]
        con.execute(f"INSERT INTO {name} SELECT unnest(from_json(j, $structure)) "
                    f"FROM (SELECT unnest($rows::VARCHAR[]) AS j)", {"structure": structure, "rows": payload})
    return len(rows)


# --- files straight into DuckDB ---------------------------------------------------------------

@dataclass
class Scan:
    """What load_staged() (or scan_cloudtrail()) read."""

    files: list = field(default_factory=list)        # the files read, in reading order
    rows: int = 0                                     # records in the table
    duplicates: int = 0                               # records left out: an earlier one had their eventID
    errors: list = field(default_factory=list)        # EventsError per unreadable file, in file order
    slow: int = 0                                     # files read by Python rather than by DuckDB


# Delivered CloudTrail files are one line of {"Records": [...]}; anything else is read as JSON
# and unpacked in SQL. DuckDB's JSON reader (yyjson) accepts what Python's rejects: a comma
# before a closing bracket, and nan, inf, infinity in any case (Python: NaN, Infinity only).
# Files that may hold either (a string may look so too: then Python reads a good file) and
# any DuckDB fails on are read by events.py instead, so both read exactly the same files.
# events.py reads text as utf-8-sig: the BOM goes.
_WRAPPER = re.compile(rb'\{\s*"Records"\s*:\s*\[')
# _LENIENT is ,[ws]*[\]}] or [:,\[][ws]*(an odd number), found in three searches that each
# start with one character: RE2 skips to it (memchr), twice as fast as one search starting
# with a class of characters. Odd numbers: -?(nan|inf|infinity)[ws]*[,\]}], which DuckDB's
# JSON reads otherwise, and a three-digit exponent (1e400), which Python may read as infinity
# (events.py refuses that) or zero where DuckDB keeps the text.
_ODD_NUMBER = rb"-?(?:(?i:nan|inf|infinity)[ \t\n\r]*[,\]}]|[0-9]+(?:\.[0-9]+)?[eE][+-]?[0-9]{3})"
_LENIENT = (re2.compile(rb",[ \t\n\r]*(?:[\]}]|" + _ODD_NUMBER + rb")"),
            re2.compile(rb":[ \t\n\r]*" + _ODD_NUMBER), re2.compile(rb"\[[ \t\n\r]*" + _ODD_NUMBER))
_UTF8_BOM = b"\xef\xbb\xbf"
# _LENIENT and cloudtrail.suspect() in one search: it costs what suspect() alone does, and most
# files match neither (then neither is searched). A match in the file's stripped, joined line
# (_line) is a match in its bytes: no pattern is anchored, and each reads \r, \n, space alike.
_SCREEN = re2.compile(b"|".join(b"(?:" + p.pattern + b")" for p in (*_LENIENT, cloudtrail.SUSPECT)))


def scan_cloudtrail(con, paths, table: str = "cloudtrail_logs", dedupe: bool = False, progress=None,
                    lowered: tuple = (), max_bytes: int = MAX_EVENT_BYTES, columns=None) -> Scan:
    """Read CloudTrail files and folders (the shapes events.py reads) into `table`, shaped as
    load_cloudtrail() shapes it: all the files as one batch (Staged, then load_staged()).
    Scan.files lists them; a row_id's file number indexes that list."""
    files = [str(f) for f in event_files(paths)]
    with Scratch() as scratch:
        with Staged(iter(enumerate(files)), scratch.path, progress=progress, max_bytes=max_bytes,
                    total=len(files)) as staged:
            return load_staged(con, staged, table, dedupe, lowered, columns)


class Scratch:
    """A run's own folder for staged files and DuckDB's spill files, on disk (scratch_root),
    named after the process, so that a later run removes it if this one is killed; removed
    on close()."""

    def __init__(self, root=None):
        remove_stale(root)
        self.path = tempfile.mkdtemp(prefix=f"{_STAGED}{os.getpid()}-", dir=scratch_root(root))

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Staged:
    """A batch of event files read (events.read_event_bytes: regular files only, at most
    max_bytes of JSON each, gunzipped) into JSON-lines files in a folder of its own under
    `folder`, one line {"f": file number, "d": the file's JSON} per file, for DuckDB:
    `wrapped` (CloudTrail's {"Records": [...]}) and `other`. Files DuckDB would read otherwise
    than events.py are in `slow`, blank ones in `blank`, unreadable ones in `errors`; those that
    may hold a record the CloudTrail table cannot hold as events.py reads it in `suspect`.

    `files` is an iterator of (file number, path): the batch takes files from it until it
    holds `limit` bytes of JSON (all of them by default), so that successive batches share
    one iterator. `stop` (a threading.Event) abandons the batch between two files."""

    def __init__(self, files, folder, limit: int | None = None, progress=None, max_bytes: int = MAX_EVENT_BYTES,
                 stop=None, total: int = 0):
        self.files = []           # (file number, path) of the batch, in order
        self.max_bytes = max_bytes
        self.errors = {}          # file number -> EventsError
        self.suspect = []         # file numbers whose records may not fit the CloudTrail table (cloudtrail.fits)
        self.folder = tempfile.mkdtemp(prefix="batch-", dir=folder)
        try:
            self.wrapped, self.other = Path(self.folder) / "wrapped.jsonl", Path(self.folder) / "other.jsonl"
            with errors_name(self.folder):
                self.slow, self.blank, self.longest = _write_lines(self, files, limit, progress, stop, total)
            self.size = self.wrapped.stat().st_size + self.other.stat().st_size   # bytes of JSON for DuckDB
        except BaseException:
            self.cleanup()
            raise

    def cleanup(self):
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


class Stopped(Exception):
    """Staging was abandoned (Staged's `stop` was set)."""


def load_staged(con, staged: Staged, table: str = "cloudtrail_logs", dedupe: bool = False,
                lowered: tuple = (), columns=None, seen: str | None = None) -> Scan:
    """(Re)create `table` from a staged batch, shaped as load_cloudtrail() shapes it, and say
    what was read. A file that cannot be read is an EventsError in Scan.errors (events.py's
    message) and the others are still read.

    row_id is file number * 2^32 + position in the file: ordered by row_id, rows are in file
    order. `lowered` columns (eventname...) get a lower-case copy `_lower_<column>`, for fast
    prefilters. `columns`: only these columns of cloudtrail.SCHEMA (all by default; queries
    that read no other column select the same rows). dedupe: a record whose eventID an
    earlier record has is left out (CloudTrail delivers at least once): earlier in this batch,
    or kept by an earlier batch when `seen` names the table (eventid) of the IDs kept so far,
    which this batch's are added to.

    One difference from load_cloudtrail(), invisible to queries: a struct member whose JSON
    value is not an object (a string in userIdentity) is a struct of NULLs, not NULL."""
    order = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
    con.execute("SET preserve_insertion_order = false")   # rows carry their place: files load in parallel
    try:
        return _load_staged(con, staged, table, dedupe, lowered, _spec(columns), seen)
    finally:
        con.execute(f"SET preserve_insertion_order = {'true' if order else 'false'}")


def _spec(columns) -> tuple:
    return CLOUDTRAIL if columns is None else cloudtrail.columns(columns)


def _load_staged(con, staged: Staged, table, dedupe, lowered, spec, seen) -> Scan:
    """One pass: each line's records unnested and shaped into a table of the batch, with their
    place (_f, _idx), _marker rows standing for files without records (so every file DuckDB
    read has a row), and _odd for items that are not objects or have none of the keys read
    (the JSON reader makes both NULLs). Such files, and those DuckDB did not read, go to
    events.py, which reads them as it reads them for the evaluator, or says why it cannot.
    Then the batch's records, duplicates deleted, become `table`."""
    scan = Scan(files=[path for _, path in staged.files])
    record = _duck_record(spec)
    parsed, name = identifier(f"_parsed_{table}"), identifier(table)
    sources = []
    for path, shape in ((staged.wrapped, f'STRUCT("Records" {record}[])'), (staged.other, "JSON")):
        if path.stat().st_size == 0:
            continue
        items = "d.Records" if shape != "JSON" else (
            f"list_transform(CASE WHEN json_type(d) = 'ARRAY' THEN json_extract(d, '$[*]') "
            f"WHEN json_type(d) = 'OBJECT' AND json_type(d, '$.Records') = 'ARRAY' "
            f"THEN json_extract(d, '$.Records[*]') WHEN json_type(d) = 'OBJECT' THEN [d] END, "
            f"lambda x: CASE WHEN json_type(x) = 'OBJECT' THEN json_transform(x, {_structure_literal(spec)}) END)")
        sources.append(f"SELECT f, {items} AS items FROM read_json({literal(str(path))}, "
                       f"format = 'newline_delimited', columns = {{'f': 'BIGINT', 'd': {literal(shape)}}}, "
                       f"ignore_errors = true, maximum_object_size = {staged.longest + 64}) WHERE f IS NOT NULL")
    lines = " UNION ALL ".join(sources) or f"SELECT NULL::BIGINT AS f, NULL::{record}[] AS items LIMIT 0"
    con.execute(f"CREATE OR REPLACE TABLE {parsed} AS SELECT {_columns(lowered, spec)}, _f, _idx, _marker, "
                f"r IS NULL OR ({_empty('r', spec)}) AS _odd FROM ("
                f"SELECT f AS _f, len(items) = 0 AS _marker, "
                f"generate_subscripts(CASE WHEN len(items) = 0 THEN [NULL] ELSE items END, 1) - 1 AS _idx, "
                f"unnest(CASE WHEN len(items) = 0 THEN [NULL] ELSE items END) AS r FROM ({lines}) WHERE items IS NOT NULL)")
    try:
        taken = {f for (f,) in con.execute(f"SELECT DISTINCT _f FROM {parsed}").fetchall()}
        odd = {f for (f,) in con.execute(f"SELECT DISTINCT _f FROM {parsed} WHERE _odd AND NOT _marker").fetchall()}
        numbers = {n for n, _ in staged.files}
        pending = sorted(set(staged.slow) | odd | (numbers - taken - staged.blank - set(staged.errors)))
        con.execute(f"DELETE FROM {parsed} WHERE _marker OR list_contains($pending, _f)", {"pending": pending})
        errors = dict(staged.errors)
        _read_slowly(con, dict(staged.files), pending, parsed, lowered, spec, errors, staged.max_bytes)
        scan.errors = [errors[n] for n in sorted(errors)]    # in file order, as events.py reports them
        scan.slow = len(pending)
        total = con.execute(f"SELECT count(*) FROM {parsed}").fetchone()[0]
        if dedupe:   # the first record with an eventID keeps it; the rest are left out
            repeated = (f"SELECT row_id FROM (SELECT row_id, eventid FROM {parsed} WHERE eventid IS NOT NULL) "
                        f"QUALIFY row_number() OVER (PARTITION BY eventid ORDER BY row_id) > 1")
            if seen is not None:
                con.execute(f"CREATE TABLE IF NOT EXISTS {identifier(seen)} (eventid VARCHAR)")
                repeated += (f" UNION ALL SELECT row_id FROM {parsed} p "
                             f"WHERE EXISTS (SELECT 1 FROM {identifier(seen)} s WHERE s.eventid = p.eventid)")
            con.execute(f"DELETE FROM {parsed} WHERE row_id IN ({repeated})")
            if seen is not None:
                con.execute(f"INSERT INTO {identifier(seen)} SELECT eventid FROM {parsed} WHERE eventid IS NOT NULL")
        for column in ("_f", "_idx", "_marker", "_odd"):
            con.execute(f"ALTER TABLE {parsed} DROP COLUMN {column}")
        con.execute(f"DROP TABLE IF EXISTS {name}")
        con.execute(f"ALTER TABLE {parsed} RENAME TO {name}")
    finally:
        con.execute(f"DROP TABLE IF EXISTS {parsed}")
    scan.rows = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
    scan.duplicates = total - scan.rows
    return scan


def _columns(lowered, spec=CLOUDTRAIL) -> str:
    """The table's columns from a record r (json_transform's struct): row_id is the file's
    number times 2^32 plus the record's place in it, so rows sort in file order."""
    return ", ".join(["_f * 4294967296 + _idx AS row_id"] +
                     [f"{_shape('r.' + identifier(key), kind)} AS {identifier(column)}"
                      for column, key, kind in spec] +
                     [f"lower(r.{identifier(key)}) AS {identifier('_lower_' + column)}"
                      for column, key, kind in spec if column in lowered and kind == TEXT])


_STAGED = "sigma-scan-"
# File systems that hold their files in memory: staging or spilling there would use the memory
# the limit is meant to spare.
_IN_MEMORY = {"tmpfs", "ramfs"}


def scratch_root(folder=None) -> str:
    """Where a run stages log files and DuckDB spills: `folder` when given, else the system's
    temporary folder ($TMPDIR, else /tmp), unless that file system is held in memory (tmpfs:
    /tmp on some systems), then the user's cache folder ($XDG_CACHE_HOME, else ~/.cache)."""
    if folder is not None:
        return str(folder)
    tmp = tempfile.gettempdir()
    if not in_memory(tmp):
        return tmp
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sigma-transpile"
    cache.mkdir(parents=True, exist_ok=True)
    return str(cache)


def in_memory(path) -> bool:
    """Whether the file system holding `path` keeps its files in memory (tmpfs, ramfs), as
    /proc/self/mounts says (Linux; elsewhere unknown, so False)."""
    try:
        mounts = Path("/proc/self/mounts").read_text(errors="replace")
    except OSError:
        return False
    real, best, kind = os.path.realpath(path), "", None
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[1])   # \040 is a space
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, parts[2]
    return kind in _IN_MEMORY


def remove_stale(root=None):
    """Remove scratch folders of runs that were killed (SIGKILL, power loss): ours (same
    user), where runs put them (and /dev/shm, where earlier versions staged), named after a
    process that no longer exists."""
    found = []
    for folder in {Path("/dev/shm"), Path(tempfile.gettempdir()), Path(scratch_root(root))}:
        try:
            found += folder.glob(f"{_STAGED}*-*")
        except OSError:
            continue
    for path in found:
        pid = path.name[len(_STAGED):].split("-", 1)[0]
        try:
            if not pid.isdigit() or path.lstat().st_uid != os.getuid() or not path.is_dir():
                continue
            os.kill(int(pid), 0)
            if _zombie(pid):     # killed, not yet reaped by its parent: it uses nothing any more
                shutil.rmtree(path, ignore_errors=True)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:      # PermissionError: the process exists (another user's); gone meanwhile
            continue


def _zombie(pid: str) -> bool:
    """Whether the process has ended and waits to be reaped (Linux's /proc; elsewhere False)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[:1] == [b"Z"]
    except OSError:
        return False


# Python's JSON reader fails on nesting somewhat under its recursion limit (1000); DuckDB's
# reads any depth. Files that may nest deeper than this are read by events.py, so that both
# engines accept or refuse them alike.
DEEP = 256


def _shallow(data: bytes) -> bool:
    """Whether the JSON surely nests at most DEEP levels: counting every bracket, those in
    strings too (an overestimate), chunk by chunk, depth at the chunk's start plus its
    opening brackets stays within DEEP."""
    brackets = data.translate(None, _NOT_BRACKETS)
    if len(brackets) <= DEEP:
        return True
    depth, step = 0, DEEP // 2
    for start in range(0, len(brackets), step):
        chunk = brackets[start:start + step]
        opened = chunk.count(b"[") + chunk.count(b"{")
        if depth + opened > DEEP:
            return False
        depth += 2 * opened - len(chunk)
    return True


_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def _write_lines(staged: Staged, files, limit, progress, stop, total):
    """One line per file, {"f": n, "d": <the file's JSON>}, into wrapped (CloudTrail's
    {"Records": [...]}) or other, taking files until `limit` bytes are read. Returns the
    files for Python, the blank ones, the longest line; files that cannot be read are in
    staged.errors."""
    slow, blank, longest, size = [], set(), 0, 0
    with open(staged.wrapped, "wb") as w, open(staged.other, "wb") as o:
        for n, path in files:
            if stop is not None and stop.is_set():
                raise Stopped
            staged.files.append((n, path))
            if progress is not None:
                progress(n + 1, total)
            try:
                data = read_event_bytes(path, staged.max_bytes)
            except EventsError as e:
                staged.errors[n] = e
                continue
            size += len(data)              # files for Python count too: they are read per batch
            screened = _SCREEN.search(data) is not None
            line = _line(data, screened)
            if line is None:
                slow.append(n)
            elif not line:
                blank.add(n)
            else:
                out = w if _WRAPPER.match(line) else o
                if screened and cloudtrail.suspect(line):
                    staged.suspect.append(n)
                out.write(b'{"f":%d,"d":' % n)
                out.write(line)
                out.write(b"}\n")
                longest = max(longest, len(line))
            if limit is not None and size >= limit:
                break
    return slow, blank, longest


def _line(data: bytes, screened: bool = True) -> bytes | None:
    """A file's JSON as one line DuckDB reads as events.py reads the file (b"" when blank),
    or None when only events.py can tell (deep nesting, not UTF-8, _LENIENT JSON, line
    breaks where the JSON is not valid). screened False: _SCREEN found nothing in `data`."""
    if not _shallow(data):
        return None
    if data[:3] == _UTF8_BOM:
        data = data[3:]
    if data[:1].isspace() or data[-1:].isspace():
        data = data.strip()
    if not data:
        return data
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if screened and any(search.search(data) for search in _LENIENT):
        return None
    if b"\n" in data or b"\r" in data:
        # A line break inside a JSON string is invalid JSON, but not once it is a space:
        # only JSON that Python reads (so with breaks between tokens alone) is joined up.
        if not _valid_json(data):
            return None
        data = data.replace(b"\r", b" ").replace(b"\n", b" ")
    return data


def _valid_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return False
    return True


def _read_slowly(con, paths: dict, numbers, name: str, lowered, spec, errors: dict, max_bytes: int):
    """Read files (file number -> path) with events.py; their records join the table `name`,
    their errors `errors`."""
    rows = []
    for n in numbers:
        path = paths[n]
        try:
            events = parse_events(read_text(path, max_bytes), path)
            rows += [{"f": n, "i": i, "j": json.dumps(e)} for i, e in enumerate(events)]
        except EventsError as e:
            errors[n] = e
        except RecursionError:
            errors[n] = EventsError("JSON nested too deeply", path=path)
    if not rows:
        return
    con.execute("CREATE OR REPLACE TEMP TABLE _slow AS SELECT r.f, r.i, r.j, json_valid(r.j) AS ok "
                "FROM (SELECT unnest($rows::STRUCT(f BIGINT, i BIGINT, j VARCHAR)[]) AS r)", {"rows": rows})
    for (n,) in con.execute("SELECT DISTINCT f FROM _slow WHERE NOT ok ORDER BY f").fetchall():
        # Python reads it, DuckDB's JSON does not (a lone surrogate escape, a number out of range)
        errors[n] = EventsError("DuckDB cannot read this file's JSON", path=paths[n])
    con.execute(f"INSERT INTO {name} SELECT {_columns(lowered, spec)}, _f, _idx, FALSE, FALSE FROM ("
                f"SELECT f AS _f, i AS _idx, json_transform(j, {_structure_literal(spec)}) AS r FROM _slow "
                f"WHERE f NOT IN (SELECT f FROM _slow WHERE NOT ok))")
    con.execute("DROP TABLE _slow")


def _structure(spec) -> dict:
    """json_transform's structure for a spec, by the records' own keys; JSON where SQL reshapes."""
    return {key: _structure(kind) if isinstance(kind, tuple) else
            "JSON" if kind in (JSON, MAP) or isinstance(kind, list) else kind
            for _, key, kind in spec}


def _structure_literal(spec=CLOUDTRAIL) -> str:
    return literal(json.dumps(_structure(spec)))


def _duck_record(spec) -> str:
    """The DuckDB type json_transform makes of _structure(spec)."""
    return "STRUCT(" + ", ".join(f"{literal(key).replace(chr(39), chr(34))} "
                                 f"{_duck_record(kind) if isinstance(kind, tuple) else 'JSON' if kind in (JSON, MAP) or isinstance(kind, list) else kind}"
                                 for _, key, kind in spec) + ")"


def _empty(x: str, spec) -> str:
    """SQL: every member of the record x is NULL (at any depth)."""
    return " AND ".join(_empty(f"{x}.{identifier(key)}", kind) if isinstance(kind, tuple) else f"{x}.{identifier(key)} IS NULL"
                        for _, key, kind in spec)


def _shape(x: str, kind) -> str:
    """SQL turning json_transform's value x into the column load_cloudtrail() would hold. JSON
    values are minified JSON text here: the first character tells a string or a list."""
    if isinstance(kind, tuple):
        return f"CASE WHEN {x} IS NOT NULL THEN {_struct(x, kind)} END"
    first = f"left(CAST({x} AS VARCHAR), 1)"
    if isinstance(kind, list):   # an object is a list of one; items that are not objects are left
        element = _structure(kind[0])   # out (here: their struct of NULLs, which no query can tell)
        items = (f"CASE {first} WHEN '[' THEN list_filter(json_transform({x}, {literal(json.dumps([element]))}), "
                 f"lambda e: e IS NOT NULL) WHEN '{{' THEN [json_transform({x}, {literal(json.dumps(element))})] END")
        return f"list_transform({items}, lambda e: {_struct('e', kind[0])})"
    if kind == MAP:              # null values are no values
        return (f"CASE WHEN {first} = '{{' THEN map_from_entries(list_filter(map_entries("
                f"json_transform({x}, '\"MAP(VARCHAR, VARCHAR)\"')), lambda e: e.value IS NOT NULL)) END")
    if kind == JSON:             # JSON text, but a string is the string itself (evaluate.text)
        return f"CASE WHEN {first} = '\"' THEN {x} ->> '$' ELSE CAST({x} AS VARCHAR) END"
    return x


def _struct(x: str, spec) -> str:
    return "struct_pack(" + ", ".join(f"{identifier(c)} := {_shape(x + '.' + identifier(k), t)}"
                                      for c, k, t in spec) + ")"

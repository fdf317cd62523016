"""The warm cache of `convert`: what each rule file became, so that converting an unchanged
repository again only reads and hashes its files.

An entry is the outcome of one rule file for one conversion: every document's metadata, load
errors, and per rule the result, query, table and errors. It is found by a key that is the
SHA-256 of everything the outcome depends on:
  - the tool: its version, the Python version, and the bytes of its code, grammar and
    templates (a change to any of them, even in a checkout, makes new keys);
  - the run: the target, the mapping file named with -m and its bytes, --table, the
    placeholder values;
  - the rule file: its path as named (messages name it) and its bytes.
A changed rule file has a new key: only it is loaded and converted again. A set holding
filters or correlations is converted whole (a filter changes the rules it names, a
correlation reads the rules it references), with no entry read; its entries are still
written.

Entries live in $XDG_CACHE_HOME/sigma-transpile (~/.cache/sigma-transpile), one file each,
written to a temporary name and renamed into place, so concurrent runs never see half an
entry. A run also keeps the entries it used in one pack, named by the run's options and the
files' paths, which the next run over the same files reads instead of a file per rule (a
changed rule's entry is read from its own file, and the pack is written again). Each file
starts with a checksum of its content; an entry that does not check out, or cannot be read,
is a miss and is written again. The folder is kept under MAX_BYTES: after a
run that wrote entries, the least recently used go first. `convert --no-cache`, or the
environment variable SIGMA_TRANSPILE_NO_CACHE=1, bypasses it.

Entries are plain data (marshal: strings, numbers, lists, dicts), never code; a file whose
outcome holds anything else is simply not cached.
"""
from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import re
import stat
import sys
import tempfile
import time
from pathlib import Path

from .errors import ConditionError, RuleError, TranspileError, Unsupported

VERSION = b"sigma-transpile cache 1"
MAGIC = b"STC1"
MAX_BYTES = 256 * 1024 * 1024     # the whole folder
KEEP_FRACTION = 0.75              # pruning stops at this share of MAX_BYTES
TOUCH_AFTER = 24 * 3600           # a hit older than this is marked used again (mtime)
PACKS = "packs"                   # the folder of packs (Conversion.prepare)
MIN_SHARE = 100                   # files a process takes, at least, when a cold run is shared
# A top-level filter or correlation key: such a set is converted whole, in one process.
# (A line start as "\n" first, not ^ with re.M: a literal lets the search skip ahead, 4x faster.)
_LINK = rb"[\"']?(?:correlation|filter)[\"']?[ \t]*:"
_FIRST_LINE_LINK, _LATER_LINE_LINK = re.compile(_LINK), re.compile(b"\n" + _LINK)
_ERRORS = {c.__name__: c for c in (TranspileError, RuleError, ConditionError, Unsupported)}
_PACKAGE = Path(__file__).resolve().parent


def _links(data: bytes) -> bool:
    return _FIRST_LINE_LINK.match(data) is not None or _LATER_LINE_LINK.search(data) is not None


_off = False      # the run's --no-cache (cli.main): every cache of the process at once


def enabled(no_cache: bool = False) -> bool:
    return not (no_cache or _off) and os.environ.get("SIGMA_TRANSPILE_NO_CACHE", "") in ("", "0")


def use(on: bool):
    """Turn this process's caches on or off: converted rules, and the analysed condition
    grammar and compiled templates (which make a first conversion start faster)."""
    global _off
    _off = not on


@contextlib.contextmanager
def grammar(name: str, text: str):
    """Where Lark keeps its analysis of the grammar `text`: yields a path for Lark's `cache`
    option, or None. The file is named by the grammar's hash and Lark's and Python's versions;
    a missing one is written under a temporary name by Lark and renamed into place."""
    if not enabled():
        yield None
        return
    import lark
    digest = hashlib.sha256(f"{text}\0{lark.__version__}\0{sys.version}".encode()).hexdigest()[:32]
    final = os.path.join(str(folder()), "v1", "lark", f"{name}-{digest}")
    if os.path.exists(final):
        yield final
        return
    tmp = None
    with _quiet():
        os.makedirs(os.path.dirname(final), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(final), prefix=".tmp-")
        os.close(fd)
        os.unlink(tmp)                     # Lark writes it only when it built the parser
    yield tmp
    if tmp is not None and os.path.exists(tmp):
        with _quiet():
            os.replace(tmp, final)


def templates():
    """A Jinja bytecode cache in the cache folder (compiled templates keyed by their source's
    checksum), or None. A damaged file is compiled again, never an error."""
    if not enabled():
        return None
    import jinja2

    class Bytecode(jinja2.FileSystemBytecodeCache):
        def load_bytecode(self, bucket):
            try:
                super().load_bytecode(bucket)
            except Exception:             # noqa: BLE001 - a damaged file: compile the template
                bucket.reset()

        def dump_bytecode(self, bucket):
            with _quiet():
                super().dump_bytecode(bucket)

    path = os.path.join(str(folder()), "v1", "jinja")
    with _quiet():
        os.makedirs(path, exist_ok=True)
        return Bytecode(path)
    return None


def folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sigma-transpile"


def tool_fingerprint() -> bytes:
    """The version, the Python version, and the bytes of every file the tool reads to convert."""
    from .resources import resource_dir
    digest = hashlib.sha256(VERSION + sys.version.encode())
    roots = [_PACKAGE, resource_dir("grammars"), resource_dir("templates")]
    for root in roots:
        for path in sorted(_files(Path(root))):
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.digest()


def _files(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if not name.endswith((".pyc", ".pyo")):
                yield Path(dirpath, name)


class Store:
    """Entries on disk: get(key) -> data or None, put(key, data), prune()."""

    def __init__(self, root: Path | None = None, max_bytes: int = MAX_BYTES):
        self.root = str((root or folder()) / "v1")
        self.max_bytes = max_bytes
        self.wrote = 0
        self.now = time.time()

    def _path(self, key: str) -> str:
        return f"{self.root}/{key[:2]}/{key[2:]}"

    def get(self, key: str):
        return _loads(self.body(key))

    def put(self, key: str, data) -> bool:
        """Write an entry atomically; False (and nothing written) if `data` is not plain data or
        the folder cannot be written: the cache never fails a run."""
        return self.put_body(key, _dumps(data))

    def body(self, key: str) -> bytes | None:
        """An entry as stored (marshalled), if it checks out."""
        return self.read(self._path(key))

    def put_body(self, key: str, body: bytes | None) -> bool:
        return body is not None and self.write(self._path(key), body)

    def pack(self, name: str) -> dict:
        """The pack `name`: {key: an entry's marshalled body}, or {} (none, or damaged)."""
        found = _loads(self.read(f"{self.root}/{PACKS}/{name}"))
        return found if isinstance(found, dict) else {}

    def put_pack(self, name: str, bodies: dict) -> bool:
        body = _dumps(bodies)
        return body is not None and self.write(f"{self.root}/{PACKS}/{name}", body)

    def read(self, path: str) -> bytes | None:
        """A file's body, if its checksum checks out; marked used again when it is old."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            raw = os.read(fd, st.st_size + 1) if stat.S_ISREG(st.st_mode) else b""
        except OSError:
            return None
        finally:
            os.close(fd)
        body = raw[len(MAGIC) + 32:]
        if raw[:len(MAGIC)] != MAGIC or raw[len(MAGIC):len(MAGIC) + 32] != hashlib.sha256(body).digest():
            return None
        if self.now - st.st_mtime > TOUCH_AFTER:
            with _quiet():
                os.utime(path)
        return body

    def write(self, path: str, body: bytes) -> bool:
        """Write a file atomically (a temporary name renamed into place), its checksum first."""
        with _quiet():
            folder = os.path.dirname(path)
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(MAGIC + hashlib.sha256(body).digest() + body)
                os.replace(tmp, path)
            except BaseException:
                with _quiet():
                    os.unlink(tmp)
                raise
            self.wrote += 1
            return True
        return False

    def prune(self):
        """Remove the least recently used entries (and stale temporary files) while the folder is
        over max_bytes, down to KEEP_FRACTION of it."""
        entries, total = [], 0
        now = time.time()
        with _quiet():
            for sub in os.scandir(self.root):
                if not sub.is_dir(follow_symlinks=False):
                    continue
                for e in os.scandir(sub.path):
                    st = e.stat(follow_symlinks=False)
                    if e.name.startswith(".tmp-") and now - st.st_mtime > 3600:
                        with _quiet():
                            os.unlink(e.path)       # left by a run that was killed
                        continue
                    entries.append((st.st_mtime, st.st_size, e.path))
                    total += st.st_size
        if total <= self.max_bytes:
            return
        for _, size, path in sorted(entries):
            with _quiet():
                os.unlink(path)
            total -= size
            if total <= self.max_bytes * KEEP_FRACTION:
                break


def _dumps(data) -> bytes | None:
    try:
        return marshal.dumps(data)
    except ValueError:             # not plain data
        return None


def _loads(body):
    if body is None:
        return None
    try:
        return marshal.loads(body)
    except (ValueError, EOFError, TypeError):
        return None


class _quiet:
    """Ignore OS errors: a cache that cannot be read or written is a cache that misses."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, OSError)


# --- what an entry holds ----------------------------------------------------------------------

def error_data(e: TranspileError) -> tuple:
    return (type(e).__name__ if type(e).__name__ in _ERRORS else "TranspileError",
            e.message, e.path, e.where, e.col, e.source, e.kind)


def error_from(data) -> TranspileError:
    cls, message, path, where, col, source, kind = data
    return _ERRORS[cls](message, path=path, where=where, col=col, source=source, kind=kind)


# --- convert's use of it ----------------------------------------------------------------------

class Conversion:
    """The entries of one `convert` run: batch.load_all asks load(), batch.convert_all asks
    record(); save() writes what was missing.

    A hit gives the file's documents as light Rules (metadata, no query: nothing reads it but the
    backend, which is not asked) with their stored outcomes; a miss loads the file."""

    def __init__(self, store: Store | None, context: bytes, convert=None, keep=None):
        self.store = store            # None: entries live for this run only (--no-cache)
        self.context = context
        self.convert = convert        # rule -> batch.Record: how the run converts a rule
        self.keep = keep              # rule -> bool: the run's --level/--status/--tag, or None
        self.outcomes: dict = {}      # (path, doc) -> stored outcome, for the hits
        self.missed: dict = {}        # path -> key, for the files loaded in full
        self.ready: dict = {}         # path -> entry made by prepare(), for load()
        self.stored: dict = {}        # path -> entry prepare() read from the folder, for load()
        self.prepared = False         # prepare() wrote entries: the folder may need pruning
        self.hits = 0
        self.pack = None              # the name of this set of files' pack, when prepare() read it
        self.packed: dict = {}        # key -> entry body, as read from the pack
        self.used: dict = {}          # key -> entry body, of every entry this run used or wrote

    @classmethod
    def open(cls, target, mapping=None, table=None, placeholders=None, root=None, convert=None, keep=None):
        """The cache for converting to `target` with these options (cli.cmd_convert's)."""
        from . import files
        from .rule import MAX_FILE_BYTES
        mapping_bytes = b""
        if mapping is not None:
            with contextlib.suppress(files.Unreadable):     # the backend has said what is wrong with it
                mapping_bytes = files.read_limited(mapping, MAX_FILE_BYTES)
        context = hashlib.sha256(b"\0".join([
            tool_fingerprint(), target.encode(), repr(mapping).encode(), mapping_bytes,
            repr(table).encode(), repr(placeholders).encode()])).digest()
        return cls(Store(root), context, convert, keep)

    @classmethod
    def unstored(cls, convert=None, keep=None):
        """No cache folder (--no-cache): entries are only what prepare() makes on several cores."""
        return cls(None, b"", convert, keep)

    def prepare(self, files, placeholders=None):
        """Load and convert the files that have no entry, shared among the machine's cores
        (parallel.split), keeping each file's entry for load() (and writing it, with a cache
        folder). A set that may hold filters or correlations is left to load() and convert_all,
        since its rules' outcomes depend on other files (a key missed here: needs_full_rules)."""
        from . import parallel, rule
        todo = []
        files = [str(f) for f in files]
        if self.store is not None:
            # A warm run reads its entries from one file, the pack of the files named (same
            # paths, same options): not a file per rule.
            self.pack = hashlib.sha256(self.context + "\0".join(files).encode()).hexdigest()
            self.packed = self.store.pack(self.pack)
        for path in files:
            data, _ = rule.read_file(path)
            if data is None:
                continue                  # load() reports it
            if _links(data):
                return
            if self.store is None:
                todo.append((path, None, data))
                continue
            key = self.key(path, data)
            body = self.packed.get(key) or self.store.body(key)
            entry = _loads(body)          # read now: load() takes it without reading the file again
            if entry is not None:
                self.stored[path] = entry
                self.used[key] = body
            else:
                todo.append((path, key, data))
        count = parallel.processes(len(todo), MIN_SHARE)
        if count < 2 or self.convert is None:
            return                        # one process: load() and convert_all as ever
        made = parallel.split(todo, lambda item: self._made(*item, placeholders), count)
        for (path, key, _), result in zip(todo, made):
            entry, body = result or (None, None)      # None: a worker died; load() loads the file
            if entry is not None:
                self.ready[path] = entry
            if body is not None:
                self.used[key] = body
        self.prepared = self.store is not None

    def _made(self, path, key, data, placeholders):
        """A file's entry, made from its bytes (in any process); written when it is whole."""
        from . import rule
        rules, errors = rule.load_text(data, path, placeholders)
        # Filters and correlations get no outcome (theirs depend on other files), nor the rules
        # the run leaves out; an entry without them all is not written.
        entry, whole = self._entry(rules, errors, lambda r: self.convert(r) if r.kind == "rule" and (
            self.keep is None or self.keep(r)) else None)
        body = _dumps(entry) if whole and self.store is not None else None
        return entry, body if body is not None and self.store.put_body(key, body) else None

    def key(self, path: str, data: bytes) -> str:
        return hashlib.sha256(self.context + path.encode() + b"\0" + data).hexdigest()

    def load(self, path, placeholders=None):
        """rule.load_file(path, placeholders), from the entry when there is one."""
        from . import rule
        path = str(path)
        entry = self.ready.pop(path, None)
        if entry is not None:
            return self._from_entry(path, entry)
        entry = self.stored.pop(path, None)
        if entry is not None:
            hit = self._usable(path, entry)
            if hit is not None:
                return hit
        data, errors = rule.read_file(path)
        if data is None:
            return [], errors
        key = self.key(path, data)
        hit = self._hit(path, key) if self.store is not None else None
        if hit is not None:
            return hit
        self.missed[path] = key
        return rule.load_text(data, path, placeholders)

    def _hit(self, path, key):
        """The file's rules and errors from its stored entry, or None."""
        body = self.store.body(key)
        entry = _loads(body)
        if entry is None:
            return None
        self.used[key] = body
        return self._usable(path, entry)

    def _usable(self, path, entry):
        """The file's rules and errors from an entry read from the folder, or None."""
        try:
            return self._from_entry(path, entry)
        except (KeyError, TypeError, ValueError):
            return None               # not what this version writes: load it and write it again

    def _from_entry(self, path, entry):
        from .rule import Rule
        rules = []
        for doc, kind, meta, logsource, conditions, outcome in entry["docs"]:
            rules.append(Rule(path, doc, kind, meta, logsource, None, conditions))
            if outcome is not None:
                self.outcomes[(path, doc)] = outcome
        self.hits += 1
        return rules, [error_from(e) for e in entry["errors"]]

    def needs_full_rules(self, rules) -> bool:
        """Whether the set holds filters or correlations: then every rule is converted from its
        full load (their outcomes depend on other files) and no entry is used or written."""
        return any(r.kind != "rule" for r in rules)

    def record(self, rule):
        """The stored outcome of a rule from a hit, as a batch.Record; None for a rule loaded in full."""
        outcome = self.outcomes.get((rule.path, rule.doc))
        if outcome is None or rule.query is not None:
            return None
        from .batch import Record
        result, query, table, extra, errors = outcome
        return Record(rule.path, rule.doc, rule, result, query, table, extra, [error_from(e) for e in errors])

    def save(self, rules, errors, records, convert_one):
        """Write an entry for each file loaded in full. A rule the run did not convert (left out
        by --level, --status or --tag) is converted now, so that the entry is whole. Then the
        pack, if it is not what this run used."""
        if self.store is None:
            return
        wrote = self.missed or self.prepared
        done = {(r.path, r.doc): r for r in records if r.rule is not None}
        by_file: dict = {path: ([], []) for path in self.missed}
        for r in rules:
            if r.path in by_file:
                by_file[r.path][0].append(r)
        for e in errors:
            label = str(e.path or "")
            path = label if label in by_file else label.rpartition("#")[0]
            if path in by_file:
                by_file[path][1].append(e)
        for path, (file_rules, file_errors) in by_file.items():
            entry, _ = self._entry(file_rules, file_errors,
                                   lambda r: done.get((r.path, r.doc)) or convert_one(r))
            key, body = self.missed[path], _dumps(entry)
            if self.store.put_body(key, body):
                self.used[key] = body
        if self.pack is not None and self.used.keys() != self.packed.keys():
            wrote = self.store.put_pack(self.pack, self.used) or wrote
        if wrote:
            self.store.prune()

    @staticmethod
    def _entry(file_rules, file_errors, record_of) -> tuple[dict, bool]:
        """A file's entry, each rule's outcome from record_of(rule) (a batch.Record, or None:
        no outcome), and whether it is whole (every rule's outcome in it)."""
        docs, whole = [], True
        for r in file_rules:
            record = record_of(r)
            outcome = record and (record.result, record.query, record.table, record.extra,
                                  [error_data(e) for e in record.errors])
            whole = whole and outcome is not None
            docs.append((r.doc, r.kind, r.meta, r.logsource, r.conditions, outcome))
        return {"docs": docs, "errors": [error_data(e) for e in file_errors]}, whole

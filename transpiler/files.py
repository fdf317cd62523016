"""The files the tool reads and writes, and nothing else of the file system.

Reading: regular files only (a FIFO would hang a batch, a device never ends; neither is
opened), and never more than a limit, stat-checked before reading and enforced while
reading; gzip is inflated in chunks and stopped at the limit. Folders: walked at any depth,
symlinked folders followed, each real folder once, so a symlink loop ends where it starts.
Writing: through a temporary file and a rename, with the mode the user's umask gives, under
names that fit the file system.

Problems are raised as Unreadable (a short sentence); the caller turns them into its own
error (a rule's, an event file's) with the path.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import io
import os
import re
import signal
import stat
import tempfile
import zlib
from pathlib import Path

try:         # zlib-ng: the same inflate, three times as fast (logs are mostly .json.gz)
    from zlib_ng import zlib_ng as ZLIB
except ImportError:       # installed without its dependencies: the standard library's
    ZLIB = zlib

_CHUNK = 1 << 20          # bytes inflated per step
_KEEP = 128 << 20         # inflated bytes kept before a file is suspected of being a bomb
MAX_NAME_BYTES = 150      # longer output names are shortened (NAME_MAX is 255 bytes on most
                          # file systems, 143 on eCryptfs; the temporary name adds more)


class Unreadable(Exception):
    """Why a file or folder cannot be read, in one short sentence."""


class TooLarge(Unreadable):
    """More bytes than the limit (after decompression for gzip)."""


# --- sizes ---------------------------------------------------------------------------------------

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*", re.I)


def parse_size(text: str) -> int:
    """'512M', '2G', '1GiB', '1048576' -> bytes (K, M, G, T are powers of 1024)."""
    m = _SIZE.fullmatch(str(text))
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"{text!r} is not a size such as 512M, 2G or 1048576")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def size_text(n: int) -> str:
    """1073741824 -> '1 GiB'; sizes that are not a whole number of units stay in bytes."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n:,} bytes"


# --- reading -------------------------------------------------------------------------------------

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _kind(mode) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _regular(path) -> tuple[int, int]:
    """(descriptor, size) of a regular file opened for reading. Anything else is refused from
    its stat, before it is opened; O_NONBLOCK keeps a FIFO swapped in meanwhile from blocking
    the open."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise Unreadable(f"cannot read: {_kind(mode)}, not a regular file")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise Unreadable(f"cannot read: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Unreadable(f"cannot read: {_kind(st.st_mode)}, not a regular file")
        return fd, st.st_size
    except BaseException as e:
        os.close(fd)
        if isinstance(e, OSError):
            raise Unreadable(f"cannot read: {e.strerror or e}") from None
        raise


@contextlib.contextmanager
def open_regular(path):
    """(binary file, size) of a regular file (_regular)."""
    fd, size = _regular(path)
    with os.fdopen(fd, "rb", buffering=0) as f:
        yield f, size


def read_limited(path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; TooLarge (from its size, before
    reading) otherwise. (A rule file at a time: no file object, one read.)"""
    fd, size = _regular(path)
    try:
        if size > limit:
            raise _too_large(limit)
        data = os.read(fd, size + 1)        # one read for a file that did not grow meanwhile
        if len(data) <= size:
            return data
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as f:      # it grew: read on
            f.seek(0)
            return _read(f, size, limit)
    except OSError as e:
        raise Unreadable(f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)


def read_text_limited(path, limit: int) -> str:
    """read_limited() as UTF-8 text (a byte order mark dropped); UnicodeDecodeError if it is not."""
    return read_limited(path, limit).decode("utf-8-sig")


def read_maybe_gzip(path, limit: int, gz: bool = False) -> bytes:
    """A file's bytes, inflated when it is gzip (`gz`, or the gzip magic number), at most
    `limit` bytes after inflating. A gzip bomb costs the time to inflate `limit` bytes, and
    128 MiB of memory at most: past that the output is only counted, and a file found to fit
    is inflated again."""
    with open_regular(path) as (f, size):
        try:
            if not (gz or f.read(2) == b"\x1f\x8b"):
                f.seek(0)
                return _read(f, size, limit)
            kept = _gunzip(f, limit, _KEEP)
            return kept if kept is not None else _gunzip(f, limit, limit)
        except EOFError as e:
            raise Unreadable(f"cannot read: {e}") from None
        except ZLIB.error as e:      # "Error -3 while decompressing data: incorrect header check"
            raise Unreadable(f"cannot read: not gzip data, or damaged ({str(e).rpartition(': ')[2]})") from None
        except OSError as e:
            raise Unreadable(f"cannot read: {e.strerror or e}") from None


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"file is larger than {size_text(limit)}")


def _read(f, size: int, limit: int) -> bytes:
    if size > limit:
        raise _too_large(limit)
    data = f.read(size + 1)          # one read for a file that did not grow meanwhile
    if len(data) <= size:
        return data
    out = io.BytesIO()
    out.write(data)                  # (io.BytesIO(data) would write the rest over it, from 0)
    while chunk := f.read(min(_CHUNK, limit + 1 - out.tell())):
        out.write(chunk)
        if out.tell() > limit:
            raise _too_large(limit)
    return out.getvalue()


def _gunzip(f, limit: int, keep: int) -> bytes | None:
    """Inflate every gzip member of f from its start (zlib checks each one's CRC and length);
    None once more than `keep` bytes came out (the rest is inflated to check the limit, and
    dropped)."""
    f.seek(0)
    out, size = [], 0                # chunks, joined once at the end (no copy for a single one)
    inflate, data, started = ZLIB.decompressobj(31), b"", False
    while True:
        if not data and not (data := f.read(_CHUNK)):
            break
        if inflate.eof:              # another member may follow, after zero padding (as gzip allows)
            if not (data := data.lstrip(b"\0")):
                continue
            inflate = ZLIB.decompressobj(31)
        started = True
        chunk = inflate.decompress(data, _CHUNK)
        data = inflate.unused_data if inflate.eof else inflate.unconsumed_tail
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        if out is not None:
            out.append(chunk)
            if size > keep:
                out = None
    if started and not inflate.eof:
        raise EOFError("the gzip data ends before its end marker (a truncated file?)")
    if out is None:
        return None
    return out[0] if len(out) == 1 else b"".join(out)


# --- folders -------------------------------------------------------------------------------------

def walk(paths, suffixes: tuple, other: tuple = ()) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """The files named, and under the folders named every file whose name ends in one of
    `suffixes` (any case), at any depth; sorted, each once; but none whose name ends in one of
    `other` (files of another kind with the same suffix). Symlinked folders are followed,
    each real folder read once (a loop ends there). Also: (path, why) for each folder that
    cannot be read and each file whose name is not UTF-8 (NOT_UTF8), and the folders named
    that hold no such file (a mistyped path); paths in these as messages show them."""
    found, unreadable, empty, seen = set(), [], [], set()

    def add(path: str):
        if path.isascii() or _utf8(path):
            found.add(path)
        else:
            unreadable.append((shown_path(path), NOT_UTF8))

    # Strings, not Paths: a Path per file costs more than the walk itself.
    for p in map(Path, paths):
        if not p.is_dir():
            if not p.name.lower().endswith(other):
                add(str(p))          # read as it is: the reader says what is wrong with it
            continue
        hits, trouble, again = 0, len(unreadable), False
        stack = [str(p)]
        while stack:
            folder = stack.pop()
            try:
                st = os.stat(folder)
                if (st.st_dev, st.st_ino) in seen:
                    again = True
                    continue
                seen.add((st.st_dev, st.st_ino))
                with os.scandir(folder) as entries:
                    entries = sorted(entries, key=lambda e: e.name, reverse=True)
            except OSError as e:
                unreadable.append((shown_path(folder), f"cannot read folder: {e.strerror or e}"))
                continue
            # As Path would write it: "./x" is "x" (the same file named as "x" is found once).
            prefix = "" if folder == "." else folder if folder.endswith("/") else folder + "/"
            for entry in entries:
                if _is_dir(entry):
                    stack.append(prefix + entry.name)
                elif (name := entry.name.lower()).endswith(suffixes) and not name.endswith(other):
                    add(prefix + entry.name)
                    hits += 1
        if not hits and len(unreadable) == trouble and not again:
            empty.append(shown_path(p))
    return sorted(found), unreadable, empty


# A name that is not UTF-8 (Linux allows any bytes) reaches Python with surrogates in it: no
# output (JSON, CSV, a query's comment, a SIEM file) can hold it, so the file is refused.
NOT_UTF8 = "cannot read: the file name is not UTF-8 text (rename the file)"


def _utf8(path: str) -> bool:
    try:
        path.encode()
    except UnicodeEncodeError:
        return False
    return True


def shown_path(path) -> str:
    """A path as messages show it: bytes that are not UTF-8 as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_dir(entry) -> bool:
    try:
        return entry.is_dir()        # follows a symlink
    except OSError:
        return False


# --- writing -------------------------------------------------------------------------------------

@functools.cache
def _umask() -> int:
    """The process's umask: from /proc (Linux), else by setting it and setting it back."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _mode(path: Path) -> int:
    """A file that exists keeps its permissions; a new one gets what the umask allows."""
    try:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode):
            return stat.S_IMODE(st.st_mode)
    except OSError:
        pass
    return 0o666 & ~_umask()


class Unwritable(OSError):
    """An output path that cannot be written: a folder, a device, a file inside a file."""


def output_problem(path, folder: bool = False) -> str | None:
    """Why `path` cannot be written as a file (or as a folder, with `folder`), or None.
    Commands check their output paths before they start, so that a mistyped -o fails at once."""
    path = Path(os.path.realpath(path))
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and folder and not stat.S_ISDIR(mode):
        return f"is {_kind(mode) if not stat.S_ISREG(mode) else 'a file'}, not a folder"
    if mode is not None and not folder and not stat.S_ISREG(mode):
        return f"is {_kind(mode)}, not a regular file" + ("; name a file" if stat.S_ISDIR(mode) else "")
    above = path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        return f"{above} is not a folder"
    return None


@contextlib.contextmanager
def atomic_output(path, binary: bool = False):
    """A file object whose content replaces `path` when the block ends without an error:
    written to a temporary file in the same folder, then renamed, so readers, and a run
    stopped halfway (Ctrl-C, SIGTERM), never see half a file nor a leftover temporary file.
    An error or KeyboardInterrupt inside the block leaves `path` as it was. A symlink's
    target is replaced, not the link. A path that is not a regular file (a folder, a device
    such as /dev/null) raises Unwritable before anything is written."""
    path, fd, tmp = _beside(path)
    try:
        with errors_name(path), (os.fdopen(fd, "wb") if binary else
                                 os.fdopen(fd, "w", encoding="utf-8", newline="")) as f:
            yield f       # a write error that names no file is this file's (scratch files name theirs)
        with _signals_deferred():
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_all_or_none(items, progress=None) -> None:
    """Write each (path, text), all or none: each to a temporary file beside it first, then,
    once every one is written, each renamed into place. When one cannot be written (a full
    disk) the temporary files are removed and every path keeps what it had. progress(done,
    total) follows the writing."""
    items, staged, renamed = list(items), [], 0
    try:
        for i, (path, text) in enumerate(items, 1):
            path, fd, tmp = _beside(path)
            staged.append((tmp, path))
            with errors_name(path), os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            if progress is not None:
                progress(i, len(items))
        with _signals_deferred():
            for tmp, path in staged:
                os.replace(tmp, path)
                renamed += 1
    finally:
        for tmp, _ in staged[renamed:]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _beside(path) -> tuple[Path, int, str]:
    """(the real `path`, the descriptor and name of a new temporary file beside it, with the
    mode `path` would get), its folder made if missing. Unwritable for a path that is not a
    regular file; an OSError names `path`."""
    path = Path(os.path.realpath(path))
    problem = output_problem(path)
    if problem:
        raise Unwritable(errno.EINVAL, problem, str(path))
    with errors_name(path):
        path.parent.mkdir(parents=True, exist_ok=True)     # output_problem() accepts missing folders
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{_clip(path.name, 40)}.", suffix=".tmp")
        try:
            os.fchmod(fd, _mode(path))
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
    return path, fd, tmp


@contextlib.contextmanager
def errors_name(path):
    """An OSError raised inside that names no file (a write's "No space left on device")
    names `path`: the message says which file or folder ran out of room."""
    try:
        yield
    except OSError as e:
        if e.filename:
            raise
        raise OSError(e.errno, e.strerror, str(path)) from None


def write_atomic(path, text: str):
    """Write `text` to `path` atomically (atomic_output): UTF-8, \\n line ends."""
    with _signals_deferred(), atomic_output(path) as f:
        f.write(text)


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT and SIGTERM back (they are delivered at the end), where the OS can."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def fitting_name(stem: str, extension: str, limit: int = MAX_NAME_BYTES) -> str:
    """stem.extension, or when that is longer than `limit` UTF-8 bytes, the start of the
    stem, `~` and eight hex digits of the whole stem's SHA-256: readable, unique, the same
    every run."""
    name = f"{stem}.{extension}"
    if len(os.fsencode(name)) <= limit:
        return name
    tag = "~" + hashlib.sha256(os.fsencode(stem)).hexdigest()[:8]
    return f"{_clip(stem, limit - len(os.fsencode(f'{tag}.{extension}')))}{tag}.{extension}"


def _clip(text: str, limit: int) -> str:
    """The longest start of text that is at most `limit` bytes as a file name, cut between
    characters."""
    text = text[:max(limit, 0)]
    while len(os.fsencode(text)) > limit:
        text = text[:-1]
    return text

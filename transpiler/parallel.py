"""Work shared among processes: the caller and forked workers take items until none is left.

A cold `convert` spends its time loading and converting files one by one, each on its own;
on a machine with several cores, workers forked from the running process (they share what
it has imported and read, and need no pickled state) take their share, and send back what
each item became as plain data (marshal: strings, numbers, lists, dicts). An item whose
result does not come back (a worker failed or was killed, a result that is no plain data) is
None: the caller does it itself, so a worker can make a run slower, never different.

Items are claimed, not dealt: a pipe holds every chunk's number, 4 bytes each, written
before the workers start; each process reads 4 bytes for its next chunk, so a process that
started later or met bigger files simply takes fewer. (A read of 4 bytes from a pipe whose
content is whole 4-byte numbers gets one whole number: Linux reads a pipe under its lock.)

Only where fork is the platform's way to start a process (Linux); elsewhere, one process.
"""
from __future__ import annotations

import marshal
import os
import signal
import sys

MAX_PROCESSES = 4      # the work is a second or two: more processes cost more than they save
MAX_CHUNKS = 8192      # chunk numbers the claims pipe holds (32 KiB, under any pipe's capacity)


def processes(items: int, least: int) -> int:
    """How many processes (the caller included) to share `items` among, each taking at
    least `least` of them: one where forking is not the platform's way or there is one core."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_PROCESSES, items // max(1, least)))


def split(items: list, work, count: int) -> list:
    """[work(item) for item in items], shared among `count` processes (this one included).
    A result that does not come back is None. Interrupted, the workers are killed before the
    exception goes on."""
    if count < 2 or len(items) < 2:
        return [work(item) for item in items]
    size = -(-len(items) // MAX_CHUNKS)          # items per chunk
    chunks = -(-len(items) // size)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()            # a worker must not hold a copy of unwritten output
    claims, fill = os.pipe()
    workers = []
    try:
        os.write(fill, b"".join(n.to_bytes(4, "little") for n in range(chunks)))
        os.close(fill)
        fill = None               # every chunk is in: a read past them is the end
        for _ in range(1, count):
            try:
                read_end, write_end = os.pipe()
            except OSError:
                break             # no more descriptors: fewer workers
            try:
                pid = os.fork()
            except OSError:
                os.close(read_end)
                os.close(write_end)
                break             # no more processes: likewise
            if pid == 0:                                  # the worker: never returns
                os.close(read_end)
                _work(items, work, size, claims, write_end)
            os.close(write_end)
            workers.append((pid, read_end))
        results: list = [None] * len(items)
        for i in _claimed(claims, size, len(items)):
            results[i] = work(items[i])
        for _, read_end in workers:
            for i, result in _receive(read_end):
                results[i] = result
        return results
    finally:
        for fd in (claims, fill):
            if fd is not None:
                os.close(fd)
        for pid, read_end in workers:
            os.close(read_end)
            try:
                os.kill(pid, signal.SIGKILL)   # done already (then harmless), or interrupted
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)


def _claimed(claims: int, size: int, total: int):
    """The item numbers of the chunks this process claims, until none is left."""
    while True:
        got = os.read(claims, 4)
        if len(got) < 4:
            return
        start = int.from_bytes(got, "little") * size
        yield from range(start, min(start + size, total))


def _work(items, work, size, claims, fd) -> None:
    """A worker: the items it claims, each result as marshal data, all written to fd with
    their numbers; then exit without running anything of the caller's (no atexit, no
    buffered output flushed)."""
    status = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)    # Ctrl-C: the caller reports it, not us
        done = []
        for i in _claimed(claims, size, len(items)):
            try:
                done.append((i, marshal.dumps(work(items[i]))))
            except Exception:          # noqa: BLE001 - any failure: the caller does this item
                pass
        data = marshal.dumps(done)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        status = 0
    finally:
        os._exit(status)


def _receive(fd) -> list:
    """A worker's (item number, result) pairs; none if it did not send them all."""
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    try:
        return [(i, marshal.loads(blob)) for i, blob in marshal.loads(b"".join(chunks))]
    except (EOFError, ValueError, TypeError):
        return []

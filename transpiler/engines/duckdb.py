"""DuckDB as an engine: the queries `convert -t duckdb` writes, executed in an in-memory DuckDB
over the events loaded into the tables they read (duckdb_events: rules for CloudTrail read
the CloudTrail table of cloudtrail.SCHEMA, the same text runs on Athena; other rules read the
generic table). The only module that imports duckdb, through duckdb_events.connect().

- Bounded memory: DuckDB works within `memory` bytes (its memory_limit) and spills the rest
  into a scratch folder on disk (duckdb_events.Scratch, never a RAM-backed one). Its threads
  and the size of a batch follow the limit (sizing()), so that reading a batch fits in it.
- Events come a batch at a time: files are staged by a thread of their own (Python reads and
  unzips them into the scratch folder, a batch or two ahead), DuckDB parses each batch into
  the tables (only the columns some query reads), the rules run over it, and only what was
  found stays: the (rule, event) pairs, the shown columns of the events selected, and the rows
  that correlations read. A record whose eventID an earlier one has is left out as the batch
  is read (Files(dedupe=True)), so memory and disk follow the events kept. A list of events is
  one batch.
- Rules run fifty to a statement (UNION ALL: planning grows faster than linear). A statement
  that fails runs again rule by rule, so a failure is that rule's alone (Outcome.failed).
- A CloudTrail rule whose required eventName/eventSource values (ruleset.required_values) no
  event of the batch has is not run on it: it can select nothing. The others only look at
  rows with those values (a lower-case copy of the two columns).
- Correlations run as the query `convert -t duckdb` writes for them, over the rows their
  rules selected (the only rows the query can count).
- fallback (hunt): a rule the backend refuses or DuckDB fails on runs on the evaluator, over
  the events its required values leave, read again from their files; a correlation without
  a query, or whose query fails, is computed by correlation.alerts over the rows DuckDB
  selected, its values read from the columns the queries read.
- run() on what load() returned keeps the results in DuckDB until that is closed (Hits: for
  logs larger than memory, matches and rows are read from there, timeline() sorts there);
  otherwise the Outcome holds them as lists and dicts.
- close() stops the staging thread and removes the scratch folder, also when Ctrl-C stops
  the run; DuckDB itself only ever runs on the caller's thread.
"""
from __future__ import annotations

import contextlib
import datetime
import importlib.util
import json
import os
import queue
import re
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Mapping

from .. import cloudtrail, correlation, duckdb_events
from ..backends.sql import DuckDB as DuckDBBackend
from ..backends.sql import identifier, literal
from ..errors import TranspileError, Unsupported
from ..evaluate import compile_query, text
from ..ruleset import RuleSet, required_values
from . import PART, Engine, Files, Loaded, Outcome, Read, loaded, place
from .evaluator import rules_selecting
from .evaluator import file_events

BATCH = 50                       # rules per UNION ALL statement
MEMORY = 1 << 30                 # DuckDB's memory limit unless told (hunt --memory)
# DuckDB's memory for parsing a batch of logs (its JSON reader, measured with DuckDB 2.0 on
# scaled copies of the corpus: bench/README.md): about 140 MiB per thread once a batch holds
# 16 MiB of JSON per thread, 254 MiB for one thread, and for one thread and less than 40 MiB
# of JSON, about 64 MiB plus 6 bytes per byte of JSON. Over the limit it fails, out of memory;
# sizing() keeps a margin under it.
PARSE_BASE, PER_THREAD = 64 << 20, 160 << 20
MIN_MEMORY = 96 << 20            # one thread, batches of 4 MiB
MAX_BATCH = 1 << 30              # past it, larger batches gain nothing and fill the scratch disk
GENERIC = "events"               # the generic mapping's table (templates/duckdb/mappings/generic.yml)
SEEN = "_seen"                   # the eventIDs kept so far (Files(dedupe=True))
MISFITS = "_misfits"             # keys of records the CloudTrail table cannot hold (cloudtrail.fits)
# Fields the rule index narrows rows by: CloudTrail columns with a lower-case copy.
PREFILTER = {"eventName": "eventname", "eventSource": "eventsource"}


def sizing(memory: int, cpus: int) -> tuple[int, int]:
    """(DuckDB's threads, bytes of JSON per batch) that parse within a memory limit: a thread
    for every PER_THREAD past PARSE_BASE (at most `cpus`, at least one); batches of a quarter
    of the limit, or with one thread an eighth of what PARSE_BASE leaves, at most MAX_BATCH."""
    threads = max(1, min(cpus, (memory - PARSE_BASE) // PER_THREAD))
    return threads, min(MAX_BATCH, memory // 4 if threads > 1 else (memory - PARSE_BASE) // 8)


class DuckDB(Engine):
    """threads: DuckDB's worker threads (default: every CPU); mapping_file: the backend's
    mapping (`-m`), whose tables must be the two this engine loads; memory: DuckDB's memory
    limit in bytes (default MEMORY, at least MIN_MEMORY), beyond which it spills to disk;
    the threads are as many as it has room for (sizing()). temp_dir: where the scratch folder
    goes (default duckdb_events.scratch_root()). `batch`: bytes of JSON read per batch of
    files (None: as sizing() says); `part`: rows of the timeline sorted at a time (None: one
    per 4 KiB of the memory limit, at least 10,000)."""

    name = "duckdb"
    batch: int | None = None
    part: int | None = None

    def __init__(self, time_field: str | None = "eventTime", fallback: bool = False, threads: int | None = None,
                 mapping_file=None, memory: int | None = None, temp_dir=None):
        super().__init__(time_field, fallback)
        self.memory = int(memory or MEMORY)
        if self.memory < MIN_MEMORY:
            raise ValueError(f"a memory limit of at least {MIN_MEMORY >> 20} MiB: DuckDB needs that much to read logs")
        self.threads, self.batch_bytes = sizing(self.memory, int(threads or os.cpu_count() or 1))
        self.mapping_file = mapping_file
        self.temp_dir = temp_dir

    def unavailable(self) -> str | None:
        try:
            found = importlib.util.find_spec("duckdb") is not None
        except (ImportError, ValueError):     # hidden, or left half-imported
            found = False
        return None if found else "the duckdb package is not installed (pip install duckdb)"

    def load(self, source, progress=None) -> "Tables":
        return Tables(source, self, progress)

    def run(self, rules, events, correlations=(), show=(), progress=None) -> Outcome:
        tables, own = loaded(self, events)
        try:
            with _failing():
                out = _run(self, tables, rules, correlations, show, progress)
                return out.held() if own else out
        finally:
            if own:
                tables.close()


class Tables(Loaded):
    """The events for DuckDB, a batch at a time (batches()). Files are staged into the scratch
    folder by a thread of its own, at most two batches ahead, each about a quarter of the
    memory limit in JSON, and DuckDB spills there; a list of events is one batch, held in
    memory (no scratch folder)."""

    def __init__(self, source, engine: DuckDB, progress=None):
        super().__init__(source)
        self.engine = engine
        self.progress = progress
        self.con = None
        files = isinstance(source, Files)
        self.scratch = duckdb_events.Scratch(engine.temp_dir) if files else None
        self.read = Read(files=[str(p) for p in source.paths] if files else [], records=0 if files else len(source))
        self.made = set()              # the tables loaded, of the current batch
        self.suspects = []             # the batch's files that may hold records the table cannot hold
        self.misfit_rules = None       # (rule nos, their RuleSet) that decide such records
        self.readers = weakref.WeakSet()   # timelines being read (_ahead): closed before DuckDB
        self._queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = None
        if files:
            self._thread = threading.Thread(target=self._stage, daemon=True)
            self._thread.start()

    def connect(self):
        """The DuckDB connection: memory limit, spill folder and threads set."""
        if self.con is None:
            self.con = duckdb_events.connect()
            self.con.execute(f"SET memory_limit = '{self.engine.memory}B'")
            spill = os.path.join(self.scratch.path, "spill") if self.scratch else ""   # "": never (not ./.tmp)
            self.con.execute(f"SET temp_directory = {literal(spill)}")
            self.con.execute(f"SET threads = {self.engine.threads}")
        return self.con

    def _stage(self):
        files = iter(enumerate(self.read.files))
        limit = self.engine.batch or self.engine.batch_bytes
        try:
            while not self._stop.is_set():
                staged = duckdb_events.Staged(files, self.scratch.path, limit, max_bytes=self.source.max_bytes,
                                              stop=self._stop)
                if not staged.files:
                    staged.cleanup()
                    break
                self._put(staged)
        except duckdb_events.Stopped:
            pass
        except BaseException as e:    # noqa: BLE001  re-raised by batches(), on the caller's thread
            self._put(e)
        self._put(None)

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        if isinstance(item, duckdb_events.Staged):
            item.cleanup()

    def batches(self, tables: set, columns=None):
        """Load each batch of events into `tables` (the CloudTrail table, the generic one) and
        yield (the events' keys: a range for a list, else None), read counts updated."""
        con = self.connect()
        if not isinstance(self.source, Files):
            self.made = set()
            if cloudtrail.TABLE in tables:
                duckdb_events.load_cloudtrail(con, self.source, cloudtrail.TABLE, lowered=tuple(PREFILTER.values()))
                self.made.add(cloudtrail.TABLE)
            if GENERIC in tables:
                duckdb_events.load_events(con, self.source, GENERIC)
                self.made.add(GENERIC)
            yield range(len(self.source))
            return
        while True:
            staged = self._queue.get()
            if staged is None:
                return
            if isinstance(staged, BaseException):
                raise staged
            try:
                for table in self.made:      # the batch before is done with: its memory for this one
                    con.execute(f"DROP TABLE IF EXISTS {identifier(table)}")
                scan = duckdb_events.load_staged(con, staged, cloudtrail.TABLE, self.source.dedupe,
                                                 tuple(PREFILTER.values()), columns,
                                                 SEEN if self.source.dedupe else None)
            finally:
                staged.cleanup()
            self.suspects = sorted({*staged.suspect, *staged.slow})
            self.read.errors += scan.errors
            self.read.records += scan.rows + scan.duplicates
            self.read.duplicates += scan.duplicates
            self.made = {cloudtrail.TABLE}
            if GENERIC in tables:
                kept = {r for (r,) in con.execute(f"SELECT row_id FROM {cloudtrail.TABLE}").fetchall()}
                events = self.events(kept)
                duckdb_events.load_events(con, list(events.values()), GENERIC, ids=list(events))
                self.made.add(GENERIC)
            if self.progress is not None:
                self.progress("hunting", staged.files[-1][0] + 1, len(self.read.files))
            yield None

    def events(self, keys) -> dict:
        """key -> the event as events.py reads it (from its file again, for Files), in key order."""
        if not isinstance(self.source, Files):
            return {k: self.source[k] for k in sorted(keys)}
        by_file = defaultdict(list)
        for k in sorted(keys):
            by_file[place(k)[0]].append(k)
        out = {}
        for f, wanted in sorted(by_file.items()):
            try:
                found = file_events(self.read.files[f], self.source.max_bytes)
            except Exception:     # noqa: BLE001  changed since it was read: its events are left out
                continue
            out.update((k, found[place(k)[1]]) for k in wanted if place(k)[1] < len(found))
        return out

    def close(self):
        self._stop.set()
        if self._thread is not None:
            while self._thread.is_alive():
                self._drain()
                self._thread.join(0.1)
            self._thread = None
        self._drain()
        for reader in list(self.readers):    # its cursors and thread, while the connection is open
            reader.close()
        if self.con is not None:
            self.con.close()
            self.con = None
        if self.scratch is not None:
            self.scratch.close()

    def _drain(self):
        try:
            while True:
                item = self._queue.get_nowait()
                if isinstance(item, duckdb_events.Staged):
                    item.cleanup()
        except queue.Empty:
            pass


@contextlib.contextmanager
def _failing():
    """DuckDB failing outside one rule's query (out of memory, no room left to spill) as one
    line: the run cannot go on. An interrupt stays an interrupt."""
    try:
        yield
    except Exception as e:
        if not type(e).__module__.startswith(("duckdb", "_duckdb")) or type(e).__name__ == "InterruptException":
            raise
        raise TranspileError(f"DuckDB: {_first_line(e)} (--memory raises DuckDB's memory limit; it spills into "
                             f"--temp-dir, which needs room)", kind="error") from None


def _run(engine: DuckDB, tables: Tables, rules, correlations, show, progress) -> "Hits":
    con = tables.connect()
    import duckdb            # imported by duckdb_events.connect() by now, signals held meanwhile
    start = time.perf_counter()
    backend = DuckDBBackend(mapping_file=engine.mapping_file, time_field=engine.time_field or "eventTime")
    time_path = (cloudtrail.sigma_fields().get(engine.time_field or "") or (None,))[0]
    out = Hits(con, backend, show, time_path, engine.part or max(10_000, engine.memory // 4096), tables.readers,
               read=tables.read)
    queries, slow = {}, {}           # rule no -> (WHERE, table); rule no -> why it runs on the evaluator
    for n, rule in enumerate(rules):
        if rule.query is None:
            out.refused[n] = "not a detection rule (a correlation or filter document)"
            continue
        try:
            queries[n] = _query(backend, rule)
        except TranspileError as e:
            if not engine.fallback:
                out.refused[n] = e.message
            else:
                slow[n] = e.message
    correlated, read = {}, []        # correlation no -> its query, or why it has none; the SQL they read
    for c_no, c in enumerate(correlations):
        correlated[c_no] = _correlation_query(engine, backend, c)
        read += [correlated[c_no] if isinstance(correlated[c_no], str) else ""] + _python_fields(engine, backend, c)
    needed = {t for _, t in queries.values()} | ({cloudtrail.TABLE} if show or slow or correlations else set())
    if isinstance(tables.source, Files):
        needed.add(cloudtrail.TABLE)           # where records are read and kept once
    number = {id(r): n for n, r in enumerate(rules)}
    bases = {number[id(b)] for c in correlations for b in c.rules}
    con.execute("CREATE OR REPLACE TABLE _hits (rule INTEGER, row_id BIGINT)")
    ran = set()
    columns = _columns([where for where, _ in queries.values()] + read, show, engine)
    kept = _kept(columns, read)                                       # what correlation queries read
    for keys in tables.batches(needed, columns):
        _batch(engine, tables, rules, queries, slow, out, ran, keys, duckdb)
        _keep(con, tables, show, bases, kept, backend, time_path)
    for n in out.failed:
        con.execute("DELETE FROM _hits WHERE rule = $n", {"n": n})
    if out.failed and show:
        con.execute("DELETE FROM _shown WHERE row_id NOT IN (SELECT row_id FROM _hits)")
    out.stats["sql"] = len(ran - set(slow) - set(out.failed))
    out.fallback.update((n, reason) for n, reason in slow.items())
    out.matches = Matches(con, sorted((set(queries) | set(slow)) - set(out.failed)))
    if show:
        columns = ", ".join(f"c{i} VARCHAR" for i in range(len(show)))
        con.execute(f"CREATE TABLE IF NOT EXISTS _shown (row_id BIGINT, {columns}, class INTEGER, micros BIGINT)")
    out.rows = Rows(con, show) if show else {}
    out.phases["queries"] = time.perf_counter() - start
    start = time.perf_counter()
    if correlations:
        for table in (cloudtrail.TABLE, GENERIC):
            con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {_corr(table)}"
                        if _exists(con, _corr(table)) else f"DROP TABLE IF EXISTS {table}")
        for c_no, c in enumerate(correlations):
            _correlate(engine, tables, backend, c, c_no, correlated[c_no], rules, out, duckdb)
    out.phases["results"] = time.perf_counter() - start
    return out


def _batch(engine, tables, rules, queries, slow, out, ran, keys, duckdb):
    """Run the rules over the batch loaded: their hits into _batch_hits."""
    con = tables.con
    con.execute("CREATE OR REPLACE TEMP TABLE _batch_hits (rule INTEGER, row_id BIGINT)")
    present = _present(con) if cloudtrail.TABLE in tables.made else None
    statements = []
    for n, (where, table) in queries.items():
        if n in out.failed or n in slow:
            continue
        narrow = []
        if table == cloudtrail.TABLE:
            narrow = _prefilter(rules[n].query, present)
            if narrow is None:        # a required value no event has: nothing to select
                continue
        statements.append((n, f"SELECT {n} AS rule, row_id FROM {table} WHERE {_narrow_sql(narrow)} AND ({where})"))
        ran.add(n)
    for i in range(0, len(statements), BATCH):
        _execute(con, statements[i:i + BATCH], out, engine.fallback, slow, duckdb)
    for n in slow:                    # fallback: the evaluator, over the events the prefilter leaves
        hits = _on_evaluator(tables, rules[n], present, keys)
        if hits:
            con.execute("INSERT INTO _batch_hits SELECT $n, unnest($hits)", {"n": n, "hits": hits})
    if tables.suspects and engine.fallback:   # records the table cannot hold: the evaluator decides
        _misfits_on_evaluator(tables, rules, [n for n in (*queries, *slow) if n not in out.failed], out.failed)
    con.execute("INSERT INTO _hits SELECT * FROM _batch_hits")


def _misfits_on_evaluator(tables: Tables, rules, numbers, failed):
    """The records of the batch's suspect files that the CloudTrail table does not hold as the
    evaluator reads them (cloudtrail.fits: a list where it has text...) are decided by the
    evaluator, not SQL, a file at a time (the memory of one file's events, as the evaluator
    engine): the rules indexed by their required values (RuleSet), as that engine runs them; a
    rule that raises on an event is that rule's failure (`failed`). Their keys go to the table
    MISFITS, for the correlations."""
    con = tables.con
    numbers = sorted(set(numbers))
    if tables.misfit_rules is None or tables.misfit_rules[0] != numbers:
        tables.misfit_rules = numbers, RuleSet([rules[n] for n in numbers])
    ruleset = tables.misfit_rules[1]
    by_file = defaultdict(list)
    for (k,) in con.execute(f"SELECT row_id FROM {cloudtrail.TABLE} WHERE list_contains($files, row_id >> 32)",
                            {"files": tables.suspects}).fetchall():
        by_file[place(k)[0]].append(k)
    for _, keys in sorted(by_file.items()):
        events = {k: e for k, e in tables.events(keys).items() if not cloudtrail.fits(e)}
        if not events:
            continue
        con.execute(f"CREATE TABLE IF NOT EXISTS {MISFITS} (row_id BIGINT)")
        con.execute(f"INSERT INTO {MISFITS} SELECT unnest($keys)", {"keys": list(events)})
        con.execute("DELETE FROM _batch_hits WHERE list_contains($keys, row_id)", {"keys": list(events)})
        found = [(numbers[i], k) for k, event in events.items()
                 for i in rules_selecting(ruleset, event, k, numbers, failed)]
        if found:
            con.execute("INSERT INTO _batch_hits SELECT unnest($rules), unnest($keys)",
                        {"rules": [n for n, _ in found], "keys": [k for _, k in found]})


def _keep(con, tables, show, bases, kept, backend, time_path):
    """What later steps read of the batch: the shown columns of the events selected, with
    where their time sorts (engines.time_order: class and microseconds), and the rows the
    correlations' rules selected (the CloudTrail table's `kept` columns)."""
    if show:
        columns = ", ".join(f"{_path_sql(p)} AS c{i}" for i, p in enumerate(show))
        moment = _path_sql(time_path) if time_path else "NULL"
        picked = (f"SELECT row_id, {columns}, CASE WHEN i IS NOT NULL THEN 0 WHEN {moment} IS NOT NULL THEN 1 "
                  f"ELSE 2 END AS class, coalesce(epoch_us(i), 0) AS micros FROM (SELECT *, "
                  f"{instant_sql(backend, moment) if time_path else 'NULL::TIMESTAMP'} AS i FROM {cloudtrail.TABLE} "
                  f"WHERE row_id IN (SELECT row_id FROM _batch_hits))")
        con.execute(f"CREATE TABLE IF NOT EXISTS _shown AS {picked} LIMIT 0")
        con.execute(f"INSERT INTO _shown {picked}")
    if bases:
        for table in tables.made:
            picked = (f"SELECT {', '.join(kept) if table == cloudtrail.TABLE else '*'} FROM {table} "
                      f"WHERE row_id IN (SELECT row_id FROM _batch_hits WHERE list_contains($bases, rule))")
            con.execute(f"CREATE TABLE IF NOT EXISTS {_corr(table)} AS {picked} LIMIT 0", {"bases": sorted(bases)})
            con.execute(f"INSERT INTO {_corr(table)} {picked}", {"bases": sorted(bases)})


# CloudTrail's own form of a time: whole seconds, UTC (evaluate.timestamp has the same shortcut).
_CLOUDTRAIL_TIME = "[0-9]{4}-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z"


def instant_sql(backend, x: str) -> str:
    """backend.macros.instant(x): the same TIMESTAMP, but a text of CloudTrail's own form
    is read by one strptime, three times faster than the general expression (but year 0000,
    which it would read as 1 BC)."""
    return (f"CASE WHEN regexp_full_match({x}, {literal(_CLOUDTRAIL_TIME)}) AND NOT starts_with({x}, '0000') THEN "
            f"try_strptime({x}, '%Y-%m-%dT%H:%M:%SZ') ELSE {backend.macros.instant(x)} END")


def _corr(table: str) -> str:
    return f"_correlated_{table}"


def _exists(con, table: str) -> bool:
    return con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = $t", {"t": table}).fetchone()[0] > 0


def _path_sql(path: str) -> str:
    return ".".join(map(identifier, path.split(".")))


def _words(texts) -> set:
    return {w.lower() for t in texts for w in re.findall(r"\w+", t)}


def _columns(texts, show, engine) -> list:
    """The CloudTrail columns the queries read: those whose name is a word of their text
    (a superset: a name inside a literal counts too), the shown ones, the time, eventID (for
    duplicates) and the prefilter's."""
    words = _words(texts)
    wanted = {p.split(".")[0] for p in show} | set(PREFILTER.values()) | {"eventid"}
    time_column = cloudtrail.sigma_fields().get(engine.time_field or "")
    if time_column:
        wanted.add(time_column[0].split(".")[0])
    return [c for c, _, _ in cloudtrail.SCHEMA if c in words or c in wanted]


def _kept(columns, read) -> list:
    """What correlations keep of a row their rules selected (SQL): row_id and the columns
    their SQL `read` names; of a struct column it names only member by member (useridentity.arn),
    a struct of those members: the same values to that SQL, a fraction of the bytes (rows
    kept grow with the logs)."""
    words, kinds = _words(read), {c: kind for c, _, kind in cloudtrail.SCHEMA}
    kept = ["row_id"]
    for c in columns:
        if c not in words:
            continue
        members = [m for m, _, _ in kinds[c] if m in words] if isinstance(kinds[c], tuple) else []
        whole = re.compile(rf'(?<![\w."]){c}"?(?!\s*\.)|(?<![\w.])"{c}"(?!\s*\.)', re.IGNORECASE)
        if not members or any(whole.search(text) for text in read):
            kept.append(c)
        else:
            kept.append(f"struct_pack({', '.join(f'{identifier(m)} := {c}.{identifier(m)}' for m in members)}) AS {c}")
    return kept


def _query(backend, rule) -> tuple[str, str]:
    """The WHERE clause `convert -t duckdb` writes for the rule (its query is SELECT * FROM
    table WHERE that: templates/duckdb/query.j2), and the table."""
    try:
        backend.mapping = backend.mapping_for(rule)
        table = backend.table()
        if table not in (cloudtrail.TABLE, GENERIC):
            raise Unsupported(f"the mapping reads table {table!r}; this engine loads events into "
                              f"{cloudtrail.TABLE} and {GENERIC} only")
        return backend.render(rule.query), table
    except TranspileError as e:
        raise e.located(rule.label, "detection") from None


def _execute(con, batch, out, fallback, slow, duckdb):
    """Insert (rule no, row id) of one UNION ALL statement into _batch_hits; where it fails,
    of each rule alone, and a rule that fails alone is out.failed (or slow, with fallback)."""
    try:
        con.execute("INSERT INTO _batch_hits " + "\nUNION ALL\n".join(sql for _, sql in batch))
        return
    except duckdb.InterruptException:
        raise
    except duckdb.Error:
        pass
    for n, sql in batch:
        try:
            con.execute("INSERT INTO _batch_hits " + sql)
        except duckdb.InterruptException:
            raise
        except duckdb.Error as e:
            reason = f"DuckDB could not run its query: {_first_line(e)}"
            if fallback:
                slow[n] = reason
            else:
                out.failed[n] = reason


def _first_line(error) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _present(con) -> dict:
    """The lower-case eventName and eventSource values the CloudTrail table has."""
    return {column: {v for (v,) in con.execute(f"SELECT DISTINCT _lower_{column} FROM {cloudtrail.TABLE} "
                                              f"WHERE _lower_{column} IS NOT NULL").fetchall()}
            for column in PREFILTER.values()}


def _prefilter(query, present):
    """[(column, values)]: the rule can only select rows whose lower-case column has one of
    the values; None when it cannot select any row. Only ASCII values, which Python and DuckDB
    lower-case alike."""
    narrow = []
    for name, values in required_values(query).items():
        column = PREFILTER.get(name)
        if column is None or not all(v.isascii() for v in values):
            continue
        values = values & present[column]
        if not values:
            return None
        narrow.append((column, values))
    return narrow


def _narrow_sql(narrow, lists: bool = False) -> str:
    """SQL of a prefilter. lists: also rows whose column holds a list (its JSON text), whose
    items the evaluator looks at one by one."""
    return " AND ".join(f"(_lower_{column} IN ({', '.join(map(literal, sorted(values)))})"
                        + (f" OR starts_with({column}, '[')" if lists else "") + ")"
                        for column, values in narrow) or "TRUE"


def _on_evaluator(tables: Tables, rule, present, keys) -> list:
    """The events of the batch the evaluator selects for the rule, among those its prefilter
    leaves."""
    if present is not None:
        narrow = _prefilter(rule.query, present)
        if narrow is None:
            return []
        candidates = [r for (r,) in tables.con.execute(
            f"SELECT row_id FROM {cloudtrail.TABLE} WHERE {_narrow_sql(narrow, lists=True)} ORDER BY row_id").fetchall()]
    else:
        candidates = keys
    test = compile_query(rule.query)
    events = tables.events(candidates)
    return [k for k in candidates if k in events and test(events[k])]


# --- results --------------------------------------------------------------------------------

class Hits(Outcome):
    """An Outcome whose matches and rows stay in DuckDB (tables _hits and _shown) while its
    Tables are open: for logs larger than memory. `matches` and `rows` are mappings that read
    them; counts() and timeline() count and sort there. held() copies them into Python."""

    def __init__(self, con, backend, show, time_path, chunk, readers, **kw):
        super().__init__(**kw)
        self._con, self._backend, self._show, self._time, self._chunk = con, backend, tuple(show), time_path, chunk
        self._readers = readers

    def held(self) -> Outcome:
        """The same outcome with matches and rows as a dict of lists and a dict of dicts."""
        fields = {name: getattr(self, name) for name in Outcome.__dataclass_fields__}
        fields["matches"] = {n: [] for n in self.matches}
        for n, row_id in self._con.execute("SELECT rule, row_id FROM _hits ORDER BY rule, row_id").fetchall():
            if n in fields["matches"]:
                fields["matches"][n].append(row_id)
        fields["rows"] = dict(self.rows.items()) if self._show else {}
        return Outcome(**fields)

    def counts(self) -> dict:
        found = dict(self._con.execute("SELECT rule, count(*) FROM _hits GROUP BY rule").fetchall())
        return {n: found.get(n, 0) for n in self.matches}

    def timeline(self, rank: dict, time: str, tie: str, line=None):
        for part in self.timeline_parts(rank, time, tie, line):
            yield from part

    def timeline_parts(self, rank: dict, time: str, tie: str, line=None):
        if not self._show or not rank:
            return
        if time != self._time:
            raise ValueError(f"this engine's timeline is by {self._time}, not {time}")
        column = {p: f"s.c{i}" for i, p in enumerate(self._show)}
        moment, tied = column[time], column[tie]
        params = {"rules": list(rank), "ranks": list(rank.values())}
        what = ", ".join(column.values()) if line is None else self._line_sql(line, column, params)
        rules = "(SELECT unnest($rules) AS rule, unnest($ranks) AS rank, generate_subscripts($rules, 1) AS at)"
        joined = f"_hits h JOIN _shown s USING (row_id) JOIN {rules} r USING (rule)"
        # In parts of about `chunk` rows, a time range each, each sorted within the memory limit
        # (the lines written in parallel, before the sort); the order is engines.time_order's:
        # (class, microseconds since 1970, text), then tie, rank, event, rule.
        with _failing():
            ends = self._con.execute(
                f"SELECT class, micros FROM (SELECT *, sum(n) OVER (ORDER BY class, micros) AS total FROM "
                f"(SELECT s.class, s.micros, count(*) AS n FROM {joined} GROUP BY ALL)) "
                f"WHERE total // {self._chunk} > (total - n) // {self._chunk} ORDER BY class, micros",
                {"rules": params["rules"], "ranks": params["ranks"]}).fetchall()
        queries = []
        for start, end in zip([None] + ends, ends + [None]):
            within = " AND ".join(([_after(start)] if start else []) +
                                  ([f"NOT {_after(end)}"] if end else [])) or "TRUE"
            queries.append(f"SELECT h.row_id, h.rule, s.class, s.micros, {moment}, {tied}, {what} FROM {joined} "
                           f"WHERE {within} ORDER BY s.class, s.micros, {moment}, coalesce({tied}, ''), r.rank, "
                           f"h.row_id, h.rule")
        ahead = _ahead(self._con, queries, params)
        self._readers.add(ahead)
        for result in ahead:
            yield from self._parts(result, line)

    def _parts(self, result, line):
        """The items of timeline(), a fetched chunk at a time: row = (event, rule, class,
        micros, time, tie, shown values... or the line)."""
        while chunk := _fetch(result):
            if line is None:
                yield [(row[0], row[1], row[6:], (row[2], row[3], row[4] if row[2] < 2 else ""), row[5] or "")
                       for row in chunk]
            else:              # None: a value DuckDB writes otherwise than Python: Python writes it
                yield [(row[0], row[1], row[6] if row[6] is not None else line.text(row[1], self.rows[row[0]],
                                                                                    self.read, row[0]),
                        (row[2], row[3], row[4] if row[2] < 2 else ""), row[5] or "") for row in chunk]

    def _line_sql(self, line, column, params) -> str:
        """The SQL writing each row as `line` says (from the shown values s, the hit h and the
        rule's place r.at in $rules). to_json() writes a text as json.dumps(ensure_ascii=False)
        does but for the hex digits of 9 control characters (\\u000B, not \\u000b): a row
        with any of them in a value it writes is NULL, for Python to write."""
        parts, used = [], []
        for key, (how, *args) in line.fields:
            head = json.dumps(key, ensure_ascii=False) + ": "
            if how == "show":
                used += [column[p] for p in args]
                value = f"coalesce(to_json(coalesce({', '.join(column[p] for p in args)}))::VARCHAR, 'null')"
            elif how == "rule":
                name = f"v{len(params)}"
                params[name] = [json.dumps(args[0][n], ensure_ascii=False) for n in params["rules"]]
                value = f"list_extract(${name}, r.at)"
            elif how == "file":       # a table (list_extract on a long list costs by its length), not
                # a temporary one: the cursors of _ahead() read it
                self._con.execute("CREATE OR REPLACE TABLE _files AS SELECT generate_subscripts($f, 1) - 1 "
                                  "AS f, unnest($f) AS path", {"f": [json.dumps(f, ensure_ascii=False)
                                                                  for f in self.read.files]})
                value = "(SELECT path FROM _files WHERE f = h.row_id >> 32)"
            elif how == "index":
                value = "CAST(h.row_id & 4294967295 AS VARCHAR)"
            else:
                head, value = head + json.dumps(args[0], ensure_ascii=False), None
            parts.append(literal(("{" if not parts else ", ") + head))
            if value is not None:
                parts.append(value)
        odd = f"regexp_matches(concat({', '.join(used) or chr(39) * 2}), {literal(_DIFFERENT)})"
        return f"CASE WHEN {odd} THEN NULL ELSE concat({', '.join(parts)}, '}}') END"


def _ahead(con, queries, params):
    """Each query's result in turn (one query at least), the next one executing meanwhile (on
    a cursor of its own, in a thread: DuckDB releases the GIL), so that DuckDB sorts a part of
    the timeline while Python writes the one before. Stopped early, the query running is
    interrupted."""
    from concurrent.futures import ThreadPoolExecutor
    cursors = [con.cursor(), con.cursor()]
    pool = ThreadPoolExecutor(1)
    try:
        running = pool.submit(cursors[0].execute, queries[0], params)
        for i in range(len(queries)):
            with _failing():
                result = running.result()
            if i + 1 < len(queries):
                running = pool.submit(cursors[(i + 1) % 2].execute, queries[i + 1], params)
            yield result
    finally:
        for cursor in cursors:
            cursor.interrupt()
        pool.shutdown(wait=True, cancel_futures=True)
        for cursor in cursors:
            cursor.close()


def _after(point) -> str:
    """SQL: (s.class, s.micros) comes after `point` in their order. Spelt out: DuckDB before
    2.0.1 fails on a comparison of two row values that it turns into BETWEEN."""
    cls, micros = point
    return f"(s.class > {cls} OR (s.class = {cls} AND s.micros > {micros}))"


# Control characters to_json() escapes with upper-case hex digits (json.dumps: lower case).
_DIFFERENT = "[\\x0b\\x0e\\x0f\\x1a-\\x1f]"


def _fetch(result) -> list:
    with _failing():
        return result.fetchmany(PART)


class Matches(Mapping):
    """rule no -> the sorted keys of the events it selects, read from _hits."""

    def __init__(self, con, rules):
        self._con, self._rules = con, rules
        self._known = set(rules)

    def __getitem__(self, n):
        if n not in self._known:
            raise KeyError(n)
        return [r for (r,) in self._con.execute("SELECT row_id FROM _hits WHERE rule = $n ORDER BY row_id",
                                                {"n": n}).fetchall()]

    def __iter__(self):
        return iter(self._rules)

    def __len__(self):
        return len(self._rules)


class Rows(Mapping):
    """event key -> {path: value} of the shown columns, for the events some rule selects."""

    def __init__(self, con, show):
        self._con, self._show = con, tuple(show)

    def _rows(self, where="", params=None):
        columns = ", ".join(f"c{i}" for i in range(len(self._show)))
        for row_id, *values in self._con.execute(f"SELECT row_id, {columns} FROM _shown {where} ORDER BY row_id",
                                                 params).fetchall():
            yield row_id, dict(zip(self._show, values))

    def __getitem__(self, k):
        for _, row in self._rows("WHERE row_id = $k", {"k": k}):
            return row
        raise KeyError(k)

    def items(self):
        return list(self._rows())

    def __iter__(self):
        return (k for k, _ in self._rows())

    def __len__(self):
        return self._con.execute("SELECT count(*) FROM _shown").fetchone()[0]


# --- correlations ---------------------------------------------------------------------------

def _correlation_query(engine, backend, c):
    """The correlation's query, or an Unsupported saying why it has none."""
    if engine.time_field is None:
        return Unsupported("DuckDB needs the field of the event time (time_field)")
    try:
        return backend.convert_correlation(c)
    except TranspileError as e:
        return e


def _python_fields(engine, backend, c) -> list:
    """The SQL of the values correlation.alerts reads when the query cannot run."""
    try:
        backend.mapping = backend.mapping_for(c.rules[0])
        return [backend.macros.first(backend.place(f)) for f in _fields(engine, c)]
    except TranspileError:
        return []


def _fields(engine, c) -> list:
    return sorted({engine.time_field or ""} | {f for b in c.rules for f in c.group_fields(b)} |
                  {c.value_field(b) for b in c.rules if c.field})


def _correlate(engine, tables, backend, c, c_no, query, rules, out, duckdb):
    """The correlation's alerts from its query; with fallback, from correlation.alerts over
    the rows DuckDB selected where there is no query or it fails."""
    name = f"c{c_no}"
    number = {id(r): n for n, r in enumerate(rules)}
    if engine.fallback and _exists(tables.con, MISFITS) and tables.con.execute(
            f"SELECT count(*) FROM _hits JOIN {MISFITS} USING (row_id) WHERE list_contains($rules, rule)",
            {"rules": [number[id(b)] for b in c.rules]}).fetchone()[0]:
        # Its rules select records the table cannot hold: the evaluator's reading of the events.
        out.fallback[name] = "its rules select records the CloudTrail table cannot hold"
        hits = [out.matches.get(number[id(b)], []) for b in c.rules]
        out.alerts.extend(_alerts_in_python(engine, tables, backend, c, hits, from_files=True))
        return
    if isinstance(query, str):
        try:
            out.alerts.extend(_alerts(c, tables.con.execute(query).fetchall()))
            return
        except duckdb.InterruptException:
            raise
        except duckdb.Error as e:
            reason = f"DuckDB could not run its query: {_first_line(e)}"
            if not engine.fallback:
                out.failed[name] = reason
                return
    else:
        reason = query.message
    if not engine.fallback:
        out.refused[name] = reason
        return
    out.fallback[name] = reason
    hits = [out.matches.get(number[id(b)], []) for b in c.rules]
    out.alerts.extend(_alerts_in_python(engine, tables, backend, c, hits))


def _alerts(c, rows) -> list:
    out = []
    width = len(c.group_by)
    for row in rows:
        group = tuple((name, text(value)) for name, value in zip(c.group_by, row[:width]))
        first, last, triggers = row[width:width + 3]
        out.append(correlation.Alert(c, group, _utc(first), _utc(last), int(triggers)))
    return out


def _utc(moment):
    """A time from SQL (TIMESTAMP: UTC, naive) as correlation.Alert holds it (aware)."""
    utc = datetime.timezone.utc
    return moment.replace(tzinfo=utc) if moment.tzinfo is None else moment.astimezone(utc)


def _alerts_in_python(engine, tables, backend, c, hits, from_files: bool = False) -> list:
    """correlation.alerts over the rows DuckDB selected for each referenced rule: each row as
    an event of the fields the correlation reads (literal dotted keys: field_values reads
    them), with the values the queries read; the events from their files where a field has no
    column (or the time field is not given), or when `from_files`."""
    rows = sorted({r for rs in hits for r in rs})
    if not rows:
        return []
    events = None if from_files else _read_values(engine, tables, backend, c, rows)
    if events is None:
        events = tables.events(rows)
    members = [set(rs) for rs in hits]
    selected = ((events[r], [k for k, m in enumerate(members) if r in m]) for r in rows if r in events)
    return correlation.alerts(c, selected, engine.time_field)


def _read_values(engine, tables, backend, c, rows) -> dict | None:
    """row -> {field: value} of the fields the correlation reads, from the table; None where a
    field has no column or the time field is not given."""
    fields = _fields(engine, c)
    try:
        if engine.time_field is None:
            raise Unsupported("no time field")
        backend.mapping = backend.mapping_for(c.rules[0])
        table = backend.table()
        exprs = [backend.macros.first(backend.place(f)) for f in fields]
    except TranspileError:
        return None
    found = tables.con.execute(f"SELECT row_id, {', '.join(exprs)} FROM {table} "
                               f"WHERE row_id IN (SELECT unnest($rows))", {"rows": rows}).fetchall()
    return {r[0]: {f: v for f, v in zip(fields, r[1:]) if v is not None} for r in found}

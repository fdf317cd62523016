"""sigma-transpile: check, match and convert Sigma rules.

Every batch command reads all rules, reports every problem on stderr (one line each,
`path: key or condition position: message`), goes on with the others, and exits 1 if
anything failed.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import json
import re
import signal
import sys
import time
from pathlib import Path

from . import backends, batch, cache, files, formats
from .errors import RuleError, TranspileError, printable
from .events import MAX_EVENT_BYTES, find_event_files
from .files import write_atomic  # noqa: F401  (kept importable from here)
from .rule import MAX_FILE_BYTES, duplicates, load_paths
from .resources import resource_dir


# Set by a command that leaves nothing to clean up at exit (convert): entry.run then ends the
# process at once instead of letting the interpreter free every rule object one by one, which
# takes a tenth of a 3,000-rule conversion. Tests call main() and are not affected.
quick_exit = False


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    cache.use(not getattr(args, "no_cache", False))
    try:
        return args.func(args)
    except TranspileError as e:          # a bad option or option file: placeholders, mapping, -o
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:              # `| head` closed stdout: not an error
        return 0
    except OSError as e:                 # an output that cannot be written: disk full, permissions
        where = f"{e.filename}: " if e.filename else ""
        print(printable(f"error: {where}{e.strerror or e}"), file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:            # commands that write files handle it themselves
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sigma-transpile", description=__doc__.splitlines()[0])
    p.add_argument("--version", action=_Version, help="show the version and exit")
    sub = p.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="load rules and report every problem")
    _rules_args(check)
    check.add_argument("--format", choices=("text", "json"), default="text",
                       help="text: one line per problem (default); json: counts and every problem, for CI")
    check.add_argument("--require-tests", action="store_true",
                       help="also report rules without tests (NAME.tests.yml, regression_tests_path) "
                            "and tests that cannot be read")
    check.set_defaults(func=cmd_check)

    match = sub.add_parser("match", help="run rules over JSON events with the reference evaluator")
    _rules_args(match)
    match.add_argument("--events", nargs="+", required=True, metavar="FILE",
                       help="event files or folders: CloudTrail Records, JSON array/object, JSON Lines, .gz")
    match.add_argument("--format", choices=("text", "json", "jsonl"), default="text",
                       help="text: a line per match or alert, control characters escaped; json, jsonl: "
                            "every value exact")
    match.add_argument("--time-field", metavar="FIELD",
                       help="event time for correlations (default: eventTime, @timestamp, timestamp, ...)")
    max_event_size(match)
    match.add_argument("--no-progress", action="store_true", help="no progress bar (shown only on a terminal)")
    match.set_defaults(func=cmd_match)

    convert = sub.add_parser("convert", help="convert rules into queries or SIEM import files for a target",
                             epilog=_formats_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _rules_args(convert)
    convert.add_argument("-t", "--target", required=True, choices=sorted(backends.BACKENDS))
    convert.add_argument("-f", "--format", metavar="FORMAT",
                         help="import-file format (listed below); default: the queries alone")
    convert.add_argument("-O", "--option", action="append", metavar="NAME=VALUE",
                         help="a format option (listed below); repeat for more")
    convert.add_argument("-m", "--mapping", metavar="MAPPING",
                         help="field mapping: a YAML file, or a built-in name (" + _mapping_names() + "); "
                              "default: the built-in mapping of each rule's log source "
                              "(sigma-transpile list mappings)")
    convert.add_argument("--table", type=table_name, help="table name (default: the mapping's)")
    convert.add_argument("-o", "--output", metavar="OUT",
                         help="a file (a name with an extension, such as out.kql: every query in it, as on "
                              "stdout; with -f, a one-file format's OUT.<ext>) or else a folder (a file per "
                              "rule, or the format's files); default: stdout, each query after a comment "
                              "naming its rule")
    pick = convert.add_argument_group("which rules (values of one option are alternatives, options combine)")
    pick.add_argument("--level", action="append", metavar="LEVEL[+]",
                      help="informational, low, medium, high, critical; high+ = high or critical")
    pick.add_argument("--status", action="append", metavar="STATUS",
                      help="stable, test, experimental, deprecated, unsupported")
    pick.add_argument("--tag", action="append", metavar="TAG", help="a tag, or a glob such as 'attack.t1136*'")
    ci = convert.add_argument_group("CI")
    ci.add_argument("--fail-on", choices=("error", "unsupported", "never"), default="error",
                    help="exit 1 when a rule failed (error, the default), also when one is unsupported, or never")
    ci.add_argument("--report", metavar="FILE", help="write a JSON report: counts and every rule's result")
    ci.add_argument("--junit", metavar="FILE", help="write JUnit XML: one test case per rule")
    ci.add_argument("--no-progress", action="store_true", help="no progress bar (shown only on a terminal)")
    ci.add_argument("--no-cache", action="store_true",
                    help="neither read nor write the cache of converted rules (also: SIGMA_TRANSPILE_NO_CACHE=1)")
    convert.set_defaults(func=cmd_convert)

    explain = sub.add_parser("explain", help="analyse rules: stages, exclusions, indicators, coverage")
    _rules_args(explain)
    explain.add_argument("--catalog", nargs="+", metavar="RULES_DIR",
                         help="rules to count indicators in and find rules detecting the same action")
    explain.add_argument("--format", choices=("text", "json"), default="text",
                         help="text: a readable report per rule (default); json: the same as data")
    explain.set_defaults(func=cmd_explain)

    catalog = sub.add_parser("catalog", help="build a static HTML rule catalog")
    _rules_args(catalog)
    catalog.add_argument("-o", "--output", required=True, metavar="SITE",
                         help="folder to write the site into: a new or empty folder, or one this command "
                              "wrote before (only the files it wrote are replaced)")
    catalog.add_argument("--no-progress", action="store_true", help="no progress bar (shown only on a terminal)")
    catalog.set_defaults(func=cmd_catalog)

    hunt = sub.add_parser("hunt", help="run rules over local CloudTrail logs: a timeline of detections",
                          description="Load CloudTrail files (.json, .json.gz; {\"Records\": [...]}, folders "
                                      "recursively) once and run every aws/cloudtrail rule and correlation over "
                                      "them. Records with the same eventID count once (the first, in file order).")
    _rules_args(hunt)
    hunt.add_argument("--logs", nargs="+", required=True, metavar="PATH", help="CloudTrail log files or folders")
    hunt.add_argument("--engine", choices=("duckdb", "evaluator"), default="duckdb",
                      help="duckdb: the rules' SQL on in-memory DuckDB (default); evaluator: the reference evaluator")
    hunt.add_argument("--format", choices=("table", "csv", "jsonl"), default="table",
                      help="table: aligned columns, long cells shortened to fit a terminal; csv, jsonl: every "
                           "value whole, with the rule's id and file and the event's file and position")
    hunt.add_argument("-o", "--output", metavar="FILE", help="write the timeline here (default: stdout)")
    hunt.add_argument("--no-progress", action="store_true", help="no progress bar (shown only on a terminal)")
    max_event_size(hunt)
    hunt.add_argument("--memory", type=memory_limit, metavar="SIZE",
                      help="the DuckDB engine's memory limit: beyond it, DuckDB spills to --temp-dir; "
                           "it reads with a thread per 160M past the first 64M (default 1G; at least 96M)")
    hunt.add_argument("--temp-dir", metavar="DIR",
                      help="a folder on disk where the DuckDB engine stages logs and spills (default: the "
                           "system's temporary folder, or ~/.cache/sigma-transpile where that is held in memory)")
    hunt.set_defaults(func=cmd_hunt)

    test = sub.add_parser("test", help="run each rule's own test events on the evaluator and on the targets' queries",
                          description="Find each rule's tests (NAME.tests.yml beside NAME.yml; SigmaHQ's "
                                      "regression_tests_path info.yml) and run them on every target: pass, fail "
                                      "or not executable, per rule and target.")
    _rules_args(test)
    test.add_argument("--targets", metavar="T,T", help="engines, comma separated (default: all of "
                                                       "evaluator, duckdb, athena, kql, pipesearch)")
    test.add_argument("--format", choices=("text", "json"), default="text",
                      help="text: one line per rule and target (default); json: every result as data")
    test.add_argument("--time-field", metavar="FIELD",
                      help="event time for correlation tests (default: each engine's, eventTime)")
    ci = test.add_argument_group("CI")
    ci.add_argument("--fail-on", choices=("fail", "never"), default="fail",
                    help="exit 1 when a test fails or cannot be read, or no test was found (fail, the default), "
                         "or never")
    ci.add_argument("--report", metavar="FILE", help="write a JSON report: counts and every rule's result per target")
    ci.add_argument("--junit", metavar="FILE", help="write JUnit XML: one test case per rule and target")
    ci.add_argument("--no-progress", action="store_true", help="no progress bar (shown only on a terminal)")
    test.set_defaults(func=cmd_test)

    listing = sub.add_parser("list", help="list the targets, import formats or built-in field mappings",
                             description="What -t, -f and -m of convert accept, as sigma-cli's `sigma list`.")
    listing.add_argument("what", choices=("targets", "formats", "mappings"),
                         help="targets (-t), formats (-f) with their options (-O), or mappings (-m)")
    listing.set_defaults(func=cmd_list)
    return p


def _version() -> str:
    from importlib import metadata     # here: it takes longer to import than a warm convert runs
    try:
        return metadata.version("sigma-transpiler")
    except metadata.PackageNotFoundError:      # run from a checkout that is not installed
        return "(not installed)"


class _Version(argparse.Action):
    """--version, with the version looked up only when asked for."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog} {_version()} (Python package sigma-transpiler)")
        parser.exit()


def _rules_args(p):
    p.add_argument("rules", nargs="+", metavar="RULES", help="rule files or folders (recursive)")
    p.add_argument("--placeholders", metavar="FILE", help="YAML map of |expand placeholder values")


def max_event_size(p):
    """--max-event-size, for every command that reads event files (match, hunt)."""
    p.add_argument("--max-event-size", type=byte_size, default=MAX_EVENT_BYTES, metavar="SIZE",
                   help=f"refuse an event file holding more JSON than this, after decompression "
                        f"(default {files.size_text(MAX_EVENT_BYTES)}; e.g. 4G, 512M)")


def byte_size(text: str) -> int:
    """argparse type: 512M, 2G, 1048576."""
    try:
        return files.parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def memory_limit(text: str) -> int:
    """argparse type for hunt --memory: a size DuckDB can read logs within."""
    from .engines.duckdb import MIN_MEMORY
    size = byte_size(text)
    if size < MIN_MEMORY:
        raise argparse.ArgumentTypeError(f"{text!r} is too little: DuckDB needs {MIN_MEMORY >> 20}M at least "
                                         "to read logs")
    return size


def table_name(text: str) -> str:
    """argparse type for --table: a name, or dotted parts (catalog.schema.table), none empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the table name is empty")
    if printable(text) != text:
        raise argparse.ArgumentTypeError(f"{printable(text)!r}: control characters in a table name")
    if any(not part.strip() for part in text.split(".")):
        raise argparse.ArgumentTypeError(f"{text!r}: an empty name before or after a dot "
                                         "(write table, schema.table or catalog.schema.table)")
    return text


def _output(path, option, folder=False):
    """Refuse an output path that cannot be written before any work is done."""
    problem = files.output_problem(path, folder)
    if problem:
        raise TranspileError(f"{option} {path}: {problem}", kind="option")


def _load(args):
    placeholders = _placeholders(args.placeholders) if args.placeholders else None
    return load_paths(args.rules, placeholders)


def _placeholders(path) -> dict:
    import yaml
    try:
        data = yaml.safe_load(files.read_limited(path, MAX_FILE_BYTES).decode("utf-8"))
    except (files.Unreadable, UnicodeDecodeError, yaml.YAMLError) as e:
        raise RuleError(f"cannot read placeholders: {e}", path=path, kind="placeholder") from None
    if not isinstance(data, dict):
        raise RuleError("placeholders must be a YAML map of name: [values]", path=path, kind="placeholder")
    return {str(k): v for k, v in data.items()}


def _report(errors):
    for e in errors:
        print(str(e), file=sys.stderr)


# --- check ------------------------------------------------------------------------------

def cmd_check(args) -> int:
    rules, errors = _load(args)
    unloaded = len({e.path for e in errors})    # documents, files or folders that gave no rule
    from . import correlation
    errors += correlation.resolve(rules)[2]     # references of correlations and filters
    errors += duplicates(rules)
    if args.require_tests:
        from .ruletests import problems
        errors += problems(rules)
    if args.format == "json":
        json.dump({"documents": len(rules) + unloaded, "valid": len(rules), "errors": len(errors),
                   "problems": [e.as_dict() for e in errors]}, sys.stdout, indent=2)
        print()
    else:
        for e in errors:
            print(e.headline())
        kinds = {}
        for r in rules:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        summary = ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in sorted(kinds.items()))
        print(f"{len(rules)} valid ({summary or 'none'}), {len(errors)} problem{'s' if len(errors) != 1 else ''}",
              file=sys.stderr)
    return 1 if errors else 0


# --- match ------------------------------------------------------------------------------

def cmd_match(args) -> int:
    """Every rule (and correlation) over the events, on the reference evaluator: `hunt`'s plan
    without its CloudTrail filter, nor its de-duplication."""
    from . import engines
    start = time.perf_counter()
    rules, errors = _load(args)
    plan = engines.plan(rules, errors)
    _report(plan.errors)
    repeated = duplicates(rules)      # told, not failed: each line then names its rule's file
    _report(repeated)
    found, bad_files = find_event_files(args.events)
    bars = _ProgressBars(args)
    outcome = engines.get("evaluator")(time_field=args.time_field).run(
        plan.rules, engines.Files(tuple(found), max_bytes=args.max_event_size), plan.correlations, show=("eventid",),
        progress=bars)
    bars.clear()
    bad_files += outcome.read.errors
    _report(bad_files)
    failures = plan.failures(outcome)
    _report(failures)
    rows = []
    for event_key, n in sorted((k, n) for n, keys in outcome.matches.items() if id(plan.rules[n]) in plan.shown
                               for k in keys):
        rule, (f, index) = plan.rules[n], engines.place(event_key)
        rows.append({"kind": "match", "rule_id": rule.id, "title": rule.title, "level": rule.level,
                     "rule_path": rule.label, "file": outcome.read.files[f], "index": index,
                     "event_id": outcome.rows[event_key].get("eventid")})
    alerts = outcome.alerts
    rows += [{"kind": "correlation", **a.as_dict(), "rule_path": a.correlation.rule.label} for a in alerts]
    _print_rows(rows, args.format, rule_files=bool(repeated))
    seconds = time.perf_counter() - start
    print(f"{len(plan.shown)} rules, {len(plan.correlations)} correlations, {outcome.read.records} events, "
          f"{len(rows) - len(alerts)} matches, {len(alerts)} correlation alerts, "
          f"{len(plan.errors) + len(failures)} rule errors, {len(bad_files)} bad event files, {seconds:.2f} s",
          file=sys.stderr)
    return 1 if plan.errors or failures or bad_files else 0


class _ProgressBars:
    """progress(label, done, total) for an engine: one bar per step on a terminal (batch.Progress)."""

    def __init__(self, args):
        self.enabled, self.bars = not args.no_progress, {}

    def __call__(self, label, done, total):
        if label not in self.bars:
            self.clear()
            self.bars[label] = batch.Progress(enabled=self.enabled, label=label)
        self.bars[label].update(done, total)

    def clear(self):
        for bar in self.bars.values():
            bar.clear()


def _print_rows(rows, fmt, rule_files=False):
    """json and jsonl hold the values exactly; text has their control characters escaped, and
    with rule_files (rules sharing an id or title) ends each line with the rule's file."""
    out = sys.stdout
    if fmt == "json":
        json.dump(rows, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return
    for row in rows:
        if fmt == "jsonl":
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            rule = f" ({row['rule_path']})" if rule_files else ""
            if row["kind"] == "match":
                eid = f" eventID={row['event_id']}" if row["event_id"] else ""
                line = f"{row['rule_id'] or '-'} {row['title']!r}: {row['file']}#{row['index']}{eid}{rule}"
            else:
                group = ", ".join(f"{k}={v}" for k, v in row["group"].items())
                line = (f"{row['rule_id'] or '-'} {row['title']!r}: {row['type']} [{group}] triggered "
                        f"{row['triggers']}x from {row['first_trigger']} to {row['last_trigger']}{rule}")
            out.write(printable(line) + "\n")


# --- convert ----------------------------------------------------------------------------

def cmd_convert(args) -> int:
    """Convert every rule; write the queries or a format's files; summarise on stderr.
    read = converted + unsupported + failed; exit status per --fail-on."""
    start = time.perf_counter()
    fmt, options = _convert_format(args)
    _convert_outputs(args, fmt)
    _mapping_option(args)
    keep = batch.selector(args.level, args.status, args.tag)
    backend = _LazyBackend(args)
    placeholders = _placeholders(args.placeholders) if args.placeholders else None
    convert = lambda rule: batch.convert_one(backend, rule)  # noqa: E731
    cached = (cache.Conversion.open(args.target, args.mapping, args.table, placeholders, convert=convert, keep=keep)
              if cache.enabled(args.no_cache) else cache.Conversion.unstored(convert, keep))
    loading, progress, writing = (batch.Progress(enabled=not args.no_progress, label=label)
                                  for label in ("loading", "converting", "writing"))
    try:
        with _terminate_as_exit(), _few_collections():
            rules, errors = batch.load_all(args.rules, placeholders, loading, cached)
            if cached is not None and cached.needs_full_rules(rules):
                cached = None         # filters or correlations: every rule in full, nothing cached
                rules, errors = batch.load_all(args.rules, placeholders, loading)
            loading.clear()
            records, excluded = batch.convert_all(backend, rules, errors, keep, progress, cached)
            progress.clear()
            if cached is not None:
                cached.save(rules, errors, records, convert)
            if fmt is not None:
                batch.apply_limits(records, fmt)
            outputs = _convert_files(args, backend, fmt, options, records)   # may refuse rules too big for a file
            for r in records:
                for e in r.errors:
                    print(str(e), file=sys.stderr)
                for note in r.notes:
                    print(f"{r.label}: note: {note}", file=sys.stderr)
            repeated = duplicates(rules)
            _report(repeated)
            written = _convert_write(args, fmt, outputs, writing)
            seconds = time.perf_counter() - start
            meta = {"target": args.target, "fmt": fmt.name if fmt else None, "seconds": seconds,
                    "fail_on": args.fail_on}
            if args.report:
                batch.write_report(args.report, batch.report_json(
                    records, output=args.output, excluded=excluded, duplicates=repeated, **meta))
            if args.junit:
                batch.write_report(args.junit, batch.report_junit(records, **meta))
    except KeyboardInterrupt:
        for bar in (loading, progress, writing):
            bar.clear()
        print("interrupted: no file is left half-written", file=sys.stderr)
        return 130
    print(batch.summary_line(records, excluded, seconds, written, len(repeated)), file=sys.stderr)
    global quick_exit
    quick_exit = True        # every file is written and closed; nothing is left to clean up
    return batch.exit_code(records, args.fail_on)


class _LazyBackend:
    """The target's backend, made when first used: a run whose every rule comes from the cache
    converts nothing, and so imports neither the backend nor Jinja. A -m mapping file is read
    at once, so that a bad one stops the run before anything is done."""

    def __init__(self, args):
        self._args = args
        if args.mapping:
            self._backend()

    def _backend(self):
        made = self.__dict__.get("_made")
        if made is None:
            made = self.__dict__["_made"] = backends.get(self._args.target)(
                mapping_file=self._args.mapping, table=self._args.table)
            made.env.bytecode_cache = cache.templates()   # compiled templates kept between runs
        return made

    def __getattr__(self, name):
        return getattr(self._backend(), name)


def _one_file(args, fmt) -> bool:
    """-o names one file: with -f, a one-file format's OUT.<ext>; without, any name with an
    extension (out.kql, queries.txt) that is not a folder, as sigma-cli's -o. Else a folder."""
    out = Path(args.output) if args.output else None
    if out is None or out.is_dir():
        return False
    if fmt is not None:
        return fmt.layout.files == "set" and out.name.endswith("." + fmt.extension)
    return bool(out.suffix)


def _convert_outputs(args, fmt):
    """-o (a folder, or one file), --report and --junit (files)."""
    if args.output:
        _output(args.output, "-o", folder=not _one_file(args, fmt))
    for option, path in (("--report", args.report), ("--junit", args.junit)):
        if path:
            _output(path, option)


def _convert_format(args):
    """The -f format and its options (-O), or (None, {}) for plain queries."""
    if not args.format:
        if args.option:
            raise TranspileError("-O/--option needs a format (-f)", kind="option")
        return None, {}
    found = formats.available(args.target)
    fmt = found.get(args.format)
    if fmt is None:
        raise TranspileError(f"{args.target} has no format {args.format!r}; it has: {', '.join(found) or 'none'}",
                             kind="option")
    if fmt.layout.files != "set" and (not args.output or args.output.endswith("." + fmt.extension)):
        raise TranspileError(f"format {fmt.name} writes several files: give a folder with -o", kind="option")
    return fmt, formats.parse_options(fmt, args.option)


def _convert_files(args, backend, fmt, options, records) -> list:
    """(file name, text, records) for every output file; rendered in memory, before any is written."""
    if fmt is not None:
        return formats.Renderer(fmt, args.target, options).files(records)
    done = [r for r in records if r.result == "converted" and r.query is not None]   # filters: none
    queries = formats.query_text(args.target)
    if not args.output or _one_file(args, fmt):       # one stream: each query says which rule it is
        text = "".join(queries.labelled(r.query, f"{r.label}: {r.rule.title}") + "\n\n" for r in done)
        return [(Path(args.output).name if args.output else "-", text, done)]
    names = formats.rule_file_names(done, queries.extension)
    return [(name, r.query + "\n", [r]) for name, r in zip(names, done)]


def _convert_write(args, fmt, outputs, progress) -> int | None:
    """Write the files (stdout when there is no -o); record in each rule where it went."""
    if not args.output:
        for _, text, _ in outputs:
            sys.stdout.write(text)
        for _, _, records in outputs:
            for r in records:
                r.outputs.append("-")
        return None
    out = Path(args.output)
    if _one_file(args, fmt):                            # -o all.jsonl, -o out.kql: the one file itself
        out.parent.mkdir(parents=True, exist_ok=True)
        outputs = [(out.name, text, records) for _, text, records in outputs]
        out = out.parent
    formats.write_all(out, outputs, progress)
    progress.clear()
    for name, _, records in outputs:
        for r in records:
            r.outputs.append(str(out / name))
    return len(outputs)


@contextlib.contextmanager
def _few_collections():
    """A batch makes hundreds of thousands of objects that live to its end, and almost no
    cyclic garbage (the tracebacks of refused rules): the cyclic collector, which would scan
    the live ones again and again (a tenth of a KQL convert), is off during the batch. After
    it, freeze() and unfreeze() move them to the oldest generation without a scan, so turning
    the collector on again does not start a full collection; a later one frees them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _terminate_as_exit():
    """SIGTERM (a CI job cancelled) unwinds like Ctrl-C, so temporary files are removed."""
    def stop(signum, frame):
        raise KeyboardInterrupt
    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:             # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _optional_mappings(target) -> dict:
    """The built-in mappings -m selects by name: templates/<target>/mappings/optional/NAME.yml."""
    folder = resource_dir("templates") / target / "mappings" / "optional"
    return {p.stem: p for p in sorted(folder.glob("*.yml"))} if folder.is_dir() else {}


def _mapping_names() -> str:
    found = [f"{t}: {', '.join(_optional_mappings(t))}" for t in sorted(backends.BACKENDS) if _optional_mappings(t)]
    return "; ".join(found) or "none"


def _mapping_option(args):
    """-m names a file or a built-in mapping of the target: anything else is one clear error."""
    name = args.mapping
    if name is None or Path(name).exists() or name in _optional_mappings(args.target):
        return
    known = ", ".join(_optional_mappings(args.target)) or "none"
    raise TranspileError(f"-m {name}: no such file, and {args.target} has no built-in mapping of that name "
                         f"(built-in for {args.target}: {known}; see sigma-transpile list mappings)", kind="option")


def _formats_help() -> str:
    lines = ["formats (-f); files: one per rule, one for the set, or up to N rules each;",
             "options (-O name=value) with their defaults:"]
    for target in sorted(backends.BACKENDS):
        for name, fmt in formats.available(target).items():
            layout = fmt.layout
            files = {"rule": "per rule", "set": "one file"}.get(layout.files, f"{layout.size} a file")
            opts = ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in layout.options.items())
            lines.append(f"  {target:<10} {name:<14} .{fmt.extension:<6} {files:<10} {opts}".rstrip())
    return "\n".join(lines)


# --- list ------------------------------------------------------------------------------------

def cmd_list(args) -> int:
    """What -t, -f and -m accept, one entry a line (a second, indented line for details)."""
    out = []
    for target in sorted(backends.BACKENDS):
        if args.what == "targets":
            q = formats.query_text(target)
            out.append(f"{target:<11} .{q.extension:<4} {q.about}")
        elif args.what == "formats":
            for name, fmt in formats.available(target).items():
                layout = fmt.layout
                files = {"rule": "a file per rule", "set": "one file"}.get(layout.files, f"up to {layout.size} rules a file")
                opts = ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in layout.options.items())
                out.append(f"{target:<11} {name:<15} {fmt.about}")
                out.append(f"{'':<27} .{fmt.extension}, {files}" + (f"; -O {opts}" if opts else ""))
        else:
            for mapping, how in _mappings(target):
                out.append(f"{target:<11} {Path(mapping.source).stem:<15} {how}; table {mapping.table}")
                out.append(f"{'':<27} {mapping.description or _leading_comment(mapping.source)}")
    print("\n".join(out))
    return 0


def _mappings(target) -> list:
    """(mapping, how it is chosen) for a target's built-in mappings: by log source, then by -m."""
    backend = backends.get(target)()
    found = []
    for m in backend.builtin_mappings:
        ls = " ".join(f"{k}={v}" for k, v in m.logsource.items())
        found.append((m, f"for logsource {ls}" if ls else "for any other logsource"))
    from .mapping import load_mapping_file
    for name, path in _optional_mappings(target).items():
        found.append((load_mapping_file(path), f"with -m {name}"))
    return found


def _leading_comment(path) -> str:
    """The first sentence of a YAML file's opening comment lines."""
    lines = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return re.split(r"(?<=\.)\s", " ".join(lines), maxsplit=1)[0]


# --- explain and catalog (transpiler/analysis.py, transpiler/catalog.py) ----------------------

def cmd_explain(args) -> int:
    from .analysis import Corpus, analyze, render_text
    rules, errors = _load(args)
    _report(errors)
    placeholders = _placeholders(args.placeholders) if args.placeholders else None
    corpus = None
    if args.catalog:
        others, bad = load_paths(args.catalog, placeholders)
        unread = [e for e in bad if e.kind in ("empty", "io")]    # a --catalog path that gives nothing
        _report(unread)
        errors += unread
        if len(bad) > len(unread):
            print(f"catalog: {len(bad) - len(unread)} rule documents with errors left out", file=sys.stderr)
        corpus = Corpus(others)
    found = [analyze(r, corpus, placeholders) for r in rules if r.kind == "rule"]
    if len(found) < len(rules):
        print(f"{len(rules) - len(found)} correlation/filter documents not analysed", file=sys.stderr)
    if args.format == "json":
        json.dump([a.as_dict() for a in found], sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        text = "\n".join(render_text(a) for a in found)    # titles and values from the rule: no escapes
        sys.stdout.write("\n".join(printable(line) for line in text.split("\n")))
    return 1 if errors else 0


def cmd_catalog(args) -> int:
    from .catalog import build
    start = time.perf_counter()
    _output(args.output, "-o", folder=True)
    rules, errors = _load(args)
    _report(errors)
    placeholders = _placeholders(args.placeholders) if args.placeholders else None
    bar = batch.Progress(enabled=not args.no_progress, label="pages")
    stats = build(rules, Path(args.output), placeholders=placeholders, errors=errors, progress=bar)
    bar.clear()
    _report(stats["problems"])
    errors += stats["problems"]
    print(f"{stats['rules']} rule pages, {stats['correlations']} correlation pages, {stats['queries']} queries, "
          f"{stats['unsupported']} unsupported, "
          f"{len(errors)} rule errors, {time.perf_counter() - start:.2f} s -> {args.output}", file=sys.stderr)
    return 1 if errors else 0


# --- hunt (transpiler/hunt.py) ----------------------------------------------------------------

def cmd_hunt(args) -> int:
    """The timeline of detections; Ctrl-C or SIGTERM at any moment: `interrupted`, exit 130,
    and -o FILE is the previous file or the new one whole (files.atomic_output)."""
    from . import hunt
    if args.output:
        _output(args.output, "-o")
    bars = {}

    def progress(label, done, total):
        bar = bars.get(label)
        if bar is None:
            for other in bars.values():
                other.clear()
            bar = bars[label] = batch.Progress(enabled=not args.no_progress, label=label)
        bar.update(done, total)

    if args.temp_dir and not Path(args.temp_dir).is_dir():
        raise TranspileError(f"--temp-dir {args.temp_dir}: not a folder", kind="option")
    placeholders = _placeholders(args.placeholders) if args.placeholders else None
    stop = _Interrupts()
    try:
        with stop, hunt.hunting(args.rules, args.logs, args.engine, placeholders, progress, args.max_event_size,
                                args.memory, args.temp_dir) as report:
            for bar in bars.values():
                bar.clear()
            _report(report.rule_errors)
            _report(report.bad_files)
            if args.output:
                with files.atomic_output(args.output) as out:
                    hunt.write(report, args.format, out)
            else:
                hunt.write(report, args.format, sys.stdout, hunt.terminal_width(sys.stdout))
            sys.stderr.write(hunt.summary(report))
    except BaseException as e:
        # DuckDB turns an interrupt inside a query into its own error: the signal decides.
        if not (stop.hit or isinstance(e, KeyboardInterrupt)):
            from .duckdb_events import scratch_root
            if isinstance(e, OSError) and e.errno == errno.ENOSPC and str(e.filename or "").startswith(
                    scratch_root(args.temp_dir)):
                raise TranspileError(f"{e.filename}: {e.strerror} (hunt stages the logs and spills there: "
                                     "--temp-dir names a folder with more room)", kind="error") from None
            raise
        for bar in bars.values():
            bar.clear()
        print("interrupted", file=sys.stderr)
        return 130
    return 1 if report.rule_errors or report.bad_files else 0


class _Interrupts:
    """SIGINT and SIGTERM raise KeyboardInterrupt once, then are only noted: cleaning up
    (stopping DuckDB's threads, removing temporary files) is not itself interrupted."""

    def __init__(self):
        self.hit = False
        self.previous = {}

    def _handle(self, signum, frame):
        if not self.hit:
            self.hit = True
            raise KeyboardInterrupt

    def __enter__(self):
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        except ValueError:           # not the main thread: signals are not ours to handle
            pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# --- test (transpiler/ruletests.py, transpiler/testrun.py) ---------------------------------

def cmd_test(args) -> int:
    from . import engines, ruletests, testrun
    start = time.perf_counter()
    targets = [t.strip() for t in (args.targets or "").split(",") if t.strip()] or \
        sorted(engines.ENGINES, key=lambda t: (t != "evaluator", t))
    unknown = [t for t in targets if t not in engines.ENGINES]
    if unknown:
        raise TranspileError(f"--targets: unknown target {unknown[0]!r}; known: {', '.join(sorted(engines.ENGINES))}",
                             kind="option")
    for option, path in (("--report", args.report), ("--junit", args.junit)):
        if path:
            _output(path, option)
    placeholders = _placeholders(args.placeholders) if args.placeholders else None
    loading, testing = (batch.Progress(enabled=not args.no_progress, label=label) for label in ("loading", "testing"))
    try:
        with _terminate_as_exit():
            rules, errors = batch.load_all(args.rules, placeholders, loading)
            loading.clear()
            suite, untested = ruletests.collect(rules)
            results = testrun.run(suite, targets, testing, args.time_field)
            testing.clear()
    except KeyboardInterrupt:
        loading.clear()
        testing.clear()
        print("interrupted", file=sys.stderr)
        return 130
    _report(errors)
    seconds = time.perf_counter() - start
    report = testrun.report_json(results, targets, untested, errors, seconds)
    sys.stdout.write(report if args.format == "json" else testrun.report_text(results, targets))
    if args.report:
        batch.write_report(args.report, report)
    if args.junit:
        batch.write_report(args.junit, testrun.report_junit(results, targets, seconds))
    print(testrun.summary_line(results, targets, suite, untested, seconds), file=sys.stderr)
    if not suite:
        print("no tests found: add NAME.tests.yml beside a rule, or regression_tests_path", file=sys.stderr)
    return testrun.exit_code(results, errors, args.fail_on)

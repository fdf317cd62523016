"""sigma-transpile: check, match and convert Sigma rules.

Every batch command reads all rules, reports every problem on stderr (one line each,
`path: key or condition position: message`), goes on with the others, and exits 1 if
anything failed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from . import backends, correlation
from .errors import RuleError, TranspileError
from .events import read_events
from .rule import load_paths
from .ruleset import RuleSet


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except TranspileError as e:          # a bad option file: placeholders, mapping
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:              # `| head` closed stdout: not an error
        return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sigma-transpile", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="load rules and report every problem")
    _rules_args(check)
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.set_defaults(func=cmd_check)

    match = sub.add_parser("match", help="run rules over JSON events with the reference evaluator")
    _rules_args(match)
    match.add_argument("--events", nargs="+", required=True, metavar="FILE",
                       help="event files or folders: CloudTrail Records, JSON array/object, JSON Lines, .gz")
    match.add_argument("--format", choices=("text", "json", "jsonl"), default="text")
    match.add_argument("--time-field", metavar="FIELD",
                       help="event time for correlations (default: eventTime, @timestamp, timestamp, ...)")
    match.set_defaults(func=cmd_match)

    convert = sub.add_parser("convert", help="convert rules into queries for a target")
    _rules_args(convert)
    convert.add_argument("-t", "--target", required=True, choices=sorted(backends.BACKENDS))
    convert.add_argument("-m", "--mapping", metavar="FILE", help="field mapping YAML (default: built-in)")
    convert.add_argument("--table", help="table name (default: the mapping's)")
    convert.add_argument("-o", "--output", metavar="DIR", help="write one file per rule under DIR")
    convert.set_defaults(func=cmd_convert)

    explain = sub.add_parser("explain", help="analyse rules: stages, exclusions, indicators, coverage")
    _rules_args(explain)
    explain.add_argument("--catalog", nargs="+", metavar="RULES_DIR",
                         help="rules to count indicators in and find rules detecting the same action")
    explain.add_argument("--format", choices=("text", "json"), default="text")
    explain.set_defaults(func=cmd_explain)

    catalog = sub.add_parser("catalog", help="build a static HTML rule catalog")
    _rules_args(catalog)
    catalog.add_argument("-o", "--output", required=True, metavar="SITE", help="folder to write the site into")
    catalog.set_defaults(func=cmd_catalog)
    return p


def _rules_args(p):
    p.add_argument("rules", nargs="+", metavar="RULES", help="rule files or folders (recursive)")
    p.add_argument("--placeholders", metavar="FILE", help="YAML map of |expand placeholder values")


def _load(args):
    placeholders = _placeholders(args.placeholders) if args.placeholders else None
    return load_paths(args.rules, placeholders)


def _placeholders(path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
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
    errors += correlation.resolve(rules)[2]     # references of correlations and filters
    if args.format == "json":
        json.dump({"documents": len(rules) + len(errors), "valid": len(rules), "errors": len(errors),
                   "problems": [e.as_dict() for e in errors]}, sys.stdout, indent=2)
        print()
    else:
        for e in errors:
            print(e.headline())
        kinds = {}
        for r in rules:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        summary = ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in sorted(kinds.items()))
        print(f"{len(rules)} valid ({summary or 'none'}), {len(errors)} with errors", file=sys.stderr)
    return 1 if errors else 0


# --- match ------------------------------------------------------------------------------

def cmd_match(args) -> int:
    start = time.perf_counter()
    rules, errors = _load(args)
    correlations, detections, resolve_errors = correlation.resolve(rules)
    errors += resolve_errors
    _report(errors)
    events, bad_files = read_events(args.events)
    _report(bad_files)
    rows = []
    ruleset = RuleSet(correlation.standalone(detections, correlations))
    for event in events:
        for rule in ruleset.matching(event.data):
            rows.append({"kind": "match", "rule_id": rule.id, "title": rule.title, "level": rule.level,
                         "rule_path": rule.label, "file": event.source, "index": event.index,
                         "event_id": event.event_id})
    data = [e.data for e in events]
    alerts = [a for c in correlations for a in correlation.evaluate(c, data, args.time_field)]
    rows += [{"kind": "correlation", **a.as_dict(), "rule_path": a.correlation.rule.label} for a in alerts]
    _print_rows(rows, args.format)
    seconds = time.perf_counter() - start
    print(f"{len(ruleset.rules)} rules, {len(correlations)} correlations, {len(events)} events, "
          f"{len(rows) - len(alerts)} matches, {len(alerts)} correlation alerts, {len(errors)} rule errors, "
          f"{len(bad_files)} bad event files, {seconds:.2f} s", file=sys.stderr)
    return 1 if errors or bad_files else 0


def _print_rows(rows, fmt):
    out = sys.stdout
    if fmt == "json":
        json.dump(rows, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return
    for row in rows:
        if fmt == "jsonl":
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif row["kind"] == "match":
            eid = f" eventID={row['event_id']}" if row["event_id"] else ""
            out.write(f"{row['rule_id'] or '-'} {row['title']!r}: {row['file']}#{row['index']}{eid}\n")
        else:
            group = ", ".join(f"{k}={v}" for k, v in row["group"].items())
            out.write(f"{row['rule_id'] or '-'} {row['title']!r}: {row['type']} [{group}] triggered "
                      f"{row['triggers']}x from {row['first_trigger']} to {row['last_trigger']}\n")


# --- convert ----------------------------------------------------------------------------

def cmd_convert(args) -> int:
    rules, errors = _load(args)
    _report(errors)
    backend = backends.get(args.target)(mapping_file=args.mapping, table=args.table)
    failed = list(errors)
    outputs = []
    for rule in rules:
        if rule.kind != "rule":
            continue     # correlations and filters: not converted yet
        try:
            outputs.append((rule, backend.convert(rule)))
        except TranspileError as e:
            failed.append(e.located(rule.label))
            print(str(e), file=sys.stderr)
    if args.output:
        _write_files(Path(args.output), outputs, getattr(backend, "extension", "txt"))
    else:
        sys.stdout.write("".join(f"{query}\n\n" for _, query in outputs))
    print(f"{len(outputs)} converted, {len(failed)} failed", file=sys.stderr)
    return 1 if failed else 0


# --- explain and catalog (transpiler/analysis.py, transpiler/catalog.py) ----------------------

def cmd_explain(args) -> int:
    from .analysis import Corpus, analyze, render_text
    rules, errors = _load(args)
    _report(errors)
    placeholders = _placeholders(args.placeholders) if args.placeholders else None
    corpus = None
    if args.catalog:
        others, bad = load_paths(args.catalog, placeholders)
        if bad:
            print(f"catalog: {len(bad)} rule documents with errors left out", file=sys.stderr)
        corpus = Corpus(others)
    found = [analyze(r, corpus, placeholders) for r in rules if r.kind == "rule"]
    if args.format == "json":
        json.dump([a.as_dict() for a in found], sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        sys.stdout.write("\n".join(render_text(a) for a in found))
    return 1 if errors else 0


def cmd_catalog(args) -> int:
    from .catalog import build
    start = time.perf_counter()
    rules, errors = _load(args)
    _report(errors)
    placeholders = _placeholders(args.placeholders) if args.placeholders else None
    stats = build(rules, Path(args.output), placeholders=placeholders, errors=errors)
    print(f"{stats['rules']} rule pages, {stats['queries']} queries, {stats['unsupported']} unsupported, "
          f"{len(errors)} rule errors, {time.perf_counter() - start:.2f} s -> {args.output}", file=sys.stderr)
    return 1 if errors else 0


def _write_files(folder: Path, outputs, extension: str):
    folder.mkdir(parents=True, exist_ok=True)
    used = set()
    for rule, query in outputs:
        stem = Path(rule.path).stem + (f"_{rule.doc}" if rule.doc else "")
        name, n = stem, 1
        while name in used:          # two rules with one file name in different folders
            n += 1
            name = f"{stem}_{n}"
        used.add(name)
        write_atomic(folder / f"{name}.{extension}", query + "\n")


def write_atomic(path: Path, text: str):
    """Write through a temporary file and a rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise

"""`convert` as a CI step: which rules to convert, what became of each, and the reports.

Every document read ends as exactly one Record with result converted, unsupported (the
target cannot say it, or its import format refuses it) or failed (a load error, or any
other error): read = converted + unsupported + failed. Reports: a JSON file, and JUnit
XML with one test case per rule (failure / skipped), so CI systems show each rule.
"""
from __future__ import annotations

import fnmatch
import functools
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TranspileError, Unsupported
from .rule import LEVELS, find_rule_files, load_file

# correlation (the evaluator, RE2), formats (Jinja, PyYAML) and ElementTree are imported where
# they are used: a warm convert (transpiler/cache.py) needs none of them.


@dataclass
class Record:
    """One document read and what became of it."""

    path: str                       # the rule file
    doc: int = 0                    # the YAML document in it
    rule: object = None             # transpiler.rule.Rule, None when it did not load
    result: str = "failed"          # converted | unsupported | failed
    query: str | None = None
    table: str | None = None        # the table the query reads (the backend's mapping)
    extra: dict = field(default_factory=dict)   # backend-specific fields for import files
    errors: list = field(default_factory=list)  # TranspileError
    guid: str = ""                  # stable per rule id (uuid5), unique in the batch
    outputs: list = field(default_factory=list)  # files holding it
    notes: list = field(default_factory=list)    # what an import format changed, e.g. ATT&CK tags Sentinel refuses

    @property
    def label(self) -> str:
        return self.path if self.doc == 0 else f"{self.path}#{self.doc}"


# --- which rules -------------------------------------------------------------------------------

def selector(levels=None, statuses=None, tags=None):
    """A predicate over loaded rules from --level/--status/--tag values. Values of one option
    are alternatives (repeat the option or separate with commas); options combine with AND.
    `high+` means high or above; tags are case-insensitive globs (attack.t1136*)."""
    levels, statuses, tags = _split(levels), _split(statuses), _split(tags)
    wanted_levels = set()
    for value in levels:
        name = value.rstrip("+").lower()
        if name not in LEVELS:
            raise TranspileError(f"--level {value!r}: levels are {', '.join(LEVELS)} (add + for 'or above')",
                                 kind="option")
        wanted_levels.update(LEVELS[LEVELS.index(name):] if value.endswith("+") else (name,))
    wanted_status = {s.lower() for s in statuses}
    patterns = [re.compile(fnmatch.translate(t.lower())) for t in tags]

    def keep(rule) -> bool:
        if wanted_levels and str(rule.level).lower() not in wanted_levels:
            return False
        if wanted_status and str(rule.status).lower() not in wanted_status:
            return False
        if patterns and not any(p.match(str(t).lower()) for t in rule.tags for p in patterns):
            return False
        return True
    return keep


def _split(values) -> list[str]:
    return [v.strip() for value in values or () for v in value.split(",") if v.strip()]


# --- loading and converting ---------------------------------------------------------------------

def load_all(paths, placeholders=None, progress=None, cached=None):
    """rule.load_paths, file by file, so that a progress bar can follow; with `cached` (a
    cache.Conversion), each file's stored outcome where there is one, or the outcome
    cached.prepare() made."""
    rules = []
    files, errors = find_rule_files(paths)
    if cached is not None:
        cached.prepare(files, placeholders)     # a cold batch: loaded and converted on every core
    load = cached.load if cached is not None else load_file
    for i, f in enumerate(files, 1):
        got, bad = load(f, placeholders)
        rules.extend(got)
        errors.extend(bad)
        if progress is not None:
            progress.update(i, len(files))
    return rules, errors


def convert_all(backend, rules, load_errors, keep=None, progress=None, cached=None) -> tuple[list, int]:
    """A Record per document (load errors included), in path order; and how many rules the
    filters left out. With `cached` (a cache.Conversion), a rule's stored outcome stands for
    converting it.

    Filter documents are applied to the rules they name (their record holds no query of its
    own); correlations are converted by the backend's convert_correlation; rules that a
    correlation uses with `generate: false` are not converted on their own (spec default)."""
    by_doc: dict = {}
    for e in load_errors:             # one record per document, however many errors it has
        key = _where(e.path)
        by_doc.setdefault(key, Record(key[0], key[1])).errors.append(e)
    records = list(by_doc.values())
    if all(r.kind == "rule" for r in rules):      # what correlation.resolve gives such a set
        correlations, detections, resolve_errors = [], rules, []
    else:
        from . import correlation
        correlations, detections, resolve_errors = correlation.resolve(rules)
    problems: dict = {}
    for e in resolve_errors:
        problems.setdefault(e.path, []).append(e)
    filtered = dict(zip((id(r) for r in rules if r.kind == "rule"), detections))
    by_correlation = {id(c.rule): c for c in correlations}
    hidden = {id(b): c for c in correlations if not c.generate for b in c.rules}
    chosen = [r for r in rules if keep is None or keep(r)]
    excluded = len(rules) - len(chosen)
    for i, rule in enumerate(chosen):
        if rule.label in problems:
            found = problems[rule.label]
            unsupported = all(isinstance(e, Unsupported) for e in found)   # e.g. a chain of correlations
            record = Record(rule.path, rule.doc, rule, result="unsupported" if unsupported else "failed",
                            errors=list(found))
        elif rule.kind == "filter":
            record = Record(rule.path, rule.doc, rule, result="converted",
                            extra={"applied_to": list(rule.body.get("rules") or [])})
        elif rule.kind == "correlation":
            record = convert_one(backend, rule, by_correlation[id(rule)])
        elif id(filtered.get(id(rule))) in hidden:
            c = hidden[id(filtered[id(rule)])]
            record = Record(rule.path, rule.doc, rule, result="unsupported", errors=[Unsupported(
                f"not converted on its own: correlation {c.rule.title!r} uses it with generate: false",
                path=rule.label, kind="not-generated")])
        else:
            record = (cached and cached.record(rule)) or convert_one(backend, filtered.get(id(rule), rule))
        records.append(record)
        if progress is not None:
            progress.update(i + 1, len(chosen))
    records.sort(key=lambda r: (r.path, r.doc))
    assign_guids(records)
    return records, excluded


def _where(label) -> tuple[str, int]:
    """(file, document) from an error's `path` or `path#doc` label."""
    label = str(label or "<unknown>")
    head, sep, tail = label.rpartition("#")
    return (head, int(tail)) if sep and tail.isdigit() else (label, 0)


def convert_one(backend, rule, correlated=None) -> Record:
    """Convert a rule, or with `correlated` (a correlation.Correlation) the correlation `rule`."""
    record = Record(rule.path, rule.doc, rule)
    try:
        record.query = backend.convert_correlation(correlated) if correlated else backend.convert(rule)
        record.table = _table(backend)
        record.extra = _extra(backend, rule)
    except Unsupported as e:
        record.query = None
        record.result = "unsupported"
        record.errors.append(e.located(rule.label))
        return record
    except TranspileError as e:
        record.query = None
        record.errors.append(e.located(rule.label))
        return record
    except Exception as e:   # a backend bug must not stop a batch: report it as this rule's failure
        record.query = None
        record.errors.append(TranspileError(f"internal error: {type(e).__name__}: {e}", path=rule.label,
                                            kind="internal"))
        return record
    record.result = "converted"
    return record


def apply_limits(records, fmt):
    """A query longer than the format's target accepts makes its rule unsupported there."""
    for r in records:
        problem = fmt.limit_problem(r.query) if r.result == "converted" else None
        if problem:
            r.result = "unsupported"
            r.errors.append(Unsupported(problem, path=r.label, kind="too-long"))


def _table(backend):
    try:
        return backend.table()
    except Exception:
        return None


def _extra(backend, rule) -> dict:
    """Backend-specific fields for import files: pipe-search's alert message template
    (`message(rule)`) and output field order (`output_fields(rule)`), where a backend has them."""
    out = {}
    for name in ("message", "output_fields"):
        get = getattr(backend, name, None)
        if callable(get):
            out[name] = get(rule)
    return out


def assign_guids(records):
    """uuid5 of the Sigma id (or of title and file when there is none); a second rule with
    the same id gets the uuid5 of `id#2`, in path order, so ids are unique and stable."""
    from .formats import NAMESPACE
    seen = set()
    for r in records:
        base = str(r.rule.id) if r.rule is not None and r.rule.id else \
            f"{r.rule.title if r.rule is not None else ''}\0{r.label}"
        guid, n = uuid.uuid5(NAMESPACE, base), 1
        while guid in seen:
            n += 1
            guid = uuid.uuid5(NAMESPACE, f"{base}#{n}")
        seen.add(guid)
        r.guid = str(guid)


# --- summary, exit code, reports --------------------------------------------------------------

def counts(records) -> dict:
    out = {"read": len(records), "converted": 0, "unsupported": 0, "failed": 0}
    for r in records:
        out[r.result] += 1
    return out


def exit_code(records, fail_on: str) -> int:
    c = counts(records)
    if fail_on == "never":
        return 0
    if c["failed"] or (fail_on == "unsupported" and c["unsupported"]):
        return 1
    return 0


def summary_line(records, excluded: int, seconds: float, files: int | None = None, duplicates: int = 0) -> str:
    c = counts(records)
    text = (f"{c['read']} rules read, {c['converted']} converted, {c['unsupported']} unsupported, "
            f"{c['failed']} failed")
    if excluded:
        text += f" ({excluded} left out by filters)"
    if duplicates:
        text += f", {duplicates} duplicate{'s' if duplicates != 1 else ''} (id, title or file name)"
    if files is not None:
        text += f", {files} file{'s' if files != 1 else ''} written"
    return text + f", {seconds:.2f} s"


def report_json(records, *, target, fmt, output, excluded, seconds, fail_on, duplicates=()) -> str:
    """The JSON report: counts, each rule's result, outputs and SIEM id (`guid`), and the
    repeated ids, titles and file names (rule.duplicates)."""
    from .formats import to_json
    rows = []
    for r in records:
        rule = r.rule
        rows.append({"path": r.path, "doc": r.doc, "id": rule.id if rule else None,
                     "title": rule.title if rule else None, "level": rule.level if rule else None,
                     "kind": rule.kind if rule else None, "result": r.result, "guid": r.guid,
                     "errors": [e.as_dict() for e in r.errors], "notes": list(r.notes), "outputs": list(r.outputs)})
    data = {"target": target, "format": fmt, "output": output, "fail_on": fail_on,
            "summary": {**counts(records), "excluded": excluded, "duplicates": len(duplicates),
                        "seconds": round(seconds, 3)},
            "rules": rows, "duplicates": [e.as_dict() for e in duplicates]}
    return to_json(data, indent=2) + "\n"


@functools.cache
def _xml_bad():
    # XML 1.0 has no way to write most control characters, even escaped. (Compiled when a
    # JUnit report is written: the class takes milliseconds to compile.)
    return re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text) -> str:
    return _xml_bad().sub(lambda m: f"\\x{ord(m.group()):02x}", "" if text is None else str(text))


def report_junit(records, *, target, fmt, seconds, fail_on) -> bytes:
    """JUnit XML: one testcase per rule; failed -> <failure>, unsupported -> <skipped>
    (or <failure> with --fail-on unsupported)."""
    import xml.etree.ElementTree as ET
    c = counts(records)
    unsupported_fails = fail_on == "unsupported"
    failures = c["failed"] + (c["unsupported"] if unsupported_fails else 0)
    skipped = 0 if unsupported_fails else c["unsupported"]
    name = f"sigma-transpile convert -t {target}" + (f" -f {fmt}" if fmt else "")
    suites = ET.Element("testsuites", name="sigma-transpile", tests=str(c["read"]), failures=str(failures),
                        errors="0", skipped=str(skipped), time=f"{seconds:.3f}")
    suite = ET.SubElement(suites, "testsuite", name=_xml(name), tests=str(c["read"]), failures=str(failures),
                          errors="0", skipped=str(skipped), time=f"{seconds:.3f}")
    for r in records:
        p = Path(r.path)
        case = ET.SubElement(suite, "testcase", classname=_xml(".".join(p.parent.parts) or "."),
                             name=_xml(p.name + (f"#{r.doc}" if r.doc else "")), file=_xml(r.path))
        if r.rule is not None and r.rule.title:
            props = ET.SubElement(case, "properties")
            ET.SubElement(props, "property", name="title", value=_xml(r.rule.title))
            if r.rule.id:
                ET.SubElement(props, "property", name="id", value=_xml(r.rule.id))
        message = "; ".join(e.headline() for e in r.errors)
        kind = r.errors[0].kind if r.errors else r.result
        if r.result == "failed" or (r.result == "unsupported" and unsupported_fails):
            el = ET.SubElement(case, "failure", message=_xml(message), type=_xml(kind))
            el.text = _xml("\n".join(str(e) for e in r.errors))
        elif r.result == "unsupported":
            ET.SubElement(case, "skipped", message=_xml(message))
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"


def write_report(path, data):
    """Write a report file atomically, making its folder if need be."""
    from .files import write_atomic
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data.decode("utf-8") if isinstance(data, bytes) else data)


# --- progress ------------------------------------------------------------------------------------

class Progress:
    """A one-line progress bar on a terminal; nothing at all when the stream is not one (CI)."""

    def __init__(self, stream=None, enabled=True, label="converting"):
        self.stream = stream if stream is not None else sys.stderr
        self.on = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.label = label
        self.last = 0.0
        self.shown = False

    def update(self, done: int, total: int):
        if not self.on:
            return
        now = time.monotonic()
        if done < total and now - self.last < 0.1:
            return
        self.last = now
        width = 30
        fill = width * done // total if total else width
        self.stream.write(f"\r{self.label} [{'#' * fill}{'.' * (width - fill)}] {done}/{total}")
        self.stream.flush()
        self.shown = True

    def clear(self):
        if self.on and self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False

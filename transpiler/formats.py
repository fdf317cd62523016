"""Import files for SIEMs: what `convert -f FORMAT` writes.

A format is one Jinja template, templates/<target>/formats/<name>.<ext>.j2, or
templates/common/formats/<name>.<ext>.j2 for every target; its files end in .<ext>.
This module decides how many files a format writes (LAYOUTS: one per rule, one for the
whole set, or chunks of N rules), gives the templates one plain dict per rule (`view`),
renders, and writes every file atomically (a temporary file, then a rename).

Deterministic bytes: rules in load order (sorted paths), ids derived from the Sigma id
(uuid5), no timestamps, every value through the `json` filter.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

from . import sentinel
from .errors import TranspileError, Unsupported, printable
from .files import fitting_name, write_all_or_none
from .resources import resource_dir

# uuid5 namespace of the ids this tool derives from Sigma rule ids (ARM resource names,
# Azure-Sentinel template ids, CloudFormation logical ids): fixed, so ids never change.
NAMESPACE = uuid.UUID("fdad0a23-d1be-4151-8871-326405558ba7")


@dataclass(frozen=True)
class Layout:
    """How a format spreads rules over files, and what its target accepts."""

    files: str = "rule"         # rule: one file per rule; set: one file; chunk: `size` rules a file
    size: int = 0
    every: bool = False         # list every rule read (failed ones too), not only converted ones
    max_query: int = 0          # the longest query the target accepts, in `unit` (0: no limit)
    unit: str = "characters"    # or "bytes" (UTF-8)
    options: dict = field(default_factory=dict)   # -O name=value, with defaults
    prepare: object = None      # prepare(view, record): what only this format adds to a rule's view


def _sentinel(view, record):
    """Sentinel's tactics and techniques (transpiler/sentinel.py); each change is a note."""
    view["sentinel"] = found = sentinel.attack(view["attack"]["tactics"], view["attack"]["techniques"])
    record.notes[:] = found["notes"]


SENTINEL = {"frequency": "1h", "period": "1h", "threshold": 0}
# CloudFormation takes a template of up to 51,200 bytes in the request (aws cloudformation deploy
# without --s3-bucket) and up to 1,000,000 bytes from S3; a stack holds at most 500 resources
# (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html).
CFN_MAX_BYTES = 1_000_000
LAYOUTS = {
    # Microsoft Sentinel: the portal imports at most 50 rules per ARM file, and a rule's
    # query is at most 10,000 characters (../shared/research/kql.md section 4).
    "sentinel_arm": Layout("chunk", 50, max_query=10_000, prepare=_sentinel, options={
        **SENTINEL, "enabled": True, "suppression": "", "api_version": "2023-02-01"}),
    "sentinel": Layout("rule", max_query=10_000, prepare=_sentinel, options={**SENTINEL, "version": "1.0.0"}),
    # NamedQuery: QueryString 1-262,144, Name 1-128, Description 1-1,024, WorkGroup
    # [a-zA-Z0-9._-]{1,128}, Database 1-255 (https://docs.aws.amazon.com/athena/latest/APIReference/
    # API_NamedQuery.html). Files are split at 500 resources and at max_bytes.
    "cloudformation": Layout("chunk", 500, max_query=262_144, unit="bytes", options={
        "database": "default", "workgroup": "primary", "max_bytes": CFN_MAX_BYTES}),
    "sql": Layout("rule"),
    "logpresso": Layout("set"),
    "jsonl": Layout("set", every=True),
}
DURATION = re.compile(r"([1-9][0-9]*)([mhd])")
DURATION_OPTIONS = ("frequency", "period", "suppression")


@dataclass(frozen=True)
class Format:
    name: str                   # sentinel_arm
    extension: str              # json
    template: str               # kql/formats/sentinel_arm.json.j2
    layout: Layout

    @property
    def about(self) -> str:
        """The first sentence of the template's opening comment: what the format is."""
        text = (resource_dir("templates") / self.template).read_text(encoding="utf-8")
        found = re.match(r"\{#-?\s*(.*?)\s*-?#\}", text, re.S)
        words = " ".join(found.group(1).split()) if found else ""
        return re.split(r"(?<=\.)\s", words, maxsplit=1)[0]

    def limit_problem(self, query: str) -> str | None:
        """Why the target would refuse this query, or None."""
        if not self.layout.max_query:
            return None
        size = len(query.encode("utf-8")) if self.layout.unit == "bytes" else len(query)
        if size <= self.layout.max_query:
            return None
        return (f"{self.name}: the query is {size:,} {self.layout.unit} long; "
                f"the target accepts at most {self.layout.max_query:,}")


@dataclass(frozen=True)
class QueryText:
    """The queries alone (convert without -f): a target's file extension, and how a query says
    which rule it came from where several share a stream (stdout, -o FILE)."""

    extension: str
    about: str
    comment: str              # the comment holding `path: title`
    after: bool = False       # the comment follows the query instead of leading it
    unsafe: str = ""          # characters the comment must not hold (line breaks never) ...
    safe: str = ""            # ... and what each becomes

    def labelled(self, query: str, label: str) -> str:
        text = printable(comment(label)).translate(str.maketrans(self.unsafe, self.safe))
        line = self.comment.format(text)
        return f"{query}\n{line}" if self.after else f"{line}\n{query}"


# Comments: Trino and DuckDB `--` and Kusto `//` run to the end of the line. A Logpresso `#`
# comment runs to the end of its command, across line breaks, so it cannot lead the query;
# `| # [ ... ]` is the documented comment-only command, and the text in it must not hold the
# characters that delimit commands, strings or the block, nor the look-alikes the query
# parser rewrites into them (../shared/research/logpresso.md section 1).
QUERY_TEXT = {
    "athena": QueryText("sql", "Amazon Athena (Trino SQL)", "-- {}"),
    "duckdb": QueryText("sql", "DuckDB SQL (what hunt runs)", "-- {}"),
    "kql": QueryText("kql", "KQL for Microsoft Sentinel and Azure Data Explorer", "// {}"),
    "pipesearch": QueryText("txt", "Logpresso-style pipe search", "| # [ {} ]", after=True,
                            unsafe='|[]"\u2223\u01c0\u201c\u201d\u00ab\u00bb', safe="/()'//''''"),
}


def query_text(target: str) -> QueryText:
    return QUERY_TEXT.get(target) or QueryText("txt", target, "# {}")


def available(target: str) -> dict[str, Format]:
    """The formats of a target: its own templates, then the common ones."""
    found = {}
    for folder in (target, "common"):
        base = resource_dir("templates") / folder / "formats"
        for path in sorted(base.glob("*.j2")) if base.is_dir() else ():
            name, _, ext = path.name[:-len(".j2")].partition(".")
            if name not in found and ext and not name.startswith("_"):   # _x.j2: shared parts
                found[name] = Format(name, ext, f"{folder}/formats/{path.name}", LAYOUTS.get(name, Layout()))
    return found


def parse_options(fmt: Format, pairs) -> dict:
    """-O name=value pairs over the format's defaults; a value takes its default's type."""
    options = dict(fmt.layout.options)
    for pair in pairs or ():
        name, eq, value = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not eq or name not in options:
            known = ", ".join(sorted(options)) or "none"
            raise TranspileError(f"format {fmt.name} has no option {pair!r} (options: {known})", kind="option")
        options[name] = _typed(name, value.strip(), options[name])
    for name in DURATION_OPTIONS:
        if options.get(name) and not DURATION.fullmatch(str(options[name])):
            raise TranspileError(f"option {name}={options[name]!r}: write a duration like 5m, 1h or 1d",
                                 kind="option")
    for problem in _bounds(options):
        raise TranspileError(f"format {fmt.name}: {problem}", kind="option")
    return options


_WORKGROUP = re.compile(r"[a-zA-Z0-9._-]{1,128}")


def _bounds(options: dict):
    """What the target would refuse in these options. Sentinel's, as its template validator
    (Azure-Sentinel .script/tests/detectionTemplateSchemaValidation) and the analytics rule
    wizard have them; Athena's and CloudFormation's from the limits cited in LAYOUTS."""
    if "frequency" in options and "period" in options:
        freq, period = minutes(options["frequency"]), minutes(options["period"])
        if not (5 <= freq <= 14 * 1440 and 5 <= period <= 14 * 1440):
            yield "frequency and period must be between 5m and 14d"
        if period < freq:
            yield "period must be at least the frequency"
        if period >= 2 * 1440 and freq < 60:
            yield "a period of 2 days or more needs a frequency of at least 1h"
    if "threshold" in options and not 0 <= options["threshold"] <= 10_000:
        yield "threshold must be between 0 and 10000"
    if options.get("suppression") and not 5 <= minutes(options["suppression"]) <= 1440:
        yield "suppression must be between 5m and 24h"
    if "workgroup" in options and not _WORKGROUP.fullmatch(options["workgroup"]):
        yield "workgroup must be 1 to 128 of the characters a-z A-Z 0-9 . _ -"
    if "database" in options and not 1 <= len(options["database"]) <= 255:
        yield "database must be 1 to 255 characters"
    if "max_bytes" in options and not 1 <= options["max_bytes"] <= CFN_MAX_BYTES:
        yield f"max_bytes must be between 1 and {CFN_MAX_BYTES:,} (CloudFormation's limit for a template in S3)"


def _typed(name, text, default):
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "yes", "no", "1", "0"):
            raise TranspileError(f"option {name} takes true or false, not {text!r}", kind="option")
        return text.lower() in ("true", "yes", "1")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise TranspileError(f"option {name} takes a whole number, not {text!r}", kind="option") from None
    return text


def minutes(duration: str) -> int:
    n, unit = DURATION.fullmatch(duration).groups()
    return int(n) * {"m": 1, "h": 60, "d": 1440}[unit]


# --- what a template sees of one rule ---------------------------------------------------------

def view(record, target: str) -> dict:
    """A plain dict per rule read: its metadata, ATT&CK, query and outcome."""
    rule = record.rule
    meta = rule.meta if rule is not None else {}
    tactics, techniques = attack(rule.tags if rule is not None else ())
    return {
        "id": meta.get("id"), "guid": record.guid, "title": meta.get("title"),
        "description": _text(meta.get("description")).strip(), "level": meta.get("level"),
        "status": meta.get("status"), "author": _text(meta.get("author")),
        "date": meta.get("date"), "modified": meta.get("modified"),
        "tags": list(meta.get("tags") or []), "references": _texts(meta.get("references")),
        "falsepositives": _texts(meta.get("falsepositives")), "fields": _texts(meta.get("fields")),
        "logsource": dict(rule.logsource) if rule is not None else {},
        "path": record.label, "kind": rule.kind if rule is not None else None,
        "attack": {"tactics": tactics, "techniques": techniques},
        "target": target, "query": record.query, "table": record.table, "extra": dict(record.extra),
        "result": record.result, "errors": [e.as_dict() for e in record.errors],
        "meta": meta,
    }


def _text(value) -> str:
    return "" if value is None else str(value)


def _texts(value) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


@cache
def attack_table() -> dict:
    """The bundled ATT&CK table (transpiler/data/attack.json, also used by `explain`)."""
    return json.loads((Path(__file__).parent / "data" / "attack.json").read_text(encoding="utf-8"))


_TECHNIQUE = re.compile(r"t\d{4}(?:\.\d{3})?")
_OTHER = re.compile(r"[gsm]\d{4}|ta\d{4}|.*[^a-z-].*")   # groups, software, mitigations, odd text


def attack(tags) -> tuple[list[dict], list[dict]]:
    """Tactics and techniques named by attack.* tags. A tactic is {id, name, shortname}, in
    ATT&CK matrix order; a tactic tag the bundled table does not know (ATT&CK v19 split
    Defense Evasion into attack.stealth and attack.defense-impairment) follows them, named
    from its tag, with id "". A technique is {id, name, parent, sub}, by id: parent is the id
    without its sub-technique part (T1136.003 -> T1136), sub whether it has one."""
    table = attack_table()
    order = [t["shortname"] for t in table["tactics"]]
    wanted, techniques = [], {}
    for tag in tags:
        name = str(tag).lower()
        if not name.startswith("attack."):
            continue
        name = name[len("attack."):].replace("_", "-")
        if _TECHNIQUE.fullmatch(name):
            tid = name.upper()
            entry = table["techniques"].get(tid)
            techniques[tid] = {"id": tid, "name": entry["name"] if entry else "",
                               "parent": tid.split(".")[0], "sub": "." in tid}
        elif name and not _OTHER.fullmatch(name) and name not in wanted:
            wanted.append(name)
    tactics = [{"id": t["id"], "name": t["name"], "shortname": t["shortname"]}
               for t in table["tactics"] if t["shortname"] in wanted]
    tactics += [{"id": "", "name": " ".join(w.capitalize() for w in name.split("-") if w), "shortname": name}
                for name in wanted if name not in order]
    return tactics, [techniques[k] for k in sorted(techniques)]


# --- filters: every value reaches an import file through one of these ------------------------

# Characters JSON may leave raw but YAML readers refuse or treat as line breaks (C1 controls,
# NEL, LS, PS, BOM, non-characters, lone surrogates): written as \\uXXXX, which both accept.
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def to_json(value, indent=None) -> str:
    """JSON text of a value, safe inside JSON and YAML files alike. Not Jinja's tojson,
    which HTML-escapes <, >, & and '."""
    text = json.dumps(value, ensure_ascii=False, indent=indent, default=str)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def arm(value, indent=None) -> str:
    """JSON for an ARM template: a string that starts with [ and ends with ] would be an
    ARM expression, so it gets a second [ (https://learn.microsoft.com/azure/azure-resource-manager/
    templates/template-expressions#escape-characters)."""
    return to_json(_arm_escape(value), indent)


def _arm_escape(value):
    if isinstance(value, str):
        return "[" + value if value.startswith("[") and value.endswith("]") else value
    if isinstance(value, list):
        return [_arm_escape(v) for v in value]
    if isinstance(value, dict):
        return {k: _arm_escape(v) for k, v in value.items()}
    return value


_BLOCK_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def yaml_block(text, indent: int) -> str:
    """A YAML literal block (`|-` and the lines indented by `indent` spaces) when the text
    reads back exactly as itself, else a double-quoted JSON string."""
    text = "" if text is None else str(text)
    if text and "\n" in text and not _BLOCK_UNSAFE.search(text) and text == text.strip():
        pad = " " * indent
        block = "|-\n" + "\n".join(pad + line if line else "" for line in text.split("\n"))
        import yaml
        try:
            if yaml.load("k: " + block, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) == {"k": text}:
                return block
        except yaml.YAMLError:
            pass
    return to_json(text)

_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x85\u2028\u2029]+")


def comment(text) -> str:
    """Text for one line comment: line breaks become spaces, so no text can end the comment."""
    return _LINE_BREAKS.sub(" ", "" if text is None else str(text)).strip()


def clip(text, n: int) -> str:
    """At most n characters: longer text is cut and ends with an ellipsis."""
    text = "" if text is None else str(text)
    return text if len(text) <= n else text[:n - 1].rstrip() + "…"


def iso_duration(duration: str) -> str:
    """5m -> PT5M, 1h -> PT1H, 1d -> P1D (ISO 8601 durations, as ARM wants them)."""
    n, unit = DURATION.fullmatch(str(duration)).groups()
    return f"P{n}D" if unit == "d" else f"PT{n}{unit.upper()}"


pascal = sentinel.pascal


FILTERS = {"json": to_json, "arm": arm, "yaml_block": yaml_block, "comment": comment, "clip": clip,
           "iso_duration": iso_duration}


# --- rendering ---------------------------------------------------------------------------------

class Renderer:
    """Renders one format's files from the records of a batch."""

    def __init__(self, fmt: Format, target: str, options: dict):
        self.fmt, self.target, self.options = fmt, target, options

    @cached_property
    def template(self):
        import jinja2      # here: convert without a format needs no Jinja
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
            undefined=jinja2.StrictUndefined, autoescape=False,
            keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
        env.filters.update(FILTERS)
        return env.get_template(self.fmt.template)

    def files(self, records) -> list[tuple[str, str, list]]:
        """(file name, text, records in it) for every file the format writes. A rule that
        would make a file over the format's max_bytes on its own becomes unsupported here."""
        layout, ext, name = self.fmt.layout, self.fmt.extension, self.fmt.name
        chosen = [r for r in records if layout.every or (r.result == "converted" and r.query is not None)]
        views = {id(r): self._view(r) for r in chosen}
        if layout.files == "rule":
            names = rule_file_names(chosen, ext)
            return [(names[i], self._render(rule=views[id(r)]), [r]) for i, r in enumerate(chosen)]
        if layout.files == "chunk":
            groups = self._chunks(chosen, views)
            return [(f"{name}-{n:03d}.{ext}", self._render(rules=[views[id(r)] for r in group],
                                                           chunk=n, chunks=len(groups)), group)
                    for n, group in enumerate(groups, 1)]
        return [(f"{name}.{ext}", self._render(rules=[views[id(r)] for r in chosen]), chosen)]

    def _view(self, record) -> dict:
        found = view(record, self.target)
        if self.fmt.layout.prepare is not None:
            self.fmt.layout.prepare(found, record)
        return found

    def _chunks(self, chosen, views) -> list[list]:
        """Rules in order, a new file when the next rule would pass `size` rules or max_bytes.
        A file's size is its frame plus each rule's part (a template's text for a rule does not
        depend on its place), measured with part numbers as wide as they can get."""
        size, limit = self.fmt.layout.size, self.options.get("max_bytes", 0)
        if not limit:
            return [chosen[i:i + size] for i in range(0, len(chosen), size)]
        wide = {"chunk": 999_999, "chunks": 999_999}
        frame = _size(self._render(rules=[], **wide))
        groups, total = [], 0
        for r in chosen:
            part = _size(self._render(rules=[views[id(r)]], **wide)) - frame
            if frame + part > limit:
                r.result = "unsupported"
                r.errors.append(Unsupported(f"{self.fmt.name}: a file holding only this rule is {frame + part:,} "
                                            f"bytes, over max_bytes={limit:,}", path=r.label, kind="too-long"))
                continue
            if not groups or len(groups[-1]) >= size or total + part > limit:
                groups.append([])
                total = frame
            groups[-1].append(r)
            total += part
        return groups

    def _render(self, **context) -> str:
        text = self.template.render(target=self.target, options=self.options, format=self.fmt.name, **context)
        return text if text.endswith("\n") else text + "\n"


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def rule_file_names(records, extension: str) -> list[str]:
    """One file name per rule: its file's stem (and document number), made unique in order,
    shortened where it would not fit a file system (files.fitting_name)."""
    used, names = set(), []
    for r in records:
        stem = Path(r.path).stem + (f"_{r.doc}" if r.doc else "")
        name, n = fitting_name(stem, extension), 1
        while name.lower() in used:          # same file name in two folders; case-insensitive disks
            n += 1
            name = fitting_name(f"{stem}_{n}", extension)
        used.add(name.lower())
        names.append(name)
    return names


# --- writing -----------------------------------------------------------------------------------

def write_all(folder: Path, files, progress=None) -> list[Path]:
    """Write (name, text, ...) files under folder, all or none (files.write_all_or_none);
    returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / name for name, *_ in files]
    write_all_or_none(((path, text) for path, (_, text, *_) in zip(written, files)),
                      progress.update if progress is not None else None)
    return written

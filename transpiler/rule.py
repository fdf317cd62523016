"""Rule files -> Rule objects: YAML loading, document kinds, metadata checks, and the
resolution of the condition's identifiers into one Query.

Everything is checked here, at load time, so evaluating or converting a loaded rule
cannot fail on its Sigma syntax (sigma-rust's habit). Errors are collected per document:
a file with a bad rule still yields its good ones, and a batch goes on.
"""
from __future__ import annotations

import datetime
import fnmatch
import functools
import os
import re
import uuid
from dataclasses import dataclass, field

from . import files
from .errors import ConditionError, RuleError, TranspileError
from .nodes import AllOf, And, Not, OneOf, Or, Query, Ref, and_, or_

# PyYAML, Lark and the IR builder are imported when a rule is parsed, not before: a warm
# `convert` (transpiler/cache.py) never needs them.

# Bounds that keep one hostile file from stalling a batch (README "Security").
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_VALUES = 1_000_000          # scalars in one document once YAML aliases are expanded
MAX_CONDITION_DEPTH = 200       # nesting of and/or/not in a condition
MAX_YAML_DEPTH = 500            # libyaml's composer recurses in C: deeper input crashes it
_BRACKETS = re.compile(r"[\[\]{}]")
_DEEP_INDENT = re.compile(r"^[ \t]{%d}" % (MAX_YAML_DEPTH * 2 + 1), re.M)
_DASHES = re.compile(r"(?:-[ \t]+){%d,}" % MAX_YAML_DEPTH)


LEVELS = ("informational", "low", "medium", "high", "critical")
STATUSES = ("stable", "test", "experimental", "deprecated", "unsupported")
RULE_SUFFIXES = (".yml", ".yaml")
TESTS_SUFFIXES = (".tests.yml", ".tests.yaml")    # a rule's own tests (sigma-transpile test), not rules


@dataclass
class Rule:
    """One loaded Sigma document: a detection rule, a correlation or a filter."""

    path: str
    doc: int                      # index of the YAML document in its file
    kind: str                     # rule | correlation | filter
    meta: dict                    # every top-level key but detection/filter/correlation
    logsource: dict = field(default_factory=dict)
    query: Query | None = None    # rule and filter: the resolved detection
    conditions: tuple = ()        # the condition text(s), as written
    body: dict = field(default_factory=dict)   # correlation/filter section, as written
    detection: dict = field(default_factory=dict)   # rule/filter: the detection (or filter) section, as written

    @property
    def title(self) -> str:
        return str(self.meta.get("title", ""))

    @property
    def id(self) -> str | None:
        return self.meta.get("id")

    @property
    def name(self) -> str | None:
        return self.meta.get("name")

    @property
    def level(self) -> str | None:
        return self.meta.get("level")

    @property
    def status(self) -> str | None:
        return self.meta.get("status")

    @property
    def tags(self) -> list:
        return list(self.meta.get("tags") or [])

    @property
    def label(self) -> str:
        """How messages name the rule: its file, and its document when there are several."""
        return self.path if self.doc == 0 else f"{self.path}#{self.doc}"


def find_rule_files(paths) -> tuple[list[str], list[RuleError]]:
    """Every .yml/.yaml file under the given files and folders but rule tests (.tests.yml), as
    files.walk finds them (sorted, each once, symlinked folders followed), and an error for
    each folder that cannot be read or that was named but holds no rule file: a mistyped path
    must not pass as "no problems"."""
    found, unreadable, empty = files.walk(paths, RULE_SUFFIXES, TESTS_SUFFIXES)
    return found, ([RuleError(why, path=folder, kind="io") for folder, why in unreadable] +
                   [RuleError("no rule files (.yml, .yaml) in this folder or below", path=folder, kind="empty")
                    for folder in empty])


def load_paths(paths, placeholders=None) -> tuple[list[Rule], list[TranspileError]]:
    found, errors = find_rule_files(paths)
    rules = []
    for f in found:
        got, bad = load_file(f, placeholders)
        rules.extend(got)
        errors.extend(bad)
    return rules, errors


def load_file(path, placeholders=None) -> tuple[list[Rule], list[TranspileError]]:
    """Every document of one rule file."""
    path = str(path)
    data, errors = read_file(path)
    return ([], errors) if data is None else load_text(data, path, placeholders)


def read_file(path: str) -> tuple[bytes | None, list[TranspileError]]:
    """A rule file's bytes, or None and the error. Only a regular file of at most
    MAX_FILE_BYTES is read, and only that much of it (its size is checked before reading)."""
    try:
        return files.read_limited(path, MAX_FILE_BYTES), []
    except files.TooLarge as e:
        return None, [RuleError(str(e), path=path, kind="yaml")]
    except files.Unreadable as e:
        return None, [RuleError(str(e), path=path, kind="io")]


def load_text(data, path="<string>", placeholders=None) -> tuple[list[Rule], list[TranspileError]]:
    """Load every document of one YAML text (str or bytes)."""
    if len(data) > MAX_FILE_BYTES:
        return [], [RuleError(f"file is larger than {files.size_text(MAX_FILE_BYTES)}", path=path, kind="yaml")]
    if isinstance(data, bytes):
        if b"\x00" in data[:8192]:
            return [], [RuleError("binary file, not YAML", path=path, kind="yaml")]
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            return [], [RuleError(f"not UTF-8 text (byte {e.start})", path=path, kind="yaml")]
    rules, errors = [], []
    if _too_deep(data):
        return [], [RuleError(f"YAML nested deeper than {MAX_YAML_DEPTH} levels", path=path, kind="yaml")]
    from . import yamlload
    try:
        for i, doc in enumerate(yamlload.load_all(data)):
            if doc is None:
                continue
            try:
                if "&" in data:         # without an anchor there is no alias to expand
                    _check_size(doc)
                rules.append(_document(doc, path, i, placeholders))
            except _Errors as many:
                errors.extend(many.errors)
            except TranspileError as e:
                errors.append(e.located(_label(path, i)))
            except RecursionError:
                errors.append(RuleError("nested too deeply", path=_label(path, i), kind="structure"))
    except yamlload.YAMLError as e:
        errors.append(RuleError(_yaml_message(e), path=path, kind="yaml"))
    except RecursionError:
        errors.append(RuleError("YAML nested too deeply", path=path, kind="yaml"))
    return rules, errors


def duplicates(rules) -> list[RuleError]:
    """The documents that repeat an earlier one's id or title, and the files that repeat an
    earlier one's name in another folder (in path order), each as a problem naming both: a
    correlation naming such a rule, a SIEM id derived from it, a file written under its name
    would each pick one copy by path order (sigma-cli flags all three)."""
    problems, first, files_seen = [], {}, set()
    for r in sorted(rules, key=lambda r: (r.path, r.doc)):
        name = os.path.basename(r.path)
        keys = [("id", str(r.id).lower() if r.id else None, r.id),
                ("title", " ".join(r.title.split()).casefold() or None, r.title),
                ("file name", name.lower() if r.path not in files_seen else None, name)]
        files_seen.add(r.path)
        for what, key, shown in keys:
            earlier = first.setdefault((what, key), r) if key is not None else r
            if earlier is r:
                continue
            if what == "file name":
                problems.append(RuleError(f"the file name {shown!r} is also used by {earlier.path}",
                                          path=r.path, kind="duplicate"))
            else:
                problems.append(RuleError(f"{shown!r} is also the {what} of {earlier.label}", path=r.label,
                                          where=what, kind="duplicate"))
    return problems


def load_rule(text: str, placeholders=None) -> Rule:
    """The one rule in a YAML text; raises its first error."""
    rules, errors = load_text(text, "<string>", placeholders)
    if errors:
        raise errors[0]
    if len(rules) != 1:
        raise RuleError(f"expected one rule, found {len(rules)}", path="<string>")
    return rules[0]


def rule_from_dict(doc: dict, path="<dict>", placeholders=None) -> Rule:
    """A Rule from an already-parsed YAML document; raises its first error."""
    try:
        return _document(doc, path, 0, placeholders)
    except _Errors as many:
        raise many.errors[0] from None


class _Errors(Exception):
    def __init__(self, errors):
        super().__init__(f"{len(errors)} errors")
        self.errors = errors


def _too_deep(text: str) -> bool:
    """A cheap upper bound on YAML nesting (brackets in quotes count too: harmless for rules)."""
    if text.count("[") + text.count("{") > MAX_YAML_DEPTH:     # else they cannot nest deeper
        depth = deepest = 0
        for m in _BRACKETS.finditer(text):
            depth = depth + 1 if m.group() in "[{" else max(depth - 1, 0)
            deepest = max(deepest, depth)
        if deepest > MAX_YAML_DEPTH:
            return True
    dashes = text.count("-") >= MAX_YAML_DEPTH and _DASHES.search(text)    # a run needs that many
    return bool(dashes or _DEEP_INDENT.search(text))


def _check_size(doc):
    """Refuse documents whose YAML aliases expand into huge trees ("billion laughs"): count
    the values every container stands for, each shared container once."""
    sizes = {}
    stack = [(doc, False)]
    while stack:
        obj, done = stack.pop()
        if not isinstance(obj, (dict, list)) or (id(obj) in sizes and not done):
            continue
        items = list(obj.values()) if isinstance(obj, dict) else obj
        if done:
            sizes[id(obj)] = total = len(items) + sum(sizes.get(id(v), 0) for v in items)
            if total > MAX_VALUES:
                raise RuleError(f"the document expands to more than {MAX_VALUES:,} values "
                                "(YAML aliases?)", kind="yaml")
            continue
        sizes[id(obj)] = 0           # in progress: a cycle counts as nothing more
        stack.append((obj, True))
        stack.extend((v, False) for v in items)


def _yaml_message(e) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f"line {mark.line + 1} col {mark.column + 1}: " if mark else ""
    problem = getattr(e, "problem", None) or str(e)
    return f"invalid YAML: {where}{problem}"


def _document(doc, path, index, placeholders) -> Rule:
    if not isinstance(doc, dict):
        raise RuleError(f"a Sigma document must be a YAML map, not {type(doc).__name__}", path=path)
    meta = {k: _plain(v) for k, v in doc.items() if k not in ("detection", "filter", "correlation")}
    errors = []

    def problem(message, where, kind="metadata"):
        errors.append(RuleError(message, path=_label(path, index), where=where, kind=kind))

    _check_metadata(doc, problem)
    if "correlation" in doc:
        body = doc["correlation"]
        if not isinstance(body, dict):
            problem("correlation must be a map", "correlation", "structure")
        _raise(errors)
        return Rule(path, index, "correlation", meta, doc.get("logsource") or {}, body=_plain(body))
    kind = "filter" if "filter" in doc and "detection" not in doc else "rule"
    key = "filter" if kind == "filter" else "detection"
    section = doc.get(key)
    if not isinstance(doc.get("logsource"), dict):
        problem("logsource must be a map (product, service, category)", "logsource", "structure")
    query, conditions = None, ()
    if not isinstance(section, dict):
        problem(f"{key} is missing or not a map", key, "structure")
    else:
        try:
            query, conditions = _detection(section, key, placeholders)
        except _Errors as many:
            errors.extend(e.located(_label(path, index)) for e in many.errors)
    _raise(errors)
    body = {k: _plain(v) for k, v in section.items() if k == "rules"} if kind == "filter" else {}
    return Rule(path, index, kind, meta, dict(doc.get("logsource") or {}), query, conditions, body,
                section)


def _label(path, index):
    return path if index == 0 else f"{path}#{index}"


def _raise(errors):
    if errors:
        raise _Errors(errors)


def _check_metadata(doc, problem):
    title = doc.get("title")
    if not isinstance(title, str) or not title.strip():
        problem("title is missing or empty", "title")
    if "id" in doc:
        try:
            uuid.UUID(str(doc["id"]))
        except ValueError:
            problem(f"id {doc['id']!r} is not a UUID", "id")
    if "level" in doc and doc["level"] not in LEVELS:
        problem(f"level {doc['level']!r} is not one of {', '.join(LEVELS)}", "level")
    if "status" in doc and doc["status"] not in STATUSES:
        problem(f"status {doc['status']!r} is not one of {', '.join(STATUSES)}", "status")
    if "tags" in doc and not (isinstance(doc["tags"], list) and all(isinstance(t, str) for t in doc["tags"])):
        problem("tags must be a list of strings", "tags")


def _detection(section: dict, key: str, placeholders):
    """Build every selection, parse the condition(s), resolve names; collect all errors."""
    from . import detection
    from .condition import parse_condition
    errors, selections = [], {}
    for name, body in section.items():
        if name in ("condition", "timeframe", "rules"):
            continue
        if not isinstance(name, str):
            errors.append(RuleError(f"search identifier {name!r} is not a string", where=key))
            continue
        try:
            selections[name] = detection.selection(name, body, placeholders)
        except TranspileError as e:
            selections[name] = None   # known, but broken: the condition must not call it unknown
            if e.where and e.where.startswith("detection.") and key != "detection":
                e.where = key + e.where[len("detection"):]
            errors.append(e)
    condition = section.get("condition")
    texts = condition if isinstance(condition, list) else [condition]
    queries = []
    for i, text in enumerate(texts):
        where = f"{key}.condition" + (f"[{i}]" if isinstance(condition, list) else "")
        if condition is None:
            errors.append(ConditionError("condition is missing", where=where, kind="structure"))
            break
        if not isinstance(text, str):
            errors.append(ConditionError("condition must be a string", where=where))
            continue
        try:
            tree = parse_condition(text)
            if _depth(tree) > MAX_CONDITION_DEPTH:
                raise ConditionError(f"the condition nests deeper than {MAX_CONDITION_DEPTH} levels",
                                     kind="syntax")
            queries.append(_resolve(tree, section, selections, text))
        except TranspileError as e:
            errors.append(e.located(where=where))
    _raise(errors)
    return or_(queries), tuple(texts)


def _depth(tree) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, Not):
            stack.append((node.arg, depth + 1))
        elif isinstance(node, (And, Or)):
            stack.extend((a, depth + 1) for a in node.args)
    return deepest


def _resolve(node, section, selections, text) -> Query:
    if isinstance(node, Ref):
        return _selected(node.name, node.col, section, selections, text)
    if isinstance(node, (OneOf, AllOf)):
        names = _names(node.pattern, selections)
        if not names:
            what = "no search identifiers" if node.pattern == "them" else f"no search identifier matches {node.pattern!r}"
            raise ConditionError(what + _suggest(node.pattern.rstrip("*"), selections),
                                 col=node.col, source=text, kind="unknown-identifier")
        parts = [selections[n] for n in names]
        return or_(parts) if isinstance(node, OneOf) else and_(parts)
    if isinstance(node, Not):
        return Not(_resolve(node.arg, section, selections, text))
    parts = [_resolve(a, section, selections, text) for a in node.args]
    return and_(parts) if isinstance(node, And) else or_(parts)


def _selected(name, col, section, selections, text):
    if name in selections:
        return selections[name]
    if name in ("condition", "timeframe"):
        raise ConditionError(f"{name!r} is not a search identifier", col=col, source=text,
                             kind="unknown-identifier")
    raise ConditionError(f"unknown search identifier {name!r}" + _suggest(name, selections),
                         col=col, source=text, kind="unknown-identifier")


def _names(pattern, selections) -> list[str]:
    if pattern == "them":
        return [n for n in selections if not n.startswith("_")]   # spec: `them` skips _names
    regex = _wildcard(pattern)
    return [n for n in selections if regex.match(n)]


@functools.lru_cache(maxsize=1024)      # rules repeat the same few: selection*, filter_*
def _wildcard(pattern: str):
    return re.compile(fnmatch.translate(pattern))


def _suggest(name, selections) -> str:
    import difflib
    close = difflib.get_close_matches(name, list(selections), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def _plain(value):
    """Metadata as JSON-ready values: YAML dates become ISO text."""
    if type(value) is str:          # nearly every value
        return value
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value

"""A static HTML rule catalog: an index to search, filter and sort, a page per rule and per
correlation (YAML, analysis, references, the query for every backend, the correlations that use
it), an ATT&CK coverage matrix and the same coverage as an ATT&CK Navigator layer.

The pages come from Jinja templates in templates/catalog/ (autoescaped HTML); CSS and JS are
local files copied beside them, so the site works offline, opened from the file system
(no fetch: every page carries its own data). Output is deterministic: rules are sorted, a
page's name comes from its file name, nothing records the time of the build.

The output folder is the tool's only while it says so: a manifest (MANIFEST) lists every file
a build wrote; the next build replaces those and removes the ones it no longer writes, and
refuses a folder that holds anything else.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from functools import cached_property
from pathlib import Path

import jinja2
import yaml

from . import backends, correlation, ruletests, testrun
from .analysis import Corpus, analyze, attack, attack_table, identity
from .errors import TranspileError
from .files import Unreadable, read_text_limited, write_atomic
from .resources import resource_dir
from .rule import MAX_FILE_BYTES

LEVELS = ("critical", "high", "medium", "low", "informational")
STATUSES = ("stable", "test", "experimental", "deprecated", "unsupported")
MANIFEST = ".sigma-catalog.json"
GENERATOR = "sigma-transpile catalog"
LAYER = "attack-navigator-layer.json"
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")
_SAFE_PATH = re.compile(r"(?:[A-Za-z0-9_-][A-Za-z0-9_.-]*/)?[A-Za-z0-9_-][A-Za-z0-9_.-]*")


class Site:
    """One build: the rules, their analysis and conversions, and the pages written from them."""

    def __init__(self, rules, placeholders=None, errors=()):
        correlations, detections, problems = correlation.resolve(rules)
        self.rules = sorted((r for r in detections if r.query is not None), key=lambda r: (r.title.lower(), r.label))
        self.correlations = sorted(correlations, key=lambda c: (c.rule.title.lower(), c.rule.label))
        self.placeholders = placeholders
        self.problems = list(problems)     # correlations and filters that name rules wrongly
        self.errors = list(errors) + self.problems
        self.corpus = Corpus(self.rules)
        self.slugs = slugs(self.rules + [c.rule for c in self.correlations])
        self.used_by: dict = {}       # base rule label -> the correlations that use it
        for c in self.correlations:
            for base in c.rules:
                self.used_by.setdefault(base.label, []).append(c)
        self.root = _common_root([r.path for r in self.rules + [c.rule for c in self.correlations]])
        self._texts: dict = {}
        self._documents = rules

    @cached_property
    def tests(self) -> dict:
        """Rule label -> its tests' status on the evaluator (testrun.statuses_of); untested rules
        are absent."""
        return testrun.statuses_of(ruletests.collect(self._documents)[0])

    def tests_of(self, rule, page: Path) -> dict:
        """A rule's test status for its page, with each file as a link relative to the page."""
        found = self.tests.get(rule.label, testrun.NO_TESTS)
        link = lambda f: os.path.relpath(os.path.abspath(f), os.path.abspath(page.parent)).replace(os.sep, "/")
        return {**found, "files": [{"path": f, "href": link(f)} for f in found["files"]],
                "samples": [{**s, "href": link(s["source"]) if Path(s["source"]).is_file() else None}
                            for s in found["samples"]]}

    @cached_property
    def env(self) -> jinja2.Environment:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(resource_dir("templates") / "catalog")),
            autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.filters["level_rank"] = lambda level: LEVELS.index(level) if level in LEVELS else len(LEVELS)
        env.filters["web_link"] = lambda text: bool(re.match(r"https?://\S+$", str(text)))
        return env

    @cached_property
    def backends(self) -> list:
        """(name, backend or None, why not) for every registered target, sorted by name.
        A backend that does not import or start yet is shown as unavailable, not fatal."""
        out = []
        for name in sorted(backends.BACKENDS):
            try:
                out.append((name, backends.get(name)(), ""))
            except Exception as e:     # noqa: BLE001 - a backend still being written must not stop the site
                out.append((name, None, f"backend not available: {type(e).__name__}: {e}"))
        return out

    def queries(self, rule, correlated=None) -> list[dict]:
        """The query of every backend for a rule, or with `correlated` for that correlation."""
        out = []
        for name, backend, why in self.backends:
            if backend is None:
                out.append({"target": name, "query": None, "reason": why})
                continue
            try:
                query = backend.convert_correlation(correlated) if correlated else backend.convert(rule)
                out.append({"target": name, "query": query, "reason": ""})
            except TranspileError as e:
                out.append({"target": name, "query": None, "reason": e.message})
            except Exception as e:     # noqa: BLE001 - one backend bug must not stop the site
                out.append({"target": name, "query": None, "reason": f"internal error: {type(e).__name__}: {e}"})
        return out

    def source(self, rule) -> str:
        """The rule's YAML as written: its whole file, or its document of a multi-document file."""
        text = self._texts.get(rule.path)
        if text is None:
            try:
                text = read_text_limited(rule.path, MAX_FILE_BYTES)
            except (Unreadable, UnicodeDecodeError):
                text = ""
            self._texts[rule.path] = text
        if rule.doc == 0 and "\n---" not in text:
            return text.rstrip("\n")
        return _document_text(text, rule.doc)

    def shown_path(self, rule) -> str:
        path = os.path.relpath(rule.path, self.root) if self.root else rule.path
        return path.replace(os.sep, "/") + (f"#{rule.doc}" if rule.doc else "")

    def href(self, rule) -> str:
        return self.slugs[rule.label] + ".html"

    # --- writing ------------------------------------------------------------------------

    def paths(self) -> list[str]:
        """Every file a build writes, relative to the site folder."""
        static = sorted(f.name for f in (resource_dir("templates") / "catalog" / "static").iterdir())
        pages = sorted(f"rules/{self.slugs[r.label]}.html" for r in self.rules + [c.rule for c in self.correlations])
        return ["index.html", "attack.html", LAYER] + [f"assets/{n}" for n in static] + pages

    def build(self, out: Path, progress=None) -> dict:
        out = Path(out)
        new = self.paths()
        previous = claim(out, new)
        write_atomic(out / MANIFEST, _manifest(sorted(set(previous) | set(new))))   # covers an interrupted build
        (out / "rules").mkdir(exist_ok=True)
        (out / "assets").mkdir(exist_ok=True)
        for f in sorted((resource_dir("templates") / "catalog" / "static").iterdir()):
            write_atomic(out / "assets" / f.name, f.read_text(encoding="utf-8"))

        rows = []
        stats = {"rules": 0, "correlations": 0, "queries": 0, "unsupported": 0, "problems": self.problems}
        total, done = len(self.rules) + len(self.correlations), 0
        rule_page, correlation_page = self.env.get_template("rule.html.j2"), self.env.get_template("correlation.html.j2")
        for rule in self.rules:
            a = analyze(rule, self.corpus, self.placeholders)
            queries = self.queries(rule)
            self._count(stats, queries)
            stats["rules"] += 1
            same = [{"title": r["title"], "path": r["path"], "events": r["events"],
                     "href": self.slugs[r["path"]] + ".html"} for r in a.same_action]
            used = [{"title": c.rule.title, "href": self.href(c.rule), "type": c.type, "generate": c.generate}
                    for c in self.used_by.get(rule.label, ())]
            page = out / "rules" / self.href(rule)
            tests = self.tests_of(rule, page)
            html = rule_page.render(a=a, rule=rule, meta=rule.meta, queries=queries, same=same, used=used, tests=tests,
                                    refs=_texts(rule.meta.get("references")), fps=_texts(rule.meta.get("falsepositives")),
                                    source=self.source(rule), path=self.shown_path(rule), root="../", nav="rules")
            write_atomic(page, html)
            rows.append(self._row(rule, a.attack, [f"{e.provider} {e.event}" for e in a.events], queries, "rule",
                                  tests=tests["status"]))
            done += 1
            if progress is not None:
                progress.update(done, total)
        for c in self.correlations:
            rule = c.rule
            queries = self.queries(rule, c)
            self._count(stats, queries)
            stats["correlations"] += 1
            tactics, others = attack(rule.tags)
            base = [{"title": b.title, "href": self.href(b) if b.label in self.slugs else None,
                     "path": self.shown_path(b)} for b in c.rules]
            seen = [f"{e.provider} {e.event}" for b in c.rules for e in self.corpus.events_of(b)]
            page = out / "rules" / self.href(rule)
            tests = self.tests_of(rule, page)
            html = correlation_page.render(c=c, rule=rule, meta=rule.meta, tactics=tactics, other_tags=others, tests=tests,
                                           refs=_texts(rule.meta.get("references")),
                                           fps=_texts(rule.meta.get("falsepositives")),
                                           base=base, queries=queries, source=self.source(rule),
                                           path=self.shown_path(rule), root="../", nav="rules")
            write_atomic(page, html)
            rows.append(self._row(rule, tactics, list(dict.fromkeys(seen)), queries, "correlation",
                                  logsources=[b.logsource for b in c.rules], tests=tests["status"]))
            done += 1
            if progress is not None:
                progress.update(done, total)
        rows.sort(key=lambda r: (r["title"].lower(), r["href"]))

        facets = {
            "levels": [lv for lv in LEVELS if any(r["level"] == lv for r in rows)],
            "statuses": [s for s in STATUSES if any(r["status"] == s for r in rows)]
                        + sorted({r["status"] for r in rows if r["status"] and r["status"] not in STATUSES}),
            "tactics": _tactic_facets(rows),
            "logsources": sorted({r["logsource"] for r in rows}),
            "events": sorted({e for r in rows for e in r["event_list"]}, key=str.lower),
        }
        write_atomic(out / "index.html", self.env.get_template("index.html.j2").render(
            rows=rows, facets=facets, total=len(rows), errors=self.errors, backends=self.backends, root="",
            nav="rules"))
        write_atomic(out / "attack.html", self.env.get_template("attack.html.j2").render(
            matrix=matrix(rows), total=len(rows), layer=LAYER, root="", nav="attack"))
        write_atomic(out / LAYER, json.dumps(navigator_layer(rows), indent=1, ensure_ascii=False) + "\n")
        for stale in sorted(set(previous) - set(new)):
            _remove(out / stale)
        write_atomic(out / MANIFEST, _manifest(new))
        return stats

    @staticmethod
    def _count(stats, queries):
        stats["queries"] += sum(q["query"] is not None for q in queries)
        stats["unsupported"] += sum(q["query"] is None for q in queries)

    def _row(self, rule, tactic_rows, event_list, queries, kind, logsources=None, tests="none") -> dict:
        tactics = [t.shortname for t in tactic_rows]
        techniques = sorted({t["id"] for row in tactic_rows for t in row.techniques})
        shown = [_logsource(ls) for ls in (logsources or [rule.logsource])]
        logsource = " + ".join(dict.fromkeys(shown))
        text = " ".join([rule.title, str(rule.id or ""), self.shown_path(rule), " ".join(map(str, rule.tags)),
                         " ".join(techniques), " ".join(event_list), str(rule.meta.get("author") or ""), kind,
                         f"tests:{tests}"])
        return {"href": f"rules/{self.href(rule)}", "title": rule.title, "kind": kind, "level": rule.level or "",
                "status": rule.status or "", "logsource": logsource, "tactics": tactics,
                "tactic_names": [t.name for t in tactic_rows], "techniques": techniques,
                "event_list": event_list, "search": text.lower(), "tests": tests,
                "supported": [q["target"] for q in queries if q["query"] is not None]}


def build(rules, out: Path, placeholders=None, errors=(), progress=None) -> dict:
    """Write the catalog of these rules into folder `out`; returns counts."""
    return Site(rules, placeholders, errors).build(Path(out), progress)


def claim(out: Path, new: list[str]) -> list[str]:
    """The files an earlier build wrote into `out` (its manifest), after checking that the
    folder is the catalog's: missing, empty, or written by this command, and that no file
    this build would write is someone else's. Raises TranspileError otherwise."""
    if not out.exists():
        out.mkdir(parents=True)
        return []
    if not any(out.iterdir()):
        return []
    manifest = out / MANIFEST
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        previous = data["files"] if data.get("generator") == GENERATOR else None
        if not isinstance(previous, list) or not all(isinstance(p, str) and _SAFE_PATH.fullmatch(p)
                                                      for p in previous):
            previous = None
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        previous = None
    if previous is None:
        raise TranspileError(f"-o {out}: the folder is not empty and was not written by sigma-transpile catalog "
                             f"(no {MANIFEST}); give a new or empty folder", kind="option")
    theirs = [p for p in new if p not in previous and (out / p).exists()]
    if theirs:
        raise TranspileError(f"-o {out}: {theirs[0]} is not a file an earlier catalog wrote; move it away or give "
                             f"a new folder", kind="option")
    return previous


def _manifest(paths) -> str:
    return json.dumps({"generator": GENERATOR, "files": list(paths)}, indent=1) + "\n"


def _remove(path: Path):
    """Remove a file an earlier build wrote (and its folder, once empty)."""
    try:
        if path.is_file() or path.is_symlink():
            path.unlink()
        if path.parent.name in ("rules", "assets") and not any(path.parent.iterdir()):
            path.parent.rmdir()
    except OSError:
        pass


def slugs(rules) -> dict:
    """rule label -> page name: the file's stem (plus _<doc> for later documents); names that
    several rules share get a short hash of the label, so each is stable and unique."""
    stems = {}
    for r in rules:
        stem = _SLUG.sub("-", Path(r.path).stem).lstrip(".") or "rule"
        stem += f"_{r.doc}" if r.doc else ""
        stems.setdefault(stem.lower(), []).append((stem, r.label))
    out = {}
    for group in stems.values():
        for stem, label in group:
            out[label] = stem if len(group) == 1 else f"{stem}-{hashlib.sha1(label.encode()).hexdigest()[:8]}"
    return out


def _texts(value) -> list[str]:
    """A metadata list (references, falsepositives) as text items, whatever its YAML shape."""
    if value is None:
        return []
    return [str(v) for v in value if v is not None] if isinstance(value, list) else [str(value)]


def _logsource(logsource) -> str:
    return "/".join(str(logsource.get(k)) for k in ("product", "service", "category") if logsource.get(k)) or "(none)"


def matrix(rows) -> list[dict]:
    """ATT&CK columns in matrix order: each technique tagged by some rule, with sub-techniques
    under their parent, and how many rules tag it (a parent counts its sub-techniques' rules)."""
    table = attack_table()
    tagged: dict = {}
    for row in rows:
        for tid in row["techniques"]:
            tagged.setdefault(tid, 0)
            tagged[tid] += 1
    parents: dict = {}
    for row in rows:
        for pid in {tid.split(".")[0] for tid in row["techniques"]}:
            parents[pid] = parents.get(pid, 0) + 1
    columns = []
    tactic_rules = {t["shortname"]: sum(t["shortname"] in r["tactics"] for r in rows) for t in table["tactics"]}
    for t in table["tactics"]:
        cells = []
        for pid in sorted(parents):
            entry = table["techniques"].get(pid)
            subs = sorted(tid for tid in tagged if tid.startswith(pid + "."))
            homes = set(entry["tactics"]) if entry else set()
            for sid in subs:
                homes |= set(table["techniques"].get(sid, {}).get("tactics", []))
            if t["shortname"] not in homes:
                continue
            cells.append({"id": pid, "name": entry["name"] if entry else pid, "count": parents[pid],
                          "subs": [{"id": s, "name": table["techniques"].get(s, {}).get("name", s).split(": ", 1)[-1],
                                    "count": tagged[s]} for s in subs]})
        columns.append({"id": t["id"], "name": t["name"], "shortname": t["shortname"],
                        "rules": tactic_rules[t["shortname"]], "cells": cells})
    unknown = sorted(pid for pid in parents if pid not in table["techniques"])
    if unknown:
        columns.append({"id": "", "name": "Not in the ATT&CK table", "shortname": "unknown", "rules": 0,
                        "cells": [{"id": u, "name": u, "count": parents[u],
                                   "subs": [{"id": s, "name": s, "count": tagged[s]}
                                            for s in sorted(tagged) if s.startswith(u + ".")]}
                                  for u in unknown]})
    seen = set()             # the first cell of a technique carries its id: attack.html#T1136.003
    for col in columns:
        for cell in col["cells"]:
            for c in (cell, *cell["subs"]):
                c["anchor"] = c["id"] not in seen
                seen.add(c["id"])
    return columns


def navigator_layer(rows) -> dict:
    """The coverage as a MITRE ATT&CK Navigator layer (layer format 4.5,
    https://github.com/mitre-attack/attack-navigator/blob/master/layers/spec/v4.5/layerformat.md):
    each technique the rules tag, scored by how many rules tag it exactly, with their titles as
    the comment. Techniques the bundled ATT&CK table lacks (newer versions) are named in the
    description instead, as the Navigator would not place them."""
    table = attack_table()
    tagged: dict = {}
    for row in rows:
        for tid in row["techniques"]:
            tagged.setdefault(tid, []).append(row["title"])
    known = sorted(t for t in tagged if t in table["techniques"])
    unknown = sorted(t for t in tagged if t not in table["techniques"])
    techniques = []
    for tid in known:
        titles = sorted(tagged[tid], key=str.lower)
        shown = "; ".join(titles[:20]) + (f"; and {len(titles) - 20} more" if len(titles) > 20 else "")
        entry = {"techniqueID": tid, "score": len(titles), "comment": f"{len(titles)} rules: {shown}",
                 "enabled": True}
        if "." not in tid and any(t.startswith(tid + ".") for t in known):
            entry["showSubtechniques"] = True
        techniques.append(entry)
    version = re.search(r"v(\d+)", table.get("source", ""))
    description = f"ATT&CK techniques tagged by the {len(rows)} rules of a Sigma rule catalog; score: rules per technique."
    if unknown:
        description += f" Not in the bundled ATT&CK table, left out: {', '.join(unknown)}."
    return {
        "name": "Sigma rule catalog coverage",
        "versions": {"attack": version.group(1) if version else "18", "navigator": "5.1.0", "layer": "4.5"},
        "domain": "enterprise-attack",
        "description": description,
        "sorting": 3,
        "layout": {"layout": "side", "showID": True, "showName": True, "showAggregateScores": False,
                   "countUnscored": False, "aggregateFunction": "max", "expandedSubtechniques": "annotated"},
        "hideDisabled": False,
        "techniques": techniques,
        "gradient": {"colors": ["#dbe7fb", "#2450a6"], "minValue": 0,
                     "maxValue": max([t["score"] for t in techniques] + [1])},
        "legendItems": [],
        "metadata": [{"name": "generator", "value": GENERATOR}],
        "links": [],
        "showTacticRowBackground": False,
        "tacticRowBackground": "#dddddd",
        "selectTechniquesAcrossTactics": True,
        "selectSubtechniquesWithParent": False,
        "selectVisibleTechniques": False,
    }


def _tactic_facets(rows) -> list[dict]:
    """The tactics the rules use: the table's in matrix order, then any the table lacks."""
    used = {}
    for row in rows:
        used.update(zip(row["tactics"], row["tactic_names"]))
    known = [t for t in attack_table()["tactics"] if t["shortname"] in used]
    names = {t["shortname"] for t in known}
    return known + [{"shortname": s, "name": used[s]} for s in sorted(used) if s not in names]


def _document_text(text: str, index: int) -> str:
    """The lines of document `index` of a multi-document YAML text."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return text.rstrip("\n")
    if index >= len(nodes) or nodes[index] is None:
        return text.rstrip("\n")
    lines = text.splitlines()
    node = nodes[index]
    end = node.end_mark.line + (1 if node.end_mark.column else 0)
    return "\n".join(lines[node.start_mark.line:end]).rstrip("\n")


def _common_root(paths) -> str:
    if not paths:
        return ""
    try:
        root = os.path.commonpath([os.path.abspath(p) for p in paths])
    except ValueError:      # different drives
        return ""
    if len(paths) == 1 or os.path.isfile(root):
        root = os.path.dirname(root)
    return root


__all__ = ["Site", "build", "identity", "matrix", "navigator_layer", "slugs"]

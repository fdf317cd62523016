"""A static HTML rule catalog: an index to search and filter, a page per rule (its YAML, its
analysis, its query for every backend) and an ATT&CK coverage matrix.

The pages come from Jinja templates in templates/catalog/ (autoescaped HTML); CSS and JS are
local files copied beside them, so the site works offline, opened from the file system
(no fetch: every page carries its own data). Output is deterministic: rules are sorted, a
page's name comes from its file name, nothing records the time of the build.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
from functools import cached_property
from pathlib import Path

import jinja2
import yaml

from . import backends
from .analysis import Corpus, analyze, attack_table, identity
from .errors import TranspileError
from .resources import resource_dir

LEVELS = ("critical", "high", "medium", "low", "informational")
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


class Site:
    """One build: the rules, their analysis and conversions, and the pages written from them."""

    def __init__(self, rules, placeholders=None, errors=()):
        self.rules = sorted((r for r in rules if r.kind == "rule" and r.query is not None),
                            key=lambda r: (r.title.lower(), r.label))
        self.placeholders = placeholders
        self.errors = list(errors)
        self.corpus = Corpus(self.rules)
        self.slugs = slugs(self.rules)
        self.root = _common_root([r.path for r in self.rules])
        self._texts: dict = {}

    @cached_property
    def env(self) -> jinja2.Environment:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(resource_dir("templates") / "catalog")),
            autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.filters["level_rank"] = lambda level: LEVELS.index(level) if level in LEVELS else len(LEVELS)
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

    def queries(self, rule) -> list[dict]:
        out = []
        for name, backend, why in self.backends:
            if backend is None:
                out.append({"target": name, "query": None, "reason": why})
                continue
            try:
                out.append({"target": name, "query": backend.convert(rule), "reason": ""})
            except TranspileError as e:
                out.append({"target": name, "query": None, "reason": e.message if hasattr(e, "message") else str(e)})
            except Exception as e:     # noqa: BLE001 - one backend bug must not stop the site
                out.append({"target": name, "query": None, "reason": f"internal error: {type(e).__name__}: {e}"})
        return out

    def source(self, rule) -> str:
        """The rule's YAML as written: its whole file, or its document of a multi-document file."""
        text = self._texts.get(rule.path)
        if text is None:
            try:
                text = Path(rule.path).read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError):
                text = ""
            self._texts[rule.path] = text
        if rule.doc == 0 and "\n---" not in text:
            return text.rstrip("\n")
        return _document_text(text, rule.doc)

    def shown_path(self, rule) -> str:
        path = os.path.relpath(rule.path, self.root) if self.root else rule.path
        return path.replace(os.sep, "/") + (f"#{rule.doc}" if rule.doc else "")

    # --- writing ------------------------------------------------------------------------

    def build(self, out: Path) -> dict:
        out.mkdir(parents=True, exist_ok=True)
        (out / "rules").mkdir(exist_ok=True)
        assets = out / "assets"
        assets.mkdir(exist_ok=True)
        for f in sorted((resource_dir("templates") / "catalog" / "static").iterdir()):
            shutil.copyfile(f, assets / f.name)

        rows, written, stats = [], set(), {"rules": 0, "queries": 0, "unsupported": 0}
        rule_page = self.env.get_template("rule.html.j2")
        for rule in self.rules:
            a = analyze(rule, self.corpus, self.placeholders)
            queries = self.queries(rule)
            stats["rules"] += 1
            stats["queries"] += sum(q["query"] is not None for q in queries)
            stats["unsupported"] += sum(q["query"] is None for q in queries)
            slug = self.slugs[rule.label]
            same = [{"title": r["title"], "path": r["path"], "events": r["events"],
                     "href": self.slugs[r["path"]] + ".html"} for r in a.same_action]
            html = rule_page.render(a=a, rule=rule, meta=rule.meta, slug=slug, queries=queries, same=same,
                                    source=self.source(rule), path=self.shown_path(rule), root="../",
                                    nav="rules")
            _write(out / "rules" / f"{slug}.html", html)
            written.add(f"{slug}.html")
            rows.append(self._row(rule, a, queries, slug))
        for stale in (out / "rules").glob("*.html"):
            if stale.name not in written:
                stale.unlink()

        facets = {
            "levels": [lv for lv in LEVELS if any(r["level"] == lv for r in rows)],
            "tactics": _tactic_facets(rows),
            "logsources": sorted({r["logsource"] for r in rows}),
            "events": sorted({e for r in rows for e in r["event_list"]}, key=str.lower),
        }
        _write(out / "index.html", self.env.get_template("index.html.j2").render(
            rows=rows, facets=facets, total=len(rows), errors=self.errors, backends=self.backends, root="", nav="rules"))
        _write(out / "attack.html", self.env.get_template("attack.html.j2").render(
            matrix=matrix(rows), total=len(rows), root="", nav="attack"))
        return stats

    def _row(self, rule, a, queries, slug) -> dict:
        tactics = [t.shortname for t in a.attack]
        techniques = sorted({t["id"] for row in a.attack for t in row.techniques})
        events = [f"{e.provider} {e.event}" for e in a.events]
        logsource = "/".join(str(rule.logsource.get(k)) for k in ("product", "service", "category")
                             if rule.logsource.get(k)) or "(none)"
        text = " ".join([rule.title, str(rule.id or ""), self.shown_path(rule), " ".join(map(str, rule.tags)),
                         " ".join(techniques), " ".join(events), str(rule.meta.get("author") or "")])
        return {"href": f"rules/{slug}.html", "title": rule.title, "level": rule.level or "",
                "status": rule.status or "", "logsource": logsource, "tactics": tactics,
                "tactic_names": [t.name for t in a.attack], "techniques": techniques,
                "event_list": events, "search": text.lower(),
                "supported": [q["target"] for q in queries if q["query"] is not None]}


def build(rules, out: Path, placeholders=None, errors=()) -> dict:
    """Write the catalog of these rules into folder `out`; returns counts."""
    return Site(rules, placeholders, errors).build(Path(out))


def slugs(rules) -> dict:
    """rule label -> page name: the file's stem (plus _<doc> for later documents); names that
    several rules share get a short hash of the label, so each is stable and unique."""
    stems = {}
    for r in rules:
        stem = _SLUG.sub("-", Path(r.path).stem) + (f"_{r.doc}" if r.doc else "")
        stems.setdefault(stem.lower(), []).append((stem, r.label))
    out = {}
    for group in stems.values():
        for stem, label in group:
            out[label] = stem if len(group) == 1 else f"{stem}-{hashlib.sha1(label.encode()).hexdigest()[:8]}"
    return out


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


def _write(path: Path, text: str):
    path.write_text(text, encoding="utf-8", newline="\n")


__all__ = ["Site", "build", "identity", "matrix", "slugs"]

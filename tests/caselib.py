"""Golden cases: tests/cases/*.yaml hold the rules and events; tests/cases/expected/<target>.yaml
hold each target's expected query text per case id (or `UNSUPPORTED: <fragment>`).

A case:
    - id: contains-basic              # unique across all files
      detection: {sel: {CommandLine|contains: foo}, condition: sel}
      logsource: {product: aws, service: cloudtrail}   # optional; default {category: test}
      placeholders: {name: [values]}  # optional, for |expand
      match: [{CommandLine: "a foo b"}]                # events the rule must select
      no_match: [{CommandLine: "bar"}, {}]             # events it must not select
      error: modifier                 # instead of match/no_match: the load must fail with this kind
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from transpiler.rule import rule_from_dict

CASES = Path(__file__).parent / "cases"
EXPECTED = CASES / "expected"
UNSUPPORTED = "UNSUPPORTED"
DEFAULT_LOGSOURCE = {"category": "test"}


@dataclass
class Case:
    id: str
    file: str
    detection: dict
    logsource: dict = field(default_factory=lambda: dict(DEFAULT_LOGSOURCE))
    placeholders: dict | None = None
    match: list = field(default_factory=list)
    no_match: list = field(default_factory=list)
    error: str | None = None

    def rule(self):
        doc = {"title": f"case {self.id}", "logsource": self.logsource, "detection": self.detection}
        return rule_from_dict(doc, f"tests/cases/{self.file}:{self.id}", self.placeholders)

    @property
    def events(self) -> list:
        return list(self.match) + list(self.no_match)


def load_cases() -> list[Case]:
    cases, seen = [], set()
    for path in sorted(CASES.glob("*.yaml")):
        for raw in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            case = Case(file=path.name, **raw)
            assert case.id not in seen, f"duplicate case id {case.id}"
            seen.add(case.id)
            cases.append(case)
    return cases


def load_expected(target: str, folder: Path = EXPECTED) -> dict:
    path = folder / f"{target}.yaml"
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def write_expected(target: str, table: dict, folder: Path = EXPECTED) -> None:
    """Write a target's expected file in case order, block style, one key per case."""
    folder.mkdir(exist_ok=True)
    text = yaml.dump(table, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10_000)
    (folder / f"{target}.yaml").write_text(text, encoding="utf-8")


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)

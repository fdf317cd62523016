"""Field mappings: how a Sigma field is reached in a backend's table. Data, not code.

A mapping file (templates/<backend>/mappings/*.yml, or a user's own via -m) reads:

    logsource: {product: aws, service: cloudtrail}   # which rules it serves
    table: cloudtrail_logs                            # default table (an option overrides it)
    unmapped: keep                                    # keep: use the Sigma name; error: refuse
    fields:                                           # Sigma field -> column (or a full spec)
      eventName: eventname
      userIdentity.arn: useridentity.arn              # a dotted column is a struct path
      readOnly: {column: readonly, type: bool}
    json:                                             # Sigma prefix -> column holding JSON text:
      requestParameters: requestparameters            #   requestParameters.userName is the key
                                                      #   userName inside that text
    arrays:                                           # Sigma prefix -> array column: resources.ARN
      resources: {column: resources, fields: {ARN: arn}}   # matches if any element's arn matches
    ...                                               # anything else: the backend's own section

The backend renders a Target in its own syntax; this module only decides what it is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import RuleError, Unsupported
from .resources import resource_dir


@dataclass(frozen=True)
class Target:
    """Where one Sigma field lives in the target table."""

    column: str                   # column name, or a dotted struct path, in the target's spelling
    json_path: tuple = ()         # keys inside the JSON text held by `column` (empty: the column itself)
    element: str | None = None    # `column` is an array; compare this (dotted) path inside any element
    type: str = "string"          # string | bool | number | timestamp | json
    sigma: str = ""               # the Sigma field name it came from (for messages)


@dataclass
class Mapping:
    table: str
    fields: dict = field(default_factory=dict)     # Sigma name -> Target
    json: dict = field(default_factory=dict)       # Sigma prefix -> JSON-text column
    arrays: dict = field(default_factory=dict)     # Sigma prefix -> {column, fields}
    unmapped: str = "keep"
    logsource: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)      # backend-specific sections (enrichment, ...)
    source: str = ""

    def resolve(self, name: str) -> Target:
        # Field names are case-sensitive, as in the evaluator: `eventname` is not `eventName`.
        if name in self.fields:
            return self.fields[name]
        for prefix, column in self.json.items():
            if name == prefix:
                return Target(column, type="json", sigma=name)
            if name.startswith(prefix + "."):
                return Target(column, tuple(name[len(prefix) + 1:].split(".")), sigma=name)
        for prefix, spec in self.arrays.items():
            if name.startswith(prefix + "."):
                rest = name[len(prefix) + 1:]
                element = spec.get("fields", {}).get(rest)
                if element is None and self.unmapped == "error":
                    break
                return Target(spec["column"], element=element or rest, sigma=name)
        if self.unmapped == "error":
            raise Unsupported(f"field {name!r} has no column in mapping {Path(self.source).name or self.table!r}",
                              kind="unmapped-field")
        return Target(name, sigma=name)


def _target(name: str, spec) -> Target:
    if isinstance(spec, str):
        return Target(spec, sigma=name)
    if isinstance(spec, dict) and "column" in spec:
        return Target(spec["column"], tuple(spec.get("json_path", ())), spec.get("element"),
                      spec.get("type", "string"), sigma=name)
    raise RuleError(f"mapping for field {name!r} must be a column name or {{column: ...}}", kind="mapping")


def parse_mapping(data: dict, source: str = "") -> Mapping:
    if not isinstance(data, dict) or "table" not in data:
        raise RuleError("a mapping file must be a YAML map with at least 'table'", path=source, kind="mapping")
    known = {"table", "fields", "json", "arrays", "unmapped", "logsource"}
    return Mapping(
        table=str(data["table"]),
        fields={k: _target(k, v) for k, v in (data.get("fields") or {}).items()},
        json=dict(data.get("json") or {}),
        arrays=dict(data.get("arrays") or {}),
        unmapped=data.get("unmapped", "keep"),
        logsource=dict(data.get("logsource") or {}),
        extra={k: v for k, v in data.items() if k not in known},
        source=source,
    )


def load_mapping_file(path) -> Mapping:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise RuleError(f"cannot read mapping: {e}", path=path, kind="mapping") from None
    return parse_mapping(data, str(path))


def builtin_mappings(backend: str) -> list[Mapping]:
    """The mapping files shipped in templates/<backend>/mappings/, generic.yml last."""
    folder = resource_dir("templates") / backend / "mappings"
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*.yml"), key=lambda p: (p.stem == "generic", p.name))
    return [load_mapping_file(p) for p in files]


def choose(mappings: list[Mapping], logsource: dict) -> Mapping | None:
    """The first mapping whose every logsource key equals the rule's (case-insensitive);
    a mapping with no logsource matches anything, so generic.yml is the fallback."""
    wanted = {str(k).lower(): str(v).lower() for k, v in (logsource or {}).items() if v is not None}
    for mapping in mappings:
        if all(wanted.get(str(k).lower()) == str(v).lower() for k, v in mapping.logsource.items()):
            return mapping
    return None

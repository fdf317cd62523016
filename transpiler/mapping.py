"""Field mappings: how a Sigma field is reached in a backend's table. Data, not code.

A mapping file (templates/<backend>/mappings/*.yml, or a user's own via -m) reads:

    logsource: {product: aws, service: cloudtrail}   # which rules it serves
    description: AWS CloudTrail in Sentinel's table   # one line, for `list mappings`
    table: cloudtrail_logs                            # default table (an option overrides it)
    schema: AWSCloudTrail                             # the table's documented columns and types
                                                      # (templates/<backend>/schemas/NAME.yml)
    rows: {ActionType: ProcessCreated}                # only the rows whose column holds one of
                                                      # these values are this logsource's events
    unmapped: keep                                    # a field the mapping does not name:
                                                      #   keep: the column of the Sigma name
                                                      #   error: unsupported, the field named
                                                      #   schema: the schema's column of that name,
                                                      #           else unsupported
                                                      #   {json: COLUMN}: that key in the JSON column
    fields:                                           # Sigma field -> column (or a full spec)
      eventName: eventname
      userIdentity.arn: useridentity.arn              # a dotted column is a struct path
      readOnly: {column: readonly, type: bool}
      Status.errorCode: {column: Status, json_path: [errorCode]}
      User: {expr: 'strcat(AccountDomain, "\\", AccountName)'}   # an expression of the
                                                      # backend's language (KQL only)
      Status: {expr: tostring(Status), ops: [contains], value_excludes: ',[]{}:"'}
                                                      # only these tests mean the same there
      Hashes: {hashes: {MD5: MD5, SHA256: SHA256}}    # "MD5=...,SHA256=...": a contains of
                                                      # ALGO=hex tests that algorithm's column
    json:                                             # Sigma prefix -> column holding JSON text:
      requestParameters: requestparameters            #   requestParameters.userName is the key
                                                      #   userName inside that text
    arrays:                                           # Sigma prefix -> array column: resources.ARN
      resources: {column: resources, fields: {ARN: arn}}   # matches if any element's arn matches
    time_column: TimeGenerated                        # backend sections (EXTRA_KEYS below)

A file may instead hold several mappings, `mappings: [{logsource: ..., table: ...}, ...]`
(YAML anchors under `common:` share their parts); the one whose logsource fits a rule most
specifically serves it.
Every key is checked when the file is read: a bad one is a one-line error naming the key.
The backend renders a Target in its own syntax; this module only decides what it is.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from . import files
from .errors import RuleError, Unsupported
from .evaluate import text
from .nodes import And, Match, Not, Op, Or
from .resources import resource_dir
from .rule import MAX_FILE_BYTES

TYPES = ("string", "bool", "number", "datetime", "timestamp", "json", "ip")
UNMAPPED = ("keep", "error", "schema")
MAPPING_KEYS = ("logsource", "description", "table", "schema", "rows", "unmapped", "fields", "json", "arrays")
# Sections one backend reads (kql: time_column, keywords, json_arrays, scalar_json (dynamic
# columns whose members hold single values: WindowsEvent's EventData); duckdb: values, keywords;
# pipesearch: pipesearch): checked for their shape here, used there.
EXTRA_KEYS = ("time_column", "keywords", "json_arrays", "scalar_json", "values", "pipesearch")
# Column types of a schema file (Kusto's scalar types) and the Target type each one reads as.
SCHEMA_TYPES = {"string": "string", "bool": "bool", "boolean": "bool", "int": "number", "long": "number",
                "real": "number", "double": "number", "decimal": "number", "datetime": "datetime",
                "timespan": "string", "guid": "string", "dynamic": "json"}


@dataclass(frozen=True)
class Target:
    """Where one Sigma field lives in the target table."""

    column: str                   # column name, or a dotted struct path, in the target's spelling
    json_path: tuple = ()         # keys inside the JSON text held by `column` (empty: the column itself)
    element: str | None = None    # `column` is an array; compare this (dotted) path inside any element
    type: str = "string"          # string | bool | number | datetime | timestamp | json | ip
    sigma: str = ""               # the Sigma field name it came from (for messages)
    expr: str | None = None       # an expression of the backend's language instead of a column
    ops: tuple = ()               # the only Ops that mean the same on the column (empty: all)
    value_excludes: str = ""      # characters a compared value must not hold to mean the same
    hashes: tuple = ()            # ((ALGO, column), ...): the field is Sysmon's "ALGO=hex,..." list
    name: str = ""                # an expr's column name in the query (default: the Sigma name)
    inline: bool = False          # the expr is written where it is read (no computed column)


@dataclass
class Mapping:
    table: str
    fields: dict = field(default_factory=dict)     # Sigma name -> Target
    json: dict = field(default_factory=dict)       # Sigma prefix -> JSON-text column
    arrays: dict = field(default_factory=dict)     # Sigma prefix -> {column, fields}
    unmapped: str | dict = "keep"
    logsource: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)      # backend-specific sections (enrichment, ...)
    source: str = ""
    description: str = ""
    schema: dict = field(default_factory=dict)     # column -> type name, when a schema is named
    schema_name: str = ""
    rows: dict = field(default_factory=dict)       # column -> tuple of values this logsource's rows hold

    @property
    def name(self) -> str:
        return Path(self.source).stem if self.source else self.table

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
        if self.unmapped == "keep":
            return Target(name, sigma=name)
        if self.unmapped == "schema" and name in self.schema:
            return Target(name, type=SCHEMA_TYPES[self.schema[name]], sigma=name)
        if isinstance(self.unmapped, dict):
            return Target(self.unmapped["json"], (name,), sigma=name)
        raise Unsupported(f"field {name!r} has no column in table {self.table} (mapping {self.name})",
                          kind="unmapped-field")

    def rewrite(self, query):
        """The query with the mapping's value-level rules applied: a Match on a field whose
        target limits the ops or values that mean the same there is refused (Unsupported) when
        it breaks them; a `contains` of ALGO=hex on a `hashes` field becomes a test of that
        algorithm's column. Everything else is returned as it is."""
        if isinstance(query, Not):
            arg = self.rewrite(query.arg)
            return query if arg is query.arg else Not(arg)
        if isinstance(query, (And, Or)):
            args = tuple(self.rewrite(a) for a in query.args)
            return query if all(a is b for a, b in zip(args, query.args)) else type(query)(args)
        if query.field is None:
            return query
        t = self.resolve(query.field)
        if t.hashes:
            return self._hash_test(query, t)
        if t.ops and query.op.value not in t.ops:
            raise Unsupported(f"field {query.field!r} ({t.expr or t.column} in table {self.table}) can only be "
                              f"tested with {', '.join(t.ops)} here, not {query.op.value}", kind="mapping-limit")
        if t.value_excludes and any(c in str(query.value) for c in t.value_excludes):
            raise Unsupported(f"field {query.field!r} ({t.expr or t.column} in table {self.table}): a value "
                              f"holding any of {t.value_excludes} would not mean the same there", kind="mapping-limit")
        return self._number_equality(query, t)

    def _number_equality(self, m: Match, t: Target):
        """Equality compares texts (evaluate.text: 22 is not 22.0). A whole-number column's
        text is its digits, so a fractional value is compared as text; a real column's text is
        Kusto's, not the event's, so equality on it is refused."""
        kind = self.schema.get(t.column) if not (t.expr or t.json_path) else None
        if m.op is not Op.EQ or not isinstance(m.value, (int, float)) or isinstance(m.value, bool):
            return m
        if kind in ("int", "long") and isinstance(m.value, float):
            return Match(m.field, Op.EQ, text(m.value), m.cased)
        if kind in ("real", "double", "decimal"):
            raise Unsupported(f"field {m.field!r}: the real column {t.column} of table {self.table} holds numbers "
                              f"whose text Kusto writes its own way; equality cannot be tested", kind="mapping-limit")
        return m

    def _hash_test(self, m: Match, t: Target):
        """Sysmon's Hashes is "ALGO=hex" items joined by commas; `contains ALGO=hex` holds exactly
        when that algorithm's hash starts with hex (equals it, for a whole hash)."""
        columns = dict(t.hashes)
        found = re.fullmatch(r"([A-Za-z0-9]+)=([0-9A-Fa-f]+)", str(m.value)) if m.op is Op.CONTAINS else None
        algo = found and next((a for a in columns if a.upper() == found.group(1).upper()), None)
        if not algo:
            raise Unsupported(f"field {m.field!r}: only a contains of {', '.join(a + '=hex' for a in columns)} "
                              f"can be tested in table {self.table} (one column per algorithm)", kind="mapping-limit")
        name = f"{m.field}.{algo}"
        self.fields.setdefault(name, Target(columns[algo], sigma=name))
        hex_digits = found.group(2)
        whole = len(hex_digits) == {"MD5": 32, "SHA1": 40, "SHA256": 64}.get(algo.upper())
        return Match(name, Op.EQ if whole else Op.STARTSWITH, hex_digits, m.cased)

    def specificity(self, logsource: dict) -> int:
        """How many keys of the mapping's logsource the rule's has too, each equal (case-
        insensitive); -1 if one differs. A mapping without logsource fits every rule, with 0."""
        return self._specificity(dict(logsource_key(logsource)))

    def _specificity(self, wanted: dict) -> int:
        fits = all(wanted.get(str(k).lower()) == str(v).lower() for k, v in self.logsource.items())
        return len(self.logsource) if fits else -1


# --- reading and checking mapping files ------------------------------------------------------

class _Checker:
    """Checks one mapping's data; every error names the file and the key."""

    def __init__(self, source: str, prefix: str = ""):
        self.source, self.prefix = source, prefix

    def fail(self, key: str, message: str):
        raise RuleError(message, path=self.source or None, where=self.prefix + key, kind="mapping")

    def text(self, key: str, value, empty_ok=False) -> str:
        if not isinstance(value, str) or (not empty_ok and not value.strip()):
            self.fail(key, f"must be a non-empty string, not {_show(value)}")
        return value

    def names(self, key: str, value) -> list:
        """A string or a list of strings."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            self.fail(key, f"must be a name or a list of names, not {_show(value)}")
        for i, item in enumerate(items):
            self.text(f"{key}[{i}]", item)
        return items

    def map_of(self, key: str, value) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(key, f"must be a map, not {_show(value)}")
        for k in value:
            if not isinstance(k, str) or not k:
                self.fail(key, f"keys must be non-empty strings, not {_show(k)}")
        return value

    def logsource(self, value, key="logsource") -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(key, f"must be a map such as {{product: windows, category: process_creation}}, "
                           f"not {_show(value)}")
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, str) or not v:
                self.fail(f"{key}.{k}", f"must be a non-empty string, not {_show(v)}")
        return dict(value)

    def unmapped(self, value):
        if value in UNMAPPED:
            return value
        if isinstance(value, dict) and set(value) == {"json"}:
            self.text("unmapped.json", value["json"])
            return dict(value)
        self.fail("unmapped", f"must be keep, error, schema or {{json: COLUMN}}, not {_show(value)}")

    def target(self, name: str, spec) -> Target:
        key = f"fields.{name}"
        if isinstance(spec, str) and spec.strip():
            return Target(spec, sigma=name)
        if not isinstance(spec, dict):
            self.fail(key, f"must be a column name or a map with column or expr, not {_show(spec)}")
        unknown = sorted(set(spec) - {"column", "expr", "name", "json_path", "element", "type", "ops",
                                      "value_excludes", "hashes"})
        if unknown:
            self.fail(f"{key}.{unknown[0]}", "unknown key: use column, expr, name, json_path, element, type, ops, "
                                             "value_excludes or hashes")
        if "hashes" in spec:
            if set(spec) != {"hashes"}:
                self.fail(key, "hashes takes no other key")
            algos = self.map_of(f"{key}.hashes", spec["hashes"])
            if not algos:
                self.fail(f"{key}.hashes", "must map at least one algorithm to its column")
            return Target("", sigma=name, hashes=tuple((a, self.text(f"{key}.hashes.{a}", c))
                                                       for a, c in algos.items()))
        limits = self.limits(key, spec)
        if ("column" in spec) == ("expr" in spec):
            self.fail(key, "needs exactly one of column and expr")
        if "expr" in spec:
            expr = self.text(f"{key}.expr", spec["expr"])
            if set(spec) & {"json_path", "element"}:
                self.fail(key, "an expr takes no json_path or element")
            column = self.text(f"{key}.name", spec["name"]) if "name" in spec else name
            return Target("", type=self.type(key, spec), sigma=name, expr=expr, name=column, **limits)
        if "name" in spec:
            self.fail(f"{key}.name", "names the column of an expr: a column field has its column")
        column = self.text(f"{key}.column", spec["column"])
        path = spec.get("json_path", ())
        if isinstance(path, str):
            path = path.split(".")
        if not isinstance(path, (list, tuple)) or not all(isinstance(p, str) and p for p in path):
            self.fail(f"{key}.json_path", f"must be a list of keys, not {_show(spec.get('json_path'))}")
        element = spec.get("element")
        if element is not None:
            self.text(f"{key}.element", element)
        return Target(column, tuple(path), element, self.type(key, spec), sigma=name, **limits)

    def limits(self, key: str, spec: dict) -> dict:
        ops = spec.get("ops", [])
        known = [op.value for op in Op]
        if not isinstance(ops, list) or not all(op in known for op in ops):
            self.fail(f"{key}.ops", f"must be a list of {', '.join(known)}, not {_show(ops)}")
        excludes = spec.get("value_excludes", "")
        if not isinstance(excludes, str):
            self.fail(f"{key}.value_excludes", f"must be a string of characters, not {_show(excludes)}")
        return {"ops": tuple(ops), "value_excludes": excludes}

    def type(self, key: str, spec: dict) -> str:
        kind = spec.get("type", "string")
        if kind not in TYPES:
            self.fail(f"{key}.type", f"unknown type {_show(kind)}: use one of {', '.join(TYPES)}")
        return kind

    def arrays(self, value) -> dict:
        for prefix, spec in self.map_of("arrays", value).items():
            if not isinstance(spec, dict) or not isinstance(spec.get("column"), str) or not spec["column"]:
                self.fail(f"arrays.{prefix}", f"must be a map with a column, not {_show(spec)}")
            for k, v in self.map_of(f"arrays.{prefix}.fields", spec.get("fields")).items():
                self.text(f"arrays.{prefix}.fields.{k}", v)
        return dict(value or {})

    def rows(self, value) -> dict:
        out = {}
        for column, values in self.map_of("rows", value).items():
            items = values if isinstance(values, list) else [values]
            if not items or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in items):
                self.fail(f"rows.{column}", f"must be a value or a list of values, not {_show(values)}")
            out[column] = tuple(items)
        return out

    def extras(self, data: dict) -> dict:
        extra = {k: v for k, v in data.items() if k not in MAPPING_KEYS}
        for key, value in extra.items():
            if key not in EXTRA_KEYS:
                hint = _did_you_mean(key, MAPPING_KEYS + EXTRA_KEYS)
                self.fail(key, f"unknown key{hint}; a mapping has {', '.join(MAPPING_KEYS + EXTRA_KEYS)}")
            if key in ("time_column", "values"):
                self.text(key, value)
            elif key in ("json_arrays", "scalar_json"):
                self.names(key, value)
            elif key == "keywords" and value is not None:
                self.names(key, value)
            elif key == "pipesearch":
                self.map_of(key, value)
        return extra

    def against_schema(self, mapping: Mapping):
        """Every column the mapping names is in the table's documented schema."""
        if not mapping.schema:
            return
        named = [(f"fields.{n}", t.column) for n, t in mapping.fields.items() if not (t.expr or t.hashes)]
        named += [(f"fields.{n}.hashes.{a}", c) for n, t in mapping.fields.items() for a, c in t.hashes]
        named += [(f"json.{p}", c) for p, c in mapping.json.items()]
        named += [(f"rows.{c}", c) for c in mapping.rows]
        if isinstance(mapping.unmapped, dict):
            named.append(("unmapped.json", mapping.unmapped["json"]))
        for field_name, t in mapping.fields.items():
            if t.expr and t.name in mapping.schema:
                self.fail(f"fields.{field_name}", f"the computed column {t.name!r} would hide the table's column "
                                                  f"of that name: give it another name")
        for key, column in named:
            if column.split(".")[0] not in mapping.schema:
                hint = _did_you_mean(column, list(mapping.schema))
                self.fail(key, f"column {column!r} is not in the schema of {mapping.schema_name}{hint}")


def _show(value) -> str:
    text = "null" if value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_mapping(data, source: str = "", prefix: str = "") -> Mapping:
    """One mapping from its YAML data; RuleError (kind mapping) naming the key if it is wrong."""
    check = _Checker(source, prefix)
    if not isinstance(data, dict):
        check.fail("", f"a mapping must be a YAML map with at least 'table', not {_show(data)}")
    if "table" not in data:
        check.fail("table", "missing: a mapping names its table")
    fields_data = check.map_of("fields", data.get("fields"))
    json_data = check.map_of("json", data.get("json"))
    for prefix_name, column in json_data.items():
        check.text(f"json.{prefix_name}", column)
    schema_name = check.text("schema", data["schema"]) if data.get("schema") is not None else ""
    schema = load_schema(schema_name, source, check) if schema_name else {}
    targets = {k: check.target(k, v) for k, v in fields_data.items()}
    if schema:   # a column's type comes from the schema unless the field says otherwise
        targets = {k: _typed(t, fields_data[k], schema) for k, t in targets.items()}
    unmapped = check.unmapped(data.get("unmapped", "keep"))
    if unmapped == "schema" and not schema:
        check.fail("unmapped", "schema needs the mapping's schema key")
    mapping = Mapping(
        table=check.text("table", data["table"]),
        fields=targets,
        json=dict(json_data),
        arrays=check.arrays(data.get("arrays")),
        unmapped=unmapped,
        logsource=check.logsource(data.get("logsource")),
        extra=check.extras(data),
        source=source,
        description=check.text("description", data["description"]) if "description" in data else "",
        schema=schema,
        schema_name=schema_name,
        rows=check.rows(data.get("rows")),
    )
    check.against_schema(mapping)
    return mapping


def _did_you_mean(word: str, choices) -> str:
    import difflib      # only for an error: not on every run's import
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _typed(target: Target, spec, schema: dict) -> Target:
    explicit = isinstance(spec, dict) and "type" in spec
    if explicit or target.expr or target.hashes or target.json_path or target.column not in schema:
        return target
    return dataclasses.replace(target, type=SCHEMA_TYPES[schema[target.column]])


def load_schema(name: str, source: str = "", check: _Checker | None = None) -> dict:
    """A table's columns -> types, from templates/<backend>/schemas/NAME.yml (next to the
    mapping's own folder first), or a path relative to the mapping file."""
    check = check or _Checker(source)
    for path in _schema_candidates(name, source):
        if path.is_file():
            return read_schema(path, check)
    check.fail("schema", f"no schema named {name!r} (templates/<backend>/schemas/{name}.yml)")


def _schema_candidates(name: str, source: str):
    """Where a schema may be, in order; made as they are tried (the built-in mappings find
    theirs in the first place, and load_schema runs for each of them: no folder search)."""
    if source and (name.endswith((".yml", ".yaml")) or "/" in name):
        yield Path(source).parent / name
        return
    if source:
        yield Path(source).resolve().parent.parent / "schemas" / f"{name}.yml"
    yield from sorted(Path(str(resource_dir("templates"))).glob(f"*/schemas/{name}.yml"))


def read_schema(path, check: _Checker | None = None) -> dict:
    """A schema file: `table`, `source` (the documentation it follows) and `columns`, a map of
    column name -> Kusto type. Read once per file (the result is shared: do not change it)."""
    try:
        return _read_schema(str(path))
    except ValueError as e:
        (check or _Checker(str(path))).fail("schema", f"schema {path}: {e}")


@lru_cache(maxsize=None)
def _read_schema(path: str) -> dict:
    try:
        data = _safe_load(files.read_text_limited(path, MAX_FILE_BYTES))
    except (files.Unreadable, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ValueError(str(e).replace("\n", " ")) from None
    columns = data.get("columns") if isinstance(data, dict) else None
    if not isinstance(columns, dict) or not columns:
        raise ValueError("no `columns` map")
    for column, kind in columns.items():
        if kind not in SCHEMA_TYPES:
            raise ValueError(f"column {column}: unknown type {_show(kind)}")
    return dict(columns)


def _safe_load(text: str):
    """yaml.safe_load's data, parsed by libyaml where it is installed (the built-in mappings
    and schemas are read on every run: a tenth of the time). A text libyaml refuses is read
    again by PyYAML's own parser, so that its message is the one users have always seen."""
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return yaml.safe_load(text)


def _read_yaml(path):
    try:
        return _safe_load(files.read_text_limited(path, MAX_FILE_BYTES))
    except (files.Unreadable, UnicodeDecodeError, yaml.YAMLError) as e:
        message = str(e).replace("\n", " ")
        raise RuleError(f"cannot read mapping: {message}", path=path, kind="mapping") from None


def load_mappings(path) -> list[Mapping]:
    """Every mapping of a file: one, or the list under `mappings`."""
    data = _read_yaml(path)
    if isinstance(data, dict) and "mappings" in data:
        extra = sorted(set(data) - {"mappings", "common"})
        if extra:   # `common` holds the anchors the mappings share
            raise RuleError(f"unknown key beside mappings (only common may be): {extra[0]}", path=path,
                            where=extra[0], kind="mapping")
        items = data["mappings"]
        if not isinstance(items, list) or not items:
            raise RuleError(f"must be a non-empty list of mappings, not {_show(items)}", path=path,
                            where="mappings", kind="mapping")
        return [parse_mapping(item, str(path), f"mappings[{i}].") for i, item in enumerate(items)]
    return [parse_mapping(data, str(path))]


def load_mapping_file(path) -> Mapping:
    """A mapping file that must hold one mapping."""
    found = load_mappings(path)
    if len(found) > 1:
        raise RuleError(f"holds {len(found)} mappings where one is expected", path=path,
                        where="mappings", kind="mapping")
    return found[0]


def _mapping_files(backend: str, optional: bool = False) -> list:
    folder = resource_dir("templates") / backend / "mappings"
    if optional:
        folder = folder / "optional"
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.yml"), key=lambda p: (p.stem == "generic", p.name))


def builtin_mappings(backend: str) -> list[Mapping]:
    """The mappings shipped in templates/<backend>/mappings/, generic.yml last (read once)."""
    return list(_builtin_mappings(backend))


@lru_cache(maxsize=None)
def _builtin_mappings(backend: str) -> tuple:
    return tuple(m for p in _mapping_files(backend) for m in load_mappings(p))


def list_builtin_mappings(backend: str) -> list[dict]:
    """One line per mapping shipped for a backend, for `list mappings`: name (the file, or what
    -m takes for an optional one), logsource (as text), table and description."""
    out = []
    for optional in (False, True):
        for path in _mapping_files(backend, optional):
            for m in load_mappings(path):
                logsource = ", ".join(f"{k}: {v}" for k, v in m.logsource.items()) or "(any)"
                out.append({"name": ("-m " if optional else "") + path.stem, "logsource": logsource,
                            "table": m.table, "description": m.description})
    return out


def logsource_key(logsource: dict) -> tuple:
    """A rule's logsource as mappings compare it: (key, value) pairs lowered, null values left
    out. Rules with the same key are served by the same mapping (backends remember it)."""
    return tuple({str(k).lower(): str(v).lower() for k, v in (logsource or {}).items() if v is not None}.items())


def choose(mappings: list[Mapping], logsource: dict) -> Mapping | None:
    """The mapping that serves the rule's logsource most specifically (the most logsource keys;
    the first one on a tie). A mapping with no logsource serves anything: generic.yml."""
    wanted = dict(logsource_key(logsource))
    best, score = None, -1
    for mapping in mappings:
        s = mapping._specificity(wanted)
        if s > score:
            best, score = mapping, s
    return best

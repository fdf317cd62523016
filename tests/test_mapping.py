"""Mapping files (transpiler/mapping.py): every key checked when the file is read, with a
one-line error naming the file and the key; the built-in mappings load, name only columns of
their table's documented schema, and describe themselves for `list mappings`."""
from __future__ import annotations

import pytest

from transpiler import cli
from transpiler.backends.kql import Kql
from transpiler.errors import RuleError, Unsupported
from transpiler.rule import rule_from_dict
from transpiler.mapping import (builtin_mappings, choose, list_builtin_mappings, load_mapping_file, load_mappings,
                                parse_mapping)

# (YAML text, the key the error names, a fragment of its message)
BAD = [
    ("table: null", "table", "non-empty string, not null"),
    ("table: ''", "table", "non-empty string"),
    ("fields: {a: b}", "table", "missing"),
    ("table: T\nfields: [a, b]", "fields", "must be a map, not ['a', 'b']"),
    ("table: T\nlogsource: [1]", "logsource", "must be a map"),
    ("table: T\nlogsource: windows", "logsource", "must be a map"),
    ("table: T\nlogsource: {product: [windows]}", "logsource.product", "non-empty string"),
    ("table: T\nunmapped: banana", "unmapped", "keep, error, schema or {json: COLUMN}, not 'banana'"),
    ("table: T\nunmapped: schema", "unmapped", "needs the mapping's schema"),
    ("table: T\nfields: {x: {column: c, type: bogus}}", "fields.x.type", "unknown type 'bogus'"),
    ("table: T\nfields: {x: {column: c, json_path: 5}}", "fields.x.json_path", "list of keys, not 5"),
    ("table: T\nfields: {x: {column: c, json_path: [a, 1]}}", "fields.x.json_path", "list of keys"),
    ("table: T\nfields: {x: 5}", "fields.x", "column name or a map"),
    ("table: T\nfields: {x: {colum: c}}", "fields.x.colum", "unknown key"),
    ("table: T\nfields: {x: {column: c, expr: 'a'}}", "fields.x", "exactly one of column and expr"),
    ("table: T\nfields: {x: {expr: 'a', json_path: [b]}}", "fields.x", "no json_path"),
    ("table: T\njson: {p: [a]}", "json.p", "non-empty string"),
    ("table: T\narrays: {r: arn}", "arrays.r", "a map with a column"),
    ("table: T\nrows: {ActionType: {a: b}}", "rows.ActionType", "a value or a list of values"),
    ("table: T\nrows: {ActionType: []}", "rows.ActionType", "a value or a list of values"),
    ("table: T\nfeilds: {a: b}", "feilds", "did you mean fields?"),
    ("table: T\ntime_column: 5", "time_column", "non-empty string"),
    ("table: T\nkeywords: {a: b}", "keywords", "a name or a list of names"),
    ("table: T\nschema: NoSuchTable", "schema", "no schema named 'NoSuchTable'"),
    ("table: T\nschema: DeviceProcessEvents\nfields: {Image: FolderPth}", "fields.Image",
     "'FolderPth' is not in the schema of DeviceProcessEvents (did you mean FolderPath?)"),
    ("table: T\nschema: DeviceProcessEvents\nrows: {Action: x}", "rows.Action", "not in the schema"),
    ("- a\n- b", "", "a YAML map"),
    ("mappings: {table: T}", "mappings", "non-empty list"),
    ("mappings: [{table: T}]\nextra: 1", "extra", "unknown key beside mappings"),
    ("mappings: [{table: T}, {table: null}]", "mappings[1].table", "non-empty string"),
]


@pytest.mark.parametrize("text,key,fragment", BAD, ids=[b[1] or "root" for b in BAD])
def test_bad_mapping_is_one_line_naming_the_key(tmp_path, text, key, fragment):
    path = tmp_path / "m.yml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(RuleError) as caught:
        load_mappings(path)
    e = caught.value
    assert e.kind == "mapping" and e.path == str(path)
    assert (e.where or "") == key, str(e)
    assert fragment in e.message, str(e)
    assert "\n" not in str(e)


def test_unreadable_mapping_files(tmp_path):
    for name, data in [("bad.yml", b"table: [unclosed\n"), ("binary.yml", b"\xff\xfe\x00table")]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(RuleError, match="cannot read mapping") as caught:
            load_mappings(path)
        assert "\n" not in str(caught.value)
    with pytest.raises(RuleError, match="cannot read mapping"):
        load_mappings(tmp_path / "missing.yml")


def test_convert_with_a_bad_mapping_is_an_error_line_not_a_traceback(tmp_path, capsys):
    rule = tmp_path / "r.yml"
    rule.write_text("title: t\nlogsource: {product: windows, category: process_creation}\n"
                    "detection: {sel: {Image|endswith: '\\x.exe'}, condition: sel}\n", encoding="utf-8")
    for text, key in [("table: null", "table"), ("table: T\nfields: {x: {column: c, type: bogus}}", "fields.x.type"),
                      ("table: T\nunmapped: banana", "unmapped"), ("table: T\nfields: [a, b]", "fields"),
                      ("table: T\nlogsource: [1]", "logsource"),
                      ("table: T\nfields: {x: {column: c, json_path: 5}}", "fields.x.json_path")]:
        mapping = tmp_path / "m.yml"
        mapping.write_text(text + "\n", encoding="utf-8")
        for target in ("kql", "athena", "pipesearch"):
            assert cli.main(["convert", str(rule), "-t", target, "-m", str(mapping)]) == 2
            err = capsys.readouterr().err
            assert err.startswith(f"error: {mapping}: {key}: ") and err.count("\n") == 1, err


def test_a_set_of_mappings_is_not_one_mapping(tmp_path):
    path = tmp_path / "m.yml"
    path.write_text("mappings: [{table: A}, {table: B}]\n", encoding="utf-8")
    assert [m.table for m in load_mappings(path)] == ["A", "B"]
    with pytest.raises(RuleError, match="holds 2 mappings"):
        load_mapping_file(path)


def test_a_user_mapping_set_picks_by_logsource(tmp_path):
    path = tmp_path / "m.yml"
    path.write_text("common:\n  c: &c {unmapped: error, fields: {Image: FolderPath}}\n"
                    "mappings:\n"
                    "  - {<<: *c, logsource: {product: windows, category: process_creation}, table: MyProcesses}\n"
                    "  - {<<: *c, logsource: {product: windows, category: image_load}, table: MyImageLoads}\n",
                    encoding="utf-8")
    def rule(category):
        return rule_from_dict({"title": "t", "logsource": {"product": "windows", "category": category},
                               "detection": {"sel": {"Image|endswith": "x.exe"}, "condition": "sel"}}, "r.yml")
    backend = Kql(mapping_file=path)
    assert backend.convert(rule("process_creation")) == 'MyProcesses\n| where FolderPath endswith "x.exe"'
    assert backend.convert(rule("image_load")).startswith("MyImageLoads\n")
    with pytest.raises(Unsupported, match="has no field mapping for logsource"):
        backend.convert(rule("file_event"))


def test_types_come_from_the_schema_unless_given():
    m = parse_mapping({"table": "DeviceProcessEvents", "schema": "DeviceProcessEvents",
                       "fields": {"ProcessId": "ProcessId", "Image": "FolderPath",
                                  "Pid": {"column": "ProcessId", "type": "string"}}})
    assert (m.fields["ProcessId"].type, m.fields["Image"].type, m.fields["Pid"].type) == ("number", "string", "string")


def test_unmapped_modes():
    schema = parse_mapping({"table": "SecurityEvent", "schema": "SecurityEvent", "unmapped": "schema"})
    assert (schema.resolve("LogonType").column, schema.resolve("LogonType").type) == ("LogonType", "number")
    with pytest.raises(Unsupported, match="'AttributeLDAPDisplayName' has no column in table SecurityEvent"):
        schema.resolve("AttributeLDAPDisplayName")
    in_json = parse_mapping({"table": "WindowsEvent", "schema": "WindowsEvent", "unmapped": {"json": "EventData"}})
    assert (in_json.resolve("ServiceName").column, in_json.resolve("ServiceName").json_path) == ("EventData", ("ServiceName",))
    assert parse_mapping({"table": "T"}).resolve("a.b").column == "a.b"


def test_the_most_specific_logsource_wins():
    generic = parse_mapping({"table": "G"})
    windows = parse_mapping({"table": "W", "logsource": {"product": "windows"}})
    process = parse_mapping({"table": "P", "logsource": {"product": "windows", "category": "process_creation"}})
    mappings = [generic, windows, process]
    assert choose(mappings, {"product": "windows", "category": "process_creation"}) is process
    assert choose(mappings, {"product": "Windows", "service": "security"}) is windows
    assert choose(mappings, {"product": "linux", "category": "process_creation"}) is generic
    assert choose(mappings, {"product": "aws"}) is generic
    assert choose([windows], {"product": "aws"}) is None


@pytest.mark.parametrize("backend", ["kql", "athena", "duckdb", "pipesearch", "sql"])
def test_builtin_mappings_load(backend):
    assert builtin_mappings(backend)   # each one checked, columns against its schema


def test_builtin_mappings_are_listed_with_a_description():
    listed = list_builtin_mappings("kql")
    tables = {row["table"] for row in listed}
    assert {"DeviceProcessEvents", "DeviceRegistryEvents", "SigninLogs", "AuditLogs", "AzureActivity",
            "AADUserRiskEvents", "OfficeActivity", "SecurityEvent", "WindowsEvent", "GCPAuditLogs",
            "AWSCloudTrail", "SigmaEvents"} <= tables
    assert all(row["description"] and row["logsource"] and row["name"] for row in listed)
    assert listed[-1]["table"] == "SigmaEvents" and listed[-1]["logsource"] == "(any)"
    assert any(row["name"] == "-m security-lake" for row in list_builtin_mappings("athena"))

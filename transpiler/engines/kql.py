"""KQL, executed here: the KQL backend's queries run by duckdb-kql (PyPI `duckdb-kql[duckdb]`,
KQL translated to DuckDB SQL) on tables shaped as the KQL mappings read them.

No Kusto engine runs here. duckdb-kql is a translation, so its known departures from Kusto are
left out on purpose, each with its reason, never compared silently:
- rules: a query with a \\uXXXX escape in a string literal (duckdb-kql keeps the text, Kusto
  decodes it); a |re rule (duckdb-kql runs RE2, Kusto the Rust regex crate; the backend's own
  glob and number patterns mean the same in both and do run); |cidr (no ipv4/ipv6 range
  functions); time parts of text (todatetime is duckdb-kql's reading, not Kusto's); values with
  non-ASCII letters compared case-insensitively (Kusto's folding, README); correlations (no
  such operators). Anything else duckdb-kql cannot translate is refused with its message.
- events (Outcome.undecided, reasons counted in Outcome.stats["undecided"]): a string column
  holds one string, so not a field with several values; Kusto stores a missing string as ""
  (README), so where a rule tells "" from a missing field, events with either are undecided; a JSON null inside a JSON column (duckdb-kql
  reads it as a value, Kusto as null); a bool or datetime column given something else; a
  non-ASCII letter in a value a rule compares case-insensitively.

Tables: SigmaEvents (generic mapping) has one string column per field of the rule, named as the
field, holding the field's value as text. AWSCloudTrail has the columns of
templates/kql/mappings/aws_cloudtrail.yml with their types (string, bool, datetime; JSON
members as JSON text, as the Sentinel connector stores them). The other documented tables
(Defender XDR, SecurityEvent, WindowsEvent, the Azure tables, ...) have every column of their
schema, each event written as kql_rows.row makes it (transformed values through the inverse of
the mapping's expressions); an event the table cannot hold is undecided, with the reason.
"""
from __future__ import annotations

import dataclasses
import datetime
import re

from . import Engine, Outcome
from ..errors import Unsupported
from ..evaluate import compile_query, field_values, text, timestamp
from ..nodes import Match, Op, Wild, walk

ROW = "sigma_row_id"   # the column telling which event a row is
_ESCAPE_U = re.compile(r"\\u[0-9A-Fa-f]{4}")


class Kql(Engine):
    name = "kql"

    def unavailable(self):
        try:
            import duckdb_kql  # noqa: F401
        except ImportError as e:
            return f'kql engine needs duckdb-kql (pip install "duckdb-kql[duckdb]"): {e}'
        return None

    def run(self, rules, events, correlations=(), show=(), progress=None) -> Outcome:
        import duckdb_kql

        from ..backends.kql import Kql as KqlBackend

        out = Outcome()
        reasons = out.stats.setdefault("undecided", {})
        backend = KqlBackend()
        con = duckdb_kql.connect()
        cloudtrail = None    # {column: [(value, reason)] per event}, built once
        documented = {}      # id(mapping) -> [(row, reason)] per event (kql_rows: the table's model)
        loaded = {}          # table name -> the mapping whose rows it holds now
        try:
            for n, rule in enumerate(rules):
                try:
                    query = backend.convert(rule)
                except Unsupported as e:
                    out.refused[n] = e.message
                    continue
                gap = _rule_gap(rule, query)
                if gap:
                    out.refused[n] = f"kql engine: {gap}"
                    continue
                mapping = backend.mapping
                fields = _fields(rule.query)
                if mapping.schema and mapping.table != "AWSCloudTrail":   # a Sentinel / Defender XDR table
                    if loaded.get(mapping.table) is not mapping:
                        documented[id(mapping)] = _documented_rows(mapping, events)
                        _create_documented(con, mapping, documented[id(mapping)])
                        loaded[mapping.table] = mapping
                    undecided = _documented_undecided(mapping, documented[id(mapping)], events, rule.query)
                elif mapping.logsource:
                    if cloudtrail is None:
                        cloudtrail = _cloudtrail_cells(mapping, events)
                        _create(con, mapping.table, cloudtrail, events)
                    undecided = _undecided(mapping, fields, cloudtrail, events, rule.query)
                else:
                    try:
                        cells = _generic_cells(fields, events)
                    except Unsupported as e:
                        out.refused[n] = f"kql engine: {e.message}"
                        continue
                    _create(con, mapping.table, cells, events)
                    undecided = _undecided(mapping, fields, cells, events, rule.query)
                try:
                    result = duckdb_kql.query(con, without_mv_apply(query))
                    at = result.columns.index(ROW)
                    rows = [row[at] for row in result.fetchall()]
                except Exception as e:   # duckdb_kql.errors.KqlUnsupportedError and the like
                    name = type(e).__name__
                    if "Unsupported" in name or "NotImplemented" in name:
                        out.refused[n] = f"kql engine: duckdb-kql: {str(e).splitlines()[0]}"
                    else:
                        out.failed[n] = f"kql engine: {name}: {str(e).splitlines()[0]}"
                    continue
                out.matches[n] = sorted(r for r in rows if r not in undecided)
                if undecided:
                    out.undecided[n] = sorted(undecided)
                    for reason in undecided.values():
                        reasons[reason] = reasons.get(reason, 0) + 1
        finally:
            con.close()
        for c, _ in enumerate(correlations):
            out.refused[f"c{c}"] = "kql engine: duckdb-kql cannot run the correlation queries (join, scan)"
        return out


def _fields(query) -> list:
    return sorted({f for m in walk(query) if isinstance(m, Match)
                   for f in ((m.field, m.value) if m.op is Op.FIELDREF else (m.field,)) if f})


def _folded_text(m: Match) -> str:
    if m.cased or m.op not in (Op.EQ, Op.CONTAINS, Op.STARTSWITH, Op.ENDSWITH, Op.GLOB, Op.FIELDREF):
        return ""
    if m.op is Op.GLOB:
        return "".join(p for p in m.value if not isinstance(p, Wild))
    return m.value if isinstance(m.value, str) and m.op is not Op.FIELDREF else ""


def _non_ascii_letter(s: str) -> bool:
    return any(not c.isascii() and c.lower() != c.upper() for c in s)


def _rule_gap(rule, query: str) -> str | None:
    """Why duckdb-kql cannot stand in for Kusto on this rule, or None."""
    ops = {m.op for m in walk(rule.query) if isinstance(m, Match)}
    if _ESCAPE_U.search(query):
        return "duckdb-kql does not decode \\uXXXX escapes in string literals"
    if Op.RE in ops:
        return "duckdb-kql runs regexes on RE2, Kusto on the Rust regex crate"
    if Op.CIDR in ops:
        return "duckdb-kql has no ipv4/ipv6 range functions"
    if Op.TIMEPART in ops and "todatetime(" in query:
        return "duckdb-kql's todatetime() reads text times its own way, not Kusto's"
    if any(_non_ascii_letter(_folded_text(m)) for m in walk(rule.query) if isinstance(m, Match)):
        return "non-ASCII letters compared case-insensitively follow Kusto's folding (README)"
    return None


# --- tables -------------------------------------------------------------------------------------

def _string_cell(values):
    if len(values) > 1:
        return None, "a string column holds one value; the field has several"
    if not values:
        return "", None
    return text(values[0]), None


def _generic_cells(fields, events) -> dict:
    columns = {}
    for f in fields:
        if f.lower() in {c.lower() for c in columns}:
            raise Unsupported(f"the fields {fields} differ only in case: one DuckDB column")
        columns[f] = ("string", [_string_cell(field_values(e, f)) for e in events])
    return columns


def _cloudtrail_cells(mapping, events) -> dict:
    columns = {}
    for sigma, target in mapping.fields.items():
        if target.type == "json":
            columns[target.column] = ("string", [_json_cell(e.get(sigma)) for e in events])
        else:
            columns[target.column] = (target.type, [_typed_cell(target.type, field_values(e, sigma))
                                                    for e in events])
    for sigma, column in mapping.json.items():
        columns[column] = ("string", [_json_cell(e.get(sigma)) for e in events])
    return columns


_JSON_NULL = "duckdb-kql reads a JSON null as a value (Kusto: null)"


def _json_cell(value):
    if value is None:
        return "", None
    if _has_null(value):
        return text(value), _JSON_NULL
    return text(value), None


def _has_null(value) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False


def _typed_cell(kind, values):
    if kind == "string":
        return _string_cell(values)
    if not values:
        return None, None
    if len(values) > 1:
        return None, f"a {kind} column holds one value; the field has several"
    v = values[0]
    if kind == "bool":
        if isinstance(v, bool):
            return v, None
        return None, "a bool column cannot hold a value that is not a JSON boolean"
    if kind == "datetime":
        moment = timestamp(v)
        if moment is None:
            return None, "a datetime column cannot hold a value that is not an ISO-8601 time"
        if moment.tzinfo is not None:
            moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return moment, None
    return None, f"a {kind} column is not built here"


_DUCK_TYPES = {"string": "VARCHAR", "bool": "BOOLEAN", "datetime": "TIMESTAMP"}


def _create(con, table: str, columns: dict, events):
    names = list(columns)
    body = ", ".join(f'"{c}" {_DUCK_TYPES[columns[c][0]]}' for c in names)
    con.execute(f'CREATE OR REPLACE TABLE "{table}" ({ROW} BIGINT{", " + body if body else ""})')
    if events:   # one statement: parallel lists unnested side by side (executemany is row by row)
        values = {"r": list(range(len(events)))}
        values.update({f"c{i}": [cell[0] for cell in columns[c][1]] for i, c in enumerate(names)})
        lists = ", ".join(["unnest($r::BIGINT[])"] + [f"unnest($c{i}::{_DUCK_TYPES[columns[c][0]]}[])"
                                                     for i, c in enumerate(names)])
        con.execute(f'INSERT INTO "{table}" SELECT {lists}', values)


# --- documented tables (Sentinel, Defender XDR): rows as transpiler/engines/kql_rows.py builds them

_DOCUMENTED_TYPES = {"string": "VARCHAR", "long": "BIGINT", "int": "INTEGER", "real": "DOUBLE", "double": "DOUBLE",
                     "bool": "BOOLEAN", "boolean": "BOOLEAN", "datetime": "TIMESTAMP", "dynamic": "JSON",
                     "guid": "VARCHAR", "timespan": "VARCHAR", "decimal": "DOUBLE"}


def _documented_rows(mapping, events) -> list:
    """(row, reason) per event: the row the table holds for it, or the reason it holds none."""
    from . import kql_rows
    out = []
    for event in events:
        try:
            out.append((kql_rows.row(mapping, _flat(event)), None))
        except (kql_rows.NotRepresentable, Unsupported) as e:
            out.append((kql_rows.empty_row(mapping), f"the {mapping.table} table cannot hold it: {e}"))
    return out


def _flat(event, prefix="") -> dict:
    """A nested event's leaves under dotted names (the row model reads flat events)."""
    out = {}
    for key, value in event.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _create_documented(con, mapping, rows):
    import json
    columns = list(mapping.schema.items())
    body = ", ".join(f'"{c}" {_DOCUMENTED_TYPES[t]}' for c, t in columns)
    con.execute(f'CREATE OR REPLACE TABLE "{mapping.table}" ({ROW} BIGINT, {body})')
    if rows:
        con.executemany(f'INSERT INTO "{mapping.table}" VALUES ({", ".join("?" * (len(columns) + 1))})',
                        [[n] + [json.dumps(row[c]) if t == "dynamic" and row[c] is not None else row[c]
                                for c, t in columns] for n, (row, _) in enumerate(rows)])


def _documented_undecided(mapping, rows, events, query) -> dict:
    """{event no: reason}: events the table cannot hold, a missing or "" value where the rule
    tells them apart (both read ""), non-ASCII letters compared case-insensitively."""
    out = {n: reason for n, (_, reason) in enumerate(rows) if reason}
    empty = _tells_empty(query)
    folded = {m.field for m in walk(query) if isinstance(m, Match) and not m.cased and m.field}
    for n, event in enumerate(events):
        if n in out:
            continue
        for f in _fields(query):
            values = [text(v) for v in field_values(event, f)]
            if f in empty and values in ([], [""]):
                out[n] = _EMPTY
            elif f in folded and any(_non_ascii_letter(v) for v in values):
                out[n] = "non-ASCII letters compared case-insensitively follow Kusto's folding (README)"
    return out


_EMPTY = "Kusto stores a missing string as \"\", and the rule tells an empty string from a missing one"
_JSON_STRING = "a JSON column holds a string member as its text, which parse_json reads as JSON"


def _json_string(mapping, field, event) -> bool:
    """Whether the JSON column under field holds a string that reads as a JSON object or list:
    the evaluator finds no key in a string; the column's text, parsed, has keys."""
    prefix = next((p for p in (*mapping.json, *mapping.arrays) if field.startswith(p + ".")), None)
    value = event.get(prefix) if prefix else None
    return isinstance(value, str) and value.strip()[:1] in ("{", "[")


# duckdb-kql has no mv-apply (the backend's JSON blocks, templates/kql/match.j2 json_values).
_MV_APPLY = re.compile(r"\| mv-apply sigma_value = (?P<array>.*) on \(")


def without_mv_apply(query: str) -> str:
    """The query with each mv-apply block as a join: the rows so far, left-joined on their row id
    with the block's subquery run over all of them, its summarize grouped by the row id; a row
    whose values the subquery's mv-expands all drop gets count 0, the default of summarize
    without `by`, which mv-apply runs per row (Kusto's docs: mv-apply, summarize)."""
    lines = query.split("\n")
    lets, current, i = [], [], 0
    while i < len(lines):
        found = _MV_APPLY.fullmatch(lines[i])
        if not found:
            current.append(lines[i])
            i += 1
            continue
        end = lines.index("    )", i)
        sub = [line.strip() for line in lines[i + 1:end]]
        counts = re.findall(r"(sigma_match\d+) = countif", sub[-1])
        name = f"sigma_in{len(lets) + 1}"
        lets.append(f"let {name} = " + "\n".join(current) + ";")
        current = [f"{name}\n| join kind=leftouter ({name} | extend sigma_value = {found['array']} "
                   f"| mv-expand sigma_value | {' '.join(sub)} by {ROW}) on {ROW}\n"
                   f"| extend {', '.join(f'{c} = coalesce({c}, 0)' for c in counts)}"]
        i = end + 1
    return "\n".join(lets + current)


def _tells_empty(query) -> set:
    """The fields on which some predicate of the query holds for "" and not for a missing value
    (or the reverse): in a string column, both are ""."""
    out = set()
    for m in walk(query):
        if isinstance(m, Match) and m.field and m.op is not Op.FIELDREF:
            test = compile_query(dataclasses.replace(m, field="f"))
            if test({"f": ""}) != test({}):
                out.add(m.field)
        elif isinstance(m, Match) and m.op is Op.FIELDREF:
            out.update((m.field, m.value))   # "" = "" holds, missing = missing does not
    return out


def _undecided(mapping, fields, columns, events, query) -> dict:
    """{event no: reason} for the events the table cannot hold as the rule reads them."""
    folded = {m.field for m in walk(query) if isinstance(m, Match) and not m.cased and m.field}
    empty = _tells_empty(query)
    out = {}
    for f in fields:
        target = mapping.resolve(f)
        kind, cells = columns.get(target.column, (None, ()))
        for n, event in enumerate(events):
            if n in out:
                continue
            reason = cells[n][1] if n < len(cells) else None
            json = bool(target.json_path) or target.element is not None
            if json and reason == _JSON_NULL:   # a key's values are read by gettype(), null there too
                reason = None
            if reason is None and f in empty and kind == "string" and not json \
                    and [text(v) for v in field_values(event, f)] in ([], [""]):
                reason = _EMPTY
            if reason is None and json and _json_string(mapping, f, event):
                reason = _JSON_STRING
            if reason is None and f in folded and any(_non_ascii_letter(text(v)) for v in field_values(event, f)):
                reason = "non-ASCII letters compared case-insensitively follow Kusto's folding (README)"
            if reason:
                out[n] = reason
    return out

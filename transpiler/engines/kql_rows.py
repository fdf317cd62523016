"""The row a documented table holds for an event of a logsource: the model of each table the KQL
mappings assume (README "KQL tables per logsource"), written as the inverse of the mappings. The
kql engine builds its Sentinel and Defender XDR tables with it; the tests check it against the
rows tests/kql_mappings.yaml spells out.

A field a mapping sends to a column (or a member of a JSON column) is put there as it is (its
text, for a string column). A field the mapping computes with an expression is written into the
columns that expression reads, by the inverse of that expression (INVERSES: a Sysmon user
DOMAIN\\name becomes the account's domain and name, a registry path HKLM\\...\\value its
HKEY_LOCAL_MACHINE key and value name, ...). NotRepresentable says the table cannot hold the
event as the evaluator sees it: a list or an empty string in a string column (Kusto reads a
missing string as ""), two fields wanting one column with different values, a registry value
path without a value name.
"""
from __future__ import annotations

import json
import re

from ..evaluate import text
from ..mapping import Mapping, Target


class NotRepresentable(Exception):
    pass


def complete(mapping: Mapping, event: dict) -> dict:
    """The event with the ALWAYS fields it lacks, as a Sysmon event of the logsource has them
    (the row's first `rows` ActionType, a registry path under HKLM)."""
    event = dict(event)
    kind = next(iter(mapping.rows.get("ActionType", ())), "")
    defaults = {"EventType": {v: k for k, v in _EVENT_TYPES.items()}.get(kind),
                "Initiated": "false" if kind == "InboundConnectionAccepted" else "true",
                "TargetObject": "HKLM\\SOFTWARE\\SigmaTest\\Value"}
    for name in ALWAYS:
        t = mapping.fields.get(name)
        if name not in event and t is not None and t.expr and defaults[name] is not None:
            event[name] = defaults[name]
    return event


def as_recorded(mapping: Mapping, event: dict) -> dict:
    """The event as the evaluator should see it to judge the row: with the fields every row of
    the logsource has (a field on a `rows` column: Channel is System in the System log), every
    spelling of a column (with_aliases), and dotted keys as objects (nested)."""
    event = dict(event)
    for name, t in mapping.fields.items():
        if not t.expr and not t.json_path and t.column in mapping.rows:
            values = mapping.rows[t.column]
            if name not in event:
                event[name] = values[0]
            elif event[name] not in values:
                raise NotRepresentable(f"{name} {event[name]!r}: not an event of this logsource")
    return nested(with_aliases(mapping, event))


def with_aliases(mapping: Mapping, event: dict) -> dict:
    """The event with each field also under every other name the mapping gives the same column
    (resultType and ResultType, category and CategoryValue, ...): to the mapping they are one
    field, so an event has them all, as the row does."""
    same = {}
    for name, t in mapping.fields.items():
        same.setdefault((t.column, t.json_path, t.expr, t.hashes), []).append(name)
    out = dict(event)
    for field, value in event.items():
        if field in mapping.fields:
            t = mapping.fields[field]
            for alias in same[(t.column, t.json_path, t.expr, t.hashes)]:
                if out.setdefault(alias, value) != value:
                    raise NotRepresentable(f"{field} and {alias} are one column with two values")
    return out


def nested(event: dict) -> dict:
    """A flat event as the log record holds it: a dotted key is a path of objects (so that
    Status is the object whose additionalDetails is Status.additionalDetails)."""
    out: dict = {}
    for key in sorted(event, key=lambda k: k.count(".")):
        holder, parts = out, key.split(".")
        for part in parts[:-1]:
            holder = holder.setdefault(part, {})
            if not isinstance(holder, dict):
                raise NotRepresentable(f"{key}: {part} holds a value, not an object")
        if parts[-1] in holder:
            raise NotRepresentable(f"{key} is an object and a value")
        holder[parts[-1]] = event[key]
    return out


def empty_row(mapping: Mapping) -> dict:
    """A row of the logsource's kind with nothing in it: "" in string columns (Kusto reads a
    missing string as ""), null in the others, the first of the logsource's `rows` values."""
    out = {c: ("" if t == "string" else None) for c, t in mapping.schema.items()}
    for column, values in mapping.rows.items():
        out[column] = values[0]
    return out


def row(mapping: Mapping, event: dict) -> dict:
    """The table row for a flat event (each key a field as a rule names it)."""
    out = empty_row(mapping)
    for name in ALWAYS:   # every row of the table has a value for these computed fields
        if name not in event and name in mapping.fields and mapping.fields[name].expr:
            raise NotRepresentable(f"every event of this table has {name}")
    written: dict = {}
    # Fields that decide the kind of event (ActionType) first: TargetObject depends on it.
    arrays = [a.lower() for a in mapping.extra.get("json_arrays", ())]
    for field, value in sorted(event.items(), key=lambda kv: kv[0] not in ("EventType", "Initiated")):
        if field.lower() in arrays and not isinstance(value, list):
            raise NotRepresentable(f"{field} is a JSON array in this table")
        t = mapping.resolve(field)
        if t.hashes:
            _hashes(out, written, t, value)
        elif t.expr:
            inverse = INVERSES.get(t.name or t.sigma)
            if inverse is None:
                raise NotRepresentable(f"no inverse for the computed field {t.name or t.sigma}")
            for column, v in inverse(t, value, out).items():
                _put(out, written, mapping, column, (), v, derived=True)
        else:
            _put(out, written, mapping, t.column, t.json_path, value)
    for column, kind in mapping.schema.items():   # JSON members of a string column: its JSON text
        if kind == "string" and isinstance(out[column], dict):
            out[column] = json.dumps(out[column])
    return out


def _put(out, written, mapping, column, path, value, derived=False):
    key = (column, path)
    if key in written and written[key] != value:
        raise NotRepresentable(f"{column} {'.'.join(path)} would hold two values")
    written[key] = value
    kind = mapping.schema[column]
    if path and not derived and (value == "" or isinstance(value, list)):
        raise NotRepresentable(f"{column}.{'.'.join(path)} holds one value, read as text: not {value!r}")
    if path:
        holder = out[column] if isinstance(out[column], dict) else {}
        out[column] = holder
        for k in path[:-1]:
            holder = holder.setdefault(k, {})
            if not isinstance(holder, dict):
                raise NotRepresentable(f"{column}: {k} is not an object")
        holder[path[-1]] = value
    elif kind == "string":
        if isinstance(value, (list, dict)) or value is None or (text(value) == "" and not derived):
            raise NotRepresentable(f"a string column ({column}) cannot hold {value!r} as the event has it")
        out[column] = text(value)
    elif kind in ("long", "int"):
        if isinstance(value, bool) or not re.fullmatch(r"-?[0-9]+", text(value)):
            raise NotRepresentable(f"{column} holds whole numbers, not {value!r}")
        out[column] = int(text(value))
    elif kind == "bool":
        if text(value).lower() not in ("true", "false"):
            raise NotRepresentable(f"{column} holds true or false, not {value!r}")
        out[column] = text(value).lower() == "true"
    elif kind == "dynamic":
        out[column] = value
    else:
        raise NotRepresentable(f"no model for {kind} column {column}")


def _hashes(out, written, t: Target, value):
    columns = {algo.upper(): column for algo, column in t.hashes}
    for item in str(value).split(","):
        algo, _, digits = item.partition("=")
        if algo.upper() in columns and re.fullmatch(r"[0-9A-Fa-f]+", digits):
            out[columns[algo.upper()]] = digits.lower()
        elif algo.upper() != "IMPHASH" or not digits:
            raise NotRepresentable(f"Hashes item {item!r} is not ALGO=hex")


# --- the inverses of the mappings' expressions ---------------------------------------------------

def _user(t, value, out):
    prefix = "InitiatingProcess" if "InitiatingProcessAccountDomain" in t.expr else ""
    value = text(value)
    domain, sep, name = value.partition("\\")
    if not sep:
        domain, name = "", value
    elif not domain:
        raise NotRepresentable("a user with an empty domain")
    return {f"{prefix}AccountDomain": domain, f"{prefix}AccountName": name}


_HIVES = [("HKLM\\System\\CurrentControlSet", "HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001"),
          ("HKLM", "HKEY_LOCAL_MACHINE"), ("HKU", "HKEY_USERS"), ("HKCR", "HKEY_CLASSES_ROOT")]


def _registry_path(t, value, out):
    """Sysmon's spelling back to Defender's: the hive (exactly as Sysmon writes it), then the key
    and, for a value, its name after the last backslash."""
    path = text(value)
    for short, long in _HIVES:
        if path == short or path.startswith(short + "\\"):
            if short == "HKU" and path.startswith("HKU\\S-1-"):   # a user's own hive, by its SID
                long = "HKEY_CURRENT_USER"
            path = long + path[len(short):]
            break
        if path.lower() == short.lower() or path.lower().startswith(short.lower() + "\\"):
            raise NotRepresentable(f"{path[:len(short)]} is spelled {short} by Sysmon")
    else:
        if path.upper().startswith("HKEY_"):
            raise NotRepresentable(f"{path.split(chr(92))[0]} is Defender's spelling of a hive")
    if out.get("ActionType") in ("RegistryValueSet", "RegistryValueDeleted"):
        key, sep, name = path.rpartition("\\")
        if not sep:
            raise NotRepresentable("a registry value path without a key")
        return {"RegistryKey": key, "RegistryValueName": name}
    return {"RegistryKey": path}


def _registry_details(t, value, out):
    found = re.fullmatch(r"DWORD \(0x([0-9a-fA-F]{8})\)", text(value))
    if found:
        return {"RegistryValueType": "Dword", "RegistryValueData": str(int(found.group(1), 16))}
    if text(value) == "Binary Data":
        return {"RegistryValueType": "Binary", "RegistryValueData": "00"}
    if text(value).startswith(("DWORD (", "QWORD (")) or text(value) == "":
        raise NotRepresentable(f"Details {value!r}")
    return {"RegistryValueType": "String", "RegistryValueData": text(value)}


_EVENT_TYPES = {"SetValue": "RegistryValueSet", "CreateKey": "RegistryKeyCreated", "DeleteKey": "RegistryKeyDeleted",
                "DeleteValue": "RegistryValueDeleted", "RenameKey": "RegistryKeyRenamed"}


def _registry_event_type(t, value, out):
    if text(value) not in _EVENT_TYPES:
        raise NotRepresentable(f"no ActionType for the Sysmon EventType {value!r}")
    out["ActionType"] = _EVENT_TYPES[text(value)]
    return {"ActionType": out["ActionType"]}


def _initiated(t, value, out):
    if text(value) not in ("true", "false"):
        raise NotRepresentable(f"Initiated is true or false, not {value!r}")
    out["ActionType"] = "ConnectionSuccess" if text(value) == "true" else "InboundConnectionAccepted"
    return {"ActionType": out["ActionType"]}


def _pipe(t, value, out):
    name = text(value)
    if not name.startswith("\\") or name.lower().startswith("\\device\\namedpipe\\"):
        raise NotRepresentable(f"pipe name {name!r}")
    return {"AdditionalFields": json.dumps({"PipeName": "\\Device\\NamedPipe" + name}, separators=(",", ":"))}


def _logon_id(t, value, out):
    found = re.fullmatch(r"0x([0-9a-f]+)", text(value))
    if not found or found.group(1) != format(int(found.group(1), 16), "x"):
        raise NotRepresentable(f"LogonId {value!r} is not Sysmon's 0x-hex")
    return {"LogonId": int(found.group(1), 16)}


def _json_text(column):
    def inverse(t, value, out):
        return {column: value}
    return inverse


# Computed fields every row has a value for (they are made of the row's ActionType and key):
# Sysmon always writes them too, so an event without one is not one of these tables' events.
ALWAYS = ("Initiated", "EventType", "TargetObject")

INVERSES = {
    "User": _user, "ParentUser": _user,
    "TargetObject": _registry_path, "Details": _registry_details, "EventType": _registry_event_type,
    "Initiated": _initiated, "PipeName": _pipe, "LogonIdHex": _logon_id,
    "StatusText": _json_text("Status"), "InitiatedByText": _json_text("InitiatedBy"),
    "TargetResourcesText": _json_text("TargetResources"), "OperationPropertiesText": _json_text("OperationProperties"),
}

"""Events into DuckDB, in the two tables the duckdb backend's queries read.

- load_cloudtrail(): CloudTrail records in the table AWS documents for Athena (the mapping
  templates/sql/mappings/cloudtrail.yml): lower-case columns, userIdentity, tlsDetails and
  addendum as structs, resources as a list of structs, requestParameters and the other
  JSON-valued members as JSON text. The same query text runs on Athena and here.
- load_events(): any JSON events (the generic mapping): `fields` maps every field name,
  dotted paths included, to that field's values as text, resolved exactly as the evaluator
  resolves fields (literal dotted keys, nested objects, lists entered, nulls dropped);
  `strings` holds every string value in the event (for keywords); `event` the JSON itself.

Each row carries `row_id`: the event's position in the list given, to map rows back.
Values are stored as the evaluator's text forms (evaluate.text): strings as they are,
true/false, numbers as JSON writes them, objects as compact JSON.
"""
from __future__ import annotations

import json

import duckdb

from .backends.sql import identifier
from .evaluate import text
from .events import Event, read_events

TEXT, JSON, MAP = "VARCHAR", "JSON", "MAP"

# The Athena CloudTrail DDL (partition projection table, research/athena.md section 1.1):
# (column, the CloudTrail record's key, type); a tuple type is a struct of those members.
_ISSUER = (("type", "type", TEXT), ("principalid", "principalId", TEXT), ("arn", "arn", TEXT),
           ("accountid", "accountId", TEXT), ("username", "userName", TEXT))
_USER_IDENTITY = (
    ("type", "type", TEXT), ("principalid", "principalId", TEXT), ("arn", "arn", TEXT),
    ("accountid", "accountId", TEXT), ("invokedby", "invokedBy", TEXT),
    ("accesskeyid", "accessKeyId", TEXT), ("username", "userName", TEXT),
    ("onbehalfof", "onBehalfOf", (("userid", "userId", TEXT), ("identitystorearn", "identityStoreArn", TEXT))),
    ("sessioncontext", "sessionContext", (
        ("attributes", "attributes", (("mfaauthenticated", "mfaAuthenticated", TEXT),
                                      ("creationdate", "creationDate", TEXT))),
        ("sessionissuer", "sessionIssuer", _ISSUER),
        ("ec2roledelivery", "ec2RoleDelivery", TEXT),
        ("webidfederationdata", "webIdFederationData", (("federatedprovider", "federatedProvider", TEXT),
                                                        ("attributes", "attributes", MAP))),
    )),
)
CLOUDTRAIL = (
    ("eventversion", "eventVersion", TEXT),
    ("useridentity", "userIdentity", _USER_IDENTITY),
    ("eventtime", "eventTime", TEXT),
    ("eventsource", "eventSource", TEXT),
    ("eventname", "eventName", TEXT),
    ("awsregion", "awsRegion", TEXT),
    ("sourceipaddress", "sourceIPAddress", TEXT),
    ("useragent", "userAgent", TEXT),
    ("errorcode", "errorCode", TEXT),
    ("errormessage", "errorMessage", TEXT),
    ("requestparameters", "requestParameters", JSON),
    ("responseelements", "responseElements", JSON),
    ("additionaleventdata", "additionalEventData", JSON),
    ("requestid", "requestID", TEXT),
    ("eventid", "eventID", TEXT),
    ("readonly", "readOnly", TEXT),
    ("resources", "resources", [(("arn", "ARN", TEXT), ("accountid", "accountId", TEXT), ("type", "type", TEXT))]),
    ("eventtype", "eventType", TEXT),
    ("apiversion", "apiVersion", TEXT),
    ("recipientaccountid", "recipientAccountId", TEXT),
    ("serviceeventdetails", "serviceEventDetails", JSON),
    ("sharedeventid", "sharedEventID", TEXT),
    ("vpcendpointid", "vpcEndpointId", TEXT),
    ("vpcendpointaccountid", "vpcEndpointAccountId", TEXT),
    ("eventcategory", "eventCategory", TEXT),
    ("addendum", "addendum", (("reason", "reason", TEXT), ("updatedfields", "updatedFields", TEXT),
                              ("originalrequestid", "originalRequestId", TEXT),
                              ("originaleventid", "originalEventId", TEXT))),
    ("sessioncredentialfromconsole", "sessionCredentialFromConsole", TEXT),
    ("edgedevicedetails", "edgeDeviceDetails", JSON),
    ("tlsdetails", "tlsDetails", (("tlsversion", "tlsVersion", TEXT), ("ciphersuite", "cipherSuite", TEXT),
                                  ("clientprovidedhostheader", "clientProvidedHostHeader", TEXT))),
)
GENERIC = (("event", None, JSON), ("fields", None, "MAP(VARCHAR, VARCHAR[])"), ("strings", None, "VARCHAR[]"))


def load_cloudtrail(con, events, table: str = "cloudtrail_logs") -> int:
    """(Re)create `table` from CloudTrail records (dicts or events.Event); the row count."""
    return _load(con, table, CLOUDTRAIL, [_record(CLOUDTRAIL, e) for e in _dicts(events)])


def load_events(con, events, table: str = "events") -> int:
    """(Re)create `table` of the generic shape from any JSON events; the row count."""
    rows = [{"event": json.dumps(e, ensure_ascii=False), "fields": field_values(e), "strings": strings(e)}
            for e in _dicts(events)]
    return _load(con, table, GENERIC, rows)


def read_cloudtrail(con, paths, table: str = "cloudtrail_logs"):
    """Read CloudTrail files and folders (events.read_events) into `table`: (events, errors);
    row_id n is events[n]."""
    events, errors = read_events(paths)
    load_cloudtrail(con, events, table)
    return events, errors


def connect() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(":memory:")


# --- rows -----------------------------------------------------------------------------------

def field_values(event: dict) -> dict:
    """Every field name -> its values' text forms, as evaluate.field_values resolves names:
    a value is reachable under the dot-joined keys leading to it, lists are entered at any
    depth, nulls are no values, and an object is a value too (its compact JSON)."""
    out: dict = {}

    def walk(obj, path):
        if isinstance(obj, list):
            for item in obj:
                walk(item, path)
        elif obj is not None:
            if path is not None:
                out.setdefault(path, []).append(text(obj))
            if isinstance(obj, dict):
                for key, value in obj.items():
                    walk(value, key if path is None else f"{path}.{key}")

    walk(event, None)
    return out


def strings(obj, out=None) -> list:
    """Every string value anywhere in obj (keys excluded), as evaluate.strings."""
    out = [] if out is None else out
    if isinstance(obj, str):
        out.append(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            strings(v, out)
    elif isinstance(obj, list):
        for v in obj:
            strings(v, out)
    return out


def _record(spec, obj) -> dict | None:
    """A record shaped by spec: text for scalars, JSON text for JSON members, structs for
    objects, a list of structs for resources; anything of the wrong shape is NULL."""
    if not isinstance(obj, dict):
        return None
    row = {}
    for column, key, kind in spec:
        value = obj.get(key)
        if isinstance(kind, tuple):
            row[column] = _record(kind, value)
        elif isinstance(kind, list):
            items = [value] if isinstance(value, dict) else value if isinstance(value, list) else None
            row[column] = None if items is None else [_record(kind[0], i) for i in items if isinstance(i, dict)]
        elif kind == MAP:
            row[column] = ({k: text(v) for k, v in value.items() if v is not None}
                           if isinstance(value, dict) else None)
        else:
            row[column] = None if value is None else text(value)
    return row


def _dicts(events):
    for e in events:
        yield e.data if isinstance(e, Event) else e


def _duck_type(kind) -> str:
    if isinstance(kind, tuple):
        return "STRUCT(" + ", ".join(f"{identifier(c)} {_duck_type(k)}" for c, _, k in kind) + ")"
    if isinstance(kind, list):
        return _duck_type(kind[0]) + "[]"
    if kind == MAP:
        return "MAP(VARCHAR, VARCHAR)"
    if kind == JSON:
        return "VARCHAR"   # JSON text in a string column, as in Athena
    return kind


def _load(con, table, spec, rows) -> int:
    columns = ", ".join(f"{identifier(c)} {_duck_type(k)}" for c, _, k in spec)
    name = identifier(table)
    con.execute(f"CREATE OR REPLACE TABLE {name} (row_id BIGINT, {columns})")
    if rows:
        structure = json.dumps({"row_id": "BIGINT", **{c: _duck_type(k) for c, _, k in spec}})
        payload = [json.dumps({"row_id": n, **row}, ensure_ascii=False) for n, row in enumerate(rows)]
        con.execute(f"INSERT INTO {name} SELECT unnest(from_json(j, $structure)) "
                    f"FROM (SELECT unnest($rows::VARCHAR[]) AS j)", {"structure": structure, "rows": payload})
    return len(rows)

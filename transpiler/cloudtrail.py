"""AWS CloudTrail: the one description of its records as a table, and the policy for its logs.

SCHEMA is the table AWS documents for Athena ("Create the table for CloudTrail logs in Athena
using partition projection",
https://docs.aws.amazon.com/athena/latest/ug/create-cloudtrail-table-partition-projection.html):
(column, the record's key, type) per column, where a tuple type is a struct of those members
and a one-item list a list of such structs. The SQL mapping (templates/sql/mappings/
cloudtrail.yml) is tested against it, the DuckDB engine builds its table from it
(duckdb_events), and record() shapes one event as that table holds it, which is how `hunt`
shows an event whichever engine selected it.

Log policy: CloudTrail-Digest files (hashes of the log files) hold no events; the event time is
eventTime; records are delivered at least once, so a repeated eventID is the same record.
"""
from __future__ import annotations

import re
from functools import lru_cache

import re2

from .evaluate import text

TEXT, JSON, MAP = "VARCHAR", "JSON", "MAP"

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
SCHEMA = (
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
TABLE = "cloudtrail_logs"
LOGSOURCE = {"product": "aws", "service": "cloudtrail"}
TIME_FIELD = "eventTime"
DIGESTS = "CloudTrail-Digest"      # AWSLogs/<account>/CloudTrail-Digest/...: hashes, not events


def record(event, spec=SCHEMA) -> dict | None:
    """An event shaped as the table holds it: text for scalars (evaluate.text), JSON text for
    JSON members, dicts for structs, a list of dicts for resources (an object is a list of
    one); anything of the wrong shape is None."""
    if not isinstance(event, dict):
        return None
    return {column: shape(event.get(key), kind) for column, key, kind in spec}


def shape(value, kind):
    """A record's value as the table holds it in a column of `kind` (record())."""
    if isinstance(kind, tuple):
        return record(value, kind)
    if isinstance(kind, list):
        items = [value] if isinstance(value, dict) else value if isinstance(value, list) else None
        return None if items is None else [record(i, kind[0]) for i in items if isinstance(i, dict)]
    if kind == MAP:
        return {k: text(v) for k, v in value.items() if v is not None} if isinstance(value, dict) else None
    return None if value is None else text(value)


def columns(names) -> tuple:
    """The part of SCHEMA with these top-level columns."""
    return tuple(c for c in SCHEMA if c[0] in names)


def values(event, paths) -> dict:
    """path -> value, for column paths of the table (`eventname`, `useridentity.arn`), as the
    table holds them for this event (record()), shaping only what the paths reach."""
    return {path: _value(event, _steps(path)) for path in paths}


def reader(paths):
    """event -> tuple(values(event, paths).values()), for many events: the paths looked up once."""
    steps = [_steps(p) for p in dict.fromkeys(paths)]

    def read(event):
        return tuple([_value(event, s) for s in steps])
    return read


@lru_cache(maxsize=None)
def _steps(path: str) -> tuple:
    """The record's keys down a column path, and the spec or type where it ends (None: the
    table has no such column)."""
    spec, keys = SCHEMA, []
    for part in path.split("."):
        found = next((c for c in spec if c[0] == part), None) if isinstance(spec, tuple) else None
        if found is None:
            return (), None
        keys.append(found[1])
        spec = found[2]
    return tuple(keys), spec


def _value(event, steps):
    keys, kind = steps
    if kind is None:
        return None
    value = event
    for key in keys:                 # struct members: what is not an object has no members
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    if value is None:
        return None
    return text(value) if kind.__class__ is str and kind != MAP else shape(value, kind)


def fits(event, spec=SCHEMA) -> bool:
    """Whether the table holds the record as the evaluator reads it, for every field the
    table has: no key with a dot (the evaluator reads {"a.b": 1} as the field a.b too), no list
    where the table has a struct or text, no object where it has text. JSON and map columns
    are the queries' own business (their text is kept whole)."""
    if any("." in key for key in event):
        return False
    for _, key, kind in spec:
        value = event.get(key)
        if value is None or kind in (JSON, MAP):
            continue
        if isinstance(kind, tuple):
            if isinstance(value, list) or (isinstance(value, dict) and not fits(value, kind)):
                return False
        elif isinstance(kind, list):
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, list) or (isinstance(item, dict) and not fits(item, kind[0])):
                    return False
        elif isinstance(value, (list, dict)):
            return False
    return True


def _keys(spec, wanted) -> set:
    """The record's keys, at any struct depth, whose type `wanted` accepts."""
    out = set()
    for _, key, kind in spec:
        if isinstance(kind, tuple):
            out |= _keys(kind, wanted)
        elif isinstance(kind, list):
            out |= _keys(kind[0], wanted)
        if wanted(kind):
            out.add(key)
    return out


def _key_then(keys, what: bytes) -> bytes:
    names = b"|".join(sorted(re.escape(k.encode()) for k in keys))
    return b'"(?:' + names + b')"[ \t\n\r]*:[ \t\n\r]*' + what


# What a file's bytes hold if a record of it may not fit() (a superset: such files are parsed
# and their records checked): a key with a dot; a text member's key then [ or {; a struct's
# key then [; a list inside "resources" before its first ].
SUSPECT = re2.compile(b"|".join([
    rb'\.(?:[^"\\]|\\.)*"[ \t\n\r]*:',
    _key_then(_keys(SCHEMA, lambda kind: kind == TEXT), rb"[\[{]"),
    _key_then(_keys(SCHEMA, lambda kind: isinstance(kind, tuple)), rb"\["),
    rb'"resources"[ \t\n\r]*:[ \t\n\r]*\[(?:[^\]"]|"(?:[^"\\]|\\.)*")*\[',
]))


def suspect(data: bytes) -> bool:
    """Whether a file's JSON may hold a record that does not fit() the table."""
    return SUSPECT.search(data) is not None


def sigma_fields(spec=SCHEMA, key_prefix="", column_prefix="") -> dict:
    """Sigma field name -> (dotted column, type) for every member a query can reach:
    scalars and JSON members at any struct depth, and list columns (their items' fields
    are listed by sigma_fields of the item spec)."""
    out = {}
    for column, key, kind in spec:
        name, path = key_prefix + key, column_prefix + column
        if isinstance(kind, tuple):
            out.update(sigma_fields(kind, name + ".", path + "."))
        else:
            out[name] = (path, kind)
    return out


def is_cloudtrail(rule) -> bool:
    source = {str(k).lower(): str(v).lower() for k, v in (rule.logsource or {}).items()}
    return all(source.get(k) == v for k, v in LOGSOURCE.items())


def log_files(files) -> tuple[list, int]:
    """The event files (paths) but CloudTrail's digest files, and how many those were."""
    kept = [f for f in files if DIGESTS not in f.parts[:-1]]
    return kept, len(files) - len(kept)

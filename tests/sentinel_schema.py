"""The checks Azure-Sentinel's CI runs on an analytics rule, in Python, for the tests.

A port, in our own words, of .script/tests/detectionTemplateSchemaValidation in the
Azure/Azure-Sentinel repository (MIT licence): the ScheduledTemplateInternalModel and its base's
attributes (required keys, lengths, enums, time spans and their ranges, the period/frequency rules,
entity mappings, the version pattern, the technique -> tactic check against the table in
transpiler/data/sentinel_attack.json) and the valid connector ids the AWS rules need.
`problems(rule)` takes a parsed YAML template; `arm_problems(properties)` the properties of an ARM
alertRules resource, checked the same way under their ARM names.
"""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

from transpiler.sentinel import table

SEVERITIES = {"Informational", "Low", "Medium", "High"}
OPERATORS = {"gt": "GreaterThan", "lt": "LessThan", "eq": "Equal", "ne": "NotEqual"}
KINDS = {"Scheduled", "NRT"}
# The subset of ValidConnectorIds.json the converted rules can name.
CONNECTORS = {"AWS", "AWSS3", "AzureActivity", "AzureActiveDirectory", "Office365"}
# EntityMappingIdentifiers.cs: entity type -> (identifiers, the combinations one of which is required)
ENTITIES = {
    "Account": ({"Name", "FullName", "NTDomain", "DnsDomain", "UPNSuffix", "Sid", "AadTenantId", "AadUserId",
                 "PUID", "IsDomainJoined", "DisplayName", "ObjectGuid", "CloudAppAccountId"},
                [{"FullName"}, {"Sid"}, {"Name"}, {"AadUserId"}, {"PUID"}, {"ObjectGuid"}]),
    "IP": ({"Address"}, [{"Address"}]),
    "Host": ({"DnsDomain", "NTDomain", "HostName", "FullName", "NetBiosName", "AzureID", "OMSAgentID", "OSFamily",
              "OSVersion", "IsDomainJoined"}, [{"FullName"}, {"HostName"}, {"NetBiosName"}, {"AzureID"}, {"OMSAgentID"}]),
    "URL": ({"Url"}, [{"Url"}]),
    "CloudApplication": ({"AppId", "Name", "InstanceName"}, [{"AppId"}, {"Name"}]),
    "AzureResource": ({"ResourceId"}, [{"ResourceId"}]),
}
COLUMN = re.compile(r"^[a-zA-Z_]+\w*$")
VERSION = re.compile(r"^(\d+\.)(\d+\.)(\d+)$")
SPAN = re.compile(r"^(\d+)([mhd])$")
ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$")
OLD_ENTITY_COLUMNS = ("AccountCustomEntity", "HostCustomEntity", "IPCustomEntity", "URLCustomEntity",
                     "ProcessCustomEntity", "FileHashCustomEntity")


def timespan(value) -> timedelta | None:
    """ScheduledTemplateTimeSpanConverter: <n>m|h|d (a .NET TimeSpan text is accepted too, not
    produced by us); ARM uses ISO 8601 (PT1H, P2D)."""
    text = str(value)
    m = SPAN.fullmatch(text)
    if m:
        return timedelta(minutes=int(m.group(1)) * {"m": 1, "h": 60, "d": 1440}[m.group(2)])
    m = ISO.fullmatch(text)
    if m and any(m.groups()):
        d, h, mi = (int(x or 0) for x in m.groups())
        return timedelta(days=d, hours=h, minutes=mi)
    return None


def tactic_problems(tactics, techniques, mode: str) -> list[str]:
    """NoTechniquesWithoutMatchingTactics, for a sub-technique its parent. `mode` "any": one
    of the technique's tactics must be listed (one version of the check); "all": all of them."""
    names, homes = table()
    out = [f"unknown tactic {t!r}" for t in tactics or () if t not in names]
    for technique in techniques or ():
        found = homes.get(str(technique).split(".")[0], [])
        listed = [h in (tactics or ()) for h in found]
        if not found or not (any(listed) if mode == "any" else all(listed)):
            out.append(f"No valid tactic corresponding to the technique {technique} was provided in the tactics field.")
    return out


def _common(rule: dict, name_key: str, frequency, period, operator, problems: list):
    def need(key):
        if key not in rule:
            problems.append(f"required key {key!r} is missing")
        return rule.get(key)
    need("query")
    query = rule.get("query")
    if not isinstance(query, str) or not 1 <= len(query) <= 10_000:
        problems.append("query must be 1 to 10000 characters")
    name = need(name_key)
    if not isinstance(name, str) or len(name) > 256:
        problems.append(f"{name_key} must be a string of at most 256 characters")
    description = need("description")
    if not isinstance(description, str) or len(description) > 5000:
        problems.append("description must be a string of at most 5000 characters")
    if need("severity") not in SEVERITIES:
        problems.append(f"severity {rule.get('severity')!r} is not one of {sorted(SEVERITIES)}")
    if operator not in OPERATORS.values():
        problems.append(f"trigger operator {operator!r} is not known")
    threshold = need("triggerThreshold")
    if not isinstance(threshold, int) or isinstance(threshold, bool) or not 0 <= threshold <= 10_000:
        problems.append("triggerThreshold must be a whole number from 0 to 10000")
    low, high = timedelta(minutes=5), timedelta(days=14)
    if frequency is None or period is None:
        problems.append("queryFrequency and queryPeriod must be time spans")
    else:
        if not (low <= frequency <= high and low <= period <= high):
            problems.append("queryFrequency and queryPeriod must be between 5 minutes and 14 days")
        if period < frequency:
            problems.append("queryPeriod must be at least queryFrequency")
        if period >= timedelta(days=2) and frequency < timedelta(hours=1):
            problems.append("when queryPeriod is 2 days or more, queryFrequency must be at least 1 hour")
    mappings = rule.get("entityMappings")
    if mappings is not None:
        problems += _entity_problems(mappings)
    for old in OLD_ENTITY_COLUMNS:
        if isinstance(query, str) and old in query and not any(
                m.get("columnName") == old for e in mappings or () for m in e.get("fieldMappings") or ()):
            problems.append(f"old entity column {old} without a matching entity mapping")


def _entity_problems(mappings) -> list[str]:
    out = []
    if not 1 <= len(mappings) <= 5:
        out.append("entityMappings must hold 1 to 5 mappings")
    for e in mappings:
        kind = e.get("entityType")
        if kind not in ENTITIES:
            out.append(f"entity type {kind!r} is not known here")
            continue
        identifiers, required = ENTITIES[kind]
        fields = e.get("fieldMappings") or []
        if not 1 <= len(fields) <= 3:
            out.append(f"{kind}: fieldMappings must hold 1 to 3 mappings")
        used = set()
        for m in fields:
            ident, column = m.get("identifier"), m.get("columnName")
            if ident not in identifiers:
                out.append(f"{kind}: invalid identifier {ident!r}")
            if ident in used:
                out.append(f"{kind}: identifier {ident!r} twice")
            used.add(ident)
            if not isinstance(column, str) or len(column) > 500 or not COLUMN.fullmatch(column):
                out.append(f"{kind}: invalid columnName {column!r}")
        if not any(combo <= used for combo in required):
            out.append(f"{kind}: none of the required identifiers")
    return out


def problems(rule: dict, mode: str = "all") -> list[str]:
    """Every reason Azure-Sentinel's template validation would refuse this YAML rule."""
    out = []
    if not isinstance(rule, dict):
        return ["the document is not a map"]
    try:
        uuid.UUID(str(rule.get("id")))
    except ValueError:
        out.append(f"id {rule.get('id')!r} is not a GUID")
    if rule.get("kind") not in KINDS:
        out.append(f"kind {rule.get('kind')!r} is not Scheduled or NRT")
    connectors = rule.get("requiredDataConnectors")
    if not isinstance(connectors, list):
        out.append("requiredDataConnectors must be a list")
    else:
        for c in connectors:
            if not isinstance(c.get("dataTypes"), list):
                out.append("a required data connector has no dataTypes")
            if c.get("connectorId") not in CONNECTORS:
                out.append(f"connector id {c.get('connectorId')!r} is not a valid connector id")
    version = rule.get("version")
    if version is not None and (not isinstance(version, str) or len(version) > 20 or not VERSION.fullmatch(version)):
        out.append(f"version {version!r} must be X.Y.Z")
    operator = OPERATORS.get(rule.get("triggerOperator"), rule.get("triggerOperator"))
    _common(rule, "name", timespan(rule.get("queryFrequency")), timespan(rule.get("queryPeriod")), operator, out)
    out += tactic_problems(rule.get("tactics"), rule.get("relevantTechniques"), mode)
    return out


def arm_problems(p: dict, mode: str = "all") -> list[str]:
    """The same checks on the properties of an ARM alertRules resource (ISO 8601 durations,
    displayName, parent techniques; suppression 5 minutes to 24 hours)."""
    out = []
    for key in ("enabled", "suppressionEnabled", "suppressionDuration"):
        if key not in p:
            out.append(f"required key {key!r} is missing")
    suppression = timespan(p.get("suppressionDuration"))
    if suppression is None or not timedelta(minutes=5) <= suppression <= timedelta(hours=24):
        out.append("suppressionDuration must be between 5 minutes and 24 hours")
    if any(not re.fullmatch(r"T\d{4}", t) for t in p.get("techniques") or ()):
        out.append("techniques must be parent ids (T1234)")
    _common(p, "displayName", timespan(p.get("queryFrequency")), timespan(p.get("queryPeriod")),
            p.get("triggerOperator"), out)
    out += tactic_problems(p.get("tactics"), p.get("techniques"), mode)
    out += tactic_problems(p.get("tactics"), p.get("subTechniques"), mode)
    return out

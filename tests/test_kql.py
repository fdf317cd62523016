"""The KQL backend: conversions that matter, escaping, and every generated query checked by
Microsoft's Kusto parser and analyzer (npm @kusto/language-service-next, run by Node).

The Node side lives in tests/kusto/ (install: `npm ci --prefix tests/kusto`); the checks
that need it are skipped, with the reason, where node or the package is missing.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest
from caselib import UNSUPPORTED, load_cases, load_expected

from transpiler.backends.kql import RESERVED, Kql, identifier, regex, string
from transpiler.errors import TranspileError, Unsupported
from transpiler.mapping import read_schema
from transpiler.nodes import Match, Op, walk
from transpiler.resources import resource_dir
from transpiler.rule import load_paths, rule_from_dict

KUSTO = Path(__file__).parent / "kusto"
PACKAGE = KUSTO / "node_modules" / "@kusto" / "language-service-next"
TYPES = {"string": "string", "json": "string", "bool": "bool", "number": "real", "datetime": "datetime",
         "array": "string"}


def _node_or_skip():
    """Node, or a skip with the reason; in CI (CI=true) a missing tool fails instead."""
    give_up = pytest.fail if os.environ.get("CI") == "true" else pytest.skip
    node = shutil.which("node")
    if node is None:
        give_up("node is not installed: the Kusto analyzer checks need Node 20")
    if not PACKAGE.is_dir():
        give_up("@kusto/language-service-next is missing: run `npm ci --prefix tests/kusto`")
    return node


def kusto(request: dict) -> dict:
    """One run of tests/kusto/validate.js over a whole batch."""
    node = _node_or_skip()
    done = subprocess.run([node, str(KUSTO / "validate.js")], input=json.dumps(request),
                          capture_output=True, text=True, check=True, timeout=600)
    return json.loads(done.stdout)


@lru_cache(maxsize=None)
def cloudtrail_columns() -> tuple:
    """AWSCloudTrail's documented columns and types (templates/kql/schemas/AWSCloudTrail.yml)."""
    return tuple(read_schema(resource_dir("templates") / "kql" / "schemas" / "AWSCloudTrail.yml").items())


def schema(backend: Kql, rule) -> tuple[str, list]:
    """The table and columns to analyze a rule's query against: the documented schema of the
    mapping's table (templates/kql/schemas/), or for a generic table the columns the rule uses,
    typed as the mapping says."""
    mapping = backend.mapping_for(rule)
    table = backend.options.get("table") or mapping.table
    if mapping.schema:
        return table, [[c, t] for c, t in mapping.schema.items()]
    backend.mapping = mapping
    fields = set()
    for node in walk(rule.query):
        if isinstance(node, Match):
            fields.update([node.field] if node.field else [k.field for k in backend.keyword_matches(node)])
            if node.op is Op.FIELDREF:
                fields.add(node.value)
    columns = {}
    for f in fields:
        t = backend.resolve(f)
        columns[t.column] = TYPES.get(t.type, "string") if not t.json_path else "string"
    return table, sorted([c, ty] for c, ty in columns.items())


def errors_of(diagnostics) -> list:
    return [d for d in diagnostics if d["severity"] == "Error"]


# --- the quality bar ---------------------------------------------------------------------------

def convert(detection, logsource=None, **options):
    rule = rule_from_dict({"title": "t", "logsource": logsource or {"product": "aws", "service": "cloudtrail"},
                           "detection": detection}, "test.yml")
    return Kql(**options).convert(rule)


def test_cloudtrail_shape():
    assert convert({"sel": {"eventSource": "iam.amazonaws.com", "eventName": "CreateUser"},
                    "condition": "sel"}) == (
        'AWSCloudTrail\n| where EventSource =~ "iam.amazonaws.com" and EventName =~ "CreateUser"')


def test_cloudtrail_columns():
    assert convert({"sel": {"userIdentity.principalId": "AID", "readOnly": False,
                            "userIdentity.sessionContext.attributes.mfaAuthenticated": "true"},
                    "condition": "sel"}) == (
        'AWSCloudTrail\n| where UserIdentityPrincipalid =~ "AID" and ReadOnly == false and '
        'SessionMfaAuthenticated == true')


def test_cloudtrail_unreachable_field_is_named():
    with pytest.raises(Unsupported, match="userIdentity.sourceIdentity"):
        convert({"sel": {"userIdentity.sourceIdentity": "x"}, "condition": "sel"})


def test_keys_inside_json_text_are_counted_per_event():
    # The evaluator enters lists anywhere on the path: an mv-apply counts each test's values
    # (executed in test_engines_agree, the kql engine turning mv-apply into a join).
    query = convert({"sel": {"requestParameters.layers|exists": True, "eventName": "X"}, "condition": "sel"})
    assert query.startswith('AWSCloudTrail\n| where EventName =~ "X"\n'
                            '| mv-apply sigma_value = pack_array(parse_json(RequestParameters)) on (\n')
    assert query.endswith('| where sigma_match1 > 0\n| project-away sigma_match1')


@pytest.mark.parametrize("sel, reason", [
    ({"requestParameters.fromPort": 22}, "Kusto reads as a number, a time or a GUID"),
    ({"requestParameters.policy|contains": '"Effect"'}, "in its own key order"),
    ({"requestParameters.size|gt": 3}, "tested with eq, contains"),
    ({"userIdentity.arn|fieldref": "requestParameters.userName"}, "cannot be compared with another field"),
])
def test_keys_inside_json_text_refused_where_kusto_reads_them_otherwise(sel, reason):
    with pytest.raises(Unsupported, match=reason):
        convert({"sel": sel, "condition": "sel"})


def test_negated_null_producing_predicates_are_coalesced():
    query = convert({"sel": {"eventName": "X"}, "f": {"sourceIPAddress|cidr": ["10.0.0.0/8", "::1/128"]},
                     "condition": "sel and not f"})
    assert query.endswith('not(coalesce(ipv4_is_in_range(SourceIpAddress, "10.0.0.0/8"), false) or '
                          'coalesce(ipv6_is_in_range(SourceIpAddress, "::1/128"), false))')


def test_ipv6_network_covering_mapped_ipv4_asks_for_an_ipv6_text():
    query = convert({"sel": {"ip|cidr": "::/0"}, "condition": "sel"}, {"category": "x"})
    assert query.endswith('| where ip contains ":" and ipv6_is_in_range(ip, "::/0")')


def test_table_option_and_user_mapping(tmp_path):
    assert convert({"sel": {"a.b": "x"}, "condition": "sel"}, {"category": "c"}, table="My_CL") == (
        "My_CL\n| where ['a.b'] =~ \"x\"")
    mapping = tmp_path / "m.yml"
    mapping.write_text("table: Syslog\nfields: {msg: SyslogMessage}\nkeywords: [msg]\n", encoding="utf-8")
    rule = rule_from_dict({"title": "t", "logsource": {"product": "linux"},
                           "detection": {"k": ["evil", "ba*d"], "condition": "k"}}, "t.yml")
    assert Kql(mapping_file=mapping).convert(rule) == (
        'Syslog\n| where SyslogMessage contains "evil" or SyslogMessage matches regex @"(?is)ba.*d"')


def test_folded_number_list_keeps_its_parentheses(tmp_path):
    # An Or of equalities on a number column is one predicate inside an And (H3's report).
    mapping = tmp_path / "m.yml"
    mapping.write_text("table: T\nfields: {EventID: {column: EventID, type: number}, Channel: Channel}\n",
                       encoding="utf-8")
    rule = rule_from_dict({"title": "t", "logsource": {"product": "windows"},
                           "detection": {"sel": {"Channel": "Security", "EventID": [4624, 4625]},
                                         "condition": "sel"}}, "t.yml")
    assert Kql(mapping_file=mapping).convert(rule) == (
        'T\n| where Channel =~ "Security" and (EventID == 4624 or EventID == 4625)')


def test_keywords_without_text_fields_are_unsupported():
    with pytest.raises(Unsupported, match="keywords"):
        convert({"k": ["evil"], "condition": "k"}, {"category": "c"})


# --- escaping ------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern,kql", [
    (r"\d+\s\w\b", r'@"[0-9]+[\t\n\f\r ][0-9A-Za-z_](?-u:\b)"'),
    (r"[\d.]\D[^\s]", r'@"[0-9.][^0-9][^\t\n\f\r ]"'),
    (r"[][a&&b~~c]", r'@"[\]\[a\&\&b\~\~c]"'),
    (r"[[:alpha:]_]", r'@"[[:alpha:]_]"'),
    (r'say "x"', r'@"say ""x"""'),
    ("a\nb", '"a\\nb"'),
])
def test_regex_in_kusto_syntax(pattern, kql):
    assert regex(pattern) == kql


def test_regex_group_limit():
    with pytest.raises(Unsupported, match="16"):
        regex("(a)" * 17)


@pytest.mark.parametrize("name,kql", [("EventName", "EventName"), ("a.b", "['a.b']"), ("where", "['where']"),
                                       ("it's", "['it\\'s']"), ("1day", "['1day']"), ("x-y", "['x-y']")])
def test_identifiers(name, kql):
    assert identifier(name) == kql


def _hostile_strings(count=2000, seed=7):
    """Quotes, backslashes, every control character, line separators, non-BMP text: in one
    batch, so one Node run checks them all."""
    rng = random.Random(seed)
    alphabet = ['"', "'", "\\", "`", "@", "[", "]", "u", "x", "0", "\u2028", "\u2029", "\u00e9", "\U0001f600",
                "\ufeff", *map(chr, range(0x20)), "\x7f", "\x85", "\u00a0"]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(count)]


def test_string_literals_read_back():
    values = _hostile_strings()
    bracketed = [v for v in values if identifier(v) != v]
    quoted = [string(v) for v in values] + [identifier(v)[1:-1] for v in bracketed]
    assert kusto({"literals": quoted})["literals"] == values + bracketed


def test_reserved_words_match_kusto():
    node = _node_or_skip()
    out = subprocess.run([node, str(KUSTO / "reserved.js")], capture_output=True, text=True, check=True)
    assert frozenset(out.stdout.split()) == RESERVED


# --- every generated query through the Kusto analyzer ----------------------------------------------

def _analyze(items):
    """items: (id, query, table, columns). Returns {id: errors} for the queries with errors."""
    answer = kusto({"queries": [{"id": i, "query": q, "table": t, "columns": c} for i, q, t, c in items]})
    return {i: errors_of(d) for i, d in answer["queries"].items() if errors_of(d)}


def test_golden_queries_pass_the_analyzer():
    expected = load_expected("kql")
    items = []
    for case in load_cases():
        want = expected.get(case.id)
        if case.error or want is None or want.startswith(UNSUPPORTED):
            continue
        backend = Kql()
        table, columns = schema(backend, case.rule())
        items.append((case.id, want, table, columns))
        if table != "AWSCloudTrail":   # generic tables: the same text type-checks on dynamic columns
            items.append((case.id + "/dynamic", want, table, [[c, "dynamic"] for c, _ in columns]))
    assert len(items) > 100
    assert _analyze(items) == {}


def convert_corpus(paths):
    """(converted items, unsupported count) for every rule under paths; any other error fails."""
    rules, _ = load_paths(paths)
    items, unsupported, backend = [], 0, Kql()
    for rule in rules:
        if rule.kind != "rule":
            continue
        try:
            query = backend.convert(rule)
        except Unsupported:
            unsupported += 1
            continue
        except TranspileError as e:   # anything else is a bug in the backend
            raise AssertionError(f"{rule.path}: {e}") from e
        table, columns = schema(backend, rule)
        items.append((f"{rule.path}#{rule.id}", query, table, columns))
    return items, unsupported


@pytest.mark.corpus
@pytest.mark.slow
@pytest.mark.parametrize("folder", ["suzaku-rules", "sigmahq-rules"])
def test_corpus_queries_pass_the_analyzer(folder):
    from conftest import corpus_path
    root = corpus_path("rules")
    paths = sorted(root.glob(folder + "*"))
    _node_or_skip()
    items, unsupported = convert_corpus(paths)
    print(f"\n{folder}: {len(items)} converted, {unsupported} unsupported")
    assert len(items) > 500
    bad = _analyze(items)
    assert bad == {}, list(bad.items())[:5]

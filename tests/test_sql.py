"""The SQL backends (Athena, DuckDB): escaping, mappings and options, every Athena query parsed
by sqlglot, every DuckDB query bound by DuckDB, and hostile values run through DuckDB against
the evaluator. Golden-case equivalence lives in test_duckdb_equivalence.py."""
from __future__ import annotations

import json
from collections import Counter

import pytest
from caselib import load_cases
from conftest import corpus_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transpiler.backends.sql import Athena, DuckDB, identifier, like_pattern, literal
from transpiler.errors import Unsupported
from transpiler.evaluate import field_values, matches, text
from transpiler.nodes import Match, Op, Wild
from transpiler.rule import rule_from_dict

sqlglot = pytest.importorskip("sqlglot")
duckdb = pytest.importorskip("duckdb")
from sqlglot import exp  # noqa: E402
from sqlglot.errors import SqlglotError  # noqa: E402

from transpiler import duckdb_events  # noqa: E402


def rule(detection, logsource=None):
    return rule_from_dict({"title": "t", "logsource": logsource or {"category": "test"},
                           "detection": {**detection, "condition": "sel"}})


CLOUDTRAIL = {"product": "aws", "service": "cloudtrail"}


def where(sql: str) -> str:
    return sql.split("\nWHERE ", 1)[1]


# --- escaping ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value,want", [
    ("plain", "'plain'"), ("O'Brien", "'O''Brien'"), ("''", "''''''"), ("c:\\win\\", "'c:\\win\\'"),
    ("a\nb", "'a\nb'"), ("", "''"),
])
def test_literal(value, want):
    assert literal(value) == want


def test_literal_refuses_nul():
    with pytest.raises(Unsupported):
        literal("a\x00b")


@pytest.mark.parametrize("name,want", [
    ("eventname", "eventname"), ("CommandLine", "CommandLine"), ("order", '"order"'), ("select", '"select"'),
    ("x-amz-acl", '"x-amz-acl"'), ("_hidden", '"_hidden"'), ("1st", '"1st"'), ('a"b', '"a""b"'), ("", '""'),
])
def test_identifier(name, want):
    assert identifier(name) == want


@pytest.mark.parametrize("op,value,cased,want", [
    (Op.CONTAINS, "100%_\\x", False, "%100\\%\\_\\\\x%"),
    (Op.STARTSWITH, "Ab", True, "Ab%"),
    (Op.ENDSWITH, "Ab", False, "%ab"),
    (Op.GLOB, ("a", Wild.ONE, "_", Wild.STAR, "%"), False, "a_\\_%\\%"),
])
def test_like_pattern(op, value, cased, want):
    assert like_pattern(Match("f", op, value, cased)) == want


@pytest.mark.parametrize("keys,athena,duck", [
    (("userName",), "$.userName", "$.userName"),
    (("a", "b_c", "D1"), '$.a["b_c"].D1', "$.a.b_c.D1"),
    (("x-amz-acl",), '$["x-amz-acl"]', '$."x-amz-acl"'),
    (("a b", "c/d~", "0"), '$["a b"]["c/d~"]["0"]', '$."a b"."c/d~"."0"'),
    (('a"b', "c/d~"), None, '/a"b/c~1d~0'),
])
def test_json_paths(keys, athena, duck):
    if athena is None:
        with pytest.raises(Unsupported):
            Athena().json_path(keys)
    else:
        assert Athena().json_path(keys) == athena
    assert DuckDB().json_path(keys) == duck


def test_any_json_key_is_written():
    # A member is read by its key as a string (Athena: a map's key; DuckDB: a JSON Pointer).
    r = rule({"sel": {'requestParameters.a"b/~c': "x"}}, CLOUDTRAIL)
    assert "element_at(TRY_CAST(x AS MAP(VARCHAR, JSON)), 'a\"b/~c')" in Athena().convert(r)
    assert "json_extract(x, '/a\"b~1~0c')" in DuckDB().convert(r)


# --- text shape ----------------------------------------------------------------------------------

def test_cloudtrail_query_reads_like_hand_written_sql():
    r = rule({"sel": {"eventSource": "iam.amazonaws.com", "eventName": ["CreateUser", "DeleteUser"],
                      "userIdentity.userName|startswith": "adm_", "resources.ARN|contains": "x"}},
             CLOUDTRAIL)
    assert Athena().convert(r) == (
        "SELECT *\nFROM cloudtrail_logs\n"
        "WHERE lower(eventsource) = 'iam.amazonaws.com' AND lower(eventname) IN ('createuser', 'deleteuser') "
        "AND lower(useridentity.username) LIKE 'adm\\_%' ESCAPE '\\' "
        "AND any_match(resources, x -> lower(x.arn) LIKE '%x%' ESCAPE '\\')")
    assert where(DuckDB().convert(r)) == (
        "lower(eventsource) = 'iam.amazonaws.com' AND lower(eventname) IN ('createuser', 'deleteuser') "
        "AND lower(useridentity.username) LIKE 'adm\\_%' ESCAPE '\\' "
        "AND len(list_filter(resources, lambda x: lower(x.arn) LIKE '%x%' ESCAPE '\\')) > 0")


def test_numbers_are_text_on_text_columns():
    assert where(Athena().convert(rule({"sel": {"fromPort": [22, 3389]}}))) == "fromPort IN ('22', '3389')"


def test_unknown_cloudtrail_field_is_unsupported():
    with pytest.raises(Unsupported, match="'status'"):
        Athena().convert(rule({"sel": {"status": "x"}}, CLOUDTRAIL))


def test_keywords_are_unsupported_on_athena():
    with pytest.raises(Unsupported, match="keywords"):
        Athena().convert(rule_from_dict({"title": "t", "logsource": CLOUDTRAIL,
                                         "detection": {"k": ["evil"], "condition": "k"}}))


def test_table_option_and_qualified_names():
    r = rule({"sel": {"eventName": "x"}}, CLOUDTRAIL)
    assert Athena(table="db.my-trail").convert(r).splitlines()[1] == 'FROM db."my-trail"'


def test_security_lake_mapping_by_name():
    r = rule({"sel": {"eventName": "CreateUser", "userIdentity.sessionContext.attributes.mfaAuthenticated": "false"}},
             CLOUDTRAIL)
    sql = Athena(mapping_file="security-lake", table="sl").convert(r)
    assert sql == ("SELECT *\nFROM sl\nWHERE lower(api.operation) = 'createuser' "
                   "AND lower(CAST(actor.session.is_mfa AS VARCHAR)) = 'false'")
    with pytest.raises(Unsupported, match="sessionIssuer.type"):
        Athena(mapping_file="security-lake").convert(
            rule({"sel": {"userIdentity.sessionContext.sessionIssuer.type": "Role"}}, CLOUDTRAIL))


def test_user_mapping_file(tmp_path):
    path = tmp_path / "m.yml"
    path.write_text("table: proc\nfields: {CommandLine: cmdline}\n")
    assert Athena(mapping_file=str(path)).convert(rule({"sel": {"CommandLine|contains": "x"}})) == \
        "SELECT *\nFROM proc\nWHERE lower(cmdline) LIKE '%x%' ESCAPE '\\'"


def test_output_is_deterministic():
    r = rule({"sel": {"a|contains": ["x", "y"], "b": [1, 2]}})
    assert len({Athena().convert(r) for _ in range(3)} | {Athena().convert(r)}) == 1


# --- every golden Athena query parses -----------------------------------------------------------------

CASES = [c for c in load_cases() if not c.error]


def parse_athena(sql: str):
    return sqlglot.parse_one(sql, read="athena")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_golden_athena_parses(case):
    try:
        sql = Athena().convert(case.rule())
    except Unsupported:
        pytest.skip("unsupported")
    parse_athena(sql)


# --- hostile values: one literal each, and DuckDB selects what the evaluator selects ------------------

ATHENA, DUCKDB = Athena(), DuckDB()   # one of each: building the template environment is the slow part
HOSTILE = st.lists(st.sampled_from(list("ab*?\\'\"%_ \t\n;-()=\u00e9\u212a\U0001f600") + ["');", "--", "/*"]),
                   min_size=1, max_size=8).map("".join)
OPS = ["", "|contains", "|startswith", "|endswith", "|cased", "|contains|cased"]


@given(value=HOSTILE, op=st.sampled_from(OPS))
@settings(max_examples=300, deadline=None)
def test_hostile_value_is_one_athena_literal(value, op):
    r = rule({"sel": {"f" + op: value}})
    m = r.query
    tree = parse_athena(ATHENA.convert(r))
    escapes = {id(e.expression) for e in tree.find_all(exp.Escape)}
    strings = [lit.this for lit in tree.find_all(exp.Literal) if lit.is_string and id(lit) not in escapes]
    if m.op is Op.EXISTS:
        assert strings == []
    elif m.op is Op.EQ:
        assert strings == [m.value if m.cased else m.value.lower()]
    else:
        assert strings == [like_pattern(m)]


@pytest.fixture(scope="module")
def con():
    connection = duckdb_events.connect()
    yield connection
    connection.close()


def duck_rows(con, sql):
    return sorted(r[0] for r in con.execute(f"SELECT row_id FROM ({sql}) AS q").fetchall())


@given(value=HOSTILE, op=st.sampled_from(OPS), other=HOSTILE)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_hostile_values_select_like_the_evaluator(con, value, op, other):
    texts = sorted({value, value.upper(), value.lower(), other, other + value + other, value + other})
    for logsource, field, load in [(None, "f", duckdb_events.load_events),
                                   (CLOUDTRAIL, "userAgent", duckdb_events.load_cloudtrail),
                                   (CLOUDTRAIL, "requestParameters.k", duckdb_events.load_cloudtrail)]:
        r = rule({"sel": {field + op: value}}, logsource)
        events = [{field: t} if "." not in field else {"requestParameters": {"k": t}} for t in texts]
        try:
            sql = DUCKDB.convert(r)
        except Unsupported as e:   # a value that could tell an object's JSON texts apart (test_object_text)
            assert "." in field and e.kind == "json", e
            continue
        load(con, events)
        assert duck_rows(con, sql) == [n for n, e in enumerate(events) if matches(r.query, e)], (sql, events)


# --- the generic DuckDB table resolves fields exactly like the evaluator ----------------------------

KEYS = st.sampled_from(["a", "b", "a.b", "b.a", "", "A"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from(["x", "", "a.b"]))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(KEYS, inner, max_size=3)), max_leaves=12)
NAMES = st.sampled_from(["a", "b", "a.b", "b.a", "a.b.a", "a..b", "a.", "A", "a.b.b"])


@given(event=st.dictionaries(KEYS, JSON, max_size=4), name=NAMES)
@settings(max_examples=500, deadline=None)
def test_generic_field_values_are_the_evaluators(event, name):
    got = duckdb_events.field_values(event).get(name, [])
    assert Counter(got) == Counter(text(v) for v in field_values(event, name))


def test_generic_table_round_trips_through_duckdb(con):
    events = [{"a": {"b": [1, {"c": None, "d": "x"}]}, "a.b": True}, {}, {"s": ["x", ["y"]], "n": 1e16}]
    duckdb_events.load_events(con, events)
    rows = con.execute("SELECT row_id, event, fields, strings FROM events ORDER BY row_id").fetchall()
    assert [json.loads(r[1]) for r in rows] == events
    assert rows[0][2] == {"a": ['{"b":[1,{"c":null,"d":"x"}]}'], "a.b": ["true", "1", '{"c":null,"d":"x"}'],
                          "a.b.d": ["x"]}
    assert rows[2][2] == {"s": ["x", "y"], "n": ["1e+16"]} and rows[2][3] == ["x", "y"]


def test_cloudtrail_table_shape(con):
    events = [{"eventName": "X", "readOnly": True, "userIdentity": {"type": "Root", "sessionContext": {"sessionIssuer": {}}},
               "requestParameters": {"userName": "bob", "n": [1, 2]}, "resources": [{"ARN": "a"}, "junk"]},
              {"userIdentity": "not an object", "requestParameters": "not json"}]
    assert duckdb_events.load_cloudtrail(con, events) == 2
    rows = con.execute("SELECT eventname, readonly, useridentity.type, requestparameters, resources "
                       "FROM cloudtrail_logs ORDER BY row_id").fetchall()
    assert rows[0] == ("X", "true", "Root", '{"userName":"bob","n":[1,2]}',
                       [{"arn": "a", "accountid": None, "type": None}])
    assert rows[1] == (None, None, None, "not json", None)
    # malformed JSON text is no value, not an error
    sql = DuckDB().convert(rule({"sel": {"requestParameters.userName": "bob"}}, CLOUDTRAIL))
    assert duck_rows(con, sql) == [0]


# --- the whole corpus: Athena parses, DuckDB binds ------------------------------------------------

@pytest.mark.corpus
@pytest.mark.slow
def test_corpus_converts_parses_and_binds(con):
    """SigmaHQ and suzaku rules: every conversion is a query or a per-rule Unsupported; every Athena
    query parses with sqlglot; every DuckDB query binds against the tables it names."""
    from transpiler.rule import load_paths

    rules, _ = load_paths([corpus_path("rules", "sigmahq-rules"), corpus_path("rules", "suzaku-rules")])
    rules = [r for r in rules if r.kind == "rule"]
    duckdb_events.load_events(con, [])
    duckdb_events.load_cloudtrail(con, [])
    summary, bad = {}, []
    for backend in (Athena(), DuckDB()):
        unsupported, converted = Counter(), 0
        for r in rules:
            try:
                sql = backend.convert(r)
            except Unsupported as e:
                unsupported[e.message[:75]] += 1
                continue
            converted += 1
            try:
                if backend.name == "athena":
                    parse_athena(sql)
                else:
                    con.execute("EXPLAIN " + sql)
            except (SqlglotError, duckdb.Error) as e:
                bad.append(f"{backend.name} {r.path}: {e}\n{sql}")
        summary[backend.name] = (converted, unsupported)
    for name, (converted, unsupported) in summary.items():
        print(f"\n{name}: {len(rules)} rules, {converted} converted, {sum(unsupported.values())} unsupported")
        for message, count in unsupported.most_common():
            print(f"  {count} x {message[:120]}")
    assert not bad, "\n".join(bad[:5])


@given(key=st.text(alphabet="aZ09_-/~ \"'\\é", min_size=1, max_size=6),
       value=st.sampled_from(["v", "V", 1, True, None, ["x", "v"], [["V"]], {"k": "v"}, []]))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_hostile_json_keys_select_like_the_evaluator(con, key, value):
    """Any key inside a JSON text column (no dots: a dotted Sigma name is a path), whatever it
    holds: both dialects write every key (never refused)."""
    r = rule({"sel": {f"requestParameters.{key}": "v"}}, CLOUDTRAIL)
    sql = DUCKDB.convert(r)
    events = [{"requestParameters": {key: value}}, {"requestParameters": {key + "x": "v"}}, {}]
    duckdb_events.load_cloudtrail(con, events)
    assert duck_rows(con, sql) == [n for n, e in enumerate(events) if matches(r.query, e)], sql
    parse_athena(ATHENA.convert(r))


TIMES = st.tuples(
    st.sampled_from(["", " ", "\u3000"]),
    st.sampled_from(["2024-06-15", "20240615", "2024-02-30", "2024-6-15", "2023-12-31", "2024-W24-6", "0001-01-01",
                     "9999-12-31"]),
    st.sampled_from(["", "T", " ", "x", "+", "Z", "\n", "TT", "0", "\U0001f600"]),
    st.sampled_from(["", "03", "03:30", "03:30:59", "0330", "033059", "24:00", "03:3000", "3:30", "23:59:60", "00"]),
    st.sampled_from(["", ".5", ",123", ".1234567"]),
    st.sampled_from(["", "Z", "z", "+05:30", "-0530", "+05", "+24:00", "-23:59", "+05:30:15.5", " UTC", "+01:00"]),
    st.sampled_from(["", " ", "\t", "\x0b"]),
).map("".join)


@given(value=TIMES, part=st.sampled_from(["minute", "hour", "day", "week", "month", "year"]))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_time_parts_read_times_like_the_evaluator(con, value, part):
    """DuckDB reads a time exactly where the evaluator does (evaluate.ISO_8601), with the same
    parts, in UTC."""
    from transpiler.evaluate import in_utc, time_part, timestamp
    moment = timestamp(value)
    moment = moment and in_utc(moment)
    duckdb_events.load_events(con, [{"t": value}])
    read = duck_rows(con, DUCKDB.convert(rule({"sel": {f"t|{part}|gte": -1}}))) == [0]
    assert read == (moment is not None), value
    if moment is not None:
        assert duck_rows(con, DUCKDB.convert(rule({"sel": {f"t|{part}": time_part(moment, part)}}))) == [0], value

"""The evaluator engine over files: scanned in parts, here or by worker processes, it gives
the answer of one plain pass (records() in file order, evaluate.matches per rule), eventIDs
counted once across parts included; what correlations keep of an event reads as the event;
Line.writer writes what json.dumps writes."""
from __future__ import annotations

import gzip
import json
import random

import pytest

from transpiler import correlation, engines
from transpiler.engines import evaluator
from transpiler.evaluate import field_values, matches
from transpiler.rule import load_text

RULES = """
title: creates
logsource: {product: aws, service: cloudtrail}
correlation: {type: event_count, rules: [create], group-by: [userIdentity.arn], timespan: 1m, condition: {gte: 2}}
---
title: create
name: create
logsource: {product: aws, service: cloudtrail}
detection: {sel: {eventName: CreateUser}, condition: sel}
---
title: denied
logsource: {product: aws, service: cloudtrail}
detection: {sel: {errorCode|contains: denied}, condition: sel}
---
title: from bob
logsource: {product: aws, service: cloudtrail}
detection: {sel: {userIdentity.arn|endswith: bob}, condition: sel}
"""


def event(rng, n):
    e = {"eventID": f"id-{rng.randrange(60)}" if rng.random() < 0.9 else None,
         "eventName": rng.choice(["CreateUser", "createuser", "ListUsers", ["CreateUser", "x"]]),
         "eventTime": f"2024-05-01T10:{n % 60:02d}:{rng.randrange(60):02d}Z",
         "userIdentity": rng.choice([{"arn": "arn:bob"}, {"arn": "arn:alice"}, {}, [{"arn": "arn:bob"}]]),
         "errorCode": rng.choice([None, "AccessDenied", 7]), "sourceIPAddress": "198.51.100.7"}
    return {k: v for k, v in e.items() if v is not None or rng.random() < 0.5}


@pytest.fixture
def logs(tmp_path):
    rng = random.Random(11)
    n = 0
    for f in range(12):
        records = []
        for _ in range(rng.randrange(0, 30)):
            records.append(event(rng, n))
            n += 1
        path = tmp_path / f"f{f:02d}.json.gz"
        path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    (tmp_path / "f05b.json").write_text("{broken")
    return tmp_path


def plain(rules, source, correlations):
    """The answer of one pass: records() in file order, every rule on every event."""
    read = engines.Read()
    found = list(evaluator.records(source, read))
    hits = {n: [k for k, e in found if matches(r.query, e)] for n, r in enumerate(rules)}
    by_key = dict(found)
    selected = [[(by_key[k], [0]) for k in hits[0]] for _ in correlations]
    alerts = [a for c, s in zip(correlations, selected) for a in correlation.alerts(c, s, "eventTime")]
    return hits, read, {k: by_key[k]["eventID"] if by_key[k].get("eventID") is not None else None
                        for ks in hits.values() for k in ks}, alerts


@pytest.mark.parametrize("jobs, part_bytes", [(1, 1 << 30), (1, 1), (2, 1), (3, 300)])
def test_parts_and_workers_give_one_pass_answer(logs, monkeypatch, jobs, part_bytes):
    monkeypatch.setattr(evaluator, "PART_BYTES", part_bytes)
    rules, errors = load_text(RULES, "r.yml")
    plan = engines.plan(rules, errors)
    source = engines.Files.under([logs], dedupe=True)
    out = evaluator.Evaluator(jobs=jobs).run(plan.rules, source, plan.correlations, show=("eventid", "eventid"))
    hits, read, ids, alerts = plain(plan.rules, source, plan.correlations)
    assert out.matches == hits and any(hits.values())
    assert (out.read.files, out.read.records, out.read.duplicates) == (read.files, read.records, read.duplicates)
    assert [e.path for e in out.read.errors] == [e.path for e in read.errors] and read.duplicates
    assert dict(out.rows.items()) == {k: {"eventid": v} for k, v in ids.items()}
    assert [a.as_dict() for a in out.alerts] == [a.as_dict() for a in alerts] and alerts


def test_kept_fields_read_as_the_event():
    rules, errors = load_text(RULES, "r.yml")
    plan = engines.plan(rules, errors)
    fields = evaluator._read_fields(plan.correlations, "eventTime")
    assert fields == ("eventTime", "userIdentity.arn")
    scan = evaluator._Scan(plan.rules, [0], {}, plan.correlations, (), "eventTime")
    rng = random.Random(3)
    for n in range(200):
        e = event(rng, n)
        e["userIdentity.arn"] = rng.choice([None, "literal", ["a", None, ["b"]]])
        kept = scan._kept(e)
        assert all(field_values(kept, f) == field_values(e, f) for f in fields + ("eventTime",))
        assert correlation.event_time(kept, "eventTime") == correlation.event_time(e, "eventTime")
    # a field under another one: field_values of the shorter would be read too: the whole event
    prefix = plan.correlations[0].__class__(**{**plan.correlations[0].__dict__, "group_by": ("a", "a.b")})
    assert evaluator._read_fields([prefix], "eventTime") is None
    assert evaluator._read_fields([prefix], None) is None


@pytest.mark.parametrize("fields", [
    (("kind", ("value", "detection")), ("time", ("show", "t")), ("rule", ("rule", {0: "r\u00e9", 1: None})),
     ("user", ("show", "a", "b", "missing")), ("n", ("rule", {0: 1.5, 1: True})), ("file", ("file",)),
     ("index", ("index",)), ("end", ("value", [1, {"x": None}]))),
    (("only", ("value", "\u2028\"")),),
    (),
    (("same", ("show", "t")), ("same", ("rule", {0: 1, 1: 2}))),            # a key twice: json.dumps keeps one
])
def test_line_writer_writes_what_json_dumps_writes(fields):
    line = engines.Line(fields)
    read = engines.Read(files=["f\u00e9.json", "g\"\n.json"])
    paths = ("t", "a", "b")
    write = line.writer(paths, read)
    for values in [("2024", None, "bob\x1b"), (None, 3, None), (1.25, None, None), ("\ud800", {"k": [1]}, None)]:
        for n in (0, 1, 0):
            for k in (engines.key(0, 5), engines.key(1, 7)):
                row = dict(zip(paths, values))
                want = {}
                for key, (how, *args) in fields:
                    if how == "show":
                        want[key] = next((row.get(p) for p in args if row.get(p) is not None), None)
                    elif how == "rule":
                        want[key] = args[0][n]
                    elif how == "file":
                        want[key] = read.files[engines.place(k)[0]]
                    elif how == "index":
                        want[key] = engines.place(k)[1]
                    else:
                        want[key] = args[0]
                assert write(n, values, k) == json.dumps(want, ensure_ascii=False)
                assert line.text(n, row, read, k) == json.dumps(want, ensure_ascii=False)

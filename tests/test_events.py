"""Event files in every shape, compressed or not, and broken ones reported, not fatal."""
import gzip
import json

from transpiler.events import read_events

RECORDS = {"Records": [{"eventID": "1", "eventName": "A"}, {"eventID": "2", "eventName": "B"}]}


def test_every_shape(tmp_path):
    (tmp_path / "trail.json").write_text(json.dumps(RECORDS))
    (tmp_path / "array.json").write_text(json.dumps([{"x": 1}, {"x": 2}]))
    (tmp_path / "one.json").write_text(json.dumps({"x": 3}))
    (tmp_path / "lines.jsonl").write_text('{"x": 4}\n\n{"x": 5}\n')
    (tmp_path / "lines.json").write_text('{"x": 6}\n{"x": 7}\n')
    sub = tmp_path / "deep" / "er"
    sub.mkdir(parents=True)
    (sub / "trail.json.gz").write_bytes(gzip.compress(json.dumps(RECORDS).encode()))
    events, errors = read_events([tmp_path])
    assert errors == []
    assert len(events) == 11
    names = {e.source.split("/")[-1] for e in events}
    assert names == {"trail.json", "array.json", "one.json", "lines.jsonl", "lines.json", "trail.json.gz"}
    gz = [e for e in events if e.source.endswith(".gz")]
    assert [(e.index, e.event_id) for e in gz] == [(0, "1"), (1, "2")]


def test_broken_files_are_reported_and_others_read(tmp_path):
    (tmp_path / "good.json").write_text(json.dumps(RECORDS))
    (tmp_path / "bad.json").write_text('{"Records": [{"a": 1},, ]}')
    (tmp_path / "notgz.json.gz").write_bytes(b"plain text")
    (tmp_path / "scalars.json").write_text("[1, 2]")
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    events, errors = read_events([tmp_path])
    assert len(events) == 2
    messages = {e.path.split("/")[-1]: e.message for e in errors}
    assert set(messages) == {"bad.json", "notgz.json.gz", "scalars.json", "deep.json"}
    assert messages["deep.json"] == "JSON nested too deeply"
    assert messages["bad.json"].startswith("invalid JSON: line 1")
    assert "not a JSON object" in messages["scalars.json"]

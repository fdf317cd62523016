"""Event files in every shape, compressed or not, and broken ones reported, not fatal."""
import gzip
import importlib
import json
import os
import re
import struct
import zlib

import pytest

from transpiler import files
from transpiler.errors import EventsError
from transpiler.events import find_event_files, read_event_bytes, read_events

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


# JSON text -> the lone surrogate named in the error, or None: read (pairs are one character).
SURROGATES = {
    '{"a": "\\ud800"}': "\\ud800",
    '[{"a": "ok"}, {"b": ["x \\uDC00 y"]}]': "\\udc00",
    '{"Records": [{"\\udbff": 1}]}': "\\udbff",                  # in a key
    '{"a": "\\ud83d\\ude00 then \\ud83d"}': "\\ud83d",            # a pair, then half of one
    '{"a": 1}\n{"b": "\\udfff"}\n': "\\udfff",                    # JSON Lines
    '{"a": "\\ud83d\\ude00"}': None,                              # a pair: U+1F600
    '{"a": "\\\\ud800"}': None,                                   # an escaped backslash, then text
    '{"a": "\\u00e9 \\u2028"}': None,
}


@pytest.mark.parametrize("text", sorted(SURROGATES))
def test_a_lone_surrogate_escape_is_refused(tmp_path, text):
    """Half of a UTF-16 pair escaped alone is valid JSON syntax but no Unicode text: DuckDB's
    JSON reader refuses it and no output could hold it, so the file is refused, in one line."""
    (tmp_path / "s.json").write_text(text)
    events, errors = read_events([tmp_path])
    if SURROGATES[text] is None:
        assert errors == [] and events
        json.dumps([e.data for e in events], ensure_ascii=False).encode("utf-8")
    else:
        assert events == [] and [e.message for e in errors] == [
            f"invalid JSON text: a lone surrogate {SURROGATES[text]} (half of a UTF-16 pair), which is not Unicode text"]


# --- bounded reading (issue 13) ------------------------------------------------------------------

ONE = gzip.compress(b'{"a": 1}')


def _member(flags: int, fields: bytes = b"", header_crc=None) -> bytes:
    """ONE's member with header flags set (RFC 1952): FHCRC 2, FEXTRA 4, FNAME 8, FCOMMENT 16."""
    head = ONE[:3] + bytes([flags]) + ONE[4:10] + fields
    if flags & 2:
        head += struct.pack("<H", zlib.crc32(head) & 0xFFFF if header_crc is None else header_crc)
    return head + ONE[10:]


GZIP = {   # name: bytes, and what reading them gives: the bytes gzip.decompress gives, or an error
    "empty.json.gz": (b"", b""),
    "members.json.gz": (gzip.compress(b'[{"a"') + gzip.compress(b": 1}]"), b'[{"a": 1}]'),
    "padded.json.gz": (ONE + b"\0" * 100 + ONE, b'{"a": 1}{"a": 1}'),
    "unnamed.json": (ONE, b'{"a": 1}'),                                  # the magic number says gzip
    "garbage.json.gz": (ONE + b"xyz", "not gzip data, or damaged (incorrect header check)"),
    "damaged.json.gz": (ONE[:-8] + bytes([ONE[-8] ^ 1]) + ONE[-7:], "damaged (incorrect data check)"),
    "truncated.json.gz": (gzip.compress(b"[]" * 999)[:-5], "ends before its end marker"),
    "plain.json.gz": (b"plain text", "not gzip data"),
    "fields.json.gz": (_member(4 | 8 | 16, struct.pack("<H", 2) + b"xy" + b"trail.json\0" + b"a comment\0"),
                       b'{"a": 1}'),
    "header-crc.json.gz": (_member(2), b'{"a": 1}'),
    "bad-header-crc.json.gz": (_member(2, header_crc=0), "damaged (header crc mismatch)"),
    "bad-length.json.gz": (ONE[:-4] + struct.pack("<I", 99), "damaged (incorrect length check)"),
}


@pytest.mark.parametrize("inflater", ["zlib", "zlib_ng.zlib_ng"])
@pytest.mark.parametrize("name", sorted(GZIP))
def test_gzip_as_gzip_reads_it(tmp_path, monkeypatch, name, inflater):
    """With zlib-ng (a dependency: faster) and with the standard library's zlib (without it)."""
    monkeypatch.setattr(files, "ZLIB", importlib.import_module(inflater))
    data, expected = GZIP[name]
    (tmp_path / name).write_bytes(data)
    if isinstance(expected, bytes):
        assert read_event_bytes(tmp_path / name) == expected == gzip.decompress(data)
    else:
        with pytest.raises(EventsError, match=re.escape(expected)):
            read_event_bytes(tmp_path / name)


@pytest.mark.parametrize("keep", [files._KEEP, 1000])
def test_the_limit_stops_inflating(tmp_path, monkeypatch, keep):
    """At most max_bytes after decompression; past `keep` bytes the output is only counted, and a
    file that fits is inflated again (keep=1000 takes that path)."""
    monkeypatch.setattr(files, "_KEEP", keep)
    data = b'[{"a": "' + b"x" * 5000 + b'"}]'
    (tmp_path / "e.json.gz").write_bytes(gzip.compress(data[:3000]) + gzip.compress(data[3000:]))
    (tmp_path / "e.json").write_bytes(data)
    for name in ("e.json.gz", "e.json"):
        assert read_event_bytes(tmp_path / name, len(data)) == data
        with pytest.raises(EventsError, match=f"more than {len(data) - 1:,} bytes of JSON, the limit"):
            read_event_bytes(tmp_path / name, len(data) - 1)


def test_what_is_not_a_regular_file_is_refused_unopened(tmp_path):
    os.mkfifo(tmp_path / "pipe.json")
    for path, why in ((tmp_path / "pipe.json", "a named pipe (FIFO)"), ("/dev/zero", "a character device"),
                      (tmp_path, "a folder"), (tmp_path / "gone.json", "No such file")):
        with pytest.raises(EventsError, match=re.escape(f"cannot read: {why}")):
            read_event_bytes(path)
    events, errors = read_events([tmp_path / "pipe.json"])
    assert events == [] and "named pipe" in errors[0].message


def test_folders_named_must_hold_event_files(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "logs" / "deeper").mkdir(parents=True)
    (tmp_path / "logs" / "deeper" / "a.json").write_text('{"x": 1}')
    (tmp_path / "logs" / "loop").symlink_to(tmp_path / "logs", target_is_directory=True)
    (tmp_path / "elsewhere").symlink_to(tmp_path / "logs" / "deeper", target_is_directory=True)
    found, errors = find_event_files([tmp_path / "empty", tmp_path / "logs", tmp_path / "elsewhere"])
    assert found == [tmp_path / "logs" / "deeper" / "a.json"]       # each real folder read once
    assert [(e.path, e.kind) for e in errors] == [(str(tmp_path / "empty"), "empty")]

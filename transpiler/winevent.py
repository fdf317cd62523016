"""Windows events: .evtx files and their JSON export, flattened into the field names Sigma's
Windows rules use.

An .evtx record is XML (`<Event><System>...<EventData><Data Name="Image">...`). The `evtx`
parser (PyPI, Rust) renders each record as JSON, `{"Event": {"System": ..., "EventData": ...}}`
with attributes under `#attributes` and element text beside them under `#text`; SigmaHQ's
regression_data/ keeps that JSON export beside each .evtx (several unnamed Data elements give
`"Data": {"#text": [...]}`). flatten() turns one record into one flat event with the field
names SigmaHQ's Windows rules test (its regression checker is not public: these are the names
its rules use, and its regression data passes with them):

- System: each child by its name (`EventID`, `Channel`, `Computer`, `Level`, `Keywords`, ...);
  a child's attributes as `<child>_<attribute>` (`Provider_Name`, `Provider_Guid`,
  `TimeCreated_SystemTime`, `Execution_ProcessID`, `Security_UserID`); a child with both text
  and attributes (`<EventID Qualifiers="0">4625</EventID>`) gives its text under its own name.
- EventData: each named Data by its name with the spaces taken out (Defender's
  `Threat Name` -> `ThreatName`); unnamed Data (classic PowerShell, Windows PowerShell 400)
  as `Data`, a list when there are several.
- UserData: the children of its one inner element (`<UserData><LogFileCleared><SubjectUserName>`
  -> `SubjectUserName`), spaces taken out as for EventData.
- A name that System already gives keeps System's value; empty elements (`Correlation`) give
  nothing; the root's and the sections' own attributes (xmlns, EventData Name) are left out.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import files
from .errors import EventsError

MAX_FILE_BYTES = 256 * 2**20       # an .evtx over this is refused, not read into memory
MAX_RECORDS = 100_000              # per file


def unavailable() -> str | None:
    """Why .evtx files cannot be read here, or None."""
    try:
        import evtx  # noqa: F401
    except ImportError:
        return "reading .evtx needs the evtx package (pip install 'sigma-transpiler[evtx]')"
    return None


def is_record(event) -> bool:
    """An event in the EVTX JSON shape (`{"Event": {"System": ...}}`), not yet flattened."""
    return isinstance(event, dict) and isinstance(event.get("Event"), dict) and "System" in event["Event"]


def flatten(record: dict) -> dict:
    """One EVTX JSON record -> one flat event (see the module docstring).

    >>> flatten({"Event": {"System": {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
    ...     "EventID": 1, "Correlation": None}, "EventData": {"Image": "C:\\\\a.exe", "Threat Name": "X"}}})
    {'Provider_Name': 'Microsoft-Windows-Sysmon', 'EventID': 1, 'Image': 'C:\\\\a.exe', 'ThreatName': 'X'}
    """
    event = record.get("Event", record)
    out: dict = {}
    for name, value in (event.get("System") or {}).items():
        if isinstance(value, dict):
            if "#text" in value:
                out[name] = value["#text"]
            for attr, attr_value in (value.get("#attributes") or {}).items():
                out[f"{name}_{attr}"] = attr_value
        elif value is not None:
            out[name] = value
    data = event.get("EventData")
    if isinstance(data, dict):
        _put_data(out, data)
    user = event.get("UserData")
    if isinstance(user, dict):
        for inner in user.values():       # one element, named by the provider
            if isinstance(inner, dict):
                _put_data(out, inner)
    return out


def _put_data(out: dict, section: dict):
    for name, value in section.items():
        if name == "#attributes":
            continue
        if isinstance(value, dict) and ("#text" in value or "#attributes" in value):
            value = value.get("#text")
        key = "Data" if name == "#text" else name.replace(" ", "")
        if value is not None and key not in out:
            out[key] = value


def read_evtx(path) -> list[dict]:
    """The flattened events of one .evtx file, in record order; EventsError when it cannot be read."""
    reason = unavailable()
    if reason:
        raise EventsError(reason, path=path)
    import evtx
    path = Path(path)
    try:
        with files.open_regular(path) as (_, size):     # a FIFO would hang the parser, a device never end
            pass
    except files.Unreadable as e:
        raise EventsError(str(e), path=path) from None
    if size > MAX_FILE_BYTES:
        raise EventsError(f"larger than {MAX_FILE_BYTES // 2**20} MiB", path=path)
    out = []
    try:
        for record in evtx.PyEvtxParser(str(path), 1).records_json():
            if len(out) == MAX_RECORDS:
                raise EventsError(f"more than {MAX_RECORDS} records", path=path)
            out.append(flatten(json.loads(record["data"])))
    except EventsError:
        raise
    except Exception as e:      # the parser's errors (OSError, RuntimeError): not EVTX, a bad chunk
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EventsError(f"not a readable .evtx file: {first}", path=path) from None
    return out


def read_export(path) -> list[dict]:
    """The flattened events of an EVTX JSON export: one record, or several written one after
    the other (`evtx_dump -o json` concatenates pretty-printed objects)."""
    path = Path(path)
    try:
        text = files.read_text_limited(path, MAX_FILE_BYTES)
    except files.TooLarge:
        raise EventsError(f"larger than {MAX_FILE_BYTES // 2**20} MiB", path=path) from None
    except files.Unreadable as e:
        raise EventsError(str(e), path=path) from None
    except UnicodeDecodeError as e:
        raise EventsError(f"not UTF-8 text (byte {e.start})", path=path) from None
    decoder, pos, out = json.JSONDecoder(), 0, []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return out
        try:
            record, pos = decoder.raw_decode(text, pos)
        except RecursionError:
            raise EventsError("JSON nested too deeply", path=path) from None
        except json.JSONDecodeError as e:
            raise EventsError(f"invalid JSON: line {e.lineno} col {e.colno}: {e.msg}", path=path) from None
        if not is_record(record):
            raise EventsError(f"record {len(out)} is not an EVTX record ({{\"Event\": {{\"System\": ...}}}})",
                              path=path)
        out.append(flatten(record))

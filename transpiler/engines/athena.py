"""Athena, executed here: the Athena backend's query text run as Trino would run it.

No Trino engine runs here, so the query is parsed with sqlglot (read="athena"), every Trino
function the backend uses is replaced by a DuckDB function written after Trino's source
(trinodb/trino, core/trino-main .../operator/scalar/ and io.trino.type), and the rest runs in
DuckDB. sqlglot's own translations are not trusted where the meaning differs (it maps
json_extract_scalar to ->>, which reads arrays and objects; contains() to a list test), so
each function is replaced before sqlglot writes DuckDB SQL, and a query using anything not
listed in _ALLOWED is refused with the node named: never a silent approximation.

- json_extract_scalar: Trino's legacy JSON path ($.key, $["key"], [n]) on JSON text; a string,
  number (its text as written) or boolean reads as text; an object, array or null, a missing
  key and JSON that does not parse are NULL; the first of duplicate keys wins (JsonExtract).
- regexp_like, regexp_replace: Trino's default regex library, Joni in Java syntax over UTF-8,
  run in a JVM (TrinoRegex.java beside this file, on Debian's libjruby-joni-java), searched as
  regexp_like searches and replaced as regexp_replace replaces (JoniRegexpFunctions: every
  match, $n and ${name} in the replacement). Without Java and the jars, rules whose query uses
  them are refused with that reason.
- from_iso8601_timestamp (in TRY): Joda's ISODateTimeFormat.dateTimeParser with the offset kept,
  milliseconds (calendar dates, 'T', hh[:mm[:ss]][.fraction], Z or +hh[:mm]); AT TIME ZONE,
  element_at, transform, split, rpad, replace, length, substr, IF, CASE, BETWEEN, integer
  arithmetic and casts, and the date parts mean in DuckDB what they mean in Trino for these
  values (code points, 1-based positions); concat is NULL when an argument is (DuckDB's
  skips NULLs, so it is written with ||).
- TRY_CAST(x AS IPADDRESS): Guava's InetAddresses.forString (no leading zeros, no zone); an
  IPv4 address is stored as ::ffff:a.b.c.d (IpAddressOperators).
- contains(network, address): IPv4-mapped addresses and networks count as IPv4; a network and
  an address of different families raise "IP address version should be the same", as Athena's
  Trino does (IpAddressFunctions; recent Trino answers false), so a rule that would abort on
  Athena aborts here.
- lower: code point by code point (airlift SliceUtf8.toLowerCase: no final sigma, no İ -> i̇).
- TRY_CAST(x AS DOUBLE): Java's Double.parseDouble (blanks trimmed, NaN, Infinity, d/f suffixes).
- TRY(part(from_iso8601_timestamp(x))): Joda's ISODateTimeFormat.dateTimeParser with the
  offset kept (calendar dates, 'T', hh[:mm[:ss]][.fraction], Z or +hh[:mm]); the part is read
  in the value's own offset, UTC without one (Athena's session zone).
- TRY(x): NULL where x fails (Trino catches invalid arguments and casts, which is all the
  functions above raise).
- JSON: json_parse, json_format, json_array_length, CAST(json AS ARRAY(JSON)),
  element_at(TRY_CAST(json AS MAP(VARCHAR, JSON)), key): a JSON value is held as the canonical
  text Trino's JSON type holds (JsonTypeUtil.jsonParse: Jackson's objects written back with sorted
  keys, the last duplicate key kept, non-integer numbers as Java doubles: 1.5, 1.0E16).
- any_match: true if an element matches, NULL if none does but the predicate is NULL for one,
  false otherwise (also for an empty array).

Tables: CloudTrail rules read the Athena CloudTrail table (duckdb_events.load_cloudtrail, the
DDL AWS documents); other rules read `events`, whose columns are the rule's fields, a dotted
field a struct path, each leaf a string column holding the value's text. An event whose values
for a field such a table cannot hold (a list on the path, a literal dotted key) is left out of
that rule's answer (Outcome.undecided; the reasons counted in Outcome.stats["undecided"]).
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import re

from . import Engine, Outcome
from ..errors import Unsupported
from ..evaluate import field_values, text
from ..nodes import Match, Op, walk

_TRINO_ERROR = "athena engine: Trino would fail the query"


class NotEmulated(Exception):
    """The query uses SQL this engine does not reproduce exactly."""


class Athena(Engine):
    name = "athena"

    def __init__(self, time_field: str | None = "eventTime", fallback: bool = False, regex=None):
        super().__init__(time_field, fallback)
        # Trino's regex library (find, replace): given, or a Joni JVM started at the first run
        # where Java and the jars are installed, stopped by close()
        self.regex, self._own_regex = regex, False

    def close(self):
        if self._own_regex:
            self.regex.close()
            self.regex, self._own_regex = None, False

    def unavailable(self):
        try:
            import duckdb  # noqa: F401
            import numpy  # noqa: F401   (DuckDB's Python functions need it)
            import sqlglot  # noqa: F401
        except ImportError as e:
            return f"athena engine needs duckdb, numpy and sqlglot: {e}"
        return None

    def run(self, rules, events, correlations=(), show=(), progress=None) -> Outcome:
        from .. import duckdb_events
        from ..backends.sql import Athena as AthenaBackend

        if self.regex is None and Joni.available():
            self.regex, self._own_regex = Joni(), True
        out = Outcome()
        reasons = out.stats.setdefault("undecided", {})   # why events are undecided -> count
        backend = AthenaBackend()
        con = duckdb_events.connect()
        functions(con, self.regex)
        cloudtrail_loaded = False
        try:
            for n, rule in enumerate(rules):
                try:
                    query = backend.convert(rule)
                    sql = translate(query, regex=self.regex is not None)
                except Unsupported as e:
                    out.refused[n] = e.message
                    continue
                except NotEmulated as e:
                    out.refused[n] = f"athena engine: {e}"
                    continue
                if backend.mapping.logsource:   # the CloudTrail table
                    if not cloudtrail_loaded:
                        duckdb_events.load_cloudtrail(con, events, backend.table().strip('"'))
                        cloudtrail_loaded = True
                    undecided = {}
                else:
                    try:
                        undecided = load_generic(con, backend.table(), rule.query, events)
                    except NotEmulated as e:
                        out.refused[n] = f"athena engine: {e}"
                        continue
                try:
                    rows = con.execute(f"SELECT row_id FROM ({sql}) AS q").fetchall()
                except Exception as e:   # duckdb.Error, or a Trino error raised by a function
                    out.failed[n] = f"{_TRINO_ERROR}: {_reason(e)}"
                    continue
                out.matches[n] = sorted(r for (r,) in rows if r not in undecided)
                if undecided:
                    out.undecided[n] = sorted(undecided)
                    for reason in undecided.values():
                        reasons[reason] = reasons.get(reason, 0) + 1
        finally:
            con.close()
        for c, _ in enumerate(correlations):
            out.refused[f"c{c}"] = "athena engine: correlations are not executed here"
        return out


def _reason(e: Exception) -> str:
    message = str(e)
    found = re.search(r"TrinoError: (.*)", message)
    return found.group(1) if found else message.splitlines()[0]


# --- the query: Trino functions replaced, everything else checked ---------------------------

_PARTS = {"Hour": "hour", "Minute": "minute", "Day": "day", "DayOfMonth": "day", "WeekOfYear": "week",
          "Week": "week", "Month": "month", "Year": "year"}
# The node types the backend's Athena SQL uses whose meaning DuckDB shares with Trino.
_ALLOWED = {"Select", "Star", "From", "Table", "Where", "Identifier", "Column", "Dot", "Literal",
            "Boolean", "Null", "And", "Or", "Not", "Paren", "EQ", "NEQ", "GT", "GTE", "LT", "LTE",
            "In", "Is", "Like", "Escape", "Coalesce", "Lambda", "DataType", "Anonymous", "Case", "If",
            "Cast", "Try", "Neg", "DPipe", "AtTimeZone", "Between", "Bracket", "Array", "Split",
            "Pad", "Replace", "Transform", "ArrayElementAt", "Flatten", "ArrayFilter", "ArraySize",
            "Length", "Substring", "Abs", "Add", "Sub", *_PARTS}
_OURS = {"trino_json_extract_scalar", "trino_regexp_like", "trino_regexp_replace", "trino_contains",
         "trino_ipaddress", "trino_double", "trino_lower", "trino_time_part", "trino_from_iso8601_timestamp",
         "element_at", "transform", "split", "rpad", "replace", "trino_json_parse", "trino_json_array_length",
         "trino_json_array", "trino_json_member"}


def translate(athena_sql: str, regex: bool = True) -> str:
    """The Athena query as DuckDB SQL with Trino's meaning; NotEmulated names what is not."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(athena_sql, read="athena")

    def call(name, *args):
        return exp.Anonymous(this=name, expressions=list(args))

    def rewrite(node):
        kind = type(node).__name__
        if isinstance(node, exp.JSONExtractScalar):
            return call("trino_json_extract_scalar", node.this, exp.Literal.string(json.dumps(_keys(node.expression))))
        if isinstance(node, exp.RegexpLike):
            if not regex:
                raise NotEmulated("regexp_like needs Trino's regex library (Joni: Java and libjruby-joni-java)")
            if node.args.get("flag") is not None:
                raise NotEmulated("regexp_like with flags")
            return call("trino_regexp_like", node.this, node.expression)
        if isinstance(node, exp.RegexpReplace):
            if not regex:
                raise NotEmulated("regexp_replace needs Trino's regex library (Joni: Java and libjruby-joni-java)")
            if set(node.args) - {"this", "expression", "replacement"}:
                raise NotEmulated(f"{node.sql('trino')}")
            return call("trino_regexp_replace", node.this, node.expression,
                        node.args.get("replacement") or exp.Literal.string(""))
        if type(node).__name__ == "ParseJSON":
            return call("trino_json_parse", node.this)
        if isinstance(node, exp.JSONFormat):
            return node.this   # a JSON value is held as Trino's canonical JSON text already
        if kind == "Anonymous" and node.name.lower() == "json_array_length":
            return call("trino_json_array_length", *node.expressions)
        if isinstance(node, exp.Bracket) and isinstance(node.this, exp.Anonymous) \
                and node.this.name == "trino_json_map" and len(node.expressions) == 1:
            return call("trino_json_member", node.this.expressions[0], node.expressions[0])
        if isinstance(node, exp.FromISO8601Timestamp):
            return call("trino_from_iso8601_timestamp", node.this)
        if isinstance(node, exp.Concat):   # NULL if any part is NULL, as in Trino
            parts = node.expressions
            joined = parts[0]
            for part in parts[1:]:
                joined = exp.DPipe(this=joined, expression=part, safe=False)
            return exp.Paren(this=joined)
        if isinstance(node, exp.AtTimeZone):
            if node.args.get("zone") is None or node.args["zone"].sql("trino") != "'UTC'":
                raise NotEmulated(f"{node.sql('trino')}")
            return node
        if isinstance(node, exp.ArrayContains):   # sqlglot reads Trino's contains(network, ip) so
            return call("trino_contains", node.this, node.expression)
        if isinstance(node, (exp.TryCast, exp.Cast)):
            to = node.to.sql("trino").upper()
            if to == "IPADDRESS" and isinstance(node, exp.TryCast):
                return call("trino_ipaddress", node.this)
            if to == "DOUBLE" and isinstance(node, exp.TryCast):
                return call("trino_double", node.this)
            if to in ("VARCHAR", "INTEGER") and isinstance(node, exp.Cast) and not isinstance(node, exp.TryCast):
                return node   # to INTEGER: both read an optional '-' and digits, and fail otherwise
            if to == "ARRAY(JSON)" and not isinstance(node, exp.TryCast):
                return call("trino_json_array", node.this)
            if to == "MAP(VARCHAR, JSON)" and isinstance(node, exp.TryCast):   # element_at(...) follows
                return call("trino_json_map", node.this)
            raise NotEmulated(f"{node.sql('trino')}")
        if isinstance(node, exp.Lower):
            return call("trino_lower", node.this)
        if isinstance(node, exp.Try):
            inner = node.this
            if type(inner).__name__ in _PARTS and isinstance(inner.this, exp.FromISO8601Timestamp):
                return call("trino_time_part", exp.Literal.string(_PARTS[type(inner).__name__]),
                            inner.this.this)
            return node   # TRY: NULL where the inner expression fails; DuckDB's TRY does the same
        if kind == "Anonymous" and node.name.lower() not in _OURS | {"any_match"}:
            raise NotEmulated(f"the function {node.name}")
        return node

    for node in reversed(list(tree.walk())):   # children first: a rewrite keeps rewritten children
        new = rewrite(node)
        if new is not node:
            node.replace(new)
    for node in tree.walk():
        kind = type(node).__name__
        if kind not in _ALLOWED:
            raise NotEmulated(f"{kind}: {node.sql('trino')[:80]}")
    # any_match last: its lambda body is DuckDB SQL by now
    for node in list(tree.find_all(exp.Anonymous)):
        if node.name.lower() == "any_match":
            node.replace(sqlglot.parse_one(_any_match(*node.expressions), read="duckdb"))
    return tree.sql(dialect="duckdb")


def _keys(path) -> list:
    """The keys of a JSON path as sqlglot read it ($.a, $["a b"], [0]): each a member name or,
    on an array, an index (Trino's JsonPathTokenizer makes both one token)."""
    from sqlglot import exp

    if not isinstance(path, exp.JSONPath) or not isinstance(path.expressions[0], exp.JSONPathRoot):
        raise NotEmulated(f"the JSON path {path.sql('trino')}")
    keys = []
    for part in path.expressions[1:]:
        if not isinstance(part, (exp.JSONPathKey, exp.JSONPathSubscript)) or not isinstance(part.this, (str, int)):
            raise NotEmulated(f"the JSON path {path.sql('trino')}")
        keys.append(str(part.this))
    return keys


def _any_match(array, lam) -> str:
    """Trino's any_match (ArrayAnyMatchFunction) in DuckDB: true, NULL (unknown for some
    element, false for the rest) or false (also for an empty array); NULL for a NULL array."""
    var = lam.expressions[0].sql("duckdb")
    body = lam.this.sql("duckdb")
    a = array.sql("duckdb")
    return (f"CASE WHEN {a} IS NULL THEN NULL "
            f"WHEN len(list_filter({a}, lambda {var}: {body})) > 0 THEN TRUE "
            f"WHEN len(list_filter({a}, lambda {var}: ({body}) IS NULL)) > 0 THEN NULL ELSE FALSE END")


# --- Trino's functions in Python -------------------------------------------------------------

def functions(con, regex=None):
    """Register the trino_* functions on a DuckDB connection."""
    import duckdb
    from duckdb.sqltypes import BIGINT, BOOLEAN, DOUBLE, TIMESTAMP_TZ, VARCHAR

    def add(name, fn, args, result):
        # Trino's functions return NULL for a NULL argument; a NULL result is allowed
        strict = {1: lambda a: None if a is None else fn(a),    # DuckDB reads the arity
                  2: lambda a, b: None if a is None or b is None else fn(a, b),
                  3: lambda a, b, c: None if None in (a, b, c) else fn(a, b, c)}[len(args)]
        con.create_function(name, strict, args, result, type="native", null_handling="special",
                            side_effects=False)

    add("trino_json_extract_scalar", json_extract_scalar, [VARCHAR, VARCHAR], VARCHAR)
    add("trino_lower", lower, [VARCHAR], VARCHAR)
    add("trino_ipaddress", ipaddress_cast, [VARCHAR], VARCHAR)
    add("trino_contains", contains, [VARCHAR, VARCHAR], BOOLEAN)
    add("trino_double", parse_double, [VARCHAR], DOUBLE)
    add("trino_time_part", time_part, [VARCHAR, VARCHAR], BIGINT)
    add("trino_from_iso8601_timestamp", from_iso8601_timestamp, [VARCHAR], TIMESTAMP_TZ)
    add("trino_json_parse", json_parse, [VARCHAR], VARCHAR)
    add("trino_json_array_length", json_array_length, [VARCHAR], BIGINT)
    add("trino_json_array", json_array, [VARCHAR], duckdb.list_type(VARCHAR))
    add("trino_json_member", json_member, [VARCHAR, VARCHAR], VARCHAR)
    if regex is not None:
        add("trino_regexp_like", lambda s, p: regex.find(p, s), [VARCHAR, VARCHAR], BOOLEAN)
        add("trino_regexp_replace", lambda s, p, r: regex.replace(p, s, r), [VARCHAR, VARCHAR, VARCHAR], VARCHAR)


class _Number(str):
    """A JSON number, kept as the text it was written as (Jackson's getText())."""


def _no_constant(name):
    raise ValueError(name)   # NaN, Infinity: not JSON to Jackson


def json_extract_scalar(json_text: str, keys: str):
    keys = json.loads(keys)
    try:
        value = json.loads(json_text, object_pairs_hook=_pairs, parse_int=_Number, parse_float=_Number,
                           parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None
    for key in keys:
        if isinstance(value, _Object):
            found = [v for k, v in value if k == key]
            if not found:
                return None
            value = found[0]
        elif isinstance(value, list):
            index = _java_int(key)
            if index is None or not 0 <= index < len(value):
                return None
            value = value[index]
        else:
            return None   # "Expected a JSON object or array": a parse error, so NULL
    if isinstance(value, (_Object, list)) or value is None:
        return None
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


class _Object(list):
    """A JSON object as its (key, value) pairs: duplicate keys kept, in order."""


def _pairs(pairs):
    return _Object(pairs)


def _java_int(text: str):
    """Integer.parseInt: an optional sign and ASCII digits, within 32 bits."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None
    n = int(text)
    return n if -2**31 <= n < 2**31 else None


# Trino's JSON type (JsonTypeUtil.jsonParse): the text read by Jackson into Java objects (the
# last of duplicate keys wins; integers stay integers, other numbers become doubles) and written
# back compactly with object keys sorted; a value is held here as that canonical text.

class _JsonDouble(float):
    """A JSON number Jackson reads as a Java double."""


def _canonical(value) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{_canonical(k)}:{_canonical(value[k])}" for k in sorted(value, key=_utf16)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    if isinstance(value, _JsonDouble):
        return java_double(value)
    if isinstance(value, str):
        return '"' + "".join(_JACKSON_ESCAPES.get(c, c if c >= " " else f"\\u{ord(c):04X}") for c in value) + '"'
    return json.dumps(value)   # integers, true, false, null


# Jackson's escapes (CharTypes: these short ones, other control characters \u00XX in upper case)
_JACKSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _utf16(key: str):
    return key.encode("utf-16-be")   # String.compareTo orders by UTF-16 code units


def java_double(x: float) -> str:
    """Double.toString: shortest digits, plain between 10^-3 and 10^7, else d.dddEn."""
    import decimal
    import math
    if x == 0:
        return "-0.0" if math.copysign(1, x) < 0 else "0.0"
    if math.isinf(x) or math.isnan(x):
        return {"inf": "Infinity", "-inf": "-Infinity"}.get(repr(x), "NaN")
    sign = "-" if x < 0 else ""
    digits, exponent = decimal.Decimal(repr(abs(x))).normalize().as_tuple()[1:]
    digits = "".join(map(str, digits))
    point = len(digits) + exponent          # the decimal point's place after the first digit
    if 1e-3 <= abs(x) < 1e7:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        whole, frac = digits[:point].ljust(point, "0"), digits[point:]
        return f"{sign}{whole}.{frac or '0'}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{point - 1}"


def _json_value(text: str):
    return json.loads(text, parse_float=_JsonDouble, parse_constant=_no_constant)


def json_parse(text: str) -> str:
    try:
        return _canonical(_json_value(text))
    except (ValueError, RecursionError):
        raise TrinoError(f"Cannot convert '{text}' to JSON") from None


def json_array_length(text: str):
    try:
        value = _json_value(text)
    except (ValueError, RecursionError):
        return None
    return len(value) if isinstance(value, list) else None


def json_array(text: str):
    """CAST(json AS ARRAY(JSON)): the elements, each canonical; an error for anything else."""
    value = _json_value(text)
    if value is None:
        return None
    if not isinstance(value, list):
        raise TrinoError(f"Cannot cast to array(json). Expected a json array, but got {text[:20]}")
    return [_canonical(v) for v in value]


def json_member(text: str, key: str):
    """element_at(TRY_CAST(json AS MAP(VARCHAR, JSON)), key): the member's canonical JSON, NULL
    when the value is no object or lacks the key."""
    value = _json_value(text)
    if not isinstance(value, dict) or key not in value:
        return None
    return _canonical(value[key])


def lower(s: str) -> str:
    # Character.toLowerCase per code point: the one-to-one mappings only.
    return "".join("i" if c == "\u0130" else c.lower() if len(c.lower()) == 1 else c for c in s)


def _inet(s: str):
    """Guava's InetAddresses.forString: an IPv4 dotted quad or an IPv6 text, else None."""
    if not s or not re.fullmatch(r"[0-9A-Fa-f:.]+", s):
        return None
    try:
        address = ipaddress.ip_address(s)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped   # InetAddress.getByAddress makes it an Inet4Address
    return address


def ipaddress_cast(s: str):
    """TRY_CAST(s AS IPADDRESS) as 32 hex digits (16 bytes; IPv4 as ::ffff:a.b.c.d), or NULL."""
    address = _inet(s)
    if address is None:
        return None
    if address.version == 4:
        address = ipaddress.IPv6Address("::ffff:" + str(address))
    return f"{int(address):032x}"


class TrinoError(Exception):
    pass


def contains(network: str, address_hex: str):
    """IpAddressFunctions.contains as Athena's Trino has it (a family mismatch is an error)."""
    if "/" not in network:
        raise TrinoError("Invalid CIDR")
    base_text, prefix_text = network.split("/", 1)
    base = _inet(base_text)
    if base is None:
        raise TrinoError("Invalid network IP address")
    prefix = int(prefix_text)
    bits = base.max_prefixlen
    if prefix > bits:
        raise TrinoError("Prefix length exceeds address length")
    if base.version == 4 and int(base) & ((1 << (32 - prefix)) - 1):
        raise TrinoError("Invalid CIDR")
    address = ipaddress.IPv6Address(int(address_hex, 16))
    address = address.ipv4_mapped or address
    if address.version != base.version:
        raise TrinoError("IP address version should be the same")
    return prefix == 0 or int(address) >> (bits - prefix) == int(base) >> (bits - prefix)


_JAVA_DOUBLE = re.compile(r"[+-]?(NaN|Infinity|(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?)[fFdD]?)")


def parse_double(s: str):
    """Double.parseDouble (what Trino's varchar-to-double cast calls), NULL where it throws.
    Hexadecimal floats are left out (the backend's NUMBER guard never lets them through)."""
    t = s.strip("".join(chr(c) for c in range(33)))   # String.trim(): every char <= ' '
    if not _JAVA_DOUBLE.fullmatch(t):
        return None
    return float(t.rstrip("fFdD").replace("Infinity", "inf"))


# Joda's ISODateTimeFormat.dateTimeParser(), calendar dates: date ['T' [time] [offset]].
_ISO = re.compile(r"(?P<y>[+-]?[0-9]{1,9})(?:-(?P<mo>[0-9]{1,2})(?:-(?P<d>[0-9]{1,2}))?)?"
                  r"(?:T(?:(?P<h>[0-9]{1,2})(?::(?P<mi>[0-9]{1,2})(?::(?P<s>[0-9]{1,2}))?)?"
                  r"(?P<f>[.,][0-9]{1,9})?)?"
                  r"(?P<z>Z|[+-](?P<oh>[0-9]{1,2})(?::?(?P<om>[0-9]{2})(?::?(?P<os>[0-9]{2})(?:[.,][0-9]{1,3})?)?)?)?)?")


def _joda(s: str):
    """The local time and its offset (a timedelta, UTC when the text has none), or None."""
    m = _ISO.fullmatch(s)
    if m is None:
        return None
    g = {k: int(v) for k, v in m.groupdict().items() if v is not None and k not in ("f", "z")}
    if g.get("oh", 0) > 23 or g.get("om", 0) > 59 or g.get("os", 0) > 59:
        return None
    fraction = (m.group("f") or ".")[1:]
    try:
        moment = datetime.datetime(g["y"], g.get("mo", 1), g.get("d", 1), g.get("h", 0), g.get("mi", 0),
                                   g.get("s", 0), int(fraction[:3].ljust(3, "0")) * 1000)   # milliseconds
    except (ValueError, OverflowError):
        return None
    sign = -1 if (m.group("z") or "").startswith("-") else 1
    offset = sign * datetime.timedelta(hours=g.get("oh", 0), minutes=g.get("om", 0), seconds=g.get("os", 0))
    return moment, offset


def time_part(part: str, s: str):
    """TRY(part(from_iso8601_timestamp(s))) in the value's own offset; NULL where it fails."""
    read = _joda(s)
    if read is None:
        return None
    moment = read[0]
    if part == "week":
        return moment.isocalendar()[1]
    return getattr(moment, part)


def from_iso8601_timestamp(s: str):
    """The instant, or NULL where Trino raises (TRY gives NULL then too)."""
    read = _joda(s)
    if read is None:
        return None
    moment, offset = read
    try:
        return moment.replace(tzinfo=datetime.timezone(offset))
    except ValueError:
        return None


# --- the generic table --------------------------------------------------------------------------

def load_generic(con, table: str, query, events) -> dict:
    """(Re)create `table` with a column per field of the query (a dotted field a struct path,
    each leaf a string column holding the value's text) and a row per event; returns
    {event no: reason} for the events such a table cannot hold as the evaluator reads them."""
    from .. import duckdb_events

    fields = sorted({f for m in walk(query) if isinstance(m, Match)
                     for f in ((m.field, m.value) if m.op is Op.FIELDREF else (m.field,)) if f})
    tree: dict = {}
    for f in fields:
        node = tree
        parts = f.split(".")
        for i, part in enumerate(parts):
            key = part.lower()   # Trino's column and member names are case-insensitive
            last = i == len(parts) - 1
            if key in node and (node[key][0] != part or (node[key][1] is None) != last):
                raise NotEmulated(f"no one table holds the fields {fields}: {part!r} would be both a value "
                                  "and a struct, or two columns differing in case")
            node = node.setdefault(key, (part, None if last else {}))[1]
            if node is None:
                break
    spec = _spec(tree)
    rows, excluded = [], {}
    for n, event in enumerate(events):
        row = _row(tree, event)
        for f in fields:
            held = _held(row, tree, f.split("."))
            want = [text(v) for v in field_values(event, f)]
            if held != want:
                excluded[n] = ("a struct table holds one value per field: a list or a literal dotted key "
                               "on a field's path has no column")
                break
        rows.append(row if n not in excluded else {})
    duckdb_events._load(con, table.strip('"'), spec, rows)
    return excluded


def _spec(tree):
    """duckdb_events' table spec: (column, key, VARCHAR or a struct's spec)."""
    return tuple((part, part, "VARCHAR" if sub is None else _spec(sub)) for part, sub in tree.values())


def _row(tree, obj):
    if not isinstance(obj, dict):
        return None
    row = {}
    for part, sub in tree.values():
        value = obj.get(part)
        if sub is None:
            row[part] = None if value is None or isinstance(value, list) else text(value)
        else:
            row[part] = _row(sub, value)
    return row


def _held(row, tree, parts) -> list:
    for i, part in enumerate(parts):
        if not isinstance(row, dict):
            return []
        row = row.get(tree[part.lower()][0])
        if i < len(parts) - 1:
            tree = tree[part.lower()][1]
    return [] if row is None else [row]


# --- Trino's regex library ---------------------------------------------------------------------

JONI_JARS = ("/usr/share/java/joni.jar", "/usr/share/java/jcodings.jar")   # Debian libjruby-joni-java


class Joni:
    """TrinoRegex.java (beside this file) compiled into a temporary folder and run as one JVM."""

    def __init__(self):
        import subprocess
        import tempfile
        from pathlib import Path

        self.dir = tempfile.mkdtemp(prefix="trino-regex-")
        classpath = ":".join(JONI_JARS)
        source = Path(__file__).with_name("TrinoRegex.java")
        subprocess.run(["javac", "-cp", classpath, "-d", self.dir, str(source)], check=True, capture_output=True)
        self.proc = subprocess.Popen(["java", "-cp", f"{self.dir}:{classpath}", "TrinoRegex"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, encoding="utf-8")
        self.cache = {}

    @staticmethod
    def available() -> bool:
        import os
        import shutil
        return bool(shutil.which("java") and shutil.which("javac")) and all(os.path.exists(j) for j in JONI_JARS)

    def _call(self, *fields):
        import base64
        if fields not in self.cache:
            line = "\t".join([fields[0], *(base64.b64encode(f.encode("utf-8")).decode() for f in fields[1:])])
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline().rstrip("\n")
            if answer.startswith("E"):
                raise TrinoError(base64.b64decode(answer[1:]).decode("utf-8"))
            self.cache[fields] = answer
        return self.cache[fields]

    def find(self, pattern: str, text: str) -> bool:
        return self._call("find", pattern, text) == "1"

    def replace(self, pattern: str, text: str, replacement: str) -> str:
        import base64
        return base64.b64decode(self._call("replace", pattern, text, replacement)).decode("utf-8")

    def close(self):
        import shutil
        self.proc.stdin.close()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

"""The pipe-search (Logpresso-style) queries, run: an interpreter of the `search` expressions
the backend writes, as an engine.

There is no Logpresso engine here, so this reads the `search` expressions the backend writes
the way the Araqne LogDB source (the engine Logpresso grew from; shared/research/logpresso.md
[S]) reads them, and runs them on rows made from the events:
- the parser's text rewrites (NFC, look-alike characters, tabs, line breaks) must leave the
  query unchanged, and a string literal may only use the escapes \\ and \" (ExpressionParser);
- precedence == > and > or; not() and the other functions as in query/expr/*.java, with
  their null rules (== false on null, not(null) null, `and` false on null, `or` skips it);
- `==` against a string constant is In.StringMatcher: v*, *v, *v* and exact, case-sensitive;
  any other `*` placement is the legacy regex path, which the backend must never reach;
- match(), lower() and double() run in a real JVM (JavaOracle.java, compiled with javac when
  the engine first runs): the engine is unavailable without a JDK.

A row holds one value per field (the mapping's columns): an event with a list on a field's
path cannot be a row, and is left undecided for the rules that read that field.
"""
from __future__ import annotations

import base64
import ipaddress
import json
import re
import shutil
import subprocess
import tempfile
import unicodedata
import weakref
from collections import Counter
from pathlib import Path

from .. import cloudtrail
from ..backends.pipesearch import _REWRITTEN
from ..backends.pipesearch import PipeSearch as PipeSearchBackend
from ..errors import TranspileError
from ..evaluate import strings
from . import Engine, Files, Loaded, Outcome, Read
from .evaluator import records


class PipeSearch(Engine):
    """The search expression of each rule's query, on a row per event; the JVM starts at the
    first run and stops with close() (or at exit)."""

    name = "pipesearch"

    def __init__(self, time_field: str | None = "eventTime", fallback: bool = False, mapping_file=None):
        super().__init__(time_field, fallback)
        self.mapping_file = mapping_file
        self._java = None

    def unavailable(self) -> str | None:
        if not Java.available():
            return "no JDK: java and javac must be on PATH (match() and lower() run in a JVM)"
        return None

    def close(self):
        if self._java is not None:
            self._java.close()
            self._java = None

    def run(self, rules, events, correlations=(), show=(), progress=None) -> Outcome:
        source = events.source if isinstance(events, Loaded) else events
        out = Outcome()
        if isinstance(source, Files):
            numbered = list(records(source, out.read))
        else:
            numbered = list(enumerate(source))
            out.read = Read(records=len(source))
        if self._java is None:
            self._java = Java()
        interpreter = Interpreter(self._java)
        backend = PipeSearchBackend(mapping_file=self.mapping_file)
        reasons = Counter()
        for n, rule in enumerate(rules):
            if progress is not None:
                progress("running rules", n + 1, len(rules))
            try:
                tree = parse(search_of(backend.convert(rule)))
                mapping = backend.mapping_for(rule)
            except TranspileError as e:
                out.refused[n] = e.message
                continue
            except SyntaxError as e:
                out.failed[n] = f"the search does not parse as Logpresso reads it: {e}"
                continue
            selected, undecided = [], []
            try:
                for k, event in numbered:
                    try:
                        if interpreter.passes(tree, Row(event, mapping)):
                            selected.append(k)
                    except NotRepresentable as e:
                        undecided.append(k)
                        reasons[str(e)] += 1
            except (ValueError, TypeError, NameError, AssertionError) as e:
                out.failed[n] = f"{type(e).__name__}: {e}"
                continue
            out.matches[n] = selected
            if undecided:
                out.undecided[n] = undecided
        if reasons:
            out.stats["undecided"] = dict(reasons)
        for c_no, c in enumerate(correlations):
            try:
                backend.convert_correlation(c)
            except TranspileError as e:
                out.refused[f"c{c_no}"] = e.message
            else:
                out.refused[f"c{c_no}"] = "the pipe-search interpreter runs no correlation queries"
        if show:
            chosen = {k for ks in out.matches.values() for k in ks}
            out.rows = {k: cloudtrail.values(e, show) for k, e in numbered if k in chosen}
        return out


def search_of(query: str) -> str:
    """The expression of the query's `| search` line."""
    lines = [line for line in query.splitlines() if line.startswith("| search ")]
    if len(lines) != 1:
        raise SyntaxError(f"{len(lines)} `| search` lines in the query")
    return lines[0][len("| search "):]


class NotRepresentable(Exception):
    """The event has a shape the mapping's row model does not describe (e.g. a list)."""


# --- the JVM side ----------------------------------------------------------------------------

class Java:
    """JavaOracle.java, compiled into a temporary folder and run as one JVM; close() (or the
    end of the process) stops it and removes the folder."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pipesearch-java-")
        self.proc = None
        self._stop = weakref.finalize(self, _stop_java, self)
        src = Path(__file__).parent / "JavaOracle.java"
        subprocess.run(["javac", "-d", self.dir, str(src)], check=True, capture_output=True)
        self.proc = subprocess.Popen(["java", "-cp", self.dir, "JavaOracle"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, encoding="utf-8")
        self.cache = {}

    @staticmethod
    def available() -> bool:
        return bool(shutil.which("java") and shutil.which("javac"))

    def call(self, op, *args):
        key = (op, *args)
        if key not in self.cache:
            line = "\t".join([op, *(base64.b64encode(a.encode("utf-8")).decode() for a in args)])
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline().rstrip("\n")
            if answer.startswith("E"):
                raise ValueError(f"java {op}{args!r}: {base64.b64decode(answer[1:]).decode()}")
            self.cache[key] = answer
        return self.cache[key]

    def find(self, pattern, s):
        return self.call("find", pattern, s) == "1"

    def lower(self, s):
        return base64.b64decode(self.call("lower", s)).decode("utf-8")

    def parse_double(self, s):
        answer = self.call("double", s)
        return None if answer == "-" else float(base64.b64decode(answer).decode())

    def double_text(self, x: float):
        return base64.b64decode(self.call("dtoa", repr(x))).decode()

    def close(self):
        self._stop()


def _stop_java(java):
    if java.proc is not None:
        java.proc.stdin.close()
        java.proc.wait()
    shutil.rmtree(java.dir, ignore_errors=True)


# --- text rewrites and tokens -------------------------------------------------------------------

def rewritten(query: str) -> str:
    """The text ExpressionParser.parse actually tokenizes."""
    s = unicodedata.normalize("NFC", query)
    s = "".join(" " if c in "\u200b\u2060\ufeff" else "-" if c in _REWRITTEN else c for c in s)
    return s.replace("\t", "    ").replace("\n", " ").replace("\r", " ")


_OPS = ["==", "!=", ">=", "<=", ">", "<", "+", "-", "*", "/", ","]
_PREC = {"or": 300, "and": 310, "==": 400, "!=": 400, ">=": 410, "<=": 410, ">": 410, "<": 410}


def tokenize(expr: str) -> list:
    """('str', text) | ('num', n) | ('name', word) | ('op', symbol) | ('(' | ')')."""
    out, i = [], 0
    while i < len(expr):
        c = expr[i]
        if c == " ":
            i += 1
        elif c == '"':
            j, buf = i + 1, []
            while True:
                if j >= len(expr):
                    raise SyntaxError("unterminated string")
                if expr[j] == "\\":
                    if j + 1 >= len(expr) or expr[j + 1] not in '\\"':
                        raise SyntaxError(f"invalid escape at {j}: {expr[j:j + 2]!r}")
                    buf.append(expr[j + 1])
                    j += 2
                elif expr[j] == '"':
                    break
                else:
                    buf.append(expr[j])
                    j += 1
            out.append(("str", "".join(buf)))
            i = j + 1
        elif c in "()":
            out.append((c,))
            i += 1
        else:
            op = next((o for o in _OPS if expr.startswith(o, i)), None)
            if op:
                out.append(("op", op))
                i += len(op)
                continue
            j = i
            while j < len(expr) and expr[j] not in ' "(),' and not any(expr.startswith(o, j) for o in _OPS):
                j += 1
            word = expr[i:j]
            if re.fullmatch(r"\d+", word):
                out.append(("num", int(word)))
            elif re.fullmatch(r"\d+\.\d*|\.\d+", word):
                out.append(("num", float(word)))
            elif word in ("and", "or"):
                out.append(("op", word))
            else:
                out.append(("name", word))
            i = j
    return out


# --- parser: precedence climbing over the tokens -------------------------------------------------

class Parser:
    def __init__(self, tokens):
        self.t, self.i = tokens, 0

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, *want):
        tok = self.peek()
        if tok is None or (want and tok[0] not in want):
            raise SyntaxError(f"expected {want} at token {self.i}, got {tok}")
        self.i += 1
        return tok

    def expr(self, min_prec=0):
        left = self.unary()
        while True:
            tok = self.peek()
            if not tok or tok[0] != "op" or tok[1] not in _PREC or _PREC[tok[1]] < min_prec:
                return left
            self.i += 1
            right = self.expr(_PREC[tok[1]] + 1)          # left-associative
            left = ("bin", tok[1], left, right)

    def unary(self):
        tok = self.take()
        if tok == ("op", "-"):
            num = self.take("num")
            return ("const", -num[1])
        if tok[0] == "(":
            inner = self.expr()
            self.take(")")
            return inner
        if tok[0] == "str":
            return ("const", tok[1])
        if tok[0] == "num":
            return ("const", tok[1])
        if tok[0] == "name":
            if self.peek() == ("(",):
                self.i += 1
                args = []
                if self.peek() != (")",):
                    args.append(self.expr())
                    while self.peek() == ("op", ","):
                        self.i += 1
                        args.append(self.expr())
                self.take(")")
                return ("call", tok[1], args)
            constants = {"true": True, "false": False, "null": None}
            return ("const", constants[tok[1]]) if tok[1] in constants else ("field", tok[1])
        raise SyntaxError(f"unexpected {tok}")


def parse(expr: str):
    if rewritten(expr) != expr:
        raise SyntaxError("the parser's rewrites would change this expression")
    p = Parser(tokenize(expr))
    tree = p.expr()
    if p.peek() is not None:
        raise SyntaxError(f"trailing tokens from {p.i}: {p.t[p.i:]}")
    return tree


def literals(tree) -> list:
    """Every string constant of a parsed expression, in order."""
    if tree[0] == "const":
        return [tree[1]] if isinstance(tree[1], str) else []
    if tree[0] == "bin":
        return literals(tree[2]) + literals(tree[3])
    if tree[0] == "call":
        return [s for a in tree[2] for s in literals(a)]
    return []


# --- evaluation --------------------------------------------------------------------------------

class Interpreter:
    """Runs a parsed search expression on a Row; Java's own regex, lower() and double()."""

    def __init__(self, java: Java):
        self.java = java

    def tostring(self, v) -> str:
        """Java toString() of a row value (HashMap/ArrayList forms for maps and lists)."""
        if isinstance(v, str):
            return v
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            return self.java.double_text(v)
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}={self.tostring(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(self.tostring(x) for x in v) + "]"
        if v is None:
            return "null"
        raise TypeError(type(v))

    def passes(self, tree, row) -> bool:
        """Search.java: a row goes on when the expression is true (or non-null, non-boolean)."""
        v = self.eval(tree, row)
        return v is True or (v is not None and not isinstance(v, bool))

    def eval(self, node, row):
        kind = node[0]
        if kind == "const":
            return node[1]
        if kind == "field":
            return row.get(node[1])
        if kind == "bin":
            return self.binary(node[1], node[2], node[3], row)
        return self.call(node[1], node[2], row)

    def binary(self, op, lhs, rhs, row):
        if op == "and":
            for part in (lhs, rhs):
                v = self.eval(part, row)
                if v is None or v is False:
                    return False
            return True
        if op == "or":
            for part in (lhs, rhs):
                v = self.eval(part, row)
                if v is not None and v is not False:
                    return True
            return False
        left = self.eval(lhs, row)
        if op == "==":
            if rhs[0] == "const" and isinstance(rhs[1], str):
                return left is not None and string_matcher(rhs[1], self.tostring(left))
            right = self.eval(rhs, row)
            if left is None or right is None:
                return False
            return self.compare(left, right) == 0
        right = self.eval(rhs, row)
        if left is None or right is None:
            return None
        c = self.compare(left, right)
        return {"<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0, "!=": c != 0}[op]

    def compare(self, a, b) -> int:
        """ObjectComparator: numbers numerically, strings with compareToIgnoreCase."""
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            return (a > b) - (a < b)
        if isinstance(a, str) and isinstance(b, str):
            fa = [c.upper().lower() for c in a]
            fb = [c.upper().lower() for c in b]
            return (fa > fb) - (fa < fb)
        raise TypeError(f"compare {a!r} {b!r}")

    def call(self, name, args, row):
        if name == "in":
            return self.in_(args, row)
        v = [self.eval(a, row) for a in args]
        if name == "not":
            return None if not isinstance(v[0], bool) else not v[0]
        if name == "lower":
            return None if v[0] is None else self.java.lower(self.tostring(v[0]))
        if name == "string":
            return None if v[0] is None else self.tostring(v[0])
        if name == "match":
            assert args[1][0] == "const", "match() needs a constant pattern"
            return False if v[0] is None else self.java.find(v[1], self.tostring(v[0]))
        if name == "contains":
            if v[0] is None or v[1] is None:
                return None
            return self.tostring(v[1]) in self.tostring(v[0])
        if name == "valueof":
            if isinstance(v[0], dict) and isinstance(v[1], str):
                return v[0].get(v[1])
            if isinstance(v[0], list) and isinstance(v[1], int) and 0 <= v[1] < len(v[0]):
                return v[0][v[1]]
            return None
        if name == "isnull":
            return v[0] is None
        if name == "isnotnull":
            return v[0] is not None
        if name == "nvl":
            return v[1] if v[0] is None else v[0]
        if name == "double":
            if v[0] is None:
                return None
            s = self.tostring(v[0])
            return None if s == "" else self.java.parse_double(s)
        if name == "network":
            return network(v[0], v[1])
        if name == "field":
            return row.get(v[0])
        raise NameError(f"unknown function {name}")

    def in_(self, args, row):
        """In.NewIn: items without `*` by exact (type-sensitive) membership, others by StringMatcher."""
        value = self.eval(args[0], row)
        if value is None:
            return False
        for item in args[1:]:
            term = self.eval(item, row)
            if isinstance(term, str) and "*" not in term:
                if isinstance(value, str) and value == term:
                    return True
            elif isinstance(term, str):
                if isinstance(value, str) and string_matcher(term, value):
                    return True
            elif term == value and type(term) is type(value):
                return True
        return False


def string_matcher(term: str, s: str) -> bool:
    """In.StringMatcher (used by == with a string constant)."""
    count = term.count("*")
    if count == 0:
        return s == term
    if count == 1 and term.startswith("*"):
        return s.endswith(term[1:])
    if count == 1 and term.endswith("*"):
        return s.startswith(term[:-1])
    if count == 2 and term.startswith("*") and term.endswith("*"):
        return term[1:-1] in s
    raise AssertionError(f"== {term!r} takes the legacy case-insensitive regex path")


def network(value, bits):
    """Network.java with Araqne's InetAddresses.forString; IPv4-mapped IPv6 reads as IPv4,
    as Java's InetAddress.getByAddress makes it."""
    if value is None or not isinstance(bits, int) or not 0 <= bits <= 128:
        return None
    s = str(value)
    if not s or any(c not in ".:" and not c.isdigit() and c.lower() not in "abcdef" for c in s):
        return None
    try:
        if ":" in s:
            ip = ipaddress.IPv6Address(s)
            ip = ip.ipv4_mapped or ip
        else:
            parts = s.split(".")
            if len(parts) != 4 or any(not p.isdigit() or (len(p) > 1 and p[0] == "0") for p in parts):
                return None
            ip = ipaddress.IPv4Address(s)
    except ValueError:
        return None
    if bits > ip.max_prefixlen:
        return None
    net = ipaddress.ip_network(f"{ip}/{bits}", strict=False).network_address
    if net.version == 6:
        return ":".join(f"{int(h, 16):x}" for h in net.exploded.split(":"))
    return str(net)


# --- rows: what a Logpresso table would hold for an event ---------------------------------------

def scalar(event, name):
    """The one value of a dotted field, walking objects only (the evaluator's lookup without
    entering lists); objects become their compact JSON text. None when missing."""
    found = []
    _walk(event, name.split("."), found)
    values = [v for v in found if v is not None]
    if len(values) > 1:
        raise NotRepresentable(f"{name} has {len(values)} values")
    if not values:
        return None
    v = values[0]
    if isinstance(v, list):
        raise NotRepresentable(f"{name} is a list")
    if isinstance(v, dict):
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    return v


def _walk(obj, parts, out):
    if not parts:
        out.append(obj)
        return
    if isinstance(obj, list):
        raise NotRepresentable("a list on the path")
    if isinstance(obj, dict):
        for i in range(len(parts), 0, -1):
            key = ".".join(parts[:i])
            if key in obj:
                _walk(obj[key], parts[i:], out)


class Row:
    """A Logpresso row for an event under a mapping: mapped columns, map columns (json), the
    raw text `line` for keywords, and (unmapped: keep) every other name as itself."""

    def __init__(self, event, mapping):
        self.event, self.mapping = event, mapping
        self.columns = {}
        for sigma, target in mapping.fields.items():
            self.columns[target.column] = ("scalar", sigma)
        for sigma, column in mapping.json.items():
            self.columns[column] = ("map", sigma)
        keywords = mapping.extra.get("pipesearch", {}).get("keywords")
        if keywords:
            self.columns[keywords] = ("line", None)

    def get(self, name):
        kind, sigma = self.columns.get(name, ("scalar", name if self.mapping.unmapped == "keep" else None))
        if sigma is None and kind == "scalar":
            return None
        if kind == "line":
            return "\n".join(strings(self.event, []))
        if kind == "map":
            value = self.event.get(sigma) if isinstance(self.event, dict) else None
            return value
        return scalar(self.event, sigma)

"""The differential fuzzer's parts: random valid rules, events built to hit them, and the loop
that runs every engine and compares each with the evaluator (tests/test_fuzz.py runs it with a
fixed seed, bench/fuzz.py longer with any seed; tests/test_engines_agree.py runs the golden
cases through the same loop).

Rules: one to three selections and filters over a few fields, each field with a modifier
chain drawn from every legal family (contains/startswith/endswith, all, cased, neq, windash,
expand, base64/base64offset after utf16*, re with i/m/s, cidr, exists, null, lt/lte/gt/gte,
time parts, fieldref, numbers and booleans, keywords), joined by a random condition (and,
or, not, parentheses, 1 of / all of). Events: for each field, a value made from the rule's
own values (so that rules do fire: case changed, wrapped, dashes swapped, encoded) or a near
miss, or hostile values: quotes, backslashes, %, _, *, ?, Unicode, control characters, "",
numbers, booleans, null, objects, lists of scalars and of objects, IPv4 and IPv6 addresses.
Two shapes: generic events, and CloudTrail records whose JSON members (requestParameters...)
hold anything.
"""
from __future__ import annotations

import base64
import re
from collections import Counter
from dataclasses import dataclass, field

from hypothesis import strategies as st

from transpiler.errors import TranspileError
from transpiler.evaluate import matches
from transpiler.rule import rule_from_dict

CLOUDTRAIL = {"product": "aws", "service": "cloudtrail"}
GENERIC = {"category": "test"}   # no built-in mapping: every backend's generic table

# --- values --------------------------------------------------------------------------------

WORDS = ["foo", "Bar", "evil.exe", "-enc", "/c", "a b", "x-y", "C:\\Windows\\", "100%", "a_b", "'", '"',
         "\\", "é", "İ", "ΑΣ", "\u212a", "ß", "\n", "\t", "\x01", "\u2013", "--", "{", "[", "$", ".",
         "admin", "CreateUser", "22", "1e2", "true", "null"]
STRINGS = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map("".join)
REGEXES = [("^foo", ["foobar", "xfoo"]), ("bar$", ["foobar", "bar\n", "barx"]), ("(?i)ev[a-z]l", ["EVIL", "e-il"]),
           ("a.b", ["a\nb", "aXb", "ab"]), ("\\d{2}", ["x22", "x2"]), ("\\s-e", [" -enc", "-e"]),
           ("(?m)^x$", ["a\nx\nb", "x\n", "ax"]), ("\\bfoo\\b", ["a foo b", "afoo"]), ("[[:alpha:]]+1", ["ab1", "1"]),
           ("é|ß", ["é", "SS"]), ("^$", ["", "x"]), ("\\x41", ["A", "a"])]
NETWORKS = [("10.0.0.0/8", ["10.1.2.3", "11.0.0.1", "::ffff:10.1.2.3", "010.1.2.3"]),
            ("192.168.1.0/24", ["192.168.1.77", "192.168.2.1"]),
            ("2001:db8::/32", ["2001:db8::1", "2001:db9::1", "10.0.0.1"]),
            ("::ffff:10.0.0.0/104", ["::ffff:10.0.0.5", "10.0.0.5"])]
TIMES = ["2024-06-15T03:30:59Z", "2024-06-15T03:30:59.123+05:30", "2024-06-15 03:30:59", "2024-06-15",
         "2024-06-15T23:59:00-01:00", "20240615T033059", "not a time", "2024-02-30T00:00:00Z"]
NUMBERS = [0, 1, 5, 22, 22.0, -3, 1e16, 2.5]
NUMBER_TEXTS = ["5", " 5 ", "5.0", "22", "1e1", "inf", "NaN", "0x10", "+3", "", "1_000"]
PLACEHOLDERS = {"pl": ["adm", "Root*"], "one": ["svc"]}


def _sigma_escape(s: str) -> str:
    return "".join("\\" + c if c in "*?\\" else c for c in s)


@dataclass
class Term:
    """One field condition of a selection: `field|mods: value(s)` and texts that hit it."""

    field: str | None
    mods: tuple
    values: list
    hits: list = field(default_factory=list)     # event values that satisfy it (or nearly)

    @property
    def key(self) -> str:
        return "|".join([self.field or ""] + list(self.mods)) if (self.field or self.mods) else ""


@st.composite
def plain_value(draw):
    """A Sigma string value (wildcards and escapes allowed) and a text it matches."""
    parts, hit = [], []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["word", "word", "word", "star", "one", "escaped"]))
        if kind == "word":
            w = draw(st.sampled_from(WORDS))
            parts.append(_sigma_escape(w))
            hit.append(w)
        elif kind == "star":
            parts.append("*")
            hit.append(draw(st.sampled_from(["", "xx", "\n", "é"])))
        elif kind == "one":
            parts.append("?")
            hit.append(draw(st.sampled_from(["x", "\n", "İ"])))
        else:
            c = draw(st.sampled_from(["*", "?", "\\"]))
            parts.append("\\" + c)
            hit.append(c)
    return "".join(parts), "".join(hit)


def _case(draw, s: str) -> str:
    return draw(st.sampled_from([s, s.upper(), s.lower(), s.swapcase()]))


@st.composite
def term(draw, field_name, shape, fields):
    """A field condition on field_name, with the texts that hit it."""
    families = ["plain", "plain", "plain", "encoded", "re", "cidr", "exists", "null",
                "compare", "time", "fieldref", "scalar", "windash", "expand"]
    if field_name == "eventTime":   # a datetime column in Sentinel: times are what rules test there
        families = ["time", "time", "exists"]
    family = draw(st.sampled_from(families))
    if family == "plain":
        pos = draw(st.sampled_from(["", "contains", "startswith", "endswith"]))
        pairs = draw(st.lists(plain_value(), min_size=1, max_size=3))
        mods = [pos] if pos else []
        if len(pairs) > 1 and draw(st.booleans()):
            mods.append("all")
        cased = draw(st.booleans()) and draw(st.booleans())
        if cased:
            mods.append("cased")
        if draw(st.integers(0, 5)) == 0:
            mods.append("neq")
        hits = []
        for _, h in pairs:
            h = h if cased else _case(draw, h)
            hits.append({"": h, "contains": f"a{h}z", "startswith": f"{h}z", "endswith": f"a{h}"}[pos])
        if "all" in mods:
            hits.append(" ".join(hits))
        return Term(field_name, tuple(mods), [v for v, _ in pairs], hits)
    if family == "windash":
        word = draw(st.sampled_from(["-enc", "/c", "-foo -bar", "x -y", "--z"]))
        words = [word] + ([draw(st.sampled_from(["-bar", "/q"]))] if draw(st.booleans()) else [])
        mods = ["windash", "contains"] + (["all"] if len(words) > 1 and draw(st.booleans()) else [])
        swapped = [w.replace("-", draw(st.sampled_from(["/", "\u2013", "-"]))) for w in words]
        return Term(field_name, tuple(mods), words, swapped + [" ".join(swapped), f"cmd {words[0]}"])
    if family == "expand":
        value = draw(st.sampled_from(["%pl%", "%pl%-%one%", "x%one%*", "%pl%\\*"]))
        hits = ["adm", "Root-svc", "xsvcq", "adm*", "ADM", "Rootsvc"]
        return Term(field_name, ("expand",), [value], hits)
    if family == "encoded":
        word = draw(st.sampled_from(["foo", "Invoke-Expr", "é", "ab"]))
        enc = draw(st.sampled_from(["", "utf16le|", "utf16be|", "utf16|", "wide|"]))
        b64 = draw(st.sampled_from(["base64", "base64offset|contains"]))
        raw = {"": word.encode(), "utf16le|": word.encode("utf-16-le"), "wide|": word.encode("utf-16-le"),
               "utf16be|": word.encode("utf-16-be"), "utf16|": b"\xff\xfe" + word.encode("utf-16-le")}[enc]
        shift = draw(st.integers(0, 2))
        hit = base64.b64encode(b"ab"[:shift] + raw + b"!").decode()
        exact = base64.b64encode(raw).decode()
        return Term(field_name, tuple((enc + b64).split("|")), [word], [hit, exact, f"x{exact}y", exact.lower()])
    if family == "re":
        chosen = draw(st.lists(st.sampled_from(REGEXES), min_size=1, max_size=2, unique_by=lambda x: x[0]))
        flags = [f for f in ("i", "m", "s") if draw(st.integers(0, 3)) == 0]
        mods = ["re", *flags] + (["all"] if len(chosen) > 1 and draw(st.booleans()) else [])
        return Term(field_name, tuple(mods), [p for p, _ in chosen], [s for _, ss in chosen for s in ss])
    if family == "cidr":
        chosen = draw(st.lists(st.sampled_from(NETWORKS), min_size=1, max_size=2, unique_by=lambda x: x[0]))
        mods = ("cidr",) + (("neq",) if draw(st.integers(0, 4)) == 0 else ())
        return Term(field_name, mods, [n for n, _ in chosen], [a for _, aa in chosen for a in aa])
    if family == "exists":
        return Term(field_name, ("exists",), [draw(st.booleans())], ["", "x"])
    if family == "null":
        return Term(field_name, (), [None], ["", "null"])
    if family == "compare":
        op = draw(st.sampled_from(["lt", "lte", "gt", "gte"]))
        limit = draw(st.sampled_from([5, 22, 2.5, -1, 0]))
        return Term(field_name, (op,), [limit], [limit, limit + 1, limit - 1, str(limit), f" {limit} "])
    if family == "time":
        part = draw(st.sampled_from(["minute", "hour", "day", "week", "month", "year"]))
        cmp = draw(st.sampled_from(["", "gte", "lt"]))
        number = {"minute": 30, "hour": 3, "day": 15, "week": 24, "month": 6, "year": 2024}[part]
        return Term(field_name, (part, cmp) if cmp else (part,), [number], TIMES)
    if family == "fieldref":
        other = draw(st.sampled_from([f for f in fields if f != field_name] or [field_name]))
        mods = ("fieldref",) + (("cased",) if draw(st.booleans()) else ())
        return Term(field_name, mods, [other], [])
    value = draw(st.sampled_from([22, 22.0, 0, 1, True, False, -3, 1.5]))   # numbers and booleans
    return Term(field_name, (), [value], [value, str(value), str(value).upper(), f"{value}.0"])


@st.composite
def condition(draw, names):
    """A condition over the search identifiers: and/or/not, parentheses, 1 of / all of."""
    def expr(depth):
        choice = draw(st.integers(0, 6 if depth < 3 else 1))
        if choice <= 1:
            return draw(st.sampled_from(names))
        if choice == 2:
            return f"not {expr(depth + 1)}"
        if choice == 3:
            prefix = draw(st.sampled_from(sorted({n.rstrip("0123456789") for n in names})))
            return f"{draw(st.sampled_from(['1 of', 'all of']))} {prefix}*"
        op = draw(st.sampled_from(["and", "or"]))
        return f"({expr(depth + 1)} {op} {expr(depth + 1)})"
    return expr(0)


FIELDS = {
    "generic": ["CommandLine", "Image", "user.name", "n", "ip", "t"],
    "cloudtrail": ["eventName", "userIdentity.arn", "sourceIPAddress", "errorCode", "readOnly", "eventTime",
                   "requestParameters.userName", "requestParameters.items.instanceId", "requestParameters.layers",
                   "responseElements.role.arn", "resources.ARN", "userAgent"],
}


@dataclass
class Example:
    shape: str
    rules: list            # rule.Rule
    docs: list             # the rules' YAML documents (for reports and golden cases)
    events: list


@st.composite
def detection(draw, shape):
    """A detection section (selections, filters, keywords and a condition) and its terms."""
    fields = FIELDS[shape]
    kinds = ["selection", "selection", "filter"] + (["keywords"] if shape == "generic" else [])
    body, terms = {}, []
    for kind in draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=3)):
        name = f"{kind}{len(body)}"
        if kind == "keywords":
            pairs = draw(st.lists(plain_value(), min_size=1, max_size=2))
            terms.append(Term(None, (), [v for v, _ in pairs], [f"pre {h} post" for _, h in pairs]))
            body[name] = terms[-1].values
            continue
        chosen = draw(st.lists(st.sampled_from(fields), min_size=1, max_size=2, unique=True))
        ts = [draw(term(f, shape, fields)) for f in chosen]
        body[name] = {t.key: (t.values if len(t.values) > 1 else t.values[0]) for t in ts}
        terms.extend(ts)
    body["condition"] = draw(condition(list(body)))
    return body, terms


def _place(draw, event, path, value, shape):
    """Put value at the dotted path, as nested objects, maybe a literal dotted key (generic),
    maybe a list of objects on the way (inside CloudTrail's JSON members)."""
    parts = path.split(".")
    if shape == "generic" and len(parts) > 1 and draw(st.integers(0, 3)) == 0:
        event[path] = value
        return
    obj = event
    for i, part in enumerate(parts[:-1]):
        inside_json = shape == "cloudtrail" and i >= 1 and parts[0] in ("requestParameters", "responseElements")
        if inside_json and draw(st.integers(0, 2)) == 0:
            obj[part] = [{parts[i + 1]: "other"}, child := {}]
            obj = child
            continue
        nxt = obj.get(part)
        if not isinstance(nxt, dict):
            nxt = obj[part] = {}
        obj = nxt
    obj[parts[-1]] = value


def _near_miss(draw, v):
    if isinstance(v, str) and v:
        i = draw(st.integers(0, len(v) - 1))
        return draw(st.sampled_from([v[:i] + v[i + 1:], v[:i] + "~" + v[i + 1:], v + "\n", " " + v]))
    return draw(st.sampled_from(["", "x", 0, None]))


HOSTILE = st.one_of(STRINGS, st.sampled_from(NUMBERS + NUMBER_TEXTS + TIMES + [True, False, None, "", [], {}]),
                    st.sampled_from([a for _, aa in NETWORKS for a in aa]))


@st.composite
def event_value(draw, f, terms, shape, event):
    hits = [h for t in terms if t.field == f for h in t.hits]
    kind = draw(st.sampled_from(["hit", "hit", "hit", "miss", "missing", "hostile", "list", "object", "null"]))
    if kind in ("hit", "miss", "list") and hits:
        v = draw(st.sampled_from(hits))
        if kind == "miss":
            v = _near_miss(draw, v)
        if kind == "list":
            v = [v, draw(HOSTILE)] if shape == "generic" or f.startswith(("requestParameters", "responseElements")) else v
        return v
    if kind == "missing":
        return _MISSING
    if kind == "null":
        return None
    if kind == "object" and (shape == "generic" or f.startswith(("requestParameters", "responseElements"))):
        return draw(st.sampled_from([{"k": draw(HOSTILE)}, [{"k": "v"}, {"k": draw(HOSTILE)}], [1, "two", None]]))
    return draw(HOSTILE)


_MISSING = object()


def _cloudtrail_value(f, v):
    """CloudTrail's own members hold strings (readOnly a boolean); JSON members anything."""
    if f.startswith(("requestParameters", "responseElements")):
        return v
    if f == "readOnly":
        return v if isinstance(v, bool) else (str(v).lower() == "true")
    if f == "resources.ARN":
        return v if isinstance(v, str) else str(v)
    return v if v is None or isinstance(v, str) else str(v)


@st.composite
def events(draw, terms, shape, count):
    fields = FIELDS[shape]
    out = []
    for _ in range(count):
        event = {}
        for f in fields:
            v = draw(event_value(f, terms, shape, event))
            if v is _MISSING:
                continue
            if shape == "cloudtrail":
                v = _cloudtrail_value(f, v)
                if f == "resources.ARN":
                    event["resources"] = [{"ARN": v, "type": "AWS::X"}]
                    continue
            _place(draw, event, f, v, shape)
        fieldrefs = [t for t in terms if "fieldref" in t.mods]
        for t in fieldrefs:   # make some fieldrefs hold: copy the other field's value
            if draw(st.booleans()) and t.values[0] in event and t.field:
                _place(draw, event, t.field, event[t.values[0]], shape)
        keyword_hits = [h for t in terms if t.field is None for h in t.hits]
        if keyword_hits and draw(st.booleans()):
            event.setdefault("Details", {})["text"] = _case(draw, draw(st.sampled_from(keyword_hits)))
        out.append(event)
    return out


@st.composite
def examples(draw, shape, rules_per_example=3, events_per_example=8):
    """Example(rules, events): rules that load, events made to hit them."""
    rules, docs, terms = [], [], []
    for n in range(rules_per_example):
        body, ts = draw(detection(shape))
        doc = {"title": f"fuzz {n}", "logsource": CLOUDTRAIL if shape == "cloudtrail" else GENERIC,
               "detection": body}
        try:
            rules.append(rule_from_dict(doc, f"fuzz-{n}", PLACEHOLDERS))
        except TranspileError:
            continue    # an illegal combination the generator allowed (e.g. windash without a dash)
        docs.append(doc)
        terms.extend(ts)
    evs = draw(events(terms, shape, events_per_example))
    return Example(shape, rules, docs, evs)


# --- the comparison --------------------------------------------------------------------------

def strings_of(obj) -> list:
    from transpiler.evaluate import strings
    return strings(obj, [])


def reason_key(message: str) -> str:
    """A refusal's reason without the rule's own names and values, for counting."""
    return re.sub(r"'(?!function:)[^']*'|\"[^\"]*\"|\[[^\]]*\]|\{[^}]*\}|\b\d[\d.]*\b", "…", message)[:110]


@dataclass
class Disagreement:
    engine: str
    rule: object
    doc: dict
    events: list
    evaluator: list
    got: object           # the engine's selection, or its error

    def __str__(self):
        import yaml
        return (f"{self.engine} selects {self.got}, the evaluator {self.evaluator}\n"
                f"{yaml.safe_dump(self.doc, allow_unicode=True, sort_keys=False)}events: {self.events}")


@dataclass
class Tally:
    """What the runs did, per engine."""

    rules: Counter = field(default_factory=Counter)       # engine -> rules given
    executed: Counter = field(default_factory=Counter)    # engine -> rules executed and compared
    verdicts: Counter = field(default_factory=Counter)    # engine -> (rule, event) verdicts compared
    hits: Counter = field(default_factory=Counter)        # engine -> verdicts where the rule matched
    refused: Counter = field(default_factory=Counter)     # (engine, reason) -> rules
    undecided: Counter = field(default_factory=Counter)   # (engine, reason) -> events
    disagreements: list = field(default_factory=list)

    def share(self, engine) -> float:
        return self.executed[engine] / max(1, self.rules[engine])

    def report(self) -> str:
        lines = []
        for engine in sorted(self.rules):
            lines.append(f"{engine}: {self.rules[engine]} rules, {self.executed[engine]} executed "
                         f"({self.share(engine):.0%}), {self.verdicts[engine]} verdicts, {self.hits[engine]} matches, "
                         f"{sum(1 for d in self.disagreements if d.engine == engine)} disagreements")
            for (e, reason), n in sorted(self.refused.items(), key=lambda x: -x[1]):
                if e == engine:
                    lines.append(f"    refused {n:5d} x {reason}")
            for (e, reason), n in sorted(self.undecided.items(), key=lambda x: -x[1]):
                if e == engine:
                    lines.append(f"    undecided events {n:5d} x {reason}")
        return "\n".join(lines)


def compare(engines: dict, rules, events, docs=None, tally: Tally | None = None) -> Tally:
    """Run every engine on the rules and events; each rule's selection must be the evaluator's
    (less the events the engine says it cannot hold), or the rule refused with a reason."""
    tally = tally or Tally()
    docs = docs or [None] * len(rules)
    want = [[i for i, e in enumerate(events) if matches(r.query, e)] for r in rules]
    for name, engine in engines.items():
        out = engine.run(rules, events)
        for n, rule in enumerate(rules):
            tally.rules[name] += 1
            if n in out.refused:
                assert out.refused[n], f"{name} refused {rule.path} without a reason"
                tally.refused[name, reason_key(out.refused[n])] += 1
                continue
            if n in out.failed:
                tally.disagreements.append(Disagreement(name, rule, docs[n], events, want[n], out.failed[n]))
                continue
            undecided = set(out.undecided.get(n, ()))
            expected = [i for i in want[n] if i not in undecided]
            got = out.matches[n]
            tally.executed[name] += 1
            tally.verdicts[name] += len(events) - len(undecided)
            tally.hits[name] += len(expected)
            if got != expected:
                tally.disagreements.append(Disagreement(name, rule, docs[n], events, expected, got))
        for reason, count in out.stats.get("undecided", {}).items():
            tally.undecided[name, reason_key(reason)] += count
    return tally


# --- the engines -------------------------------------------------------------------------------

def available_engines() -> dict:
    """name -> engine for every engine that can run here (the evaluator is the reference)."""
    from transpiler import engines as registry

    found = {}
    for name in ("duckdb", "athena", "pipesearch", "kql"):
        engine = registry.get(name)()
        if engine.unavailable() is None:
            found[name] = engine
    return found


def require_engines() -> dict:
    """Every engine, or a skip naming what is missing (a failure in CI: conftest.missing_tool)."""
    from conftest import missing_tool

    from transpiler.engines.athena import Joni
    from transpiler.engines.pipesearch import Java
    if not Java.available():
        missing_tool("no JDK (java, javac) on PATH: pipe search and Athena's regexes run in Java")
    if not Joni.available():
        missing_tool("no Joni jars (apt-get install libjruby-joni-java): Athena's regexes")
    found = available_engines()
    wanted = {"duckdb", "athena", "pipesearch", "kql"}
    if set(found) != wanted:
        close(found)
        missing_tool(f"engines missing: {sorted(wanted - set(found))}")
    return found


def close(engines: dict):
    for engine in engines.values():
        getattr(engine, "close", lambda: None)()


# --- shrinking a disagreement to a golden case ---------------------------------------------------

def disagrees(engine, doc, events) -> bool:
    """Whether `engine` and the evaluator disagree on the rule `doc` over `events`."""
    try:
        rule = rule_from_dict(doc, "minimize", PLACEHOLDERS)
    except TranspileError:
        return False
    t = compare({engine.name: engine}, [rule], events)
    return bool(t.disagreements)


def minimize(engine, doc, events, budget=300):
    """A smaller rule and fewer, smaller events on which `engine` still disagrees (greedy, at
    most `budget` runs of the engine)."""
    import copy

    doc, events = copy.deepcopy(doc), copy.deepcopy(events)

    def candidates():
        det = doc["detection"]
        names = [k for k in det if k != "condition"]
        if len(names) > 1 or det["condition"] not in names:
            for name in names:   # one search identifier alone, or negated
                for cond in (name, f"not {name}"):
                    yield {**doc, "detection": {name: det[name], "condition": cond}}, events
        for name in names:
            sel = det[name]
            if isinstance(sel, dict):
                for key in sel:
                    if len(sel) > 1:
                        yield {**doc, "detection": {**det, name: {k: v for k, v in sel.items() if k != key}}}, events
                    if isinstance(sel[key], list) and len(sel[key]) > 1:
                        for v in sel[key]:
                            yield {**doc, "detection": {**det, name: {**sel, key: v}}}, events
            elif isinstance(sel, list) and len(sel) > 1:
                for v in sel:
                    yield {**doc, "detection": {**det, name: [v]}}, events
        for i in range(len(events)):
            yield doc, events[:i] + events[i + 1:]
        for i, e in enumerate(events):
            for k in list(e):
                yield doc, events[:i] + [{x: y for x, y in e.items() if x != k}] + events[i + 1:]
                v = e[k]
                for smaller in _smaller(v):
                    yield doc, events[:i] + [{**e, k: smaller}] + events[i + 1:]

    changed = True
    while changed:
        changed = False
        for d, evs in candidates():
            if budget <= 0:
                return doc, events
            budget -= 1
            if (d, evs) != (doc, events) and disagrees(engine, d, evs):
                doc, events, changed = copy.deepcopy(d), copy.deepcopy(evs), True
                break
    return doc, events


def _smaller(v):
    if isinstance(v, list):
        yield from v
        for i in range(len(v)):
            yield v[:i] + v[i + 1:]
    elif isinstance(v, dict):
        for k in v:
            yield {x: y for x, y in v.items() if x != k}
            for smaller in _smaller(v[k]):
                yield {**v, k: smaller}


def merge(into: Tally, t: Tally) -> Tally:
    for name in ("rules", "executed", "verdicts", "hits", "refused", "undecided"):
        getattr(into, name).update(getattr(t, name))
    into.disagreements.extend(t.disagreements)
    return into

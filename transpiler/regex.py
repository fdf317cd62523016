"""Regular expressions: RE2 for the evaluator, and RE2's meaning spelled for the other engines.

The evaluator runs RE2 (linear time whatever the pattern, so no rule can make it backtrack for
hours; DuckDB runs RE2 too). Sigma allows only basic PCRE (spec: re), which RE2 covers;
lookaround and backreferences are refused at load. A rule's pattern is RE2 syntax; each other
engine gets a pattern with the same meaning in its own flavour:

- java_regex(p, "athena"): Trino, whose regexp functions compile patterns with Joni (the
  Oniguruma port) in its Java syntax over UTF-8 (io.trino.operator.scalar.JoniRegexpCasts:
  `new Regex(..., Syntax.Java)`; https://trino.io/docs/current/functions/regexp.html).
- java_regex(p, "pipesearch"): java.util.regex, Logpresso's match()
  (https://docs.oracle.com/en/java/javase/17/docs/api/java.base/java/util/regex/Pattern.html).
- rust_regex(p): Kusto's `matches regex`, the Rust regex crate
  (https://learn.microsoft.com/kusto/query/regex).
- glob_regex(parts): a GLOB value (Sigma wildcards) as an RE2 pattern, for all of them.

Where Joni's Java syntax and java.util.regex differ from RE2 (checked on Joni 2.1.46 and
JDK 17; tests/test_regex.py runs both): Joni's \\d \\w \\s \\b and POSIX classes are Unicode, and
\\s takes \\x0B (RE2: ASCII; java.util.regex: ASCII, \\s with \\x0B); `.` stops at \\n only in
Joni and at five line terminators in Java (RE2: \\n); `$` also matches before a final \\n in
both (RE2: only at the end); (?i) folds multi-character sequences in Joni (ss matches ß, fi
matches U+FB01) and only ASCII in Java without (?u) (RE2: Unicode simple folding); (?m)
line ends are \\n in Joni and five terminators in Java; \\v is \\x0B in Joni and a class of
vertical spaces in Java; \\x{...} is unknown to Joni; `[` nests and `&&` intersects in both.

So java_regex writes no flag and no Perl class at all: `.`, \\d \\w \\s, POSIX classes and
case-insensitive letters become explicit classes of code points, `$` becomes \\z, (?m)'s
anchors and \\b become lookarounds on explicit classes, and every character that is not an
ASCII letter, digit or plain punctuation is written as an escape. The meaning is then the same
in both flavours; the one difference in writing is a code point above U+FFFF (raw for Trino,
\\x{...} for Java). Under (?i) only ASCII content is accepted: RE2's simple case folding of
ASCII is known exactly (k also matches U+212A KELVIN SIGN, s also U+017F LONG S); anything
else would need Unicode's folding tables, in RE2's version, and is refused. Unicode property
classes (\\p{...}) are refused: their names and Unicode versions differ between engines.
"""
from __future__ import annotations

import re
from functools import lru_cache

import re2

from .errors import Unsupported
from .nodes import Wild

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False      # errors become our RuleError, not lines on stderr


@lru_cache(maxsize=4096)
def compile_regex(pattern: str):
    """The compiled pattern; ValueError with RE2's reason if it is not one."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as e:
        reason = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
        raise ValueError(reason) from None


def searchable(text: str) -> str:
    """Text RE2 can search: it reads UTF-8, which has no lone surrogates (JSON's "\\ud800"),
    so those become U+FFFD, as a UTF-8 decoder with replacement reads them."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


# --- globs ------------------------------------------------------------------------------------

_RE2_META = set("\\.+*?()|[]{}^$")


def glob_regex(parts, fold=None, caseless: bool = False) -> str:
    """A GLOB value (literal str parts and Wild tokens) as an RE2 pattern whose search finds
    a match exactly when the glob matches the whole text: `*` any run and `?` one character,
    line breaks included ((?s)); anchored with ^ and $ except at a leading or trailing `*`.
    fold: applied to the literal parts (for a text folded the same way); caseless: (?i)."""
    parts = list(parts)
    head = not parts or parts[0] is not Wild.STAR
    tail = not parts or parts[-1] is not Wild.STAR
    body = "".join(".*" if p is Wild.STAR else "." if p is Wild.ONE else
                   "".join("\\" + c if c in _RE2_META else c for c in (fold(p) if fold else p))
                   for p in _trimmed(parts))
    return f"(?{'i' if caseless else ''}s){'^' if head else ''}{body}{'$' if tail else ''}"


def _trimmed(parts):
    while parts and parts[0] is Wild.STAR:
        parts = parts[1:]
    while parts and parts[-1] is Wild.STAR:
        parts = parts[:-1]
    return parts


# --- sets of code points ------------------------------------------------------------------------
# A character class is a sorted list of disjoint (first, last) code point ranges.

MAX = 0x10FFFF
_ASCII_END = 0x7F
_DIGIT = [(0x30, 0x39)]
_WORD = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_SPACE = [(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)]          # RE2's \s: no \v
_PERL = {"d": _DIGIT, "w": _WORD, "s": _SPACE}
# RE2's POSIX classes, all ASCII (https://github.com/google/re2/wiki/Syntax).
_POSIX = {
    "alnum": [(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)], "alpha": [(0x41, 0x5A), (0x61, 0x7A)],
    "ascii": [(0, 0x7F)], "blank": [(0x09, 0x09), (0x20, 0x20)], "cntrl": [(0, 0x1F), (0x7F, 0x7F)],
    "digit": _DIGIT, "graph": [(0x21, 0x7E)], "lower": [(0x61, 0x7A)], "print": [(0x20, 0x7E)],
    "punct": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
    "space": [(0x09, 0x0D), (0x20, 0x20)], "upper": [(0x41, 0x5A)], "word": _WORD,
    "xdigit": [(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
}
# The only code points outside ASCII that RE2's simple case folding joins to ASCII letters.
_FOLDS_TO_ASCII = {0x17F: "s", 0x212A: "k"}


def _normal(ranges):
    out = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _complement(ranges):
    out, start = [], 0
    for lo, hi in _normal(ranges):
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= MAX:
        out.append((start, MAX))
    return out


def _folded(ranges, target):
    """The set closed under RE2's case folding. Known exactly where the set's non-ASCII part
    is every non-ASCII code point, or code points without case (and U+017F, U+212A)."""
    ranges = _normal(ranges)
    letters = {chr(c) for lo, hi in ranges for c in range(lo, min(hi, _ASCII_END) + 1) if chr(c).isalpha()}
    non_ascii = [(max(lo, _ASCII_END + 1), hi) for lo, hi in ranges if hi > _ASCII_END]
    if non_ascii == [(_ASCII_END + 1, MAX)]:
        letters |= set("sk")
    else:
        for lo, hi in non_ascii:
            if hi - lo > 4096:
                _no_fold(target)
            for c in range(lo, hi + 1):
                if c in _FOLDS_TO_ASCII:
                    letters.add(_FOLDS_TO_ASCII[c])
                elif not _caseless(chr(c)):
                    _no_fold(target)
    out = list(ranges)
    for letter in letters:
        out.extend((ord(c), ord(c)) for c in (letter.lower(), letter.upper()))
        special = {"s": 0x17F, "k": 0x212A}.get(letter.lower())
        if special:
            out.append((special, special))
    return _normal(out)


def _caseless(c: str) -> bool:
    return c.lower() == c == c.upper() and c.casefold() == c


def _no_fold(target):
    raise Unsupported(f"{target}: a case-insensitive regex may only hold ASCII letters and characters without "
                      "case here (RE2's case folding of other letters has no exact spelling)", kind="regex")


# --- RE2 -> Java syntax -----------------------------------------------------------------------

_ESCAPE = re.compile(r"\\(?:x\{[0-9A-Fa-f]+\}|x[0-9A-Fa-f]{2}|0[0-7]{0,2}|[1-7][0-7]{1,2}|[pP](?:\{[^}]*\}|.)|Q.*?(?:\\E|\Z)|.)",
                     re.DOTALL)
_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")
_GROUP = re.compile(r"\(\?(?:P?<[A-Za-z0-9_]+>|([imsU]*)(?:-([imsU]*))?(:|\)))")
_POSIX_ITEM = re.compile(r"\[:(\^?)([a-z]+):\]")
_CONTROL = {"a": 0x07, "f": 0x0C, "t": 0x09, "n": 0x0A, "r": 0x0D, "v": 0x0B}
_JAVA_META = set("\\.[]{}()*+?^$|")
_WORD_CLASS = "[0-9A-Za-z_]"
_BOUNDARY = {
    "b": f"(?:(?<={_WORD_CLASS})(?!{_WORD_CLASS})|(?<!{_WORD_CLASS})(?={_WORD_CLASS}))",
    "B": f"(?:(?<={_WORD_CLASS})(?={_WORD_CLASS})|(?<!{_WORD_CLASS})(?!{_WORD_CLASS}))",
}
_TARGETS = ("athena", "pipesearch")


def java_regex(pattern: str, target: str) -> str:
    """RE2 `pattern` as a pattern with the same matches for `target`'s Java-syntax engine:
    "athena" (Trino's Joni) or "pipesearch" (java.util.regex). See the module docstring."""
    assert target in _TARGETS
    return _Translator(pattern, target).run()


class _Translator:
    def __init__(self, pattern, target):
        self.p, self.target, self.i = pattern, target, 0
        self.out = []
        self.flags = frozenset()           # i, m, s in force
        self.saved = []                    # flags to restore at each open group's `)`

    def fail(self, what):
        raise Unsupported(f"{self.target}: {what} in a regex has no exact equivalent", kind="regex")

    def run(self) -> str:
        p = self.p
        while self.i < len(p):
            c = p[self.i]
            if c == "\\":
                self.escape()
            elif c == "[":
                self.emit_set(self.char_class())
            elif c == "(":
                self.group()
            elif c == ")":
                self.flags = self.saved.pop() if self.saved else self.flags
                self.out.append(")")
                self.i += 1
            elif c == ".":
                self.emit_set([(0, MAX)] if "s" in self.flags else _complement([(0x0A, 0x0A)]))
                self.i += 1
            elif c == "^":
                self.anchor("(?:^|(?<=\\n))" if "m" in self.flags else "^")
            elif c == "$":
                self.anchor("(?=\\n|\\z)" if "m" in self.flags else "\\z")
            elif c == "{":
                rep = _REPEAT.match(p, self.i)
                if rep and (rep.group(2) in (None, "") or int(rep.group(1)) <= int(rep.group(2))):
                    self.out.append(rep.group())
                    self.i = rep.end()
                else:   # RE2 reads a `{` that starts no repetition as itself
                    self.literal(ord(c))
                    self.i += 1
            elif c in "*+?|":
                self.out.append(c)
                self.i += 1
            else:
                self.literal(ord(c))
                self.i += 1
        return "".join(self.out)

    # -- pieces outside classes --
    def anchor(self, text):
        self.i += 1
        # Java refuses a quantifier right after ^ or $; a group takes one.
        quantified = self.i < len(self.p) and self.p[self.i] in "*+?{"
        self.out.append(f"(?:{text})" if quantified and not text.startswith("(?") else text)

    def group(self):
        g = _GROUP.match(self.p, self.i)
        if g is None:                       # a plain capturing group
            self.saved.append(self.flags)
            self.out.append("(")
            self.i += 1
            return
        self.i = g.end()
        on, off, end = g.group(1), g.group(2), g.group(3)
        flags = (self.flags | set(on or "")) - set(off or "")
        if end == ")":                      # (?flags): for the rest of the enclosing group
            self.flags = frozenset(flags)
            return
        self.saved.append(self.flags)       # (?flags:...) or a named group (the name is unused)
        self.flags = frozenset(flags)
        self.out.append("(?:" if end == ":" else "(")

    def escape(self):
        tok = _ESCAPE.match(self.p, self.i).group()
        self.i += len(tok)
        body = tok[1:]
        if body[:1] == "Q":
            for ch in body[1:].removesuffix("\\E"):
                self.literal(ord(ch))
        elif body in ("b", "B"):
            self.out.append(_BOUNDARY[body])
        elif body == "A":
            self.out.append("\\A")
        elif body == "z":
            self.out.append("\\z")
        else:
            item = self.escape_item(body)
            if isinstance(item, int):
                self.literal(item)
            else:
                self.emit_set(item)

    def escape_item(self, body):
        """An escape as a code point (int) or a set of ranges (a Perl class)."""
        if body in ("d", "w", "s"):
            return self.case(_PERL[body])
        if body in ("D", "W", "S"):
            return _complement(self.case(_PERL[body.lower()]))
        if body[:1] in ("p", "P"):
            self.fail(f"the Unicode class \\{body}")
        if body == "C":
            self.fail("\\C (any byte)")
        if body[:1] == "x":
            return int(body[1:].strip("{}"), 16)
        if body[:1].isdigit():
            return int(body, 8)
        if body in _CONTROL:
            return _CONTROL[body]
        if len(body) == 1 and not body.isalnum():
            return ord(body)
        self.fail(f"\\{body}")

    def literal(self, code):
        if "i" in self.flags:
            folded = self.case([(code, code)])
            if len(folded) > 1 or folded[0][0] != folded[0][1]:
                return self.emit_set(folded)
        self.out.append(self.char(code, _JAVA_META))

    def case(self, ranges):
        return _folded(ranges, self.target) if "i" in self.flags else ranges

    # -- classes --
    def char_class(self):
        """Parse [...] from self.i; its set of code points under the current flags."""
        p, i = self.p, self.i + 1
        negated = p.startswith("^", i)
        i += negated
        items, first = [], True
        while first or p[i] != "]":
            first = False
            posix = _POSIX_ITEM.match(p, i)
            if posix:
                if posix.group(2) not in _POSIX:
                    self.fail(f"the class {posix.group()}")
                ranges = self.case(_POSIX[posix.group(2)])
                items.extend(_complement(ranges) if posix.group(1) else ranges)
                i = posix.end()
                continue
            lo, i = self.class_char(i)
            if isinstance(lo, list):
                items.extend(lo)
                continue
            hi = lo
            if p.startswith("-", i) and not p.startswith("-]", i):
                hi, i = self.class_char(i + 1)
            items.extend(self.case([(lo, hi)]))
        self.i = i + 1
        return _complement(items) if negated else _normal(items)

    def class_char(self, i):
        if self.p[i] != "\\":
            return ord(self.p[i]), i + 1
        tok = _ESCAPE.match(self.p, i).group()
        return self.escape_item(tok[1:]), i + len(tok)

    def emit_set(self, ranges):
        ranges = _normal(ranges)
        if ranges == [(0, MAX)]:
            self.out.append("[\\s\\S]")
            return
        if not ranges:
            self.out.append("[^\\s\\S]")
            return
        negate = ranges[-1][1] == MAX      # the shorter spelling: what it does not hold
        if negate:
            ranges = _complement(ranges)
        body = "".join(self.char(lo, _CLASS_META) if lo == hi else
                       f"{self.char(lo, _CLASS_META)}-{self.char(hi, _CLASS_META)}"
                       for lo, hi in _without_surrogates(ranges))
        self.out.append(f"[{'^' if negate else ''}{body}]")

    def char(self, code, meta):
        """One code point, written so that both flavours read it as itself: ASCII letters,
        digits and space as they are, punctuation escaped where meta, others as escapes."""
        c = chr(code)
        if c.isascii() and (c.isalnum() or c == " "):
            return c
        if c.isascii() and c.isprintable():
            return "\\" + c if c in meta else c
        if code <= 0xFFFF:
            return f"\\u{code:04x}"
        return c if self.target == "athena" else f"\\x{{{code:x}}}"


_CLASS_META = set("\\[]^-&")


def _without_surrogates(ranges):
    # UTF-8 text holds no U+D800..U+DFFF, and Joni refuses them in a pattern.
    for lo, hi in ranges:
        if lo < 0xD800 <= hi or lo <= 0xDFFF < hi or 0xD800 <= lo <= 0xDFFF:
            if lo < 0xD800:
                yield lo, min(hi, 0xD7FF)
            if hi > 0xDFFF:
                yield max(lo, 0xE000), hi
        else:
            yield lo, hi


# --- RE2 -> Rust syntax (KQL) -----------------------------------------------------------------

_RUST_PERL = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\\t\\n\\f\\r "}
_RUST_ESCAPE = re.compile(r"\\(?:[pP](?:\{[^}]*\}|.)|x(?:\{[^}]*\}|[0-9A-Fa-f]{2})|.)", re.DOTALL)
_RUST_POSIX = re.compile(r"\[:\^?[a-z]+:\]")


def rust_regex(p: str) -> str:
    """RE2 `p` in the Rust regex crate's syntax (Kusto's `matches regex`): the crate's \\d \\s \\w
    \\b are Unicode and its classes nest and take the set operators && -- ~~; RE2's are ASCII
    and its `[` `&&` `--` `~~` inside a class are literal: these are spelled out."""
    out, i, in_class = [], 0, False
    while i < len(p):
        c = p[i]
        if c == "\\":
            tok = _RUST_ESCAPE.match(p, i).group()
            i += len(tok)
            if tok in ("\\Q", "\\C"):
                raise Unsupported(f"kql: {tok} in a regex has no Kusto equivalent", kind="regex")
            if len(tok) == 2 and tok[1] in "dDwWsS":
                body = _RUST_PERL[tok[1].lower()]
                out.append(f"[^{body}]" if tok[1].isupper() else body if in_class else f"[{body}]")
            elif tok in ("\\b", "\\B") and not in_class:
                out.append(f"(?-u:{tok})")
            else:
                out.append(tok)
            continue
        if in_class:
            posix = _RUST_POSIX.match(p, i)
            if posix:
                out.append(posix.group())
                i = posix.end()
                continue
            if p.startswith("--", i):
                raise Unsupported("kql: '--' inside a regex class is a set difference in Kusto", kind="regex")
            if c == "]":
                in_class = False
            out.append("\\[" if c == "[" else f"\\{c}" if c in "&~" else c)
            i += 1
            continue
        out.append(c)
        i += 1
        if c == "[":
            in_class = True
            for lead in ("^", "]"):
                if p.startswith(lead, i):
                    out.append(lead if lead == "^" else "\\]")
                    i += 1
    return "".join(out)

"""RE2 patterns as the other engines read them (transpiler/regex.py): every translation runs in
the engine's own regex library and finds exactly what RE2 finds, or is refused.

- athena: Joni in its Java syntax over UTF-8, as Trino compiles regexp_like's pattern
  (transpiler/engines/TrinoRegex.java; the jars come from Debian's libjruby-joni-java);
- pipesearch: java.util.regex (transpiler/engines/JavaOracle.java).
"""
from __future__ import annotations

import random

import pytest
from conftest import corpus_path, missing_tool

from transpiler.errors import Unsupported
from transpiler.evaluate import fold
from transpiler.nodes import Wild
from transpiler.regex import compile_regex, glob_regex, java_regex

@pytest.fixture(scope="module")
def engines():
    from transpiler.engines.athena import Joni
    from transpiler.engines.pipesearch import Java
    if not Java.available():
        missing_tool("no JDK (java, javac) on PATH")
    if not Joni.available():
        missing_tool("no Joni jars (apt-get install libjruby-joni-java)")
    java, joni = Java(), Joni()
    yield {"athena": joni, "pipesearch": java}
    java.close()
    joni.close()


def re2_finds(pattern: str, text: str) -> bool:
    return compile_regex(pattern).search(text) is not None


def agree(engines, pattern, texts) -> int:
    """Check both translations on texts; how many targets translated the pattern."""
    compile_regex(pattern)
    done = 0
    for target, engine in engines.items():
        try:
            translated = java_regex(pattern, target)
        except Unsupported:
            continue
        done += 1
        for text in texts:
            assert engine.find(translated, text) == re2_finds(pattern, text), (target, pattern, translated, text)
    return done


# Each rule of the translation, on the inputs where the engines differ from RE2.
CASES = [
    (r"\s-e(nc?)?\s", ["ps -enc x", "ps\x0b-e\x0bx", "ps\t-e\nx", "ps\u2028-e\u2028", "ps -x"]),
    (r"\d\w", ["1a", "\u0663a", "1\u00e9", "1_"]),
    (r"[\d\s]x", ["1x", "\u0663x", "\x0bx", " x"]),
    (r"\D\W\S", ["a-b", "\u0663\u00e9x", "a b"]),
    (r"^adm[0-9]+$", ["adm42", "adm42\n", "xadm4"]),
    (r"a.c", ["abc", "a\nc", "a\rc", "a\u2028c", "a\u0085c"]),
    (r"(?s)a.c", ["a\nc", "a\rc"]),
    (r"(?m)^x$", ["a\nx\nb", "x\r\n", "a\rx", "ax", "x\n", "a\u2028x"]),
    (r"(?m)^$", ["abc\n", "abc", ""]),
    (r"x$", ["x", "x\n", "x\r"]),
    (r"\Ax\z", ["x", "x\n"]),
    (r"\bx\b", ["a x b", "\u00e9x", "x\u00e9", "ax", "x"]),
    (r"\Bx", ["ax", " x", "\u00e9x"]),
    (r"(?i)k", ["K", "\u212a", "k"]),
    (r"(?i)ss", ["SS", "\u00df", "\u017fs", "s"]),
    (r"(?i)fi", ["FI", "\ufb01"]),
    (r"(?i)[a-z]+", ["\u017f", "\u212a", "\u00e9", "Q"]),
    (r"(?i)[^a-z]", ["\u017f", "\u00e9", "Q", "1"]),
    (r"(?i)\w\W", ["\u017f!", "a\u017f", "k\u212a"]),
    (r"(?i)[[:lower:]][[:^upper:]]", ["AB", "ab", "A1"]),
    ("(?i)x[\u2013-]y", ["X\u2013Y", "x-y", "xy"]),
    (r"a(?i)b(?-i)c", ["aBc", "aBC", "Abc"]),
    (r"(?i:a)b", ["Ab", "AB"]),
    (r"(?i)(a(?-i)b)c", ["AbC", "ABc"]),
    (r"[[:alpha:]]+\d", ["ab1", "\u00e91", "1"]),
    (r"[[:^digit:]]x", ["ax", "1x", "\u0663x"]),
    (r"[[:space:]][[:punct:]]", ["\x0b!", " a"]),
    (r"[a[b]c", ["[c", "bc", "ac"]),
    (r"[]a]+", ["]]", "a"]),
    (r"[^]a]", ["]", "b"]),
    (r"[a-]x[-a]", ["-x-", "ax-", "bxb"]),
    (r"[&&a][a&&b]", ["&&", "a&", "ab"]),
    (r"[\^x]", ["^", "x"]),
    (r"a{,3}", ["a{,3}", "aaa"]),
    (r"a{2}b{1,}c{1,2}", ["aabcc", "abc"]),
    (r"x{", ["x{", "x"]),
    (r"x}", ["x}", "x"]),
    (r"\101\0\12", ["A\x00\n", "A0"]),
    (r"\x41\x{1F600}\x{e9}", ["A\U0001f600\u00e9", "A"]),
    (r"[\x{1F600}-\x{1F64F}]", ["\U0001f603", "\U0001f650"]),
    (r"\v\a\f\t", ["\x0b\x07\x0c\t", "\n\x07\x0c\t"]),
    (r"(?P<name>a)b", ["ab"]),
    (r"(?U)a+b", ["aab"]),
    (r'"\\"#', ['"\\"#', '"\\"']),
    ("\u2013x", ["\u2013x", "-x"]),
    ("[\u2013-\u2015]y", ["\u2014y", "-y"]),
    (r"\Qa.b\E+", ["a.b", "axb", "a.bE", "a.bbb", "a.ba.b"]),
    (r"x\Q*(", ["x*(", "x"]),
    (r"^*a|b$+", ["a", "b", "c"]),
    (r"a|", ["", "b"]),
    (r"[^\n]x", ["\nx", "\rx"]),
    (r"(a|b)*c", ["abac", "ab"]),
]


@pytest.mark.parametrize("pattern,texts", CASES, ids=[p for p, _ in CASES])
def test_translation_finds_what_re2_finds(engines, pattern, texts):
    assert agree(engines, pattern, texts) == 2


REFUSED = [r"\pL", r"\p{Greek}", r"\PN", r"\C", "(?i)stra\u00dfe", r"(?i)[a-\x{100}]", "(?i)\u00e9"]


@pytest.mark.parametrize("pattern", REFUSED)
def test_refused(pattern):
    compile_regex(pattern)
    for target in ("athena", "pipesearch"):
        with pytest.raises(Unsupported) as info:
            java_regex(pattern, target)
        assert info.value.message.startswith(f"{target}: ")


def test_athena_writes_astral_characters_raw_and_java_as_escapes():
    assert java_regex(r"\x{1F600}", "athena") == "\U0001f600"
    assert java_regex(r"\x{1F600}", "pipesearch") == r"\x{1f600}"


def test_glob_regex():
    assert glob_regex(("a", Wild.STAR, "b.", Wild.ONE)) == r"(?s)^a.*b\..$"
    assert glob_regex((Wild.STAR, "A\u0130", Wild.ONE, Wild.STAR), fold=fold) == "(?s)ai."
    assert glob_regex(("x", Wild.STAR), caseless=True) == "(?is)^x"


# --- random patterns ------------------------------------------------------------------------------

ALPHABET = "aAbBkKsS\u017f\u212a_09 \n\r\t\x0b.-[]^$\u00e9\u0663\u00df\ufb01\u2013\u2028"


def _random_pattern(rnd: random.Random, depth=0) -> str:
    atoms = [
        lambda: rnd.choice("abksKS09_ -"),
        lambda: "\\" + rnd.choice(".[]^$*+?(){}|\\-"),
        lambda: ".",
        lambda: "\\" + rnd.choice("dDwWsSbBAz"),
        lambda: rnd.choice(["^", "$"]),
        lambda: "[" + rnd.choice(["", "^"]) + "".join(rnd.choice(["a-k", "s", "\\d", "\\W", "[:alpha:]", "[:^lower:]",
                                                                  "-", "]", "\u00e9", "0-9", "_"]) for _ in range(rnd.randint(1, 3))) + "]",
        lambda: rnd.choice(["\\x{e9}", "\\x41", "\\012", "\u2013", "\\Qa.\\E"]),
    ]
    if depth < 2:
        atoms.append(lambda: "(" + rnd.choice(["", "?:", "?i:", "?s:", "?m:", "?-i:", "?P<g>"]) +
                     _random_pattern(rnd, depth + 1) + ")")
    out = []
    for _ in range(rnd.randint(1, 4)):
        atom = rnd.choice(atoms)()
        if rnd.random() < 0.3 and atom not in ("^", "$"):
            atom += rnd.choice(["*", "+", "?", "{2}", "{1,3}", "*?", "{0,}"])
        out.append(atom)
        if rnd.random() < 0.1:
            out.append("|")
    return rnd.choice(["", "(?i)", "(?m)", "(?s)", "(?is)"]) + "".join(out) if depth == 0 else "".join(out)


def test_random_patterns_find_what_re2_finds(engines):
    """300 random RE2 patterns (fixed seed) on 12 random texts each: each translation finds what
    RE2 finds; most translate (the refusals are (?i) with non-ASCII letters)."""
    rnd = random.Random(17)
    valid = translated = 0
    for _ in range(300):
        pattern = _random_pattern(rnd)
        try:
            compile_regex(pattern)
        except ValueError:
            continue
        valid += 1
        texts = ["".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 8))) for _ in range(12)]
        translated += agree(engines, pattern, texts) == 2
    assert valid > 250 and translated > 0.75 * valid, (valid, translated)


@pytest.mark.corpus
def test_corpus_regexes(engines):
    """Every regex of the Sigma corpora is refused or finds what RE2 finds on texts made from it."""
    from transpiler.nodes import Match, Op, walk
    from transpiler.rule import load_paths

    rules, _ = load_paths([corpus_path("rules")])
    patterns = sorted({q.value for r in rules if r.kind == "rule" for q in walk(r.query)
                       if isinstance(q, Match) and q.op is Op.RE})
    assert len(patterns) > 100
    translated = 0
    for pattern in patterns:
        literal = "".join(c for c in pattern if c.isalnum() or c in " -/\\.:")
        translated += agree(engines, pattern, ["", literal, literal.upper(), " " + literal + "\n", pattern])
    assert translated > 1.9 * len(patterns), translated

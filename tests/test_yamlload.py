"""The direct YAML constructor (transpiler/yamlload.py) builds exactly what PyYAML's does.

Each text is loaded both ways; the data must be equal and of the same types all the way down
(True is not 1, a date is not its text), or both ways must raise the same error."""
import datetime

import pytest
from conftest import corpus_path

from transpiler import rule, yamlload


def strict(a, b) -> bool:
    """Equal, with the same types at every level and the same key order (cycles allowed)."""
    stack, seen = [(a, b)], set()
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, (dict, list)):
            if (id(x), id(y)) in seen:
                continue
            seen.add((id(x), id(y)))
            if len(x) != len(y):
                return False
            if isinstance(x, dict):
                if list(map(repr, x)) != list(map(repr, y)):
                    return False
                stack.extend((x[k], y[k]) for k in x)
            else:
                stack.extend(zip(x, y))
        elif x != y:
            return False
    return True


def both_ways(text):
    out = []
    for direct in (True, False):
        try:
            out.append(("data", list(yamlload.load_all(text, direct))))
        except Exception as e:  # noqa: BLE001 - the error itself is compared
            out.append(("error", type(e), str(e)))
    return out


CASES = {
    "plain": "a: b\nc: [1, 2.5, true, null, ~, '', x]\nd: {e: f}\n",
    "scalars": "i: 0o17\nj: 017\nk: 0x1F\nl: 1_000\nm: 1:30\nn: .inf\no: -.NaN\np: yes\nq: Off\nr: 2024-01-02\n"
               "s: 2024-01-02 03:04:05.5+01:00\nt: '2024-01-02'\nu: !!str 12\n",
    "several documents": "a: 1\n---\nb: 2\n---\n",
    "anchors and aliases": "a: &x [1, 2]\nb: *x\n",
    "merge key": "base: &b {x: 1}\nd:\n  <<: *b\n  y: 2\n",
    "merge key without anchor": "d:\n  <<: {x: 1}\n  y: 2\n",
    "explicit tags": "a: !!binary aGVsbG8=\nb: !!set {x, y}\nc: !!omap [{a: 1}]\n",
    "unknown tag": "a: !custom x\n",
    "duplicate key": "a: 1\nb: 2\na: 3\n",
    "duplicate nested key": "a: {b: 1, b: 2}\n",
    "list as key": "? [1, 2]\n: x\n",
    "map as key": "? {a: 1}\n: x\n",
    "bad date": "a: 2024-13-45\n",
    "value key": "a:\n  =: 1\n",
    "tab indentation": "a:\n\tb: 1\n",
    "recursive": "a: &a [*a]\n",
    "deep": "a: " + "[" * 400 + "]" * 400 + "\n",
    "unicode": "titre: \u00e9t\u00e9\nemoji: \U0001F600\n",
}


@pytest.mark.parametrize("name", CASES)
def test_direct_and_pyyaml_agree(name):
    direct, pyyaml = both_ways(CASES[name])
    assert direct[0] == pyyaml[0], (direct, pyyaml)
    if direct[0] == "data":
        assert strict(direct[1], pyyaml[1]), (direct, pyyaml)
    else:
        assert direct[1:] == pyyaml[1:]


def test_direct_keeps_types():
    doc, = yamlload.load_all("a: 2024-01-02\nb: yes\nc: '1'\nd: 1\n")
    assert doc == {"a": datetime.date(2024, 1, 2), "b": True, "c": "1", "d": 1}
    assert type(doc["d"]) is int


@pytest.mark.corpus
@pytest.mark.slow
def test_every_corpus_document_loads_the_same_both_ways():
    """Every document of the corpus: equal data both ways, and equal Rules (query IR included)."""
    texts = 0
    for path in sorted(corpus_path("rules").rglob("*.y*ml")):
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError:
            continue
        texts += 1
        direct, pyyaml = both_ways(text)
        assert direct[0] == pyyaml[0], path
        if direct[0] == "error":
            assert direct[1:] == pyyaml[1:], path
            continue
        assert strict(direct[1], pyyaml[1]), path
        for i, (a, b) in enumerate(zip(direct[1], pyyaml[1])):
            if isinstance(a, dict):
                try:
                    ra = rule._document(a, str(path), i, None)
                except Exception as e:  # noqa: BLE001 - a bad rule: the same error both ways
                    with pytest.raises(type(e)):
                        rule._document(b, str(path), i, None)
                    continue
                assert ra == rule._document(b, str(path), i, None), path
    assert texts > 4000

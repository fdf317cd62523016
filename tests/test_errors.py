"""Error kinds are a closed list (transpiler/errors.py KINDS), and the golden error cases
(tests/cases/errors.yaml) name where the error is: the YAML key path and, for a condition,
the column, not only the kind."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from caselib import load_cases

from transpiler.errors import KINDS, TranspileError

SOURCE = Path(__file__).resolve().parent.parent / "transpiler"

# Where each golden error case's error is: (key path, condition column or None).
WHERE = {
    "err-unknown-identifier": ("detection.condition", 1),
    "err-one-of-nothing": ("detection.condition", 6),
    "err-syntax-double-operator": ("detection.condition", 9),
    "err-syntax-unbalanced": ("detection.condition", 5),
    "err-syntax-aggregation": ("detection.condition", 5),
    "err-condition-missing": ("detection.condition", None),
    "err-unknown-modifier": ("detection.sel.x|contain", None),
    "err-conflicting-modifiers": ("detection.sel.x|contains|startswith", None),
    "err-re-flag-without-re": ("detection.sel.x|i", None),
    "err-utf16-without-base64": ("detection.sel.x|utf16le|contains", None),
    "err-base64-wildcard": ("detection.sel.x|base64", None),
    "err-exists-not-bool": ("detection.sel.x|exists", None),
    "err-lt-not-number": ("detection.sel.x|lt", None),
    "err-cidr-invalid": ("detection.sel.x|cidr", None),
    "err-re-invalid": ("detection.sel.x|re", None),
    "err-empty-list": ("detection.sel.x", None),
    "err-empty-map": ("detection.sel", None),
    "err-mixed-list": ("detection.sel", None),
    "err-placeholder-missing": ("detection.sel.x|expand", None),
    "err-map-as-value": ("detection.sel.x", None),
    "err-fieldref-with-contains": ("detection.sel.x|fieldref|contains", None),
    "err-null-with-contains": ("detection.sel.x|contains", None),
    "err-number-beyond-double": ("detection.sel.eventVersion|gt", None),
    "err-number-infinite": ("detection.sel.n|lt", None),
}
ERROR_CASES = [c for c in load_cases() if c.error]


def kinds_in_source() -> dict:
    """Every literal kind the code can raise: kind="x" given to a call, `kind = "x"` in a class
    body, and a default kind="x" of a function (rule.py's problem()) -> the file it is in."""
    found = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                values = [k.value for k in node.keywords if k.arg == "kind"]
            elif isinstance(node, ast.ClassDef):
                values = [a.value for a in node.body if isinstance(a, ast.Assign)
                          and any(getattr(t, "id", None) == "kind" for t in a.targets)]
            elif isinstance(node, ast.FunctionDef):
                args = node.args.args[len(node.args.args) - len(node.args.defaults):]
                values = [d for a, d in zip(args, node.args.defaults) if a.arg == "kind"]
            else:
                continue
            for v in values:
                if isinstance(v, ast.Constant) and isinstance(v.value, str):
                    found.setdefault(v.value, path.name)
    return found


def test_every_kind_raised_is_listed():
    used = kinds_in_source()
    unknown = {k: f for k, f in used.items() if k not in KINDS}
    assert not unknown, f"error kinds not in transpiler/errors.py KINDS: {unknown}"


def test_every_listed_kind_is_raised():
    unused = set(KINDS) - set(kinds_in_source()) - {"tests"}   # tests: ruletests.py, on its way (issue 18)
    assert not unused, f"KINDS lists kinds nothing raises: {sorted(unused)}"


def test_every_error_case_says_where():
    ids = {c.id for c in ERROR_CASES}
    assert ids <= set(WHERE), f"add the key path and column of {sorted(ids - set(WHERE))} to WHERE"
    assert set(WHERE) <= ids, f"WHERE names cases that are gone: {sorted(set(WHERE) - ids)}"


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.id)
def test_error_case_kind_and_place(case):
    assert case.error in KINDS
    with pytest.raises(TranspileError) as info:
        case.rule()
    e = info.value
    assert e.kind in KINDS
    assert (e.kind, e.where, e.col) == (case.error, *WHERE[case.id]), str(e)
    assert e.path and case.id in e.path   # the file (here the case's name) is named too


def test_printable_escapes_what_its_pattern_names_on_every_code_point():
    """printable() skips its regex for text str.isprintable() passes: right only while every
    character of _UNPRINTABLE is one isprintable() refuses."""
    import sys

    from transpiler.errors import _UNPRINTABLE, _escape, printable
    for c in map(chr, range(sys.maxunicode + 1)):
        text = f"a{c}b"
        assert printable(text) == _UNPRINTABLE.sub(_escape, text), hex(ord(c))

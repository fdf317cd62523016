"""detection.py's direct path for plain strings gives what the general path gives.

_build turns a plain value (no wildcard, no escape) under position modifiers straight into a
Match; here every such value and modifier chain must equal what _matches (wildcard parsing,
the modifiers, classification) makes of it."""
import itertools

from hypothesis import given, strategies as st

from transpiler import detection
from transpiler.nodes import Match

CHAINS = [c for n in range(4)
          for c in itertools.permutations(("contains", "startswith", "endswith", "cased", "all", "neq"), n)]
CHAINS += [("contains", "contains"), ("windash",), ("contains", "windash"), ("base64",), ("re",), ("expand",)]


def general(field, mods, value):
    mset = frozenset(mods)
    return list(dict.fromkeys(detection._matches(field, mods, mset, value, "cased" in mset, None)))


@given(value=st.text(alphabet="ab*?\\-/ %é", max_size=6), field=st.sampled_from(["f", None]))
def test_direct_path_is_the_general_path(value, field):
    tried = 0
    for mods in CHAINS:
        try:
            detection._check_combination(mods)
        except detection.RuleError:
            continue
        op = detection._plain_op(mods, field is None)
        if op is None or not detection._plain(value):
            continue
        tried += 1
        assert [Match(field, op, value, "cased" in mods)] == general(field, mods, value), (mods, value)
    assert tried or not detection._plain(value)


def test_plain_values():
    assert detection._plain("C:\\Windows\\cmd.exe")
    assert not detection._plain("C:\\\\x") and not detection._plain("a*") and not detection._plain("")
    assert not detection._plain(1) and not detection._plain(None)

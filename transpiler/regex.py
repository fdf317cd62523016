"""Regular expressions run on RE2: linear time whatever the pattern, so no rule can make the
evaluator backtrack for hours, and the same flavour DuckDB and KQL use. Sigma allows only
basic PCRE (spec: re), which RE2 covers; lookaround and backreferences are refused at load.
"""
from __future__ import annotations

from functools import lru_cache

import re2

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

"""The one error family users see, and its one message format.

    rules/aws_x.yml: detection.condition: col 9: expected a search identifier, found 'or'
        sel and or filter
                ^
"""
from __future__ import annotations

import re


# Every error kind, closed: tests/test_errors.py fails on a kind raised anywhere but listed here.
KINDS = {
    "error": "any other error (TranspileError's default)",
    "internal": "a bug: an unexpected exception while converting one rule",
    "io": "a file or folder cannot be read (missing, unreadable, a FIFO, device or socket)",
    "empty": "a folder named on the command line holds no rule or event file",
    "duplicate": "a rule repeats an earlier rule's id or title, or its file name in another folder",
    "yaml": "a rule file is not YAML the loader accepts (size, bytes, nesting, aliases, syntax)",
    "structure": "a rule's document, detection or selection has the wrong shape",
    "metadata": "a rule's title, id, level, status, tags, dates or logsource are wrong",
    "modifier": "an unknown modifier or a chain of modifiers that cannot combine",
    "value": "a value a modifier cannot take",
    "placeholder": "an |expand placeholder has no values",
    "syntax": "the condition does not parse",
    "unknown-identifier": "the condition names a search identifier the detection lacks",
    "filter": "a filter document names rules wrongly",
    "correlation": "a correlation is wrong, or a backend cannot express it",
    "mapping": "a field mapping file is wrong",
    "option": "a command-line, backend or format option is wrong",
    "events": "an event file cannot be read",
    "tests": "a rule's tests are missing or cannot be read (sigma-transpile test, check --require-tests)",
    "unsupported": "a backend cannot express the rule exactly (the reason says why)",
    "unmapped-field": "unsupported: the mapping has no column for a field",
    "mapping-limit": "unsupported: the column holds the field in a form where only some tests mean the same",
    "regex": "unsupported: the target's regex flavour cannot say the pattern",
    "keywords": "unsupported: the target has no column of the event's text for keywords",
    "json-array": "unsupported: a field inside a JSON array the target cannot search",
    "array": "unsupported: a field inside an array the target cannot search",
    "map": "unsupported: a field inside a map the target cannot read as JSON",
    "bool": "unsupported: the target cannot say what a bool column's text is",
    "json": "unsupported: a path inside a JSON column the target cannot read exactly",
    "too-long": "unsupported: the query is over the import format's length limit",
    "not-generated": "unsupported: a rule a correlation uses with generate: false",
}


# What a terminal would act on or a reader cannot see: C0 and C1 controls, DEL, zero-width
# and direction marks, line and paragraph separators, bidirectional embeddings and isolates
# ("Trojan Source"), the byte order mark.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def printable(text) -> str:
    """Text safe on one line of a terminal: each such character written as an escape
    (ESC as \\x1b, U+202E as \\u202e), so a file name or rule title cannot move the cursor,
    recolour the screen, or forge a line of output."""
    text = str(text)
    # Every character _UNPRINTABLE finds is one isprintable() refuses: most text skips the regex.
    return text if text.isprintable() else _UNPRINTABLE.sub(_escape, text)


def _escape(m) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


class TranspileError(Exception):
    """An error in a rule or an event file, with where it happened.

    kind is a short stable category from KINDS (tests match it, not the wording).
    """

    kind = "error"

    def __init__(self, message: str, *, path=None, where=None, col=None, source=None, kind=None):
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.where = where
        self.col = col
        self.source = source
        if kind:
            self.kind = kind

    def located(self, path=None, where=None):
        """Fill in the file and key path where the raiser did not know them."""
        if self.path is None and path is not None:
            self.path = str(path)
        if self.where is None and where is not None:
            self.where = where
        return self

    def headline(self) -> str:
        """The one line: path, key path, column, message; control characters escaped."""
        parts = [p for p in (self.path, self.where) if p]
        if self.col is not None:
            parts.append(f"col {self.col}")
        return printable(": ".join(parts + [self.message]))

    def __str__(self) -> str:
        if self.source is None or self.col is None:
            return self.headline()
        source = str(self.source)
        caret = len(printable(source[:self.col - 1]))
        return f"{self.headline()}\n    {printable(source)}\n    {' ' * caret}^"

    def as_dict(self) -> dict:
        return {"path": self.path, "where": self.where, "col": self.col,
                "kind": self.kind, "message": self.message}


class RuleError(TranspileError):
    """The rule's YAML, structure, metadata, modifiers or values are wrong."""

    kind = "structure"


class ConditionError(TranspileError):
    """The condition does not parse, or names an unknown search identifier."""

    kind = "syntax"


class Unsupported(TranspileError):
    """A backend cannot express this rule faithfully, so it emits nothing for it."""

    kind = "unsupported"


class EventsError(TranspileError):
    """An event file cannot be read."""

    kind = "events"

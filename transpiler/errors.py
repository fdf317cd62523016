"""The one error family users see, and its one message format.

    rules/aws_x.yml: detection.condition: col 9: expected a search identifier, found 'or'
        sel and or filter
                ^
"""
from __future__ import annotations


class TranspileError(Exception):
    """An error in a rule or an event file, with where it happened.

    kind is a short stable category (tests match it, not the wording): yaml, structure,
    metadata, modifier, value, placeholder, syntax, unknown-identifier, unsupported, events.
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
        parts = [p for p in (self.path, self.where) if p]
        if self.col is not None:
            parts.append(f"col {self.col}")
        return ": ".join(parts + [self.message])

    def __str__(self) -> str:
        if self.source is None or self.col is None:
            return self.headline()
        return f"{self.headline()}\n    {self.source}\n    {' ' * (self.col - 1)}^"

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

"""Engines run rules over events: the one interface `match`, `hunt`, `test` and the
differential tests share.

An engine answers, for a list of rules (and correlations) and a list of events, which events
each rule selects and which correlation alerts fire, or that it cannot run a rule and why.
The evaluator defines the answer; every other engine executes the query a backend writes
(DuckDB SQL in DuckDB, Athena SQL as executed here, pipe search in its interpreter, KQL in
duckdb-kql) and must give the same answer or refuse the rule.

    engine = engines.get("duckdb")()
    if engine.unavailable() is None:
        outcome = engine.run(rules, events)
        outcome.matches[0]      # sorted positions in `events` that rules[0] selects

An explicit table of engines, no plugin discovery: add a line to add an engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module

ENGINES = {
    # name -> "module:Class"; each module imports its heavy dependencies (duckdb, ...) itself,
    # so that listing or choosing an engine never needs them.
}


@dataclass
class Outcome:
    """What an engine found. Rules and events are named by their position in the lists given."""

    matches: dict = field(default_factory=dict)    # rule no -> sorted event nos it selects
    alerts: list = field(default_factory=list)     # correlation.Alert, for the correlations given
    refused: dict = field(default_factory=dict)    # rule no (or "c<no>" for a correlation) -> reason


class Engine:
    """Base of every engine. A subclass sets `name` and implements run()."""

    name = ""

    def unavailable(self) -> str | None:
        """Why this engine cannot run here (a missing package or tool), or None."""
        return None

    def run(self, rules, events, correlations=()) -> Outcome:
        """Run `rules` (rule.Rule with a query) and `correlations` (correlation.Correlation over
        those rules) over `events` (a list of dicts). A rule the engine's backend refuses is in
        `refused` with the reason and has no entry in `matches`."""
        raise NotImplementedError


def get(name: str):
    """The engine class called `name`; KeyError names the known ones."""
    try:
        module, cls = ENGINES[name].split(":")
    except KeyError:
        raise KeyError(f"unknown engine {name!r}; known: {', '.join(sorted(ENGINES))}") from None
    return getattr(import_module(module), cls)

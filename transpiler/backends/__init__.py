"""The backends, by name. An explicit table, no plugin discovery: add a line to add a target."""
from __future__ import annotations

from importlib import import_module

BACKENDS = {
    "athena": "transpiler.backends.sql:Athena",
    "duckdb": "transpiler.backends.sql:DuckDB",
    "kql": "transpiler.backends.kql:Kql",
    "pipesearch": "transpiler.backends.pipesearch:PipeSearch",
}


def get(name: str):
    """The backend class called `name`; KeyError names the known ones."""
    try:
        module, cls = BACKENDS[name].split(":")
    except KeyError:
        raise KeyError(f"unknown target {name!r}; known: {', '.join(sorted(BACKENDS))}") from None
    return getattr(import_module(module), cls)

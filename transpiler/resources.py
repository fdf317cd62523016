"""Where grammars/ and templates/ live: inside the package in a wheel, at the repo root in a checkout."""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def resource_dir(name: str) -> Path:
    packaged = Path(str(files("transpiler"))) / name
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / name

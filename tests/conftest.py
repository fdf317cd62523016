import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SHARED = HERE.parent.parent / "shared"
CORPUS = SHARED / "corpus"

# convert's cache (transpiler/cache.py) goes to a folder of this test session, not the user's
# ~/.cache: the tests then also run convert warm, and must see the same outputs.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="sigma-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], True)


def missing_tool(reason: str):
    """Skip for want of a tool (Java, Node, Chromium); in CI (CI=true, .ci/run) fail instead,
    so that CI never passes by skipping what it promised to run."""
    (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(reason)


@pytest.fixture(scope="module")
def engine():
    """The pipe-search interpreter with its JVM oracle (transpiler/engines/pipesearch.py)."""
    from transpiler.engines.pipesearch import Interpreter, Java
    if not Java.available():
        missing_tool("no JDK (java, javac) on PATH")
    java = Java()
    yield Interpreter(java)
    java.close()


def corpus_path(*parts) -> Path:
    """A path under ../shared/corpus; the test is skipped where the corpus is absent."""
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"corpus not available: {path}")
    return path

# Property tests run with a fixed seed: the same examples on every machine and every run.
from hypothesis import settings  # noqa: E402

settings.register_profile("fixed", derandomize=True, print_blob=True)
settings.load_profile("fixed")

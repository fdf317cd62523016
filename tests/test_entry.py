"""The command's entry point (transpiler.entry.run): a signal before the tool is loaded, during
the work or after it has finished ends the process with one line and a status, never a traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest

# Each program replaces cli.main, then runs the entry point as the console script does.
PROGRAMS = {
    "signal during the command": (
        "c.main = lambda: os.kill(os.getpid(), signal.SIGTERM) or time.sleep(5) or 0", 130, "interrupted"),
    "Ctrl-C during the command": (
        "c.main = lambda: os.kill(os.getpid(), signal.SIGINT) or time.sleep(5) or 0", 130, "interrupted"),
    "Ctrl-C after the command, at shutdown": (
        "c.main = lambda: atexit.register(os.kill, os.getpid(), signal.SIGINT) and 0", 0, ""),
    "SIGTERM after the command, at shutdown": (
        "c.main = lambda: atexit.register(os.kill, os.getpid(), signal.SIGTERM) and 0", 0, ""),
    "status passed through": ("c.main = lambda: 3", 3, ""),
}


@pytest.mark.parametrize("name", PROGRAMS)
def test_signals_end_the_run_cleanly(name):
    patch, status, stderr = PROGRAMS[name]
    program = ("import atexit, os, signal, time\nimport transpiler.cli as c\n" + patch +
               "\nfrom transpiler.entry import run\nraise SystemExit(run())\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr.strip()) == (status, stderr), done.stderr


def test_explain_and_test_escape_control_characters(tmp_path):
    """Human output of explain and test (a failing sample shows its event) shows a rule's escape sequences as text (issue 13 item 8)."""
    rule = tmp_path / "evil.yml"
    rule.write_text('title: "Evil \\e[31mred"\nlogsource: {product: aws, service: cloudtrail}\n'
                    'detection: {sel: {eventName: "a\\e[2Jb"}, condition: sel}\n')
    (tmp_path / "evil.tests.yml").write_text('no_match: [{eventName: "a\\e[2Jb"}]\n')
    for argv in (["explain", str(rule)], ["test", str(tmp_path), "--targets", "evaluator", "--no-progress"]):
        done = subprocess.run([sys.executable, "-m", "transpiler", *argv], capture_output=True, text=True, timeout=120)
        shown = done.stdout + done.stderr
        assert "\x1b" not in shown and ("\\x1b[" in shown or "\\u001b[" in shown), (argv, shown)

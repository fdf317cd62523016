"""The `sigma-transpile` command's entry point (and `python -m transpiler`).

Signals are taken over before the tool itself is imported, and kept until the process ends:
Ctrl-C or SIGTERM while Python is still loading the modules, or after the command has
finished but before the interpreter has shut down, ends the run like an interrupt anywhere
else ("interrupted", exit status 130), never with a traceback or a death by signal.
cli.main() handles interrupts during the work itself; tests call it directly.
"""
import os
import signal
import sys

INTERRUPTED = 130


def _raise(signum, frame):
    raise KeyboardInterrupt


def run() -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise)
    try:
        from .cli import main
        status = main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = INTERRUPTED
    # The outcome is decided: a late signal must not turn it into a traceback at shutdown.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        sys.stdout = None          # the reader is gone; nothing more can reach it
    cli = sys.modules.get("transpiler.cli")
    if cli is not None and cli.quick_exit:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os._exit(status)           # no teardown: convert has closed every file (cli.quick_exit)
    return status

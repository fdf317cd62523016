"""Paired measurements: ours and the incumbent, alternately, in the same session.

A shared 2-core machine drifts by tens of percent within minutes, so a figure measured now is
never divided by one measured earlier. Each pair runs both commands back to back (the order
swapped every other pair, so neither always gets the warmer cache); the figure is the median of
the per-pair ratios, printed with the load average before and after. Each sample is one whole
process: wall time, CPU time (user + system: less disturbed by other work) and peak RSS, from
os.wait4.

The incumbent is sigma-cli 3.1.0 with pySigma 1.5.1 in its own venv (bench/README.md says how
to install it); its `sigma` command is found at $SIGMA_CLI, else ../venv-sigmacli/bin/sigma
beside the checkout.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import ROOT

OURS = str(Path(sys.executable).with_name("sigma-transpile"))


def cold() -> tuple:
    """Our options for a run that does all the work: no warm cache (when this version has one)."""
    helped = subprocess.run([OURS, "convert", "--help"], capture_output=True, text=True).stdout
    return ("--no-cache",) if "--no-cache" in helped else ()


def from_bytecode(folder, target: str, source_only: bool = False, env=None) -> None:
    """Make both tools run from Python bytecode, as installed packages do (pip compiles it;
    sigma-cli's venv has it): PYTHONDONTWRITEBYTECODE dropped from `env` (default: this
    process's environment, which the children inherit) and the bytecode written once, by an
    untimed run of each on the seed rule, under `folder` (PYTHONPYCACHEPREFIX). Otherwise ours,
    run from a checkout in a shell that sets PYTHONDONTWRITEBYTECODE, compiles its modules on
    every run (some 0.04 s). source_only: leave the environment as the shell set it."""
    print(f"bytecode: {'as the shell says' if source_only else 'compiled once, then read'}")
    if source_only:
        return
    env = os.environ if env is None else env
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(folder)
    seed = [str(ROOT / "rules" / "aws_iam_user_created.yml")]
    for argv in (ours_convert(target, seed, *cold()), sigma_convert(target, seed)):
        run(argv, env=dict(env))


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_mib: float
    status: int
    stderr: str = ""


def run(argv, stdout=subprocess.DEVNULL, env=None, cwd=ROOT) -> Sample:
    """One whole process: wall and CPU seconds, peak RSS, its stderr; stdout to a file or nowhere."""
    out = open(stdout, "wb") if isinstance(stdout, (str, Path)) else stdout
    start = time.perf_counter()
    with out if out is not stdout else contextlib.nullcontext():
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, env=env, cwd=cwd)
        err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode,
                  err.decode(errors="replace"))


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def pairs(ours, theirs, runs=5, ok=(0,), prepare=None, **kw) -> list[tuple[Sample, Sample]]:
    """`runs` pairs (ours, theirs), alternating which runs first; a failing command stops the bench.
    prepare(i), if given, runs (untimed) before ours in pair i."""
    done = []
    for i in range(runs):
        order = [("ours", ours), ("theirs", theirs)]
        got = {}
        for name, argv in order if i % 2 == 0 else reversed(order):
            if prepare is not None and name == "ours":
                prepare(i)
            got[name] = run(argv, **kw)
            if got[name].status not in ok:
                sys.exit(f"{argv[0]} exited {got[name].status}:\n{got[name].stderr[-2000:]}")
        done.append((got["ours"], got["theirs"]))
    return done


def report(label, measured, ours="ours", theirs="sigma-cli", before=None) -> dict:
    """Print the medians and the median per-pair ratio; return them."""
    med = {k: statistics.median(getattr(s[i], k) for s in measured)
           for i, k in ((0, "wall"), (0, "cpu"), (0, "rss_mib"))}
    them = {k: statistics.median(getattr(s[1], k) for s in measured) for k in ("wall", "cpu", "rss_mib")}
    wall_ratio = statistics.median(a.wall / b.wall for a, b in measured)
    cpu_ratio = statistics.median(a.cpu / b.cpu for a, b in measured)
    print(f"{label}: {len(measured)} pairs, load average {before or '?'} before, {load()} after")
    print(f"  {ours:<10} wall {med['wall']:6.2f} s  cpu {med['cpu']:6.2f} s  rss {med['rss_mib']:5.0f} MiB"
          f"   ({', '.join(f'{a.wall:.2f}' for a, _ in measured)})")
    print(f"  {theirs:<10} wall {them['wall']:6.2f} s  cpu {them['cpu']:6.2f} s  rss {them['rss_mib']:5.0f} MiB"
          f"   ({', '.join(f'{b.wall:.2f}' for _, b in measured)})")
    print(f"  ratio {ours}/{theirs}: wall {wall_ratio:.3f} (median of per-pair ratios; {1 / wall_ratio:.1f}x), "
          f"cpu {cpu_ratio:.3f}")
    return {"ours": med, "theirs": them, "wall_ratio": wall_ratio, "cpu_ratio": cpu_ratio}


def sigma_cli() -> Path:
    """The incumbent's `sigma` command."""
    path = Path(os.environ.get("SIGMA_CLI", ROOT.parent / "venv-sigmacli" / "bin" / "sigma"))
    if not path.exists():
        sys.exit(f"sigma-cli not found at {path}: install it as bench/README.md says, or set SIGMA_CLI")
    return path


SIGMA_TARGETS = {"athena": "athena", "kql": "kusto"}


def survivors(target: str, folder: Path) -> list[str]:
    """The rule files of `folder` that sigma-cli converts without aborting (bench/sigmacli_rules.py),
    remembered per target, folder contents and incumbent version in the user's cache folder."""
    files = sorted(str(p) for p in folder.rglob("*.yml"))
    python = sigma_cli().with_name("python")
    version = subprocess.run([python, "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\n".join([target, version, *files]).encode())
    for f in files:
        key.update(Path(f).read_bytes())
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sigma-transpile-bench"
    path = cache / f"{target}-{key.hexdigest()[:16]}.txt"
    if not path.exists():
        print(f"finding the files sigma-cli survives for {target} (once; cached in {path}) ...", flush=True)
        found = subprocess.run([python, str(ROOT / "bench" / "sigmacli_rules.py"), target, str(folder)],
                               capture_output=True, text=True, check=True)
        print("  " + found.stderr.strip().splitlines()[-1])
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(found.stdout)
        tmp.replace(path)
    return path.read_text().split("\n")[:-1]


def sigma_convert(target: str, rules: list[str]) -> list[str]:
    """sigma-cli's command for converting `rules` to `target`, skipping what it can skip."""
    return [str(sigma_cli()), "convert", "-t", SIGMA_TARGETS[target], "-s", *rules]


def ours_convert(target: str, rules: list[str], *extra) -> list[str]:
    return [OURS, "convert", "-t", target, "--no-progress", *extra, *rules]


def convert_figure(target: str, folder: Path, runs: int, *extra) -> dict:
    """Ours and sigma-cli converting the same files (the ones sigma-cli survives) to `target`."""
    rules = survivors(target, folder)
    before = load()
    measured = pairs(ours_convert(target, rules, *extra), sigma_convert(target, rules), runs)
    summary = measured[-1][0].stderr.strip().splitlines()[-1]
    return report(f"convert {len(rules)} rule files of {folder} to {target} ({summary})", measured,
                  before=before)

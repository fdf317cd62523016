"""A non-editable install carries grammars/ and templates/ and works from another folder."""
import os
import subprocess
import sys

import pytest

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_wheel_install_runs_from_elsewhere(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(ROOT)], check=True)
    wheel = next(wheels.glob("*.whl"))
    names = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)],
                           capture_output=True, text=True, check=True).stdout
    assert "transpiler/grammars/condition.lark" in names
    assert "transpiler/templates/" in names

    # Install the wheel alone into a folder that comes first on sys.path: its own files, not
    # the checkout's, must serve grammars/ and templates/ (dependencies come from this venv).
    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    rule = tmp_path / "r.yml"
    rule.write_text("title: t\nlogsource: {}\ndetection: {sel: {a: 1}, condition: sel and not 1 of f*}\n")
    done = subprocess.run([sys.executable, "-c", "import transpiler.resources as r; print(r.resource_dir('templates'))"],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.stdout.startswith(str(target)), done.stdout + done.stderr
    done = subprocess.run([sys.executable, "-m", "transpiler", "check", str(rule)], capture_output=True, text=True,
                          cwd=tmp_path, env=env)
    assert done.returncode == 1 and "no search identifier matches 'f*'" in done.stdout, done.stdout + done.stderr
    good = tmp_path / "good.yml"
    good.write_text("title: g\nlogsource: {product: aws, service: cloudtrail}\ndetection: {sel: {eventName: x}, condition: sel}\n")
    for target, text in [("kql", 'EventName =~ "x"'), ("athena", "lower(eventname) = 'x'"), ("pipesearch", "event_name")]:
        done = subprocess.run([sys.executable, "-m", "transpiler", "convert", str(good), "-t", target],
                              capture_output=True, text=True, cwd=tmp_path, env=env)
        assert done.returncode == 0 and text in done.stdout, done.stdout + done.stderr

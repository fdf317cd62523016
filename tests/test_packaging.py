"""A non-editable install carries grammars/ and templates/ and works from another folder."""
import subprocess
import sys
import venv

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

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=True).create(env_dir)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, str(wheel)],
                   check=True)
    rule = tmp_path / "r.yml"
    rule.write_text("title: t\nlogsource: {}\ndetection: {sel: {a: 1}, condition: sel and not 1 of f*}\n")
    done = subprocess.run([str(py), "-c", "import transpiler.resources as r, sys; print(r.resource_dir('grammars'))"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert str(ROOT) not in done.stdout and "site-packages" in done.stdout, done.stdout + done.stderr
    done = subprocess.run([str(py), "-m", "transpiler", "check", str(rule)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1 and "no search identifier matches 'f*'" in done.stdout

"""The wheel is the product: built from a clean copy of the checkout, installed into a fresh virtualenv,
its commands must work from anywhere, with no checkout on sys.path (controller/devstack/resources.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

CHECKOUT = Path(__file__).resolve().parents[2]
NOT_SHIPPED = shutil.ignore_patterns(".git", ".venv", "run", "build", "dist", "*.egg-info", "__pycache__",
                                     ".pytest_cache", ".ruff_cache", ".hypothesis", "benchmarks", "ansible")


@dataclass
class Installed:
    venv: Path
    cwd: Path
    state: Path
    env: dict[str, str]

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout)

    def xferctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.venv / "bin" / "xferctl"), *args, timeout=timeout)


def _check(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    tmp = tmp_path_factory.mktemp("wheel")
    # a clean copy: no build/ left over from an earlier build, no files git ignores
    src = tmp / "src"
    shutil.copytree(CHECKOUT, src, ignore=NOT_SHIPPED, symlinks=True)
    _check(subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(src)],
                          capture_output=True, text=True, timeout=180))
    wheel = next((tmp / "dist").glob("xfer_controller-*.whl"))
    venv = tmp / "venv"
    _check(subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=120))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME",
                                                              "XFERCTL_RUN_DIR", "PYTHONSTARTUP")}
    env |= {"PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
            "XDG_STATE_HOME": str(tmp / "state"), "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}
    _check(subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], env=env,
                          capture_output=True, text=True, timeout=300))
    shutil.rmtree(src)  # nothing of the checkout is left to fall back on but the installed files
    cwd = tmp / "elsewhere"
    cwd.mkdir()
    yield Installed(venv, cwd, tmp / "state", env)


def test_runs_from_the_installed_copy(installed: Installed) -> None:
    out = _check(installed.run(str(installed.venv / "bin" / "python"), "-c",
                               "import controller; from controller.devstack import resources as r; "
                               "print(controller.__file__); print(r.CHECKOUT); print(r.ROOT); print(r.RUN_DIR)"))
    module, checkout, root, run_dir = out.stdout.split()
    venv = installed.venv.resolve()
    assert Path(module).resolve().is_relative_to(venv), module
    assert checkout == "None"
    assert Path(root).resolve() == venv / "share" / "xfer-controller"
    assert Path(run_dir) == installed.state / "xfer-controller"


def test_check_config(installed: Installed) -> None:
    out = _check(installed.xferctl("check-config"))
    assert "example.yaml: ok: node local" in out.stdout
    bad = installed.cwd / "bad.yaml"
    bad.write_text("node:\n  sip:\n    port: not-a-port\n")
    out = installed.xferctl("check-config", str(bad))
    assert out.returncode != 0
    assert "bad.yaml: invalid configuration" in out.stderr and "node.sip.port" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    out = installed.xferctl("check-config", str(installed.cwd / "missing.yaml"))
    assert out.returncode != 0 and "file not found" in out.stderr and "Traceback" not in out.stderr


def test_diagram(installed: Installed) -> None:
    assert "stateDiagram" in _check(installed.xferctl("diagram")).stdout


def test_demo(installed: Installed) -> None:
    out = _check(installed.xferctl("demo", timeout=150))
    assert "demo OK" in out.stdout
    assert (installed.state / "xfer-controller" / "demo" / "logs" / "kamailio.log").is_file()
    assert not (installed.cwd / "run").exists()


def test_demo_of_the_phones_transfer_button(installed: Installed) -> None:
    out = _check(installed.xferctl("demo", "--scenario", "refer", timeout=150))
    assert "demo OK" in out.stdout
    assert "in NOTIFYs: 100 Trying, 180 Ringing, 200 OK" in out.stdout, out.stdout


def test_demo_of_a_three_way_conference(installed: Installed) -> None:
    out = _check(installed.xferctl("demo", "--scenario", "conference", timeout=150))
    assert "demo OK" in out.stdout and "a three-way conference" in out.stdout, out.stdout

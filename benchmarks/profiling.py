"""Where the controller's CPU goes: py-spy samples of the running controller, summarised.

py-spy is optional (a profiling tool, not a project dependency): `.venv/bin/python -m pip install
py-spy`. Without it the report says so and the benchmark runs as usual.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r":\d+\)$")  # "func (file.py:123)" -> "func (file.py)": one entry per function


def pyspy_path() -> str | None:
    beside_python = Path(sys.executable).parent / "py-spy"
    return str(beside_python) if beside_python.exists() else shutil.which("py-spy")


@dataclass
class Profile:
    samples: int
    top_self: list[tuple[str, float]]  # function, share of samples with it on top of the stack
    top_own_code: list[tuple[str, float]]  # the controller's own functions, inclusive share
    by_package: list[tuple[str, float]]  # own time summed per top-level package (redis, asyncio, ...)
    raw_path: str


class PySpy:
    """`py-spy record` on one PID for a fixed time, in raw (collapsed stacks) format."""

    def __init__(self, pid: int, seconds: float, out: Path, rate: int = 250):
        self.out = out
        exe = pyspy_path()
        if exe is None:
            raise FileNotFoundError("py-spy is not installed")
        # --nonblocking: do not pause the controller to sample it, so the profile does not slow it down
        self.argv = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                     "--rate", str(rate), "--format", "raw", "--nonblocking", "--output", str(out)]
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with open(self.out.with_suffix(".log"), "wb") as log:
            self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def finish(self, timeout: float = 30.0) -> Profile:
        assert self.popen is not None
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()  # only the py-spy we started
            self.popen.wait(5)
        if not self.out.exists():
            log = self.out.with_suffix(".log").read_text(errors="replace")[-500:]
            raise RuntimeError(f"py-spy wrote no profile (exit {self.popen.returncode}): {log}")
        return summarise(self.out.read_text(errors="replace"), str(self.out))


def summarise(collapsed: str, raw_path: str = "", top: int = 12) -> Profile:
    """Top functions of collapsed stacks ("frame;frame;leaf count" per line, root first)."""
    self_counts: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_LINE.sub(")", frame.strip()) for frame in stack.split(";") if frame.strip()]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        packages[package_of(frames[-1])] += count
        for frame in set(frames):
            if "controller/" in frame:
                inclusive[frame] += count
    # the entry chain (cli main -> serve -> run_app) is in every sample and says nothing
    entry = max(inclusive.values(), default=0)
    own = [(frame, n) for frame, n in inclusive.most_common() if n < entry]
    share = (lambda n: n / total) if total else (lambda n: 0.0)
    return Profile(
        samples=total,
        top_self=[(frame, share(n)) for frame, n in self_counts.most_common(top)],
        top_own_code=[(frame, share(n)) for frame, n in own[:top]],
        by_package=[(name, share(n)) for name, n in packages.most_common(top)],
        raw_path=raw_path,
    )


def package_of(frame: str) -> str:
    """'Redis.execute (redis/asyncio/client.py)' -> 'redis'; 'select (selectors.py)' -> 'selectors'."""
    where = frame.rpartition("(")[2].rstrip(")")
    where = where.removeprefix("<frozen ").rstrip(">")
    first = where.replace("\\", "/").lstrip("/").split("/")[0]
    return first.removesuffix(".py") or "?"

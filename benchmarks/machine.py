"""What the numbers were measured on: cores, CPU model, kernel, memory and the daemons' versions."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
from pathlib import Path


def _first_line(argv: list[str], pattern: str = "") -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = out.stdout + out.stderr
    for line in text.splitlines():
        line = line.strip()
        if line and (not pattern or re.search(pattern, line)):
            return line
    return "unknown"


def _cpuinfo(field: str) -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":")[0].strip() == field:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _mem_total_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def describe() -> dict[str, str]:
    return {
        "nproc": str(os.cpu_count()),
        "cpu": _cpuinfo("model name"),
        "memory": f"{_mem_total_gib():.1f} GiB",
        "kernel": platform.release(),
        "os": _first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "kamailio": _first_line(["kamailio", "-v"], r"^version:").removeprefix("version:").strip(),
        "rtpengine": _first_line(["rtpengine", "--version"], r"Version").removeprefix("Version:").strip(),
        "sipp": _first_line(["sipp", "-v"], r"SIPp v"),
        "redis": _first_line(["redis-server", "--version"]),
        "python": platform.python_version(),
        "load_average_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def provenance(repo: Path, kamailio_cfg: Path) -> dict[str, str]:
    """Which code and which Kamailio config produced the numbers."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    try:
        digest = hashlib.sha256(kamailio_cfg.read_bytes()).hexdigest()[:12]
    except OSError:
        digest = "unreadable"
    shown = kamailio_cfg.relative_to(repo) if kamailio_cfg.is_relative_to(repo) else kamailio_cfg
    return {"commit": commit + dirty, "kamailio_cfg": f"{shown} (sha256 {digest})"}

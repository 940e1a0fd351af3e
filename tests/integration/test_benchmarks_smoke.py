"""`make bench-smoke` end to end: both modes run real calls, and a report with a ratio comes out."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from controller.devstack.stack import REPO_ROOT

pytestmark = pytest.mark.integration

DOC = REPO_ROOT / "docs" / "BENCHMARKS.md"


def test_benchmark_smoke_reports_both_modes_and_a_ratio(tmp_path_factory: pytest.TempPathFactory) -> None:
    doc_before = DOC.stat().st_mtime_ns if DOC.exists() else None
    run_dir = tmp_path_factory.mktemp("bench")  # short: Kamailio's control socket path must fit a sun_path

    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--smoke", "--run-dir", str(run_dir)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=90)

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results["modes"]) == {"baseline", "full"}
    for name, mode in results["modes"].items():
        assert mode["steps"], f"{name}: no step ran: {mode['stop_reason']}"
        step = mode["steps"][0]
        # a smoke step is 10 calls/s for 2 s: 20 calls, and a step that passed lost none of them
        assert (step["rate"], step["calls"]) == (10, 20), f"{name}: {step}"
        assert step["passed"], f"{name}: {step['reasons']}"
        assert step["created"] == step["successful"] == 20 and step["failed"] == 0, f"{name}: {step}"
        assert step["setup_ms"]["p50"] is not None
        # CPU is counted in 10 ms ticks: a few seconds at 10 calls/s may leave Kamailio at 0
        assert {"kamailio", "rtpengine", "redis", "sipp_uac", "sipp_uas"} <= set(step["cpu_s"])
        assert step["cpu_s"]["rtpengine"] > 0
        # media really went through rtpengine, both ways
        assert step["media"]["relayedpackets"] > step["successful"] * 20
        assert mode["max_rate"] > 0, f"{name}: {mode['stop_reason']}"
    # both modes rated their only step, 10 calls/s: the ratio of the highest rates is exactly 1
    assert results["ratio"] == 1.0, results["ratio"]

    full = results["modes"]["full"]["steps"][0]
    # ordinary calls never reach the controller: no callback, no notification (Kamailio routed and
    # recorded them itself)
    assert full["controller"]["callbacks"] == 0 and full["controller"]["p99_ms"] is None
    assert full["notifications_per_call"] == 0
    assert "controller" in full["cpu_s"] and "controller" not in results["modes"]["baseline"]["steps"][0]["cpu_s"]

    report = (run_dir / "BENCHMARKS.md").read_text()
    for heading in ("## Summary", "## Targets", "## Steps: Baseline", "## Steps: Full stack", "## Machine"):
        assert heading in report
    assert "Ratio full stack / baseline of the highest rates: " in report
    # a smoke run never rewrites the committed report
    assert (DOC.stat().st_mtime_ns if DOC.exists() else None) == doc_before

"""The benchmark runner's pure parts: SIPp statistics, histogram quantiles, profiles and the report."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.procstat import CLK_TCK, CpuMeter, process_tree, read_stat
from benchmarks.profiling import package_of, summarise
from benchmarks.promhist import Histogram, counter
from benchmarks.report import _controller_cell, render, spread
from benchmarks.results import BenchResult, ControllerLatency, Criteria, ModeResult, StepResult
from benchmarks.run import median_run
from benchmarks.sipp_load import achieved_rate, last_stat_row, percentile, read_rtt
from benchmarks.steps import controller_latency

METRICS = """\
# TYPE xfer_callback_seconds histogram
xfer_callback_seconds_bucket{le="0.001",method="route.invite"} 10.0
xfer_callback_seconds_bucket{le="0.002",method="route.invite"} 60.0
xfer_callback_seconds_bucket{le="0.005",method="route.invite"} 95.0
xfer_callback_seconds_bucket{le="0.01",method="route.invite"} 100.0
xfer_callback_seconds_bucket{le="+Inf",method="route.invite"} 100.0
xfer_callback_seconds_count{method="route.invite"} 100.0
xfer_callback_seconds_sum{method="route.invite"} 0.25
xfer_callback_seconds_bucket{le="0.001",method="?"} 3.0
xfer_callback_seconds_bucket{le="+Inf",method="?"} 3.0
xfer_errors_total{component="redis"} 2.0
xfer_errors_total{component="dtmf_malformed"} 1.0
"""


def test_histogram_quantiles_interpolate_inside_buckets() -> None:
    hist = Histogram.parse(METRICS, "xfer_callback_seconds", method="route.invite")
    assert hist.count == 100
    p50, open_ended = hist.quantile(0.5)
    assert p50 == pytest.approx(0.001 + 0.001 * 40 / 50) and not open_ended
    p99, _ = hist.quantile(0.99)
    assert p99 == pytest.approx(0.005 + 0.005 * 4 / 5)
    assert hist.mean == pytest.approx(0.0025)


def test_histogram_difference_is_the_step_and_inf_bucket_is_a_lower_bound() -> None:
    before = Histogram.parse(METRICS, "xfer_callback_seconds", method="route.invite")
    later = METRICS.replace('le="+Inf",method="route.invite"} 100.0', 'le="+Inf",method="route.invite"} 200.0')
    later = later.replace('xfer_callback_seconds_count{method="route.invite"} 100.0',
                          'xfer_callback_seconds_count{method="route.invite"} 200.0')
    step = Histogram.parse(later, "xfer_callback_seconds", method="route.invite") - before
    assert step.count == 100
    value, open_ended = step.quantile(0.99)
    assert value == 0.01 and open_ended  # every call of the step took longer than the last finite bucket
    assert counter(METRICS, "xfer_errors_total") == 3
    assert counter(METRICS, "xfer_errors_total", component="redis") == 2


def test_a_controller_without_the_callback_histogram_has_no_latency_but_its_errors() -> None:
    """Kamailio routes calls itself now: the controller's metrics have no xfer_callback_seconds."""
    without = "\n".join(line for line in METRICS.splitlines() if "xfer_callback_seconds" not in line)
    latency = controller_latency(without, without.replace('component="redis"} 2.0', 'component="redis"} 5.0'), 0)
    assert (latency.callbacks, latency.p50_ms, latency.p99_ms, latency.mean_ms) == (0, None, None, None)
    assert latency.errors_by_component == {"redis": 3}
    step = _step("full", 50, True)
    step.controller = latency
    assert _controller_cell(step) == "-"


def test_sipp_statistics_files(tmp_path: Path) -> None:
    stat = tmp_path / "stat.csv"
    stat.write_text("TotalCallCreated;SuccessfulCall(C);FailedCall(C);FailedTimeoutOnRecv(C);FailedMaxUDPRetrans(C);\n"
                    "10;9;0;0;0;\n20;18;2;2;0;\n")
    row = last_stat_row(stat)
    assert row["TotalCallCreated"] == "20" and row["FailedTimeoutOnRecv(C)"] == "2"
    assert last_stat_row(tmp_path / "missing.csv") == {}

    rtt = tmp_path / "rtt.csv"
    rtt.write_text("Date_ms;response_time_ms;rtd_no\n0.5;3;1\n100.5;0;1\n200.5;12;1\n1000.5;4;1\n")
    times, values = read_rtt(rtt)
    assert values == [3, 0, 12, 4]
    assert achieved_rate(times) == pytest.approx(3.0)
    assert percentile(values, 50) == 3 and percentile(values, 99) == 12 and percentile([], 50) is None


def test_profile_summary_drops_the_entry_chain_and_groups_by_package() -> None:
    collapsed = (
        "main (controller/cli.py:10);serve (controller/service.py:5);select (selectors.py:468) 60\n"
        "main (controller/cli.py:10);serve (controller/service.py:5);apply (controller/notifications.py:80);"
        "execute (redis/asyncio/client.py:600) 30\n"
        "main (controller/cli.py:10);serve (controller/service.py:5);handle (controller/callbacks.py:44) 10\n"
    )
    profile = summarise(collapsed)
    assert profile.samples == 100
    assert profile.top_self[0] == ("select (selectors.py)", 0.6)
    assert dict(profile.by_package) == {"selectors": 0.6, "redis": 0.3, "controller": 0.1}
    own = dict(profile.top_own_code)
    assert "main (controller/cli.py)" not in own and own["apply (controller/notifications.py)"] == 0.3
    assert package_of("_run_code (<frozen runpy>)") == "runpy"


def _step(mode: str, rate: float, passed: bool) -> StepResult:
    return StepResult(
        mode=mode, rate=rate, calls=int(rate * 10), call_s=3, created=int(rate * 10),
        successful=int(rate * 10) if passed else int(rate * 9), failed=0 if passed else int(rate),
        failure_causes={} if passed else {"TimeoutOnRecv": int(rate)}, retransmissions=0, achieved_rate=rate,
        sipp_exit=0, setup_ms={"p50": 1.0, "p95": 3.0, "p99": 8.0, "max": 20.0}, setup_tick_ms=1, wall_s=14.0,
        cpu_s={"kamailio": 1.0, "rtpengine": 2.0, "redis": 0.1, "sipp_uac": 1.0, "sipp_uas": 1.0}
        | ({"controller": 1.5} if mode == "full" else {}),
        others_cpu_s=0.0, top_others=[], machine_busy_s=10.0, machine_capacity_s=28.0, peak_dialogs=int(rate * 3),
        kamailio_shm_max=1, media={"relayedpackets": int(rate * 2000)}, sip_drops={}, passed=passed,
        reasons=[] if passed else ["90.00 % successful"],
        controller=ControllerLatency(100, 1.0, 4.0, False, 1.2, 0, 0) if mode == "full" else None,
    )


def test_report_renders_ratio_targets_and_a_mode_that_never_started() -> None:
    base = ModeResult("baseline", [_step("baseline", 100, True), _step("baseline", 150, False)], "150 missed")
    lagging = _step("full", 75, True)
    lagging.keeps_up, lagging.end_backlog, lagging.notifications_per_call = False, 450, 2.0
    full = ModeResult("full", [_step("full", 50, True), lagging, _step("full", 100, False)], "100 missed")
    full.steps[0].keeps_up = True
    result = BenchResult("python -m benchmarks.run", "now", 60.0, False, {"nproc": "2"},
                         {"rates": [50, 100, 150], "step_seconds": 10, "call_seconds": 3, "refine": 2,
                          "rtp_ports": [10000, 19999], "kamailio_children": 4, "kamailio_shm_mb": 256},
                         Criteria(), {"baseline": base, "full": full})
    assert result.ratio == 0.75
    assert full.rated is lagging and full.sustained is full.steps[0]
    assert lagging.controller_lag_s == pytest.approx(3.0)  # 450 waiting, 150 notifications/s
    text = render(result)
    assert "0.75x" in text and "**missed** by 0.15x" in text and "met, 16.0 ms to spare" in text  # target 0.9x
    assert "it keeps up to 50 calls/s" in text
    data = result.to_json()
    assert data["modes"]["full"]["max_rate"] == 75 and data["modes"]["full"]["sustained_rate"] == 50

    broken = BenchResult("cmd", "now", 1.0, True, {}, result.settings, Criteria(),
                         {"baseline": ModeResult("baseline", stop_reason="error: StartupError: kamailio exited"),
                          "full": full})
    assert broken.ratio is None
    assert "No step ran: error: StartupError" in render(broken)


def test_repeats_show_the_median_run_and_the_spread() -> None:
    def ladder(mode: str, top: float) -> ModeResult:
        return ModeResult(mode, [_step(mode, 50, True), _step(mode, top, True), _step(mode, top + 50, False)], "x")

    base = [ladder("baseline", r) for r in (200, 250, 150)]
    full = [ladder("full", r) for r in (150, 100, 175)]
    assert median_run(base).max_rate == 200 and median_run(full).max_rate == 150
    assert median_run(base[:2]).max_rate == 200  # an even count: the lower middle one
    result = BenchResult("python -m benchmarks.run --repeats 3", "now", 60.0, False, {"nproc": "2"},
                         {"rates": [50, 100], "step_seconds": 10, "call_seconds": 3, "refine": 2,
                          "rtp_ports": [10000, 19999], "kamailio_children": 4, "kamailio_shm_mb": 256}, Criteria(),
                         {"baseline": median_run(base), "full": median_run(full)},
                         runs={"baseline": base, "full": full})
    text = render(result)
    assert "## Repeats" in text
    assert "| baseline: highest rate with >= 99.9 % successful | 200 (150-250, n=3) calls/s |" in text
    assert "**0.75x**" in text  # 150 / 200: the ratio of the medians
    assert spread([3.0, 1.0]) == "2 (1-3, n=2)" and spread([]) == "-"
    assert result.to_json()["runs"]["full"][2]["mode"] == "full"


def test_cpu_accounting_follows_a_process_tree() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert child.pid in process_tree(os.getpid())
        assert read_stat(os.getpid()).cpu_s > 0
        meter = CpuMeter({"runner": [os.getpid()]})
        before = meter.snapshot()
        own_before = read_stat(os.getpid()).cpu_s
        # CPU for this process until the kernel has counted at least one tick of it (10 ms)
        deadline = time.monotonic() + 10
        while read_stat(os.getpid()).cpu_s == own_before:
            assert time.monotonic() < deadline, "10 s of work and no CPU tick counted"
            sum(i * i for i in range(100_000))
        own_used = read_stat(os.getpid()).cpu_s - own_before  # measured inside the meter's window
        usage = CpuMeter.usage(before, meter.snapshot())
        # the group is this process and its (sleeping) child: at least what this process used
        # (seconds are ticks / CLK_TCK: compared with half a tick of slack for float rounding)
        assert own_used > 0.5 / CLK_TCK, own_used
        assert usage.groups["runner"] > own_used - 0.5 / CLK_TCK, (usage.groups, own_used)
        assert usage.wall_s > 0
        assert child.pid not in {pid for pid in before.others}  # our own children are never "others"
    finally:
        child.kill()
        child.wait()

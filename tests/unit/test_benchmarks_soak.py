"""The soak's pure parts: least-squares trends and their verdicts, the Redis key audit, the report."""

from __future__ import annotations

import json
import random
import types

import pytest

from benchmarks import soak_report as sr
from benchmarks.soak import parse_args
from benchmarks.soak_report import (
    BY_KEY,
    FALLS,
    FLAT,
    GROWS,
    MIB,
    TOO_FEW,
    UNDECIDED,
    EndCheck,
    Metric,
    Sample,
    SoakResult,
    audit_keys,
    classify,
    events_capped,
    least_squares,
    node_key_kinds,
    render,
    steady,
    table_rows,
    trend,
    verdict,
)
from controller.wire import (
    CALL_KEY,
    CONV_KEY,
    EVENTS_STREAM,
    INBOUND_STREAM,
    LEG_KEY,
    LIMIT_LIVE_KEY,
    LIMIT_MINUTE_KEY,
    REGISTRAR_KEY,
    ROUTES_CURRENT_KEY,
    ROUTES_KEY,
)


def _series(key: str, per_s: float, *, base: float, noise: float = 0.0, warmup: float = 120, duration: float = 3600,
            step: float = 10, seed: int = 1) -> list[Sample]:
    rng = random.Random(seed)
    samples = [Sample(0, "before", {key: base})]
    t = step
    while t < duration:
        samples.append(Sample(t, "load", {key: base + per_s * t + rng.uniform(-noise, noise)}))
        t += step
    samples.append(Sample(duration + 5, "drain", {key: 0.0}))
    samples.append(Sample(duration + 9, "after", {key: 0.0}))
    return samples


def test_least_squares_recovers_a_line_and_its_standard_error() -> None:
    slope, intercept, stderr = least_squares([0, 1, 2, 3], [1, 3, 5, 7])
    assert (slope, intercept) == pytest.approx((2.0, 1.0)) and stderr == pytest.approx(0.0)
    slope, _, stderr = least_squares([0, 1, 2, 3], [0, 1, 0, 1])
    assert slope == pytest.approx(0.2) and stderr == pytest.approx(0.8 ** 0.5 / 5 ** 0.5 / 2 ** 0.5)
    assert least_squares([0, 10], [5, 6])[2] is None  # two points: a line, no error estimate
    with pytest.raises(ValueError):
        least_squares([1], [1])
    with pytest.raises(ValueError):
        least_squares([2, 2, 2], [1, 2, 3])


def test_verdicts_flat_within_threshold_findings_only_when_significant() -> None:
    assert verdict(1.9, 0.1, 2.0) == FLAT
    assert verdict(-1.9, 5.0, 2.0) == FLAT
    assert verdict(10.0, 1.0, 2.0) == GROWS
    assert verdict(-10.0, 1.0, 2.0) == FALLS
    assert verdict(10.0, 4.0, 2.0) == UNDECIDED  # 2.5 standard errors: could be noise
    assert verdict(10.0, 1.0, 2.0, by_design=True) == sr.BY_DESIGN
    assert verdict(10.0, None, 2.0) == GROWS  # no error estimate: the slope alone


def test_threshold_is_two_percent_of_the_mean_or_the_floor() -> None:
    rss = BY_KEY["ctl_rss"]  # floor 1 MiB/h
    assert sr.threshold_per_h(rss, 60.0) == pytest.approx(1.2)
    assert sr.threshold_per_h(rss, 20.0) == pytest.approx(1.0)
    fds = BY_KEY["redis_fds"]
    assert sr.threshold_per_h(fds, 30) == 3


def test_a_flat_noisy_metric_is_flat_and_a_slow_leak_grows() -> None:
    metric = BY_KEY["ctl_rss"]
    flat = steady(_series("ctl_rss", 0.0, base=60 * MIB, noise=0.3 * MIB), 120)
    t = trend(metric, flat)
    assert t.verdict == FLAT and t.mean == pytest.approx(60, abs=0.1) and abs(t.slope_per_h) < 0.3
    leak = steady(_series("ctl_rss", 5 * MIB / 3600, base=60 * MIB, noise=0.3 * MIB), 120)  # 5 MiB an hour
    t = trend(metric, leak)
    assert t.verdict == GROWS and t.slope_per_h == pytest.approx(5, abs=0.2)
    assert t.change_pct_per_h == pytest.approx(100 * t.slope_per_h / t.mean)
    assert t.samples == len(leak) and t.first < t.last


def test_the_trend_window_is_the_load_after_warm_up() -> None:
    samples = _series("kam_dialogs", 0.0, base=300, warmup=120)
    window = steady(samples, 120)
    assert window[0].t == 120 and all(s.phase == "load" for s in window)
    # the idle sample before, and the drain back to 0 after, would make a flat load look like a slope
    assert trend(BY_KEY["kam_dialogs"], window).verdict == FLAT


def test_too_few_samples_and_missing_values() -> None:
    metric = Metric("x", "x", "u")
    assert trend(metric, [Sample(1, "load", {"x": 1}), Sample(2, "load", {})]).verdict == TOO_FEW
    t = trend(metric, [Sample(1, "load", {}), Sample(2, "load", {})])
    assert t.verdict == TOO_FEW and t.mean is None


def test_event_log_growth_is_by_design_until_it_is_capped() -> None:
    samples = _series("events_len", 300.0, base=1000)
    metric = BY_KEY["events_len"]
    assert trend(metric, steady(samples, 120)).verdict == sr.BY_DESIGN
    assert trend(metric, steady(samples, 120), events_capped=True).verdict == GROWS
    assert not events_capped(samples, 120, cap=1_000_000)
    assert events_capped(samples, 120, cap=30_000)  # 1000 + 300 x 120 entries when the window opens


def test_keys_are_classified_by_the_wire_layout() -> None:
    assert classify(CONV_KEY.format("2284b3fd50bc")) == (CONV_KEY, True)
    assert classify(CALL_KEY.format("1-32570@127.0.0.2")) == (CALL_KEY, True)
    assert classify(LEG_KEY.format("abc")) == (LEG_KEY, True)
    assert classify(LIMIT_MINUTE_KEY.format("acme", 29011)) == (LIMIT_MINUTE_KEY, True)
    assert classify(LIMIT_LIVE_KEY.format("acme")) == (LIMIT_LIVE_KEY, False)
    assert classify(ROUTES_CURRENT_KEY) == (ROUTES_CURRENT_KEY, False)
    assert classify(ROUTES_KEY.format("7a64549e12501d06")) == (ROUTES_KEY, False)
    for node_wide in (EVENTS_STREAM, INBOUND_STREAM, REGISTRAR_KEY):
        assert classify(node_wide) == (node_wide, False)
    # outside the layout: grouped by what precedes the last ':' and held to the per-call rule
    assert classify("other:thing:42") == ("(unknown) other:thing:*", True)
    assert classify("plain") == ("(unknown) no ':'", True)


def test_a_key_added_to_wire_is_known_without_changing_the_soak() -> None:
    fake = types.SimpleNamespace(CONV_KEY="x:conv:{}", NEW_THING_KEY="x:new:{}:started", EVENTS_STREAM="x:events",
                                 HTABLE="xfer", lower_KEY="ignored")
    kinds = node_key_kinds(fake)
    assert [k.name for k in kinds] == ["x:new:{}:started", "x:events", "x:conv:{}"]
    assert classify("x:new:127.0.0.1:2223:started", kinds) == ("x:new:{}:started", False)
    assert classify("x:conv:1", kinds) == ("x:conv:{}", True)


def test_audit_counts_keys_without_ttl_by_group() -> None:
    conv_ttls = [("a", 14000), ("b", -1), ("c", -1), ("gone", -2), ("d", -1), ("e", -1)]
    ttls = [(CONV_KEY.format(name), ttl) for name, ttl in conv_ttls] + [(CALL_KEY.format("a"), 100),
                                                                          (EVENTS_STREAM, -1)]
    audit = audit_keys("after", "node (db 0)", ttls, examples=2)
    groups = {g.name: g for g in audit.groups}
    conv = groups[CONV_KEY]
    assert (conv.keys, conv.with_ttl, conv.without_ttl) == (5, 1, 4)
    assert conv.examples_without_ttl == [CONV_KEY.format("b"), CONV_KEY.format("c")] and conv.problem
    assert not groups[EVENTS_STREAM].problem  # node-wide: no TTL by design
    assert [g.name for g in audit.problems] == [CONV_KEY]
    assert audit.per_call_left == 6
    assert [g.name for g in audit.groups][-1] == EVENTS_STREAM  # per-call groups first
    rtpe = audit_keys("after", "rtpengine (db 1)", [("1-2@127.0.0.2", 86399), ("3-2@127.0.0.2", -1)], rtpengine=True)
    assert rtpe.groups[0].name == sr.RTPENGINE_CALL and rtpe.groups[0].without_ttl == 1 and rtpe.problems


def test_table_rows_thin_out_and_keep_each_phase_end() -> None:
    samples = _series("ctl_rss", 0, base=1.0)  # 1 + 359 + 2 samples
    rows = table_rows(samples, limit=40)
    assert len(rows) <= 45
    assert samples[-1] in rows and samples[-2] in rows and samples[-3] in rows  # after, drain, last under load
    assert rows[0] is samples[0]
    assert table_rows(samples[:10]) == samples[:10]


def _result(samples: list[Sample], **kwargs) -> SoakResult:
    defaults = dict(
        command="python -m benchmarks.soak", started="2026-12-01 12:00 UTC", wall_s=3700,
        settings={"rate": 100, "duration_s": 3600, "sample_s": 10, "warmup_s": 120, "call_s": 3,
                  "event_log_max": 1_000_000},
        machine={"commit": "abc1234", "nproc": "2"}, samples=samples,
        sipp={"created": 360000, "successful": 359990, "failed": 10, "failure_causes": {"TimeoutOnRecv": 10},
              "uac_restarts": 1, "uas_restarts": 0, "exits": ["uac-1: exit 255 at t=100 s, 10000 calls"]},
        cpu_cores={"kamailio": 0.2, "rtpengine": 0.9},
    )
    return SoakResult(**(defaults | kwargs)).analyse()


def _leaky_samples(duration: float = 3600) -> list[Sample]:
    rng = random.Random(3)
    samples = []
    for i, t in enumerate(range(10, int(duration), 10)):
        samples.append(Sample(float(t), "load", {
            "ctl_rss": 60 * MIB + t * 10 * MIB / 3600,  # 10 MiB an hour: a leak
            "kam_shm": 30 * MIB + rng.uniform(-0.1, 0.1) * MIB,
            "rtpe_calls": 300 + rng.uniform(-15, 15), "kam_dialogs": 300 + rng.uniform(-15, 15),
            "created": 100 * t, "successful": 100 * t - 3, "failed": 0, "redis_fds": 30,
            "events_len": 3 * 100 * t, "redis_used": 5 * MIB + 300 * 100 * t,
        } | ({"db0_keys": 700} if i % 2 else {})))
    samples.append(Sample(duration + 5, "after", {"kam_dialogs": 0, "rtpe_calls": 0}))
    return samples


def test_findings_a_leak_a_key_without_ttl_a_failed_check() -> None:
    audit = audit_keys("after", "node (db 0)", [(CONV_KEY.format("a"), -1), (EVENTS_STREAM, -1)])
    result = _result(_leaky_samples(), audits=[audit],
                     checks=[EndCheck("Kamailio dialogs back to 0", False, "3"), EndCheck("x", True, "0")])
    trends = {t.key: t for t in result.trends}
    assert trends["ctl_rss"].verdict == GROWS and trends["kam_shm"].verdict == FLAT
    assert trends["rtpe_calls"].verdict == FLAT and trends["redis_fds"].verdict == FLAT
    assert trends["redis_used"].verdict == sr.BY_DESIGN  # the event log is far from its cap
    with_keys = [s for s in steady(result.samples, 120) if "db0_keys" in s.values]
    assert trends["db0_keys"].samples == len(with_keys) == 174  # a sample without a value is left out
    findings = result.findings
    assert len(findings) == 3
    assert findings[0].startswith("controller RSS: GROWS (+10.0 MiB/h)")
    assert f"1 {CONV_KEY} key(s) without TTL (after)" in findings[1]
    assert findings[2] == "Kamailio dialogs back to 0: 3"
    json.dumps(result.to_json(), default=str)  # results.json


def test_a_short_window_reports_trends_but_counts_no_finding_from_them() -> None:
    samples = [s for s in _leaky_samples() if s.t <= 200]
    result = _result(samples)
    assert result.window_s == pytest.approx(80) and not result.trends_count
    assert result.growing and result.findings == []
    text = render(result)
    assert "indicative only" in text and "controller RSS: GROWS" in text


def test_report_says_the_rule_and_shows_every_section() -> None:
    audit = audit_keys("after", "node (db 0)", [(CONV_KEY.format("a"), -1), (EVENTS_STREAM, -1)])
    result = _result(_leaky_samples(), audits=[audit, audit_keys("after", "rtpengine (db 1)", [], rtpengine=True)],
                     checks=[EndCheck("rtpengine calls back to 0", True, "0")], notes=["a note"])
    text = render(result)
    for heading in ("# Soak", "**Findings:**", "## Load", "## Trends after warm-up", "## After the load",
                    "## Redis keys", "## Samples", "## How the verdicts are made", "## Machine"):
        assert heading in text
    assert "max(2% of the mean, the metric's floor)" in text and "3 standard errors" in text
    assert "| **GROWS** |" in text  # the leaking controller
    assert f"| after | node (db 0) | `{CONV_KEY}` | yes | 1 | 0 | **1** | `{CONV_KEY.format('a')}` |" in text
    assert "| after | rtpengine (db 1) | (empty) |" in text
    assert "360000 / 359990 / 10 (99.997 % successful)" in text and "TimeoutOnRecv 10" in text
    assert "1,000,000" in text and "- a note" in text
    sample_rows = [line for line in text.splitlines() if line.startswith("| ") and "| load |" in line]
    assert 30 <= len(sample_rows) <= 45
    assert all(line.count("|") == text.splitlines()[text.splitlines().index(sample_rows[0]) - 1].count("|")
               for line in sample_rows)


def test_report_without_findings() -> None:
    samples = [Sample(float(t), "load", {"ctl_rss": 60 * MIB, "kam_dialogs": 0}) for t in range(0, 3600, 10)]
    text = render(_result(samples, checks=[EndCheck("c", True, "0")]))
    assert "**No finding: every judged metric flat" in text


def test_command_line_defaults_and_limits() -> None:
    s = parse_args([])
    assert (s.rate, s.duration_s, s.sample_s, s.warmup_s) == (100, 3600, 10, 120)
    assert s.output.name == "soak.md" and s.output.parent == s.run_dir and s.run_dir.parent.name == "soak"
    short = parse_args(["--duration", "120", "--warmup", "30", "--rate", "20"])
    assert short.bench.rates == [20] and short.bench.call_seconds == 3 and short.event_log_max is None
    for bad in (["--warmup", "3600"], ["--duration", "60", "--warmup", "40"], ["--rate", "5000"], ["--rate", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_per_call_keys_must_be_gone_after_the_calls() -> None:
    idle = audit_keys("after", "node (db 0)", [(EVENTS_STREAM, -1), (ROUTES_CURRENT_KEY, -1)])
    assert sr.keys_gone([idle, audit_keys("after", "rtpengine (db 1)", [], rtpengine=True)]).ok
    left = audit_keys("after", "node (db 0)", [(CONV_KEY.format("a"), 14000), (CALL_KEY.format("a"), 14000),
                                               (EVENTS_STREAM, -1)])
    check = sr.keys_gone([left])
    assert not check.ok and check.detail == f"node (db 0) {CALL_KEY}: 1 left, node (db 0) {CONV_KEY}: 1 left"


def test_a_run_that_failed_to_start_still_renders() -> None:
    result = _result([], sipp={}, cpu_cores={}, error="StartupError: kamailio exited with 255 (see error.txt)")
    assert result.findings == ["error: StartupError: kamailio exited with 255 (see error.txt)"]
    text = render(result)
    assert "No check ran" in text and "No scan ran" in text and "too few samples" in text

"""The benchmark's results as plain data: written to results.json and rendered by report.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

# processes whose CPU is accounted per call (the stack); SIPp is the load generator, shown apart
STACK_PROCESSES = ("kamailio", "rtpengine", "redis", "controller")
LOAD_PROCESSES = ("sipp_uac", "sipp_uas")


@dataclass
class Criteria:
    min_success_pct: float = 99.9
    max_setup_p99_ms: float = 500.0
    min_rate_fraction: float = 0.9  # SIPp must really place at least this share of the asked rate
    target_ratio: float = 0.8  # full stack >= 0.8 x baseline
    target_controller_p99_ms: float = 20.0
    max_controller_lag_s: float = 2.0  # the controller keeps up with Kamailio's notifications


@dataclass
class ControllerLatency:
    callbacks: int
    p50_ms: float | None
    p99_ms: float | None
    p99_is_lower_bound: bool
    mean_ms: float | None
    errors: int
    notification_backlog: int  # left in Kamailio's stream when the step had drained
    errors_by_component: dict[str, int] = field(default_factory=dict)


@dataclass
class RedisMemory:
    used_memory_delta: int
    concurrent_calls: int  # Kamailio's active dialogs at the moment of the sample
    conversation_records: int
    streams_delta: int  # the event log and Kamailio's notification stream together
    events_added: int  # entries appended to the event log
    events_bytes_delta: int
    calls_started: int

    @property
    def bytes_per_concurrent_call(self) -> float | None:
        return self.used_memory_delta / self.concurrent_calls if self.concurrent_calls else None

    @property
    def bytes_per_record(self) -> float | None:
        state = self.used_memory_delta - self.streams_delta
        return state / self.conversation_records if self.conversation_records else None

    @property
    def event_log_bytes_per_call(self) -> float | None:
        return self.events_bytes_delta / self.calls_started if self.calls_started else None

    @property
    def bytes_per_event(self) -> float | None:
        return self.events_bytes_delta / self.events_added if self.events_added else None


@dataclass
class StepResult:
    mode: str
    rate: float
    calls: int
    call_s: float
    created: int
    successful: int
    failed: int
    failure_causes: dict[str, int]
    retransmissions: int
    achieved_rate: float
    sipp_exit: int | None
    setup_ms: dict[str, float | None]  # p50 p95 p99 max
    setup_tick_ms: int  # the granularity of SIPp's timestamps seen in this step (gcd of all setup times)
    wall_s: float
    cpu_s: dict[str, float]
    others_cpu_s: float
    top_others: list[tuple[str, float]]
    machine_busy_s: float
    machine_capacity_s: float
    peak_dialogs: int
    kamailio_shm_max: int
    media: dict[str, int]  # rtpengine counters over the step
    sip_drops: dict[str, int]  # SIP datagrams the kernel dropped per socket (receive buffer full)
    drained: bool = True  # the stack was idle again within 10 s of the last call
    keeps_up: bool | None = None  # the controller kept up with Kamailio's notifications (full stack)
    ng_ping_ms: dict[str, float | None] = field(default_factory=dict)  # rtpengine ng round trip: p50, max
    max_backlog: int = 0  # most notifications waiting for the controller at any probe (full stack)
    end_backlog: int = 0  # ... when the step's last call was placed
    notifications_per_call: float = 0.0

    @property
    def controller_lag_s(self) -> float | None:
        """How far behind Kamailio's notifications the controller was when the last call was placed."""
        per_s = self.notifications_per_call * self.achieved_rate
        return self.end_backlog / per_s if per_s else None
    passed: bool = False
    reasons: list[str] = field(default_factory=list)
    controller: ControllerLatency | None = None
    redis: RedisMemory | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def success_pct(self) -> float:
        # calls SIPp never placed (it fell behind) count as unsuccessful
        return 100.0 * self.successful / max(self.calls, self.created, 1)

    def cpu_ms_per_call(self, process: str) -> float | None:
        if not self.successful or process not in self.cpu_s:
            return None
        return 1000.0 * self.cpu_s[process] / self.successful

    @property
    def others_cores(self) -> float:
        return self.others_cpu_s / self.wall_s if self.wall_s else 0.0


@dataclass
class ProfileSummary:
    rate: float
    samples: int
    controller_cpu_share: float  # of one core, during the profiled step
    top_self: list[tuple[str, float]]
    top_own_code: list[tuple[str, float]]
    by_package: list[tuple[str, float]]
    raw_path: str
    error: str = ""
    outcome: str = ""  # how the profiled step's calls went


@dataclass
class ModeResult:
    mode: str
    steps: list[StepResult] = field(default_factory=list)
    stop_reason: str = ""
    uas_totals: dict[str, int] = field(default_factory=dict)
    profile: ProfileSummary | None = None
    run_dir: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def rated(self) -> StepResult | None:
        """The highest rate whose calls met every criterion (and every rate below it did too)."""
        return _highest(self.steps, lambda s: s.passed)

    @property
    def sustained(self) -> StepResult | None:
        """The highest rated rate at which the controller also kept up with Kamailio's notifications."""
        return _highest(self.steps, lambda s: s.passed and s.keeps_up is not False)

    @property
    def max_rate(self) -> float:
        return self.rated.rate if self.rated else 0.0


def _highest(steps: list[StepResult], good: Callable[[StepResult], bool]) -> StepResult | None:
    best = None
    for step in sorted(steps, key=lambda s: s.rate):
        if not good(step):
            break
        best = step
    return best


@dataclass
class BenchResult:
    command: str
    started: str
    duration_s: float
    smoke: bool
    machine: dict[str, str]
    settings: dict[str, Any]
    criteria: Criteria
    modes: dict[str, ModeResult]
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        base, full = self.modes.get("baseline"), self.modes.get("full")
        if not base or not full or not base.max_rate:
            return None
        return full.max_rate / base.max_rate

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        for name, mode in self.modes.items():
            data["modes"][name]["max_rate"] = mode.max_rate
            rated = mode.rated
            data["modes"][name]["rated"] = asdict(rated) if rated else None
            data["modes"][name]["sustained_rate"] = mode.sustained.rate if mode.sustained else 0.0
            for step_data, step in zip(data["modes"][name]["steps"], mode.steps, strict=True):
                step_data["success_pct"] = step.success_pct
                step_data["controller_lag_s"] = step.controller_lag_s
                step_data["cpu_ms_per_call"] = {p: step.cpu_ms_per_call(p) for p in step.cpu_s}
                if step.redis:
                    step_data["redis"]["bytes_per_concurrent_call"] = step.redis.bytes_per_concurrent_call
                    step_data["redis"]["bytes_per_record"] = step.redis.bytes_per_record
                    step_data["redis"]["event_log_bytes_per_call"] = step.redis.event_log_bytes_per_call
                    step_data["redis"]["bytes_per_event"] = step.redis.bytes_per_event
        return data

"""The benchmark's results as plain data: written to results.json and rendered by report.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# processes whose CPU is accounted per call (the stack); SIPp is the load generator, shown apart
STACK_PROCESSES = ("kamailio", "rtpengine", "redis", "controller")
LOAD_PROCESSES = ("sipp_uac", "sipp_uas")


@dataclass
class Criteria:
    min_success_pct: float = 99.9
    max_setup_p99_ms: float = 500.0
    min_rate_fraction: float = 0.9  # SIPp must really place at least this share of the asked rate
    target_ratio: float = 0.9  # full stack >= 0.9 x baseline, by the highest step and by CPU per call
    target_controller_cpu_ms: float = 0.3  # the controller's CPU per ordinary call
    target_redis_cpu_ms: float = 0.2  # Redis's CPU per ordinary call
    target_transfer_ratio: float = 0.3  # transfers/s >= 0.3 x the baseline's calls/s
    target_transfer_controller_cpu_ms: float = 8.0  # the controller's CPU per transfer
    target_dtmf_to_invite_p99_ms: float = 50.0  # `#`-end (the number's last digit) -> B's INVITE, at that rate
    target_controller_p99_ms: float = 20.0
    max_controller_lag_s: float = 2.0  # the controller keeps up with Kamailio's notifications
    target_transfers_per_s: float = 50.0  # transfers/s with >= min_success_pct successful on this machine
    # transfers: the controller drops a digit of a call whose "answered" notification it has not read yet,
    # so a notification lag near the time A takes to press `#` (1.5 s) already loses transfers
    max_transfer_lag_s: float = 1.0


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
class TransferFigures:
    """One transfer step from all three SIPp parties and the controller's metrics."""

    kind: str  # blind | attended
    client_ok: int  # the client's call: answered by A, talked (hold music, then B), its BYE answered
    client_failed: int
    a_calls: int  # A's SIPp: calls it received, and how many ended well (digits pressed, its BYE answered)
    a_ok: int
    a_failed: int
    b_calls: int  # B's SIPp: INVITEs from the controller, and calls that ended with the client's BYE
    b_ok: int
    b_failed: int
    started: int  # xfer_transfers_started_total over the step
    outcomes: dict[str, int]  # xfer_transfers_total by outcome over the step
    digits: int  # xfer_dtmf_digits_total over the step
    dtmf_count: int  # xfer_dtmf_to_target_invite_seconds: last digit -> B's INVITE sent, over the step
    dtmf_p50_ms: float | None
    dtmf_p99_ms: float | None
    dtmf_p99_is_lower_bound: bool
    dtmf_mean_ms: float | None
    timeline_ms: dict[str, int] = field(default_factory=dict)

    @property
    def completed(self) -> int:
        return self.outcomes.get("completed", 0)


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
    #: per successful call (transfer): what Redis, rtpengine and Kamailio's RPC were asked (benchmarks/roundtrips.py)
    round_trips: dict[str, Any] | None = None

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
    transfer: TransferFigures | None = None  # the transfer benchmark: `successful` counts transfers

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
    transfers: ModeResult | None = None  # the transfer ladder (apart from `modes`: no calls/s ratio)
    #: every repeat of a mode run more than once (`modes` and `transfers` hold the median one)
    runs: dict[str, list[ModeResult]] = field(default_factory=dict)

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
            _mode_json(data["modes"][name], mode)
        if self.transfers is not None:
            _mode_json(data["transfers"], self.transfers)
        return data


def _mode_json(data: dict[str, Any], mode: ModeResult) -> None:
    data["max_rate"] = mode.max_rate
    rated = mode.rated
    data["rated"] = asdict(rated) if rated else None
    data["sustained_rate"] = mode.sustained.rate if mode.sustained else 0.0
    for step_data, step in zip(data["steps"], mode.steps, strict=True):
        step_data["success_pct"] = step.success_pct
        step_data["controller_lag_s"] = step.controller_lag_s
        step_data["cpu_ms_per_call"] = {p: step.cpu_ms_per_call(p) for p in step.cpu_s}
        if step.redis:
            step_data["redis"]["bytes_per_concurrent_call"] = step.redis.bytes_per_concurrent_call
            step_data["redis"]["bytes_per_record"] = step.redis.bytes_per_record
            step_data["redis"]["event_log_bytes_per_call"] = step.redis.event_log_bytes_per_call
            step_data["redis"]["bytes_per_event"] = step.redis.bytes_per_event
        if step.transfer:
            step_data["transfer"]["completed"] = step.transfer.completed


# -- reading an earlier run's results.json back (a run of some modes may carry over the others) --------
def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def step_from_json(data: dict[str, Any]) -> StepResult:
    d = _known(StepResult, data)
    d["top_others"] = [tuple(x) for x in d.get("top_others", [])]
    if d.get("controller"):
        d["controller"] = ControllerLatency(**_known(ControllerLatency, d["controller"]))
    if d.get("redis"):
        d["redis"] = RedisMemory(**_known(RedisMemory, d["redis"]))
    if d.get("transfer"):
        d["transfer"] = TransferFigures(**_known(TransferFigures, d["transfer"]))
    return StepResult(**d)


def mode_from_json(data: dict[str, Any]) -> ModeResult:
    profile = None
    if data.get("profile"):
        p = _known(ProfileSummary, data["profile"])
        for key in ("top_self", "top_own_code", "by_package"):
            p[key] = [tuple(x) for x in p.get(key, [])]
        profile = ProfileSummary(**p)
    return ModeResult(mode=data["mode"], steps=[step_from_json(s) for s in data.get("steps", [])],
                      stop_reason=data.get("stop_reason", ""), uas_totals=data.get("uas_totals", {}),
                      profile=profile, run_dir=data.get("run_dir", ""), notes=list(data.get("notes", [])))

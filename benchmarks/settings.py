"""What one benchmark run does: rates, step and call lengths, limits, where results go."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.results import Criteria

TRUNK_IP = "127.0.0.2"  # the carrier trunk of config/example.yaml: calls from it are incoming calls
PHONES_IP = "127.0.0.3"
DID = "+74951110000"  # routes to extension 100, whose contact is the UAS
EXTENSION = "100"
DEFAULT_RATES = (25, 50, 100, 150, 200, 250, 300, 400, 500, 600, 800, 1000)
PORTS_PER_CALL = 4  # rtpengine: RTP + RTCP on each of the two legs
WARMUP_RATE = 10.0

# transfers: the client calls the DID (extension 100, employee A); A presses # 1 0 1 (extension 101, B)
TRANSFEROR, TARGET = "100", "101"
DEFAULT_TRANSFER_RATES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 100, 120, 150)
TRANSFER_WARMUP_RATE = 5.0
# rtpengine ports of one transfer: the client's and A's legs, B's leg and its placeholder, RTP + RTCP each
PORTS_PER_TRANSFER = 8


@dataclass
class Settings:
    rates: list[float]
    step_seconds: float
    call_seconds: float
    refine: int
    rtp_ports: tuple[int, int]
    kamailio_children: int
    kamailio_shm_mb: int
    budget_s: float
    warmup: bool
    profile: bool
    modes: list[str]
    run_dir: Path
    doc: Path | None
    smoke: bool
    criteria: Criteria = field(default_factory=Criteria)
    # the transfer ladder (its own budget: the call modes keep theirs)
    transfer_rates: list[float] = field(default_factory=lambda: [float(r) for r in DEFAULT_TRANSFER_RATES])
    transfer_call_seconds: float = 6.0  # the client's whole call: A, hold music while B rings, then B
    transfer_budget_s: float = 240.0
    transfer_kind: str = "blind"  # blind: A hangs up while B rings; attended: after B answered
    transfer_timeline_ms: dict[str, int] = field(default_factory=dict)
    carry_over: Path | None = None  # an earlier results.json for the modes this run leaves out
    # the tenant's talk_options.other_digits: "pass" re-plays an employee's other digits (rtpengine's DTMF
    # injection, enabled at a conversation's first such digit); "absorb" keeps them on the PBX
    other_digits: str = "pass"
    repeats: int = 1  # ladders per mode: the report shows the median one and the spread

    def transfer_port_limit(self) -> float:
        size = self.rtp_ports[1] - self.rtp_ports[0] + 1
        return size / PORTS_PER_TRANSFER / (self.transfer_call_seconds + 1.0) / 1.25

    @property
    def transfer_step_cost_s(self) -> float:
        """A transfer step: its calls, the last client's call, settling, SIPp's last statistics, restarts of A/B."""
        return self.step_seconds + self.transfer_call_seconds + 10

    def max_rate_for_ports(self) -> float:
        """rtpengine frees a call's ports at BYE (delete-delay 0); keep a 25 % margin."""
        size = self.rtp_ports[1] - self.rtp_ports[0] + 1
        return size / PORTS_PER_CALL / (self.call_seconds + 1.0) / 1.25

    @property
    def step_cost_s(self) -> float:
        """Wall time of one step: its calls, the last calls' talk time, settling and probes."""
        return self.step_seconds + self.call_seconds + 8

    def as_dict(self) -> dict[str, object]:
        return {"rates": self.rates, "step_seconds": self.step_seconds, "call_seconds": self.call_seconds,
                "refine": self.refine, "rtp_ports": list(self.rtp_ports), "kamailio_children": self.kamailio_children,
                "kamailio_shm_mb": self.kamailio_shm_mb, "budget_seconds": self.budget_s, "warmup": self.warmup,
                "profile": self.profile, "run_dir": str(self.run_dir), "transfer_rates": self.transfer_rates,
                "transfer_call_seconds": self.transfer_call_seconds, "transfer_budget_seconds": self.transfer_budget_s,
                "transfer_kind": self.transfer_kind, "transfer_timeline_ms": self.transfer_timeline_ms,
                "carry_over": str(self.carry_over) if self.carry_over else None, "other_digits": self.other_digits,
                "repeats": self.repeats}

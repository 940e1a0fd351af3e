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
                "profile": self.profile, "run_dir": str(self.run_dir)}

"""One mode's running world: a LocalStack, the answering SIPp and the probes that watch them.

A mode may need a fresh one mid-ladder: after an overloaded step, dialogs whose BYE was lost live on
in Kamailio (and retransmissions in SIPp) and would load the next step, so the runner starts anew.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.probes import ControllerProbe, KamailioProbe, RedisProbe, RtpengineProbe
from benchmarks.procstat import CpuMeter
from benchmarks.settings import EXTENSION, PHONES_IP, TRUNK_IP, Settings
from benchmarks.sipp_load import Endpoint, SippUas
from controller.devstack.stack import REPO_ROOT, LocalStack, StackOptions, free_media_port, free_port, with_free_ports


def bench_config(uas: Endpoint, settings: Settings) -> dict[str, Any]:
    """config/example.yaml on free ports, with extension 100 at the UAS, a media range sized for load, and
    the run's choice of what happens to an employee's digits that are no talk option."""
    data = with_free_ports(yaml.safe_load((REPO_ROOT / "config" / "example.yaml").read_text()))
    node = data["node"]
    node["rtpengine"]["port_min"], node["rtpengine"]["port_max"] = settings.rtp_ports
    # the default keeps a call's keys 60 s after it ends; 1 s lets a step reach a steady state
    node["call_keys_ttl_after_end_s"] = 1
    data["tenants"]["acme"]["extensions"][EXTENSION]["contact"] = f"sip:{EXTENSION}@{uas.ip}:{uas.port}"
    data["tenants"]["acme"].setdefault("talk_options", {})["other_digits"] = settings.other_digits
    return data


def uac_endpoint() -> Endpoint:
    """A caller address on the trunk, fresh for every step: a port kept between steps may be taken meanwhile."""
    return Endpoint(TRUNK_IP, free_port(address=TRUNK_IP), free_media_port(TRUNK_IP))


class Environment:
    def __init__(self, full: bool, settings: Settings, directory: Path):
        self.full = full
        self.dir = directory
        self.uas_endpoint = Endpoint(PHONES_IP, free_port(address=PHONES_IP), free_media_port(PHONES_IP))
        self.stack = LocalStack(bench_config(self.uas_endpoint, settings), directory / "stack", StackOptions(
            with_controller=full, kamailio_log_level=1, rtpengine_log_level=4,
            kamailio_children=settings.kamailio_children, kamailio_shm_mb=settings.kamailio_shm_mb,
            baseline_hostport=f"{self.uas_endpoint.ip}:{self.uas_endpoint.port}",
        ))
        self.uas = SippUas(self.uas_endpoint, directory / "uas")
        self.uas_totals: dict[str, int] = {}
        self._closing: list[Any] = []

    def start(self) -> Environment:
        try:
            self.stack.start()
            self.uas.start()
            self.kamailio = self._closes(KamailioProbe(self.stack))
            self.rtpengine = RtpengineProbe(self.stack)
            self.redis = self._closes(RedisProbe(self.stack))
            self.controller = self._closes(ControllerProbe(self.stack)) if self.full else None
            pids = {name: [p.pid] for name, p in self.stack.processes.items() if p.pid}
            self.meter = CpuMeter(pids | {"sipp_uas": [self.uas.pid]})
        except BaseException:
            self.stop()
            raise
        return self

    def _closes(self, probe: Any) -> Any:
        self._closing.append(probe)
        return probe

    def stop(self) -> None:
        for probe in self._closing:
            probe.close()
        try:
            if self.uas.process and self.uas.process.alive():
                time.sleep(1.2)  # SIPp writes its statistics once a second: let the last calls show
            self.uas_totals = self.uas.totals()
        finally:
            self.uas.stop()
            self.stack.stop()

    def udp_sockets(self, uac: Endpoint) -> dict[str, tuple[str, int]]:
        """Where a lost SIP message (or ng command) would show: these sockets' receive buffers."""
        node = self.stack.node
        return {"kamailio": (node.sip.address, node.sip.port), "sipp_uac": (uac.ip, uac.port),
                "sipp_uas": (self.uas_endpoint.ip, self.uas_endpoint.port),
                "rtpengine_ng": (node.rtpengine.ng_address, node.rtpengine.ng_port)}

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until the stack is idle: no dialogs, no media sessions, no unread notifications."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            backlog = self.redis.sample().inbound_backlog if self.full else 0
            if self.kamailio.active_dialogs() == 0 and self.rtpengine.totals()["sessions"] == 0 and backlog == 0:
                time.sleep(0.5)  # let tm's transactions and the UAS' timewait end
                return True
            time.sleep(0.25)
        return False

"""A person on the phone, for the demo and the tests: SIPp does the signalling, an RtpParty the voice.

The voice's packets carry a byte naming the speaker, so who hears whom is measured, not assumed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from controller.devstack.rtp_party import RtpParty
from controller.devstack.sipp import SippParty
from controller.devstack.stack import free_media_port, free_port


@dataclass
class Phone:
    sipp: SippParty
    voice: RtpParty
    first_line_with_sdp: str  # where this party learns rtpengine's address ("INVITE" or "SIP/2.0 200")

    @classmethod
    def start(cls, name: str, scenario: str, marker: int, log_dir: Path, *, ip: str, port: int | None = None,
              proxy: str | None = None, pause_ms: int = 0, service: str | None = None,
              caller: str | None = None, domain: str | None = None,
              auth: tuple[str, str] | None = None, keys: dict[str, str] | None = None, calls: int = 1,
              tone_hz: float | None = None) -> Phone:
        """A phone that calls through `proxy` (host:port), or, without one, waits for a call. `keys`:
        the scenario's own -key values (refer_to...); `tone_hz`: its voice is that tone (conferences)."""
        voice = RtpParty(name, marker, ip, tone_hz)
        keys = {**(keys or {}), "rtp_port": str(voice.address[1])}
        if caller:
            keys["from"] = caller
        if domain:
            keys["from_domain"] = domain
        # ports checked free on the phone's own address: another phone's RTP socket there is what collides
        party = SippParty(name, scenario, (ip, port or free_port(address=ip)), free_media_port(ip), log_dir,
                          remote=proxy, service=service, keys=keys, pause_ms=pause_ms, auth=auth, calls=calls).start()
        if proxy is None:
            party.wait_bound()
        return cls(party, voice, "SIP/2.0 200" if proxy else "INVITE")

    def rtpengine(self) -> tuple[str, int]:
        return self.sipp.received_sdp_media(self.first_line_with_sdp)

    def talk(self, packets: int = 15, loss: float = 0.0) -> None:
        self.voice.send(self.rtpengine(), packets, loss=loss)

    def press(self, digits: str, gap_s: float = 0.25) -> None:
        self.voice.send_dtmf(self.rtpengine(), digits, gap_s=gap_s)

    def hears(self, window: float = 0.6) -> tuple[dict[int, int], int]:
        """What this phone heard during the next `window` seconds: (packets per speaker, other audio)."""
        self.voice.reset()
        time.sleep(window)
        return self.voice.snapshot()

    def close(self) -> None:
        self.sipp.stop()
        self.voice.close()


def exchange(*speakers: Phone, packets: int = 15) -> None:
    """Everyone in `speakers` talks at once, like people do; afterwards each speaker's counters hold
    what they heard during this exchange only."""
    for p in speakers:
        p.voice.reset()
    threads = [threading.Thread(target=p.talk, args=(packets,)) for p in speakers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")

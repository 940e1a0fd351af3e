"""SIPp parties: one SIPp process per person on the phone (client, employee A, target B).

Used by the demo, the integration tests and the benchmarks. Each party writes its message trace and
errors under the run directory, so a test can assert what that party really received.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from controller.devstack import resources
from controller.devstack.processes import ManagedProcess

SCENARIOS = resources.SIPP_SCENARIOS


@dataclass
class SippParty:
    name: str
    scenario: str
    local: tuple[str, int]
    media_port: int
    log_dir: Path
    remote: str | None = None  # host:port to send to (callers); None for parties that only answer
    service: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    rtp_echo: bool = False
    pause_ms: int = 0  # -d: the length of the scenario's <pause/> (talk or ring time)
    calls: int = 1
    timeout_s: int = 30
    extra: list[str] = field(default_factory=list)
    auth: tuple[str, str] | None = None  # digest credentials (user, password) the scenario answers a challenge with
    process: ManagedProcess | None = None

    @property
    def trace_path(self) -> Path:
        return self.log_dir / f"{self.name}.messages.log"

    @property
    def error_path(self) -> Path:
        return self.log_dir / f"{self.name}.errors.log"

    def argv(self) -> list[str]:
        argv = ["sipp"]
        if self.remote:
            argv.append(self.remote)
        argv += [
            "-sf", str(SCENARIOS / self.scenario), "-i", self.local[0], "-p", str(self.local[1]),
            "-mi", self.local[0], "-mp", str(self.media_port), "-m", str(self.calls), "-nostdin",
            "-timeout", f"{self.timeout_s}s", "-timeout_error",
            "-trace_msg", "-message_file", str(self.trace_path),
            "-trace_err", "-error_file", str(self.error_path),
        ]
        if self.service:
            argv += ["-s", self.service]
        # scenarios put [rtp_port] in their SDP: SIPp's own media port unless a test's RTP party
        # carries this party's media
        defaults = {"rtp_port": self.media_port, "from_domain": self.local[0]}
        for key, value in (defaults | self.keys).items():
            argv += ["-key", key, str(value)]
        if self.rtp_echo:
            argv.append("-rtp_echo")
        if self.pause_ms:
            argv += ["-d", str(self.pause_ms)]
        if self.auth:
            argv += ["-au", self.auth[0], "-ap", self.auth[1]]
        return argv + self.extra

    def start(self) -> SippParty:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(f"sipp-{self.name}", self.argv(), self.log_dir / f"{self.name}.out.log")
        self.process.start()
        return self

    def wait(self, timeout: float | None = None) -> int:
        """Wait for SIPp to finish its calls; its exit code (0 = every call succeeded)."""
        assert self.process and self.process.popen
        try:
            return self.process.popen.wait(timeout if timeout is not None else self.timeout_s + 10)
        except subprocess.TimeoutExpired:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process:
            self.process.stop(timeout=3)

    def wait_bound(self, timeout: float = 5.0) -> None:
        """SIPp opens its socket a moment after exec; callers must not send before that."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process and not self.process.alive():
                raise RuntimeError(f"SIPp party {self.name} exited: {self.describe_failure()}")
            if _udp_bound(self.local):
                return
            time.sleep(0.02)
        raise RuntimeError(f"SIPp party {self.name} did not bind {self.local}")

    # -- what the party saw ----------------------------------------------------------------------
    def messages(self) -> str:
        try:
            return self.trace_path.read_text(errors="replace")
        except OSError:
            return ""

    def _blocks(self) -> list[tuple[str, list[str]]]:
        """(direction line, message lines) for every message in the trace."""
        out = []
        for block in self.messages().split("-----------------------------------------------")[1:]:
            lines = block.strip("\n").splitlines()[1:]  # drop the timestamp line
            if not lines:
                continue
            direction, message = lines[0], [line for line in lines[1:] if line.strip()]
            if message:
                out.append((direction, message))
        return out

    def received(self) -> list[str]:
        """First lines of every SIP message this party received, in order."""
        return [msg[0] for direction, msg in self._blocks() if "message received" in direction]

    def sent_replies(self, method: str) -> list[int]:
        """Status codes of the replies this party sent to requests of one method (by their CSeq)."""
        codes = []
        for direction, lines in self._blocks():
            if "message sent" in direction and (m := re.match(r"SIP/2.0 (\d{3})", lines[0])):
                cseq = next((ln.split(":", 1)[1].split() for ln in lines if ln.lower().startswith("cseq:")), [])
                if cseq[-1:] == [method]:
                    codes.append(int(m.group(1)))
        return codes

    def received_statuses(self) -> list[int]:
        return [int(m.group(1)) for line in self.received() if (m := re.match(r"SIP/2.0 (\d{3})", line))]

    def received_requests(self) -> list[str]:
        return [line.split()[0] for line in self.received() if not line.startswith("SIP/2.0")]

    def received_sdp_media(self, first_line_prefix: str) -> tuple[str, int]:
        """(address, port) of the audio in the last SDP this party received in a message whose first
        line starts with `first_line_prefix` (e.g. "INVITE" or "SIP/2.0 200"): where it must send RTP."""
        for direction, lines in reversed(self._blocks()):
            if "message received" not in direction or not lines[0].startswith(first_line_prefix):
                continue
            address = next((ln.split()[-1] for ln in lines if ln.startswith("c=IN IP4")), None)
            port = next((int(ln.split()[1]) for ln in lines if ln.startswith("m=audio")), None)
            if address and port:
                return address, port
        raise LookupError(f"{self.name} received no {first_line_prefix} with SDP")

    def received_messages(self, first_line_prefix: str) -> list[list[str]]:
        """The lines of every message this party received whose first line starts with the prefix."""
        return [lines for direction, lines in self._blocks()
                if "message received" in direction and lines[0].startswith(first_line_prefix)]

    def received_header(self, method: str, header: str) -> list[str]:
        """Values of a header in the requests of one method this party received."""
        values = []
        for direction, lines in self._blocks():
            if "message received" in direction and lines[0].startswith(method + " "):
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == header.lower():
                        values.append(value.strip())
        return values

    def describe_failure(self) -> str:
        parts = []
        for path in (self.error_path, self.log_dir / f"{self.name}.out.log"):
            try:
                parts.append(path.read_text(errors="replace")[-1500:])
            except OSError:
                pass
        return "\n".join(parts) or "(no SIPp output)"


def _udp_bound(address: tuple[str, int]) -> bool:
    # /proc/net/udp lists bound sockets as hex ip:port (little-endian ip on x86)
    ip_hex = "".join(f"{int(part):02X}" for part in reversed(address[0].split(".")))
    wanted = f"{ip_hex}:{address[1]:04X}"
    try:
        with open("/proc/net/udp") as f:
            return any(line.split()[1] == wanted for line in f.readlines()[1:])
    except OSError:
        return False

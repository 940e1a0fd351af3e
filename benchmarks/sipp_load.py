"""SIPp as a load generator: one answering UAS per benchmark mode, one calling UAC per rate step.

The UAC's own statistics are the source of truth for a step: its -trace_stat CSV gives created,
successful and failed calls (and why they failed), its -trace_rtt CSV gives every call's INVITE->200
time (response time 1, `rtd="true"` on the 200). SIPp measures time in whole milliseconds.
"""

from __future__ import annotations

import csv
import math
import os
import signal
import string
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from controller.devstack.processes import ManagedProcess

SCENARIOS = Path(__file__).resolve().parent / "sipp"
UAC_SCENARIO = SCENARIOS / "uac.xml"
UAS_SCENARIO = SCENARIOS / "uas.xml"
# G.711 A-law, 7 s of audio at 50 packets/s; calls shorter than that send RTP for their whole length
RTP_PCAP = Path("/usr/share/sip-tester/g711a.pcap")
MAX_LOG_BYTES = 2_000_000  # SIPp's error log grows with every failure; a saturated step must not fill the disk


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int  # SIP, UDP
    media_port: int  # RTP; SIPp also uses media_port + 2


def udp_bound(ip: str, port: int) -> bool:
    # /proc/net/udp lists bound sockets as hex ip:port (little-endian ip on x86)
    wanted = "".join(f"{int(part):02X}" for part in reversed(ip.split("."))) + f":{port:04X}"
    with open("/proc/net/udp") as f:
        return any(line.split()[1] == wanted for line in f.readlines()[1:])


class SippUas:
    """The callee for every call of one benchmark mode: answers at once and echoes RTP.

    The transfer benchmark runs other answering scenarios through it: `scenario` is then a template
    whose ${...} placeholders `values` fills in, and `name` prefixes its files."""

    def __init__(self, endpoint: Endpoint, workdir: Path, *, scenario: Path = UAS_SCENARIO,
                 values: dict[str, object] | None = None, name: str = "uas", rtp_echo: bool = True):
        self.endpoint = endpoint
        self.workdir = workdir
        self.template = scenario
        self.values = values
        self.name = name
        self.rtp_echo = rtp_echo
        self.process: ManagedProcess | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def stat_path(self) -> Path:
        return self.workdir / f"{self.name}_stat.csv"

    def start(self, timeout: float = 5.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        e = self.endpoint
        scenario = self.template
        if self.values is not None:
            scenario = self.workdir / f"{self.name}_{self.template.name}"
            scenario.write_text(string.Template(self.template.read_text()).substitute(self.values))
        argv = [
            "sipp", "-sf", str(scenario), "-i", e.ip, "-p", str(e.port), "-mi", e.ip, "-mp", str(e.media_port),
            *(["-rtp_echo"] if self.rtp_echo else []), "-nostdin", "-max_recv_loops", "10000",
            "-trace_stat", "-stf", str(self.stat_path), "-fd", "1",
            "-trace_err", "-error_file", str(self.workdir / f"{self.name}_errors.log"),
            "-max_log_size", str(MAX_LOG_BYTES),
        ]
        self.process = ManagedProcess(f"sipp-{self.name}", argv, self.workdir / f"{self.name}.out.log")
        self.process.start()
        deadline = time.monotonic() + timeout
        while not udp_bound(e.ip, e.port):
            if not self.process.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"SIPp {self.name} did not start on {e.ip}:{e.port}:\n{self.process.tail()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process:
            self.process.stop(timeout=3)

    def totals(self) -> dict[str, int]:
        """Cumulative counters of the UAS (its last periodic statistics row)."""
        row = last_stat_row(self.stat_path)
        return {key: _int(row.get(f"{key}(C)")) for key in ("SuccessfulCall", "FailedCall", "IncomingCall")}


@dataclass
class UacResult:
    rate: float
    calls: int
    exit_code: int | None
    created: int
    successful: int
    failed: int
    failure_causes: dict[str, int]
    retransmissions: int
    setup_ms: list[int]
    achieved_rate: float
    cpu_s: float
    killed: bool = False
    files: dict[str, str] = field(default_factory=dict)


class SippUac:
    """One rate step: `calls` calls at `rate` calls/s, each talking `call_ms` with RTP, then BYE."""

    def __init__(self, endpoint: Endpoint, target: str, service: str, workdir: Path, *, rate: float, calls: int,
                 call_ms: int, recv_timeout_ms: int = 5000, scenario: Path = UAC_SCENARIO,
                 max_open_calls: int | None = None):
        self.template = scenario  # ${talk_ms} is filled in from call_ms
        # SIPp's own default (-l) is 3 x rate x the scenario's pauses: too few for calls that wait in a <recv>
        self.max_open_calls = max_open_calls
        self.endpoint = endpoint
        self.target = target
        self.service = service
        self.workdir = workdir
        self.rate = rate
        self.calls = calls
        self.call_ms = call_ms
        self.recv_timeout_ms = recv_timeout_ms
        self.popen: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.cpu_s = 0.0
        self.killed = False

    @property
    def generation_s(self) -> float:
        return self.calls / self.rate

    @property
    def deadline_s(self) -> float:
        """Hard limit of the step: every call placed, set up, talked and hung up, with slack."""
        return self.generation_s + self.call_ms / 1000 + 2 * self.recv_timeout_ms / 1000 + 10

    @property
    def scenario(self) -> Path:
        return self.workdir / self.template.name

    def argv(self) -> list[str]:
        e = self.endpoint
        return [
            "sipp", self.target, "-sf", str(self.scenario), "-s", self.service,
            "-i", e.ip, "-p", str(e.port), "-mi", e.ip, "-mp", str(e.media_port),
            "-r", f"{self.rate:g}", "-m", str(self.calls),
            "-recv_timeout", str(self.recv_timeout_ms), "-timeout", f"{math.ceil(self.deadline_s)}s", "-timeout_error",
            "-nostdin", "-max_recv_loops", "10000",
            "-trace_stat", "-stf", str(self.workdir / "uac_stat.csv"), "-fd", "1",
            "-trace_rtt", "-rtt_freq", "1",  # SIPp drops a partial batch at exit: write every value
            "-trace_err", "-error_file", str(self.workdir / "uac_errors.log"), "-max_log_size", str(MAX_LOG_BYTES),
            "-trace_screen", "-screen_file", str(self.workdir / "uac_screen.log"),
            *(["-l", str(self.max_open_calls)] if self.max_open_calls else []),
        ]

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # the talk time is a recv timeout in the scenario, which SIPp cannot take from a variable
        self.scenario.write_text(string.Template(self.template.read_text()).substitute(talk_ms=self.call_ms))
        with open(self.workdir / "uac.out.log", "wb") as out:
            # cwd: SIPp writes its rtt file next to where it runs; own session: a Ctrl-C reaches only us
            self.popen = subprocess.Popen(self.argv(), cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        self.started = time.monotonic()

    def poll(self) -> int | None:
        """Exit code once SIPp has finished, else None; also enforces the step's hard limit."""
        assert self.popen is not None
        if self.popen.returncode is None and not self._reap(os.WNOHANG):
            if time.monotonic() - self.started > self.deadline_s + 5:
                self.kill()
        return self.popen.returncode

    def kill(self) -> None:
        """Stop this SIPp (by its PID only), SIGTERM first so it writes its statistics."""
        assert self.popen is not None
        self.killed = True
        self.popen.send_signal(signal.SIGTERM)
        for _ in range(30):
            if self._reap(os.WNOHANG):
                return
            time.sleep(0.1)
        self.popen.kill()
        self._reap(0)

    def _reap(self, options: int) -> bool:
        # wait4 rather than Popen.poll: it also gives SIPp's CPU time, which /proc loses at exit
        assert self.popen is not None
        pid, status, usage = os.wait4(self.popen.pid, options)
        if not pid:
            return False
        self.popen.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_s = usage.ru_utime + usage.ru_stime
        return True

    def result(self) -> UacResult:
        assert self.popen is not None
        row = last_stat_row(self.workdir / "uac_stat.csv")
        causes = {key[len("Failed"):-len("(C)")]: _int(value) for key, value in row.items()
                  if key.startswith("Failed") and key.endswith("(C)") and key != "FailedCall(C)" and _int(value)}
        rtt_path = self.workdir / f"{self.scenario.stem}_{self.popen.pid}_rtt.csv"
        times, setup = read_rtt(rtt_path)
        return UacResult(
            rate=self.rate, calls=self.calls, exit_code=self.popen.returncode,
            created=_int(row.get("TotalCallCreated")), successful=_int(row.get("SuccessfulCall(C)")),
            failed=_int(row.get("FailedCall(C)")), failure_causes=causes,
            retransmissions=_int(row.get("Retransmissions(C)")), setup_ms=setup,
            achieved_rate=achieved_rate(times), cpu_s=self.cpu_s, killed=self.killed,
            files={"stat": str(self.workdir / "uac_stat.csv"), "rtt": str(rtt_path),
                   "errors": str(self.workdir / "uac_errors.log"), "screen": str(self.workdir / "uac_screen.log")},
        )


def last_stat_row(path: Path) -> dict[str, str]:
    """The last row of a SIPp -trace_stat CSV (';'-separated, cumulative counters end in '(C)')."""
    try:
        with open(path, newline="", errors="replace") as f:
            rows = list(csv.reader(f, delimiter=";"))
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def read_rtt(path: Path) -> tuple[list[float], list[int]]:
    """(when each 200 arrived, in ms since SIPp started; INVITE->200 ms) from a -trace_rtt CSV."""
    times, values = [], []
    try:
        with open(path, newline="") as f:
            for row in csv.reader(f, delimiter=";"):
                if len(row) >= 3 and row[2].strip() == "1":
                    try:
                        times.append(float(row[0]))
                        values.append(int(float(row[1])))
                    except ValueError:
                        continue
    except OSError:
        pass
    return times, values


def achieved_rate(times_ms: list[float]) -> float:
    """Calls per second actually placed: answered calls over the span between the first and last answer."""
    if len(times_ms) < 2:
        return 0.0
    span = (max(times_ms) - min(times_ms)) / 1000
    return (len(times_ms) - 1) / span if span > 0 else 0.0


def percentile(values: list[int] | list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of the values, None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def _int(value: str | None) -> int:
    try:
        return int(float(value)) if value not in (None, "") else 0
    except ValueError:
        return 0

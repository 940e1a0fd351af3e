"""Start daemons as child processes and stop them by PID (never by name)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """A daemon exited or never became healthy; the message points at its log file."""


@dataclass
class ManagedProcess:
    """One daemon we started: its command, log file and Popen handle."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] | None = None
    #: descriptors the daemon inherits (a socket the stack holds for it across its restarts)
    pass_fds: tuple[int, ...] = ()
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            # own process group: a Ctrl-C in the terminal reaches only us, and we stop children in order
            self.popen = subprocess.Popen(
                list(self.argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, start_new_session=True, pass_fds=self.pass_fds,
            )
        log.info("started %s pid=%s log=%s", self.name, self.popen.pid, self.log_path)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_healthy(self, check: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise StartupError(f"{self.name} exited with {self.popen and self.popen.returncode}; "
                                   f"see {self.log_path}:\n{self.tail()}")
            try:
                if check():
                    return
            except Exception as exc:  # any failure of a probe just means "not yet"
                log.debug("%s not healthy yet: %s", self.name, exc)
            time.sleep(0.05)
        raise StartupError(f"{self.name} not healthy after {timeout:.0f} s; see {self.log_path}:\n{self.tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process (Kamailio's main process stops its own children), then SIGKILL."""
        if self.popen is None or self.popen.poll() is not None:
            return
        pid = self.popen.pid
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s pid=%s ignored SIGTERM; killing its process group", self.name, pid)
            # the group is the one start_new_session gave this child: only processes we started
            os.killpg(pid, signal.SIGKILL)
            self.popen.wait(5)
        log.info("stopped %s pid=%s rc=%s", self.name, pid, self.popen.returncode)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

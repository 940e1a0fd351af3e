"""Sockets handed over by a supervisor: systemd's socket activation protocol (sd_listen_fds(3)).

rtpengine sends each DTMF digit as one datagram to the controller's DTMF port. A socket the controller
binds itself closes when the controller stops, so every digit pressed until it is back would be lost
(and the first one after, which rtpengine's connected socket reports as "Connection refused"). A socket
systemd holds (`xfer-controller.socket`, or the local stack in development) stays bound across
controller restarts: the kernel queues the digits, and the next controller reads them first.

Protocol: the supervisor passes the sockets from fd 3 on, with LISTEN_PID (the pid they are meant for),
LISTEN_FDS (how many) and, optionally, LISTEN_FDNAMES (colon-separated names).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import MutableMapping

log = logging.getLogger(__name__)

FIRST_FD = 3  # SD_LISTEN_FDS_START
_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def listen_fds(environ: MutableMapping[str, str] | None = None, pid: int | None = None) -> dict[str, int]:
    """The handed-over fds by name (unnamed ones as "fd3", "fd4"...), and forget the variables so that
    a child process never takes them for its own. Empty when none were meant for this process."""
    env = os.environ if environ is None else environ
    values = {name: env.pop(name, None) for name in _VARS}
    if values["LISTEN_PID"] != str(os.getpid() if pid is None else pid):
        return {}
    try:
        count = int(values["LISTEN_FDS"] or "0")
    except ValueError:
        log.warning("LISTEN_FDS=%r is not a number: no socket taken over", values["LISTEN_FDS"])
        return {}
    names = (values["LISTEN_FDNAMES"] or "").split(":") if values["LISTEN_FDNAMES"] else []
    return {(names[i] if i < len(names) and names[i] else f"fd{FIRST_FD + i}"): FIRST_FD + i for i in range(count)}


def inherited_datagram_socket(name: str, address: tuple[str, int],
                              fds: dict[str, int] | None = None) -> socket.socket | None:
    """The handed-over UDP socket `name`, if there is one and it is bound to `address`; one bound
    elsewhere is a deployment error, logged and not used (the caller binds its own)."""
    fd = (listen_fds() if fds is None else fds).get(name)
    if fd is None:
        return None
    sock = socket.socket(fileno=fd)
    bound = sock.getsockname()[:2]
    if sock.type != socket.SOCK_DGRAM or (bound[0], bound[1]) != address:
        log.error("the %s socket handed over is %s on %s, not UDP on %s:%s: binding our own", name,
                  sock.type.name, bound, *address)
        sock.detach()  # not ours to close: the supervisor holds it
        return None
    sock.setblocking(False)
    return sock


def queued_datagrams(sock: socket.socket, limit: int = 10_000) -> list[tuple[bytes, tuple[str, int]]]:
    """Everything the kernel queued on `sock` while nobody read it, oldest first (non-blocking)."""
    out = []
    while len(out) < limit:
        try:
            data, addr = sock.recvfrom(65_535)
        except (BlockingIOError, InterruptedError):
            break
        out.append((data, addr))
    return out

"""Sockets handed over by the supervisor (sd_listen_fds protocol) and the datagrams queued in them."""

from __future__ import annotations

import os
import socket

import pytest

from controller.adapters.listen_fds import inherited_datagram_socket, listen_fds, queued_datagrams


def test_fds_meant_for_this_process_are_named_and_the_variables_forgotten() -> None:
    env = {"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "dtmf:other", "PATH": "/bin"}
    assert listen_fds(env, pid=42) == {"dtmf": 3, "other": 4}
    assert env == {"PATH": "/bin"}  # a child process never takes them for its own


def test_unnamed_fds_are_numbered() -> None:
    assert listen_fds({"LISTEN_PID": "7", "LISTEN_FDS": "1"}, pid=7) == {"fd3": 3}


@pytest.mark.parametrize("env", [
    {"LISTEN_PID": "41", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "dtmf"},  # meant for another process
    {"LISTEN_FDS": "1", "LISTEN_FDNAMES": "dtmf"},  # no pid: not socket activation
    {"LISTEN_PID": "42", "LISTEN_FDS": "one"},  # garbage
    {},
])
def test_fds_not_meant_for_this_process_are_not_taken(env: dict[str, str]) -> None:
    assert listen_fds(env, pid=42) == {}
    assert not any(k.startswith("LISTEN_") for k in env)


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def test_the_handed_over_socket_is_used_and_its_queue_read_oldest_first() -> None:
    held = _udp()
    address = held.getsockname()
    fd = os.dup(held.fileno())  # what the controller inherits
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for digit in (b"1", b"0", b"1"):
            sender.sendto(digit, address)
        sock = inherited_datagram_socket("dtmf", address, {"dtmf": fd})
        assert sock is not None
        assert [data for data, _ in queued_datagrams(sock)] == [b"1", b"0", b"1"]
        assert queued_datagrams(sock) == []  # non-blocking: nothing more, no wait
        sock.close()
    finally:
        sender.close()
        held.close()


def test_a_socket_on_another_address_is_refused_and_left_open() -> None:
    held = _udp()
    fd = os.dup(held.fileno())
    try:
        assert inherited_datagram_socket("dtmf", ("127.0.0.1", 1), {"dtmf": fd}) is None
        os.fstat(fd)  # still open: the supervisor's, not ours to close
    finally:
        os.close(fd)
        held.close()


def test_no_socket_of_that_name() -> None:
    assert inherited_datagram_socket("dtmf", ("127.0.0.1", 5), {"other": 3}) is None

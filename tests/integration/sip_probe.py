"""Raw SIP over UDP for the attacker's probes: a request as a stranger (or a trunk) would send it, the
responses it gets, and a sink that records what reaches a phone's or a trunk's address."""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field

_seq = itertools.count(1)

SDP = ("v=0\r\no=probe 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 8 101\r\n"
       "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    text: str


class SipProbe:
    """One UDP socket on `ip` that sends requests to `target` and reads the responses."""

    def __init__(self, ip: str, target: tuple[str, int]):
        self.ip, self.target = ip, target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)

    def close(self) -> None:
        self.sock.close()

    def request(self, method: str, ruri: str, *, from_uri: str, to_uri: str | None = None, to_tag: str | None = None,
                call_id: str | None = None, cseq: int = 1, headers: tuple[str, ...] = (), body: str = "",
                content_type: str | None = "application/sdp", timeout: float = 3.0) -> list[Response]:
        """Send one request; every response until the final one (or `timeout`)."""
        call_id = call_id or f"probe-{secrets.token_hex(6)}@{self.ip}"
        to = f"<{to_uri or ruri}>" + (f";tag={to_tag}" if to_tag else "")
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.ip}:{self.port};branch=z9hG4bK{secrets.token_hex(8)};rport",
            f"From: <{from_uri}>;tag={secrets.token_hex(4)}",
            f"To: {to}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            *([] if any(h.lower().startswith("contact:") for h in headers)
              else [f"Contact: <sip:probe@{self.ip}:{self.port}>"]),
            "Max-Forwards: 70",
            *headers,
        ]
        if body and content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body.encode())}")
        self._drain()  # a late reply to an earlier request must not pass for this one's
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), self.target)
        return self._responses(timeout)

    def _drain(self) -> None:
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recvfrom(65535)
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(0.2)

    def _responses(self, timeout: float) -> list[Response]:
        got: list[Response] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            response = parse_response(data.decode(errors="replace"))
            if response is None:
                continue
            got.append(response)
            if response.status >= 200:
                break
        return got


def parse_response(text: str) -> Response | None:
    first, _, rest = text.partition("\r\n")
    match = re.match(r"SIP/2\.0 (\d{3})", first)
    if not match:
        return None
    head = rest.split("\r\n\r\n", 1)[0]
    headers = {}
    for line in head.split("\r\n"):
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return Response(int(match.group(1)), headers, text)


def final(responses: list[Response]) -> int | None:
    return next((r.status for r in reversed(responses) if r.status >= 200), None)


def digest(challenge: str, method: str, uri: str, user: str, password: str, *, header: str = "Authorization") -> str:
    """The header answering a digest challenge (RFC 2617, qop=auth when offered)."""
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = fields["realm"], fields["nonce"]
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    value = f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
    if "qop" in fields:
        cnonce, nc = secrets.token_hex(4), "00000001"
        response = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        value += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    return f'{header}: {value}, response="{response}", algorithm=MD5'


@dataclass
class SipSink:
    """Listens on a phone's or a trunk's address; records every request and refuses INVITEs with 486,
    so nothing it receives turns into a call."""

    ip: str
    port: int
    received: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.ip, self.port))
        self.sock.settimeout(0.1)
        self._running = True
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def requests(self) -> list[str]:
        return [m.split(" ", 1)[0] for m in self.received]

    def close(self) -> None:
        self._running = False
        self._thread.join(1)
        self.sock.close()

    def _serve(self) -> None:
        while self._running:
            try:
                data, addr = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            text = data.decode(errors="replace")
            if text.startswith("SIP/2.0"):
                continue
            self.received.append(text)
            if text.startswith("INVITE "):
                self.sock.sendto(_busy(text).encode(), addr)


def _busy(request: str) -> str:
    head = request.split("\r\n\r\n", 1)[0].split("\r\n")
    keep = [line for line in head[1:] if line.split(":", 1)[0].strip().lower() in ("via", "from", "call-id", "cseq")]
    to = next(line for line in head if line.lower().startswith("to:"))
    return "\r\n".join(["SIP/2.0 486 Busy Here", *keep, f"{to};tag=sink", "Content-Length: 0", "", ""])

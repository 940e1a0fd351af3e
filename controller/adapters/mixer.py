"""The conference mixer's I/O: one UDP socket per participant, one 20 ms clock for every conference.

It runs inside the controller (docs/ARCHITECTURE.md, "Three-way conference"): a conference's DSP costs
about 50 us per 20 ms tick (controller/mixer), so it needs no process of its own, and a conference lives
on the replica whose machine started it (another replica's restart leaves it alone). rtpengine forwards
each participant's media to that participant's socket and the mix back from it, so rtpengine still
anchors, counts and can record everything. A socket takes datagrams only from rtpengine's media address
(anything else is dropped and counted) and sends only to the port rtpengine gave its mixer tag.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

from controller.metrics import Metrics
from controller.mixer.conference import Conference
from controller.mixer.g711 import Law

__all__ = ["TICK_S", "MixerService"]

log = logging.getLogger(__name__)

TICK_S = 0.020


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, service: MixerService, conference: str, who: str, source: str):
        self.service, self.conference, self.who, self.source = service, conference, who, source
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: tuple[str, int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if addr[0] != self.source:
            self.service.metrics.mixer_dropped.inc()
            return
        mixing = self.service.conferences.get(self.conference)
        if mixing is not None:
            mixing.conference.receive(self.who, data, time.monotonic() * 1000)


@dataclass
class _Mixing:
    conference: Conference
    sockets: dict[str, _Socket] = field(default_factory=dict)


class MixerService:
    def __init__(self, address: str, metrics: Metrics, rng: random.Random | None = None):
        self.address = address  # rtpengine's media address: the mixer listens beside it, and hears only it
        self.metrics = metrics
        self.rng = rng or random.SystemRandom()
        self.conferences: dict[str, _Mixing] = {}
        self._clock: asyncio.Task[None] | None = None

    async def start(self, conference: str, laws: dict[str, Law]) -> dict[str, tuple[str, int]]:
        """A conference of these participants (their codecs): the endpoint rtpengine sends each one's media to."""
        if conference in self.conferences:
            await self.stop(conference)
        mixing = _Mixing(Conference())
        loop = asyncio.get_running_loop()
        try:
            for who, law in laws.items():
                mixing.conference.add(who, law, ssrc=self.rng.getrandbits(32), first_sequence=self.rng.getrandbits(16),
                                      first_timestamp=self.rng.getrandbits(32))
                _, protocol = await loop.create_datagram_endpoint(
                    lambda who=who: _Socket(self, conference, who, self.address), local_addr=(self.address, 0))
                mixing.sockets[who] = protocol
        except BaseException:
            self._close(mixing)
            raise
        self.conferences[conference] = mixing
        self.metrics.conferences_active.set(len(self.conferences))
        if self._clock is None or self._clock.done():
            self._clock = asyncio.create_task(self._run(), name="mixer-clock")
        return {who: sock.transport.get_extra_info("sockname")[:2]  # type: ignore[union-attr]
                for who, sock in mixing.sockets.items()}

    def send_to(self, conference: str, who: str, host: str, port: int) -> None:
        """Where the mix for `who` goes: the port rtpengine opened for `who`'s mixer tag."""
        self.conferences[conference].sockets[who].peer = (host, port)

    async def stop(self, conference: str) -> None:
        mixing = self.conferences.pop(conference, None)
        if mixing is not None:
            self._close(mixing)
            for stats in mixing.conference.stats().values():
                self.metrics.mixer_late.inc(stats.late)
                self.metrics.mixer_lost.inc(stats.lost)
        self.metrics.conferences_active.set(len(self.conferences))

    async def close(self) -> None:
        for conference in list(self.conferences):
            await self.stop(conference)
        if self._clock is not None:
            self._clock.cancel()
            await asyncio.gather(self._clock, return_exceptions=True)
            self._clock = None

    def _close(self, mixing: _Mixing) -> None:
        for sock in mixing.sockets.values():
            if sock.transport is not None:
                sock.transport.close()

    async def _run(self) -> None:
        """Every 20 ms, on an absolute schedule (a late tick does not shift the ones after it)."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while self.conferences:
            next_tick += TICK_S
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            if loop.time() - next_tick > 5 * TICK_S:
                next_tick = loop.time()  # the loop was blocked: resume now rather than burst to catch up
            started = time.perf_counter()
            for mixing in list(self.conferences.values()):
                for who, packet in mixing.conference.tick():
                    sock = mixing.sockets.get(who)
                    if sock is not None and sock.peer is not None and sock.transport is not None:
                        sock.transport.sendto(packet, sock.peer)
            self.metrics.mixer_frame_seconds.observe(time.perf_counter() - started)

"""The mixer's sockets on loopback: rtpengine's datagrams are mixed and sent back where rtpengine said;
a stranger's are dropped and counted (the mixer hears only rtpengine)."""

from __future__ import annotations

import asyncio
import socket

import numpy as np

from controller.adapters.mixer import MixerService
from controller.devstack.tones import levels, tone
from controller.metrics import Metrics
from controller.mixer.g711 import FRAME_SAMPLES, Law, decode, encode
from controller.mixer.rtp import HEADER, parse


def udp(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 0))
    sock.setblocking(False)
    return sock


async def received(sock: socket.socket, seconds: float) -> list[bytes]:
    loop, out = asyncio.get_running_loop(), []
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        try:
            out.append(sock.recv(2048))
        except BlockingIOError:
            await asyncio.sleep(0.005)
    return out


async def test_rtpengines_media_is_mixed_and_a_strangers_is_dropped() -> None:
    metrics = Metrics()
    mixer = MixerService("127.0.0.1", metrics)
    # stand-ins for rtpengine's ports of the two mixer tags (on rtpengine's address), and a stranger
    rtpe = {"client": udp("127.0.0.1"), "a": udp("127.0.0.1"), "b": udp("127.0.0.1")}
    stranger = udp("127.0.0.2")
    try:
        endpoints = await mixer.start("call-1", {"client": Law.PCMA, "a": Law.PCMA, "b": Law.PCMU})
        for who, sock in rtpe.items():
            mixer.send_to("call-1", who, *sock.getsockname())
        for n in range(40):
            for who, freq, law in (("a", 700, Law.PCMA), ("b", 1100, Law.PCMU)):
                packet = HEADER.pack(0x80, 8 if law is Law.PCMA else 0, n, n * FRAME_SAMPLES, 1) + encode(
                    law, tone(freq, FRAME_SAMPLES, start=n * FRAME_SAMPLES))
                rtpe[who].sendto(packet, endpoints[who])
            # the stranger shouts at the client's socket: nobody may hear it
            stranger.sendto(HEADER.pack(0x80, 8, n, n * FRAME_SAMPLES, 9) + encode(Law.PCMA, tone(400, 160)),
                            endpoints["client"])
            await asyncio.sleep(0.02)
        packets = await received(rtpe["client"], 0.2)
        audio = np.concatenate([decode(Law.PCMA, parse(p).payload) for p in packets if parse(p)])
        heard = levels(audio, [400.0, 700.0, 1100.0])
        assert heard[700.0] > 2000 and heard[1100.0] > 2000, heard
        assert heard[400.0] < 300, heard  # the stranger's tone went nowhere
        assert metrics.mixer_dropped._value.get() >= 30
        assert metrics.conferences_active._value.get() == 1
        await mixer.stop("call-1")
        assert metrics.conferences_active._value.get() == 0
    finally:
        await mixer.close()
        for sock in (*rtpe.values(), stranger):
            sock.close()

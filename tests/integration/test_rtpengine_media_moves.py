"""Pin down how rtpengine 10.5 moves media between legs of ONE call (platform-notes.md), before the
transfer engine relies on it: client C talks to A; C is put on hold with music while A consults B;
then C is re-paired with B, and A's stale pairing is cut.

Each party's audio carries a payload byte naming it, so every assertion is "who heard whom".
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from controller.adapters.prompts import PromptLibrary
from controller.adapters.rtpengine_media import MediaExecutor
from controller.adapters.rtpengine_ng import RtpengineNg
from controller.devstack.rtp_party import RtpParty, media_port
from controller.devstack.stack import LocalStack
from tests.integration.conftest import RUN_ROOT, make_test_config

pytestmark = pytest.mark.integration

C_MARK, A_MARK, B_MARK = 0x11, 0x22, 0x33
CALL = "conversation-1"


@pytest.fixture(scope="module")
def rtpengine() -> Iterator[LocalStack]:
    run_dir = RUN_ROOT / "rtpengine-media-moves"
    shutil.rmtree(run_dir, ignore_errors=True)
    local = LocalStack(make_test_config(), run_dir)
    (local.run_dir / "logs").mkdir(parents=True)
    local.start_redis()  # rtpengine as the product runs it: persisting its calls in Redis
    local.start_rtpengine()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def music(rtpengine: LocalStack) -> Path:
    path = rtpengine.run_dir / "music.wav"
    # 16-bit PCM: rtpengine 10.5 rejects sox's default 32-bit WAV ("unsupported file format/codec")
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path),
                    "synth", "5", "sine", "440", "vol", "0.5"], check=True)
    return path


@pytest.fixture
async def ng(rtpengine: LocalStack) -> AsyncIterator[RtpengineNg]:
    rtpe = rtpengine.node.rtpengine
    async with RtpengineNg((rtpe.ng_address, rtpe.ng_port)) as client:
        yield client
        try:
            await client.delete(CALL)
        except Exception:
            pass


def rtp(port: int) -> tuple[str, int]:
    return ("127.0.0.1", port)


Heard = dict[str, tuple[dict[int, int], int]]  # party -> (packets per speaker marker, other audio packets)


async def exchange(*pairs: tuple[RtpParty, tuple[str, int]], parties: tuple[RtpParty, ...],
                   arrived: Callable[[Heard], bool], within_s: float = 2.0) -> Heard:
    """Every (party, destination) sends 15 packets at once; then what each party heard, once `arrived`
    (what must have reached whom: the senders' packets still on their way when the sending ends) holds,
    or after `within_s` seconds (the caller's assertions then say what is missing). Everything else, a
    leak included, has had the whole 300 ms of sending to show."""
    for p in parties:
        p.reset()
    await asyncio.gather(*(asyncio.to_thread(p.send, dest, 15) for p, dest in pairs))
    deadline = time.monotonic() + within_s
    while True:
        heard = {p.name: p.snapshot() for p in parties}
        if arrived(heard) or time.monotonic() >= deadline:
            return heard
        await asyncio.sleep(0.01)


def hears(heard: Heard, party: str, marker: int, packets: int = 10) -> bool:
    return heard[party][0].get(marker, 0) >= packets


def hears_music(heard: Heard, party: str, packets: int) -> bool:
    return heard[party][1] >= packets


async def until(what: str, fact: Callable[[], bool], within_s: float = 3.0) -> None:
    deadline = time.monotonic() + within_s
    while not fact():
        assert time.monotonic() < deadline, f"timed out after {within_s} s waiting for {what}"
        await asyncio.sleep(0.01)


async def test_hold_consult_and_repair_inside_one_call(ng: RtpengineNg, music: Path) -> None:
    C, A, B = RtpParty("C", C_MARK), RtpParty("A", A_MARK), RtpParty("B", B_MARK)
    everyone = (C, A, B)
    try:
        # 1. client C calls A: one ng call, one tag per leg
        to_a = media_port((await ng.offer(CALL, "C", C.sdp()))["sdp"])
        to_c = media_port((await ng.answer(CALL, "C", "A", A.sdp()))["sdp"])
        heard = await exchange((C, rtp(to_c)), (A, rtp(to_a)), parties=everyone,
                               arrived=lambda h: hears(h, "A", C_MARK) and hears(h, "C", A_MARK))
        assert heard["A"][0].get(C_MARK, 0) >= 10 and heard["C"][0].get(A_MARK, 0) >= 10, heard

        # 2. hold: C hears music and no longer hears A (the player does not mix: block A's media)
        await ng.block_media(CALL, "A")
        await ng.play_media(CALL, "C", str(music), repeat_times=100)
        heard = await exchange((A, rtp(to_a)), parties=everyone, arrived=lambda h: hears_music(h, "C", 10))
        assert heard["C"][0].get(A_MARK, 0) == 0, heard
        assert heard["C"][1] >= 10, f"C heard no music: {heard}"

        # 3. consultation: A re-paired with B in the same call; C still on music
        to_b = media_port((await ng.offer(CALL, "A", A.sdp("2"), to_tag="B"))["sdp"])
        to_a_new = media_port((await ng.answer(CALL, "A", "B", B.sdp()))["sdp"])
        await ng.unblock_media(CALL, "A")
        heard = await exchange((A, rtp(to_a)), (B, rtp(to_b)), parties=everyone,
                               arrived=lambda h: (hears(h, "B", A_MARK) and hears(h, "A", B_MARK)
                                                  and hears_music(h, "C", 5)))
        # A keeps sending to its OLD port: media follows the new pairing anyway (platform notes)
        assert heard["B"][0].get(A_MARK, 0) >= 10, (heard, to_a, to_a_new)
        assert heard["A"][0].get(B_MARK, 0) >= 10, heard
        assert heard["C"][0].get(A_MARK, 0) == 0 and heard["C"][0].get(B_MARK, 0) == 0, heard
        assert heard["C"][1] >= 5, f"C's music stopped: {heard}"

        # 4. A hangs up: stop the music, re-pair C with B, cut A's stale pairing
        await ng.stop_media(CALL, "C")
        await ng.offer(CALL, "C", C.sdp("3"), to_tag="B")
        await ng.answer(CALL, "C", "B", B.sdp("2"))
        await ng.block_media(CALL, "A")
        heard = await exchange((C, rtp(to_c)), (B, rtp(to_b)), (A, rtp(to_a)), parties=everyone,
                               arrived=lambda h: hears(h, "B", C_MARK) and hears(h, "C", B_MARK))
        assert heard["B"][0].get(C_MARK, 0) >= 10, heard
        assert heard["C"][0].get(B_MARK, 0) >= 10, heard
        assert heard["B"][0].get(A_MARK, 0) == 0 and heard["C"][0].get(A_MARK, 0) == 0, heard
        assert heard["C"][1] == 0, f"music still playing to C: {heard}"
    finally:
        for p in everyone:
            p.close()


async def test_a_re_paired_party_keeps_getting_its_old_partners_stream_unless_that_is_blocked(
        ng: RtpengineNg, music: Path) -> None:
    """Why the client on hold is blocked too: re-pairing A with B re-offers A's tag only, and rtpengine
    10.5 keeps forwarding the client's stream to A's port, so A would hear B and the client mixed."""
    C, A, B = RtpParty("C", C_MARK), RtpParty("A", A_MARK), RtpParty("B", B_MARK)
    everyone = (C, A, B)
    try:
        to_a = media_port((await ng.offer(CALL, "C", C.sdp()))["sdp"])
        to_c = media_port((await ng.answer(CALL, "C", "A", A.sdp()))["sdp"])
        await ng.block_media(CALL, "A")
        await ng.play_media(CALL, "C", str(music), repeat_times=100)
        to_b = media_port((await ng.offer(CALL, "A", A.sdp("2"), to_tag="B"))["sdp"])
        await ng.answer(CALL, "A", "B", B.sdp())
        await ng.unblock_media(CALL, "A")
        # everyone talks: A gets B's stream AND the client's (the leak)
        heard = await exchange((C, rtp(to_c)), (A, rtp(to_a)), (B, rtp(to_b)), parties=everyone,
                               arrived=lambda h: hears(h, "A", B_MARK) and hears(h, "A", C_MARK))
        assert heard["A"][0].get(B_MARK, 0) >= 10 and heard["A"][0].get(C_MARK, 0) >= 10, heard
        # blocking the client's tag stops it; the music still reaches the client (a block is on what a tag sends)
        await ng.block_media(CALL, "C")
        heard = await exchange((C, rtp(to_c)), (A, rtp(to_a)), (B, rtp(to_b)), parties=everyone,
                               arrived=lambda h: hears(h, "A", B_MARK) and hears_music(h, "C", 5))
        assert heard["A"][0] == {B_MARK: heard["A"][0].get(B_MARK, 0)} and heard["A"][0][B_MARK] >= 10, heard
        assert len(A.received()[0]) == 1, f"A gets more than one stream: {A.received()[0]}"
        assert heard["C"][0] == {} and heard["C"][1] >= 5, f"the client on hold: {heard['C']}"
    finally:
        for p in everyone:
            p.close()


@pytest.mark.parametrize("injection", ["offered", "none", "enabled later"])
async def test_play_dtmf_reaches_the_other_side_only_in_a_call_offered_with_inject_dtmf(
        ng: RtpengineNg, injection: str, dtmf_log_dest: tuple[str, int]) -> None:
    """What the talk options rely on: a blocked party's RFC 4733 events are dropped (and still reported),
    and `play DTMF` from that party reaches the other side only when the call was offered and answered
    with `inject DTMF`, or re-paired with it later (MediaExecutor.enable_injection, what the controller
    does at the first digit it passes on: ordinary calls are offered without it); without it, nothing."""
    C, A = RtpParty("C", C_MARK), RtpParty("A", A_MARK)
    offered_with_inject = injection != "none"
    flags = {"flags": ["inject DTMF"]} if injection == "offered" else {}
    reports = DtmfReports(dtmf_log_dest)
    try:
        to_a = media_port((await ng.offer(CALL, "C", C.sdp(), **flags))["sdp"])
        await ng.answer(CALL, "C", "A", A.sdp(), **flags)
        await asyncio.to_thread(A.send, rtp(to_a), 10)  # a talking party: its stream is up
        await ng.request("block DTMF", call_id=CALL, from_tag="A")
        if injection == "enabled later":
            await MediaExecutor(ng, PromptLibrary(RUN_ROOT / "cache" / "prompts")).enable_injection(CALL, "A", "C")
        await asyncio.to_thread(A.send_dtmf, rtp(to_a), "#", 0.1)
        # rtpengine reports a digit when it has ended: by then it has dropped (or forwarded) all of it
        await until("rtpengine to report A's #", lambda: ("A", 11) in reports.events())
        assert C.digits == [], "a blocked party's digit reached the other side"
        await ng.request("play DTMF", call_id=CALL, from_tag="A", code="5", duration=160)
        C.reset()
        await asyncio.to_thread(A.send, rtp(to_a), 30)  # the injector rides on A's running stream
        if offered_with_inject:
            await until("the played 5 to reach C", lambda: C.digits == ["5"])
        else:
            # A's stream after the command reached C to its end (30 packets): a digit played into it
            # would have been on the way
            await until("C to hear all of A's stream after the play command",
                        lambda: C.snapshot()[0].get(A_MARK, 0) >= 30)
        assert C.digits == (["5"] if offered_with_inject else []), C.digits
        # A's own digits stay blocked after the play (and after a re-pairing that enabled injection)
        await asyncio.to_thread(A.send_dtmf, rtp(to_a), "#", 0.1)
        await until("rtpengine to report A's second #", lambda: reports.events().count(("A", 11)) == 2)
        await asyncio.to_thread(A.send, rtp(to_a), 10)
        assert C.digits == (["5"] if offered_with_inject else []), f"a blocked party's digit reached C: {C.digits}"
    finally:
        reports.close()
        C.close()
        A.close()


class DtmfReports:
    """What rtpengine sends to its `dtmf-log-dest` (the controller's DTMF listener on a full stack):
    one JSON datagram per finished digit."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)
        self._seen: list[tuple[str, int]] = []

    def events(self) -> list[tuple[str, int]]:
        """(source tag, RFC 4733 event code) of every report so far."""
        while True:
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                return list(self._seen)
            doc = json.loads(data)
            self._seen.append((doc.get("source_tag"), doc.get("event")))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def dtmf_log_dest(rtpengine: LocalStack) -> tuple[str, int]:
    return (rtpengine.node.dtmf.address, rtpengine.node.dtmf.port)

"""One conference's mixing, from RTP in to RTP out: each party sends its own tone, and what each party
receives is analysed for every party's tone (as the integration acceptance will do with real RTP)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from controller.devstack.tones import levels, tone
from controller.mixer.conference import Conference
from controller.mixer.g711 import FRAME_SAMPLES, Law, decode, encode
from controller.mixer.rtp import HEADER, parse

F = FRAME_SAMPLES
PARTIES = {"client": (Law.PCMA, 400.0), "a": (Law.PCMA, 700.0), "b": (Law.PCMU, 1100.0)}
FREQS = [freq for _, freq in PARTIES.values()]
HEARD, UNHEARD = 3000, 300  # tone amplitudes (sent at 8000) after mixing and G.711


def rtp(law: Law, seq: int, samples: np.ndarray, ssrc: int, pt: int | None = None) -> bytes:
    payload_type = {Law.PCMU: 0, Law.PCMA: 8}[law] if pt is None else pt
    return HEADER.pack(0x80, payload_type, seq & 0xFFFF, (seq * F) & 0xFFFFFFFF, ssrc) + encode(law, samples)


def conference(parties: dict[str, tuple[Law, float]] = PARTIES) -> Conference:
    conf = Conference()
    for index, (who, (law, _)) in enumerate(parties.items()):
        conf.add(who, law, ssrc=1000 + index, first_sequence=100 * index, first_timestamp=5000 * index)
    return conf


def run(conf: Conference, ticks: int, *, drop: dict[str, float] | None = None, start: int = 0,
        seed: int = 7) -> dict[str, list[bytes]]:
    """`ticks` of 20 ms in real time: every party sends one packet of its tone (unless `drop` loses it),
    then the mixer ticks. What each party received, packet by packet."""
    rng = np.random.default_rng(seed)
    received: dict[str, list[bytes]] = {who: [] for who in conf.participants}
    for t in range(start, start + ticks):
        for index, who in enumerate(conf.participants):
            law, freq = PARTIES[who]
            if drop and rng.random() < drop.get(who, 0.0):
                continue
            conf.receive(who, rtp(law, t, tone(freq, F, start=t * F), ssrc=index + 1), arrival_ms=t * 20)
        for who, packet in conf.tick():
            received[who].append(packet)
    return received


def heard(who: str, packets: list[bytes]) -> dict[float, float]:
    law = PARTIES[who][0]
    audio = np.concatenate([decode(law, parse(p).payload) for p in packets])
    return levels(audio, FREQS)


def test_each_party_hears_both_others_and_not_itself() -> None:
    conf = conference()
    received = run(conf, 10)  # the jitter buffers fill
    received = run(conf, 150, start=10)  # 3 s of conference
    for who, (_, own) in PARTIES.items():
        got = heard(who, received[who])
        assert got[own] < UNHEARD, (who, got)
        assert all(got[f] > HEARD for f in FREQS if f != own), (who, got)


def test_each_output_is_one_continuous_stream_in_its_partys_codec() -> None:
    conf = conference()
    received = run(conf, 60)
    for who, packets in received.items():
        parsed = [parse(p) for p in packets]
        assert len({p.ssrc for p in parsed}) == 1
        assert {p.payload_type for p in parsed} == {0 if PARTIES[who][0] is Law.PCMU else 8}
        seqs, stamps = [p.sequence for p in parsed], [p.timestamp for p in parsed]
        assert all((b - a) % 65536 == 1 for a, b in pairwise(seqs))
        assert all((b - a) % (1 << 32) == F for a, b in pairwise(stamps))
        assert sum(p.marker for p in parsed) == 1  # one talk spurt: the others never stopped


def test_five_percent_loss_on_one_stream_leaves_the_other_two_hearing_each_other() -> None:
    conf = conference()
    run(conf, 10, drop={"client": 0.05})
    received = run(conf, 250, start=10, drop={"client": 0.05})
    a_freq, b_freq = PARTIES["a"][1], PARTIES["b"][1]
    # every single frame: no gap, no stall for the parties whose streams are whole
    for packet in received["a"]:
        assert heard("a", [packet])[b_freq] > HEARD
    for packet in received["b"]:
        assert heard("b", [packet])[a_freq] > HEARD
    assert conf.stats()["client"].lost > 0


def test_telephone_events_are_never_mixed() -> None:
    conf = conference()
    run(conf, 10)
    for t in range(10, 40):  # A's DTMF (payload type 101) beside its audio
        conf.receive("a", HEADER.pack(0x80, 101, t, t * F, 2) + b"\x0b\x0a\x00\xa0", arrival_ms=t * 20)
    received = run(conf, 30, start=10)
    assert conf.participants["a"].ignored == 30
    assert heard("client", received["client"])[PARTIES["a"][1]] > HEARD  # A's voice still arrives


def test_a_party_leaving_changes_nothing_in_the_others_streams() -> None:
    conf = conference()
    before = run(conf, 30)
    conf.remove("b")
    after = run(conf, 30, start=30)
    for who in ("client", "a"):
        seqs = [parse(p).sequence for p in before[who] + after[who]]
        assert all((y - x) % 65536 == 1 for x, y in pairwise(seqs))
    got = heard("client", after["client"][5:])
    assert got[PARTIES["a"][1]] > HEARD and got[PARTIES["b"][1]] < UNHEARD


def test_rtcp_junk_and_strangers_are_ignored() -> None:
    conf = conference()
    conf.receive("client", bytes([0x80, 200]) + b"\x00" * 26, arrival_ms=0)  # an RTCP sender report
    conf.receive("client", b"garbage", arrival_ms=0)
    conf.receive("nobody", rtp(Law.PCMA, 1, tone(400, F), ssrc=9), arrival_ms=0)
    assert all(p.jitter.stats.received == 0 for p in conf.participants.values())
    with pytest.raises(ValueError, match="already"):
        conf.add("a", Law.PCMA, ssrc=1, first_sequence=0, first_timestamp=0)

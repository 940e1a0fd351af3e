"""Carry out the state machine's media actions in rtpengine (the conversation is one ng call).

Leg ids are rtpengine tags: the client's and the transferor's SIP tags, and the leg ids the machine
gives the legs it originates (Kamailio offers those with `to-tag=<leg id>`). What the parties hear is
changed only by re-pairing tags, playing media to a tag, and blocking a tag's media; see
tests/integration/test_rtpengine_media_moves.py for the rtpengine behaviour this relies on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.adapters.mixer import MixerService
from controller.adapters.prompts import Prompt, PromptError, PromptLibrary
from controller.adapters.rtpengine_ng import RtpengineNg
from controller.codecs.sdp import TELEPHONE_EVENT, audio_endpoint, audio_sdp, static_codec
from controller.core import (
    Action,
    BlockDtmf,
    BlockMedia,
    BridgeMedia,
    PassDigit,
    PlayHoldMusic,
    PlayPrompt,
    PlayRingback,
    PromptKind,
    PromptRef,
    StartConference,
    StopConference,
    StopMedia,
    UnblockMedia,
)
from controller.errors import RtpengineError
from controller.mixer.g711 import Law

log = logging.getLogger(__name__)

#: A conference participant's mixer tag in the conversation's rtpengine call: `<its own tag>~mix`.
MIXER_TAG_SUFFIX = "~mix"
LOOP_FOREVER = 10_000  # rtpengine's repeat-times for music and ringback; stopped explicitly
PASSED_DIGIT_MS = 160  # a passed-on digit lasts as long as a short key press (RFC 4733 events of 8 x 20 ms)

#: Told when a digit is re-played: rtpengine reports it in its DTMF log as if the party had pressed it.
DigitPassed = Callable[[str, str, str], None]  # (call-id, tag, digit)


class LegMediaUnknown(LookupError):
    """rtpengine does not know this leg's media (no such tag, or it never sent an SDP)."""


@dataclass(frozen=True)
class LegMedia:
    address: str
    port: int
    codec: str

    def sdp(self) -> str:
        """The minimal SDP rtpengine needs to re-pair this party: its endpoint and its codec."""
        return audio_sdp(self.address, self.port, [static_codec(self.codec), TELEPHONE_EVENT])


def leg_media(query_reply: dict[str, Any], tag: str) -> LegMedia:
    """The media endpoint and codec rtpengine has for party `tag`, from an ng `query` reply."""
    info = (query_reply.get("tags") or {}).get(tag)
    if not info:
        raise LegMediaUnknown(f"rtpengine has no leg {tag!r}")
    for media in info.get("medias") or []:
        if media.get("type") != "audio":
            continue
        for stream in media.get("streams") or []:
            if "RTP" not in (stream.get("flags") or []):
                continue
            endpoint = stream.get("advertised endpoint") or stream.get("endpoint") or {}
            if endpoint.get("address") and endpoint.get("port"):
                return LegMedia(str(endpoint["address"]), int(endpoint["port"]), str(media.get("codec") or "PCMA/8000"))
    raise LegMediaUnknown(f"rtpengine has no audio endpoint for leg {tag!r}")



class MediaUnsupported(RuntimeError):
    """An action this rtpengine cannot do (three-way mixing needs rtpengine mr26.1's `mesh`)."""


@dataclass(frozen=True)
class PromptStarted:
    """A prompt is playing; the service reports PromptFinished after `seconds`."""

    leg: str
    prompt: PromptRef
    seconds: float


class MediaExecutor:
    def __init__(self, ng: RtpengineNg, prompts: PromptLibrary, on_digit_passed: DigitPassed | None = None,
                 mixer: MixerService | None = None):
        self.ng = ng
        self.prompts = prompts
        self._on_digit_passed = on_digit_passed
        self.mixer = mixer

    def prompt(self, ref: PromptRef) -> Prompt:
        """The audio of a prompt; a tenant's file or text that cannot be produced (missing or unreadable
        file, espeak-ng failing) gives way to its system prompt, with a warning."""
        try:
            if ref.kind is PromptKind.FILE and ref.path:
                return self.prompts.tenant_file(Path(ref.path))
            if ref.kind is PromptKind.TTS and ref.text:
                return self.prompts.speech(ref.text, ref.voice or "en")
        except PromptError as exc:
            log.warning("tenant prompt unusable, playing the system prompt %r instead: %s", ref.name, exc)
        return self.prompts.system(ref.name)

    async def execute(self, call_id: str, action: Action) -> PromptStarted | None:
        """Raises RtpengineError / PromptError / MediaUnsupported; the engine turns them into ActionFailed."""
        ng = self.ng
        match action:
            case PlayHoldMusic(leg=leg, music=music):
                await ng.play_media(call_id, leg, str(self.prompt(music).path), repeat_times=LOOP_FOREVER)
            case PlayRingback(leg=leg):
                await ng.play_media(call_id, leg, str(self.prompts.system("ringback").path), repeat_times=LOOP_FOREVER)
            case PlayPrompt(leg=leg, prompt=ref):
                prompt = self.prompt(ref)
                await ng.play_media(call_id, leg, str(prompt.path), repeat_times=1)
                return PromptStarted(leg, ref, prompt.seconds)
            case StopMedia(leg=leg):
                await self._stop_media(call_id, leg)
            case BlockMedia(from_leg=source):
                # rtpengine 10.5 blocks everything a tag sends; its partner is the one who stops hearing it
                await ng.block_media(call_id, source)
            case UnblockMedia(from_leg=source):
                await ng.unblock_media(call_id, source)
            case BlockDtmf(leg=leg):
                await ng.request("block DTMF", call_id=call_id, from_tag=leg)
            case PassDigit(leg=leg, digit=digit):
                # the call was offered with rtpengine's `inject DTMF` (Kamailio, for tenants that pass
                # digits); "from-tag" is the party the digit comes from, its partner hears it
                if self._on_digit_passed is not None:
                    self._on_digit_passed(call_id, leg, digit)
                await ng.request("play DTMF", call_id=call_id, from_tag=leg, code=digit, duration=PASSED_DIGIT_MS)
            case BridgeMedia(leg_a=a, leg_b=b, muted=muted):
                await self.bridge(call_id, a, b, muted)
            case StartConference(legs=legs):
                await self.start_conference(call_id, legs)
            case StopConference():
                if self.mixer is not None:
                    await self.mixer.stop(call_id)
            case _:
                raise TypeError(f"not a media action: {action!r}")
        return None

    async def endpoint_sdp(self, call_id: str, tag: str) -> str:
        """An SDP of party `tag`'s real media endpoint, as rtpengine knows it (raises LegMediaUnknown)."""
        return leg_media(await self.ng.query(call_id), tag).sdp()

    async def delete_call(self, call_id: str) -> None:
        await self.ng.delete(call_id)

    async def enable_injection(self, call_id: str, leg: str, partner: str) -> None:
        """Let rtpengine re-play `leg`'s digits to `partner` (ng `play DTMF`). rtpengine 10.5 injects only
        into media offered and answered with `inject DTMF`, which puts the audio through its transcoding
        engine (3.5 ms of CPU per ordinary call, docs/BENCHMARKS.md): ordinary calls are offered without
        it, and the first digit a conversation passes on re-pairs the two parties with it."""
        await self.bridge(call_id, leg, partner, inject=True)

    async def bridge(self, call_id: str, a: str, b: str, muted: tuple[str, ...] = (), *,
                     inject: bool = False) -> None:
        """Re-pair a and b: an offer/answer between their tags with SDPs of their real endpoints.
        A tag keeps sending to its old port and rtpengine follows the new pairing; the previous
        partners are no longer paired with them, so any block on a or b is lifted, except on the
        `muted` ones, which are blocked first so that not one packet reaches the new partner."""
        for tag in muted:
            await self.ng.block_media(call_id, tag)
        query = await self.ng.query(call_id)
        sdp_a, sdp_b = leg_media(query, a).sdp(), leg_media(query, b).sdp()
        flags = {"flags": ["inject DTMF"]} if inject else {}
        await self.ng.offer(call_id, a, sdp_a, to_tag=b, **flags)
        await self.ng.answer(call_id, a, b, sdp_b, **flags)
        for tag in (a, b):
            if tag not in muted:
                await self.ng.unblock_media(call_id, tag)

    async def start_conference(self, call_id: str, legs: tuple[str, ...]) -> None:
        """Each participant is re-paired with a mixer tag of its own (`<tag>~mix`) whose endpoint is its
        socket in the mixer: rtpengine forwards what the participant says to the mixer and the mix (the
        others) back, still anchoring and counting everything. G.711 only (PCMU, PCMA)."""
        if self.mixer is None:
            raise MediaUnsupported("this controller has no conference mixer")
        query = await self.ng.query(call_id)
        medias = {leg: leg_media(query, leg) for leg in legs}
        laws: dict[str, Law] = {}
        for leg, media in medias.items():
            name = media.codec.split("/")[0].upper()
            if name not in Law.__members__:
                raise MediaUnsupported(f"the mixer mixes G.711 only; {leg} talks {media.codec}")
            laws[leg] = Law(name)
        endpoints = await self.mixer.start(call_id, laws)
        try:
            for leg in legs:
                tag, (host, port) = leg + MIXER_TAG_SUFFIX, endpoints[leg]
                offer = await self.ng.offer(call_id, leg, medias[leg].sdp(), to_tag=tag)
                self.mixer.send_to(call_id, leg, *audio_endpoint(str(offer.get("sdp") or "")))
                mixer_sdp = audio_sdp(host, port, [static_codec(medias[leg].codec), TELEPHONE_EVENT])
                await self.ng.answer(call_id, leg, tag, mixer_sdp)
                await self.ng.unblock_media(call_id, leg)
        except BaseException:
            await self.mixer.stop(call_id)
            raise

    async def _stop_media(self, call_id: str, leg: str) -> None:
        try:
            await self.ng.stop_media(call_id, leg)
        except RtpengineError as exc:
            # nothing playing any more (a prompt that ended by itself) is what we wanted
            if "not" not in (exc.error_reason or "").lower():
                raise
            log.debug("stop media on %s: %s", leg, exc.error_reason)

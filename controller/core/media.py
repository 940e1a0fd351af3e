"""The media model: who hears whom in the rtpengine call, and the minimal commands to change it.

The model knows who is paired with whom, who hears an overlay (hold music,
ringback, a prompt) instead of their partner, which directions and whose DTMF
are blocked, and who is being recorded.  The machine changes media only
through :class:`MediaCommands`, which emits an action only when something
actually changes, and can always restore the plain client-A call (in full,
with ``force``, after rtpengine failed and nobody knows what it did).

rtpengine 10.5 semantics the model follows:

* a block drops everything the blocked tag sends (towards everybody), and a
  re-pairing lifts the blocks on both re-paired tags unless they are in
  ``BridgeMedia.muted``;
* a restarted rtpengine restores a call's pairings and DTMF blocks from Redis, but not its players
  or media blocks (``MediaCommands.reassert``);
* a re-pairing can stop a player on the re-paired party's former partner, so
  after every ``BridgeMedia`` the looped overlays still active are played
  again (``PlayHoldMusic`` for every leg on hold, ``PlayRingback`` for every
  leg hearing ringback, sorted by leg).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .actions import (
    Action,
    BlockDtmf,
    BlockMedia,
    BridgeMedia,
    PlayHoldMusic,
    PlayPrompt,
    PlayRingback,
    StartConference,
    StartRecording,
    StopConference,
    StopMedia,
    StopRecording,
    UnblockMedia,
)
from .prompts import PromptRef

__all__ = ["CONFERENCE", "Media", "MediaCommands", "Overlay"]

#: The partner of a leg in the conference.
CONFERENCE = "conference"


class Overlay(enum.StrEnum):
    HOLD = "hold"
    RINGBACK = "ringback"
    PROMPT = "prompt"


#: Overlays that loop until stopped, and are re-played after a re-pairing.
_LOOPED = (Overlay.HOLD, Overlay.RINGBACK)


@dataclass
class Media:
    """The state of the media (part of the conversation's snapshot)."""

    partner: dict[str, str] = field(default_factory=dict)
    overlay: dict[str, Overlay] = field(default_factory=dict)
    #: (from_leg, to_leg): to_leg does not hear from_leg.
    blocked: set[tuple[str, str]] = field(default_factory=set)
    dtmf_blocked: set[str] = field(default_factory=set)
    recording: str | None = None
    #: A mixer is in the media path (StartConference, until StopConference).
    conference: bool = False

    def pair(self, leg_a: str, leg_b: str) -> None:
        """Record a pairing that exists without a command (the call as the service set it up)."""
        self.partner[leg_a] = leg_b
        self.partner[leg_b] = leg_a

    def forget(self, leg: str) -> None:
        """A leg is gone: drop its own media state (others may still point at it)."""
        self.overlay.pop(leg, None)
        self.partner.pop(leg, None)
        self.dtmf_blocked.discard(leg)
        # its own blocks go with it; a block on a party who still talks stays in rtpengine
        self.blocked = {pair for pair in self.blocked if pair[0] != leg}


class MediaCommands:
    """The media model with an action list: every method emits only what changes."""

    def __init__(self, model: Media, out: list[Action], music: PromptRef) -> None:
        self.model = model
        self._out = out
        self._music = music

    def partner_of(self, leg: str) -> str | None:
        return self.model.partner.get(leg)

    def overlay_of(self, leg: str) -> Overlay | None:
        return self.model.overlay.get(leg)

    def play_hold(self, leg: str) -> None:
        self._out.append(PlayHoldMusic(leg, self._music))
        self.model.overlay[leg] = Overlay.HOLD

    def play_ringback(self, leg: str) -> None:
        self._out.append(PlayRingback(leg))
        self.model.overlay[leg] = Overlay.RINGBACK

    def play_prompt(self, leg: str, prompt: PromptRef, *, awaited: bool = False) -> None:
        """Play a prompt; only awaited prompts are tracked (short error prompts are not)."""
        self._out.append(PlayPrompt(leg, prompt))
        if awaited:
            self.model.overlay[leg] = Overlay.PROMPT

    def prompt_ended(self, leg: str) -> None:
        if self.model.overlay.get(leg) is Overlay.PROMPT:
            del self.model.overlay[leg]

    def stop(self, leg: str, *, force: bool = False) -> None:
        if leg in self.model.overlay or force:
            self.model.overlay.pop(leg, None)
            self._out.append(StopMedia(leg))

    def bridge(self, leg_a: str, leg_b: str, *, muted: tuple[str, ...] = ()) -> None:
        """Re-pair two legs; those in ``muted`` stay blocked towards the other (see BridgeMedia)."""
        m = self.model
        for leg in (leg_a, leg_b):
            old = m.partner.pop(leg, None)
            if old is not None and old != CONFERENCE and m.partner.get(old) == leg:
                del m.partner[old]
        m.pair(leg_a, leg_b)
        # a re-pairing lifts rtpengine's blocks on both tags, but for the muted ones
        m.blocked = {pair for pair in m.blocked if pair[0] not in (leg_a, leg_b)}
        m.blocked |= {(leg, leg_b if leg == leg_a else leg_a) for leg in muted}
        self._out.append(BridgeMedia(leg_a, leg_b, muted))
        self._replay_loops()

    def _replay_loops(self) -> None:
        for leg in sorted(self.model.overlay):
            overlay = self.model.overlay[leg]
            if overlay is Overlay.HOLD:
                self._out.append(PlayHoldMusic(leg, self._music))
            elif overlay is Overlay.RINGBACK:
                self._out.append(PlayRingback(leg))

    def reassert(self) -> None:
        """rtpengine restored the call from its persistence without its blocks and players: block and
        play again what the model says, blocks first so that not one word leaks to a party on hold."""
        for from_leg, to_leg in sorted(self.model.blocked):
            self._out.append(BlockMedia(from_leg, to_leg))
        for leg in sorted(self.model.dtmf_blocked):
            self._out.append(BlockDtmf(leg))
        self._replay_loops()

    def start_conference(self, legs: tuple[str, ...]) -> None:
        for leg in legs:
            self.model.partner[leg] = CONFERENCE
        self.model.conference = True
        self._out.append(StartConference(legs))

    def stop_conference(self) -> None:
        """The mixer leaves, once whoever stays has been re-paired (or released): no leg is left on it."""
        in_conference = [leg for leg, partner in self.model.partner.items() if partner == CONFERENCE]
        if not in_conference and not self.model.conference:
            return
        for leg in in_conference:
            del self.model.partner[leg]
        self.model.conference = False
        self._out.append(StopConference())

    def block(self, from_leg: str, to_leg: str, *, force: bool = False) -> None:
        if (from_leg, to_leg) not in self.model.blocked or force:
            self.model.blocked.add((from_leg, to_leg))
            self._out.append(BlockMedia(from_leg, to_leg))

    def unblock(self, from_leg: str, to_leg: str, *, force: bool = False) -> None:
        if (from_leg, to_leg) in self.model.blocked or force:
            self.model.blocked.discard((from_leg, to_leg))
            self._out.append(UnblockMedia(from_leg, to_leg))

    def unmute(self, leg: str) -> None:
        """Lift every block on what ``leg`` says (rtpengine 10.5 blocks a tag towards everybody)."""
        for from_leg, to_leg in sorted(self.model.blocked):
            if from_leg == leg:
                self.unblock(from_leg, to_leg)

    def block_dtmf(self, leg: str, *, force: bool = False) -> None:
        if leg not in self.model.dtmf_blocked or force:
            self.model.dtmf_blocked.add(leg)
            self._out.append(BlockDtmf(leg))

    def start_recording(self, leg: str, mailbox: str) -> None:
        self.model.recording = leg
        self._out.append(StartRecording(leg, mailbox))

    def stop_recording(self) -> None:
        if self.model.recording is not None:
            self._out.append(StopRecording(self.model.recording))
            self.model.recording = None

    def reconnect(self, a: str, client: str, *, force: bool = False) -> None:
        """Restore the plain client-A call; with ``force`` re-issue every command."""
        for leg in (a, client):
            self.stop(leg, force=force)
        if force or self.partner_of(client) != a or self.partner_of(a) != client:
            self.bridge(client, a)
        self.unblock(a, client, force=force)
        self.unblock(client, a, force=force)
        # A's DTMF stays blocked: the talk options remain the PBX's own keys
        self.block_dtmf(a, force=force)

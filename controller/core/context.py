"""The conversation's data, and the two things a handler is given: read-only facts and effects.

A handler (of the conversation, of the transfer or of the fallback) never holds
a reference to the :class:`~controller.core.conversation.Conversation`.  Per
call it gets a :class:`Step`:

* ``step.facts`` (:class:`Facts`): a read-only view of what the conversation
  knows (legs and their states, who the client and the transferor are, the
  numbers, the settings and the direction's fallback policy);
* ``step.fx`` (:class:`Effects`): the only way to change anything, by
  commands that also emit the actions (timers, legs, media, who the
  transferor is, the end of the conversation);
* ``step.event`` and ``step.transfer`` (the active transfer's own data).

A handler returns nothing, or a follow-up stimulus declared for its cell; it
never names a state: the table does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from .actions import Action, CancelLeg, CancelTimer, EndConversation, EndLeg, StartTimer
from .callerid import caller_id_for_target
from .events import ConversationStarted, Event
from .legs import Leg
from .media import Media, MediaCommands
from .refer import Referral
from .settings import FallbackPolicy, Settings
from .states import ConversationState
from .transfer import Transfer
from .types import (
    CallerIdPolicy,
    Direction,
    EndReason,
    LegRole,
    LegState,
    TargetKind,
    TimerPurpose,
    TransferTrigger,
)

__all__ = ["CallData", "DataView", "Effects", "Facts", "Step"]

V = TypeVar("V")
_LIVE = frozenset({LegState.TRYING, LegState.RINGING})


@dataclass
class CallData:
    """Everything a conversation knows; its snapshot is this, encoded (:mod:`controller.core.snapshot`)."""

    id: str
    settings: Settings = field(default_factory=Settings)
    version: int = 0
    state: ConversationState = ConversationState.NEW
    direction: Direction | None = None
    origin: str | None = None
    client_number: str | None = None
    transferor_number: str | None = None
    transferor_kind: TargetKind = TargetKind.EXTENSION
    did: str | None = None
    client_leg: str = ""
    transferor_leg: str | None = None
    #: The transferor the conversation started with (whose dialog Kamailio takes over).
    first_transferor_leg: str | None = None
    peer_leg: str | None = None
    legs: dict[str, Leg] = field(default_factory=dict)
    transfer: Transfer | None = None
    media: Media = field(default_factory=Media)
    degraded: bool = False
    dtmf_buffer: str = ""
    timers: dict[str, TimerPurpose] = field(default_factory=dict)
    transfer_seq: int = 0
    timer_seq: int = 0
    end_reason: EndReason | None = None
    #: The transferor leg of the last ``SetDialogTakeover`` (None: no takeover).
    takeover: str | None = None
    #: The subscription of the last REFER the machine took (what its phone was told).
    referral: Referral | None = None
    #: The first transferor's phone holds the call (its own hold key): in TALKING the client hears music.
    phone_held: bool = False


class DataView(Generic[V]):
    """A read-only, typed attribute showing the field of the same name of the owner's ``_d`` (CallData)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> V:
        if obj is None:
            return self  # type: ignore[return-value]
        return getattr(obj._d, self.name)  # type: ignore[no-any-return]

    def __set__(self, obj: Any, value: V) -> None:
        raise AttributeError(f"{self.name} is read-only; the conversation changes only by handle()")


class Facts:
    """A read-only view of the conversation for handlers and guards."""

    def __init__(self, data: CallData) -> None:
        self._d = data

    id = DataView[str]()
    settings = DataView[Settings]()
    state = DataView[ConversationState]()
    client_leg = DataView[str]()
    transferor_leg = DataView[str | None]()
    first_transferor_leg = DataView[str | None]()
    peer_leg = DataView[str | None]()
    client_number = DataView[str | None]()
    transferor_number = DataView[str | None]()
    transferor_kind = DataView[TargetKind]()
    origin = DataView[str | None]()
    degraded = DataView[bool]()

    @property
    def legs(self) -> Mapping[str, Leg]:
        return MappingProxyType(self._d.legs)

    @property
    def a(self) -> str:
        """The current transferor's leg (only asked where there is one)."""
        leg = self._d.transferor_leg
        assert leg is not None
        return leg

    @property
    def transferor_up(self) -> bool:
        leg = self._d.transferor_leg
        return leg is not None and self._d.legs[leg].state is LegState.UP

    @property
    def policy(self) -> FallbackPolicy:
        assert self._d.direction is not None
        return self._d.settings.fallback_for(self._d.direction)

    def is_live(self, leg: str) -> bool:
        return self._d.legs[leg].state in _LIVE

    def is_outside(self, leg: str | None) -> bool:
        """An outside party reached over the trunk (no talk options for them)."""
        return leg is not None and self._d.legs[leg].kind is TargetKind.TRUNK

    def is_self_target(self, number: str) -> bool:
        """A transfer to the current transferor or to the client is refused."""
        own = {self._d.transferor_number, self._d.client_number} - {None, ""}
        return number.strip() in own

    def caller_id_for(self, kind: TargetKind) -> str:
        d = self._d
        return caller_id_for_target(d.settings.caller_id_policy, kind, d.client_number, d.did,
                                    d.settings.company_number)

    def origin_caller_id(self, kind: TargetKind) -> str:
        """The origin's members see the call as its routing step first showed it: the client's own
        number (where the law allows it), not the transfer's caller-ID policy."""
        d = self._d
        return caller_id_for_target(CallerIdPolicy.CLIENT, kind, d.client_number, d.did, d.settings.company_number)


class Effects:
    """The commands a handler may give; each changes the data and emits the actions for it."""

    def __init__(self, data: CallData, out: list[Action]) -> None:
        self._d = data
        self.out = out
        self.media = MediaCommands(data.media, out, data.settings.hold_music)

    def emit(self, action: Action) -> None:
        self.out.append(action)

    @property
    def transfer(self) -> Transfer | None:
        return self._d.transfer

    def start(self, event: ConversationStarted) -> None:
        d = self._d
        d.direction = event.direction
        d.origin = event.origin
        d.client_number = event.client_number
        d.transferor_number = event.transferor_number
        d.transferor_kind = event.transferor_kind
        d.did = event.did
        d.client_leg = event.client_leg
        d.transferor_leg = d.first_transferor_leg = event.transferor_leg

    def new_transfer(self, trigger: TransferTrigger) -> Transfer:
        d = self._d
        d.transfer_seq += 1
        d.transfer = Transfer(id=f"t{d.transfer_seq}", trigger=trigger)
        if trigger is TransferTrigger.REFER:
            d.referral = Referral(d.transfer.id)
        return d.transfer

    def hand_over(self, leg_id: str) -> None:
        """The phone of `leg_id` handed the call over (a REFER): from now on the machine treats it as
        gone. No BYE: the phone hangs up itself after its NOTIFY, and Kamailio absorbs that BYE (the
        dialog takeover), which then changes nothing. Its media stays blocked from the client."""
        self._d.legs[leg_id].state = LegState.ENDED

    # -- timers ------------------------------------------------------------------------

    def start_timer(self, purpose: TimerPurpose, seconds: float) -> str:
        d = self._d
        d.timer_seq += 1
        name = f"{d.id}/{purpose}/{d.timer_seq}"
        d.timers[name] = purpose
        self.emit(StartTimer(name, seconds))
        return name

    def cancel_timer(self, purpose: TimerPurpose) -> None:
        for name, timer_purpose in list(self._d.timers.items()):
            if timer_purpose is purpose:
                del self._d.timers[name]
                self.emit(CancelTimer(name))

    def cancel_all_timers(self) -> None:
        for name in list(self._d.timers):
            self.emit(CancelTimer(name))
        self._d.timers.clear()

    # -- legs --------------------------------------------------------------------------

    def add_leg(self, leg: Leg) -> None:
        self._d.legs[leg.id] = leg

    def release_leg(self, leg_id: str, reason: EndReason) -> None:
        """CANCEL a leg that has not answered, BYE one that has; nothing if already gone."""
        leg = self._d.legs[leg_id]
        if leg.state in _LIVE:
            self.emit(CancelLeg(leg_id))
            leg.state = LegState.CANCELLING
        elif leg.state is LegState.UP:
            self.emit(EndLeg(leg_id, reason))
            leg.state = LegState.ENDED
        else:
            return
        self._d.media.forget(leg_id)

    def adopt_transferor(self, leg_id: str) -> None:
        """A answered the recall: the new leg is the transferor from now on."""
        self._d.legs[leg_id].role = LegRole.TRANSFEROR
        self._d.transferor_leg = leg_id
        self.media.block_dtmf(leg_id)

    def promote(self, leg_id: str) -> None:
        """B is now the client's party: with talk options if internal, without if outside."""
        d = self._d
        leg = d.legs[leg_id]
        if leg.kind is TargetKind.TRUNK:
            # An outside party must not be able to start transfers (toll fraud).
            leg.role = LegRole.PEER
            d.peer_leg = leg_id
            d.transferor_leg = None
            return
        leg.role = LegRole.TRANSFEROR
        d.transferor_leg = leg_id
        self.media.block_dtmf(leg_id)  # their talk options are the PBX's keys too
        d.transferor_number = leg.number
        d.transferor_kind = leg.kind or TargetKind.EXTENSION
        d.peer_leg = None

    def make_peer(self, leg_id: str | None) -> None:
        """``leg_id`` joins as a party without talk options (conference), or the peer left (None)."""
        if leg_id is not None:
            self._d.legs[leg_id].role = LegRole.PEER
        self._d.peer_leg = leg_id

    def set_degraded(self) -> None:
        self._d.degraded = True

    def set_phone_held(self, held: bool) -> None:
        self._d.phone_held = held

    def end(self, reason: EndReason) -> None:
        """Release everything that is still ours and end the conversation."""
        self.cancel_all_timers()
        self.media.stop_recording()
        d = self._d
        halves = [d.legs[leg] for leg in (d.client_leg, d.first_transferor_leg) if leg in d.legs]
        if len(halves) == 2 and all(leg.state is LegState.UP for leg in halves):
            # both halves of the client's dialog are still up: one BYE exchange ends both sides
            self.emit(EndLeg(halves[0].id, reason, also=halves[1].id))
            for leg in halves:
                leg.state = LegState.ENDED
                d.media.forget(leg.id)
        for leg in list(d.legs):
            self.release_leg(leg, reason)
        self.media.stop_conference()
        self._d.end_reason = reason
        self.emit(EndConversation(reason))


@dataclass
class Step:
    """What a handler or a guard gets for one table lookup."""

    facts: Facts
    fx: Effects
    event: Event
    #: The stimulus' argument (the digit of ``NUMBER_DIGIT``).
    arg: Any = None

    @property
    def transfer_or_none(self) -> Transfer | None:
        return self.fx.transfer

    @property
    def t(self) -> Transfer:
        """The active transfer (only asked in transfer states)."""
        transfer = self.fx.transfer
        assert transfer is not None
        return transfer

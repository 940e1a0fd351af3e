"""Events: facts the service feeds into :meth:`Conversation.handle`.

Every event is a frozen dataclass named after something that *happened*
(a digit was pressed, a leg answered, a timer fired).  The machine never asks
"what time is it" or "is the socket open": everything it needs to know
arrives as one of these.
"""

from __future__ import annotations

from dataclasses import dataclass

from .prompts import PromptRef, as_prompt
from .settings import DTMF_ALPHABET
from .types import Direction, RejectReason, TargetKind, TransferTrigger

__all__ = [
    "ActionFailed",
    "ConversationStarted",
    "DigitPressed",
    "Event",
    "FarEndNotified",
    "LegAnswered",
    "LegEvent",
    "LegFailed",
    "LegHungUp",
    "LegRinging",
    "PromptFinished",
    "TargetRejected",
    "TargetResolved",
    "TimerFired",
    "TransferRequested",
]


@dataclass(frozen=True)
class Event:
    """Base class of all events."""


@dataclass(frozen=True)
class ConversationStarted(Event):
    """The client and A are connected; one rtpengine call pairs their legs.

    ``origin`` is an opaque reference to the routing step that delivered the
    call; the call can be sent back to it (``ResolveOrigin``).  Numbers are used for caller-ID and to refuse a
    transfer to A or to the client themself; ``None`` means unknown/anonymous.
    """

    direction: Direction
    client_leg: str
    transferor_leg: str
    client_number: str | None = None
    transferor_number: str | None = None
    did: str | None = None
    origin: str | None = None
    transferor_kind: TargetKind = TargetKind.EXTENSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", Direction(self.direction))
        object.__setattr__(self, "transferor_kind", TargetKind(self.transferor_kind))
        if not self.client_leg or not self.transferor_leg or self.client_leg == self.transferor_leg:
            raise ValueError("client_leg and transferor_leg must be distinct, non-empty leg ids")


@dataclass(frozen=True)
class DigitPressed(Event):
    """A DTMF digit (RFC 4733 event or SIP INFO) was detected on ``leg``."""

    leg: str
    digit: str

    def __post_init__(self) -> None:
        if len(self.digit) != 1 or self.digit not in DTMF_ALPHABET:
            raise ValueError(f"not a DTMF digit: {self.digit!r}")


@dataclass(frozen=True)
class TransferRequested(Event):
    """Someone asked to transfer the client to ``number``.

    One event for every trigger: digits collected by the service itself
    (``dtmf``), a REFER from A's phone (``refer``, RFC 3515) and the Call API
    (``api``).  If the request cannot be honoured the machine answers with a
    ``TransferRefused`` action (the service turns it into a REFER error
    response or an API error).
    """

    number: str
    trigger: TransferTrigger = TransferTrigger.API
    #: Who asked, where the trigger says (a REFER: the leg of the phone that sent it).
    leg: str | None = None
    #: An attended REFER's ``Replaces`` (the dialog A set up with B, RFC 3891), checked by the service.
    replaces: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "trigger", TransferTrigger(self.trigger))
        if not self.number:
            raise ValueError("number must not be empty")


@dataclass(frozen=True)
class TargetResolved(Event):
    """Answer to ``ResolveTarget``: the dial strings to ring in parallel.

    ``targets`` may hold several entries for a department (first to answer
    wins) and may be empty (nobody registered / available).
    """

    transfer_id: str
    targets: tuple[str, ...]
    target_kind: TargetKind = TargetKind.EXTENSION
    #: The client's own trunk is asked (REFER) to call the one target itself rather than the PBX
    #: taking the client over: the tenant passes outside transfers on and the trunk accepts REFER.
    far_end: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "target_kind", TargetKind(self.target_kind))


@dataclass(frozen=True)
class TargetRejected(Event):
    """Answer to ``ResolveTarget``: the number is unknown or not allowed."""

    transfer_id: str
    reason: RejectReason = RejectReason.UNKNOWN_NUMBER

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", RejectReason(self.reason))


@dataclass(frozen=True)
class LegEvent(Event):
    """Base class of the SIP dialog events."""

    leg: str


@dataclass(frozen=True)
class LegRinging(LegEvent):
    """A 180/183 arrived for an originated leg; ``early_media`` if it carried SDP."""

    early_media: bool = False


@dataclass(frozen=True)
class LegAnswered(LegEvent):
    """A 200 OK arrived for an originated leg (and was ACKed by the service)."""


@dataclass(frozen=True)
class LegFailed(LegEvent):
    """An originated leg got a final failure response.

    ``sip_status`` is the 3xx-6xx status code, or 0 when there was no SIP
    response at all (no registration, transport error, local timeout).
    """

    sip_status: int = 0

    def __post_init__(self) -> None:
        if self.sip_status != 0 and not 300 <= self.sip_status <= 699:
            raise ValueError(f"not a final failure status: {self.sip_status}")


@dataclass(frozen=True)
class LegHungUp(LegEvent):
    """The party on ``leg`` sent BYE."""


@dataclass(frozen=True)
class TimerFired(Event):
    """A timer started with ``StartTimer(name, ...)`` expired (stale ones are ignored)."""

    name: str


@dataclass(frozen=True)
class PromptFinished(Event):
    """A prompt started with ``PlayPrompt(leg, prompt)`` finished playing."""

    leg: str
    prompt: PromptRef

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt", as_prompt(self.prompt))


@dataclass(frozen=True)
class PhoneHeld(Event):
    """The phone of ``leg`` put the call on hold (a re-INVITE with ``a=sendonly``/``inactive``) or took
    it off hold. Kamailio kept the client's stream up (PBX hold); the client hears the tenant's music."""

    leg: str
    held: bool


@dataclass(frozen=True)
class FarEndNotified(Event):
    """A NOTIFY of the REFER the PBX sent the client's trunk (``ReferFarEnd``): the status line of its
    ``message/sipfrag`` body, 0 when the trunk refused the REFER itself without a status of its own.
    1xx is progress (18x: B rings), 2xx: the far end connected the client to B, >= 300: it failed."""

    transfer_id: str
    status: int


@dataclass(frozen=True)
class MediaRestored(Event):
    """rtpengine restarted and restored the conversation's call from its persistence.

    The pairings come back with the call; what rtpengine does not persist does not: its players
    (hold music, ringback) and its media blocks. The machine plays and blocks again what its media
    model says, so a client on hold hears the music again and never the transferor.
    """


@dataclass(frozen=True)
class ActionFailed(Event):
    """The service could not execute an action (any exception of any action).

    ``action`` is the failed action's class name (``"OriginateLeg"``), ``leg``
    the leg it was about, if any, and ``detail`` the error, for the log.  The
    machine's reaction depends on the action: a failed origination is an
    unreachable target (``LegFailed(leg, 0)``), a failed CANCEL ends the leg, a
    failed bookkeeping action changes nothing, and anything else (media, a
    resolution request, a timer, an unknown name) is a media failure.
    """

    action: str
    leg: str | None = None
    detail: str = ""

"""Actions: commands :meth:`Conversation.handle` asks the service to execute.

Every action is a frozen dataclass named after a command.  The service
executes them in list order; an action that fails (any exception) is reported
back as an ``ActionFailed`` event, a SIP outcome as a ``Leg*`` event.

Media vocabulary (what the parties *hear*; the service maps it to rtpengine):

* ``BridgeMedia(a, b)``: re-pair the two tags inside the rtpengine call so
  that ``a`` and ``b`` hear each other.  It replaces whatever ``a`` and ``b``
  were paired with before (including a conference).
* ``PlayHoldMusic`` / ``PlayRingback`` / ``PlayPrompt``: ``leg`` hears the
  given media instead of its partner until ``StopMedia(leg)`` (prompts also
  end by themselves and are reported with ``PromptFinished``).
* ``BlockMedia(from_leg, to_leg)``: ``to_leg`` no longer hears ``from_leg``
  (rtpengine 10.5 drops everything ``from_leg`` sends, so nobody does; a
  ``BridgeMedia`` of ``from_leg`` lifts it).
* ``BlockDtmf(leg)``: DTMF from ``leg`` is still detected and reported but no
  longer forwarded to the other parties.
* ``PassDigit(leg, digit)``: ``leg``'s partner hears ``digit`` as if ``leg``
  had sent it (a digit of a blocked transferor that is no talk option).

Looped overlays and re-pairings (rtpengine 10.5): a re-pairing can stop a
player on the re-paired party's former partner, so every ``BridgeMedia`` is
followed at once by a ``PlayHoldMusic`` / ``PlayRingback`` for every leg that
is still meant to hear one (sorted by leg); the service executes them as
they come and needs no replay logic of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .prompts import DEFAULT_MUSIC, PromptRef, as_prompt
from .types import (
    Cause,
    EndReason,
    FallbackRule,
    OutcomeKind,
    OutcomeMode,
    RefusalReason,
    TargetKind,
    TransferTrigger,
)

__all__ = [
    "Action",
    "BlockDtmf",
    "BlockMedia",
    "BridgeMedia",
    "CancelLeg",
    "CancelTimer",
    "EndConversation",
    "EndLeg",
    "EndReplacedDialog",
    "NotifyReferrer",
    "OriginateLeg",
    "PassDigit",
    "PlayHoldMusic",
    "PlayPrompt",
    "PlayRingback",
    "RecordOutcome",
    "ReferFarEnd",
    "ResolveOrigin",
    "ResolveTarget",
    "RingTransferor",
    "SetDialogTakeover",
    "StartConference",
    "StartRecording",
    "StartTimer",
    "StopConference",
    "StopMedia",
    "StopRecording",
    "TransferRefused",
    "UnblockMedia",
    "leg_of",
]


@dataclass(frozen=True)
class Action:
    """Base class of all actions."""


# -- media ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlayHoldMusic(Action):
    leg: str
    music: PromptRef = DEFAULT_MUSIC

    def __post_init__(self) -> None:
        object.__setattr__(self, "music", as_prompt(self.music))


@dataclass(frozen=True)
class PlayRingback(Action):
    """``leg`` hears a locally generated ringback tone (no early media from the target)."""

    leg: str


@dataclass(frozen=True)
class PlayPrompt(Action):
    leg: str
    prompt: PromptRef

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt", as_prompt(self.prompt))


@dataclass(frozen=True)
class StopMedia(Action):
    """Stop hold music / ringback / prompt played to ``leg``; it hears its partner again."""

    leg: str


@dataclass(frozen=True)
class BlockMedia(Action):
    """``to_leg`` stops hearing ``from_leg``."""

    from_leg: str
    to_leg: str


@dataclass(frozen=True)
class UnblockMedia(Action):
    from_leg: str
    to_leg: str


@dataclass(frozen=True)
class BlockDtmf(Action):
    """DTMF pressed on ``leg`` is no longer forwarded to the other parties."""

    leg: str


@dataclass(frozen=True)
class PassDigit(Action):
    """``leg``'s partner hears ``digit`` from ``leg``, whose own DTMF rtpengine blocks."""

    leg: str
    digit: str


@dataclass(frozen=True)
class BridgeMedia(Action):
    """Re-pair ``leg_a`` and ``leg_b`` in rtpengine so they hear each other (and only each other).

    A re-pairing lifts the blocks on both tags, except on those in ``muted``: they are blocked before
    the re-pairing and stay so (nobody hears them, not even for the first packet)."""

    leg_a: str
    leg_b: str
    muted: tuple[str, ...] = ()


@dataclass(frozen=True)
class StartConference(Action):
    """Everybody in ``legs`` hears everybody else."""

    legs: tuple[str, ...]


@dataclass(frozen=True)
class StopConference(Action):
    """The conference is over: its mixer leaves the media path (the parties left are re-paired first,
    ``BridgeMedia``, so nobody hears the mixer's silence, or is released)."""


@dataclass(frozen=True)
class StartRecording(Action):
    """Record what ``leg`` says into ``mailbox`` (voicemail)."""

    leg: str
    mailbox: str


@dataclass(frozen=True)
class StopRecording(Action):
    leg: str


# -- signalling ----------------------------------------------------------------------


@dataclass(frozen=True)
class ResolveTarget(Action):
    """Ask the service to resolve ``number``; answered by ``TargetResolved``/``TargetRejected``."""

    transfer_id: str
    number: str


@dataclass(frozen=True)
class ResolveOrigin(Action):
    """Ask the service who the routing step ``origin`` rings now (e.g. the department the call came
    through); answered by ``TargetResolved``/``TargetRejected`` for ``transfer_id``."""

    transfer_id: str
    origin: str


@dataclass(frozen=True)
class OriginateLeg(Action):
    """Send an INVITE to ``target``; the new dialog is called ``leg`` in later events.

    ``timeout_s`` is informational (e.g. for the proxy's fr_inv_timer as a
    safety net): the authoritative no-answer timeout is the machine's own timer.
    """

    leg: str
    target: str
    target_kind: TargetKind
    caller_id: str
    timeout_s: float
    #: A ``Replaces`` header value (RFC 3891) for the INVITE: an attended REFER's B joins the client in
    #: place of its dialog with A, without ringing again.
    replaces: str | None = None


@dataclass(frozen=True)
class RingTransferor(Action):
    """Ring A again (new leg ``leg``) after a failed blind transfer."""

    leg: str
    number: str
    caller_id: str
    timeout_s: float


@dataclass(frozen=True)
class CancelLeg(Action):
    """CANCEL an originated leg that has not answered yet."""

    leg: str


@dataclass(frozen=True)
class EndLeg(Action):
    """Send BYE on an established leg. ``also``: the other half of the same SIP dialog (the client and
    the first transferor), ended with it: both sides get a BYE (one dialog cannot be ended twice)."""

    leg: str
    reason: EndReason
    also: str | None = None


@dataclass(frozen=True)
class TransferRefused(Action):
    """A ``TransferRequested`` was not accepted (REFER error response / API error)."""

    number: str
    trigger: TransferTrigger
    reason: RefusalReason | Cause


@dataclass(frozen=True)
class EndConversation(Action):
    """Every leg is ended or cancelled; forget the snapshot."""

    reason: EndReason


@dataclass(frozen=True)
class SetDialogTakeover(Action):
    """Kamailio absorbs the BYE of ``transferor_leg`` (the conversation's first transferor) and
    answers the client's in-dialog requests once that leg has left; ``None`` ends the takeover.

    Wanted while the conversation runs and a transfer is active or the first transferor has left;
    emitted when that changes (``None`` right before ``EndConversation``)."""

    transferor_leg: str | None


# -- timers --------------------------------------------------------------------------


@dataclass(frozen=True)
class StartTimer(Action):
    """Deliver ``TimerFired(name)`` after ``seconds``; names are never reused."""

    name: str
    seconds: float


@dataclass(frozen=True)
class CancelTimer(Action):
    name: str


# -- event log -----------------------------------------------------------------------


@dataclass(frozen=True)
class RecordOutcome(Action):
    """One event-log entry per transfer; the service adds timestamps and durations.

    ``cause`` is a :class:`~controller.core.types.FailureCause`, a
    :class:`~controller.core.types.RejectReason` or an
    :class:`~controller.core.types.OutcomeCause`.  ``rule`` is the fallback rule
    applied (None while A was on the line), ``mode`` the
    :class:`~controller.core.types.OutcomeMode`: ``attended`` / ``blind`` for a
    completed transfer, ``transferor_on_line`` / ``recalled`` for a returned
    one, ``apology`` / ``voicemail`` / ``origin`` / ``client_hung_up`` for a
    failed one.  ``trigger`` and ``number`` let the service send the final
    REFER NOTIFY (RFC 3515 §2.4.5).
    """

    transfer_id: str
    kind: OutcomeKind
    number: str | None = None
    trigger: TransferTrigger | None = None
    cause: Cause | None = None
    rule: FallbackRule | None = None
    mode: OutcomeMode | None = None

    def fields(self) -> dict[str, Any]:
        """The entry as JSON-safe primitives."""
        return {
            "transfer_id": self.transfer_id,
            "kind": str(self.kind),
            "number": self.number,
            "trigger": None if self.trigger is None else str(self.trigger),
            "cause": None if self.cause is None else str(self.cause),
            "rule": None if self.rule is None else str(self.rule),
            "mode": None if self.mode is None else str(self.mode),
        }


# -- REFER (RFC 3515) ------------------------------------------------------------------


@dataclass(frozen=True)
class EndReplacedDialog(Action):
    """End both sides of the dialog an attended REFER's ``Replaces`` named (A's consultation call with
    B), once B has joined the client: its phones usually hang it up themselves; none is left over."""

    replaces: str


@dataclass(frozen=True)
class NotifyReferrer(Action):
    """A NOTIFY of the REFER subscription to the phone that sent the REFER (the client dialog's
    employee side): ``code``/``reason`` as the ``message/sipfrag`` status line; ``final`` ends the
    subscription (``Subscription-State: terminated;reason=noresource``)."""

    code: int
    reason: str
    final: bool


@dataclass(frozen=True)
class ReferFarEnd(Action):
    """Ask the client's trunk, by a REFER in the client's dialog sent as the employee's side, to call
    ``target`` (its dial string) itself, with ``Referred-By`` the caller ID of the tenant's policy; its
    NOTIFYs come back as ``FarEndNotified``."""

    transfer_id: str
    target: str
    caller_id: str


def leg_of(action: Action) -> str | None:
    """The leg an action is about (what ``ActionFailed.leg`` names when it fails), if any."""
    if isinstance(action, BridgeMedia):
        return action.leg_a
    if isinstance(action, StartConference):
        return action.legs[0] if action.legs else None
    if isinstance(action, SetDialogTakeover):
        return action.transferor_leg
    if isinstance(action, BlockMedia | UnblockMedia):
        return action.from_leg
    leg = getattr(action, "leg", None)
    return leg if isinstance(leg, str) else None

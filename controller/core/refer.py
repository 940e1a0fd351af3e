"""The REFER subscription (RFC 3515): what the phone that sent a REFER is told of its transfer.

A REFER is one more trigger of the same transfer (``TransferRequested(trigger=refer)``); this module
only derives the NOTIFY progress from what the transfer did in one :meth:`Conversation.handle`:

* the REFER accepted and B being resolved: ``100 Trying``;
* a branch towards B rings: ``180 Ringing`` (once);
* the final answer, which ends the subscription: ``200 OK`` once the client is connected to B, else
  the failure B gave (busy 486, no answer 408, declined 603, unreachable 480) or why the request was
  refused (unknown number 404, forbidden or A's own number 403, a transfer already running 491).

A REFER's transfer is the `#` transfer with A waiting on the line (A hears ringback or B's early
media, and `*` still takes the client back), except that B's answer connects the client to B at once:
A's phone asked for that, so it hands the call over then (its own BYE, which Kamailio absorbs, changes
nothing afterwards). Until then every failure is A's to take back, as with `#`: a refused number
leaves the client with A, and a B that fails returns the client to A on the line, with the warnings;
a phone that hangs up right after the 202 leaves a blind transfer, and the direction's rule applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .actions import Action, NotifyReferrer, RecordOutcome, TransferRefused
from .states import State, Stimulus
from .types import (
    Cause,
    FailureCause,
    OutcomeCause,
    OutcomeKind,
    RefusalReason,
    RejectReason,
    TransferTrigger,
)

__all__ = ["Referral", "final_status", "progress", "refusal_status"]

TRYING = (100, "Trying")
RINGING = (180, "Ringing")
OK = (200, "OK")

#: The status line of the final NOTIFY for each cause a REFER's transfer can end with.
_CAUSE_STATUS: dict[Cause | RefusalReason, tuple[int, str]] = {
    FailureCause.BUSY: (486, "Busy Here"),
    FailureCause.NO_ANSWER: (408, "Request Timeout"),
    FailureCause.REJECTED: (603, "Decline"),
    FailureCause.UNREACHABLE: (480, "Temporarily Unavailable"),
    FailureCause.INVALID_TARGET: (404, "Not Found"),
    RejectReason.UNKNOWN_NUMBER: (404, "Not Found"),
    RejectReason.FORBIDDEN: (403, "Forbidden"),
    OutcomeCause.SELF_TARGET: (403, "Forbidden"),
    OutcomeCause.TOO_LONG: (484, "Address Incomplete"),
    OutcomeCause.NO_NUMBER: (484, "Address Incomplete"),
    OutcomeCause.CLIENT_HUNG_UP: (487, "Request Terminated"),
    OutcomeCause.TRANSFEROR_HUNG_UP: (487, "Request Terminated"),
    OutcomeCause.TRANSFEROR_RETURNED: (487, "Request Terminated"),
    OutcomeCause.TARGET_HUNG_UP: (487, "Request Terminated"),
    RefusalReason.TRANSFER_IN_PROGRESS: (491, "Request Pending"),
    RefusalReason.CONFERENCE_ACTIVE: (491, "Request Pending"),
    RefusalReason.NO_TRANSFEROR: (403, "Forbidden"),
    RefusalReason.CONVERSATION_ENDED: (481, "Call/Transaction Does Not Exist"),
}
_FAILED = (500, "Server Internal Error")  # a resolution timeout, a media failure


@dataclass
class Referral:
    """The subscription a REFER created: the transfer it started and what its phone was told."""

    transfer_id: str
    #: The last status sent (0: none yet).
    sent: int = 0
    done: bool = False


def final_status(kind: OutcomeKind, cause: Cause | None) -> tuple[int, str]:
    if kind in (OutcomeKind.COMPLETED, OutcomeKind.CONFERENCED):
        return OK
    return _CAUSE_STATUS.get(cause, _FAILED) if cause is not None else _FAILED


def refusal_status(reason: RefusalReason | Cause) -> tuple[int, str]:
    return _CAUSE_STATUS.get(reason, _FAILED)


def progress(referral: Referral | None, transfer_id: str | None, transfer_cause: Cause | None,
             steps: Sequence[tuple[State, Stimulus, State]], out: Sequence[Action]) -> list[NotifyReferrer]:
    """The NOTIFYs one ``handle`` owes the referrer, in order; `referral` is updated.

    `transfer_id` / `transfer_cause`: the running transfer after the handle (None once it ended); a cause
    set while it still runs (B failed, a fallback begins) is already final for the REFER."""
    notes = _referral_progress(referral, transfer_id, transfer_cause, steps, out)
    if not any(note.final for note in notes):
        # a REFER the machine did not take (a transfer already running, A's own number...)
        notes += [NotifyReferrer(*refusal_status(action.reason), final=True) for action in out
                  if isinstance(action, TransferRefused) and action.trigger is TransferTrigger.REFER]
    return notes


def _referral_progress(referral: Referral | None, transfer_id: str | None, transfer_cause: Cause | None,
                       steps: Sequence[tuple[State, Stimulus, State]], out: Sequence[Action]) -> list[NotifyReferrer]:
    notes: list[NotifyReferrer] = []
    if referral is None or referral.done:
        return notes
    final: tuple[int, str] | None = None
    for action in out:
        if isinstance(action, RecordOutcome) and action.transfer_id == referral.transfer_id:
            final = final_status(action.kind, action.cause)
    if final is None and transfer_id == referral.transfer_id and transfer_cause is not None:
        final = final_status(OutcomeKind.FAILED, transfer_cause)
    if final is not None:
        referral.done, referral.sent = True, final[0]
        notes.append(NotifyReferrer(*final, final=True))
        return notes
    if referral.sent < TRYING[0]:
        referral.sent = TRYING[0]
        notes.append(NotifyReferrer(*TRYING, final=False))
    if referral.sent < RINGING[0] and any(stimulus is Stimulus.TARGET_RINGING for _, stimulus, _ in steps):
        referral.sent = RINGING[0]
        notes.append(NotifyReferrer(*RINGING, final=False))
    return notes

"""What events mean: the classification tables that turn an event into a stimulus.

Who sent it (a BYE from the client is ``CLIENT_HUNG_UP``, from A
``TRANSFEROR_HUNG_UP``), which talk options are active in which state, which
timer purpose fires which stimulus, and how the service's ``ActionFailed`` is
read.  :class:`~controller.core.conversation.Conversation` applies them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .events import LegAnswered, LegEvent, LegFailed, LegHungUp, LegRinging
from .states import ConversationState, LegSignal, State, Stimulus, TransferState
from .types import LegRole, TimerPurpose

__all__ = [
    "ACTIVE_KEYS",
    "AWAITING_RESOLUTION",
    "BOOKKEEPING",
    "KEY_STIMULUS",
    "NUMBER_DIGITS",
    "ORIGINATIONS",
    "PASSES_DIGITS",
    "ROLE_STIMULUS",
    "SIGNAL_OF",
    "TIMER_STIMULUS",
    "TRANSFER_ID",
    "far_end_stimulus",
]

_C, _T, _S = ConversationState, TransferState, Stimulus

#: States in which the service's answer to a resolution (``TargetResolved`` / ``TargetRejected``) counts.
AWAITING_RESOLUTION = frozenset({_T.RESOLVING, _T.ROUTING_TO_ORIGIN})
NUMBER_DIGITS = frozenset("0123456789")
TRANSFER_ID = re.compile(r"t([1-9][0-9]*)")

#: Which talk options are active in which effective state.
ACTIVE_KEYS: Mapping[State, tuple[str, ...]] = {
    _C.TALKING: ("transfer",),
    _T.COLLECTING: ("back",),
    _T.RESOLVING: ("back",),
    _T.RINGING: ("back",),
    _T.FAR_END_CALLING: ("back",),
    _T.CONSULTING: ("back", "conference"),
    _C.CONFERENCE: ("back",),
}
KEY_STIMULUS = {"transfer": _S.TRANSFER_KEY, "back": _S.BACK_KEY, "conference": _S.CONFERENCE_KEY}
#: States in which the transferor talks to a person, who should get the digits that are no talk option.
PASSES_DIGITS = frozenset({_C.TALKING, _T.CONSULTING})

TIMER_STIMULUS: Mapping[TimerPurpose, Stimulus] = {
    TimerPurpose.INTERDIGIT: _S.DIGIT_TIMEOUT,
    TimerPurpose.RESOLVE: _S.RESOLVE_TIMEOUT,
    TimerPurpose.NO_ANSWER: _S.NO_ANSWER_TIMEOUT,
    TimerPurpose.RECALL: _S.RECALL_TIMEOUT,
    TimerPurpose.PROMPT: _S.PROMPT_TIMEOUT,
    TimerPurpose.RECORDING: _S.RECORDING_TIMEOUT,
}
SIGNAL_OF: Mapping[type[LegEvent], LegSignal] = {
    LegRinging: LegSignal.RINGING,
    LegAnswered: LegSignal.ANSWERED,
    LegFailed: LegSignal.FAILED,
    LegHungUp: LegSignal.HUNG_UP,
}
ROLE_STIMULUS: Mapping[tuple[LegRole, LegSignal], Stimulus] = {
    (LegRole.CLIENT, LegSignal.HUNG_UP): _S.CLIENT_HUNG_UP,
    (LegRole.TRANSFEROR, LegSignal.HUNG_UP): _S.TRANSFEROR_HUNG_UP,
    (LegRole.PEER, LegSignal.HUNG_UP): _S.PEER_HUNG_UP,
    (LegRole.TARGET, LegSignal.RINGING): _S.TARGET_RINGING,
    (LegRole.TARGET, LegSignal.ANSWERED): _S.TARGET_ANSWERED,
    (LegRole.TARGET, LegSignal.FAILED): _S.TARGET_FAILED,
    (LegRole.TARGET, LegSignal.HUNG_UP): _S.TARGET_HUNG_UP,
    (LegRole.RECALL, LegSignal.RINGING): _S.RECALL_RINGING,
    (LegRole.RECALL, LegSignal.ANSWERED): _S.RECALL_ANSWERED,
    (LegRole.RECALL, LegSignal.FAILED): _S.RECALL_FAILED,
}

def far_end_stimulus(status: int) -> Stimulus | None:
    """What a NOTIFY of the client's trunk (``FarEndNotified``) means: 100-179 nothing yet (it accepted),
    18x B rings, 2xx B answered, anything else (and 0, a REFER that never left) B cannot be reached."""
    if 100 <= status < 180:
        return None
    if 180 <= status < 200:
        return _S.TARGET_RINGING
    return _S.TARGET_ANSWERED if 200 <= status < 300 else _S.TARGET_FAILED


#: ActionFailed: a failed origination is an unreachable target; failed bookkeeping changes nothing.
ORIGINATIONS = frozenset({"OriginateLeg", "RingTransferor"})
#: A NOTIFY that did not reach the REFER's phone, or a replaced dialog already gone, changes nothing
#: for the parties either.
BOOKKEEPING = frozenset({"RecordOutcome", "TransferRefused", "CancelTimer", "EndConversation", "EndLeg",
                          "SetDialogTakeover", "NotifyReferrer", "EndReplacedDialog"})

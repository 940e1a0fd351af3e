"""Small value enums shared by events, actions, settings and the machine.

They are :class:`enum.StrEnum` so that a value read from JSON or YAML
(``"incoming"``, ``"trunk"``...) compares equal to the member and
serialises as the plain string.
"""

from __future__ import annotations

import enum

__all__ = [
    "CallerIdPolicy",
    "Cause",
    "Direction",
    "EndReason",
    "FailureCause",
    "FallbackRule",
    "LegRole",
    "LegState",
    "OutcomeCause",
    "OutcomeKind",
    "OutcomeMode",
    "RefusalReason",
    "RejectReason",
    "TargetKind",
    "TimerPurpose",
    "TransferTrigger",
]


class Direction(enum.StrEnum):
    """Who placed the client call: the client (``incoming``) or employee A (``outgoing``)."""

    INCOMING = "incoming"
    OUTGOING = "outgoing"


class TargetKind(enum.StrEnum):
    """How a transfer target is reached.

    A SIM of an employee (mobile extension in the carrier core) counts as
    ``extension``; anything dialled out over the carrier trunk to an outside
    number is ``trunk``.
    """

    EXTENSION = "extension"
    DEPARTMENT = "department"
    SIP_URI = "sip_uri"
    TRUNK = "trunk"


class CallerIdPolicy(enum.StrEnum):
    """Which number B sees (see :func:`controller.core.callerid.caller_id_for_target`)."""

    DID = "did"
    CLIENT = "client"
    COMPANY = "company"


class FallbackRule(enum.StrEnum):
    """What happens to the client when B fails after A has left."""

    RETURN_TO_TRANSFEROR = "return_to_transferor"
    APOLOGIZE = "apologize"
    VOICEMAIL = "voicemail"


class FailureCause(enum.StrEnum):
    """Why the transfer target could not be reached."""

    NO_ANSWER = "no_answer"
    BUSY = "busy"
    REJECTED = "rejected"
    UNREACHABLE = "unreachable"
    #: The number could not be resolved (or only to A / the client) after A had left.
    INVALID_TARGET = "invalid_target"


class RejectReason(enum.StrEnum):
    """Why the service refused to resolve a number (``TargetRejected``)."""

    UNKNOWN_NUMBER = "unknown_number"
    FORBIDDEN = "forbidden"


class TransferTrigger(enum.StrEnum):
    """Where a transfer request came from; all of them become ``TransferRequested``."""

    DTMF = "dtmf"
    REFER = "refer"
    API = "api"


class OutcomeKind(enum.StrEnum):
    """Kinds of ``RecordOutcome`` entries; exactly one is recorded per transfer."""

    #: Client and B are connected, A has left (``mode``: attended / blind).
    COMPLETED = "completed"
    #: A, B and the client are in a three-way conference.
    CONFERENCED = "conferenced"
    #: A (or a hang-up, or a media failure) aborted the transfer before it completed.
    CANCELLED = "cancelled"
    #: B failed and the client was reconnected to A (on the line or rung again).
    RETURNED = "returned"
    #: B failed and the client was apologised to, sent to voicemail or back to its origin.
    FAILED = "failed"
    #: The number was unknown, forbidden or A / the client themself.
    REFUSED = "refused"


class LegRole(enum.StrEnum):
    """The part a SIP dialog plays in the conversation."""

    CLIENT = "client"
    TRANSFEROR = "transferor"
    #: One branch of an originated transfer target (several for a department).
    TARGET = "target"
    #: A being rung again after a failed blind transfer.
    RECALL = "recall"
    #: A party connected to the client without talk options (outside number, conference member).
    PEER = "peer"


class LegState(enum.StrEnum):
    """What the machine knows about one SIP dialog."""

    TRYING = "trying"
    RINGING = "ringing"
    UP = "up"
    #: CANCEL sent; waiting for the 487 (or a crossing 200 that must be BYEd).
    CANCELLING = "cancelling"
    ENDED = "ended"


class OutcomeCause(enum.StrEnum):
    """Causes of a ``RecordOutcome`` other than a :class:`FailureCause` or a :class:`RejectReason`."""

    SELF_TARGET = "self_target"
    NO_NUMBER = "no_number"
    RESOLVE_TIMEOUT = "resolve_timeout"
    TRANSFEROR_RETURNED = "transferor_returned"
    TRANSFEROR_HUNG_UP = "transferor_hung_up"
    CLIENT_HUNG_UP = "client_hung_up"
    TARGET_HUNG_UP = "target_hung_up"
    MEDIA_FAILURE = "media_failure"
    #: More digits came than the tenant's longest number (``numbering.Refusal.TOO_LONG``).
    TOO_LONG = "too_long"


#: Every cause a transfer outcome can carry.
Cause = OutcomeCause | FailureCause | RejectReason


class OutcomeMode(enum.StrEnum):
    """How a transfer ended (``RecordOutcome.mode``)."""

    ATTENDED = "attended"
    BLIND = "blind"
    TRANSFEROR_ON_LINE = "transferor_on_line"
    RECALLED = "recalled"
    APOLOGY = "apology"
    VOICEMAIL = "voicemail"
    ORIGIN = "origin"
    CLIENT_HUNG_UP = "client_hung_up"
    #: The client's trunk called B itself (a REFER) and reported success.
    FAR_END = "far_end"


class TimerPurpose(enum.StrEnum):
    """What a timer guards; the middle part of its name ``<conversation>/<purpose>/<n>``."""

    INTERDIGIT = "interdigit"
    RESOLVE = "resolve"
    NO_ANSWER = "no_answer"
    RECALL = "recall"
    PROMPT = "prompt"
    RECORDING = "recording"


class EndReason(enum.StrEnum):
    """Why a leg is released (``EndLeg.reason``) or the conversation ends (``EndConversation.reason``)."""

    CLIENT_HUNG_UP = "client_hung_up"
    TRANSFEROR_HUNG_UP = "transferor_hung_up"
    PEER_HUNG_UP = "peer_hung_up"
    TRANSFEROR_RETURNED = "transferor_returned"
    MEDIA_FAILURE = "media_failure"
    TRANSFER_FAILED = "transfer_failed"
    VOICEMAIL_MAX_LENGTH = "voicemail_max_length"
    #: A branch lost the race to another one.
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    TARGET_FAILED = "target_failed"
    NO_ANSWER = "no_answer"
    #: A 200 OK crossed our CANCEL.
    CANCELLED = "cancelled"
    #: The client's trunk connected the client to B itself (a REFER): the PBX's part is over.
    TRANSFERRED = "transferred"


class RefusalReason(enum.StrEnum):
    """Why a ``TransferRequested`` was refused (``TransferRefused.reason``) besides an outcome cause."""

    TRANSFER_IN_PROGRESS = "transfer_in_progress"
    CONFERENCE_ACTIVE = "conference_active"
    NO_TRANSFEROR = "no_transferor"
    CONVERSATION_ENDED = "conversation_ended"

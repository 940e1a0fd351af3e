"""A REFER in a call's dialog (RFC 3515), checked by Kamailio's Python before anyone acts on it (pure).

Kamailio hands over what it saw: the dialog's tags, the request's From-tag, Refer-To, Referred-By and
the conversation's record. The answer is the REFER's final response: 202 (the transfer engine gets
a `transfer.refer` notification and tells the phone its progress in NOTIFYs) or a refusal, after
which the conversation goes on as it was:

    403  the REFER did not come from the employee's side of the call (the client's side, often a
         trunk, never transfers), the call has no conversation or is not talking, or Refer-To names a
         host that is not this PBX (a REFER never makes the node call a stranger's URI)
    400  Refer-To missing or unreadable, or its user part is no number
    400  Refer-To with a Replaces that names no dialog (a Call-ID, to-tag and from-tag, in either order)
    491  a transfer is already running (checked by the script: the dialog is taken over)

Refer-To is accepted as `<sip:102@pbx>`, `sip:102@pbx`, `<sip:102@pbx;user=phone>`, `<tel:+4930...>`,
`tel:102`, `<sip:102>` or a bare `102`; the number is judged later by the tenant's dial policy exactly
like digits after `#` (unknown → NOTIFY 404, forbidden → NOTIFY 403). An attended transfer's
`?Replaces=<call-id>%3Bto-tag%3D…%3Bfrom-tag%3D…` (RFC 3891) is passed on checked and normalised; the
controller checks the dialog it names (NOTIFY 481 when it is unknown, ended or not A's).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = ["MAX_HEADER", "ReferCheck", "ReferDecision", "check_refer", "employee_sent", "far_end_status",
           "parse_refer_to",
           "parse_replaces"]

#: Longer Refer-To / Referred-By values are not a transfer we act on (and would grow logs and Redis).
MAX_HEADER = 512
_NUMBER_RE = re.compile(r"\+?[0-9]{2,32}")
_URI_RE = re.compile(r"(?P<scheme>sips?|tel):(?P<rest>[^\s<>]*)", re.IGNORECASE)
_TALKING = ("answered", "routing")


@dataclass(frozen=True, slots=True)
class ReferDecision:
    code: int
    reason: str
    number: str = ""
    referred_by: str = ""
    replaces: str = ""  # "<call-id>;to-tag=<tag>;from-tag=<tag>", or "" for a blind REFER

    @property
    def accepted(self) -> bool:
        return self.code == 202


@dataclass(frozen=True, slots=True)
class ReferTo:
    number: str
    host: str  # "" for tel: and user-only forms
    replaces: str = ""  # normalised Replaces value (an attended transfer), "" for none


# What may go into the Replaces header of our INVITE to B: no separators, no whitespace, no CR/LF.
_CALL_ID_RE = re.compile(r"[A-Za-z0-9.!%*_+`'~()<>:\\\"/\[\]?{}@-]{1,256}")
_TAG_RE = re.compile(r"[A-Za-z0-9.!%*_+`'~-]{1,128}")


def parse_replaces(value: str) -> str:
    """A Replaces value as `<call-id>;to-tag=<tag>;from-tag=<tag>` (its parameters in either order;
    early-only and unknown ones dropped); BadReferTo when it names no dialog."""
    call_id, *params = unquote(value).split(";")
    tags: dict[str, str] = {}
    for param in params:
        name, _, tag = param.partition("=")
        tags[name.strip().lower()] = tag.strip()
    to_tag, from_tag = tags.get("to-tag", ""), tags.get("from-tag", "")
    call_id = call_id.strip()
    if not (_CALL_ID_RE.fullmatch(call_id) and _TAG_RE.fullmatch(to_tag) and _TAG_RE.fullmatch(from_tag)):
        raise BadReferTo("Replaces names no dialog")
    return f"{call_id};to-tag={to_tag};from-tag={from_tag}"


class BadReferTo(ValueError):
    pass


def parse_refer_to(value: str) -> ReferTo:
    """The number and host a Refer-To names; BadReferTo when it names none."""
    value = value.strip()
    if not value or len(value) > MAX_HEADER:
        raise BadReferTo("missing or too long")
    if "<" in value:
        inner, closed, _ = value.partition("<")[2].partition(">")
        if not closed:
            raise BadReferTo("unbalanced angle brackets")
        value = inner.strip()
    match = _URI_RE.fullmatch(value)
    if match is None:
        if _NUMBER_RE.fullmatch(value):
            return ReferTo(value, "")  # a bare number
        raise BadReferTo("not a sip:, sips: or tel: URI")
    scheme, rest = match["scheme"].lower(), match["rest"]
    rest, _, headers = rest.partition("?")
    replaces = ""
    for header in headers.split("&") if headers else ():
        name, _, value = header.partition("=")
        if name.strip().lower() == "replaces":
            replaces = parse_replaces(value)
    if scheme == "tel":
        user, host = rest, ""
    else:
        user, at, host = rest.rpartition("@")
        if not at:
            user, host = host, ""
        # URI parameters (user=phone, transport...) say nothing of the number
        host = host.split(";", 1)[0].split(":", 1)[0].strip("[]").lower()
        if at and not host:
            raise BadReferTo("an empty host")
    user = user.split(";", 1)[0]  # a tel: or user part's own parameters (phone-context...)
    number = unquote(user).replace("-", "").replace(".", "").replace(" ", "")
    if not _NUMBER_RE.fullmatch(number):
        raise BadReferTo("the user part is no number")
    return ReferTo(number, host, replaces)


@dataclass(frozen=True, slots=True)
class ReferCheck:
    """What Kamailio knows of a REFER."""

    by_tag: str  # the REFER's From-tag: which side sent it
    dialog_from_tag: str  # the dialog's caller-side tag
    refer_to: str
    referred_by: str
    record: Mapping[str, str]  # the conversation's record ({} if none)
    our_hosts: Collection[str]  # the tenant's domain and the address the REFER came in on


def employee_sent(record: Mapping[str, str], by_tag: str, dialog_from_tag: str) -> bool:
    """Whether a request in a call's dialog came from the employee's side of a talking conversation with
    a client: the callee of an incoming call, the caller of an outgoing one (by From-tag)."""
    direction = record.get("direction", "")
    if direction not in ("incoming", "outgoing") or record.get("state") not in _TALKING:
        return False  # no client (an internal call), or not talking
    return (by_tag == dialog_from_tag) == (direction == "outgoing")


def check_refer(check: ReferCheck) -> ReferDecision:
    if not employee_sent(check.record, check.by_tag, check.dialog_from_tag):
        # the client's side (a trunk never transfers our employee), no client, or not talking
        return ReferDecision(403, "Forbidden")
    try:
        target = parse_refer_to(check.refer_to)
    except BadReferTo:
        return ReferDecision(400, "Bad Refer-To")
    if target.host and target.host not in check.our_hosts:
        return ReferDecision(403, "Forbidden")
    return ReferDecision(202, "Accepted", target.number, check.referred_by[:MAX_HEADER], target.replaces)


_SIPFRAG_STATUS = re.compile(r"\s*SIP/2\.0 ([1-6][0-9]{2})(?: |\r|\n|$)")


def far_end_status(method: str, body: str) -> int | None:
    """What the client's trunk said of the REFER this node sent it: the status line of a NOTIFY's
    ``message/sipfrag`` body (RFC 3515). None for anything else (another request, a body that is no
    status line): the tenant's no-answer time decides then."""
    if method != "NOTIFY":
        return None
    match = _SIPFRAG_STATUS.match(body[:MAX_HEADER])
    return int(match.group(1)) if match else None

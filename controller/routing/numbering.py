"""A tenant's numbering plan: how its employees write outside numbers, and which of them may be dialled.

Pure, stdlib only (Kamailio's Python loads it with the routing table): no I/O. Routing asks it wherever
a number would leave through the trunk (an employee's own call or a transfer), so toll fraud through a
transfer (premium-rate ranges, other countries, a number longer than E.164 allows slipped past a check
that would cut it short) is refused in one place.

A dialled number is read in this order; the first reading that fits wins:

    +<digits>                              already E.164             +79161234567
    <international prefix><digits>         another country           810 1 212 555 1234 -> +12125551234
    <national prefix><national number>     the tenant's country      8 916 123 45 67    -> +79161234567
    <country code><national number>        the same without the '+'  7 916 123 45 67    -> +79161234567
    <national number>                      the same, bare            916 123 45 67      -> +79161234567

The international prefix is tried before the national one because national plans never start a
national number with it (Russia's 810 begins with its national prefix 8; no Russian number begins
with 10). A number of the tenant's own country must have one of the plan's national lengths; any
E.164 number has 7..15 digits and a country code that does not start with 0. A number longer than
that is refused, never truncated.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

E164_MAX_DIGITS = 15
# the shortest numbers in service: a 3-digit country code and a 4-digit subscriber number (Niue, +683)
E164_MIN_DIGITS = 7

# What routing hands to the plan: an optional '+' and at least 3 digits (shorter is no phone number).
DIALLED_RE = re.compile(r"\+?[0-9]{3,}")
_DIGITS_RE = re.compile(r"[0-9]+")
COUNTRY_CODE_RE = r"[1-9][0-9]{0,2}"

# Denied by default in every country, even where a tenant allows more: non-geographic codes with high
# termination rates, the usual destinations of international revenue-share fraud.
GENERIC_DENIED: tuple[str, ...] = (
    "+870",  # Inmarsat
    "+881",  # global mobile satellite systems (Iridium, Globalstar...)
    "+882",  # international networks
    "+883",  # international networks
    "+979",  # international premium-rate service
)
# Premium-rate and otherwise expensive ranges inside a country code, by country code.
DENIED_BY_COUNTRY: dict[str, tuple[str, ...]] = {
    "7": (
        "+76",  # Kazakhstan shares +7: dialled like a Russian number, charged as international
        "+77",
        "+7803",  # paid information and entertainment services
        "+7809",  # premium rate
    ),
}


def default_allowed(country_code: str) -> list[str]:
    """Outside calls and transfers stay in the tenant's own country unless it lists more."""
    return [f"+{country_code}"]


def default_denied(country_code: str) -> list[str]:
    return [*GENERIC_DENIED, *DENIED_BY_COUNTRY.get(country_code, ())]


class Plan(Protocol):
    """What the rules below read of a numbering plan: the configuration's model
    (controller.numbering_plan.NumberingPlan) and the routing table's PlanRules both are one."""

    country_code: str
    national_prefix: str
    international_prefix: str
    national_number_lengths: Sequence[int]
    allowed_prefixes: Sequence[str]
    denied_prefixes: Sequence[str]


@dataclass(frozen=True, slots=True)
class PlanRules:
    """A numbering plan as plain data, for the routing table (the configuration validated it)."""

    country_code: str = "7"
    national_prefix: str = "8"
    international_prefix: str = "810"
    national_number_lengths: tuple[int, ...] = (10,)
    allowed_prefixes: tuple[str, ...] = ("+7",)
    denied_prefixes: tuple[str, ...] = ()


class Refusal(enum.StrEnum):
    """Why a written phone number may not be dialled out."""

    TOO_LONG = "too_long"  # more digits than any E.164 number has: refused, never cut short
    WRONG_LENGTH = "wrong_length"  # no reading of the plan fits its length
    DENIED = "denied_prefix"  # in denied_prefixes
    NOT_ALLOWED = "not_allowed"  # in none of allowed_prefixes
    OWN_NUMBER = "own_number"  # a number of the conversation itself or of the tenant: a loop

    @property
    def malformed(self) -> bool:
        """Mistyped rather than forbidden: the number cannot be a number at all."""
        return self in (Refusal.TOO_LONG, Refusal.WRONG_LENGTH)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the plan says about a dialled phone number: its E.164 form, and whether it may go out."""

    number: str | None  # E.164, when the dialled text reads as one
    refusal: Refusal | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None


def _read(plan: Plan, dialled: str) -> str | Refusal | None:
    """The E.164 form of `dialled`, or why it has none; None when it is no phone number at all."""
    international = dialled.startswith("+")
    digits = dialled[1:] if international else dialled
    if not _DIGITS_RE.fullmatch(digits):
        return None
    if not international and digits.startswith(plan.international_prefix):
        international, digits = True, digits[len(plan.international_prefix):]
    if international:
        return _international(plan, digits)
    return _national(plan, digits)


def _international(plan: Plan, digits: str) -> str | Refusal | None:
    if digits.startswith("0"):
        return None  # no country code starts with 0
    if len(digits) > E164_MAX_DIGITS:
        return Refusal.TOO_LONG
    if len(digits) < E164_MIN_DIGITS:
        return Refusal.WRONG_LENGTH
    # country codes are prefix-free, so a number starting with the tenant's code is of its country
    country = plan.country_code
    if digits.startswith(country) and len(digits) - len(country) not in plan.national_number_lengths:
        return Refusal.WRONG_LENGTH
    return f"+{digits}"


def _national(plan: Plan, digits: str) -> str | Refusal:
    prefix, country, lengths = plan.national_prefix, plan.country_code, plan.national_number_lengths
    if prefix and digits.startswith(prefix) and len(digits) - len(prefix) in lengths:
        return f"+{country}{digits[len(prefix):]}"
    if digits.startswith(country) and len(digits) - len(country) in lengths:
        return f"+{digits}"
    if len(digits) in lengths:
        return f"+{country}{digits}"
    # too long: not even the shortest E.164 form any reading would give fits in 15 digits
    shortest = len(country) + len(digits)
    if prefix and digits.startswith(prefix):
        shortest -= len(prefix)
    if digits.startswith(country):
        shortest = min(shortest, len(digits))
    return Refusal.TOO_LONG if shortest > E164_MAX_DIGITS else Refusal.WRONG_LENGTH


def normalise(plan: Plan, dialled: str) -> str | None:
    """The E.164 form ("+<digits>") of an outside number however it is written; None when `dialled`
    is no phone number of the plan (letters, wrong length, longer than E.164 allows)."""
    read = _read(plan, dialled)
    return None if read is None or isinstance(read, Refusal) else read  # a Refusal is a str too


def check_outside(plan: Plan, dialled: str) -> Verdict | None:
    """Whether `dialled` may leave through the trunk; None when it is no phone number at all."""
    read = _read(plan, dialled)
    if read is None:
        return None
    if isinstance(read, Refusal):
        return Verdict(None, read)
    if read.startswith(tuple(plan.denied_prefixes)):
        return Verdict(read, Refusal.DENIED)
    if not read.startswith(tuple(plan.allowed_prefixes)):
        return Verdict(read, Refusal.NOT_ALLOWED)
    return Verdict(read)


def same_number(plan: Plan, a: str, b: str) -> bool:
    """Whether `a` and `b` name one number however each is written (79161234567, +79161234567 and
    89161234567 do). Text that is no phone number of the plan (an extension, a SIP user) must be equal."""
    e164_a, e164_b = normalise(plan, a), normalise(plan, b)
    if e164_a is not None or e164_b is not None:
        return e164_a == e164_b
    text = a.removeprefix("+")
    return bool(text) and text == b.removeprefix("+")


def is_own_number(plan: Plan, number: str, own: Iterable[str]) -> bool:
    """Whether `number` is one of `own` (the conversation's parties, the tenant's DIDs) in any form."""
    return any(same_number(plan, number, mine) for mine in own if mine)

"""A tenant's numbering plan: how its employees write outside numbers, and which of them may be dialled.

Pure: no I/O. Routing asks it wherever a number would leave through the trunk (an employee's own call
or a transfer), so toll fraud through a transfer (premium-rate ranges, other countries, a number
longer than E.164 allows slipped past a check that would cut it short) is refused in one place.

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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

E164_MAX_DIGITS = 15
# the shortest numbers in service: a 3-digit country code and a 4-digit subscriber number (Niue, +683)
E164_MIN_DIGITS = 7

# What routing hands to the plan: an optional '+' and at least 3 digits (shorter is no phone number).
DIALLED_RE = re.compile(r"\+?[0-9]{3,}")
_DIGITS_RE = re.compile(r"[0-9]+")
_COUNTRY_CODE = r"[1-9][0-9]{0,2}"

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


def _spelled(pattern: str, what: str) -> BeforeValidator:
    regex = re.compile(pattern)

    def check(value: Any) -> str:
        # YAML reads 00 as 0, 810 as an int and +7 as 7: prefixes must be quoted to keep their digits
        if not isinstance(value, str):
            raise ValueError(f"must be a quoted string in YAML (got {type(value).__name__} {value!r})")
        if not regex.fullmatch(value):
            raise ValueError(f"{what} (got {value!r})")
        return value

    return BeforeValidator(check)


CountryCode = Annotated[str, _spelled(_COUNTRY_CODE, "must be a country calling code: 1..3 digits, no leading 0")]
NationalPrefix = Annotated[str, _spelled(r"[0-9]{0,3}", "must be 0..3 digits ('' when the country has none)")]
InternationalPrefix = Annotated[str, _spelled(r"[0-9]{1,4}", "must be 1..4 digits")]
E164Prefix = Annotated[str, _spelled(r"\+[0-9]{0,15}", "must be '+' and up to 15 digits, e.g. '+7' or '+7809'")]
NationalLength = Annotated[int, Field(ge=4, le=14)]


class NumberingPlan(BaseModel):
    """How a tenant's outside numbers are written, and where they may go. The defaults are Russia's."""

    model_config = ConfigDict(extra="forbid", frozen=True)  # as config.py's models: a typo is an error

    country_code: CountryCode = "7"
    national_prefix: NationalPrefix = "8"
    international_prefix: InternationalPrefix = "810"
    national_number_lengths: list[NationalLength] = Field(default=[10], min_length=1)
    # default: the tenant's own country (derived from country_code when not given)
    allowed_prefixes: list[E164Prefix] = default_allowed("7")
    # default: GENERIC_DENIED and the country's DENIED_BY_COUNTRY; a denied prefix wins over an allowed one
    denied_prefixes: list[E164Prefix] = default_denied("7")
    # 0: no transfers to outside numbers at all
    max_outside_transfers_concurrent: int = Field(default=10, ge=0, le=10000)
    max_outside_transfers_per_minute: int = Field(default=30, ge=0, le=10000)

    @model_validator(mode="before")
    @classmethod
    def _country_defaults(cls, data: Any) -> Any:
        """A plan for another country gets that country's prefix lists unless it gives its own."""
        if not isinstance(data, dict):
            return data
        country = data.get("country_code")
        if not isinstance(country, str) or not re.fullmatch(_COUNTRY_CODE, country):
            return data  # no country given, or a wrong one that the field reports
        return {"allowed_prefixes": default_allowed(country), "denied_prefixes": default_denied(country)} | data

    @field_validator("international_prefix")
    @classmethod
    def _prefixes_differ(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("national_prefix"):
            raise ValueError(f"must differ from national_prefix ({value!r})")
        return value

    @field_validator("national_number_lengths")
    @classmethod
    def _fits_e164(cls, value: list[int], info: ValidationInfo) -> list[int]:
        country = info.data.get("country_code")
        if country is not None:
            longest = E164_MAX_DIGITS - len(country)
            too_long = [length for length in value if length > longest]
            if too_long:
                raise ValueError(f"{too_long[0]} digits after country code {country!r} exceed E.164's "
                                 f"{E164_MAX_DIGITS} (at most {longest})")
        return value


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


def _read(plan: NumberingPlan, dialled: str) -> str | Refusal | None:
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


def _international(plan: NumberingPlan, digits: str) -> str | Refusal | None:
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


def _national(plan: NumberingPlan, digits: str) -> str | Refusal:
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


def normalise(plan: NumberingPlan, dialled: str) -> str | None:
    """The E.164 form ("+<digits>") of an outside number however it is written; None when `dialled`
    is no phone number of the plan (letters, wrong length, longer than E.164 allows)."""
    read = _read(plan, dialled)
    return None if read is None or isinstance(read, Refusal) else read  # a Refusal is a str too


def check_outside(plan: NumberingPlan, dialled: str) -> Verdict | None:
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


def same_number(plan: NumberingPlan, a: str, b: str) -> bool:
    """Whether `a` and `b` name one number however each is written (79161234567, +79161234567 and
    89161234567 do). Text that is no phone number of the plan (an extension, a SIP user) must be equal."""
    e164_a, e164_b = normalise(plan, a), normalise(plan, b)
    if e164_a is not None or e164_b is not None:
        return e164_a == e164_b
    text = a.removeprefix("+")
    return bool(text) and text == b.removeprefix("+")


def is_own_number(plan: NumberingPlan, number: str, own: Iterable[str]) -> bool:
    """Whether `number` is one of `own` (the conversation's parties, the tenant's DIDs) in any form."""
    return any(same_number(plan, number, mine) for mine in own if mine)

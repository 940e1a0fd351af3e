"""The configuration's model of a tenant's numbering plan (validated; errors name the field).

The rules that read a plan are controller.routing.numbering's; the routing table carries a plan as
plain data (`rules()`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from controller.routing.numbering import (
    COUNTRY_CODE_RE,
    E164_MAX_DIGITS,
    PlanRules,
    default_allowed,
    default_denied,
)

__all__ = ["NumberingPlan"]


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


CountryCode = Annotated[str, _spelled(COUNTRY_CODE_RE, "must be a country calling code: 1..3 digits, no leading 0")]
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
        if not isinstance(country, str) or not re.fullmatch(COUNTRY_CODE_RE, country):
            return data  # no country given, or a wrong one that the field reports
        return {"allowed_prefixes": default_allowed(country), "denied_prefixes": default_denied(country)} | data

    @field_validator("international_prefix")
    @classmethod
    def _prefixes_differ(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("national_prefix"):
            raise ValueError(f"must differ from national_prefix ({value!r})")
        return value

    def rules(self) -> PlanRules:
        """The plan as the routing table carries it."""
        return PlanRules(self.country_code, self.national_prefix, self.international_prefix,
                         tuple(self.national_number_lengths), tuple(self.allowed_prefixes),
                         tuple(self.denied_prefixes))

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

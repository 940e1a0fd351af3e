"""A tenant's numbering plan: every written form of a number, and which numbers may go out."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.numbering_plan import NumberingPlan
from controller.routing.numbering import (
    DENIED_BY_COUNTRY,
    E164_MAX_DIGITS,
    GENERIC_DENIED,
    Refusal,
    Verdict,
    check_outside,
    default_denied,
    is_own_number,
    normalise,
    same_number,
)

RUSSIA = NumberingPlan()
GERMANY = NumberingPlan(country_code="49", national_prefix="0", international_prefix="00",
                        national_number_lengths=[10, 11])
NANP = NumberingPlan(country_code="1", national_prefix="1", international_prefix="011", national_number_lengths=[10])
SPAIN = NumberingPlan(country_code="34", national_prefix="", international_prefix="00", national_number_lengths=[9])
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


# ---------------------------------------------------------------------------------------------
# the model


def test_defaults_are_russias_and_safe() -> None:
    assert RUSSIA.model_dump() == {
        "country_code": "7",
        "national_prefix": "8",
        "international_prefix": "810",
        "national_number_lengths": [10],
        "allowed_prefixes": ["+7"],  # the own country only
        "denied_prefixes": ["+870", "+881", "+882", "+883", "+979", "+76", "+77", "+7803", "+7809"],
        "max_outside_transfers_concurrent": 10,
        "max_outside_transfers_per_minute": 30,
    }
    assert NumberingPlan.model_validate({}) == RUSSIA


def test_another_country_gets_its_own_lists_unless_it_gives_them() -> None:
    assert (GERMANY.allowed_prefixes, GERMANY.denied_prefixes) == (["+49"], list(GENERIC_DENIED))
    assert default_denied("7") == [*GENERIC_DENIED, *DENIED_BY_COUNTRY["7"]]
    plan = NumberingPlan(country_code="49", allowed_prefixes=["+49", "+43"], denied_prefixes=[])
    assert (plan.allowed_prefixes, plan.denied_prefixes) == (["+49", "+43"], [])
    # a wrong country code is reported once, on its own field, not as a bad derived prefix
    with pytest.raises(ValidationError) as caught:
        NumberingPlan(country_code="abc")
    assert [error["loc"] for error in caught.value.errors()] == [("country_code",)]


def test_the_plan_is_frozen_and_strict() -> None:
    with pytest.raises(ValidationError):
        RUSSIA.country_code = "49"  # type: ignore[misc]
    with pytest.raises(ValidationError) as caught:
        NumberingPlan.model_validate({"allowed_prefix": ["+7"]})  # a typo is an error, not a default
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize(("data", "field", "fragment"), [
    ({"country_code": 7}, "country_code", "quoted string"),  # YAML's +7 and 810 are ints
    ({"country_code": "0"}, "country_code", "no leading 0"),
    ({"country_code": "1234"}, "country_code", "1..3 digits"),
    ({"country_code": "+7"}, "country_code", "country calling code"),
    ({"national_prefix": 8}, "national_prefix", "quoted string"),
    ({"national_prefix": "8a"}, "national_prefix", "0..3 digits"),
    ({"international_prefix": 0}, "international_prefix", "quoted string"),  # YAML reads 00 as 0
    ({"international_prefix": ""}, "international_prefix", "1..4 digits"),
    ({"international_prefix": "8"}, "international_prefix", "must differ from national_prefix"),
    ({"national_number_lengths": []}, "national_number_lengths", "at least 1"),
    ({"national_number_lengths": [3]}, "national_number_lengths.0", "greater than or equal to 4"),
    ({"national_number_lengths": [15]}, "national_number_lengths.0", "less than or equal to 14"),
    ({"country_code": "49", "national_number_lengths": [14]}, "national_number_lengths", "at most 13"),
    ({"country_code": "380", "national_number_lengths": [9, 13]}, "national_number_lengths", "at most 12"),
    ({"allowed_prefixes": ["7"]}, "allowed_prefixes.0", "must be '+' and up to 15 digits"),
    ({"allowed_prefixes": ["+7", 7]}, "allowed_prefixes.1", "quoted string"),
    ({"denied_prefixes": ["+7 809"]}, "denied_prefixes.0", "'+' and up to 15 digits"),
    ({"denied_prefixes": ["+" + "1" * 16]}, "denied_prefixes.0", "up to 15 digits"),
    ({"max_outside_transfers_concurrent": -1}, "max_outside_transfers_concurrent", "greater than or equal to 0"),
    ({"max_outside_transfers_per_minute": 10001}, "max_outside_transfers_per_minute", "less than or equal"),
])
def test_invalid_plans_name_the_field(data: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        NumberingPlan.model_validate(data)
    found = [(".".join(map(str, e["loc"])), e["msg"]) for e in caught.value.errors()]
    assert any(loc == field and fragment in message for loc, message in found), found


@pytest.mark.parametrize("data", [
    {"national_prefix": ""},  # a country without a trunk prefix
    {"international_prefix": "00", "national_prefix": "0"},
    {"allowed_prefixes": []},  # nothing goes out
    {"allowed_prefixes": ["+"]},  # everything not denied goes out
    {"national_number_lengths": [9, 10]},
    {"max_outside_transfers_concurrent": 0, "max_outside_transfers_per_minute": 0},
])
def test_valid_plans(data: dict[str, Any]) -> None:
    assert isinstance(NumberingPlan.model_validate(data), NumberingPlan)


# ---------------------------------------------------------------------------------------------
# normalise: every written form of one number is one E.164 number


@pytest.mark.parametrize(("plan", "dialled", "e164"), [
    # Russia: '+', international prefix, national prefix, country code without '+', bare national
    (RUSSIA, "+79161234567", "+79161234567"),
    (RUSSIA, "81079161234567", "+79161234567"),
    (RUSSIA, "89161234567", "+79161234567"),
    (RUSSIA, "79161234567", "+79161234567"),
    (RUSSIA, "9161234567", "+79161234567"),
    (RUSSIA, "88001234567", "+78001234567"),  # toll-free: the national prefix before 800
    (RUSSIA, "8001234567", "+78001234567"),  # bare 800: a national number that starts with 8
    (RUSSIA, "7123456789", "+77123456789"),  # a bare national number that starts with 7
    (RUSSIA, "81012125551234", "+12125551234"),  # international, not national 8 + 10...
    (RUSSIA, "+12125551234", "+12125551234"),
    (RUSSIA, "+6834002", "+6834002"),  # the shortest E.164 numbers: 7 digits
    (RUSSIA, "+" + "4" * 15, "+" + "4" * 15),  # the longest: 15
    (GERMANY, "03012345678", "+493012345678"),
    (GERMANY, "00493012345678", "+493012345678"),
    (GERMANY, "493012345678", "+493012345678"),
    (GERMANY, "3012345678", "+493012345678"),
    (GERMANY, "030123456789", "+4930123456789"),  # 11 national digits
    (GERMANY, "301234567", None),  # 9 digits: no national number of this plan
    (NANP, "12125551234", "+12125551234"),  # the national prefix is the country code
    (NANP, "2125551234", "+12125551234"),
    (NANP, "01179161234567", "+79161234567"),
    (SPAIN, "912345678", "+34912345678"),  # no national prefix at all
    (SPAIN, "34912345678", "+34912345678"),
    (SPAIN, "0034912345678", "+34912345678"),
])
def test_written_forms(plan: NumberingPlan, dialled: str, e164: str | None) -> None:
    assert normalise(plan, dialled) == e164


@pytest.mark.parametrize("dialled", [
    "", "+", "++79161234567", "+0123456789", "8100123456789",  # no country code starts with 0
    "+7 916 123 45 67", "8(916)1234567", "tel:+79161234567", "abc", "100#", " 89161234567", "89161234567 ",
    "\u0668\u0669\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",  # Arabic-Indic digits: str.isdigit's
])
def test_what_is_no_phone_number(dialled: str) -> None:
    assert normalise(RUSSIA, dialled) is None
    assert check_outside(RUSSIA, dialled) is None


@pytest.mark.parametrize(("dialled", "refusal"), [
    ("+" + "7" * 16, Refusal.TOO_LONG),  # more than 15 digits: refused, never truncated
    ("810" + "1" * 16, Refusal.TOO_LONG),
    ("8" * 16, Refusal.TOO_LONG),  # the national prefix leaves 15 digits: +7 and 15 is 17
    ("7" * 16, Refusal.TOO_LONG),
    ("9" * 40, Refusal.TOO_LONG),
    ("8" * 15, Refusal.WRONG_LENGTH),  # +7 and 14 digits would fit E.164, but no Russian number is that long
    ("+7916123456", Refusal.WRONG_LENGTH),  # +7 wants 10 national digits
    ("+791612345678", Refusal.WRONG_LENGTH),
    ("+123456", Refusal.WRONG_LENGTH),  # 6 digits: shorter than any E.164 number
    ("810123", Refusal.WRONG_LENGTH),
    ("916123456", Refusal.WRONG_LENGTH),
    ("1040", Refusal.WRONG_LENGTH),
    ("112", Refusal.WRONG_LENGTH),  # service numbers go out through outside_short_numbers, not the plan
])
def test_malformed_numbers(dialled: str, refusal: Refusal) -> None:
    assert normalise(RUSSIA, dialled) is None
    assert check_outside(RUSSIA, dialled) == Verdict(None, refusal)
    assert refusal.malformed


# Russian national numbers start with 3, 4, 8 or 9, never with 810 (the international prefix, so 810 is
# always read as dialled abroad): the generator keeps to numbers that can exist
@given(national=st.from_regex(r"[2-9][0-9]{9}", fullmatch=True).filter(lambda n: not n.startswith("810")))
def test_every_form_of_a_russian_number_is_one_number(national: str) -> None:
    forms = [f"+7{national}", f"810 7{national}".replace(" ", ""), f"7{national}", f"8{national}", national]
    assert {normalise(RUSSIA, form) for form in forms} == {f"+7{national}"}
    assert all(same_number(RUSSIA, a, b) for a in forms for b in forms)


@given(dialled=st.from_regex(r"\+?[0-9]{0,40}", fullmatch=True),
       plan=st.sampled_from([RUSSIA, GERMANY, NANP, SPAIN]))
def test_normalise_gives_e164_or_nothing(dialled: str, plan: NumberingPlan) -> None:
    e164 = normalise(plan, dialled)
    if e164 is None:
        return
    assert E164.fullmatch(e164), e164  # never more than 15 digits, never a country code 0
    assert len(e164) - 1 <= E164_MAX_DIGITS
    assert normalise(plan, e164) == e164  # idempotent
    # no digit is lost or invented: the dialled digits end the E.164 number
    digits = dialled.removeprefix("+")
    assert e164.endswith(digits[-min(len(digits), len(e164) - 1 - len(plan.country_code)):])


# a bare number starting with 8 is national (8 10... international) in the Russian plan: those forms are above
@given(digits=st.from_regex(r"[2-79][0-9]{15,29}", fullmatch=True))
def test_over_long_numbers_are_refused_in_every_form(digits: str) -> None:
    for dialled in (f"+{digits}", f"810{digits}", f"8{digits}", digits):
        verdict = check_outside(RUSSIA, dialled)
        assert verdict is not None and verdict.number is None and verdict.refusal is Refusal.TOO_LONG, dialled


@given(dialled=st.from_regex(r"\+?[0-9]{16,40}", fullmatch=True),
       plan=st.sampled_from([RUSSIA, GERMANY, NANP, SPAIN, NumberingPlan(allowed_prefixes=["+"])]))
def test_nothing_longer_than_e164_is_ever_allowed(dialled: str, plan: NumberingPlan) -> None:
    verdict = check_outside(plan, dialled)
    assert verdict is None or not verdict.allowed


# ---------------------------------------------------------------------------------------------
# check_outside: where a number may go


@pytest.mark.parametrize(("dialled", "verdict"), [
    ("89161234567", Verdict("+79161234567")),
    ("+74951110000", Verdict("+74951110000")),
    ("88001234567", Verdict("+78001234567")),  # toll-free stays allowed
    ("88091234567", Verdict("+78091234567", Refusal.DENIED)),
    ("+78031234567", Verdict("+78031234567", Refusal.DENIED)),
    ("87771234567", Verdict("+77771234567", Refusal.DENIED)),  # Kazakhstan
    ("+76123456789", Verdict("+76123456789", Refusal.DENIED)),
    ("+12125551234", Verdict("+12125551234", Refusal.NOT_ALLOWED)),
    ("810441234567890", Verdict("+441234567890", Refusal.NOT_ALLOWED)),
    ("+8816123456789", Verdict("+8816123456789", Refusal.DENIED)),  # denied is reported before not allowed
    ("+979123456789", Verdict("+979123456789", Refusal.DENIED)),
])
def test_where_the_default_plan_lets_numbers_go(dialled: str, verdict: Verdict) -> None:
    assert check_outside(RUSSIA, dialled) == verdict
    assert verdict.allowed is (verdict.refusal is None)


def test_denied_wins_over_allowed() -> None:
    everywhere = NumberingPlan(allowed_prefixes=["+"])
    assert check_outside(everywhere, "+12125551234") == Verdict("+12125551234")
    assert check_outside(everywhere, "+8816123456789") == Verdict("+8816123456789", Refusal.DENIED)
    narrow = NumberingPlan(allowed_prefixes=["+7809"], denied_prefixes=["+7809"])
    assert check_outside(narrow, "88091234567") == Verdict("+78091234567", Refusal.DENIED)


def test_empty_lists() -> None:
    nowhere = NumberingPlan(allowed_prefixes=[])
    assert check_outside(nowhere, "89161234567") == Verdict("+79161234567", Refusal.NOT_ALLOWED)
    nothing_denied = NumberingPlan(denied_prefixes=[])
    assert check_outside(nothing_denied, "88091234567") == Verdict("+78091234567")


def test_allowed_prefixes_narrow_the_country() -> None:
    moscow = NumberingPlan(allowed_prefixes=["+7495", "+7499"])
    assert check_outside(moscow, "84951234567").allowed  # type: ignore[union-attr]
    assert check_outside(moscow, "89161234567") == Verdict("+79161234567", Refusal.NOT_ALLOWED)


def test_only_format_refusals_are_malformed() -> None:
    assert {r for r in Refusal if r.malformed} == {Refusal.TOO_LONG, Refusal.WRONG_LENGTH}
    assert len({str(r) for r in Refusal}) == len(Refusal)


# ---------------------------------------------------------------------------------------------
# same_number / is_own_number: loops are caught whatever the form


@pytest.mark.parametrize(("a", "b", "same"), [
    ("79161234567", "+79161234567", True),
    ("89161234567", "79161234567", True),
    ("9161234567", "81079161234567", True),
    ("+74951110000", "84951110000", True),
    ("79161234567", "79161234568", False),
    ("100", "100", True),  # extensions and SIP users: equal text
    ("100", "101", False),
    ("+100", "100", True),  # not phone numbers either way: the '+' is noise
    ("100", "+79161234567", False),
    ("", "", False),  # nobody is nobody's number
    ("+", "", False),
    ("+7916123456", "+7916123456", True),  # wrong length, but the very same text
    ("+12125551234", "81012125551234", True),
])
def test_same_number(a: str, b: str, same: bool) -> None:
    assert same_number(RUSSIA, a, b) is same
    assert same_number(RUSSIA, b, a) is same


def test_is_own_number() -> None:
    own = ("+79161112233", "", "100", "+74951110000")
    assert is_own_number(RUSSIA, "89161112233", own)
    assert is_own_number(RUSSIA, "4951110000", own)
    assert not is_own_number(RUSSIA, "89161112234", own)
    assert not is_own_number(RUSSIA, "", own)  # an empty own number matches nothing
    assert not is_own_number(RUSSIA, "89161112233", ())


@given(a=st.from_regex(r"\+?[0-9]{0,18}", fullmatch=True), b=st.from_regex(r"\+?[0-9]{0,18}", fullmatch=True))
def test_same_number_is_symmetric_and_follows_normalise(a: str, b: str) -> None:
    assert same_number(RUSSIA, a, b) == same_number(RUSSIA, b, a)
    e164_a, e164_b = normalise(RUSSIA, a), normalise(RUSSIA, b)
    if e164_a is not None and e164_b is not None:
        assert same_number(RUSSIA, a, b) == (e164_a == e164_b)

"""NIP rules (domain.md §6) as `schemas.nip` applies them, and the masking every log line relies on.

A NIP the pipeline wrongly accepts reaches SI ASN under a person who does not exist; one it wrongly rejects
dead-letters a real participant's answers. Both directions are pinned here, with a fixed ``today`` so the
plausibility checks (age, appointment not in the future) do not drift with the calendar.
"""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from schemas import events as ev
from schemas.nip import NIP_LENGTH, InvalidNIP, mask_nip, validate_nip

TODAY = date(2026, 11, 22)


@pytest.mark.parametrize("nip", [
    "199001012015031001",  # PNS: born 1990-01-01, appointed 2015-03, male, serial 001
    "198505122010012002",  # PNS, female
    "199512312020122001",  # PNS, appointed in December
    "199202292019051001",  # born on a leap day
    "199001012008011001",  # appointed in the month of the 18th birthday: the earliest allowed
    "198801012021211001",  # PPPK: born 1988-01-01, appointed 2021, marker 2+1, male
    "199203152023292005",  # PPPK: marker 2+9, female
])
def test_valid_pns_and_pppk_nips_are_returned_unchanged(nip: str) -> None:
    assert validate_nip(nip, today=TODAY) == nip


def test_valid_nip_without_an_explicit_today() -> None:
    """The default ``today`` is the real date: an old, valid NIP stays valid."""
    assert validate_nip("199001012015031001") == "199001012015031001"


@pytest.mark.parametrize(("nip", "why"), [
    # wrong length
    ("", "exactly 18 digits"),
    ("19900101201503100", "exactly 18 digits"),
    ("1990010120150310011", "exactly 18 digits"),
    # not digits
    ("19900101201503100A", "exactly 18 digits"),
    ("1990-01-01-2015031", "exactly 18 digits"),
    (" 99001012015031001", "exactly 18 digits"),
    # impossible birth date
    ("199002302015031001", "birth date"),  # 30 February
    ("198902292015031001", "birth date"),  # 29 February of a common year
    ("199013012015031001", "birth date"),  # birth month 13
    ("199001002015031001", "birth date"),  # day 00
    # implausible birth year
    ("193912312015031001", "birth year"),
    ("201001012025031001", "birth year"),  # 16 years old in 2026
    # appointment month (PNS) / marker (PPPK), digits 13-14
    ("199001012015131001", "not a month"),  # month 13
    ("199001012015001001", "not a month"),  # month 00
    ("199001012015201001", "not a month"),  # 20: neither a month nor a PPPK marker (2 + digit 1-9)
    ("199001012015301001", "not a month"),
    # gender digit
    ("199001012015033001", "gender"),
    ("199001012015030001", "gender"),
    ("198801012021213001", "gender"),  # PPPK
    # appointment before the 18th birthday
    ("199001012007121001", "18th birthday"),  # one month short
    ("199006012008051001", "18th birthday"),
    ("200006012017211001", "18th birthday"),  # PPPK, appointed at 17
    # appointment in the future (later than next year)
    ("199001012030031001", "future"),
])
def test_invalid_nips_say_why(nip: str, why: str) -> None:
    with pytest.raises(InvalidNIP, match=why):
        validate_nip(nip, today=TODAY)


def test_invalid_nip_is_a_value_error() -> None:
    """pydantic turns a ValueError from an AfterValidator into a field error: the event schema relies on it."""
    assert issubclass(InvalidNIP, ValueError)


@pytest.mark.parametrize("nip", ["1990010120150310\uff101", "19900101\u00b2015031001"])
def test_non_ascii_digits_are_rejected_as_invalid_nip(nip: str) -> None:
    with pytest.raises(InvalidNIP):
        validate_nip(nip, today=TODAY)


def test_event_models_reject_non_ascii_digits() -> None:
    """The models' pattern catches what ``validate_nip`` alone lets through."""
    with pytest.raises(ValidationError):
        ev.ParticipantUnscheduledPayload(session_id="S1", nip="1990010120150310\uff101")


def test_event_models_apply_the_nip_rules() -> None:
    with pytest.raises(ValidationError, match="appointment month"):
        ev.ParticipantUnscheduledPayload(session_id="S1", nip="199001012015131001")
    assert ev.ParticipantUnscheduledPayload(session_id="S1", nip="199001012015031001").nip == "199001012015031001"


# --------------------------------------------------------------------------------------------------
# Masking
# --------------------------------------------------------------------------------------------------


def test_mask_keeps_birth_date_and_last_two_digits() -> None:
    assert mask_nip("199001012015031001") == "19900101********01"


@pytest.mark.parametrize("nip", ["199001012015031001", "198801012021211001", "198505122010012002"])
def test_mask_hides_appointment_gender_and_most_of_the_serial(nip: str) -> None:
    masked = mask_nip(nip)
    assert len(masked) == NIP_LENGTH
    assert masked[8:16] == "*" * 8
    assert nip[8:16] not in masked


@pytest.mark.parametrize("value", ["", "12", "123456789"])
def test_mask_of_something_short_hides_everything(value: str) -> None:
    """Malformed input is masked too: a bad NIP in a log line is still somebody's NIP."""
    assert mask_nip(value) == "*" * len(value)

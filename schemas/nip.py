"""NIP (Nomor Induk Pegawai) validation and masking (domain.md §6).

A NIP is personal data: anything that logs or displays one uses :func:`mask_nip`.
"""

from __future__ import annotations

from datetime import date

NIP_LENGTH = 18


class InvalidNIP(ValueError):
    pass


def _birth_date(nip: str) -> date:
    try:
        return date(int(nip[0:4]), int(nip[4:6]), int(nip[6:8]))
    except ValueError as exc:
        raise InvalidNIP("birth date (digits 1-8) is not a real date") from exc


def validate_nip(nip: str, *, today: date | None = None) -> str:
    """Return the NIP if it has the PNS or PPPK layout with plausible dates, else raise InvalidNIP.

    PNS:  birth YYYYMMDD + appointment YYYYMM + gender (1|2) + serial (3).
    PPPK: birth YYYYMMDD + appointment YYYY + '2' + digit 1-9 + gender (1|2) + serial (3).
    The two are told apart by digits 13-14: a PNS month is 01-12, a PPPK marker is 21-29.
    """
    if len(nip) != NIP_LENGTH or not (nip.isascii() and nip.isdigit()):
        raise InvalidNIP("must be exactly 18 digits")
    today = today or date.today()
    birth = _birth_date(nip)
    if not 1940 <= birth.year <= today.year - 17:
        raise InvalidNIP("birth year is implausible")
    tmt_year = int(nip[8:12])
    marker = int(nip[12:14])
    if 21 <= marker <= 29:  # PPPK
        tmt_month = birth.month  # only the year is encoded: compare by year
    elif 1 <= marker <= 12:
        tmt_month = marker
    else:
        raise InvalidNIP("appointment month (digits 13-14) is not a month")
    if nip[14] not in "12":
        raise InvalidNIP("gender digit (15) must be 1 or 2")
    if (tmt_year, tmt_month) > (today.year + 1, 12):
        raise InvalidNIP("appointment date is in the future")
    # Appointed at 18 or later, "roughly": compare year and month only.
    if (tmt_year * 12 + tmt_month) < ((birth.year + 18) * 12 + birth.month):
        raise InvalidNIP("appointment is before the 18th birthday")
    return nip


def mask_nip(nip: str) -> str:
    """``199001012015031001`` → ``19900101********01``: enough for an operator to match, not to identify."""
    if len(nip) < 10:
        return "*" * len(nip)
    return nip[:8] + "*" * (len(nip) - 10) + nip[-2:]

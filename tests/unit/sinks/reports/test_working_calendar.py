"""The working-day calendar (sinks/reports/calendar.py): recap on working day 11, full report on working day 21.

Every expected date is counted by hand in the comments, day by day from the last test day (which never counts),
against the 2026/2027 Indonesian holidays and cuti bersama the holidays library lists; the first test pins
the library facts those counts rely on, so a library update that moves one fails there, with its reason.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from sinks.reports import calendar as cal
from sinks.reports.calendar import (
    FULL_WORKING_DAY,
    RECAP_WORKING_DAY,
    CalendarFileError,
    DecreedDay,
    WorkingCalendar,
    due_dates,
)


@pytest.fixture
def library() -> WorkingCalendar:
    return WorkingCalendar()


def write(tmp_path: Path, content: Any, name: str = "calendar.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_sop_day_numbers() -> None:
    assert (RECAP_WORKING_DAY, FULL_WORKING_DAY) == (11, 21)


def test_library_facts_the_counts_rely_on(library: WorkingCalendar) -> None:
    # Days off used below, with the library's Indonesian names (holidays 0.109, language="id").
    assert library.day_off(date(2026, 8, 17)) == "Hari Kemerdekaan Republik Indonesia"
    assert library.day_off(date(2026, 8, 25)) == "Maulid Nabi Muhammad"
    assert library.day_off(date(2026, 12, 24)) == "Cuti Bersama Hari Raya Natal"
    assert library.day_off(date(2026, 12, 25)) == "Hari Raya Natal"
    assert library.day_off(date(2027, 1, 1)) == "Tahun Baru Masehi"  # a Friday
    assert library.day_off(date(2027, 1, 5)) == "Isra Mikraj Nabi Muhammad"  # a Tuesday
    assert library.day_off(date(2026, 3, 18)) == "Cuti Bersama Hari Suci Nyepi"
    assert library.day_off(date(2026, 3, 19)) == "Hari Suci Nyepi"
    assert library.day_off(date(2026, 3, 20)) == "Cuti Bersama Hari Raya Idul Fitri"
    assert library.day_off(date(2026, 3, 23)) == "Cuti Bersama Hari Raya Idul Fitri"
    assert library.day_off(date(2026, 3, 24)) == "Cuti Bersama Hari Raya Idul Fitri"
    assert library.day_off(date(2026, 4, 3)) == "Wafat Yesus Kristus"
    assert library.day_off(date(2026, 5, 15)) == "Cuti Bersama Kenaikan Yesus Kristus"
    # No weekday holiday from September to November 2026, nor in January 2027 besides the 1st and the 5th.
    quiet = [date(2026, m, d) for m in (9, 10, 11) for d in range(1, 31)]
    quiet += [date(2027, 1, d) for d in range(2, 32) if d != 5]
    assert [d for d in quiet if d.weekday() < 5 and not library.is_working_day(d)] == []


def test_weekends_are_named_in_indonesian(library: WorkingCalendar) -> None:
    assert library.day_off(date(2026, 10, 10)) == "Sabtu"
    assert library.day_off(date(2026, 10, 11)) == "Minggu"
    assert library.day_off(date(2026, 10, 12)) is None  # Monday
    assert library.is_working_day(date(2026, 10, 12))
    assert not library.is_working_day(date(2026, 10, 10))


def test_a_holiday_on_a_weekend_is_named_as_the_holiday(library: WorkingCalendar) -> None:
    assert library.day_off(date(2026, 3, 21)) == "Hari Raya Idul Fitri"  # a Saturday
    assert "Kemerdekaan" in (library.day_off(date(2026, 8, 17)) or "")


def test_plain_stretch_without_holidays(library: WorkingCalendar) -> None:
    # Last test day Mon 2026-10-05. Tue 06 =1, 07 =2, 08 =3, Fri 09 =4; Mon 12 =5 .. Fri 16 =9;
    # Mon 19 =10, Tue 20 =11 (recap). Wed 21 =12, 22 =13, Fri 23 =14; Mon 26 =15 .. Fri 30 =19;
    # Mon 11-02 =20, Tue 11-03 =21 (full).
    assert due_dates(library, date(2026, 10, 5)) == {"recap": date(2026, 10, 20), "full": date(2026, 11, 3)}


def test_first_working_day_is_the_next_one(library: WorkingCalendar) -> None:
    assert library.working_day_after(date(2026, 10, 5), 1) == date(2026, 10, 6)
    assert library.working_day_after(date(2026, 10, 9), 1) == date(2026, 10, 12)  # Fri → Mon


@pytest.mark.parametrize("n", [0, -1])
def test_working_day_after_needs_a_positive_count(library: WorkingCalendar, n: int) -> None:
    with pytest.raises(ValueError):
        library.working_day_after(date(2026, 10, 5), n)


def test_around_independence_day(library: WorkingCalendar) -> None:
    # Last test day Fri 2026-08-14. Mon 17 off (Kemerdekaan); Tue 18 =1, 19 =2, 20 =3, Fri 21 =4; Mon 24 =5;
    # Tue 25 off (Maulid Nabi); Wed 26 =6, 27 =7, Fri 28 =8; Mon 31 =9, Tue 09-01 =10, Wed 09-02 =11 (recap).
    # Thu 03 =12, Fri 04 =13; Mon 07 =14 .. Fri 11 =18; Mon 14 =19, Tue 15 =20, Wed 16 =21 (full).
    # Without the two holidays the recap would be Mon 08-31: both push it by one working day.
    assert due_dates(library, date(2026, 8, 14)) == {"recap": date(2026, 9, 2), "full": date(2026, 9, 16)}


def test_around_christmas_into_the_next_year(library: WorkingCalendar) -> None:
    # Last test day Wed 2026-12-23. Thu 24 off (cuti bersama Natal), Fri 25 off (Natal), weekend;
    # Mon 28 =1, 29 =2, 30 =3, Thu 31 =4; Fri 2027-01-01 off (Tahun Baru); Mon 04 =5; Tue 05 off (Isra Mikraj);
    # Wed 06 =6, 07 =7, Fri 08 =8; Mon 11 =9, 12 =10, Wed 13 =11 (recap). Thu 14 =12, Fri 15 =13;
    # Mon 18 =14 .. Fri 22 =18; Mon 25 =19, Tue 26 =20, Wed 27 =21 (full).
    assert due_dates(library, date(2026, 12, 23)) == {"recap": date(2027, 1, 13), "full": date(2027, 1, 27)}


def test_around_idul_fitri(library: WorkingCalendar) -> None:
    # Last test day Tue 2026-03-17. Off: Wed 18 (cuti Nyepi), Thu 19 (Nyepi), Fri 20 (cuti Idul Fitri),
    # Sat 21 / Sun 22 (Idul Fitri), Mon 23 and Tue 24 (cuti Idul Fitri). Wed 25 =1, 26 =2, Fri 27 =3;
    # Mon 30 =4, 31 =5, Wed 04-01 =6, Thu 02 =7; Fri 03 off (Wafat Yesus Kristus); Mon 06 =8, 07 =9, 08 =10,
    # Thu 09 =11 (recap). Fri 10 =12; Mon 13 =13 .. Fri 17 =17; Mon 20 =18, 21 =19, 22 =20, Thu 23 =21 (full).
    assert due_dates(library, date(2026, 3, 17)) == {"recap": date(2026, 4, 9), "full": date(2026, 4, 23)}


def test_friday_last_test_day(library: WorkingCalendar) -> None:
    # Last test day Fri 2026-10-09. Mon 12 =1 .. Fri 16 =5; Mon 19 .. Fri 23 =10; Mon 26 =11 (recap).
    # Tue 27 =12 .. Fri 30 =15; Mon 11-02 =16 .. Fri 06 =20; Mon 11-09 =21 (full).
    assert due_dates(library, date(2026, 10, 9)) == {"recap": date(2026, 10, 26), "full": date(2026, 11, 9)}


@pytest.mark.parametrize("last_test_day", [date(2026, 10, 10), date(2026, 10, 11)])  # Saturday, Sunday
def test_weekend_test_day_counts_from_the_next_working_day(library: WorkingCalendar, last_test_day: date) -> None:
    # Mon 12 is working day 1 as after Fri 09 (counted above): recap Mon 10-26, full Mon 11-09.
    assert due_dates(library, last_test_day) == {"recap": date(2026, 10, 26), "full": date(2026, 11, 9)}


def test_holiday_test_day_counts_from_the_next_working_day(library: WorkingCalendar) -> None:
    # A session on Mon 2026-08-17 (Kemerdekaan): Tue 18 is working day 1, as after Fri 08-14 (counted above).
    assert due_dates(library, date(2026, 8, 17)) == {"recap": date(2026, 9, 2), "full": date(2026, 9, 16)}


def test_working_days_left(library: WorkingCalendar) -> None:
    assert library.working_days_left(date(2026, 10, 5), date(2026, 10, 20)) == 11  # the plain stretch's recap
    assert library.working_days_left(date(2026, 10, 16), date(2026, 10, 20)) == 2  # Fri → Mon 19, Tue 20
    assert library.working_days_left(date(2026, 10, 17), date(2026, 10, 20)) == 2  # Sat → Mon 19, Tue 20
    assert library.working_days_left(date(2026, 10, 19), date(2026, 10, 20)) == 1
    assert library.working_days_left(date(2026, 12, 23), date(2027, 1, 13)) == 11  # across Christmas (above)
    assert library.working_days_left(date(2026, 8, 14), date(2026, 8, 18)) == 1  # Mon 17 is off, Tue 18
    assert library.working_days_left(date(2026, 10, 20), date(2026, 10, 20)) == 0  # due today
    assert library.working_days_left(date(2026, 10, 21), date(2026, 10, 20)) == 0  # late


def test_any_year_loads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = cal.holidays.country_holidays

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("years"))
        return real(*args, **kwargs)

    monkeypatch.setattr(cal.holidays, "country_holidays", counting)
    calendar = WorkingCalendar()
    assert calendar.day_off(date(2031, 8, 17)) == "Hari Kemerdekaan Republik Indonesia"  # a Sunday, still named
    assert calendar.is_working_day(date(2031, 8, 18))  # Monday, no holiday
    assert calendar.day_off(date(2031, 12, 25)) == "Hari Raya Natal"
    assert calls == [2031]
    calendar.is_working_day(date(2032, 1, 2))
    assert calls == [2031, 2032]


def test_extra_day_off_shifts_the_due_date(tmp_path: Path) -> None:
    # Plain stretch from Mon 2026-10-05 (recap Tue 10-20, full Tue 11-03) with Wed 10-14 off by decree:
    # every day from 10-14 on moves up by one, so recap Wed 10-21 and full Wed 11-04.
    path = write(tmp_path, {"days_off": [{"date": "2026-10-14", "name": "Cuti bersama tambahan"}]})
    calendar = WorkingCalendar.from_file(path)
    assert calendar.day_off(date(2026, 10, 14)) == "Cuti bersama tambahan"
    assert due_dates(calendar, date(2026, 10, 5)) == {"recap": date(2026, 10, 21), "full": date(2026, 11, 4)}


def test_cancelled_cuti_bersama_is_a_working_day(tmp_path: Path) -> None:
    # From Wed 2026-12-23 (library: recap 2027-01-13, full 01-27) with Thu 12-24 working after all:
    # Thu 24 =1, Mon 28 =2 .. Thu 31 =5; Mon 01-04 =6; Wed 06 =7, 07 =8, Fri 08 =9; Mon 11 =10, Tue 12 =11 (recap);
    # and the full report one working day earlier too, Tue 01-26.
    path = write(tmp_path, {"working_days": [{"date": "2026-12-24", "name": "Cuti bersama dibatalkan"}]})
    calendar = WorkingCalendar.from_file(path)
    assert calendar.day_off(date(2026, 12, 24)) is None
    assert calendar.day_off(date(2026, 12, 25)) == "Hari Raya Natal"  # only the decreed day changes
    assert due_dates(calendar, date(2026, 12, 23)) == {"recap": date(2027, 1, 12), "full": date(2027, 1, 26)}


def test_both_decree_lists_in_one_file(tmp_path: Path) -> None:
    # Extra day off Wed 10-14 (+1) and cuti bersama 12-24 cancelled: from Mon 10-05 the recap is Wed 10-21 as
    # with the extra day alone; 12-24 is far after both due dates, so it changes nothing here.
    path = write(tmp_path, {"days_off": [{"date": "2026-10-14", "name": "Tambahan"}],
                            "working_days": [{"date": "2026-12-24", "name": "Dibatalkan"}]})
    calendar = WorkingCalendar.from_file(path)
    assert due_dates(calendar, date(2026, 10, 5)) == {"recap": date(2026, 10, 21), "full": date(2026, 11, 4)}
    assert calendar.is_working_day(date(2026, 12, 24))


def test_decreed_days_in_code() -> None:
    calendar = WorkingCalendar([DecreedDay(date(2026, 10, 14), "Tambahan", working=False)])
    assert calendar.working_days_left(date(2026, 10, 5), date(2026, 10, 20)) == 10  # one fewer than 11
    with pytest.raises(ValueError):
        WorkingCalendar([DecreedDay(date(2026, 10, 14), "a", working=False),
                         DecreedDay(date(2026, 10, 14), "b", working=True)])


def test_no_file_means_library_only() -> None:
    calendar = WorkingCalendar.from_file(None)
    assert due_dates(calendar, date(2026, 10, 5)) == {"recap": date(2026, 10, 20), "full": date(2026, 11, 3)}


def test_empty_object_is_a_valid_file(tmp_path: Path) -> None:
    calendar = WorkingCalendar.from_file(write(tmp_path, {}))
    assert calendar.day_off(date(2026, 8, 17)) == "Hari Kemerdekaan Republik Indonesia"


@pytest.mark.parametrize(
    ("content", "fault"),
    [
        ("{not json", "not valid JSON"),
        ([], "must be a JSON object"),
        ({"days_off": [], "holidays": []}, "unknown key 'holidays'"),
        ({"days_off": {"date": "2026-12-31"}}, "'days_off' must be a list"),
        ({"days_off": ["2026-12-31"]}, "days_off entry 1: must be an object"),
        ({"days_off": [{"date": "2026-12-31", "name": "x", "note": "y"}]}, "days_off entry 1: unknown key 'note'"),
        ({"days_off": [{"date": "2026-12-30", "name": "a"}, {"date": "2026-12-31", "name": "b"},
                       {"date": "31-12-2026", "name": "c"}]}, "days_off entry 3: 'date' must be YYYY-MM-DD"),
        ({"days_off": [{"date": "20261231", "name": "x"}]}, "'date' must be YYYY-MM-DD"),
        ({"days_off": [{"date": 20261231, "name": "x"}]}, "'date' must be YYYY-MM-DD"),
        ({"days_off": [{"name": "x"}]}, "'date' must be YYYY-MM-DD"),
        ({"working_days": [{"date": "2026-02-30", "name": "x"}]}, "working_days entry 1: 'date' '2026-02-30'"),
        ({"days_off": [{"date": "2026-12-31"}]}, "'name' must be a non-empty string"),
        ({"days_off": [{"date": "2026-12-31", "name": "  "}]}, "'name' must be a non-empty string"),
        ({"days_off": [{"date": "2026-12-31", "name": "a"}], "working_days": [{"date": "2026-12-31", "name": "b"}]},
         "working_days entry 1: 2026-12-31 is already listed in days_off"),
        ({"days_off": [{"date": "2026-12-31", "name": "a"}, {"date": "2026-12-31", "name": "b"}]},
         "days_off entry 2: 2026-12-31 is already listed in days_off"),
    ],
)
def test_bad_files_give_one_line_naming_the_file(tmp_path: Path, content: Any, fault: str) -> None:
    path = write(tmp_path, content, name="x.json")
    with pytest.raises(CalendarFileError) as caught:
        WorkingCalendar.from_file(path)
    message = str(caught.value)
    assert message.startswith(f"reports calendar file {path}: ")
    assert fault in message
    assert "\n" not in message


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(CalendarFileError, match=r"^reports calendar file .*absent\.json: no such file$"):
        WorkingCalendar.from_file(path)


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(CalendarFileError, match=r"dir\.json: cannot be read"):
        WorkingCalendar.from_file(tmp_path / "dir.json")


def test_calendar_file_error_is_a_value_error() -> None:
    assert issubclass(CalendarFileError, ValueError)

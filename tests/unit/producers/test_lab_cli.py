"""``cact lab``: hostile input lines never crash ``send`` nor reach the terminal as markup or escape sequences;
``resend`` re-queues exactly the acknowledged events of its time range, says what it could not resend, and exits
with the documented codes; ``status`` shows what is still resendable.

No broker: the settings point at a port nothing listens on, so nothing is acknowledged (exit 3 is expected
where a broker would give 0); what was re-queued is read from the spool file.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cact.cli import app
from producers import emitter as emitter_module
from producers.emitter import LabEmitter
from producers.lab_cli import parse_time, plain
from producers.spool import NewRow, Spool
from schemas import events as ev
from schemas.settings import get_settings
from streams.broker import free_port

WIB = timezone(timedelta(hours=7))
AT = datetime(2026, 11, 3, 9, 0, tzinfo=WIB)
NIP = "199001012015031001"
HOUR = 3600.0


class QuickEmitter(LabEmitter):
    """Gives up on the absent broker after 0.2 s instead of 3 s, so closing does not wait for the attempt."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, bootstrap_timeout_ms=200, **kwargs)


@pytest.fixture
def dead_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setattr(emitter_module, "LabEmitter", QuickEmitter)
    monkeypatch.setenv("CACT_KAFKA_BOOTSTRAP_SERVERS", address)
    monkeypatch.setenv("CACT_MAX_MESSAGE_BYTES", "4096")
    get_settings.cache_clear()
    yield address
    get_settings.cache_clear()


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["lab", *args], env={"COLUMNS": "200"})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stderr + result.stdout


def rows(path: Path) -> list[tuple[str, bytes]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT status, value FROM events ORDER BY seq").fetchall()


# ---- send: hostile lines -------------------------------------------------------------------------


def good_line() -> bytes:
    return ev.new_event(ev.ParticipantCheckedIn, lab_id="kanreg-v", occurred_at=AT,
                        payload={"session_id": "S-1", "nip": NIP}).to_bytes()


def big_sheet() -> bytes:
    return ev.new_event(ev.SectionSubmitted, lab_id="kanreg-v", occurred_at=AT, payload={
        "session_id": "S-1", "nip": NIP, "section": "mansoskul", "completion": "submitted",
        "answers": [{"item_id": f"{i:060d}", "option": "A"} for i in range(80)]}).to_bytes()


HOSTILE: list[tuple[bytes, str]] = [
    (b'{"event_type": "[/]", "payload": {}}', "unknown_event_type"),                      # crashed send before
    (b'{"event_type": "[bold red]x[/bold red][link=file:///etc/passwd]y[/link]"}', "unknown_event_type"),
    (b'{"event_type": "\\u001b[2J\\u001b]0;owned\\u0007\\u202eevil"}', "unknown_event_type"),  # ANSI in a value
    (b'{"event_type": "\x1b[31mred"}', "bad_json"),                                         # raw ESC byte
    (b'{"event_type": "' + b"A" * 200_000 + b'"}', "unknown_event_type"),                 # a 200 kB line
    (b'{"event_type": "\xff\xfe\xc3("}', "bad_json"),                                       # invalid UTF-8
    (b"\x00\x01\x02[/]\x9b", "bad_json"),
    (big_sheet(), "too_large"),                                                           # over CACT_MAX_MESSAGE_BYTES
]


def test_hostile_lines_are_reported_literally_and_the_good_lines_still_go(dead_broker: str, tmp_path: Path) -> None:
    lines = [good_line(), *(line for line, _ in HOSTILE), good_line()]
    day = tmp_path / "[red]day[link=x].jsonl"  # a hostile file name too
    day.write_bytes(b"\n".join(lines) + b"\n")
    spool = tmp_path / "spool.db"
    code, out = run("send", str(day), "--spool", str(spool), "--timeout", "0.3")
    assert code == 1  # invalid lines, reported before "not delivered" (3)
    for n, (_, reason) in enumerate(HOSTILE, 2):
        assert f"line {n}: {reason}" in out
    assert "line 2: unknown_event_type" in out and "'[/]'" in out  # printed as text, not read as markup
    assert "[bold red]x[/bold red]" in out
    assert "\x1b" not in out and "\u202e" not in out and "\x9b" not in out
    assert "\\x1b[2J" in out                                   # shown, defused
    assert len(out) < 5_000                                    # the 200 kB line is not echoed
    assert f"2 events spooled from {day}, {len(HOSTILE)} invalid lines not sent" in " ".join(out.split())
    assert [v for _, v in rows(spool)] == [lines[0], lines[-1]]


def test_plain_shows_every_control_character_escaped_and_keeps_the_rest() -> None:
    assert plain("a[/]b\x1b[0m\x07\r\n\t\u200b\ud800ok").plain == "a[/]b\\x1b[0m\\x07\\x0d\\x0a\\x09\\u200b\\ud800ok"
    assert plain("é Jakarta 東").plain == "é Jakarta 東"
    assert plain("x" * 50, limit=10).plain == "x" * 10 + "… (50 characters)"


# ---- resend --------------------------------------------------------------------------------------


def sent_rows(path: Path, destination: str, at_hours_ago: list[float], now: float) -> list[bytes]:
    """Rows acknowledged at the given times (hours before now), one each, with distinct payloads."""
    clock = {"t": now}
    spool = Spool(path, destination, clock=lambda: clock["t"])
    values = []
    for i, ago in enumerate(at_hours_ago):
        value = f'{{"n": {i}, "ago": {ago}}}'.encode()
        [seq] = spool.append([NewRow("cact.lab.v1", b"S-1", value, f"id-{i}", "SectionStarted")])
        clock["t"] = now - ago * HOUR
        spool.mark_sent([seq])
        values.append(value)
    spool.close()
    return values


def test_resend_requeues_the_range_in_order_and_says_what_retention_already_pruned(
        dead_broker: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool.db"
    now = time.time()
    values = sent_rows(spool, dead_broker, [30, 30, 30, 1, 1, 1, 1, 0.1, 0.1], now)
    since = datetime.fromtimestamp(now - 0.5 * HOUR, tz=WIB).isoformat()

    code, out = run("resend", "--since", since, "--spool", str(spool), "--timeout", "0.3")
    assert code == 3, out  # re-queued, not acknowledged: no broker
    assert "2 acknowledged events sent from" in out and "re-queued for" in out and "not yet delivered" in out
    assert "cannot be resent" not in out
    # The emitter pruned the 30-hour-old rows when it opened the spool (CACT_LAB_SPOOL_KEEP_SENT_HOURS=24).
    assert rows(spool) == [("sent", v) for v in values[3:7]] + [("pending", v) for v in values[7:]]

    code, out = run("resend", "--since", "-2d", "--spool", str(spool), "--timeout", "0.3")
    assert code == 1, out  # some could not be resent: that is the first thing an operator must hear
    flat = " ".join(out.split())
    assert "4 acknowledged events sent from" in flat and "3 events sent from" in flat and "cannot be resent" in flat
    assert "CACT_LAB_SPOOL_KEEP_SENT_HOURS" in flat
    assert rows(spool) == [("pending", v) for v in values[3:]]  # the earlier resend's rows keep their place

    status = json.loads(run("status", "--json", "--spool", str(spool))[1])
    assert (status["pending"], status["sent"], status["resendable"], status["pruned"]) == (6, 0, 0, 3)


def test_resend_leaves_another_clusters_events_alone_unless_asked(dead_broker: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool.db"
    values = sent_rows(spool, "kafka-old:9092", [1, 1], time.time())
    code, out = run("resend", "--since", "-2h", "--spool", str(spool), "--timeout", "0.3")
    assert code == 0, out  # nothing of this cluster to resend
    flat = " ".join(out.split())
    assert "0 acknowledged events" in flat and "2 acknowledged events sent from" in flat
    assert "--from-destination kafka-old:9092" in flat
    assert rows(spool) == [("sent", v) for v in values]
    code, out = run("resend", "--since", "-2h", "--from-destination", "kafka-old:9092", "--spool", str(spool),
                    "--timeout", "0.3")
    assert code == 3 and f"re-queued from kafka-old:9092 to {dead_broker}" in " ".join(out.split())
    assert rows(spool) == [("pending", v) for v in values]


def test_status_shows_what_is_still_resendable_and_since_when(dead_broker: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool.db"
    sent_rows(spool, dead_broker, [3, 2], time.time())
    code, out = run("status", "--spool", str(spool))
    assert code == 0
    flat = " ".join(out.split())
    assert "acknowledged events still resendable (cact lab resend --since): 2" in flat and "sent since 20" in flat
    report = json.loads(run("status", "--json", "--spool", str(spool))[1])
    since = datetime.fromisoformat(report["resendable_since"])
    assert abs(since.timestamp() - (time.time() - 3 * HOUR)) < 60 and since.utcoffset() is not None
    assert report["groups"][0]["resendable"] == 2


@pytest.mark.parametrize(("text", "expected"), [
    ("-2h", 1_000_000 - 7200), ("-90m", 1_000_000 - 5400), ("-1.5d", 1_000_000 - 129_600), ("- 30 s", 999_970),
    ("2026-11-03T10:40:00+07:00", datetime(2026, 11, 3, 3, 40, tzinfo=UTC).timestamp()),
    ("2026-11-03T03:40:00Z", datetime(2026, 11, 3, 3, 40, tzinfo=UTC).timestamp()),
])
def test_times_are_iso_with_an_offset_or_back_from_now(text: str, expected: float) -> None:
    assert parse_time(text, now=1_000_000) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["2026-11-03T10:40:00", "2026-11-03", "yesterday", "-2w", "+2h"])
def test_a_time_without_offset_or_not_a_time_is_refused(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_time(text, now=1_000_000)


def test_a_bad_time_is_a_usage_error_naming_the_fix(dead_broker: str, tmp_path: Path) -> None:
    sent_rows(tmp_path / "spool.db", dead_broker, [1], time.time())
    code, out = run("resend", "--since", "2026-11-03T10:40", "--spool", str(tmp_path / "spool.db"))
    assert code == 2 and "+07:00" in out
    code, out = run("resend", "--since", "-1h", "--spool", str(tmp_path / "none.db"))
    assert code == 2 and "no spool at" in out and not (tmp_path / "none.db").exists()

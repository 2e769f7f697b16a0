"""The sink's metrics (sinks/metrics.py): on the registry they are given, the names the alert rules and dashboards
read, the sink counting where it was told to, the build info a standalone sink or pusher serves, and the
store-backed collectors: one family per dimension, bounded series, and nothing rather than a wrong 0."""

from __future__ import annotations

import asyncio
import platform
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from schemas import events as ev
from schemas import topics
from schemas.settings import Settings
from sinks import attendance_view
from sinks.attendance_view import SeatCount, SessionFacts, build_overview
from sinks.metrics import (
    SESSION_STATES,
    AttendanceCollector,
    OutboxCollector,
    SinkMetrics,
    build_info,
    default_pusher_metrics,
    default_sink_metrics,
    register_build_info,
)
from sinks.runner import ResultsSink, StoreHealth
from sinks.store import ResultsStore

SINK_METRICS = {  # name → help, as deploy/prometheus/alerts.yml and docs/operations.md know them
    "cact_sink_events_total": "Output events written to the results store",
    "cact_sink_batch_seconds": "Time to write one batch to the results store",
    "cact_sink_batch_events": "Output records per batch written to the results store",
    "cact_sink_quarantined_total": "Output events the results store refused and quarantined",
    "cact_sink_quarantine_rows": "Rows in the results store's quarantine table",
    "cact_sink_db_up": "1 while the sink reaches the results store, 0 during an outage",
    "cact_sink_db_retries_total": "Attempts the sink repeated because the store was down",
    "cact_sink_commit_failures_total": "Refused offset commits (the batch comes again)",
}


def helps(registry: CollectorRegistry) -> dict[str, str]:
    text = generate_latest(registry).decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") and not line.split()[2].endswith("_created"):
            name, help_ = line[7:].split(" ", 1)
            found[name] = help_.replace("\\n", "\n")
    return found


def test_the_sink_metrics_keep_their_names_and_help_on_any_registry() -> None:
    one, two = CollectorRegistry(), CollectorRegistry()
    SinkMetrics(one), SinkMetrics(two)  # two sets in one process: no clash
    for registry in (one, two):
        assert helps(registry) == SINK_METRICS


def test_a_sink_given_no_metrics_counts_on_the_process_registry_once() -> None:
    assert default_sink_metrics() is default_sink_metrics()
    assert default_pusher_metrics() is default_pusher_metrics()  # both in one process: one build info, no clash
    assert set(SINK_METRICS) <= set(helps(REGISTRY))  # what a standalone `cact sink` serves
    assert {"cact_siasn_deliveries_total", "cact_build_info"} <= set(helps(REGISTRY))  # and a standalone pusher


def test_build_info_names_the_versions_with_value_one() -> None:
    registry = CollectorRegistry()
    register_build_info(registry)
    info = build_info()
    assert info["python_version"] == platform.python_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", info["faust_version"]) and info["version"] != "unknown"
    assert registry.get_sample_value("cact_build_info", info) == 1.0
    text = generate_latest(registry).decode()
    assert "# TYPE cact_build_info gauge" in text and len(re.findall(r"^cact_build_info\{", text, re.M)) == 1


def test_store_health_says_up_and_down_on_its_metrics() -> None:
    m = SinkMetrics(CollectorRegistry())
    value = m.db_up._value.get
    health = StoreHealth(clock=lambda: 0.0, metrics=m)
    health.failed(ConnectionError("down"))
    health.retrying()
    assert value() == 0 and m.db_retries._value.get() == 1
    health.succeeded()
    assert value() == 1


class Consumer:
    def __init__(self) -> None:
        self.commits = 0

    async def commit(self) -> None:
        self.commits += 1

    def assignment(self) -> set[TopicPartition]:
        return set()

    def seek(self, partition: TopicPartition, offset: int) -> None:
        raise AssertionError("no rewind expected")


def test_the_sink_counts_on_the_metrics_it_was_given(tmp_path: Path) -> None:
    store = ResultsStore(f"sqlite:///{tmp_path / 'results.db'}")
    store.create_schema()
    mine, before = SinkMetrics(CollectorRegistry()), default_sink_metrics().rows.labels(event_type="DeadLettered")
    counted_before = before._value.get()
    letter = ev.new_event(ev.DeadLettered, lab_id="cact-pipeline", occurred_at=datetime(2026, 11, 3, tzinfo=UTC),
                          payload={"reason": "malformed_json", "detail": "x", "source_topic": topics.LAB.name,
                                   "source_partition": 0, "source_offset": 1, "key_b64": None, "value_b64": ""})
    fetched: dict[TopicPartition, Any] = {
        TopicPartition(topics.DEADLETTER.name, 0): [SimpleNamespace(offset=0, value=letter.to_bytes()),
                                                    SimpleNamespace(offset=1, value=None)]}
    sink = ResultsSink(store, Settings(database_url=str(store.engine.url)), metrics=mine)
    asyncio.run(sink.handle(Consumer(), fetched))
    value = mine.rows.labels(event_type="DeadLettered")._value.get
    assert value() == 1
    got = list(mine.batch_events.collect())[0].samples
    samples = {(s.name, s.labels.get("le")): s.value for s in got}
    assert samples.items() >= {  # one batch of 2 records
        ("cact_sink_batch_events_count", None): 1, ("cact_sink_batch_events_sum", None): 2,
        ("cact_sink_batch_events_bucket", "1.0"): 0, ("cact_sink_batch_events_bucket", "5.0"): 1}.items()
    assert mine.quarantine_rows._value.get() == 1  # the tombstone, quarantined
    assert before._value.get() == counted_before  # nothing on the process's registry
    store.dispose()


def test_the_outbox_backlog_lists_every_status_and_nothing_when_the_store_is_down() -> None:
    registry = CollectorRegistry()
    registry.register(OutboxCollector(lambda: {"pending": 3, "held": 1, "oldest_pending_age_s": 42.0}))
    text = generate_latest(registry).decode()
    assert 'cact_siasn_outbox{status="pending"} 3.0' in text and 'cact_siasn_outbox{status="void"} 0.0' in text
    assert "cact_siasn_oldest_pending_age_seconds 42.0" in text

    def down() -> dict[str, Any]:
        raise ConnectionRefusedError

    quiet = CollectorRegistry()
    quiet.register(OutboxCollector(down))
    assert "cact_siasn_outbox" not in generate_latest(quiet).decode()  # no series, not a backlog of 0


# ---- attendance -----------------------------------------------------------------------------------

NOW = datetime(2026, 11, 3, 5, 15, tzinfo=UTC)


def facts(sid: str, agency: str, lab: str, activity: str, starts: datetime, *, final: bool) -> SessionFacts:
    return SessionFacts(session_id=sid, lab_id=lab, agency_id=agency, activity_id=activity, starts_at=starts,
                        checkin_closes_at=starts + timedelta(minutes=30), ends_at=starts + timedelta(hours=5),
                        final=final, closed=False)


def attendance_scrape(sessions: list[SessionFacts], rows: list[SeatCount], threshold: float = 0.15) -> str:
    data = build_overview(sessions, rows, now=NOW, threshold=threshold, silent_after_s=600, lab_last_seen={})
    registry = CollectorRegistry()
    registry.register(AttendanceCollector(lambda: data))
    return generate_latest(registry).decode()


def day() -> tuple[list[SessionFacts], list[SeatCount]]:
    """bps: 10 seats in a closed window at lab L1 (2 no-shows) and 5 in check-in at L2; lan: only in check-in;
    an activity of last month whose window closed long ago."""
    s1 = facts("S1", "bps", "L1", "ACT-bps", NOW - timedelta(hours=3), final=True)
    s2 = facts("S2", "bps", "L2", "ACT-bps", NOW - timedelta(minutes=10), final=False)
    s3 = facts("S3", "lan", "L2", "ACT-lan", NOW - timedelta(minutes=10), final=False)
    old = facts("S0", "bps", "L1", "ACT-old", NOW - timedelta(days=30), final=True)
    rows = [SeatCount("S1", "L1", "bps", "ACT-bps", "checked_in", False, 8),
            SeatCount("S1", "L1", "bps", "ACT-bps", "no_show", False, 2),
            SeatCount("S2", "L2", "bps", "ACT-bps", "scheduled", False, 5),
            SeatCount("S3", "L2", "lan", "ACT-lan", "scheduled", False, 4),
            SeatCount("S0", "L1", "bps", "ACT-old", "checked_in", False, 9),
            SeatCount("S0", "L1", "bps", "ACT-old", "no_show", False, 1)]
    return [s1, s2, s3, old], rows


def test_no_show_ratios_one_family_per_dimension_over_closed_windows_only() -> None:
    text = attendance_scrape(*day())
    assert "cact_no_show_ratio 0.15" in text  # (2 + 1) no-shows of 20 in closed windows
    assert 'cact_agency_no_show_ratio{agency_id="bps"} 0.15' in text
    assert 'cact_lab_no_show_ratio{lab_id="L1"} 0.15' in text
    assert 'cact_activity_no_show_ratio{activity_id="ACT-bps"} 0.2' in text
    # no closed window: no series at all (not 0, which would read as perfect attendance)
    assert 'cact_agency_no_show_ratio{agency_id="lan"}' not in text
    assert 'cact_lab_no_show_ratio{lab_id="L2"}' not in text
    assert 'cact_agency_participants{agency_id="lan",state="scheduled"} 4.0' in text
    assert 'cact_agency_closed_window_participants{agency_id="lan"} 0.0' in text
    assert 'cact_agency_closed_window_participants{agency_id="bps"} 20.0' in text
    assert 'cact_lab_participants{lab_id="L1",state="no_show"} 3.0' in text
    assert 'cact_agency_participants{agency_id="bps",state="rescheduled"} 0.0' in text
    assert "cact_no_show_threshold_ratio 0.15" in text
    assert 'cact_sessions{state="window_closed"} 2.0' in text and 'cact_sessions{state="in_checkin"} 2.0' in text
    assert 'cact_lab_sessions_in_progress{lab_id="L2"} 2.0' in text


def test_no_series_per_session_and_old_activities_drop_out() -> None:
    """Agencies and labs are bounded by what BKN has; activities by the days around now; sessions not at all."""
    text = attendance_scrape(*day())
    assert "session_id" not in text and "S1" not in text
    assert "ACT-old" not in text  # its session started 30 days ago, beyond ACTIVITY_SERIES_DAYS
    assert 'cact_activity_participants{activity_id="ACT-lan",state="scheduled"} 4.0' in text
    families = set(re.findall(r"^# TYPE (\S+) gauge", text, re.M))
    assert families == {"cact_no_show_ratio", "cact_no_show_threshold_ratio", "cact_sessions",
                        "cact_lab_sessions_in_progress", "cact_lab_silent", "cact_results_current",
                        *(f"cact_{d}_{f}" for d in ("agency", "lab", "activity")
                          for f in ("no_show_ratio", "participants", "closed_window_participants"))}


def test_before_any_window_closes_there_is_no_ratio_anywhere() -> None:
    sessions, rows = day()
    text = attendance_scrape([s for s in sessions if not s.final], [r for r in rows if r.session_id in ("S2", "S3")])
    assert not re.search(r"^cact_\w*no_show_ratio", text, re.M)
    assert "# TYPE cact_agency_no_show_ratio gauge" in text  # the family is there, with no series


def test_the_session_states_are_the_views_own() -> None:
    assert SESSION_STATES == attendance_view.STATES


def test_a_store_that_cannot_be_read_gives_no_attendance_series() -> None:
    def down() -> dict[str, Any]:
        raise ConnectionRefusedError

    registry = CollectorRegistry()
    registry.register(AttendanceCollector(down))
    assert "cact_" not in generate_latest(registry).decode()

"""Who may say what, tried on a real worker: forged control events, another lab's events, a wrong clock and a
wrong key are each dead-lettered with their reason and change nothing; the silent-lab watch follows the lab
that hosts a session, not the scheduler that announced it (issue 13)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from cact.processes import WorkerProcess, consumer_groups
from producers.simulator import SCHEDULER_ID, SimConfig, build_day
from schemas import events as ev
from schemas import topics
from schemas.blueprint import BlueprintRegistry
from schemas.domain import AttendanceStatus as St
from schemas.kafka_config import client_kwargs
from schemas.settings import Settings
from sinks import models as m
from sinks.store import ResultsStore
from streams.kafka import wait_until_consumed

TOKEN = "trust-test-operator-token"


async def send(settings: Settings, messages: list[tuple[str, bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(acks="all", **client_kwargs(settings))
    await producer.start()
    try:
        for topic, key, value in messages:
            await producer.send_and_wait(topic, key=key, value=value)
    finally:
        await producer.stop()


def wire(e: ev.Event) -> tuple[str, bytes, bytes]:
    return e.topic.name, e.key().encode(), e.to_bytes()


def raw(event_type: str, lab_id: str, at: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "event_type": event_type, "schema_version": 1, "occurred_at": at,
            "lab_id": lab_id, "payload": payload}


@pytest.mark.broker
@pytest.mark.postgres
def test_forged_and_misplaced_events_change_nothing_and_the_watch_follows_the_host(
        pipeline_kafka: Settings, pg_database: str, tmp_path: Path) -> None:
    settings = pipeline_kafka.model_copy(update={"database_url": pg_database, "lab_silent_after_seconds": 1.0,
                                                 "operator_token": SecretStr(TOKEN)})
    day = build_day(SimConfig(participants=60, seats=30, malformed=0, seed=31), BlueprintRegistry.from_dir())
    plan = next(iter(day.sessions.values()))
    absent = next(t for t in day.truth.values() if t.session_id == plan.session_id and not t.attended)
    present = next(t for t in day.truth.values() if t.session_id == plan.session_id and t.attended)
    before = (plan.starts_at - timedelta(minutes=20)).isoformat()
    sid = plan.session_id.encode()

    checkin = {"session_id": plan.session_id, "nip": absent.nip, "seat": "7"}
    forged = [
        # the pipeline's own events, sent where labs write: each would declare or rescore for everyone
        (topics.LAB.name, sid, raw("CheckinWindowClosed", plan.lab_id, before, {"session_id": plan.session_id})),
        (topics.SCHEDULE.name, sid, raw("RescoreRequested", plan.lab_id, before, {
            "session_id": plan.session_id, "activity_id": plan.activity_id, "blueprint_id": plan.blueprint_id,
            "blueprint_version": "1"})),
        # another lab checks in a participant who never came
        (topics.LAB.name, sid, raw("ParticipantCheckedIn", f"{plan.lab_id}-forger", before, checkin)),
        # the host's clock is 73 years ahead: one check-in would close the window on everyone still arriving
        (topics.LAB.name, sid, raw("ParticipantCheckedIn", plan.lab_id, plan.starts_at.replace(year=2099).isoformat(),
                                   checkin)),
        # … or 973 years: out of the contract's range already
        (topics.LAB.name, sid, raw("ParticipantCheckedIn", plan.lab_id,
                                   plan.starts_at.isoformat().replace(str(plan.starts_at.year), "2999", 1), checkin)),
        # keyed by the NIP, and with no key: they would land beside another session's state
        (topics.LAB.name, absent.nip.encode(), raw("ParticipantCheckedIn", plan.lab_id, before, checkin)),
        (topics.LAB.name, None, raw("ParticipantCheckedIn", plan.lab_id, before, checkin)),
    ]
    # A session in progress now whose lab never sends anything: the watch must call that lab silent.
    now = datetime.now(UTC).replace(microsecond=0)
    quiet = ev.new_event(ev.SessionScheduled, lab_id=SCHEDULER_ID, occurred_at=now - timedelta(days=1), payload={
        "session_id": "S-QUIET-1", "lab_id": "lab-never-heard", "activity_id": plan.activity_id,
        "agency_id": plan.agency_id, "starts_at": now - timedelta(minutes=5),
        "checkin_closes_at": now + timedelta(minutes=25), "ends_at": now + timedelta(hours=3),
        "blueprint_id": plan.blueprint_id, "purpose": plan.purpose.value})

    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        schedule = [wire(e) for e in day.schedule] + [wire(quiet)]
        asyncio.run(send(settings, schedule + [(t, k, orjson.dumps(v)) for t, k, v in forged]
                         + [wire(e) for e in day.lab]))
        asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=180, progress=worker.check))
        assert worker.alive(), (tmp_path / "worker.log").read_text()[-3000:]
        base = f"http://127.0.0.1:{settings.worker_web_port}"
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        overview = httpx.get(f"{base}/attendance.json", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
    finally:
        worker.stop()

    store = ResultsStore(settings.database_url)
    summary = store.summary()
    assert summary["deadletters_by_reason"] == {"wrong_topic": 2, "wrong_lab": 1, "implausible_time": 1,
                                                "invalid_field": 1, "wrong_key": 2}
    # nothing changed: attendance and results are the day's own
    with Session(store.engine) as db:
        rows = {(a.session_id, a.nip): {"status": a.status, "late": a.late, "lab_id": a.lab_id}
                for a in db.scalars(select(m.Attendance))}
        summary_labs = set(db.scalars(select(m.SessionSummaryRow.lab_id)))
    assert rows[(plan.session_id, absent.nip)]["status"] == St.NO_SHOW
    assert rows[(plan.session_id, present.nip)]["status"] == St.CHECKED_IN
    assert not any(r["late"] for r in rows.values())  # no window was closed early by a forged time
    assert summary["participants_checked_in"] == day.attended
    assert summary["results_in_store"] == day.attended
    assert {r["result_version"] for r in store.current_results()} == {1}  # no rescore happened

    # the hosting labs, never the scheduler, in every view and series
    hosts = {p.lab_id for p in day.sessions.values()} | {"lab-never-heard"}
    assert {r["lab_id"] for r in rows.values()} <= hosts and summary_labs == hosts
    assert SCHEDULER_ID not in metrics and SCHEDULER_ID not in orjson.dumps(overview).decode()
    labs = {lab["lab_id"]: lab for lab in overview["by_lab"]}
    assert labs["lab-never-heard"]["silent"] is True and labs["lab-never-heard"]["sessions_in_progress"] == 1
    assert 'cact_lab_sessions_in_progress{lab_id="lab-never-heard"} 1.0' in metrics
    # and the shipped alert rules, fed what this worker served, call that lab and no other
    fired = alerts_on(metrics, tmp_path)
    assert fired == {"CactLabNotHeard": {"lab-never-heard"}}


LAB_SERIES = re.compile(r'^(cact_lab_last_event_timestamp_seconds|cact_lab_sessions_in_progress)'
                        r'\{lab_id="([^"]+)"\} (\S+)$', re.M)


def alerts_on(metrics: str, tmp_path: Path) -> dict[str, set[str]]:
    """The lab alerts of deploy/prometheus/alerts.yml evaluated by promtool over the scraped lab series held
    for 15 minutes: which labs each alert fires for. Each alert is tested to fire for nobody, and promtool's
    failure report lists who it fired for."""
    series = [(name, lab, float(value)) for name, lab, value in LAB_SERIES.findall(metrics)]
    assert series, "no lab series on /metrics"
    rules = Path(__file__).parents[3] / "deploy" / "prometheus" / "alerts.yml"
    fired: dict[str, set[str]] = {}
    for alert in ("CactLabSilent", "CactLabNotHeard"):
        test = {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": [{
            "interval": "1m",
            "input_series": [{"series": f'{name}{{lab_id="{lab}",instance="w1"}}', "values": f"{value:.0f}x15"}
                             for name, lab, value in series],
            "alert_rule_test": [{"eval_time": "12m", "alertname": alert, "exp_alerts": []}]}]}
        path = tmp_path / f"{alert}.yml"
        path.write_text(json.dumps(test))  # YAML is a superset of JSON
        run = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
        if run.returncode != 0:
            got = (run.stdout + run.stderr).split("got:", 1)
            assert len(got) == 2, run.stdout + run.stderr
            fired[alert] = set(re.findall(r'lab_id="([^"]+)"', got[1]))
    return fired

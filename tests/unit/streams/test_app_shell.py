"""The worker's shell (streams/app.py, streams/pages.py) without a broker: built twice in one process, each app on
the registry it was given; its pages read the views it was given; its services are Faust tasks, crash-only
where asked; and a committed chunk is counted per event type and per dead-letter reason, and each of its records'
latency observed once the broker has acknowledged its outputs and state."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from schemas.settings import Settings
from streams import app as shell
from streams import commit
from streams.app import Service, create_app
from streams.metrics import WorkerMetrics
from streams.pages import OperatorData

TOKEN = "shell-test-token-" + "0123456789abcdef"


class Views:
    """The results store's answers, as the composition root would give them; ``down``: the store is."""

    def __init__(self) -> None:
        self.down = False
        self.asked: list[tuple[str, Any]] = []

    def _ask(self, what: str, arg: Any = None) -> None:
        self.asked.append((what, arg))
        if self.down:
            raise ConnectionRefusedError("database down")

    def attendance_overview(self, *, threshold: float, silent_after_s: float,
                            lab_last_seen: Mapping[str, float]) -> dict[str, Any]:
        self._ask("overview", (threshold, silent_after_s, dict(lab_last_seen)))
        return {"sessions": [], "overall": {"no_show_rate": None}}

    def absent(self, session_id: str) -> dict[str, Any] | None:
        self._ask("absent", session_id)
        return {"session_id": session_id, "absent": []} if session_id == "S1" else None

    def held_back(self) -> dict[str, Any]:
        self._ask("held_back")
        return {"results": []}

    def outbox_status(self) -> dict[str, Any]:
        self._ask("outbox")
        return {"pending": 4}

    def reports(self) -> dict[str, Any]:
        self._ask("reports")
        return {"due": [], "builds": []}

    def report_file(self, activity_id: str, version: int, name: str) -> Any:
        self._ask("report_file", (activity_id, version, name))
        return self.files.get((activity_id, version, name))

    files: dict[tuple[str, int, str], Any] = {}


class Backlog:
    """A store-backed collector as the composition root adds them: reads the app's OperatorData at scrape time."""

    def __init__(self, data: OperatorData) -> None:
        self.data = data

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("shell_test_outbox_pending", "pending, as the views say",
                                value=self.data.outbox_status()["pending"])


def settings(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'never-opened.db'}", data_dir=tmp_path / "worker",
                    operator_token=TOKEN, **changes)


def build(tmp_path: Path, views: Views | None = None, **kw: Any) -> tuple[Any, CollectorRegistry, Views]:
    registry, views = CollectorRegistry(), views or Views()
    app = create_app(settings(tmp_path), views=views, registry=registry,
                     collectors=lambda data: [Backlog(data)], **kw)
    return app, registry, views


class Browser:
    """Requests to one app's web server, all in one event loop (aiohttp binds an app to its first loop)."""

    def __init__(self, app: Any) -> None:
        app.web.init_server()
        self.web_app = app.web.web_app

    def run(self, scenario: Any) -> Any:
        async def main() -> Any:
            async with TestClient(TestServer(self.web_app)) as client:
                async def get(path: str, *, token: bool = True) -> tuple[int, str]:
                    resp = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"} if token else {})
                    return resp.status, await resp.text()
                return await scenario(get)
        return asyncio.run(main())


def test_two_apps_in_one_process_count_each_on_its_own_registry(tmp_path: Path) -> None:
    (one, r1, _), (two, r2, _) = build(tmp_path / "a"), build(tmp_path / "b")
    assert one is not two
    m = WorkerMetrics(CollectorRegistry())  # and a third set of the same names beside them
    m.events_in.labels(event_type="SessionScheduled").inc()
    for registry in (r1, r2):
        assert registry.get_sample_value("cact_events_in_total", {"event_type": "SessionScheduled"}) is None
        assert registry.get_sample_value("cact_web_login_failures_total", {"method": "bearer"}) == 0.0
        assert registry.get_sample_value("shell_test_outbox_pending") == 4.0
        assert registry.get_sample_value("cact_broker_log_lost") == 0.0


def test_metrics_serves_the_registry_it_was_given_without_a_token(tmp_path: Path) -> None:
    app, _, _ = build(tmp_path)
    status, body = Browser(app).run(lambda get: get("/metrics", token=False))
    assert status == 200
    assert "shell_test_outbox_pending 4.0" in body and "cact_consumer_lag_messages" in body
    assert "cact_events_in_total" in body and "cact_sink_" not in body  # the sink's are the composition root's


class SlowStore(Views):
    """A results store that takes its time answering the outbox query, as a big one does at every scrape."""

    def __init__(self) -> None:
        super().__init__()
        self.asked_outbox, self.answer = threading.Event(), threading.Event()

    def outbox_status(self) -> dict[str, Any]:
        self.asked_outbox.set()
        self.answer.wait(10)  # bounded, so that a loop it blocks comes back and the test fails rather than hangs
        return super().outbox_status()


def test_a_scrape_waiting_on_the_store_does_not_hold_the_event_loop(tmp_path: Path) -> None:
    app, _, views = build(tmp_path, SlowStore())
    assert isinstance(views, SlowStore)

    async def scenario(get: Any) -> tuple[tuple[int, str], bool, tuple[int, str]]:
        scrape = asyncio.ensure_future(get("/metrics", token=False))
        assert await asyncio.to_thread(views.asked_outbox.wait, 10)
        health = await get("/healthz", token=False)  # the loop answers while the store has not
        pending = not scrape.done()
        views.answer.set()
        return health, pending, await scrape

    health, scrape_was_pending, (status, body) = Browser(app).run(scenario)
    assert health[0] == 200 and scrape_was_pending
    assert status == 200 and "shell_test_outbox_pending 4.0" in body


def test_the_attendance_page_reads_the_views_with_the_settings_and_the_silent_lab_watch(tmp_path: Path) -> None:
    app, _, views = build(tmp_path)

    async def scenario(get: Any) -> list[tuple[int, str]]:
        up = await get("/attendance.json")
        views.down = True
        return [up, await get("/attendance.json"), await get("/attendance.json", token=False)]

    (status, body), (down, down_body), (anonymous, _) = Browser(app).run(scenario)
    assert status == 200 and '"freshness"' in body
    s = settings(tmp_path)
    assert views.asked[0] == ("overview", (s.noshow_threshold, s.lab_silent_after_seconds, {}))
    assert down == 503 and "results store unavailable (ConnectionRefusedError)" in down_body
    assert '"freshness"' in down_body and anonymous == 401


def test_the_lists_with_nips_answer_from_the_views_and_say_what_is_wrong(tmp_path: Path) -> None:
    app, _, views = build(tmp_path)

    async def scenario(get: Any) -> list[tuple[int, str]]:
        up = [await get(p) for p in ("/absent.json", "/absent.json?session=S1", "/absent.json?session=S9",
                                     "/held-back.json")]
        views.down = True
        return up + [await get("/held-back.json"), await get("/absent.json?session=S1"),
                     await get("/held-back.json", token=False)]

    no_session, s1, s9, held, held_down, absent_down, anonymous = Browser(app).run(scenario)
    assert no_session[0] == 400 and "name the session" in no_session[1]
    assert s1 == (200, '{"session_id":"S1","absent":[]}')
    assert s9[0] == 404 and "S9" in s9[1]
    assert held == (200, '{"results":[]}')
    assert held_down[0] == absent_down[0] == 503 and anonymous[0] == 401


def test_report_files_are_served_only_with_the_token_and_only_as_the_views_vouch(tmp_path: Path) -> None:
    app, _, views = build(tmp_path)
    report = tmp_path / "rekap-ACT-1.pdf"
    report.write_bytes(b"%PDF-1.4 report body")
    views.files = {("ACT-1", 2, "rekap-ACT-1.pdf"): SimpleNamespace(path=report, name="rekap-ACT-1.pdf",
                                                                    content_type="application/pdf")}
    ok = "/reports/file?activity=ACT-1&version=2&name=rekap-ACT-1.pdf"

    async def scenario(get: Any) -> list[tuple[int, str]]:
        got = [await get(ok), await get(ok, token=False), await get("/reports.json", token=False),
               await get("/reports.json"), await get("/operator/reports", token=False),
               await get("/reports/file?activity=ACT-1&version=x&name=rekap-ACT-1.pdf"),
               await get("/reports/file?activity=ACT-1&version=2&name=../../etc/passwd")]
        views.down = True
        return got + [await get(ok)]

    served, anonymous, list_anonymous, listed, page_anonymous, bad_version, unknown, down = Browser(app).run(scenario)
    assert served == (200, "%PDF-1.4 report body")
    assert anonymous[0] == list_anonymous[0] == 401 and "report body" not in anonymous[1]
    assert page_anonymous[0] in (302, 401) or "login" in page_anonymous[1].lower()
    assert listed == (200, '{"due":[],"builds":[]}')
    assert bad_version[0] == 400 and unknown[0] == 404 and down[0] == 503
    assert ("report_file", ("ACT-1", 2, "../../etc/passwd")) in views.asked  # the views decide, never the path


def test_services_become_tasks_of_the_app(tmp_path: Path) -> None:
    ran: list[str] = []

    async def sink() -> None:
        ran.append("sink")

    app, _, _ = build(tmp_path, services=[Service("sink", sink)])
    plain, _, _ = build(tmp_path / "plain")
    assert len(app._app_tasks) == len(plain._app_tasks) + 1
    asyncio.run(app._app_tasks[-1]())
    assert ran == ["sink"]


class Exited(BaseException):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@pytest.fixture
def no_real_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    def exit_(code: int) -> None:
        raise Exited(code)

    monkeypatch.setattr(commit.os, "_exit", exit_)
    monkeypatch.setattr(commit.logging, "shutdown", lambda: None)


@pytest.mark.usefixtures("no_real_exit")
def test_a_crash_only_service_that_fails_ends_the_worker_and_a_stop_passes_through() -> None:
    async def broken() -> None:
        raise RuntimeError("a bug in the sink")

    with pytest.raises(Exited) as exited:
        asyncio.run(shell._task(Service("sink", broken, crash="the sink stopped"))())
    assert exited.value.code == commit.EXIT_CRASH

    async def stopped() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(shell._task(Service("sink", stopped, crash="the sink stopped"))())


@pytest.mark.usefixtures("no_real_exit")
def test_a_service_without_a_crash_message_fails_on_its_own() -> None:
    async def broken() -> None:
        raise RuntimeError("SI ASN client bug")

    with pytest.raises(RuntimeError):  # Faust logs it; the worker stays up
        asyncio.run(shell._task(Service("siasn_pusher", broken))())


def test_a_committed_chunk_is_counted_per_event_type_and_per_dead_letter_reason() -> None:
    m = WorkerMetrics(CollectorRegistry())
    m.chunk_committed(written=7, accepted=["AnswersSaved", "AnswersSaved", "ParticipantCheckedIn"],
                      emitted=["ParticipantScored", "DeadLettered", "DeadLettered"],
                      deadletters=[("malformed_json", "cact.lab.v1"), ("malformed_json", "cact.lab.v1"),
                                   ("wrong_topic", "cact.schedule.v1")])
    value = m.registry.get_sample_value
    assert value("cact_state_writes_total") == 7
    assert value("cact_events_in_total", {"event_type": "AnswersSaved"}) == 2
    assert value("cact_events_in_total", {"event_type": "ParticipantCheckedIn"}) == 1
    assert value("cact_events_out_total", {"event_type": "DeadLettered"}) == 2
    assert value("cact_deadletters_total", {"reason": "malformed_json", "source_topic": "cact.lab.v1"}) == 2
    assert value("cact_deadletters_total", {"reason": "wrong_topic", "source_topic": "cact.schedule.v1"}) == 1


class FlushedOverlay:
    """A table overlay whose changelog write the broker acknowledges, or refuses."""

    def __init__(self, steps: list[str], refuse: bool = False) -> None:
        self.steps, self.refuse = steps, refuse

    async def flush(self, producer: Any) -> int:
        if self.refuse:
            raise ConnectionError("changelog write refused")
        self.steps.append("state acknowledged")
        return 1


def records(*timestamps: float | None) -> list[Any]:
    return [SimpleNamespace(message=SimpleNamespace(timestamp=t)) for t in timestamps]


def test_each_record_s_latency_is_observed_once_its_outputs_and_state_are_acknowledged() -> None:
    m = WorkerMetrics(CollectorRegistry())
    steps: list[str] = []

    def observe(seconds: float) -> None:
        steps.append("latency")
        m.event_latency.observe(seconds)

    committer = commit.Committer(lambda: SimpleNamespace(), lambda chunk, n: steps.append("bookkeeping"),
                                 latency=observe, clock=lambda: 1000.0)
    # sent 0.3 s and 40 s before the acknowledgement; one without a timestamp; one from a lab clock 2 s ahead
    chunk = SimpleNamespace(out=[], sessions=FlushedOverlay(steps), participants=FlushedOverlay(steps),
                            records=records(999.7, 960.0, None, 1002.0))
    asyncio.run(committer.commit(chunk))  # type: ignore[arg-type]
    assert steps == ["state acknowledged", "state acknowledged", "bookkeeping", "latency", "latency", "latency"]
    value = m.registry.get_sample_value
    assert value("cact_event_latency_seconds_count") == 3
    assert value("cact_event_latency_seconds_sum") == pytest.approx(40.3)
    assert value("cact_event_latency_seconds_bucket", {"le": "0.0"}) is None  # no bucket below 0: ahead reads 0
    assert value("cact_event_latency_seconds_bucket", {"le": "0.01"}) == 1
    assert value("cact_event_latency_seconds_bucket", {"le": "0.3"}) == 2
    assert value("cact_event_latency_seconds_bucket", {"le": "30.0"}) == 2
    assert value("cact_event_latency_seconds_bucket", {"le": "60.0"}) == 3

    refused = SimpleNamespace(out=[], sessions=FlushedOverlay(steps, refuse=True), participants=FlushedOverlay(steps),
                              records=records(999.0))
    with pytest.raises(ConnectionError):
        asyncio.run(committer.commit(refused))  # type: ignore[arg-type]
    assert value("cact_event_latency_seconds_count") == 3  # nothing observed for a chunk not acknowledged

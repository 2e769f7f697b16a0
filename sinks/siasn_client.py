"""Async client for the SI ASN API (domain.md §5): the one place in the pipeline that talks to BKN.

Why it is built this way:

- SI ASN sits behind two token layers, a gateway token (``Authorization: Bearer``) and a Keycloak SSO token
  (``Auth: bearer``). Both are cached until shortly before they expire; a 401 drops both and retries once,
  because either may be revoked server-side before its advertised expiry.
- A save is not idempotent on SI ASN's side: sending it twice makes two records. A failure *after* the request
  went out (read timeout, dropped connection, a gateway 5xx) is therefore ambiguous, and before sending again
  the client reads the person's records back and treats an identical one as delivered.
- Validation errors are final (:class:`SiasnRejected`: someone has to fix the data); outages are not
  (:class:`SiasnUnavailable`: the outbox tries again later). ``sinks/siasn_push.py`` relies on exactly that split.
- Credentials come only from the environment or secret files (:meth:`SiasnConfig.from_env`), are held as
  ``SecretStr`` and never reach a log line or an exception text; NIPs in log lines are masked (domain.md §6).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from schemas.domain import POTENTIAL_FIELDS, SIASN_FIELD
from schemas.nip import mask_nip

log = logging.getLogger("cact.siasn.client")

#: The nine competency fields of ``POST /kompetensi/kompetensi/save``, in the order of domain.md §3.
KOMPETENSI_FIELDS: tuple[str, ...] = tuple(SIASN_FIELD.values())
#: The six score fields of ``POST /kompetensi/potensi/save`` (besides ``pnsOrangId``).
POTENSI_FIELDS: tuple[str, ...] = (*POTENTIAL_FIELDS, "total")
ENV_PREFIX = "CACT_SIASN_"
#: Fields that may also be read from the file named by ``CACT_SIASN_<NAME>_FILE`` (Docker/Kubernetes secrets).
FILE_FIELDS: frozenset[str] = frozenset({"consumer_key", "consumer_secret", "sso_client_id", "sso_username",
                                         "sso_password"})
_OK_CODES = frozenset({"1", "200"})  # the {code, count, data, message} envelope's "all good"


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------

class SiasnError(Exception):
    """Base of every error the client raises. Texts never hold a credential, a token or a full NIP."""


class SiasnRejected(SiasnError):
    """SI ASN refused the data itself (validation): sending the same payload again cannot help.

    ``message`` is SI ASN's own message, kept verbatim because it is what the operator needs to fix the data.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class SiasnUnavailable(SiasnError):
    """SI ASN could not be reached or kept failing: the same payload may well succeed later."""

    def __init__(self, message: str, *, attempts: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts


class SiasnAuthError(SiasnUnavailable):
    """Credentials refused or access forbidden (allow-list): not a data problem, so the result stays pending."""


class SiasnConfigError(ValueError):
    """The environment does not describe a usable client; names the variables, never their values."""


class _Transient(Exception):
    """A failure worth retrying. ``sent`` says whether SI ASN may have acted on the request (ambiguous)."""

    def __init__(self, detail: str, *, sent: bool, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail, self.sent, self.retry_after = detail, sent, retry_after


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------

class SiasnConfig(BaseModel):
    """Where SI ASN is and how hard to try. Secrets are ``SecretStr`` so a repr or a dump never shows them."""

    # hide_input_in_errors: a validation error must not echo the submitted values (they include secrets).
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    base_url: str = "https://apimws.bkn.go.id:8243/apisiasn/1.0"
    gateway_token_url: str = "https://apimws.bkn.go.id/oauth2/token"
    sso_token_url: str = "https://sso-siasn.bkn.go.id/auth/realms/public-siasn/protocol/openid-connect/token"
    consumer_key: str = Field(min_length=1)
    consumer_secret: SecretStr = Field(min_length=1)
    sso_client_id: str = Field(min_length=1)
    sso_username: str = Field(min_length=1)
    sso_password: SecretStr = Field(min_length=1)
    timeout_s: float = Field(default=10, gt=0)
    max_attempts: int = Field(default=6, ge=1)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30, ge=0)
    rate_per_s: float = Field(default=10, ge=0, description="client-side limit over all calls; 0 disables it")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SiasnConfig:
        """Read ``CACT_SIASN_<FIELD>`` variables; credentials may instead come from ``CACT_SIASN_<FIELD>_FILE``.

        Credentials live only in the environment or in files mounted as secrets, never in code or settings
        files. Errors name the variables that are missing or wrong, never a value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, str] = {}
        for name in cls.model_fields:
            var = ENV_PREFIX + name.upper()
            file_var = var + "_FILE"
            if name in FILE_FIELDS and env.get(file_var):
                if env.get(var):
                    raise SiasnConfigError(f"set {var} or {file_var}, not both")
                try:
                    values[name] = Path(env[file_var]).read_text(encoding="utf-8").rstrip("\r\n")
                except OSError as exc:
                    raise SiasnConfigError(f"cannot read the file named by {file_var}: {exc.strerror}") from None
            elif env.get(var):
                values[name] = env[var]
        missing = [ENV_PREFIX + n.upper() for n, f in cls.model_fields.items() if f.is_required() and n not in values]
        if missing:
            raise SiasnConfigError("SI ASN client not configured: set " + ", ".join(missing)
                                   + " (credentials may also come from <NAME>_FILE)")
        return cls.model_validate(values)


@dataclass(frozen=True)
class DeliveryResult:
    """How a save went: ``attempts`` counts tries including the successful one (or the confirming read-back)."""

    attempts: int
    pns_id: str
    status_code: int
    confirmed_by_readback: bool = False  # an earlier, ambiguous try had in fact been saved: nothing sent twice


# ------------------------------------------------------------------------------------------------
# Pacing
# ------------------------------------------------------------------------------------------------

def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(max_s, base_s·2^(attempt-1))].

    Random over the whole window so that many workers coming back after an outage do not hit a recovering
    SI ASN in lockstep.
    """
    cap = min(max_s, base_s * 2 ** min(max(attempt - 1, 0), 30))
    return (rng or random).uniform(0, cap)


class TokenBucket:
    """Async token bucket shared by every request of one client.

    BKN throttles per consumer key, so concurrent callers must not add up past the agreed rate. With the
    default burst of 1 the requests are simply spaced 1/rate apart. A rate of 0 disables the limit.
    """

    def __init__(self, rate_per_s: float, burst: float = 1.0) -> None:
        self.rate = rate_per_s
        self.burst = max(1.0, burst)
        self._tokens = self.burst
        self._last = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self.rate <= 0:
            return
        async with self._lock:  # FIFO: waiters are served in arrival order
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


# ------------------------------------------------------------------------------------------------
# Masking: NIPs are personal data, and httpx logs request URLs (which carry them) at INFO
# ------------------------------------------------------------------------------------------------

_NIP_RE = re.compile(r"(?<!\d)\d{18}(?!\d)")


def mask_nips(text: str) -> str:
    """Mask every 18-digit run in ``text`` (URLs, messages) the way :func:`schemas.nip.mask_nip` does."""
    return _NIP_RE.sub(lambda m: mask_nip(m.group()), text)


class _MaskNipFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_nips(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_httpx_log = logging.getLogger("httpx")
if not any(type(f).__name__ == _MaskNipFilter.__name__ for f in _httpx_log.filters):
    _httpx_log.addFilter(_MaskNipFilter())


# ------------------------------------------------------------------------------------------------
# The client
# ------------------------------------------------------------------------------------------------

@dataclass
class _Token:
    value: str
    expires_at: float  # time.monotonic()


@dataclass(frozen=True)
class _Outcome:
    body: dict[str, Any]
    status_code: int
    attempts: int
    readback: bool = False


class SiasnClient:
    """SI ASN over HTTP: tokens, rate limit, retries with backoff, and saves that never happen twice.

    Use as ``async with SiasnClient(config) as client: ...``. ``transport`` lets tests plug in
    ``httpx.MockTransport``.
    """

    def __init__(self, config: SiasnConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self._base = config.base_url.rstrip("/")
        self._http = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(config.timeout_s),
                                       headers={"Accept": "application/json"})
        self._bucket = TokenBucket(config.rate_per_s)
        self._rng = rng or random.Random()
        self._token_lock = asyncio.Lock()  # one token fetch at a time: no stampede after a 401
        self._gateway: _Token | None = None
        self._sso: _Token | None = None
        self._pns_ids: dict[str, str] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- public API -------------------------------------------------------------------------------

    async def pns_id(self, nip: str) -> str:
        """SI ASN's internal id of the person (``data.id`` of ``/pns/data-utama/{nip}``), cached per NIP.

        The id never changes for a person, and looking it up before every save would double the calls.
        """
        if nip in self._pns_ids:
            return self._pns_ids[nip]
        out = await self._call("GET", f"/pns/data-utama/{nip}", what="data-utama", nip=nip)
        data = out.body.get("data")
        pid = data.get("id") if isinstance(data, dict) else None
        if pid is None or pid == "":
            raise SiasnRejected(f"SI ASN has no id for {mask_nip(nip)}: {_message(out.body) or 'no data'}",
                                status_code=out.status_code)
        self._pns_ids[nip] = str(pid)
        return self._pns_ids[nip]

    async def save_kompetensi(self, nip: str, levels: Mapping[str, int], *, tahun: int | None = None
                              ) -> DeliveryResult:
        """Save the nine competency levels (1..5) of ``nip`` for ``tahun`` (default: this year), exactly once.

        Bad levels raise :class:`SiasnRejected` without any call: such a payload can never be delivered, and
        the outbox must mark it rejected rather than retry it forever.
        """
        fields = _kompetensi_fields(levels)
        year = tahun if tahun is not None else date.today().year
        pns = await self.pns_id(nip)

        async def already_saved() -> bool:
            records = await self._read_once("rw-kompetensi", nip, _normalise_kompetensi)
            return any(_same_kompetensi(r, fields, year) for r in records)

        out = await self._call("POST", "/kompetensi/kompetensi/save", what="kompetensi save", nip=nip,
                               json={"pnsId": pns, **fields, "tahun": year}, already_saved=already_saved)
        return DeliveryResult(out.attempts, pns, out.status_code, out.readback)

    async def save_potensi(self, nip: str, potensi: Mapping[str, float]) -> DeliveryResult:
        """Save the potential profile (the six :data:`POTENSI_FIELDS`) of ``nip``, exactly once."""
        fields = _potensi_fields(potensi)
        pns = await self.pns_id(nip)

        async def already_saved() -> bool:
            records = await self._read_once("rw-potensi", nip, _normalise_potensi)
            return any(_same_potensi(r, fields) for r in records)

        out = await self._call("POST", "/kompetensi/potensi/save", what="potensi save", nip=nip,
                               json={"pnsOrangId": pns, **fields}, already_saved=already_saved)
        return DeliveryResult(out.attempts, pns, out.status_code, out.readback)

    async def holds_kompetensi(self, nip: str, levels: Mapping[str, int], *, tahun: int | None = None) -> bool:
        """Whether SI ASN already holds exactly these levels for ``tahun``: the outbox asks before re-sending a
        push whose earlier try may have got through (its worker died before recording the answer)."""
        fields, year = _kompetensi_fields(levels), tahun if tahun is not None else date.today().year
        return any(_same_kompetensi(r, fields, year) for r in await self.read_kompetensi(nip))

    async def holds_potensi(self, nip: str, potensi: Mapping[str, float]) -> bool:
        """Whether SI ASN already holds exactly this potential profile (see :meth:`holds_kompetensi`)."""
        fields = _potensi_fields(potensi)
        return any(_same_potensi(r, fields) for r in await self.read_potensi(nip))

    async def read_kompetensi(self, nip: str) -> list[dict[str, Any]]:
        """The competency records SI ASN holds for ``nip`` (levels and ``tahun`` as ints); [] when none."""
        out = await self._call("GET", f"/pns/rw-kompetensi/{nip}", what="rw-kompetensi", nip=nip,
                               empty_if_not_found=True)
        return [_normalise_kompetensi(r) for r in _records(out.body)]

    async def read_potensi(self, nip: str) -> list[dict[str, Any]]:
        """The potential records SI ASN holds for ``nip`` (scores as floats); [] when none."""
        out = await self._call("GET", f"/pns/rw-potensi/{nip}", what="rw-potensi", nip=nip,
                               empty_if_not_found=True)
        return [_normalise_potensi(r) for r in _records(out.body)]

    # -- retries ----------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, *, what: str, nip: str, json: dict[str, Any] | None = None,
                    already_saved: Callable[[], Awaitable[bool]] | None = None,
                    empty_if_not_found: bool = False) -> _Outcome:
        """Send with retries on transient failures; before re-sending a save after an ambiguous one, read back.

        A read-back that itself fails counts as an attempt and keeps the save ambiguous, so the save is only
        sent again once SI ASN has positively shown it does not hold the record.
        """
        ambiguous = False
        last = ""
        attempts = self.config.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                if ambiguous and already_saved is not None:
                    if await already_saved():
                        log.info("SI ASN %s for %s: an earlier try had been saved, not sending again",
                                 what, mask_nip(nip))
                        return _Outcome({}, 200, attempt, readback=True)
                    ambiguous = False
                resp = await self._send_once(method, path, json=json)
                return _Outcome(_parse(resp, empty_if_not_found=empty_if_not_found), resp.status_code, attempt)
            except _Transient as exc:
                ambiguous = ambiguous or (exc.sent and already_saved is not None)
                last = exc.detail
                if attempt == attempts:
                    break
                delay = backoff_delay(attempt, self.config.backoff_base_s, self.config.backoff_max_s, self._rng)
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, self.config.backoff_max_s))
                log.warning("SI ASN %s for %s failed (attempt %d/%d): %s; retrying in %.2fs%s", what,
                            mask_nip(nip), attempt, attempts, last, delay,
                            " after reading back" if ambiguous else "")
                await asyncio.sleep(delay)
        raise SiasnUnavailable(f"SI ASN {what} for {mask_nip(nip)} failed after {attempts} attempts: {last}",
                               attempts=attempts)

    async def _read_once(self, kind: str, nip: str,
                         normalise: Callable[[dict[str, Any]], dict[str, Any]]) -> list[dict[str, Any]]:
        """One read-back inside a save's retry loop (no retries of its own: the loop's attempts pay for it).

        A read SI ASN refuses cannot confirm anything, so it counts as "not there" and the save decides.
        """
        resp = await self._send_once("GET", f"/pns/{kind}/{nip}")
        try:
            body = _parse(resp, empty_if_not_found=True)
        except SiasnRejected:
            return []
        return [normalise(r) for r in _records(body)]

    # -- one request ------------------------------------------------------------------------------

    async def _send_once(self, method: str, path: str, *, json: dict[str, Any] | None = None) -> httpx.Response:
        """One request as SI ASN sees it: rate-limited, both tokens attached, one re-authentication on 401."""
        for _ in range(2):
            gateway, sso = await self._tokens()
            await self._bucket.acquire()
            try:
                resp = await self._http.request(method, self._base + path, json=json,
                                                headers={"Authorization": f"Bearer {gateway}",
                                                         "Auth": f"bearer {sso}"})
            except httpx.RequestError as exc:
                raise _Transient(_describe(exc), sent=_was_sent(exc)) from exc
            if resp.status_code != 401:
                return resp
            log.info("SI ASN answered 401: dropping both tokens and fetching new ones")
            async with self._token_lock:  # drop only the tokens this request used: a racer may have renewed them
                if self._gateway is not None and self._gateway.value == gateway:
                    self._gateway = None
                if self._sso is not None and self._sso.value == sso:
                    self._sso = None
        raise SiasnAuthError("SI ASN refused freshly issued tokens (HTTP 401)")

    async def _tokens(self) -> tuple[str, str]:
        async with self._token_lock:
            now = time.monotonic()
            if self._gateway is None or self._gateway.expires_at <= now:
                self._gateway = await self._fetch_token(
                    "gateway", self.config.gateway_token_url, {"grant_type": "client_credentials"},
                    httpx.BasicAuth(self.config.consumer_key, self.config.consumer_secret.get_secret_value()))
            if self._sso is None or self._sso.expires_at <= now:
                self._sso = await self._fetch_token(
                    "SSO", self.config.sso_token_url,
                    {"grant_type": "password", "client_id": self.config.sso_client_id,
                     "username": self.config.sso_username,
                     "password": self.config.sso_password.get_secret_value()})
            return self._gateway.value, self._sso.value

    async def _fetch_token(self, which: str, url: str, form: dict[str, str],
                           auth: httpx.BasicAuth | None = None) -> _Token:
        """Fetch a token; renew it a little before its expiry (10% of its life, at most 30 s) to avoid 401s."""
        await self._bucket.acquire()
        try:
            resp = await self._http.post(url, data=form, auth=auth or httpx.USE_CLIENT_DEFAULT)
        except httpx.RequestError as exc:
            raise _Transient(f"{which} token: {_describe(exc)}", sent=False) from exc
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise _Transient(f"{which} token: HTTP {resp.status_code}", sent=False, retry_after=_retry_after(resp))
        body = _json(resp)
        token = body.get("access_token") if isinstance(body, dict) else None
        if resp.status_code != 200 or not isinstance(token, str) or not token:
            # Only the OAuth error fields are quoted: anything else in the body could be sensitive.
            detail = ""
            if isinstance(body, dict):
                detail = " ".join(str(body[k])[:200] for k in ("error", "error_description") if body.get(k))
            raise SiasnAuthError(f"{which} token refused (HTTP {resp.status_code}) {detail}".rstrip())
        try:
            ttl = float(body.get("expires_in") or 300)
        except (TypeError, ValueError):
            ttl = 300.0
        return _Token(token, time.monotonic() + ttl - min(30.0, ttl * 0.1))


# ------------------------------------------------------------------------------------------------
# Helpers: answers, payloads, records
# ------------------------------------------------------------------------------------------------

def _was_sent(exc: httpx.RequestError) -> bool:
    """False only when the request certainly never left: then a retry cannot duplicate anything."""
    return not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return type(exc).__name__ + (f": {mask_nips(text)[:300]}" if text else "")


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return float(resp.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _message(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    for key in ("message", "error_description", "error", "description"):
        if body.get(key):
            return str(body[key])[:2000]
    return ""


def _parse(resp: httpx.Response, *, empty_if_not_found: bool = False) -> dict[str, Any]:
    """Sort an answer into data, a final rejection or a transient failure.

    Both envelopes SI ASN uses are understood: ``{code, count, data, message}`` (ok when code is 1 or 200) and
    ``{mapData, message, success}`` (ok when success is true). A 5xx other than 503 may have been acted on
    upstream (a gateway timing out on a slow backend), so it is ambiguous; 503, 408 and 429 are not.
    For reads, "not found" means "no records".
    """
    code = resp.status_code
    body = _json(resp)
    if code >= 500 or code in (408, 429):
        raise _Transient(f"HTTP {code}", sent=code not in (408, 429, 503), retry_after=_retry_after(resp))
    if code == 403:
        raise SiasnAuthError(f"SI ASN forbade the call (HTTP 403, IP allow-list?): {_message(body)}".rstrip(": "))
    if code == 404 and empty_if_not_found:
        return {}
    if code >= 400:
        raise SiasnRejected(_message(body) or f"HTTP {code}", status_code=code)
    if not isinstance(body, dict):
        raise _Transient(f"HTTP {code} without a JSON object", sent=True)
    failed = ("success" in body and body["success"] not in (True, "true")) or (
        "code" in body and str(body["code"]) not in _OK_CODES)
    if failed:
        if empty_if_not_found and not body.get("data"):
            return {}
        raise SiasnRejected(_message(body) or "SI ASN did not accept the request", status_code=code)
    return body


def _records(body: dict[str, Any]) -> list[dict[str, Any]]:
    data = body.get("data")
    if isinstance(data, dict):
        return [data]
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


def _kompetensi_fields(levels: Mapping[str, int]) -> dict[str, int]:
    problems = [f"missing {k}" for k in KOMPETENSI_FIELDS if k not in levels]
    problems += [f"unknown field {k}" for k in levels if k not in KOMPETENSI_FIELDS]
    problems += [f"{k} must be an integer 1..5" for k, v in levels.items() if k in KOMPETENSI_FIELDS
                 and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 5)]
    if problems:
        raise SiasnRejected("not sent to SI ASN: " + "; ".join(problems))
    return {k: int(levels[k]) for k in KOMPETENSI_FIELDS}


def _potensi_fields(potensi: Mapping[str, float]) -> dict[str, float]:
    problems = [f"missing {k}" for k in POTENSI_FIELDS if k not in potensi]
    problems += [f"unknown field {k}" for k in potensi if k not in POTENSI_FIELDS]
    problems += [f"{k} must be a finite number" for k, v in potensi.items() if k in POTENSI_FIELDS
                 and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v))]
    if problems:
        raise SiasnRejected("not sent to SI ASN: " + "; ".join(problems))
    return {k: potensi[k] for k in POTENSI_FIELDS}


def _as_int(value: Any) -> Any:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if not isinstance(value, bool) and number.is_integer() else value


def _as_float(value: Any) -> Any:
    try:
        return value if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return value


def _normalise_kompetensi(record: dict[str, Any]) -> dict[str, Any]:
    """Levels and year as ints, whatever SI ASN sent ("3", 3.0): comparisons then mean what they say."""
    return {k: _as_int(v) if k in KOMPETENSI_FIELDS or k == "tahun" else v for k, v in record.items()}


def _normalise_potensi(record: dict[str, Any]) -> dict[str, Any]:
    return {k: _as_float(v) if k in POTENSI_FIELDS else v for k, v in record.items()}


def _same_kompetensi(record: dict[str, Any], fields: dict[str, int], year: int) -> bool:
    """Identical levels for the same year (a record without a year is compared on levels alone).

    An identical record of the same year means SI ASN already holds exactly this result: a second copy
    would add nothing, whichever try wrote the first.
    """
    return all(record.get(k) == v for k, v in fields.items()) and record.get("tahun", year) in (year, None)


def _same_potensi(record: dict[str, Any], fields: dict[str, float]) -> bool:
    return all(isinstance(record.get(k), float) and math.isclose(record[k], float(v), abs_tol=1e-6)
               for k, v in fields.items())

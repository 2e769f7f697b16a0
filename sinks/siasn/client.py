"""The httpx adapter of the SI ASN port (sinks/siasn/port.py): the one place in the pipeline that talks to BKN.

Why it is built this way:

- A save is not idempotent on SI ASN's side: sending it twice makes two records. A failure *after* the request
  went out (read timeout, dropped connection, a gateway 5xx) is therefore ambiguous, and before sending again
  the client reads the person's records back and treats an identical one as delivered.
- Within one call it retries transient failures on the pipeline's retry policy (schemas/retry.py: full jitter
  from ``CACT_SIASN_BACKOFF_BASE_S`` up to ``CACT_SIASN_BACKOFF_MAX_S``, at least a server's Retry-After) for
  ``CACT_SIASN_MAX_ATTEMPTS`` tries, then raises :class:`SiasnUnavailable`; validation errors are
  :class:`SiasnRejected` at once. The outbox relies on exactly that split.
- Tokens (sinks/siasn/auth.py), pacing (sinks/siasn/ratelimit.py) and the reading of answers
  (sinks/siasn/wire.py) live beside it; credentials never reach a log line or an exception text, and NIPs in
  log lines are masked (domain.md §6), httpx's own request lines included (sinks/siasn/logmask.py).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date
from types import TracebackType
from typing import Any, Self

import httpx
from tenacity import RetryCallState

from schemas.nip import mask_nip
from schemas.retry import RetryPolicy, Sleep
from sinks.siasn.auth import Tokens
from sinks.siasn.config import SiasnConfig
from sinks.siasn.errors import SiasnAuthError, SiasnRejected, SiasnUnavailable
from sinks.siasn.logmask import install_httpx_nip_mask
from sinks.siasn.port import DeliveryResult
from sinks.siasn.ratelimit import TokenBucket
from sinks.siasn.wire import (
    Transient,
    describe,
    kompetensi_fields,
    message_of,
    normalise_kompetensi,
    normalise_potensi,
    parse,
    potensi_fields,
    records,
    same_kompetensi,
    same_potensi,
    was_sent,
)

log = logging.getLogger("cact.siasn.client")


def retry_policy(config: SiasnConfig, rng: random.Random | None = None) -> RetryPolicy:
    """The client's waits between two tries of one call: full jitter, so that many workers coming back after an
    outage do not hit a recovering SI ASN in lockstep."""
    return RetryPolicy(config.backoff_base_s, config.backoff_max_s, jitter=1.0, rng=rng or random.Random())


@dataclass(frozen=True)
class _Outcome:
    body: dict[str, Any]
    status_code: int
    attempts: int
    readback: bool = False


class SiasnClient:
    """SI ASN over HTTP: tokens, rate limit, retries with backoff, and saves that never happen twice.

    Use as ``async with SiasnClient(config) as client: ...``. ``transport`` lets tests plug in
    ``httpx.MockTransport``; ``rng``, ``sleep`` and ``clock`` make the retry waits and token lifetimes theirs.
    """

    def __init__(self, config: SiasnConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                 rng: random.Random | None = None, sleep: Sleep | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        install_httpx_nip_mask()  # httpx logs request URLs, which carry NIPs, at INFO
        self.config = config
        self.retry = retry_policy(config, rng)
        self._sleep = sleep
        self._base = config.base_url.rstrip("/")
        self._http = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(config.timeout_s),
                                       headers={"Accept": "application/json"})
        self._bucket = TokenBucket(config.rate_per_s)
        self._tokens = Tokens(config, self._http, self._bucket, clock=clock)
        self._pns_ids: dict[str, str] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the port ---------------------------------------------------------------------------------

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
            raise SiasnRejected(f"SI ASN has no id for {mask_nip(nip)}: {message_of(out.body) or 'no data'}",
                                status_code=out.status_code)
        self._pns_ids[nip] = str(pid)
        return self._pns_ids[nip]

    async def save_kompetensi(self, nip: str, levels: Mapping[str, int], *, tahun: int | None = None
                              ) -> DeliveryResult:
        """Save the nine competency levels (1..5) of ``nip`` for ``tahun`` (default: this year), exactly once.

        Bad levels raise :class:`SiasnRejected` without any call: such a payload can never be delivered, and
        the outbox must mark it rejected rather than retry it forever.
        """
        fields = kompetensi_fields(levels)
        year = tahun if tahun is not None else date.today().year
        pns = await self.pns_id(nip)

        async def already_saved() -> bool:
            held = await self._read_once("rw-kompetensi", nip, normalise_kompetensi)
            return any(same_kompetensi(r, fields, year) for r in held)

        out = await self._call("POST", "/kompetensi/kompetensi/save", what="kompetensi save", nip=nip,
                               json={"pnsId": pns, **fields, "tahun": year}, already_saved=already_saved)
        return DeliveryResult(out.attempts, pns, out.status_code, out.readback)

    async def save_potensi(self, nip: str, potensi: Mapping[str, float]) -> DeliveryResult:
        """Save the potential profile (the six :data:`~sinks.siasn.wire.POTENSI_FIELDS`) of ``nip``, exactly once."""
        fields = potensi_fields(potensi)
        pns = await self.pns_id(nip)

        async def already_saved() -> bool:
            held = await self._read_once("rw-potensi", nip, normalise_potensi)
            return any(same_potensi(r, fields) for r in held)

        out = await self._call("POST", "/kompetensi/potensi/save", what="potensi save", nip=nip,
                               json={"pnsOrangId": pns, **fields}, already_saved=already_saved)
        return DeliveryResult(out.attempts, pns, out.status_code, out.readback)

    async def holds_kompetensi(self, nip: str, levels: Mapping[str, int], *, tahun: int | None = None) -> bool:
        """Whether SI ASN already holds exactly these levels for ``tahun``: the outbox asks before re-sending a
        push whose earlier try may have got through (its worker died before recording the answer)."""
        fields, year = kompetensi_fields(levels), tahun if tahun is not None else date.today().year
        return any(same_kompetensi(r, fields, year) for r in await self.read_kompetensi(nip))

    async def holds_potensi(self, nip: str, potensi: Mapping[str, float]) -> bool:
        """Whether SI ASN already holds exactly this potential profile (see :meth:`holds_kompetensi`)."""
        fields = potensi_fields(potensi)
        return any(same_potensi(r, fields) for r in await self.read_potensi(nip))

    async def read_kompetensi(self, nip: str) -> list[dict[str, Any]]:
        """The competency records SI ASN holds for ``nip`` (levels and ``tahun`` as ints); [] when none."""
        out = await self._call("GET", f"/pns/rw-kompetensi/{nip}", what="rw-kompetensi", nip=nip,
                               empty_if_not_found=True)
        return [normalise_kompetensi(r) for r in records(out.body)]

    async def read_potensi(self, nip: str) -> list[dict[str, Any]]:
        """The potential records SI ASN holds for ``nip`` (scores as floats); [] when none."""
        out = await self._call("GET", f"/pns/rw-potensi/{nip}", what="rw-potensi", nip=nip,
                               empty_if_not_found=True)
        return [normalise_potensi(r) for r in records(out.body)]

    # -- retries ----------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, *, what: str, nip: str, json: dict[str, Any] | None = None,
                    already_saved: Callable[[], Awaitable[bool]] | None = None,
                    empty_if_not_found: bool = False) -> _Outcome:
        """Send with retries on transient failures; before re-sending a save after an ambiguous one, read back.

        A read-back that itself fails counts as an attempt and keeps the save ambiguous, so the save is only
        sent again once SI ASN has positively shown it does not hold the record.
        """
        ambiguous = False
        attempts = self.config.max_attempts

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            log.warning("SI ASN %s for %s failed (attempt %d/%d): %s; retrying in %.2fs%s", what, mask_nip(nip),
                        state.attempt_number, attempts, getattr(error, "detail", error), state.upcoming_sleep,
                        " after reading back" if ambiguous else "")

        try:
            async for attempt in self.retry.retrying(retry_on=lambda exc: isinstance(exc, Transient),
                                                     attempts=attempts, sleep=self._sleep, before_sleep=log_retry):
                with attempt:
                    number = attempt.retry_state.attempt_number
                    try:
                        if ambiguous and already_saved is not None:
                            if await already_saved():
                                log.info("SI ASN %s for %s: an earlier try had been saved, not sending again",
                                         what, mask_nip(nip))
                                return _Outcome({}, 200, number, readback=True)
                            ambiguous = False
                        resp = await self._send_once(method, path, json=json)
                        return _Outcome(parse(resp, empty_if_not_found=empty_if_not_found), resp.status_code, number)
                    except Transient as exc:
                        ambiguous = ambiguous or (exc.sent and already_saved is not None)
                        raise
        except Transient as exc:
            raise SiasnUnavailable(f"SI ASN {what} for {mask_nip(nip)} failed after {attempts} attempts: "
                                   f"{exc.detail}", attempts=attempts) from None
        raise AssertionError("the retry loop ends in an outcome or an error")  # pragma: no cover

    async def _read_once(self, kind: str, nip: str,
                         normalise: Callable[[dict[str, Any]], dict[str, Any]]) -> list[dict[str, Any]]:
        """One read-back inside a save's retry loop (no retries of its own: the loop's attempts pay for it).

        A read SI ASN refuses cannot confirm anything, so it counts as "not there" and the save decides.
        """
        resp = await self._send_once("GET", f"/pns/{kind}/{nip}")
        try:
            body = parse(resp, empty_if_not_found=True)
        except SiasnRejected:
            return []
        return [normalise(r) for r in records(body)]

    # -- one request ------------------------------------------------------------------------------

    async def _send_once(self, method: str, path: str, *, json: dict[str, Any] | None = None) -> httpx.Response:
        """One request as SI ASN sees it: rate-limited, both tokens attached, one re-authentication on 401."""
        for _ in range(2):
            gateway, sso = await self._tokens.current()
            await self._bucket.acquire()
            try:
                resp = await self._http.request(method, self._base + path, json=json,
                                                headers={"Authorization": f"Bearer {gateway}",
                                                         "Auth": f"bearer {sso}"})
            except httpx.RequestError as exc:
                raise Transient(describe(exc), sent=was_sent(exc)) from exc
            if resp.status_code != 401:
                return resp
            log.info("SI ASN answered 401: dropping both tokens and fetching new ones")
            await self._tokens.drop(gateway, sso)
        raise SiasnAuthError("SI ASN refused freshly issued tokens (HTTP 401)")

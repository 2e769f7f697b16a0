"""SI ASN's two token layers: the API gateway's (``Authorization: Bearer``) and the Keycloak SSO's (``Auth: bearer``).

Both are cached until shortly before they expire (10% of their life, at most 30 s early, to avoid 401s) and
fetched one at a time, so a burst of calls after a 401 does not stampede the token endpoints. A 401 drops
the tokens the failed request used (not ones a concurrent request has renewed meanwhile), because either may
be revoked server-side before its advertised expiry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from sinks.siasn.config import SiasnConfig
from sinks.siasn.errors import SiasnAuthError
from sinks.siasn.ratelimit import TokenBucket
from sinks.siasn.wire import Transient, body_of, describe, retry_after


@dataclass
class _Token:
    value: str
    expires_at: float  # on the clock of :class:`Tokens`


class Tokens:
    """The gateway and SSO tokens of one client, fetched over its ``http`` client and paced by its ``bucket``."""

    def __init__(self, config: SiasnConfig, http: httpx.AsyncClient, bucket: TokenBucket, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config, self._http, self._bucket, self._clock = config, http, bucket, clock
        self._lock = asyncio.Lock()  # one token fetch at a time: no stampede after a 401
        self._gateway: _Token | None = None
        self._sso: _Token | None = None

    async def current(self) -> tuple[str, str]:
        """The gateway and SSO tokens to send, fetching whichever is missing or about to expire."""
        async with self._lock:
            now = self._clock()
            if self._gateway is None or self._gateway.expires_at <= now:
                self._gateway = await self._fetch(
                    "gateway", self.config.gateway_token_url, {"grant_type": "client_credentials"},
                    httpx.BasicAuth(self.config.consumer_key, self.config.consumer_secret.get_secret_value()))
            if self._sso is None or self._sso.expires_at <= now:
                self._sso = await self._fetch(
                    "SSO", self.config.sso_token_url,
                    {"grant_type": "password", "client_id": self.config.sso_client_id,
                     "username": self.config.sso_username,
                     "password": self.config.sso_password.get_secret_value()})
            return self._gateway.value, self._sso.value

    async def drop(self, gateway: str, sso: str) -> None:
        """Forget these tokens (SI ASN answered 401 to them); a racer may already have renewed them: keep those."""
        async with self._lock:
            if self._gateway is not None and self._gateway.value == gateway:
                self._gateway = None
            if self._sso is not None and self._sso.value == sso:
                self._sso = None

    async def _fetch(self, which: str, url: str, form: dict[str, str], auth: httpx.BasicAuth | None = None) -> _Token:
        await self._bucket.acquire()
        try:
            resp = await self._http.post(url, data=form, auth=auth or httpx.USE_CLIENT_DEFAULT)
        except httpx.RequestError as exc:
            raise Transient(f"{which} token: {describe(exc)}", sent=False) from exc
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise Transient(f"{which} token: HTTP {resp.status_code}", sent=False, retry_after=retry_after(resp))
        body = body_of(resp)
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
        return _Token(token, self._clock() + ttl - min(30.0, ttl * 0.1))

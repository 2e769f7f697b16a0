"""Who the emulator lets in and whom it knows: its demo credentials, its paths, and its deterministic person ids."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

from sinks.siasn.config import SiasnConfig

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


def pns_id_of(nip: str) -> str:
    """The emulator's deterministic ``pnsId`` for a NIP: a UUID holding a checksum and the scrambled NIP.

    Deterministic so that an id stays valid across emulator restarts.
    """
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

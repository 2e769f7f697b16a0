"""The SI ASN client's configuration: built from :class:`schemas.settings.Settings`, the one settings reader.

``Settings`` reads the ``CACT_SIASN_*`` variables like every other ``CACT_*`` one (so their names, defaults and
bounds are documented and checked in one place); :meth:`SiasnConfig.from_settings` turns them into what the
client needs: credentials resolved from their ``…_FILE`` variants (Docker/Kubernetes secrets) and checked
complete. It is a separate, frozen model because the client is also built without Settings (tests, the
emulator's :meth:`client_config`), and because every one of its validation errors hides the submitted values:
they include secrets.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from schemas.settings import Settings
from sinks.siasn.errors import SiasnConfigError

ENV_PREFIX = "CACT_SIASN_"
#: Fields that may also be read from the file named by ``CACT_SIASN_<NAME>_FILE`` (Docker/Kubernetes secrets).
FILE_FIELDS: tuple[str, ...] = ("consumer_key", "consumer_secret", "sso_client_id", "sso_username", "sso_password")


class SiasnConfig(BaseModel):
    """Where SI ASN is and how hard to try. Secrets are ``SecretStr`` so a repr or a dump never shows them.

    Field ``x`` is the setting ``siasn_x`` (``CACT_SIASN_X``); the defaults and bounds are the same.
    """

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
    def from_settings(cls, settings: Settings) -> SiasnConfig:
        """The client's configuration from ``settings``; credentials may come from their ``…_FILE`` setting.

        Credentials live only in the environment or in files mounted as secrets, never in code. Errors name the
        variables that are missing or conflicting, never a value.
        """
        values: dict[str, object] = {}
        for name in cls.model_fields:
            var = ENV_PREFIX + name.upper()
            value = getattr(settings, f"siasn_{name}")
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            path: Path | None = getattr(settings, f"siasn_{name}_file", None) if name in FILE_FIELDS else None
            if path is not None and path != Path(""):  # an empty variable is no file (Path("") is ".")
                if value:
                    raise SiasnConfigError(f"set {var} or {var}_FILE, not both")
                try:
                    values[name] = path.read_text(encoding="utf-8").rstrip("\r\n")
                except OSError as exc:
                    raise SiasnConfigError(f"cannot read the file named by {var}_FILE: {exc.strerror}") from None
            elif value is not None and value != "":
                values[name] = value
        missing = [ENV_PREFIX + n.upper() for n, f in cls.model_fields.items() if f.is_required() and n not in values]
        if missing:
            raise SiasnConfigError("SI ASN client not configured: set " + ", ".join(missing)
                                   + " (credentials may also come from <NAME>_FILE)")
        return cls.model_validate(values)

"""The checks a command makes before it starts, and the one-line form of the failures it knows.

Here, in the composition root, because they reach every package's clients (SQLAlchemy for the store,
aiokafka for Kafka, the SI ASN settings); the line formats themselves are in schemas/errors.py. Anything
:func:`describe` does not know is a bug and keeps its traceback.
"""

from __future__ import annotations

import socket
import ssl
import sys
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ValidationError

from schemas.errors import (
    EXIT_UNAVAILABLE,
    KAFKA_PREFLIGHT_SECONDS,
    CliError,
    clean,
    kafka_address,
    settings_lines,
)
from schemas.settings import Settings
from sinks.store_checks import database_unreachable


def _settings_model(exc: ValidationError) -> type[BaseModel] | None:
    """The settings model an error is about, by its title: the worker's Settings or the SI ASN client's."""
    from sinks.siasn.config import SiasnConfig

    return {m.__name__: m for m in (Settings, SiasnConfig)}.get(exc.title)


# ------------------------------------------------------------------------------------------------
# Kafka
# ------------------------------------------------------------------------------------------------

def _sasl_refusals() -> tuple[type[BaseException], ...]:
    from aiokafka import (
        errors as ke,  # imported here: most commands never talk to Kafka
    )

    return ke.SaslAuthenticationFailed, ke.AuthenticationFailedError, ke.AuthenticationMethodNotSupported


def _kafka_reason(exc: BaseException, timeout: float) -> str:
    from aiokafka import errors as ke

    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"host name not found ({exc.strerror})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc})"
    if isinstance(exc, (TimeoutError, ke.KafkaTimeoutError)):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, ke.UnsupportedSaslMechanismError):
        return "the broker does not accept this SASL mechanism (or no SASL at all)"
    if isinstance(exc, _sasl_refusals()):
        return f"SASL login refused ({clean(exc, 200)})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return clean(f"{type(exc).__name__}: {exc}", 200)


def kafka_unreachable(settings: Settings, failures: Sequence[tuple[str, BaseException]], timeout: float,
                      environ: Mapping[str, str] | None = None) -> CliError:
    """One line for a Kafka that did not answer: the address and its variable, why, and what to check."""
    from aiokafka.errors import UnsupportedSaslMechanismError

    several = len({addr for addr, _ in failures}) > 1
    why = "; ".join(dict.fromkeys(f"{addr}: {_kafka_reason(e, timeout)}" if several else _kafka_reason(e, timeout)
                                  for addr, e in failures)) or "no answer"
    protocol = settings.kafka_security_protocol
    sasl = any(isinstance(e, (UnsupportedSaslMechanismError, *_sasl_refusals())) for _, e in failures)
    if sasl:
        check = "check KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
    elif "SSL" in protocol:
        check = (f"check that Kafka runs there and speaks {protocol} (KAFKA_SECURITY_PROTOCOL), and "
                 "KAFKA_SSL_CAFILE")
    elif settings.uses_external_kafka:
        check = "check that Kafka runs there and the address is right"
    else:
        check = "start the embedded broker with `cact broker`, or set KAFKA_BOOTSTRAP_SERVERS to your Kafka"
    return CliError(f"Kafka unreachable at {kafka_address(settings, environ)}: {why}; {check}", EXIT_UNAVAILABLE)


def check_kafka(settings: Settings, timeout: float = KAFKA_PREFLIGHT_SECONDS) -> None:
    """Pre-flight: one metadata round trip with the configured Kafka, or a CliError saying why not."""
    import asyncio

    from schemas.kafka_config import client_kwargs
    from streams.kafka import probe

    try:
        client_kwargs(settings)  # builds the TLS context: unreadable certificate files fail here
    except (OSError, ssl.SSLError) as exc:
        raise CliError(f"cannot use the Kafka TLS files: {clean(exc, 300)}; check KAFKA_SSL_CAFILE, "
                       "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE") from None
    failures = asyncio.run(probe(settings, timeout))
    if failures:
        raise kafka_unreachable(settings, failures, timeout)


# ------------------------------------------------------------------------------------------------
# Turning a failure into its line
# ------------------------------------------------------------------------------------------------

def describe(exc: BaseException, settings: Settings | None = None) -> CliError | None:
    """The one-line form of a known failure; None for anything else (a bug: its traceback must show)."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, ValidationError) and (model := _settings_model(exc)) is not None:
        return CliError("\n".join(settings_lines(exc, model)))
    # An exception of a library never imported cannot be this one: no import just to look.
    if "sqlalchemy" in sys.modules:
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            from schemas.settings import get_settings

            return database_unreachable((settings or get_settings()).database_url, exc)
    if "aiokafka" in sys.modules:
        from aiokafka.errors import KafkaConnectionError

        if isinstance(exc, KafkaConnectionError):
            from schemas.settings import get_settings

            return kafka_unreachable(settings or get_settings(), [("", exc)], KAFKA_PREFLIGHT_SECONDS)
    return None



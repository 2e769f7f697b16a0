"""Kafka client configuration from the one Settings object, for every client library the project uses.

Here, below every package, so the lab emitter (kafka-python), the sink (aiokafka) and the worker (Faust) take
SASL/TLS from the same place without importing each other's Kafka client: nothing here imports one. The TLS
context is the standard library's (what aiokafka's ``create_ssl_context`` builds too).

Nothing here logs: the keyword dicts hold the SASL password in clear (the client libraries need it that way),
so log them only through :func:`redacted`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from schemas.settings import Settings

_SECRET_KEYS = ("sasl_plain_password",)


def _ssl(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def is_sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def _path(value: object | None) -> str | None:
    return str(value) if value is not None else None


def sasl_password(settings: Settings) -> str | None:
    return settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None


def bootstrap_list(settings: Settings) -> list[str]:
    return [hp.strip() for hp in settings.bootstrap_servers.split(",") if hp.strip()]


def redacted(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of client keyword arguments that is safe to log: the SASL password is masked."""
    return {k: ("***" if k in _SECRET_KEYS and v is not None else v) for k, v in kwargs.items()}


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka consumers, producers and admin clients.

    For SSL protocols an ``ssl_context`` is always built, with the system CAs when no cafile is given:
    aiokafka refuses SSL without one, and a managed cluster's public certificate needs no cafile.
    """
    kw: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers,
                          "security_protocol": settings.kafka_security_protocol}
    if _ssl(settings):
        kw["ssl_context"] = ssl_context(settings)
    if is_sasl(settings):
        kw["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        kw["sasl_plain_username"] = settings.kafka_sasl_username
        kw["sasl_plain_password"] = sasl_password(settings)
    return kw


def kafka_python_kwargs(settings: Settings) -> dict[str, Any]:
    """kafka-python producers (the lab emitter): same settings, kafka-python's names (``ssl_cafile`` …)."""
    kw: dict[str, Any] = {"bootstrap_servers": bootstrap_list(settings),
                          "security_protocol": settings.kafka_security_protocol}
    if _ssl(settings):
        kw.update(ssl_cafile=_path(settings.kafka_ssl_cafile),
                  ssl_certfile=_path(settings.kafka_ssl_certfile),
                  ssl_keyfile=_path(settings.kafka_ssl_keyfile))
    if is_sasl(settings):
        kw.update(sasl_mechanism=settings.kafka_sasl_mechanism or "PLAIN",
                  sasl_plain_username=settings.kafka_sasl_username,
                  sasl_plain_password=sasl_password(settings))
    return kw


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context for the brokers: the system CAs when no cafile is given (a managed cluster's public
    certificate needs none), the client certificate when one is set."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=_path(settings.kafka_ssl_cafile))
    if settings.kafka_ssl_certfile is not None:
        context.load_cert_chain(str(settings.kafka_ssl_certfile), _path(settings.kafka_ssl_keyfile))
    return context


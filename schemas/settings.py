"""The one configuration object for every component (producers, worker, sinks, demo, tests).

Everything is read from environment variables prefixed ``CACT_`` (or a ``.env`` file), so the same
code runs on the embedded Tansu broker and SQLite on a laptop and on a secured Apache Kafka cluster and
PostgreSQL in production. ``KAFKA_BOOTSTRAP_SERVERS`` and the ``KAFKA_*`` security variables are also
accepted without the prefix, because that is how Kafka deployments usually hand them to containers.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.domain import PositionTier

DEFAULT_HOME = Path(".cact")


#: Settings whose value may come from a mounted file instead (the SI ASN credentials' files are read by
#: sinks/siasn/config.py at each use; these two are needed once, at start).
_SECRET_FILES = ("database_url_file", "kafka_sasl_password_file")


def _kafka(name: str) -> AliasChoices:
    return AliasChoices(f"CACT_KAFKA_{name}", f"KAFKA_{name}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CACT_", env_file=".env", extra="ignore", populate_by_name=True)

    # --- Kafka ---------------------------------------------------------------------------------
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=_kafka("BOOTSTRAP_SERVERS"),
        description="Use this Kafka instead of the embedded broker (comma-separated host:port).",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", validation_alias=_kafka("SECURITY_PROTOCOL")
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, validation_alias=_kafka("SASL_MECHANISM")
    )
    kafka_sasl_username: str | None = Field(default=None, validation_alias=_kafka("SASL_USERNAME"))
    kafka_sasl_password: SecretStr | None = Field(default=None, validation_alias=_kafka("SASL_PASSWORD"))
    kafka_sasl_password_file: Path | None = Field(
        default=None, validation_alias=_kafka("SASL_PASSWORD_FILE"),
        description="File holding the SASL password (a mounted secret, e.g. the one Strimzi's KafkaUser makes); "
                    "read once at start, instead of CACT_KAFKA_SASL_PASSWORD.")
    kafka_ssl_cafile: Path | None = Field(default=None, validation_alias=_kafka("SSL_CAFILE"))
    kafka_ssl_certfile: Path | None = Field(default=None, validation_alias=_kafka("SSL_CERTFILE"))
    kafka_ssl_keyfile: Path | None = Field(default=None, validation_alias=_kafka("SSL_KEYFILE"))
    topic_partitions: int = Field(default=4, ge=1, description="Partitions for topics the pipeline creates.")
    topic_replication: int = Field(default=1, ge=1)

    # --- Embedded broker -----------------------------------------------------------------------
    broker_host: str = "127.0.0.1"
    broker_port: int = 19092

    # --- Worker --------------------------------------------------------------------------------
    app_id: str = Field(default="cact-pipeline", description="Faust app id = Kafka consumer group.")
    worker_web_port: int = 6066
    worker_web_host: str = "127.0.0.1"
    table_store: str = Field(default="memory://", description="Faust table store (memory:// or rocksdb://).")
    data_dir: Path = DEFAULT_HOME / "worker"
    table_standby_replicas: int = Field(
        default=0, ge=0, description="Copies of each table partition other workers keep warm, so a partition that "
        "moves to them after a worker is lost needs no full changelog replay (docs/deploy.md \"Scale-out\").")
    batch_max: int = Field(default=500, ge=1, description="Input records taken from Faust per batch (an EventBatch "
                           "record holds up to 1,000 events): what one batch holds in memory at most.")
    chunk_events: int = Field(
        default=2000, ge=1, description="Input events processed against one copy of the state, their outputs and "
        "state changes sent and acknowledged together before their records are. 2,000 cost a fifth less CPU per "
        "participant than 500 in a backlog (fewer changelog writes, larger sink transactions) at the same peak RSS "
        "(docs/benchmarks.md); a paced stream's chunks stay as small as what has arrived either way.")
    batch_seconds: float = Field(default=0.05, gt=0, description="Longest wait to fill a batch.")
    commit_interval_seconds: float = Field(default=1.0, gt=0)
    fetch_max_wait_ms: int = Field(
        default=50, ge=1, le=1500,
        description="Longest a consumer's fetch waits on the broker; on Tansu every waiting fetch lasts this long.")
    fetch_idle_wait_ms: int = Field(
        default=5000, ge=1, le=5000,
        description="The longest fetch wait of the worker's and the sink's consumers once they have fetched no "
        "record for fetch_idle_after_seconds; until then a quarter of the silence so far: fewer empty fetches while "
        "idle, at the cost of up to a quarter of the silence (at most this) of latency for the first record after "
        "it (on Tansu; Apache Kafka answers as soon as a record arrives).")
    fetch_idle_after_seconds: float = Field(
        default=2.0, gt=0, description="Silence after which a consumer's fetch wait grows (fetch_idle_wait_ms).")
    # A joining worker waits for the group's rebalance timeout on some brokers (Tansu waits it out in full),
    # and a killed worker's partitions move after the session timeout: both short enough to recover quickly.
    group_session_timeout_seconds: float = Field(default=10.0, gt=0)
    group_rebalance_timeout_seconds: float = Field(default=3.0, gt=0)
    group_heartbeat_seconds: float = Field(default=1.0, gt=0)
    sink_in_worker: bool = Field(default=True, description="Run the results-store sink inside the worker.")
    sink_batch_size: int = Field(default=500, ge=1)
    sink_batch_seconds: float = Field(default=0.5, gt=0)
    sink_retry_base_seconds: float = Field(default=0.5, gt=0, description="First wait before the sink tries a "
                                           "database that is down again; doubles up to the maximum.")
    sink_retry_max_seconds: float = Field(default=30.0, gt=0, description="Longest wait between two tries.")
    sink_metrics_port: int | None = Field(default=None, description="A standalone `cact sink` serves /metrics here.")
    sink_metrics_host: str = Field(default="127.0.0.1", description="Address of the sink's /metrics.")
    late_checkin_admitted: bool = Field(default=True, description="Admit a check-in after the window closes.")
    operator_token: SecretStr | None = Field(
        default=None, description="Credential for the operator page and every page with names or NIPs "
        "(docs/operations.md \"Web surface\"); without it (or _FILE) those pages answer 401.")
    operator_token_file: Path | None = Field(default=None, description="File holding the operator token "
                                             "(read at each request, so a rotation needs no restart).")
    lab_time_before_start_hours: float = Field(
        default=6.0, gt=0, description="A lab event stamped more than this before its session starts is "
        "dead-lettered implausible_time.")
    lab_time_after_end_hours: float = Field(
        default=6.0, gt=0, description="A lab event stamped more than this after its session ends is "
        "dead-lettered implausible_time.")
    held_events_max: int = Field(
        default=20_000, ge=0, description="Lab events kept per worker partition for sessions whose schedule has "
        "not arrived (judged once it does); more are dead-lettered state_limit.")

    # --- Attendance monitoring -------------------------------------------------------------------
    noshow_threshold: float = Field(default=0.15, ge=0, le=1, description="No-show rate highlighted for operators.")
    lab_silent_after_seconds: float = Field(
        default=600, gt=0, description="A lab with a session in progress is silent after this.")
    wall_clock_lag_seconds: float = Field(
        default=900, gt=0,
        description="Close a check-in window by the wall clock when its lab has sent nothing this long after it.")
    window_check_seconds: float = Field(default=5, gt=0, description="How often the wall-clock fallback looks.")

    # --- Bounds on what input may cost (docs/operations.md) ---------------------------------------
    max_message_bytes: int = Field(
        default=1_000_000, ge=1024,
        description="Largest input message accepted; larger ones are dead-lettered too_large (the lab emitter "
                    "refuses them before sending).")
    unscheduled_sessions_max: int = Field(
        default=2000, ge=0,
        description="Sessions with lab events but no schedule yet kept per worker partition; events for more "
                    "are dead-lettered state_limit.")
    unexpected_participants_max: int = Field(
        default=200, ge=0,
        description="Participants nobody scheduled kept per session; events for more are dead-lettered state_limit.")
    produce_timeout_seconds: float = Field(
        default=60.0, gt=0,
        description="A send the broker has not acknowledged by then fails, and the worker stops without "
                    "acknowledging its input (a supervisor restarts it).")
    broker_check_seconds: float = Field(
        default=5.0, gt=0, description="How often the worker checks that the broker still holds what it processed.")

    # --- Lab emitter (producers/emitter.py, docs/labs.md) ------------------------------------------
    lab_id: str | None = Field(default=None, description="This lab's id: lab_id of the events the emitter builds "
                               "itself (autosave batches).")
    lab_spool_path: Path = Field(default=DEFAULT_HOME / "lab-spool.db",
                                 description="SQLite spool holding every event until Kafka acknowledged it.")
    lab_spool_synchronous: Literal["NORMAL", "FULL"] = Field(
        default="NORMAL", description="NORMAL survives a killed lab process; FULL also a power cut, but is slower.")
    lab_spool_keep_sent_hours: float = Field(
        default=24, ge=0, description="Acknowledged events stay resendable (cact lab resend) this long, then are "
                                      "pruned; must cover the time to notice a broker loss.")
    lab_autosave_batch: int = Field(default=50, ge=1, le=1000,
                                    description="Autosaved answers of one participant-section per AnswersSaved.")
    lab_autosave_seconds: float = Field(default=5.0, gt=0,
                                        description="Longest an autosaved answer waits for its batch.")
    lab_retry_base_seconds: float = Field(default=0.2, gt=0, description="First wait before the emitter connects "
                                          "to a Kafka it could not reach again; doubles up to the maximum.")
    lab_retry_max_seconds: float = Field(default=5.0, gt=0, description="Longest wait between two connections.")

    # --- Stores --------------------------------------------------------------------------------
    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_HOME / 'results.db'}",
        description="SQLAlchemy URL of the results store (PostgreSQL in production).",
    )
    database_url_file: Path | None = Field(
        default=None, description="File holding the results store's URL with its password (a mounted secret); "
        "read once at start, instead of CACT_DATABASE_URL.")

    # --- SI ASN push -------------------------------------------------------------------------------
    siasn_push_enabled: bool = Field(
        default=False, description="Run the outbox pusher in the worker (SI ASN URL and credentials: CACT_SIASN_*).")
    pusher_metrics_port: int | None = Field(default=None, description="A standalone `cact siasn push` serves "
                                            "/metrics (and /healthz) here.")
    pusher_metrics_host: str = Field(default="127.0.0.1", description="Address of the standalone pusher's /metrics.")
    siasn_push_batch: int = Field(default=20, ge=1, description="Pushes claimed from the outbox at a time.")
    siasn_lease_seconds: float = Field(
        default=120, gt=0, description="A claimed push not finished by then is read back and retried (crash safety).")
    siasn_retry_base_seconds: float = Field(
        default=2.0, gt=0, description="First wait before a push that failed on an outage is tried again; doubles.")
    siasn_retry_max_seconds: float = Field(default=300.0, gt=0, description="Longest wait between two tries.")

    # --- SI ASN client (docs/siasn.md §4; sinks/siasn/config.py builds the client's SiasnConfig from these) ---
    # Credentials come from the environment or, for each ``siasn_<name>_file``, from a file mounted as a secret;
    # set one or the other. They are needed only when something talks to SI ASN (the pusher, CACT_SIASN_PUSH_ENABLED).
    siasn_base_url: str = Field(default="https://apimws.bkn.go.id:8243/apisiasn/1.0", description="SI ASN API base.")
    siasn_gateway_token_url: str = Field(default="https://apimws.bkn.go.id/oauth2/token",
                                         description="The API gateway's token endpoint (consumer key and secret).")
    siasn_sso_token_url: str = Field(
        default="https://sso-siasn.bkn.go.id/auth/realms/public-siasn/protocol/openid-connect/token",
        description="The SSO (Keycloak) token endpoint (password grant).")
    siasn_consumer_key: str | None = None
    siasn_consumer_key_file: Path | None = None
    siasn_consumer_secret: SecretStr | None = None
    siasn_consumer_secret_file: Path | None = None
    siasn_sso_client_id: str | None = None
    siasn_sso_client_id_file: Path | None = None
    siasn_sso_username: str | None = None
    siasn_sso_username_file: Path | None = None
    siasn_sso_password: SecretStr | None = None
    siasn_sso_password_file: Path | None = None
    siasn_timeout_s: float = Field(default=10, gt=0, description="Longest wait for one SI ASN answer.")
    siasn_max_attempts: int = Field(default=6, ge=1, description="Tries of one call within a delivery.")
    siasn_backoff_base_s: float = Field(default=0.5, ge=0, description="Window of the first wait between two tries "
                                        "of a call (full jitter, schemas/retry.py); doubles.")
    siasn_backoff_max_s: float = Field(default=30, ge=0, description="Largest window between two tries of a call.")
    siasn_rate_per_s: float = Field(default=10, ge=0, description="Client-side limit over all calls; 0 disables it.")

    # --- Scoring -------------------------------------------------------------------------------
    blueprint_dir: Path | None = Field(
        default=None, description="Folder of blueprint JSON files; defaults to the shipped samples."
    )
    scoring_policy: Path | None = Field(
        default=None, description="JSON file overriding standards, JPM formula, categories (docs/scoring.md)."
    )
    blueprint_corrections_dir: Path = Field(
        default=DEFAULT_HOME / "blueprints",
        description="Corrected blueprint versions that `cact rescore` installs; workers load them beside "
                    "CACT_BLUEPRINT_DIR (docs/scoring.md §8).")

    # --- Accreditation (docs/accreditation.md) ---------------------------------------------------
    accreditation_file: Path | None = Field(
        default=None, description="The accredited-institution registry in use; default: the one `cact accreditation "
                                  "import` installed (CACT_HOME/accreditation.csv), else the shipped 2024 registry.")
    accreditation_category_tiers: dict[str, list[PositionTier]] = Field(
        default_factory=lambda: {"A": list(PositionTier), "B": list(PositionTier)},
        description="Position tiers each accreditation category may assess (JSON). The seeds do not say: the default "
                    "is the widest reading, both categories every tier.")
    accreditation_bkn_organisers: list[str] = Field(
        default_factory=lambda: ["bkn", "bkn-*", "kanreg-*"],
        description="Organiser ids (fnmatch patterns) that are BKN's own units (head office, regional offices, "
                    "technical units), authorised without accreditation.")
    accreditation_warn_days: int = Field(
        default=90, ge=0, description="Warn when a session is scheduled this close to its organiser's expiry.")

    # --- Reports for the agencies (docs/reports.md) ---------------------------------------------
    reports_dir: Path = Field(default=DEFAULT_HOME / "reports",
                              description="Where `cact reports build` writes each activity's reports (mode 0700).")
    reports_delivery_dir: Path | None = Field(
        default=None, description="Where `cact reports deliver` places a report for the agency (e.g. the mail "
        "gateway's outgoing share); unset: delivery refused, naming this setting.")
    reports_calendar_file: Path | None = Field(
        default=None, description="JSON of decreed changes to the working-day calendar (extra days off, cancelled "
        "cuti bersama) on top of the `holidays` library's national holidays and cuti bersama.")
    reports_rules_file: Path | None = Field(
        default=None, description="JSON rule set for recommendations, placement and development suggestions; "
        "default: the shipped rules (docs/reports.md).")
    reports_at_risk_working_days: int = Field(
        default=2, ge=0, description="A report not delivered this many working days before its due date is at risk.")

    @model_validator(mode="after")
    def _read_secret_files(self) -> Settings:
        """A ``…_FILE`` setting fills its value from the mounted file, so a container's environment never holds
        the secret; setting both is refused, as two sources of one secret is a mistake waiting to happen."""
        for file_field in _SECRET_FILES:
            value_field = file_field.removesuffix("_file")
            env = f"CACT_{value_field.upper()}"
            path = getattr(self, file_field)
            if path is None:
                continue
            if value_field in self.model_fields_set:
                raise ValueError(f"set {env} or {env}_FILE, not both")
            try:
                text = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"{env}_FILE={path} cannot be read ({exc.strerror or exc})") from None
            if not text:
                raise ValueError(f"{env}_FILE={path} is empty")
            setattr(self, value_field, SecretStr(text) if value_field == "kafka_sasl_password" else text)
        return self

    @property
    def bootstrap_servers(self) -> str:
        """Where clients connect: the configured Kafka, else the embedded broker's address."""
        return self.kafka_bootstrap_servers or f"{self.broker_host}:{self.broker_port}"

    @property
    def uses_external_kafka(self) -> bool:
        return self.kafka_bootstrap_servers is not None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process (a worker started by the demo or a test) these settings."""
    env: dict[str, str] = {}
    from_files = {name.removesuffix("_file") for name in _SECRET_FILES if getattr(settings, name) is not None}
    for name, info in Settings.model_fields.items():
        value = getattr(settings, name)
        if name in from_files:  # the child reads the file itself: the secret stays out of its environment
            continue
        if value is None or value == info.get_default(call_default_factory=True):
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"CACT_{name.upper()}"] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return env

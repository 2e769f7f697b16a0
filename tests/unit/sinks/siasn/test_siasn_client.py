"""The SI ASN client against httpx.MockTransport: tokens, retries, rejections, rate limit, and no leaked secrets."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.settings import Settings
from sinks.siasn.client import SiasnClient, retry_policy
from sinks.siasn.config import SiasnConfig
from sinks.siasn.errors import SiasnAuthError, SiasnConfigError, SiasnRejected, SiasnUnavailable
from sinks.siasn.logmask import NipMaskFilter
from sinks.siasn.port import DeliveryResult
from sinks.siasn.wire import KOMPETENSI_FIELDS, POTENSI_FIELDS

NIP = "199001012015031001"
PNS_ID = "pns-uuid-1"
CONSUMER_SECRET = "consumer-S3CRET-value"
SSO_PASSWORD = "sso-Pa55word-value"
LEVELS = {field: 3 for field in KOMPETENSI_FIELDS}
SAVE = "/apisiasn/1.0/kompetensi/kompetensi/save"
READ = f"/apisiasn/1.0/pns/rw-kompetensi/{NIP}"
ok_save = {"success": True, "message": "success", "mapData": {"id": "r1"}}


def config(**overrides: Any) -> SiasnConfig:
    values: dict[str, Any] = {
        "base_url": "https://siasn.test/apisiasn/1.0", "gateway_token_url": "https://siasn.test/oauth2/token",
        "sso_token_url": "https://sso.test/protocol/openid-connect/token", "consumer_key": "consumer-key",
        "consumer_secret": CONSUMER_SECRET, "sso_client_id": "cact", "sso_username": "operator",
        "sso_password": SSO_PASSWORD, "backoff_base_s": 0.001, "backoff_max_s": 0.005, "rate_per_s": 0}
    return SiasnConfig(**{**values, **overrides})


Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class FakeSiasn:
    """Tokens and data-utama answered by default; each API path answers from its script, then a default."""

    def __init__(self, token_ttl: float = 3600) -> None:
        self.token_ttl = token_ttl
        self.requests: list[httpx.Request] = []
        self.scripts: dict[str, list[Answer]] = {}
        self.defaults: dict[str, Answer] = {SAVE: httpx.Response(200, json=ok_save),
                                            READ: httpx.Response(200, json={"code": 1, "count": 0, "data": []})}
        self.issued = {"gateway": 0, "sso": 0}
        self.token_answers: dict[str, list[httpx.Response]] = {"gateway": [], "sso": []}

    def calls(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]

    def _token(self, which: str) -> httpx.Response:
        if self.token_answers[which]:
            return self.token_answers[which].pop(0)
        self.issued[which] += 1
        return httpx.Response(200, json={"access_token": f"{which}-TOKEN-{self.issued[which]}",
                                         "expires_in": self.token_ttl, "token_type": "Bearer"})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/oauth2/token":
            return self._token("gateway")
        if path.endswith("/openid-connect/token"):
            return self._token("sso")
        if path.startswith("/apisiasn/1.0/pns/data-utama/"):
            return httpx.Response(200, json={"code": 1, "count": 1, "data": {"id": PNS_ID}, "message": "success"})
        script = self.scripts.get(path)
        answer = script.pop(0) if script else self.defaults[path]
        if isinstance(answer, Exception):
            raise answer
        return answer(request) if callable(answer) else answer

    def client(self, *, sleep: Any = None, clock: Callable[[], float] = time.monotonic,
               **overrides: Any) -> SiasnClient:
        return SiasnClient(config(**overrides), transport=httpx.MockTransport(self), sleep=sleep, clock=clock)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def save(fake: FakeSiasn, times: int = 1, **overrides: Any) -> list[DeliveryResult]:
    async with fake.client(**overrides) as client:
        return [await client.save_kompetensi(NIP, LEVELS, tahun=2026) for _ in range(times)]


# -- tokens -------------------------------------------------------------------------------------------


def test_tokens_are_fetched_once_cached_and_sent_in_both_headers() -> None:
    fake = FakeSiasn()
    results = run(save(fake, times=3))
    assert [r.attempts for r in results] == [1, 1, 1] and results[0].pns_id == PNS_ID
    assert fake.issued == {"gateway": 1, "sso": 1}
    gateway_req = fake.calls("/oauth2/token")[0]
    assert gateway_req.headers["Authorization"] == httpx.BasicAuth("consumer-key", CONSUMER_SECRET)._auth_header
    assert gateway_req.content == b"grant_type=client_credentials"
    sso_form = dict(httpx.QueryParams(fake.calls("/protocol/openid-connect/token")[0].content.decode()))
    assert sso_form == {"grant_type": "password", "client_id": "cact", "username": "operator",
                        "password": SSO_PASSWORD}
    for request in fake.calls(SAVE):
        assert request.headers["Authorization"] == "Bearer gateway-TOKEN-1"
        assert request.headers["Auth"] == "bearer sso-TOKEN-1"
    body = json.loads(fake.calls(SAVE)[0].content)
    assert body == {"pnsId": PNS_ID, **LEVELS, "tahun": 2026}
    assert len(fake.calls(f"/apisiasn/1.0/pns/data-utama/{NIP}")) == 1  # the pnsId is cached per NIP


def test_tokens_are_renewed_before_they_expire() -> None:
    fake = FakeSiasn(token_ttl=0.05)
    now = [1000.0]

    async def scenario() -> None:
        async with fake.client(clock=lambda: now[0]) as client:
            await client.save_kompetensi(NIP, LEVELS)
            now[0] += 0.06  # past the tokens' life: no real waiting
            await client.save_kompetensi(NIP, LEVELS)

    run(scenario())
    assert fake.issued == {"gateway": 2, "sso": 2}


def test_a_401_drops_both_tokens_fetches_new_ones_and_retries_once() -> None:
    fake = FakeSiasn()
    fake.scripts[SAVE] = [httpx.Response(401, json={"code": 900901, "message": "Invalid Credentials"})]
    (result,) = run(save(fake))
    assert result.attempts == 1 and result.status_code == 200
    assert fake.issued == {"gateway": 2, "sso": 2}
    assert [r.headers["Auth"] for r in fake.calls(SAVE)] == ["bearer sso-TOKEN-1", "bearer sso-TOKEN-2"]


def test_a_second_401_with_fresh_tokens_is_an_auth_error_not_a_loop() -> None:
    fake = FakeSiasn()
    fake.defaults[SAVE] = httpx.Response(401, json={"message": "Invalid Credentials"})
    with pytest.raises(SiasnAuthError):
        run(save(fake))
    assert len(fake.calls(SAVE)) == 2 and fake.issued == {"gateway": 2, "sso": 2}
    assert issubclass(SiasnAuthError, SiasnUnavailable)  # the outbox keeps the result pending


def test_refused_credentials_are_an_auth_error_without_retry() -> None:
    fake = FakeSiasn()
    fake.token_answers["sso"] = [httpx.Response(401, json={"error": "invalid_grant",
                                                           "error_description": "Invalid user credentials"})]
    with pytest.raises(SiasnAuthError, match="invalid_grant Invalid user credentials"):
        run(save(fake))
    assert fake.calls(SAVE) == []


# -- retries ------------------------------------------------------------------------------------------


def test_503s_are_retried_with_backoff_then_delivered() -> None:
    fake = FakeSiasn()
    fake.scripts[SAVE] = [httpx.Response(503), httpx.Response(503)]
    started = time.monotonic()
    (result,) = run(save(fake, backoff_base_s=0.02, backoff_max_s=0.02))
    assert result.attempts == 3 and result.status_code == 200 and not result.confirmed_by_readback
    assert len(fake.calls(SAVE)) == 3 and fake.calls(READ) == []  # a 503 was not acted on: no read-back
    assert time.monotonic() - started < 1


def test_waits_follow_the_retry_policy_and_a_retry_after(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeSiasn()
    fake.scripts[SAVE] = [httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(503),
                          httpx.Response(503, headers={"Retry-After": "120"})]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def scenario() -> DeliveryResult:
        async with fake.client(sleep=sleep, backoff_base_s=0.5, backoff_max_s=30) as client:
            return await client.save_kompetensi(NIP, LEVELS, tahun=2026)

    caplog.set_level(logging.WARNING, logger="cact.siasn.client")
    assert run(scenario()).attempts == 4
    assert slept[0] == 3 and 0 <= slept[1] <= 1.0 and slept[2] == 30  # 0.5·2^1 window; Retry-After capped at max
    assert [r.getMessage().split(": ")[-1] for r in caplog.records] == [
        f"HTTP 429; retrying in {slept[0]:.2f}s", f"HTTP 503; retrying in {slept[1]:.2f}s",
        f"HTTP 503; retrying in {slept[2]:.2f}s"]


def test_an_outage_ends_in_unavailable_after_max_attempts() -> None:
    fake = FakeSiasn()
    fake.defaults[SAVE] = httpx.Response(503)
    with pytest.raises(SiasnUnavailable) as caught:
        run(save(fake, max_attempts=4))
    assert caught.value.attempts == 4 and len(fake.calls(SAVE)) == 4 and "HTTP 503" in str(caught.value)
    assert "19900101********01" in str(caught.value) and NIP not in str(caught.value)


def test_connect_errors_are_retried_without_read_back() -> None:
    fake = FakeSiasn()
    fake.scripts[SAVE] = [httpx.ConnectError("connection refused"), httpx.ConnectTimeout("connect timed out")]
    (result,) = run(save(fake))
    assert result.attempts == 3 and fake.calls(READ) == []


def test_a_timeout_after_sending_reads_back_and_never_saves_twice() -> None:
    fake = FakeSiasn()
    record = {"id": "r1", "pnsId": PNS_ID, "tahun": "2026", **{k: str(v) for k, v in LEVELS.items()},
              "tglUpdate": "03-11-2026"}  # SI ASN may send numbers as strings
    fake.scripts[SAVE] = [httpx.ReadTimeout("timed out")]
    fake.scripts[READ] = [httpx.Response(200, json={"code": 1, "count": 1, "data": [record], "message": "ok"})]
    (result,) = run(save(fake))
    assert result.confirmed_by_readback and result.attempts == 2
    assert len(fake.calls(SAVE)) == 1 and len(fake.calls(READ)) == 1


def test_a_timeout_whose_save_did_not_land_is_sent_again() -> None:
    fake = FakeSiasn()
    other_year = {"pnsId": PNS_ID, "tahun": 2023, **LEVELS}  # same levels, another year: not this result
    fake.scripts[SAVE] = [httpx.ReadTimeout("timed out"), httpx.Response(502)]
    fake.scripts[READ] = [httpx.Response(503),  # the read-back fails too: still ambiguous, read again
                          httpx.Response(200, json={"code": 1, "count": 1, "data": [other_year]}),
                          httpx.Response(200, json={"code": 1, "count": 1, "data": [other_year]})]
    (result,) = run(save(fake))
    assert not result.confirmed_by_readback and result.attempts == 4
    assert len(fake.calls(SAVE)) == 3 and len(fake.calls(READ)) == 3  # a 502 is ambiguous as well


def test_backoff_is_full_jitter_capped() -> None:
    policy = retry_policy(config(backoff_base_s=0.5, backoff_max_s=30), random.Random(7))  # the client's own
    delays = [policy.delay(attempt) for attempt in range(1, 12) for _ in range(50)]
    assert all(d >= 0 for d in delays) and max(delays) <= 30
    first = [policy.delay(1) for _ in range(200)]
    assert max(first) <= 0.5 and min(first) < 0.1  # the whole window, down to ~0
    assert max(policy.delay(10) for _ in range(200)) > 15  # 0.5·2^9 = 256, capped at 30


# -- rejections ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer, message", [
    (httpx.Response(400, json={"success": False, "message": "pnsId tidak ditemukan"}), "pnsId tidak ditemukan"),
    (httpx.Response(422, json={"code": 0, "message": "integritas wajib diisi"}), "integritas wajib diisi"),
    (httpx.Response(200, json={"success": False, "message": "data sudah ada", "mapData": None}), "data sudah ada"),
    (httpx.Response(200, json={"code": 0, "count": 0, "data": None, "message": "gagal simpan"}), "gagal simpan"),
])
def test_validation_errors_are_rejected_without_retry_keeping_siasn_message(answer: httpx.Response,
                                                                            message: str) -> None:
    fake = FakeSiasn()
    fake.defaults[SAVE] = answer
    with pytest.raises(SiasnRejected) as caught:
        run(save(fake))
    assert caught.value.message == message and caught.value.status_code == answer.status_code
    assert len(fake.calls(SAVE)) == 1


def test_both_success_envelopes_are_accepted() -> None:
    fake = FakeSiasn()
    fake.scripts[SAVE] = [httpx.Response(200, json={"code": "1", "count": 1, "data": {}, "message": "success"}),
                          httpx.Response(200, json={"code": 200, "data": {}, "message": "OK"})]
    assert [r.attempts for r in run(save(fake, times=3))] == [1, 1, 1]


def test_bad_levels_are_rejected_before_anything_is_sent() -> None:
    fake = FakeSiasn()

    async def scenario(levels: dict[str, Any]) -> None:
        async with fake.client() as client:
            await client.save_kompetensi(NIP, levels)

    for levels in ({**LEVELS, "integritas": 6}, {**LEVELS, "kerjasama": True}, {"M1": 3},
                   {k: v for k, v in LEVELS.items() if k != "perekatBangsa"}):
        with pytest.raises(SiasnRejected, match="not sent to SI ASN"):
            run(scenario(levels))
    assert fake.requests == []


def test_unknown_nip_is_rejected_with_siasn_message() -> None:
    def not_found(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 60})
        return httpx.Response(404, json={"code": 0, "count": 0, "data": None, "message": "Data tidak ditemukan"})

    async def scenario() -> None:
        async with SiasnClient(config(), transport=httpx.MockTransport(not_found)) as client:
            assert await client.read_kompetensi(NIP) == []  # for a read, "not found" is "no records"
            await client.pns_id(NIP)

    with pytest.raises(SiasnRejected, match="Data tidak ditemukan"):
        run(scenario())


def test_potensi_payload_and_read_back() -> None:
    fake = FakeSiasn()
    potensi_path, read_path = "/apisiasn/1.0/kompetensi/potensi/save", f"/apisiasn/1.0/pns/rw-potensi/{NIP}"
    scores = {"berfikirKritis": 71.5, "intelektual": 80, "interpersonal": 66.25, "kesadaranDiri": 90,
              "motivasiKomitmen": 75, "total": 76.55}
    fake.defaults[potensi_path] = httpx.Response(200, json=ok_save)
    fake.defaults[read_path] = httpx.Response(200, json={"code": 1, "count": 1, "data": [
        {"pnsOrangId": PNS_ID, **{k: str(v) for k, v in scores.items()}, "tglUpdate": "03-11-2026"}]})

    async def scenario() -> list[dict[str, Any]]:
        async with fake.client() as client:
            await client.save_potensi(NIP, scores)
            with pytest.raises(SiasnRejected):
                await client.save_potensi(NIP, {**scores, "total": float("nan")})
            return await client.read_potensi(NIP)

    (record,) = run(scenario())
    assert json.loads(fake.calls(potensi_path)[0].content) == {"pnsOrangId": PNS_ID, **scores}
    assert {k: record[k] for k in POTENSI_FIELDS} == {k: float(v) for k, v in scores.items()}


# -- rate limit ---------------------------------------------------------------------------------------


def test_rate_limit_spaces_every_request_even_concurrent_ones() -> None:
    fake = FakeSiasn()
    stamps: list[float] = []

    def stamped(request: httpx.Request) -> httpx.Response:
        stamps.append(time.monotonic())
        return httpx.Response(200, json=ok_save)

    fake.defaults[SAVE] = stamped

    async def scenario() -> None:
        async with fake.client(rate_per_s=20) as client:
            await client.pns_id(NIP)
            await asyncio.gather(*(client.save_kompetensi(NIP, LEVELS) for _ in range(6)))

    run(scenario())
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert len(stamps) == 6 and min(gaps) >= 0.045, gaps  # 1/20 s apart, a little slack for the clock


# -- configuration and secrets ------------------------------------------------------------------------


@pytest.fixture
def from_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], SiasnConfig]:
    """SiasnConfig as the worker builds it: Settings read from exactly these environment variables, then
    :meth:`SiasnConfig.from_settings`."""
    def build(env: dict[str, str]) -> SiasnConfig:
        with monkeypatch.context() as m:
            for var in [v for v in os.environ if v.upper().startswith("CACT_SIASN_")]:
                m.delenv(var)
            for var, value in env.items():
                m.setenv(var, value)
            return SiasnConfig.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    return build


def test_from_env_reads_variables_and_secret_files(tmp_path: Path,
                                                   from_env: Callable[[dict[str, str]], SiasnConfig]) -> None:
    secret_file = tmp_path / "consumer_secret"
    secret_file.write_text(CONSUMER_SECRET + "\n")
    env = {"CACT_SIASN_CONSUMER_KEY": "key", "CACT_SIASN_CONSUMER_SECRET_FILE": str(secret_file),
           "CACT_SIASN_SSO_CLIENT_ID": "cact", "CACT_SIASN_SSO_USERNAME": "op", "CACT_SIASN_SSO_PASSWORD": "pw",
           "CACT_SIASN_MAX_ATTEMPTS": "3", "CACT_SIASN_BASE_URL": "http://127.0.0.1:9/apisiasn/1.0"}
    cfg = from_env(env)
    assert cfg.consumer_secret.get_secret_value() == CONSUMER_SECRET and cfg.max_attempts == 3
    assert cfg.sso_token_url.startswith("https://sso-siasn.bkn.go.id/") and cfg.base_url.startswith("http://127")
    assert CONSUMER_SECRET not in repr(cfg) and CONSUMER_SECRET not in str(cfg.model_dump())

    with pytest.raises(SiasnConfigError, match="CACT_SIASN_SSO_PASSWORD") as caught:
        from_env({k: v for k, v in env.items() if k != "CACT_SIASN_SSO_PASSWORD"})
    assert CONSUMER_SECRET not in str(caught.value)
    with pytest.raises(SiasnConfigError, match="not both"):
        from_env({**env, "CACT_SIASN_CONSUMER_SECRET": "x"})
    with pytest.raises(ValueError) as invalid:  # a wrong value elsewhere must not echo the secrets either
        from_env({**env, "CACT_SIASN_MAX_ATTEMPTS": "zero", "CACT_SIASN_SSO_PASSWORD": SSO_PASSWORD})
    assert SSO_PASSWORD not in str(invalid.value) and CONSUMER_SECRET not in str(invalid.value)


def test_the_nip_mask_on_httpx_s_log_comes_with_the_client(caplog: pytest.LogCaptureFixture) -> None:
    """Building a client installs the filter (once), not importing a module: httpx's request lines carry NIPs."""
    httpx_log = logging.getLogger("httpx")
    for f in [f for f in httpx_log.filters if isinstance(f, NipMaskFilter)]:
        httpx_log.removeFilter(f)
    fake = FakeSiasn()
    caplog.set_level(logging.INFO, logger="httpx")

    async def scenario() -> None:
        async with fake.client() as first, fake.client() as second:
            await first.read_kompetensi(NIP)
            await second.read_kompetensi(NIP)

    run(scenario())
    assert sum(isinstance(f, NipMaskFilter) for f in httpx_log.filters) == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any("rw-kompetensi/19900101********01" in line for line in lines), lines
    assert not any(NIP in line for line in lines)


def test_secrets_and_nips_never_reach_logs_or_exception_texts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    leaks = [CONSUMER_SECRET, SSO_PASSWORD, "gateway-TOKEN", "sso-TOKEN"]
    errors: list[BaseException] = []

    fake = FakeSiasn()
    fake.scripts[SAVE] = [httpx.Response(401), httpx.ReadTimeout("timed out"), httpx.Response(503)]
    run(save(fake))
    for scenario in ("outage", "rejected", "bad-credentials"):
        fake = FakeSiasn()
        if scenario == "outage":
            fake.defaults[SAVE] = httpx.Response(500, text=f"stack trace with Bearer gateway-TOKEN-1 {NIP}")
        elif scenario == "rejected":
            fake.defaults[SAVE] = httpx.Response(400, json={"success": False, "message": "ditolak"})
        else:
            fake.token_answers["gateway"] = [httpx.Response(401, json={
                "error": "invalid_client", "error_description": "Client Authentication failed.",
                "echo": CONSUMER_SECRET})]
        with pytest.raises(Exception) as caught:
            run(save(fake, max_attempts=2))
        errors.append(caught.value)

    texts = [caplog.text] + [f"{e!s} {e!r}" for e in errors]
    assert any("19900101********01" in t for t in texts)
    for text in texts:
        for secret in leaks + [NIP]:
            assert secret not in text, (secret, text)


def test_the_client_config_has_the_defaults_and_bounds_of_its_settings() -> None:
    """SiasnConfig's field ``x`` is Settings' ``siasn_x``: one reader, and no default or bound drifting apart."""
    for name, info in SiasnConfig.model_fields.items():
        setting = Settings.model_fields[f"siasn_{name}"]
        if info.is_required():
            assert setting.default is None and f"siasn_{name}_file" in Settings.model_fields, name
        else:
            assert (info.default, info.metadata) == (setting.default, setting.metadata), name

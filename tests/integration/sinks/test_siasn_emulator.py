"""The SI ASN client against the real emulator over HTTP on 127.0.0.1: delivery exactly once through faults."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sinks.siasn.client import SiasnClient
from sinks.siasn.emulator import API_PREFIX, EmulatorConfig, EmulatorThread, Faults, nip_of, pns_id_of, start_emulator
from sinks.siasn.errors import SiasnRejected, SiasnUnavailable
from sinks.siasn.wire import KOMPETENSI_FIELDS
from support.clock import FakeClock

NIP_A, NIP_B, NIP_C = "199001012015031001", "198505122010012002", "197712302003121003"
LEVELS = dict(zip(KOMPETENSI_FIELDS, [3, 4, 2, 5, 3, 1, 4, 3, 2], strict=True))
POTENSI = {"berfikirKritis": 71.5, "intelektual": 80.0, "interpersonal": 66.25, "kesadaranDiri": 90.0,
           "motivasiKomitmen": 75.0, "total": 76.55}
FAST = {"backoff_base_s": 0.001, "backoff_max_s": 0.01, "rate_per_s": 0, "timeout_s": 2}


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread(config=EmulatorConfig(unknown_nips=frozenset({NIP_C}))) as emu:
        yield emu


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def save(emu: EmulatorThread, *nips: str, **overrides: Any) -> list[Any]:
    async with SiasnClient(emu.client_config(**{**FAST, **overrides})) as client:
        return [await client.save_kompetensi(nip, LEVELS, tahun=2026) for nip in nips]


def test_full_save_and_read_back(emulator: EmulatorThread) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with SiasnClient(emulator.client_config(**FAST)) as client:
            assert await client.read_kompetensi(NIP_A) == []
            result = await client.save_kompetensi(NIP_A, LEVELS, tahun=2026)
            assert (result.attempts, result.status_code, result.confirmed_by_readback) == (1, 200, False)
            assert result.pns_id == await client.pns_id(NIP_A) == pns_id_of(NIP_A)
            await client.save_potensi(NIP_A, POTENSI)
            return await client.read_kompetensi(NIP_A), await client.read_potensi(NIP_A)

    (kompetensi,), (potensi,) = run(scenario())
    assert {k: kompetensi[k] for k in KOMPETENSI_FIELDS} == LEVELS and kompetensi["tahun"] == 2026
    assert kompetensi["pnsId"] == pns_id_of(NIP_A) and len(kompetensi["tglUpdate"].split("-")[2]) == 4
    assert {k: potensi[k] for k in POTENSI} == POTENSI and potensi["pnsOrangId"] == pns_id_of(NIP_A)
    stats = emulator.stats()
    assert stats["saves_by_nip"] == {NIP_A: 1} and stats["potensi_saves_by_nip"] == {NIP_A: 1}
    assert stats["tokens_issued"] == 2


def test_holds_answers_whether_siasn_has_exactly_this_result(emulator: EmulatorThread) -> None:
    """What the outbox asks before re-sending a push a crashed worker may already have delivered."""
    async def scenario() -> list[bool]:
        async with SiasnClient(emulator.client_config(**FAST)) as client:
            before = [await client.holds_kompetensi(NIP_A, LEVELS, tahun=2026),
                      await client.holds_potensi(NIP_A, POTENSI)]
            await client.save_kompetensi(NIP_A, LEVELS, tahun=2026)
            await client.save_potensi(NIP_A, POTENSI)
            return before + [
                await client.holds_kompetensi(NIP_A, LEVELS, tahun=2026), await client.holds_potensi(NIP_A, POTENSI),
                await client.holds_kompetensi(NIP_A, LEVELS, tahun=2025),
                await client.holds_kompetensi(NIP_A, {**LEVELS, KOMPETENSI_FIELDS[0]: 5}, tahun=2026),
                await client.holds_potensi(NIP_A, {**POTENSI, "total": 1.0})]

    assert run(scenario()) == [False, False, True, True, False, False, False]


def test_503_burst_then_recovery_delivers_exactly_once(emulator: EmulatorThread) -> None:
    async def scenario() -> Any:
        async with SiasnClient(emulator.client_config(**FAST)) as client:
            await client.pns_id(NIP_A)
            await asyncio.to_thread(emulator.set_faults, fail_next_n=3)
            first = await client.save_kompetensi(NIP_A, LEVELS)
            await asyncio.to_thread(emulator.set_faults, fail_next_n=2)  # the lookup for B retries on its own
            return first, await client.save_kompetensi(NIP_B, LEVELS)

    first, second = run(scenario())
    assert (first.attempts, second.attempts) == (4, 1)
    stats = emulator.stats()
    assert stats["saves_by_nip"] == {NIP_A: 1, NIP_B: 1} and stats["served_503"] == 5
    assert stats["save_attempts_by_nip"] == {NIP_A: 1, NIP_B: 1}  # 503s never reached the save handler


def test_outage_longer_than_the_attempts_is_unavailable_then_delivers(emulator: EmulatorThread) -> None:
    emulator.set_faults(fail_next_n=10)
    with pytest.raises(SiasnUnavailable):
        run(save(emulator, NIP_A, max_attempts=3))
    emulator.set_faults(fail_next_n=0)
    run(save(emulator, NIP_A))
    assert emulator.stats()["saves_by_nip"] == {NIP_A: 1}


def test_random_5xx_every_result_delivered_once(emulator: EmulatorThread) -> None:
    emulator.set_faults(fail_rate=0.3, seed=11)
    nips = [f"1990010120150310{n:02d}" for n in range(1, 13)]
    results = run(save(emulator, *nips, max_attempts=30))
    stats = emulator.stats()
    assert stats["saves_by_nip"] == dict.fromkeys(nips, 1) and stats["served_5xx"] > 0
    assert sum(r.attempts for r in results) > len(nips)  # some saves did need a retry


def test_token_expiry_mid_run_recovers(emulator: EmulatorThread) -> None:
    async def scenario() -> None:
        async with SiasnClient(emulator.client_config(**FAST)) as client:
            await client.save_kompetensi(NIP_A, LEVELS)
            await asyncio.to_thread(emulator.set_faults, expire_tokens_now=True)
            await client.save_kompetensi(NIP_B, LEVELS)

    run(scenario())
    stats = emulator.stats()
    assert stats["saves_by_nip"] == {NIP_A: 1, NIP_B: 1}
    assert stats["served_401"] == 1 and stats["tokens_issued"] == 4


def test_emulator_tokens_expire_after_their_ttl() -> None:
    clock = FakeClock(1000.0)  # the emulator's and the client's: tokens age without the test waiting
    with EmulatorThread(config=EmulatorConfig(token_ttl_s=0.3), clock=clock) as emu:
        urls = EmulatorConfig.client_urls(emu.url)
        cfg = emu.config
        gateway = httpx.post(urls["gateway_token_url"], data={"grant_type": "client_credentials"},
                             auth=(cfg.consumer_key, cfg.consumer_secret)).json()
        sso = httpx.post(urls["sso_token_url"], data={"grant_type": "password", "client_id": cfg.sso_client_id,
                                                      "username": cfg.sso_username,
                                                      "password": cfg.sso_password}).json()
        assert gateway["expires_in"] == sso["expires_in"] == 0.3
        headers = {"Authorization": f"Bearer {gateway['access_token']}", "Auth": f"bearer {sso['access_token']}"}
        url = f"{urls['base_url']}/pns/data-utama/{NIP_A}"
        assert httpx.get(url, headers=headers).status_code == 200
        clock.advance(0.35)
        assert httpx.get(url, headers=headers).status_code == 401

        async def across_expiry() -> None:  # the client renews ahead of expiry: it never even sees a 401
            async with SiasnClient(emu.client_config(**FAST), clock=clock) as client:
                await client.save_kompetensi(NIP_A, LEVELS)
                clock.advance(0.35)
                await client.save_kompetensi(NIP_B, LEVELS)

        run(across_expiry())
        stats = emu.stats()
        assert stats["saves_by_nip"] == {NIP_A: 1, NIP_B: 1} and stats["served_401"] == 1
        assert stats["tokens_issued"] == 6  # the raw pair, then two pairs for the client


def test_reject_nips_is_rejected_and_not_retried(emulator: EmulatorThread) -> None:
    emulator.set_faults(reject_nips=[NIP_B])
    with pytest.raises(SiasnRejected, match="tidak valid") as caught:
        run(save(emulator, NIP_B))
    assert caught.value.status_code == 400
    stats = emulator.stats()
    assert stats["save_attempts_by_nip"] == {NIP_B: 1} and stats["saves_by_nip"] == {}
    run(save(emulator, NIP_A))  # others go through
    assert emulator.stats()["saves_by_nip"] == {NIP_A: 1}


def test_unknown_person_is_rejected(emulator: EmulatorThread) -> None:
    with pytest.raises(SiasnRejected, match="Data tidak ditemukan"):
        run(save(emulator, NIP_C))
    assert emulator.stats()["save_attempts_by_nip"] == {}


def test_slow_answer_and_client_timeout_retry_without_duplicate(emulator: EmulatorThread) -> None:
    async def scenario() -> Any:
        async with SiasnClient(emulator.client_config(**{**FAST, "timeout_s": 0.3})) as client:
            await client.pns_id(NIP_A)
            # The save is stored at once but answered after 0.8 s: the client times out not knowing.
            await asyncio.to_thread(emulator.set_faults, latency_ms=800, latency_next_n=1)
            return await client.save_kompetensi(NIP_A, LEVELS)

    result = run(scenario())
    assert result.confirmed_by_readback and result.attempts == 2
    stats = emulator.stats()
    assert stats["saves_by_nip"] == {NIP_A: 1} and stats["save_attempts_by_nip"] == {NIP_A: 1}


def test_slow_answer_for_every_call_is_unavailable_not_duplicated(emulator: EmulatorThread) -> None:
    emulator.set_faults(latency_ms=400)
    with pytest.raises(SiasnUnavailable):
        run(save(emulator, NIP_A, timeout_s=0.2, max_attempts=3))
    emulator.set_faults(latency_ms=0)
    (result,) = run(save(emulator, NIP_A))  # a fresh client: the outbox retrying later
    assert result.attempts == 1
    # The timed-out lookup never reached a save, so exactly one record: the one just made.
    assert emulator.stats()["saves_by_nip"] == {NIP_A: 1}


def test_emulator_validates_saves_and_answers_both_envelopes(emulator: EmulatorThread) -> None:
    async def scenario() -> list[httpx.Response]:
        async with SiasnClient(emulator.client_config(**FAST)) as client:
            pns = await client.pns_id(NIP_A)
            gateway, sso = await client._tokens.current()
        headers = {"Authorization": f"Bearer {gateway}", "Auth": f"bearer {sso}"}
        base = emulator.url + API_PREFIX
        async with httpx.AsyncClient(headers=headers) as raw:
            return [
                await raw.post(f"{base}/kompetensi/kompetensi/save", json={"pnsId": pns, **LEVELS, "integritas": 7}),
                await raw.post(f"{base}/kompetensi/kompetensi/save", json={"pnsId": "nobody", **LEVELS}),
                await raw.post(f"{base}/kompetensi/kompetensi/save",
                               json={"pnsId": pns, **{k: v for k, v in LEVELS.items() if k != "komunikasi"}}),
                await raw.post(f"{base}/kompetensi/kompetensi/save", json={"pnsId": pns, **LEVELS}),
                await raw.get(f"{base}/pns/rw-kompetensi/{NIP_A}"),
                await raw.get(f"{base}/pns/data-utama/{NIP_C}"),
                await raw.get(f"{base}/pns/data-utama/12345"),
                await raw.get(f"{base}/pns/data-utama/{NIP_A}", headers={"Auth": "bearer stale"}),
            ]

    bad_level, unknown_id, missing, ok, history, unknown_nip, malformed, no_sso = run(scenario())
    for resp, words in ((bad_level, "integritas"), (unknown_id, "pnsId"), (missing, "komunikasi")):
        assert resp.status_code == 400 and resp.json()["success"] is False and words in resp.json()["message"]
    assert ok.json()["success"] is True and ok.json()["message"] == "success" and ok.json()["mapData"]
    body = history.json()
    assert (body["code"], body["count"], body["message"]) == (1, 1, "success")
    day, month, year = body["data"][0]["tglUpdate"].split("-")
    assert len(day) == len(month) == 2 and len(year) == 4
    assert unknown_nip.status_code == malformed.status_code == 404 and unknown_nip.json()["code"] == 0
    assert no_sso.status_code == 401
    assert nip_of(pns_id_of(NIP_B)) == NIP_B and nip_of("nobody") is None
    assert emulator.stats()["saves_by_nip"] == {NIP_A: 1}


def test_faults_control_and_reset(emulator: EmulatorThread) -> None:
    assert emulator.set_faults(latency_ms=5, fail_rate=0.5, seed=3)["fail_rate"] == 0.5
    bad = httpx.post(emulator.url + "/_emulator/faults", json={"fail_rate": 2})
    assert bad.status_code == 400
    bad = httpx.post(emulator.url + "/_emulator/faults", json={"no_such_fault": 1})
    assert bad.status_code == 400
    run(save(emulator, NIP_A, max_attempts=20))
    emulator.reset()
    assert emulator.stats()["saves_by_nip"] == {} and emulator.stats()["tokens_issued"] == 0
    assert httpx.get(emulator.url + "/_emulator/faults").json()["faults"] == Faults().model_dump(mode="json")


def test_wrong_credentials_are_refused_without_leaking(emulator: EmulatorThread,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SiasnUnavailable) as caught:
        run(save(emulator, NIP_A, sso_password="wrong-Pa55-value"))
    assert "invalid_grant" in str(caught.value)
    for secret in ("wrong-Pa55-value", emulator.config.consumer_secret):
        assert secret not in caplog.text and secret not in str(caught.value)
    assert emulator.stats()["save_attempts_by_nip"] == {}
    emulator.set_faults(fail_next_n=1)
    run(save(emulator, NIP_A))  # tokens issued and used, a retry on the way: all logged at DEBUG, real socket
    issued = [*emulator.emulator._gateway_tokens, *emulator.emulator._sso_tokens]
    assert issued and "19900101********01" in caplog.text
    for secret in issued + [NIP_A]:
        assert secret not in caplog.text


def test_start_emulator_in_a_running_loop() -> None:
    async def scenario() -> dict[str, int]:
        runner, url = await start_emulator("127.0.0.1", 0, faults=Faults(fail_next_n=1))
        try:
            cfg = EmulatorConfig().client_config(url, **FAST)
            async with SiasnClient(cfg) as client:
                await client.save_kompetensi(NIP_A, LEVELS)
                return {r["nipBaru"]: r["integritas"] for r in await client.read_kompetensi(NIP_A)}
        finally:
            await runner.cleanup()

    assert run(scenario()) == {NIP_A: LEVELS["integritas"]}

"""Results reach SI ASN exactly once through a real worker, outbox, pusher and HTTP emulator (issue 5 c, d).

The emulator answers 503 in bursts and expires its tokens mid-run; two NIPs are refused as invalid. After it
recovers, every other result is saved exactly once (competencies, and potential where the blueprint has it),
with the values in the store; the refused ones are recorded as rejected with SI ASN's message, attempted once,
and delivered after an operator's ``cact siasn retry --rejected``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cact.processes import WorkerProcess, consumer_groups, siasn_env, wait_until_pushed
from producers.daysender import send_day
from producers.simulator import SimConfig, SimDay, TruthParticipant, build_day
from schemas.blueprint import SAMPLE_DIR, BlueprintRegistry
from schemas.settings import Settings, settings_env
from sinks import models as m
from sinks.siasn.client import SiasnClient
from sinks.siasn.emulator import EmulatorThread, Faults
from sinks.siasn.push import outbox_status, pushed_results
from sinks.store import ResultsStore
from streams.kafka import wait_until_consumed


def reference_potential(bp: dict[str, Any], t: TruthParticipant) -> dict[str, float] | None:
    """The potential profile recomputed from docs/scoring.md §potential, sharing no code with streams/scoring.py."""
    if "potential" not in bp:
        return None
    sub_pct: dict[str, float] = {}
    for sec in bp["sections"]:
        for sub in sec["subtests"]:
            got = sum(item["options"].get(t.sheets[sec["section"]].get(item["item_id"]) or "", 0)
                      for item in sub["items"])
            top = sum(max(item["options"].values()) for item in sub["items"])
            sub_pct[sub["code"]] = round(100 * got / top, 2)
    dims = {name: round(sum(sub_pct[c] for c in codes) / len(codes), 2) for name, codes in bp["potential"].items()}
    return {**dims, "total": round(sum(dims.values()) / len(dims), 2)}


def cli(settings: Settings, *args: str) -> str:
    env = {**os.environ, **settings_env(settings)}
    out = subprocess.run([sys.executable, "-m", "cact.cli", *args], env=env, capture_output=True, text=True,
                         timeout=60, check=True)
    return out.stdout


def worker_metrics(settings: Settings) -> str:
    return httpx.get(f"http://{settings.worker_web_host}:{settings.worker_web_port}/metrics", timeout=10).text


def saved_in_siasn(
        emu: EmulatorThread, nips: list[str]) -> dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    async def read() -> dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        async with SiasnClient(emu.client_config(rate_per_s=0)) as client:
            return {n: (await client.read_kompetensi(n), await client.read_potensi(n)) for n in nips}
    return asyncio.run(read())


@pytest.mark.broker
@pytest.mark.postgres
def test_outage_token_expiry_and_rejections_end_to_end(pipeline_kafka: Settings, pg_database: str,
                                                        tmp_path: Path) -> None:
    settings = pipeline_kafka.model_copy(update={
        "database_url": pg_database, "siasn_push_enabled": True, "siasn_retry_base_seconds": 0.2,
        "siasn_retry_max_seconds": 1.0})
    day: SimDay = build_day(SimConfig(participants=160, seats=40, malformed=0, mansoskul_only_share=0.5, seed=11),
                            BlueprintRegistry.from_dir())
    bps = {p.stem: json.loads(p.read_text()) for p in SAMPLE_DIR.glob("*.json")}
    attended = {t.nip: t for t in day.truth.values() if t.attended_anywhere}
    assert {t.blueprint_id for t in attended.values()} == {"cact-full", "mansoskul-only"}
    refused = sorted(attended)[:2]
    store = ResultsStore(pg_database)
    store.create_schema()  # as an operator's migrated database is; the worker's own migration then does nothing
    # Few, fast client retries so that outages outlast them and the outbox's own backoff is exercised too.
    env = {"CACT_SIASN_BACKOFF_BASE_S": "0.05", "CACT_SIASN_BACKOFF_MAX_S": "0.2", "CACT_SIASN_MAX_ATTEMPTS": "3"}

    with EmulatorThread(faults=Faults(fail_next_n=40, reject_nips=frozenset(refused))) as emu:
        worker = WorkerProcess(settings, tmp_path / "worker-1.log", extra_env={**siasn_env(emu), **env})
        try:
            send_day(settings, day)
            deadline = time.monotonic() + 120
            while outbox_status(store)["delivered"] < 20:  # part-way through: tokens expire, a second outage
                assert time.monotonic() < deadline, "nothing was delivered after the first outage"
                worker.check()
                time.sleep(0.1)
            emu.set_faults(expire_tokens_now=True, fail_next_n=30)
            asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=240, progress=worker.check))
            wait_until_pushed(store, timeout=240, progress=worker.check)
            time.sleep(2)  # ten retry periods: a rejected push must not be tried again
            metrics = worker_metrics(settings)
        finally:
            worker.stop()
        stats = emu.stats()

        # (c) after the outages every result was delivered exactly once, none lost, none duplicated
        assert stats["served_503"] >= 70 and stats["served_401"] >= 1 and stats["tokens_issued"] >= 4
        delivered = sorted(set(attended) - set(refused))
        assert stats["saves_by_nip"] == {n: 1 for n in delivered}
        full = [n for n in delivered if attended[n].blueprint_id == "cact-full"]
        assert stats["potensi_saves_by_nip"] == {n: 1 for n in full}
        current = {r["nip"]: r for r in store.current_results()}
        assert set(current) == set(attended)
        for nip, (komp, pot) in saved_in_siasn(emu, delivered).items():
            (record,) = komp
            assert {c["siasn_field"]: record[c["siasn_field"]] for c in current[nip]["competencies"]} == {
                c["siasn_field"]: c["level"] for c in current[nip]["competencies"]}
            assert record["tahun"] == int(current[nip]["assessed_on"][:4])
            expected = reference_potential(bps[attended[nip].blueprint_id], attended[nip])
            assert current[nip].get("potential") == expected
            assert [{k: r[k] for k in expected} for r in pot] == ([expected] if expected else [])

        # (d) validation errors: rejected with SI ASN's message, each push attempted once, never retried
        with Session(store.engine) as s:
            rows = s.scalars(select(m.SiasnOutbox).where(m.SiasnOutbox.nip.in_(refused))).all()
        assert rows and {r.status for r in rows} == {"rejected"}
        assert all("tidak valid untuk disimpan" in (r.last_error or "") for r in rows)
        # A push may meet the outage before its refusal (``attempts`` counts those tries too), but once SI ASN
        # has refused it, it is never sent again: each reached SI ASN's validation exactly once.
        assert {n: stats["save_attempts_by_nip"][n] for n in refused} == {
            n: sum(r.nip == n for r in rows) for n in refused}
        status = json.loads(cli(settings, "siasn", "status", "--json"))
        assert (status["pending"], status["rejected"]) == (0, len(rows))
        assert pushed_results(store) == len(delivered)
        assert f'cact_siasn_outbox{{status="rejected"}} {float(len(rows))}' in metrics
        assert 'cact_siasn_rejections_total{kind="kompetensi"} 2.0' in metrics

        # The operator fixes the records in SI ASN and sends the rejected pushes again.
        emu.set_faults(reject_nips=[])
        assert f"{len(rows)} rejected pushes are pending again" in " ".join(
            subprocess.run([sys.executable, "-m", "cact.cli", "siasn", "retry", "--rejected"],
                           env={**os.environ, **settings_env(settings)}, capture_output=True, text=True,
                           timeout=60, check=True).stderr.split())
        worker = WorkerProcess(settings, tmp_path / "worker-2.log", extra_env={**siasn_env(emu), **env})
        try:
            wait_until_pushed(store, timeout=120, progress=worker.check)
        finally:
            worker.stop()
        stats = emu.stats()
        assert stats["saves_by_nip"] == {n: 1 for n in attended}
        assert pushed_results(store) == len(attended)

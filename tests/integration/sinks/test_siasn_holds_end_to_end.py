"""A result's standing decides what reaches SI ASN: the store, the outbox, `cact siasn hold|release|void` and the
pusher over real HTTP to the SI ASN emulator, on PostgreSQL (issue 14, "Evidence before a result counts").

The result events are handcrafted (as the processor emits them): an incomplete result waits, held, until an
operator releases it (then it is saved once) or voids it (never saved); a not_recognised result never reaches
the emulator at all and cannot be released; replaying every result event after the decisions changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from schemas.nip import mask_nip
from sinks.siasn.client import SiasnClient
from sinks.siasn.emulator import EmulatorThread
from sinks.siasn.push import OutboxPusher, outbox_status, pushed_results
from sinks.store import ResultsStore
from support.hold_scenarios import NIP_A, NIP_B, NIP_C, HoldCases

NIP_D, NIP_E = "199104042019021004", "198806062012121005"
ACT = "ACT-2026-11"


def cact(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CACT_DATABASE_URL": database, "COLUMNS": "200", "USER": "ops-makassar",
           "LOGNAME": "ops-makassar"}
    return subprocess.run([sys.executable, "-m", "cact.cli", "siasn", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def push_until_idle(store: ResultsStore, emu: EmulatorThread) -> None:
    async def run() -> None:
        async with SiasnClient(emu.client_config(rate_per_s=0)) as client:
            pusher = OutboxPusher(store, client)
            while await pusher.push_once():
                pass
    asyncio.run(run())


@pytest.mark.postgres
def test_standing_holds_release_void_and_not_recognised_through_the_emulator(pg_database: str,
                                                                              store_cases: Any) -> None:
    cases = HoldCases(store_cases)
    events = [
        cases.scored(NIP_A),                                                        # counted: goes out
        cases.scored(NIP_B, "incomplete", detail="no answered items"),              # released below
        cases.scored(NIP_D, "incomplete", detail="digital literacy: 0 of 30 answered, minimum 1"),  # voided below
        cases.scored(NIP_C, "not_recognised", detail="kanreg-x: accreditation expired 2026-06-30",
                     organiser_id="kanreg-x"),                                      # never
        cases.scored(NIP_E, "incomplete", detail="no answered items"),              # rescored below
    ]
    store = ResultsStore(pg_database)
    store.create_schema()
    store.write_batch(events)
    with EmulatorThread() as emu:
        push_until_idle(store, emu)
        assert emu.stats()["save_attempts_by_nip"] == {NIP_A: 1}  # held and unrecognised results wait
        status = outbox_status(store)
        assert (status["pending"], status["held"], status["delivered"]) == (0, 3, 1)

        released = cact(pg_database, "release", "--nip", NIP_B, "--activity", ACT, "--reason",
                        "sheet recovered from the lab's spool, BA 14/2026")
        assert released.returncode == 0, released.stderr
        assert "held → pending" in released.stderr and NIP_B not in released.stderr + released.stdout
        voided = cact(pg_database, "void", "--nip", NIP_D, "--activity", ACT, "--reason", "left after 5 minutes",
                      "--operator", "andi")
        assert voided.returncode == 0, voided.stderr
        refused = cact(pg_database, "release", "--nip", NIP_C, "--activity", ACT, "--reason", "urgent")
        assert refused.returncode == 1 and "not_recognised" in refused.stderr and "Traceback" not in refused.stderr
        assert NIP_C not in refused.stderr and mask_nip(NIP_C) in refused.stderr
        # A rescore: E's new version has the evidence and is counted; the held old version is retired.
        store.write_batch([cases.scored(NIP_E, "counted", version=2)])

        store.write_batch(events)  # the sink replays the results topic: no decision is undone
        push_until_idle(store, emu)
        store.write_batch(list(reversed(events)))
        push_until_idle(store, emu)
        stats = emu.stats()

    assert stats["saves_by_nip"] == {NIP_A: 1, NIP_B: 1, NIP_E: 1}
    assert stats["save_attempts_by_nip"] == {NIP_A: 1, NIP_B: 1, NIP_E: 1}  # C and D never reached SI ASN
    status = outbox_status(store)
    assert (status["pending"], status["held"], status["void"], status["superseded"]) == (0, 0, 1, 1)
    assert pushed_results(store) == 3

    shown = json.loads(cact(pg_database, "status", "--json").stdout)
    assert shown["results_by_standing"] == {"counted": 2, "incomplete": 2, "not_recognised": 1}
    trail = json.loads(cact(pg_database, "decisions", "--json", "--full-nip").stdout)
    assert [(d["nip"], d["action"], d["operator"], d["reason"], d["previous_status"], d["new_status"])
            for d in trail] == [
        (NIP_B, "release", "ops-makassar", "sheet recovered from the lab's spool, BA 14/2026", "held", "pending"),
        (NIP_D, "void", "andi", "left after 5 minutes", "held", "void")]
    assert all(d["decided_at"].endswith("+00:00") for d in trail)
    store.dispose()

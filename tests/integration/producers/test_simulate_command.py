"""`cact simulate` as an operator runs it: build a day with faults, write its truth, send it, print a summary."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from producers.simulator import SimConfig, build_day
from producers.truth import GroundTruth
from schemas import topics
from schemas.blueprint import BlueprintRegistry
from schemas.settings import Settings, settings_env
from streams.kafka import end_offsets


@pytest.mark.broker
def test_simulate_writes_the_truth_and_sends_the_day(pipeline_kafka: Settings, tmp_path: Path) -> None:
    truth_file = tmp_path / "truth.json"
    env = {**os.environ, **settings_env(pipeline_kafka)}
    proc = subprocess.run(
        [sys.executable, "-m", "cact.cli", "simulate", "--participants", "60", "--seed", "7", "--malformed", "3",
         "--duplicates", "0.05", "--clock-skew", "kanreg-iv-makassar=120", "--truth", str(truth_file)],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    truth = GroundTruth.load(truth_file)
    same_day = build_day(SimConfig(participants=60, seed=7, malformed=3, duplicate_share=0.05, seats=30,
                                   reschedule_share=0.3, clock_skew={"kanreg-iv-makassar": 120.0}),
                         BlueprintRegistry.from_dir())
    assert truth.scheduled == same_day.scheduled == 60 and truth.attended == same_day.attended
    assert sum(truth.deadletter_reasons().values()) == 3

    offsets = asyncio.run(end_offsets(pipeline_kafka, [
        TopicPartition(t.name, n)
        for t in (topics.SCHEDULE, topics.LAB) for n in range(pipeline_kafka.topic_partitions)]))
    events = len(same_day.schedule) + len(same_day.lab)
    assert sum(offsets.values()) > events + 3  # every event, the malformed ones, and the duplicates on top
    out = proc.stdout + proc.stderr
    assert "participants scheduled" in out and "duplicates" in out and "kanreg-iv-makassar +120s" in out

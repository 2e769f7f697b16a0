"""The embedded broker restarted mid-day, losing every topic: the worker says so and stops, the labs resend,
and the day ends exactly as the same day without the loss (issue 12, "Broker loss is loud and recoverable").

Both runs send the same day in two parts, with the whole pipeline drained in between; the faulted run loses
the broker between the parts. Everything is compared row by row, except dead letters' positions: a dead letter
belongs to a source position, and a resent log has new positions (docs/operations.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.faults.broker_loss import broker_loss_day
from producers.simulator import SimConfig, build_day
from schemas.blueprint import BlueprintRegistry

pytestmark = [pytest.mark.broker, pytest.mark.postgres]


def test_a_broker_that_lost_its_data_is_reported_and_the_resent_day_equals_the_reference(tmp_path: Path) -> None:
    day = build_day(SimConfig(participants=120, seats=30, malformed=3, seed=31), BlueprintRegistry.from_dir())
    problems, facts = broker_loss_day(day, tmp_path)
    assert problems == [], "\n".join(problems)
    assert facts["results"] == day.attended > 0 and facts["lag_while_halted"] > 0

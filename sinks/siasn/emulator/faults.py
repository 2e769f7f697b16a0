"""What the emulator does wrong on purpose, and when: the failures a remote API shows, made reproducible.

Faults apply to API calls only (not to token or control endpoints), after authentication: ``fail_next_n``
(503s), ``fail_rate`` (random 500/502/503/504, seeded), ``latency_ms`` (optionally for the ``latency_next_n``
next calls only) and ``reject_nips`` (400 on their saves). Latency delays the *answer*: the work is done
first, which is exactly the case a client timeout makes ambiguous.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Faults(BaseModel):
    """What goes wrong, and how often. Partial updates arrive as JSON on ``POST /_emulator/faults``."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(default=0, ge=0)
    latency_next_n: int | None = Field(default=None, ge=0, description="delay only the next n calls; None: all")
    fail_next_n: int = Field(default=0, ge=0)
    fail_rate: float = Field(default=0.0, ge=0, le=1)
    seed: int = 0
    reject_nips: frozenset[str] = frozenset()


class FaultInjector:
    """The faults in force and the seeded dice that decide the random ones. Lives on the emulator's loop."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)

    def failure(self) -> int | None:
        """The 5xx status this API call is answered with instead of its work, or None to do the work."""
        f = self.faults
        if f.fail_next_n > 0:
            f.fail_next_n -= 1
            return 503
        if f.fail_rate > 0 and self.rng.random() < f.fail_rate:
            return self.rng.choice((500, 502, 503, 504))
        return None

    def latency(self) -> float:
        """Seconds to hold this call's answer back (after its work)."""
        f = self.faults
        if f.latency_ms <= 0 or f.latency_next_n == 0:
            return 0.0
        if f.latency_next_n is not None:
            f.latency_next_n -= 1
        return f.latency_ms / 1000

    def rejects(self, nip: str) -> bool:
        return nip in self.faults.reject_nips

    def update(self, changes: Mapping[str, Any]) -> Faults:
        """Apply a partial update (raises pydantic's ValidationError); a new ``seed`` restarts the dice."""
        faults = Faults.model_validate({**self.faults.model_dump(), **changes})
        if "seed" in changes:
            self.rng = random.Random(faults.seed)
        self.faults = faults
        return faults

"""The port: what the outbox pusher needs of SI ASN, and the errors that come with it.

The pusher (sinks/siasn/push.py) depends on this Protocol only; the httpx adapter (sinks/siasn/client.py)
implements it, and so does any fake a test plugs in. The errors are part of the port, not of one adapter:
every method raises :class:`SiasnRejected` when SI ASN refuses the data (final) and :class:`SiasnUnavailable`
(or its :class:`SiasnAuthError`) when it cannot be reached or kept failing (try again later).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sinks.siasn.errors import SiasnAuthError, SiasnError, SiasnRejected, SiasnUnavailable

__all__ = ["DeliveryResult", "SiasnAuthError", "SiasnError", "SiasnPort", "SiasnRejected", "SiasnUnavailable"]


@dataclass(frozen=True)
class DeliveryResult:
    """How a save went: ``attempts`` counts tries including the successful one (or the confirming read-back)."""

    attempts: int
    pns_id: str
    status_code: int
    confirmed_by_readback: bool = False  # an earlier, ambiguous try had in fact been saved: nothing sent twice


class SiasnPort(Protocol):
    """Saves that happen at most once, and the questions that make re-sending safe.

    Each method raises :class:`SiasnRejected` (the data is wrong: do not send it again) or
    :class:`SiasnUnavailable` (SI ASN is away: send it again later); nothing else is expected.
    """

    async def save_kompetensi(self, nip: str, levels: dict[str, int], *,
                              tahun: int | None = None) -> DeliveryResult | None:
        """Save the nine competency levels of ``nip`` for ``tahun`` (default: this year)."""
        ...

    async def holds_kompetensi(self, nip: str, levels: dict[str, int], *, tahun: int | None = None) -> bool:
        """Whether SI ASN already holds exactly these levels for ``tahun`` (asked before re-sending a claim that
        outlived a crash)."""
        ...

    async def save_potensi(self, nip: str, potensi: dict[str, float]) -> DeliveryResult | None:
        """Save the potential profile of ``nip``."""
        ...

    async def holds_potensi(self, nip: str, potensi: dict[str, float]) -> bool:
        """Whether SI ASN already holds exactly this potential profile."""
        ...

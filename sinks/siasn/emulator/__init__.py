"""A stand-in SI ASN over real HTTP (aiohttp), for the demo and the tests.

Why it exists: the real SI ASN sits behind an IP allow-list and has no sandbox, yet the pipeline's promise
(every result reaches SI ASN exactly once, through outages, token expiry and slow answers) has to be shown
against something that fails the way a remote API fails: over sockets, with real timeouts, not with mocks.

Its parts:

- ``config``: the demo credentials it accepts, its paths, and the deterministic person ids;
- ``api``: the emulated endpoints and token flows (domain.md §5) over an in-memory store, and their counters;
- ``faults``: what goes wrong on purpose (503s, random 5xx, latency, rejected NIPs), seeded;
- ``control``: ``/_emulator/faults``, ``/_emulator/stats``, ``/_emulator/reset``, for the loopback interface only;
- ``server``: running it on a loop, as a command, or in a background thread.

The emulator listens on 127.0.0.1 unless told otherwise.
"""

from sinks.siasn.emulator.api import SiasnEmulator, Stats
from sinks.siasn.emulator.config import (
    API_PREFIX,
    CONTROL_PREFIX,
    GATEWAY_TOKEN_PATH,
    SSO_TOKEN_PATH,
    EmulatorConfig,
    nip_of,
    pns_id_of,
)
from sinks.siasn.emulator.control import is_loopback
from sinks.siasn.emulator.faults import Faults
from sinks.siasn.emulator.server import EmulatorThread, run_emulator, start_emulator

__all__ = ["API_PREFIX", "CONTROL_PREFIX", "GATEWAY_TOKEN_PATH", "SSO_TOKEN_PATH", "EmulatorConfig",
           "EmulatorThread", "Faults", "SiasnEmulator", "Stats", "is_loopback", "nip_of", "pns_id_of",
           "run_emulator", "start_emulator"]

"""The emulator's control surface (``/_emulator/...``: faults, stats, reset), for this machine only.

Its control endpoints answer only clients on the loopback interface (403 otherwise) even when the emulator
listens wider (``--host``): anyone who can change faults or reset it can make the pipeline's pushes fail or
forget what was saved.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from sinks.siasn.emulator.config import CONTROL_PREFIX

if TYPE_CHECKING:
    from sinks.siasn.emulator.api import SiasnEmulator

log = logging.getLogger("cact.siasn.emulator")


def is_loopback(remote: str | None) -> bool:
    """The peer address aiohttp reports (None on a Unix socket); an IPv4 peer of a dual-stack socket too."""
    if remote is None:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


@web.middleware
async def loopback_only(request: web.Request,
                        handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """The control endpoints for this machine only, wherever the emulator listens."""
    if request.path.startswith(CONTROL_PREFIX) and not is_loopback(request.remote):
        return web.json_response({"message": "the emulator's control endpoints answer only on the loopback "
                                             "interface (127.0.0.1, ::1)"}, status=403)
    return await handler(request)


def control_routes(emulator: SiasnEmulator) -> list[web.RouteDef]:
    """``GET``/``POST /_emulator/faults`` (the action ``expire_tokens_now`` besides), ``GET /_emulator/stats``,
    ``POST /_emulator/reset``."""

    def faults_json() -> dict[str, Any]:
        return {"faults": emulator.faults.model_dump(mode="json")}

    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response(faults_json())

    async def set_faults(request: web.Request) -> web.Response:
        try:
            changes = await request.json()
        except ValueError:
            changes = None
        if not isinstance(changes, dict):
            return web.json_response({"message": "a JSON object of faults is expected"}, status=400)
        expire = bool(changes.pop("expire_tokens_now", False))
        try:
            faults = emulator.injector.update(changes)
        except ValidationError as exc:
            return web.json_response({"message": str(exc)}, status=400)
        if expire:
            emulator.expire_tokens()
        log.info("emulator faults now %s%s", faults.model_dump(exclude={"reject_nips"}),
                 " (all tokens expired)" if expire else "")
        return web.json_response(faults_json())

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(emulator.stats.as_json())

    async def reset(request: web.Request) -> web.Response:
        emulator.reset()
        return web.json_response({"reset": True})

    return [web.get(CONTROL_PREFIX + "faults", get_faults), web.post(CONTROL_PREFIX + "faults", set_faults),
            web.get(CONTROL_PREFIX + "stats", stats), web.post(CONTROL_PREFIX + "reset", reset)]

"""The SI ASN emulator's control endpoints answer only this machine, wherever the emulator listens: whoever may
set faults or reset it can make every push fail or forget what SI ASN saved."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from sinks.siasn import emulator as emu
from sinks.siasn.emulator import control


def from_peer(path: str, peer: str | None, method: str = "GET") -> web.Request:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda key, default=None: (
        (peer, 40000) if key == "peername" and peer is not None else default)
    return make_mocked_request(method, path, transport=transport)


def answer(path: str, peer: str | None) -> tuple[int, Any]:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"served": True})

    response = asyncio.run(control.loopback_only(from_peer(path, peer), handler))
    assert isinstance(response, web.Response) and response.body is not None
    return response.status, json.loads(bytes(response.body))  # type: ignore[arg-type]


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_control_answers_the_loopback_interface(peer: str) -> None:
    assert answer("/_emulator/stats", peer) == (200, {"served": True})


@pytest.mark.parametrize("peer", ["192.0.2.7", "10.0.0.1", "::ffff:10.0.0.1", "2001:db8::1", "fe80::1%eth0", None])
def test_control_refuses_everyone_else(peer: str | None) -> None:
    for path in ("/_emulator/stats", "/_emulator/faults", "/_emulator/reset"):
        status, body = answer(path, peer)
        assert status == 403 and "loopback" in body["message"]


def test_the_api_itself_is_not_limited_to_loopback() -> None:
    assert answer(emu.API_PREFIX + "/pns/data-utama/199001012015031001", "192.0.2.7") == (200, {"served": True})
    assert answer(emu.GATEWAY_TOKEN_PATH, "192.0.2.7") == (200, {"served": True})


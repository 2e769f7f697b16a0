"""The unit suite's guard is on: every way of starting a process fails here (tests/unit/conftest.py)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys

import pytest

RULE = "starts a process"


def test_subprocess_and_os_system_are_refused() -> None:
    with pytest.raises(AssertionError, match=RULE):
        subprocess.run([sys.executable, "-c", "pass"], check=False)
    with pytest.raises(AssertionError, match=RULE):
        os.system("true")


def test_asyncio_subprocesses_are_refused() -> None:
    async def spawn() -> None:
        await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")

    with pytest.raises(AssertionError, match=RULE):
        asyncio.run(spawn())


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_multiprocessing_is_refused(method: str) -> None:
    process = multiprocessing.get_context(method).Process(target=print)
    with pytest.raises(AssertionError, match=RULE):
        process.start()

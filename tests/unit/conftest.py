"""The unit suite's one rule beyond its fixtures: no test here starts a process.

tests/unit is what a developer runs after every change, so it must stay fast and need nothing but Python: no
broker, no worker process, no external tool (promtool, openssl, node). A test that needs one belongs in
tests/integration/, under the same package path. This hook makes the rule hold rather than hope: while a unit
test module is imported and while each test is set up, run and torn down (module and session fixtures
included, as they are built inside a test's setup), every way of starting a process raises ``StartsAProcess``
naming the test; tests/unit/test_no_processes.py proves the guard is on. ``CliRunner`` invokes a command in
this process, so it stays allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# A dependency's one-off, not a test's process: croniter (under faust's ``mode``) runs ``file`` on the interpreter
# when it is first imported (``platform.architecture``), so it is imported here, before any guard is on.
with contextlib.suppress(ImportError):
    import croniter  # noqa: F401
# Likewise matplotlib (under the PDF reports): on a machine without its font cache, the first import runs
# ``fc-list`` to build it. `pytest tests` imports it from an integration module first; `pytest tests/unit`
# on a fresh machine would refuse it inside the first report test's import.
with contextlib.suppress(ImportError):
    import matplotlib.font_manager  # noqa: F401


class StartsAProcess(AssertionError):
    """A unit test tried to start a process: move it to tests/integration/ (same package path)."""


#: What subprocess (and asyncio's subprocesses, which use it), multiprocessing, os.system and pty end up in;
#: ``subprocess._fork_exec`` is bound when subprocess is imported, so it is patched where it was bound.
_GUARDED: list[tuple[Any, str]] = [
    (subprocess.Popen, "_execute_child"), (subprocess, "_fork_exec"),
    (os, "fork"), (os, "forkpty"), (os, "posix_spawn"), (os, "posix_spawnp"), (os, "system"),
    (asyncio, "create_subprocess_exec"), (asyncio, "create_subprocess_shell"),
]
try:
    import _posixsubprocess  # multiprocessing's spawn and forkserver start methods call it directly
except ImportError:  # not POSIX
    pass
else:
    _GUARDED.append((_posixsubprocess, "fork_exec"))


def _refuse(nodeid: str, name: str) -> Callable[..., Any]:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise StartsAProcess(f"{nodeid} starts a process ({name}): tests/unit runs no subprocess; "
                             "move the test to tests/integration/ under the same package path")
    return refused


@contextmanager
def _no_processes(nodeid: str) -> Iterator[None]:
    saved = [(owner, name, getattr(owner, name)) for owner, name in _GUARDED if hasattr(owner, name)]
    for owner, name, _ in saved:
        setattr(owner, name, _refuse(nodeid, f"{owner.__name__}.{name}"))
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


UNIT = Path(__file__).resolve().parent


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Called for every test of the session (a conftest hook is not scoped to its directory): guard ours only."""
    if not item.path.is_relative_to(UNIT):
        return (yield)
    with _no_processes(item.nodeid):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[pytest.CollectReport]:
    """Importing a unit test module must not start a process either (code at module level)."""
    if not collector.path.is_relative_to(UNIT):
        return (yield)
    with _no_processes(collector.nodeid):
        return (yield)

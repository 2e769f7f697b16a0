"""Ctrl-C stops the demo even when the KeyboardInterrupt it raised was swallowed on the way (CI failure of
stop 24: the demo ran the whole day and exited 0 after a SIGINT)."""

from __future__ import annotations

import os
import signal

import pytest

from cact.demo import remembered_interrupts


def swallowing_library_call() -> None:
    """What kafka-python 3's I/O kernel and a finalizer do with an exception: log it and go on."""
    try:
        os.kill(os.getpid(), signal.SIGINT)
        signal.sigtimedwait([], 0)  # give the handler its bytecode boundary here, inside the catch-all
    except BaseException:  # noqa: BLE001 - the point of the test
        pass


def test_a_swallowed_interrupt_is_raised_again_at_the_next_check() -> None:
    with remembered_interrupts() as interrupted:
        interrupted()  # nothing yet
        swallowing_library_call()
        with pytest.raises(KeyboardInterrupt):
            interrupted()


def test_the_previous_handler_is_back_afterwards() -> None:
    before = signal.getsignal(signal.SIGINT)
    with remembered_interrupts():
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before


def test_an_interrupt_outside_any_library_raises_at_once() -> None:
    with remembered_interrupts(), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        signal.sigtimedwait([], 0)

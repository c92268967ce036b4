"""`harness.local.traffic.submit`: a coroutine run on a client agent's loop from another thread
is made in the loop's thread, so a batch interrupted before the loop got to it leaves no
coroutine that was never awaited (Python's warning at exit was seen on the stderr of a run
stopped by SIGINT: tests/local/test_kills.py)."""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import CancelledError

import pytest

from harness.local.traffic import submit


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(5)
    running.close()


async def answer(value: int) -> int:
    await asyncio.sleep(0)
    return value


async def fail() -> int:
    raise ValueError("broken")


def test_the_result_and_the_error_reach_the_caller(loop: asyncio.AbstractEventLoop) -> None:
    assert submit(loop, lambda: answer(7)).result(timeout=5) == 7
    with pytest.raises(ValueError, match="broken"):
        submit(loop, fail).result(timeout=5)


def test_cancelled_before_the_loop_got_to_it_no_coroutine_is_made() -> None:
    idle = asyncio.new_event_loop()  # not running: the call waits in its queue
    made = []
    try:
        future = submit(idle, lambda: made.append(1) or answer(1))  # type: ignore[func-returns-value]
        assert future.cancel()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "coroutine ... was never awaited" would raise
            idle.call_soon(idle.stop)
            idle.run_forever()
    finally:
        idle.close()
    assert made == []


def test_cancelling_a_started_call_cancels_its_task(loop: asyncio.AbstractEventLoop) -> None:
    started, cancelled = threading.Event(), threading.Event()

    async def wait_forever() -> int:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 0

    future = submit(loop, wait_forever)
    assert started.wait(5)
    assert future.cancel()
    assert cancelled.wait(5)
    with pytest.raises(CancelledError):
        future.result(timeout=1)

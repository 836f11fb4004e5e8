"""The polling helper every test waits with (tests/support/polling.py): it
returns the first value that is done, awaits coroutine checks, and on timeout
fails naming what it waited for and the last value it saw; and the wait for
a uvicorn server to listen (tests/support/servers.py) built on it."""

from __future__ import annotations

import asyncio

import pytest
import uvicorn

from tests.support.polling import wait_until, wait_until_sync
from tests.support.servers import started


class Counter:
    """A check that answers ``values`` in turn, then the last one forever."""

    def __init__(self, *values: object) -> None:
        self.values, self.calls = list(values), 0

    def __call__(self) -> object:
        self.calls += 1
        return self.values[min(self.calls, len(self.values)) - 1]


async def test_returns_the_first_truthy_value_of_a_plain_check() -> None:
    check = Counter(None, 0, "", "ready", "later")
    assert await wait_until(check, timeout=5, what="ready", every=0) == "ready"
    assert check.calls == 4


async def test_awaits_a_coroutine_check() -> None:
    check = Counter([], [], [7])

    async def get() -> object:
        return check()

    assert await wait_until(get, timeout=5, what="a pid", every=0) == [7]


async def test_done_decides_and_the_value_is_returned() -> None:
    bodies = Counter({"status": "queued"}, {"status": "running"}, {"status": "succeeded"})
    body = await wait_until(bodies, timeout=5, what="run r1", every=0,
                            done=lambda b: b["status"] == "succeeded")
    assert body == {"status": "succeeded"}


async def test_a_timeout_names_what_was_awaited_the_last_value_and_details() -> None:
    check = Counter({"status": "queued"}, {"status": "running"})
    with pytest.raises(AssertionError) as failure:
        await wait_until(check, timeout=0.05, what="run r1 to end", every=0.01,
                         done=lambda b: b["status"] == "succeeded",
                         details=lambda: "server log: boom")
    message = str(failure.value)
    assert "timed out after 0.05 s waiting for run r1 to end" in message
    assert "last seen: {'status': 'running'}" in message
    assert message.endswith("\nserver log: boom")
    assert check.calls >= 2


async def test_the_check_runs_once_even_with_no_time() -> None:
    check = Counter(None, "late")
    with pytest.raises(AssertionError, match="last seen: None"):
        await wait_until(check, timeout=0, what="nothing", every=0)
    assert await wait_until(check, timeout=0, what="the second answer") == "late"


async def test_an_error_in_the_check_is_not_swallowed() -> None:
    def check() -> bool:
        raise RuntimeError("the process died")

    with pytest.raises(RuntimeError, match="the process died"):
        await wait_until(check, timeout=5, what="health")


def test_the_sync_variant_follows_the_same_rules() -> None:
    check = Counter(False, False, True)
    assert wait_until_sync(check, timeout=5, what="the agent", every=0) is True
    assert check.calls == 3
    with pytest.raises(AssertionError, match=r"waiting for the agent; last seen: 'no'$"):
        wait_until_sync(lambda: "no", timeout=0.02, what="the agent", every=0.005,
                        done=lambda v: v == "yes")


async def test_a_server_that_stops_before_listening_raises_its_own_error() -> None:
    server = uvicorn.Server(uvicorn.Config(app=None, port=0))  # never served: never started

    async def fails() -> None:
        raise OSError("address already in use")

    task = asyncio.create_task(fails())
    with pytest.raises(OSError, match="address already in use"):
        await started(server, task, "the receiver")

    async def returns() -> None:
        return None

    task = asyncio.create_task(returns())
    with pytest.raises(AssertionError, match="the receiver stopped before it started"):
        await started(server, task, "the receiver")

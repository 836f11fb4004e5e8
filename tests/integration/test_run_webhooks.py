"""Run webhooks reach a real local receiver, signed with the run's secret."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from deckhand.events.webhooks import verify
from tests.conftest import make_settings, serve
from tests.support.polling import wait_until
from tests.support.runs import cmd, machine, script, start, wait_for
from tests.support.servers import started

pytestmark = pytest.mark.asyncio


class Receiver:
    """A webhook endpoint that fails its first ``failures`` requests."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: Request) -> JSONResponse:
        self.received.append((dict(request.headers), await request.body()))
        self.arrived.set()
        if len(self.received) <= self.failures:
            return JSONResponse({"error": "try again"}, status_code=500)
        return JSONResponse({"ok": True})


async def _serve_receiver(receiver: Receiver) -> tuple[uvicorn.Server, asyncio.Task[Any], str]:
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    port = await started(server, task, "the webhook receiver")
    return server, task, f"http://127.0.0.1:{port}/hook"


async def _received(receiver: Receiver, n: int, timeout: float = 15.0) -> None:
    """Wait until ``receiver`` has had ``n`` deliveries (retries included)."""
    await wait_until(lambda: len(receiver.received), done=lambda count: count >= n,
                     timeout=timeout, every=0.02, what=f"{n} webhook deliveries")


async def test_signed_delivery_retried_until_2xx(tmp_path, database_url) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver(failures=2)
    rserver, rtask, url = await _serve_receiver(receiver)
    settings = make_settings(tmp_path, database_url, webhook_allow_hosts="127.0.0.1",
                             webhook_retry_base_seconds=0.05)
    try:
        async with serve(settings) as s:
            key = await s.key()
            async with s.client(key) as c:
                mid = await machine(c)
                run = await start(c, machine_id=mid, model="scripted", webhook_url=url,
                                  task=script(cmd("echo hi")))
                secret = run["webhook_secret"]
                assert secret and secret.startswith("whsec_")
                assert (await c.get(f"/v1/runs/{run['id']}")).json()["webhook_secret"] is None
                await wait_for(c, run["id"])
                await _received(receiver, 3)
                # a few more dispatcher cycles: nothing is sent after the 2xx
                for _ in range(3):
                    await s.services.webhooks.run_once()
                await asyncio.sleep(0.3)
            assert len(receiver.received) == 3
            bodies = {body for _, body in receiver.received}
            assert len(bodies) == 1  # the same event, byte for byte
            headers, body = receiver.received[-1]
            assert verify(secret, body, headers["coasty-signature"])
            assert headers["x-coasty-signature"] == headers["coasty-signature"]
            assert not verify("whsec_wrong", body, headers["coasty-signature"])
            event = json.loads(body)
            assert event["type"] == "run.succeeded"
            assert event["run"]["id"] == run["id"] and event["run"]["status"] == "succeeded"
            assert event["run"]["webhook_secret"] is None
            assert secret not in body.decode()
    finally:
        rserver.should_exit = True
        await rtask


async def test_awaiting_human_webhook(tmp_path, sqlite_url) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver()
    rserver, rtask, url = await _serve_receiver(receiver)
    settings = make_settings(tmp_path, sqlite_url, webhook_allow_hosts="127.0.0.1")
    try:
        async with serve(settings) as s:
            key = await s.key()
            async with s.client(key) as c:
                mid = await machine(c)
                run = await start(c, machine_id=mid, webhook_url=url,
                                  task='ask a human "approve?"')
                await _received(receiver, 1)
                await c.post(f"/v1/runs/{run['id']}/cancel")
                await _received(receiver, 2)
        types = [json.loads(b)["type"] for _, b in receiver.received]
        assert types == ["run.awaiting_human", "run.cancelled"]
    finally:
        rserver.should_exit = True
        await rtask

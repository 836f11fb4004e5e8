"""The webhook dispatcher against a real HTTP receiver on loopback, on SQLite
and PostgreSQL: signatures, retries, Retry-After, give-up, the SSRF re-check,
and several dispatchers sharing one database."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from deckhand import crypto
from deckhand.config import Settings
from deckhand.core.clock import utcnow
from deckhand.events.webhooks import (
    SECRET_PURPOSE,
    WebhookDispatcher,
    new_webhook_secret,
    verify,
)
from deckhand.store import webhooks as outbox
from deckhand.store.db import Database
from tests.conftest import make_settings
from tests.support.polling import wait_until

WAIT = 15.0  # bound on every wait below


# --- a minimal HTTP/1.1 receiver ------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float  # time.monotonic() when it arrived

    @property
    def webhook_id(self) -> str:
        return self.headers["coasty-webhook-id"]


Responder = Callable[[Request, int], tuple[int, dict[str, str]]]


def always(status: int) -> Responder:
    return lambda _req, _n: (status, {})


def script(*answers: int | tuple[int, dict[str, str]]) -> Responder:
    """Answer the n-th request with answers[n-1]; 200 after the script ends."""

    def respond(_req: Request, n: int) -> tuple[int, dict[str, str]]:
        if n > len(answers):
            return 200, {}
        a = answers[n - 1]
        return a if isinstance(a, tuple) else (a, {})

    return respond


@dataclass
class Receiver:
    respond: Responder = field(default_factory=lambda: always(200))
    requests: list[Request] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hooks/deckhand"

    def for_id(self, webhook_id: str) -> list[Request]:
        return [r for r in self.requests if r.webhook_id == webhook_id]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await reader.readline()).decode("latin-1").strip()
            if not line:
                return
            method, path, _version = line.split(" ", 2)
            headers: dict[str, str] = {}
            while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = h.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            req = Request(method, path, headers, body, time.monotonic())
            async with self._changed:
                self.requests.append(req)
                n = sum(1 for r in self.requests if r.headers.get("coasty-webhook-id")
                        == req.headers.get("coasty-webhook-id"))
                self._changed.notify_all()
            status, extra = self.respond(req, n)
            head = f"HTTP/1.1 {status} Whatever\r\nContent-Length: 2\r\nConnection: close\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
            writer.write(head.encode() + b"\r\nok")
            await writer.drain()
        finally:
            writer.close()


# --- fixtures and helpers -----------------------------------------------------


@pytest.fixture
def db(each_db: Database) -> Database:
    return each_db


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.close()


def settings_for(tmp_path: Path, db: Database, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "webhook_allow_hosts": "127.0.0.1",
        "webhook_retry_base_seconds": 0.05,
        "webhook_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return make_settings(tmp_path, db.url, **values)


@dataclass
class Hook:
    id: str
    webhook_secret: str


async def enqueue(
    db: Database, settings: Settings, url: str, *, run_id: str | None = None,
    event_type: str = "run.completed", payload: dict | None = None,  # type: ignore[type-arg]
) -> Hook:
    webhook_secret = new_webhook_secret()
    sealed = crypto.seal(settings.secret(), SECRET_PURPOSE, webhook_secret)
    async with db.write() as conn:
        delivery_id = await outbox.enqueue(
            conn, account_id="acct_test", run_id=run_id, url=url, event_type=event_type,
            payload=payload if payload is not None else {"data": {"status": "succeeded"}},
            secret_sealed=sealed,
        )
    return Hook(delivery_id, webhook_secret)


async def delivery(db: Database, delivery_id: str) -> outbox.Delivery:
    async with db.read() as conn:
        d = await outbox.get(conn, delivery_id)
    assert d is not None
    return d


async def attempts(db: Database, delivery_id: str) -> list[outbox.Attempt]:
    async with db.read() as conn:
        return await outbox.attempts_for(conn, delivery_id)


async def status_is(db: Database, delivery_id: str, status: str) -> None:
    """Wait until the delivery's row has ``status`` (bounded by ``WAIT``)."""
    await wait_until(lambda: delivery(db, delivery_id), done=lambda d: d.status == status,
                     timeout=WAIT, every=0.02, what=f"delivery {delivery_id} to be {status}")


# --- tests ----------------------------------------------------------------------


async def test_delivery_is_signed_and_recorded(
    tmp_path: Path, db: Database, receiver: Receiver
) -> None:
    settings = settings_for(tmp_path, db)
    dispatcher = WebhookDispatcher(db, settings.secret(), settings)
    dispatcher.start()
    try:
        hook = await enqueue(db, settings, receiver.url, run_id="run-1",
                             payload={"data": {"run_id": "run-1", "status": "succeeded"}})
        dispatcher.wake()
        await receiver.wait_for(lambda: len(receiver.requests) == 1)
        await status_is(db, hook.id, outbox.DELIVERED)
    finally:
        await dispatcher.stop()

    req = receiver.requests[0]
    stored = await delivery(db, hook.id)
    assert req.method == "POST" and req.path == "/hooks/deckhand"
    assert req.body == stored.payload.encode()
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"] == "Deckhand-Webhooks/1"
    assert req.headers["coasty-webhook-id"] == hook.id
    assert req.headers["coasty-webhook-attempt"] == "1"
    assert req.headers["coasty-signature"] == req.headers["x-coasty-signature"]
    assert verify(hook.webhook_secret, req.body, req.headers["coasty-signature"])
    assert not verify(new_webhook_secret(), req.body, req.headers["coasty-signature"])

    body = json.loads(req.body)
    assert body["id"] == hook.id and hook.id.startswith("evt_") and len(hook.id) == 28
    assert body["type"] == "run.completed"
    assert body["created_at"].endswith("Z")
    assert body["data"] == {"run_id": "run-1", "status": "succeeded"}

    assert stored.attempts == 1 and stored.last_status_code == 200
    assert stored.delivered_at is not None and stored.next_attempt_at is None
    assert stored.claimed_until is None and stored.last_error is None
    [a] = await attempts(db, hook.id)
    assert a.attempt == 1 and a.status_code == 200 and a.error is None and a.duration_ms >= 0
    async with db.read() as conn:
        assert [d.id for d in await outbox.list_for_run(conn, "run-1")] == [hook.id]


async def test_retries_until_2xx_then_never_again(
    tmp_path: Path, db: Database, receiver: Receiver
) -> None:
    receiver.respond = script(500, 500, 200)
    settings = settings_for(tmp_path, db)
    dispatcher = WebhookDispatcher(db, settings.secret(), settings)
    dispatcher.start()
    try:
        hook = await enqueue(db, settings, receiver.url)
        dispatcher.wake()
        await receiver.wait_for(lambda: len(receiver.for_id(hook.id)) == 3)
        await status_is(db, hook.id, outbox.DELIVERED)

        # More cycles: a later delivery goes through the same running loop, and
        # explicit cycles find nothing due; the delivered one is never re-sent.
        for _ in range(3):
            assert await dispatcher.run_once() == 0
        later = await enqueue(db, settings, receiver.url)
        dispatcher.wake()
        await receiver.wait_for(lambda: len(receiver.for_id(later.id)) == 1)
        await status_is(db, later.id, outbox.DELIVERED)
        for _ in range(3):
            assert await dispatcher.run_once() == 0
    finally:
        await dispatcher.stop()

    sent = receiver.for_id(hook.id)
    assert len(sent) == 3
    assert [r.headers["coasty-webhook-attempt"] for r in sent] == ["1", "2", "3"]
    assert len({r.body for r in sent}) == 1  # the same bytes every time
    for r in sent:
        assert verify(hook.webhook_secret, r.body, r.headers["coasty-signature"])

    recorded = await attempts(db, hook.id)
    assert [(a.attempt, a.status_code, a.error) for a in recorded] == [
        (1, 500, "HTTP 500"), (2, 500, "HTTP 500"), (3, 200, None)]
    stored = await delivery(db, hook.id)
    assert stored.status == "delivered" and stored.attempts == 3
    assert stored.last_status_code == 200 and stored.last_error is None


async def test_retry_after_seconds_is_honoured(
    tmp_path: Path, db: Database, receiver: Receiver
) -> None:
    receiver.respond = script((429, {"Retry-After": "1"}), 200)
    settings = settings_for(tmp_path, db)
    dispatcher = WebhookDispatcher(db, settings.secret(), settings)
    dispatcher.start()
    try:
        hook = await enqueue(db, settings, receiver.url)
        dispatcher.wake()
        await receiver.wait_for(lambda: len(receiver.for_id(hook.id)) == 2)
        await status_is(db, hook.id, outbox.DELIVERED)
    finally:
        await dispatcher.stop()
    first, second = receiver.for_id(hook.id)
    assert second.at - first.at >= 1.0  # the backoff alone would be ~0.05 s
    recorded = await attempts(db, hook.id)
    assert [(a.status_code, a.error) for a in recorded] == [(429, "HTTP 429"), (200, None)]


async def test_retry_after_http_date_sets_next_attempt(
    tmp_path: Path, db: Database, receiver: Receiver
) -> None:
    not_before = (utcnow() + timedelta(seconds=120)).replace(microsecond=0)
    receiver.respond = script((503, {"Retry-After": format_datetime(not_before, usegmt=True)}))
    settings = settings_for(tmp_path, db)
    dispatcher = WebhookDispatcher(db, settings.secret(), settings)
    try:
        hook = await enqueue(db, settings, receiver.url)
        assert await dispatcher.run_once() == 1
        assert await dispatcher.run_once() == 0  # not due before the Retry-After date
    finally:
        await dispatcher.stop()
    stored = await delivery(db, hook.id)
    assert stored.status == "pending" and stored.attempts == 1
    assert stored.last_status_code == 503
    assert stored.next_attempt_at is not None and stored.next_attempt_at >= not_before
    assert stored.next_attempt_at <= not_before + timedelta(seconds=1)
    assert len(receiver.requests) == 1


async def test_gives_up_after_max_attempts(
    tmp_path: Path, db: Database, receiver: Receiver
) -> None:
    receiver.respond = always(500)
    settings = settings_for(tmp_path, db, webhook_max_attempts=3,
                            webhook_retry_base_seconds=0.01)
    dispatcher = WebhookDispatcher(db, settings.secret(), settings)
    dispatcher.start()
    try:
        hook = await enqueue(db, settings, receiver.url)
        dispatcher.wake()
        await status_is(db, hook.id, outbox.FAILED)
        assert await dispatcher.run_once() == 0
    finally:
        await dispatcher.stop()
    assert len(receiver.for_id(hook.id)) == 3
    recorded = await attempts(db, hook.id)
    assert [(a.attempt, a.status_code) for a in recorded] == [(1, 500), (2, 500), (3, 500)]
    stored = await delivery(db, hook.id)
    assert stored.attempts == 3 and stored.next_attempt_at is None
    assert stored.delivered_at is None and stored.last_error == "HTTP 500"


async def test_refused_url_counts_as_failed_attempt(
    tmp_path: Path, db: Database, receiver: Receiver
) -> None:
    # The URL was fine when the run was created (allowed then); the server now
    # refuses loopback, so the attempt fails without any request being made.
    settings = settings_for(tmp_path, db, webhook_allow_hosts="")
    dispatcher = WebhookDispatcher(db, settings.secret(), settings)
    try:
        hook = await enqueue(db, settings, receiver.url)
        assert await dispatcher.run_once() == 1
    finally:
        await dispatcher.stop()
    assert receiver.requests == []
    [a] = await attempts(db, hook.id)
    assert a.status_code is None and a.error is not None and "webhook_url" in a.error
    stored = await delivery(db, hook.id)
    assert stored.status == "pending" and stored.attempts == 1
    assert stored.last_error == a.error and stored.next_attempt_at is not None


async def test_redirects_are_not_followed(
    tmp_path: Path, db: Database, receiver: Receiver
) -> None:
    receiver.respond = script((302, {"Location": "http://127.0.0.1:1/elsewhere"}))
    settings = settings_for(tmp_path, db)
    dispatcher = WebhookDispatcher(db, settings.secret(), settings)
    try:
        hook = await enqueue(db, settings, receiver.url)
        assert await dispatcher.run_once() == 1
    finally:
        await dispatcher.stop()
    assert len(receiver.requests) == 1
    [a] = await attempts(db, hook.id)
    assert a.status_code == 302 and "redirect" in (a.error or "")
    assert (await delivery(db, hook.id)).status == "pending"


async def test_connection_failure_is_recorded(tmp_path: Path, db: Database) -> None:
    closed = Receiver()
    await closed.start()
    url = closed.url
    await closed.close()  # nothing listens on that port any more
    settings = settings_for(tmp_path, db)
    dispatcher = WebhookDispatcher(db, settings.secret(), settings)
    try:
        hook = await enqueue(db, settings, url)
        assert await dispatcher.run_once() == 1
    finally:
        await dispatcher.stop()
    [a] = await attempts(db, hook.id)
    assert a.status_code is None and a.error and "Connect" in a.error


async def test_payload_may_not_override_the_envelope(tmp_path: Path, db: Database) -> None:
    settings = settings_for(tmp_path, db)
    with pytest.raises(ValueError):
        await enqueue(db, settings, "https://example.com/x", payload={"id": "run-1"})


async def test_enqueue_joins_the_callers_transaction(tmp_path: Path, db: Database) -> None:
    settings = settings_for(tmp_path, db)
    sealed = crypto.seal(settings.secret(), SECRET_PURPOSE, new_webhook_secret())

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback):
        async with db.write() as conn:
            await outbox.enqueue(conn, account_id="a", run_id="run-x", url="https://e.com/",
                                 event_type="run.started", payload={}, secret_sealed=sealed)
            raise Rollback
    async with db.read() as conn:
        assert await outbox.list_for_run(conn, "run-x") == []


async def test_two_dispatchers_never_send_a_delivery_twice(
    tmp_path: Path, db: Database, receiver: Receiver
) -> None:
    settings = settings_for(tmp_path, db)
    first = WebhookDispatcher(db, settings.secret(), settings)
    second = WebhookDispatcher(db, settings.secret(), settings)
    count = 3 * WebhookDispatcher.concurrency + 5
    try:
        hooks = [await enqueue(db, settings, receiver.url) for _ in range(count)]
        # Race explicit cycles against each other until everything is claimed.
        attempted = 0
        deadline = time.monotonic() + WAIT
        while attempted < count:
            assert time.monotonic() < deadline, "deliveries not all attempted in time"
            a, b = await asyncio.gather(first.run_once(), second.run_once())
            attempted += a + b
        assert attempted == count
        # And the background loops, with both woken for every new delivery.
        first.start()
        second.start()
        more = []
        for _ in range(count):
            more.append(await enqueue(db, settings, receiver.url))
            first.wake()
            second.wake()
        everything = {h.id for h in hooks + more}
        await receiver.wait_for(
            lambda: {r.webhook_id for r in receiver.requests} == everything)
        for h in more:
            await status_is(db, h.id, outbox.DELIVERED)
    finally:
        await first.stop()
        await second.stop()

    assert len(receiver.requests) == len(everything) == 2 * count
    for h in hooks + more:
        assert [a.attempt for a in await attempts(db, h.id)] == [1]
        assert (await delivery(db, h.id)).status == outbox.DELIVERED

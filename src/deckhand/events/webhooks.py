"""Outgoing webhooks: HMAC signing, the SSRF guard and the outbox dispatcher.

Deliveries are rows in ``webhook_deliveries`` (see ``store/webhooks.py``),
written in the same transaction as the change they announce. The dispatcher
claims due rows under a lease, POSTs the stored JSON text signed with the
run's webhook secret, records every attempt, and retries with exponential
backoff and full jitter until a 2xx arrives or the attempts run out.

Signature (the contract's scheme)::

    Coasty-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

sent again as ``X-Coasty-Signature``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import random
import secrets
import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
from cryptography.exceptions import InvalidTag
from sqlalchemy.exc import SQLAlchemyError

from deckhand import crypto
from deckhand.config import Settings
from deckhand.core.clock import utcnow
from deckhand.errors import ValidationFailed
from deckhand.store import webhooks as outbox
from deckhand.store.db import Database

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Coasty-Signature"
SIGNATURE_HEADER_ALIAS = "X-Coasty-Signature"
USER_AGENT = "Deckhand-Webhooks/1"
SECRET_PURPOSE = "webhook"  # crypto.seal purpose of webhook secrets

MAX_BACKOFF_SECONDS = 3 * 3600.0
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0  # a receiver cannot park a delivery longer
JITTER_LOW = 0.5
MAX_URL_LENGTH = 2048

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


# --- signing -----------------------------------------------------------------


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_hex(32)


def _digest(webhook_secret: str, body: bytes, timestamp: int) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(webhook_secret.encode(), message, hashlib.sha256).hexdigest()


def sign(webhook_secret: str, body: bytes, timestamp: int) -> str:
    """The ``Coasty-Signature`` header value for ``body`` sent at ``timestamp``."""
    return f"t={int(timestamp)},v1={_digest(webhook_secret, body, int(timestamp))}"


def verify(
    webhook_secret: str,
    body: bytes,
    header: str,
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """True when ``header`` signs ``body`` with ``webhook_secret`` within the
    replay window. Any ``v1=`` entry may match; comparisons are constant-time."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = _digest(webhook_secret, body, timestamp).encode()
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate.encode())
    return matched


# --- SSRF guard --------------------------------------------------------------


def parse_allow_hosts(settings_value: str) -> frozenset[str]:
    """``"a.example, 127.0.0.1,[::1]"`` → normalized host names."""
    return frozenset(
        h for h in (_normalize_host(p) for p in settings_value.split(",")) if h
    )


def _normalize_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".")


def _ip_literal(host: str) -> _Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _is_public(ip: _Address) -> bool:
    if (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
            or ip.is_reserved or ip.is_unspecified or not ip.is_global):
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        return all(_is_public(e) for e in embedded if e is not None)
    return True


def _refuse(reason: str) -> ValidationFailed:
    return ValidationFailed(f"webhook_url {reason}")


async def check_webhook_url(
    url: str, allow_hosts: frozenset[str], *, resolve_timeout: float = 10.0
) -> None:
    """Refuse URLs a webhook must not reach (raises ``ValidationFailed``).

    https only, no userinfo, and no host that is or resolves to a private,
    loopback, link-local, multicast, reserved or unspecified address — unless
    the host is listed in ``allow_hosts`` (DECKHAND_WEBHOOK_ALLOW_HOSTS), which
    also permits plain http.
    """
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(f"must be at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse("is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise _refuse("must be an https:// URL")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise _refuse("must not contain a user name or password")
    host = _normalize_host(parts.hostname or "")
    if not host:
        raise _refuse("has no host")
    allowed = host in allow_hosts
    if scheme == "http" and not allowed:
        raise _refuse(
            "must use https (plain http is only allowed for hosts listed in "
            "DECKHAND_WEBHOOK_ALLOW_HOSTS)"
        )
    if allowed:
        return
    literal = _ip_literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        addresses = await _resolve(host, port or (443 if scheme == "https" else 80),
                                   resolve_timeout)
    for ip in addresses:
        if not _is_public(ip):
            raise _refuse(
                f"host {host!r} is or resolves to a non-public address ({ip}); "
                "list it in DECKHAND_WEBHOOK_ALLOW_HOSTS to allow it"
            )


async def _resolve(host: str, port: int, timeout: float) -> list[_Address]:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError):
        raise _refuse(f"host {host!r} could not be resolved") from None
    addresses = [a for a in (_ip_literal(str(info[4][0])) for info in infos) if a is not None]
    if not addresses:
        raise _refuse(f"host {host!r} could not be resolved")
    return addresses


# --- retry schedule ----------------------------------------------------------


def backoff_ceiling(attempt: int, base_seconds: float) -> float:
    """The un-jittered delay after failed attempt number ``attempt`` (1-based):
    base * 4**(attempt-1), capped at 3 hours."""
    exponent = min(max(attempt - 1, 0), 32)
    return min(base_seconds * 4.0**exponent, MAX_BACKOFF_SECONDS)


def backoff_delay(attempt: int, base_seconds: float, rng: random.Random | None = None) -> float:
    """The jittered delay: uniform within [0.5, 1.0] of :func:`backoff_ceiling`."""
    return backoff_ceiling(attempt, base_seconds) * (rng or random).uniform(JITTER_LOW, 1.0)


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """A ``Retry-After`` header (delay seconds or HTTP date) as an instant,
    capped at 24 hours from ``now``; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    else:
        if seconds != seconds or seconds < 0:  # NaN or negative
            return None
        when = now + timedelta(seconds=min(seconds, MAX_RETRY_AFTER_SECONDS))
    return min(when, now + timedelta(seconds=MAX_RETRY_AFTER_SECONDS))


# --- dispatcher --------------------------------------------------------------


class WebhookDispatcher:
    """Sends due outbox deliveries; safe to run in many processes at once."""

    concurrency = 16  # deliveries claimed and sent per cycle

    def __init__(
        self,
        db: Database,
        secret: bytes,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._db = db
        self._secret = secret
        self._settings = settings
        self._allow_hosts = parse_allow_hosts(settings.webhook_allow_hosts)
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            follow_redirects=False, trust_env=False,
            timeout=httpx.Timeout(settings.webhook_timeout_seconds),
        )
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def lease_seconds(self) -> float:
        # DNS check + the request are each bounded by the timeout; a margin for the DB.
        return 2 * self._settings.webhook_timeout_seconds + 30.0

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._loop(), name="webhook-dispatcher")

    def wake(self) -> None:
        """Look for due deliveries now (call after an enqueue commits)."""
        self._wake.set()

    async def stop(self) -> None:
        """Finish the cycle in flight (bounded by the send timeout), then stop
        and close the HTTP client this dispatcher created. Final."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task),
                                       self._settings.webhook_timeout_seconds + 5)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._owns_client:
            await self._client.aclose()

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                attempted = await self.run_once()
                delay = 0.0 if attempted else await self._idle_seconds()
            except Exception:  # the task's boundary: log, wait, carry on
                log.exception("webhook dispatcher cycle failed; retrying")
                delay = self._settings.poll_interval_seconds
            if delay > 0 and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)

    async def _idle_seconds(self) -> float:
        poll = min(self._settings.poll_interval_seconds, 1.0)
        async with self._db.read() as conn:
            due = await outbox.next_due_at(conn)
        if due is None:
            return poll
        return min(poll, max(0.0, (due - utcnow()).total_seconds()))

    async def run_once(self) -> int:
        """Claim the due deliveries, send them concurrently and record each
        attempt. Returns how many were attempted."""
        async with self._db.write() as conn:
            claimed = await outbox.claim_due(
                conn, now=utcnow(), limit=self.concurrency, lease_seconds=self.lease_seconds
            )
        if not claimed:
            return 0
        async with asyncio.TaskGroup() as group:
            for delivery in claimed:
                group.create_task(self._deliver(delivery))
        return len(claimed)

    async def _deliver(self, delivery: outbox.Delivery) -> None:
        attempt = delivery.attempts + 1
        attempted_at = utcnow()
        started = time.monotonic()
        status_code, error, retry_after = await self._send(delivery, attempt)
        duration_ms = int((time.monotonic() - started) * 1000)
        delivered = status_code is not None and 200 <= status_code < 300
        give_up = not delivered and attempt >= self._settings.webhook_max_attempts
        next_at: datetime | None = None
        if not delivered and not give_up:
            now = utcnow()
            next_at = now + timedelta(
                seconds=backoff_delay(attempt, self._settings.webhook_retry_base_seconds)
            )
            if retry_after is not None and retry_after > next_at:
                next_at = retry_after
        try:
            async with self._db.write() as conn:
                recorded = await outbox.record_attempt(
                    conn, delivery.id, attempt=attempt, status_code=status_code, error=error,
                    duration_ms=duration_ms, delivered=delivered, next_attempt_at=next_at,
                    give_up=give_up, attempted_at=attempted_at,
                )
        except (SQLAlchemyError, OSError):
            # The lease runs out and the delivery is attempted again (at least once).
            log.exception("webhook %s: could not record attempt %d", delivery.id, attempt)
            return
        if not recorded:
            log.warning("webhook %s: attempt %d was already recorded elsewhere",
                        delivery.id, attempt)
        elif delivered:
            log.info("webhook %s delivered (attempt %d, HTTP %d)",
                     delivery.id, attempt, status_code)
        elif give_up:
            log.warning("webhook %s given up after %d attempts: %s",
                        delivery.id, attempt, error)
        else:
            log.info("webhook %s attempt %d failed: %s; next at %s",
                     delivery.id, attempt, error, next_at)

    async def _send(
        self, delivery: outbox.Delivery, attempt: int
    ) -> tuple[int | None, str | None, datetime | None]:
        """One POST. Returns (status code, error, Retry-After instant)."""
        timeout = self._settings.webhook_timeout_seconds
        try:
            await check_webhook_url(delivery.url, self._allow_hosts, resolve_timeout=timeout)
        except ValidationFailed as exc:
            return None, f"refused: {exc.message}", None
        try:
            webhook_secret = crypto.open_sealed(self._secret, SECRET_PURPOSE,
                                                delivery.secret_sealed)
        except (ValueError, InvalidTag):
            return None, "the webhook secret could not be decrypted with the server secret", None
        body = delivery.body
        signature = sign(webhook_secret, body, int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature,
            SIGNATURE_HEADER_ALIAS: signature,
            "Coasty-Webhook-Id": delivery.id,
            "Coasty-Webhook-Attempt": str(attempt),
        }
        try:
            async with asyncio.timeout(timeout):
                async with self._client.stream(
                    "POST", delivery.url, content=body, headers=headers,
                    timeout=httpx.Timeout(timeout), follow_redirects=False,
                ) as response:
                    status = response.status_code
                    retry_header = response.headers.get("Retry-After")
        except TimeoutError:
            return None, f"timed out after {timeout:g}s", None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, None
        if 200 <= status < 300:
            return status, None, None
        retry_after = (parse_retry_after(retry_header, utcnow())
                       if status in (429, 503) else None)
        if 300 <= status < 400:
            return status, f"HTTP {status} (redirects are not followed)", None
        return status, f"HTTP {status}", retry_after

"""The dashboard's session cookie and its CSRF token.

The cookie holds no key: ``v1.<key_id>.<expiry>.<mac>``, the MAC an HMAC-SHA256
under the server's secret key (with a purpose prefix of its own, so no other
signed value of the server can stand in for it). It names the API key that
signed in; each request looks that key up again, so a revoked key ends every
session made with it, and the principal is that key's account, mode and
scopes — a session cannot reach another account or mode.

The CSRF token is derived from the cookie (HMAC under the secret with another
purpose): the page carries it in a ``<meta>`` tag and sends it back as
``X-CSRF-Token`` on every state-changing request. A cross-site page can
neither read it nor compute it, and the cookie is ``SameSite=Strict`` besides.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

COOKIE = "deckhand_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SECONDS = 12 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SESSION_PURPOSE = b"deckhand-dashboard-session\n"
_CSRF_PURPOSE = b"deckhand-dashboard-csrf\n"
_VERSION = "v1"


@dataclass(frozen=True)
class SessionClaim:
    """What a valid cookie says: which key signed in, until when."""

    key_id: str
    expires_at: int


def _mac(secret: bytes, purpose: bytes, payload: str) -> str:
    return hmac.new(secret, purpose + payload.encode(), hashlib.sha256).hexdigest()


def make_cookie(secret: bytes, key_id: str, *, ttl: int = SESSION_SECONDS,
                now: float | None = None) -> str:
    expires = int(now if now is not None else time.time()) + ttl
    payload = f"{_VERSION}.{key_id}.{expires}"
    return f"{payload}.{_mac(secret, _SESSION_PURPOSE, payload)}"


def read_cookie(secret: bytes, value: str, *, now: float | None = None) -> SessionClaim | None:
    """The claim of a genuine, unexpired cookie; None for anything else."""
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != _VERSION or not parts[2].isdigit():
        return None
    payload = ".".join(parts[:3])
    if not hmac.compare_digest(parts[3], _mac(secret, _SESSION_PURPOSE, payload)):
        return None
    expires = int(parts[2])
    if expires <= (now if now is not None else time.time()):
        return None
    return SessionClaim(key_id=parts[1], expires_at=expires)


def csrf_token(secret: bytes, cookie: str) -> str:
    """The token a page of this session sends back on mutations."""
    return _mac(secret, _CSRF_PURPOSE, cookie)


def csrf_ok(secret: bytes, cookie: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(presented or "", csrf_token(secret, cookie))

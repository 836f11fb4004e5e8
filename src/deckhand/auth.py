"""API keys: how they look, how they are hashed, who they stand for."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

KEY_RE = re.compile(r"^sk-dh-(live|test)-[0-9a-f]{64}$")
KEY_PREFIX_LEN = 16


def hash_key(secret: bytes, raw_key: str) -> str:
    """HMAC-SHA256 of the key under the server secret: all that is stored."""
    return hmac.new(secret, raw_key.encode(), hashlib.sha256).hexdigest()


def key_mode(raw_key: str) -> str | None:
    m = KEY_RE.match(raw_key)
    return m.group(1) if m else None


@dataclass(frozen=True)
class Principal:
    """The caller behind a request: an account, in live or test mode."""

    account_id: str
    mode: str  # live | test
    key_id: str
    scopes: frozenset[str]
    tier: str

    @property
    def is_test(self) -> bool:
        return self.mode == "test"

"""Secrets at rest: AES-256-GCM under a key derived from the server secret.

Used for what must be read back (webhook signing secrets, machine agent
tokens, later provider keys). Each purpose derives its own key, so a value
sealed for one purpose cannot be opened as another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1"


def _derive(secret: bytes, purpose: str) -> bytes:
    return hmac.new(secret, f"deckhand/{purpose}".encode(), hashlib.sha256).digest()


def seal(secret: bytes, purpose: str, plaintext: str) -> str:
    nonce = os.urandom(12)
    ct = AESGCM(_derive(secret, purpose)).encrypt(nonce, plaintext.encode(), purpose.encode())
    return f"{_VERSION}:" + base64.urlsafe_b64encode(nonce + ct).decode()


def open_sealed(secret: bytes, purpose: str, sealed: str) -> str:
    version, _, payload = sealed.partition(":")
    if version != _VERSION:
        raise ValueError("unknown sealed-secret version")
    raw = base64.urlsafe_b64decode(payload)
    return AESGCM(_derive(secret, purpose)).decrypt(raw[:12], raw[12:], purpose.encode()).decode()


def fingerprint(value: str) -> str:
    """A short, non-reversible label for a secret (safe to show)."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]

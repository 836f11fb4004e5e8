"""Identifier formats. One place decides what an id looks like."""

from __future__ import annotations

import re
import secrets
import uuid

REQUEST_ID_RE = re.compile(r"^req_[0-9a-f]{12,32}$")
MACHINE_ID_RE = re.compile(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|mch_test_[0-9a-f]{8,32})$"
)
SCHEDULE_ID_RE = re.compile(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|sch_test_[0-9a-f]{8,32})$"
)
TRIGGER_ID_RE = re.compile(r"^trg_[0-9a-f]{8,32}$")
WEBHOOK_ID_RE = re.compile(r"^whk_[0-9a-f]{8,48}$")
IDEMPOTENCY_KEY_RE = re.compile(r"^[A-Za-z0-9_\-:]{1,128}$")


def request_id() -> str:
    return f"req_{secrets.token_hex(12)}"


def new_uuid() -> str:
    return str(uuid.uuid4())


def account_id() -> str:
    return f"acct_{secrets.token_hex(8)}"


def key_id() -> str:
    return f"key_{secrets.token_hex(8)}"


def machine_id(test: bool) -> str:
    return f"mch_test_{secrets.token_hex(8)}" if test else new_uuid()


def schedule_id(test: bool) -> str:
    return f"sch_test_{secrets.token_hex(8)}" if test else new_uuid()


def trigger_id() -> str:
    return f"trg_{secrets.token_hex(8)}"


def webhook_id() -> str:
    return f"whk_{secrets.token_hex(16)}"


def api_key_secret(test: bool) -> str:
    return f"sk-dh-{'test' if test else 'live'}-{secrets.token_hex(32)}"


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True

"""API key scopes, exactly as the contract's ``CreateAPIKeyRequest``."""

from __future__ import annotations

ALL_SCOPES: tuple[str, ...] = (
    "predict", "session", "ground", "parse", "keys", "usage",
    "machines:read", "machines:write", "actions:exec", "terminal:exec",
    "files:read", "files:write", "browser:execute", "snapshots:write",
    "connection:read", "schedules:read", "schedules:write", "triggers:write",
    "runs:read", "runs:write", "workflows:read", "workflows:write", "llm_keys",
)

# What POST /v1/keys gives when `scopes` is omitted or [].
DEFAULT_SCOPES: tuple[str, ...] = (
    "predict", "session", "ground", "parse",
    "machines:read", "machines:write", "actions:exec", "terminal:exec",
    "files:read", "files:write", "snapshots:write",
    "runs:read", "runs:write", "workflows:read", "workflows:write", "llm_keys",
)

# High-risk scopes a key only has when they are asked for by name.
OPT_IN_SCOPES: frozenset[str] = frozenset({"connection:read", "browser:execute"})

# What an operator's key made with `deckhand keys create` gets by default:
# everything except the opt-in scopes, so it can also manage keys and usage.
OPERATOR_SCOPES: tuple[str, ...] = tuple(s for s in ALL_SCOPES if s not in OPT_IN_SCOPES)

"""One exception tree for the whole application.

Every error a client can see has a stable :class:`ErrorCode`; the code fixes
its HTTP status, its ``type`` in the contract's envelope and whether retrying
may help. Only ``deckhand.api.errors`` turns these into HTTP responses.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class ErrorCode(str, Enum):
    VALIDATION_ERROR = "VALIDATION_ERROR"
    BAD_REQUEST = "BAD_REQUEST"
    INVALID_API_KEY = "INVALID_API_KEY"
    INVALID_SIGNATURE = "INVALID_SIGNATURE"
    INSUFFICIENT_SCOPE = "INSUFFICIENT_SCOPE"
    CSRF_TOKEN_INVALID = "CSRF_TOKEN_INVALID"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    CONFLICT = "CONFLICT"
    INVALID_STATE = "INVALID_STATE"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    INSUFFICIENT_CREDITS = "INSUFFICIENT_CREDITS"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    IDEMPOTENCY_IN_FLIGHT = "IDEMPOTENCY_IN_FLIGHT"
    RATE_LIMITED = "RATE_LIMITED"
    TOO_MANY_RUNS = "TOO_MANY_RUNS"
    MACHINE_UNAVAILABLE = "MACHINE_UNAVAILABLE"
    MACHINE_ERROR = "MACHINE_ERROR"
    MAX_STEPS_REACHED = "MAX_STEPS_REACHED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    VERIFICATION_FAILED = "VERIFICATION_FAILED"
    OFFLINE_BRAIN_UNSUPPORTED = "OFFLINE_BRAIN_UNSUPPORTED"
    HUMAN_REQUIRED = "HUMAN_REQUIRED"
    AWAITING_HUMAN_TIMEOUT = "AWAITING_HUMAN_TIMEOUT"
    BRAIN_ERROR = "BRAIN_ERROR"
    LLM_PROVIDER_UNSUPPORTED = "LLM_PROVIDER_UNSUPPORTED"
    LLM_AUTH_FAILED = "LLM_AUTH_FAILED"
    LLM_PROVIDER_RATE_LIMITED = "LLM_PROVIDER_RATE_LIMITED"
    LLM_UPSTREAM_ERROR = "LLM_UPSTREAM_ERROR"
    LLM_KEY_NOT_CONFIGURED = "LLM_KEY_NOT_CONFIGURED"
    LLM_KEY_NOT_FOUND = "LLM_KEY_NOT_FOUND"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    INVALID_SCREENSHOT = "INVALID_SCREENSHOT"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    DB_UNAVAILABLE = "DB_UNAVAILABLE"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    # How a run or a workflow step ended (in its ``error``; not HTTP answers)
    CANCELLED = "CANCELLED"
    AGENT_FAILED = "AGENT_FAILED"
    STEP_FAILED = "STEP_FAILED"
    TEMPLATE_ERROR = "TEMPLATE_ERROR"
    CONDITION_ERROR = "CONDITION_ERROR"
    APPROVAL_REJECTED = "APPROVAL_REJECTED"
    MACHINE_REQUIRED = "MACHINE_REQUIRED"


# code -> (HTTP status, envelope type, retryable, suggestion)
_SPEC: dict[ErrorCode, tuple[int, str, bool, str | None]] = {
    ErrorCode.VALIDATION_ERROR: (
        422, "validation_error", False,
        "Fix the fields named in the message and send the request again.",
    ),
    ErrorCode.BAD_REQUEST: (400, "client_error", False, None),
    ErrorCode.INVALID_API_KEY: (
        401, "auth_error", False,
        "Pass a valid key as 'X-API-Key: sk-dh-live-…' or 'Authorization: Bearer sk-dh-live-…'.",
    ),
    ErrorCode.INVALID_SIGNATURE: (
        401, "auth_error", False,
        "Sign the raw body: Coasty-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "
        "'<t>.<body>')>, within 5 minutes of t (docs/schedules.md).",
    ),
    ErrorCode.INSUFFICIENT_SCOPE: (
        403, "auth_error", False,
        "Create a key that includes the scope named in the message (POST /v1/keys).",
    ),
    ErrorCode.CSRF_TOKEN_INVALID: (
        403, "auth_error", False,
        "A dashboard session changes state only with its X-CSRF-Token header; reload the page "
        "(or send the API key instead of the session cookie).",
    ),
    ErrorCode.NOT_FOUND: (
        404, "not_found_error", False,
        "Check the id and that it was created with a key of the same account and mode (live/test).",
    ),
    ErrorCode.METHOD_NOT_ALLOWED: (
        405, "client_error", False, "Check the HTTP method against /openapi.json.",
    ),
    ErrorCode.CONFLICT: (409, "state_error", False, None),
    ErrorCode.INVALID_STATE: (
        409, "state_error", False,
        "Fetch the resource to see its current status before retrying this operation.",
    ),
    ErrorCode.PAYLOAD_TOO_LARGE: (
        413, "validation_error", False, "Send a smaller request body.",
    ),
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: (
        415, "validation_error", False, "Send the body as application/json.",
    ),
    ErrorCode.INSUFFICIENT_CREDITS: (
        402, "billing_error", False,
        "Add credits to the account (deckhand accounts credit) or use a test key.",
    ),
    ErrorCode.IDEMPOTENCY_KEY_REUSED: (
        422, "validation_error", False,
        "Use a new Idempotency-Key for a request with a different body.",
    ),
    ErrorCode.IDEMPOTENCY_IN_FLIGHT: (
        409, "state_error", True,
        "Retry with the same Idempotency-Key and body, or collect the result "
        "from GET /v1/idempotency/{key}.",
    ),
    ErrorCode.RATE_LIMITED: (429, "rate_limit_error", True, "Wait Retry-After seconds."),
    ErrorCode.TOO_MANY_RUNS: (429, "rate_limit_error", True, "Wait for a run to finish."),
    ErrorCode.MACHINE_UNAVAILABLE: (
        409, "state_error", True, "Check the machine's status (GET /v1/machines/{id}).",
    ),
    ErrorCode.MACHINE_ERROR: (502, "server_error", True, None),
    ErrorCode.MAX_STEPS_REACHED: (422, "state_error", False, "Raise max_steps or narrow the task."),
    ErrorCode.DEADLINE_EXCEEDED: (
        422, "state_error", False, "Raise deadline_seconds or narrow the task.",
    ),
    ErrorCode.VERIFICATION_FAILED: (422, "state_error", False, None),
    ErrorCode.OFFLINE_BRAIN_UNSUPPORTED: (
        422, "validation_error", False,
        "Rephrase the task with the offline brain's instructions, or configure a model "
        "(ANTHROPIC_API_KEY, OPENAI_API_KEY or an OpenAI-compatible base URL).",
    ),
    ErrorCode.HUMAN_REQUIRED: (422, "state_error", False, None),
    ErrorCode.AWAITING_HUMAN_TIMEOUT: (422, "state_error", False, None),
    ErrorCode.BRAIN_ERROR: (502, "server_error", True, None),
    ErrorCode.LLM_PROVIDER_UNSUPPORTED: (
        422, "validation_error", False,
        "Omit `llm` and the X-LLM-* headers to use the server's default brain.",
    ),
    ErrorCode.LLM_AUTH_FAILED: (
        422, "auth_error", False,
        ("Check the model provider's API key (X-LLM-Api-Key, PUT /v1/llm/keys/{provider}, "
         "or the server's ANTHROPIC_API_KEY / OPENAI_API_KEY) and that it may use the model."),
    ),
    ErrorCode.LLM_PROVIDER_RATE_LIMITED: (
        429, "rate_limit_error", True,
        "The model provider rate-limited the key; wait and retry, or raise its limits.",
    ),
    ErrorCode.LLM_UPSTREAM_ERROR: (
        502, "server_error", True,
        "The model provider failed or refused the request; the message quotes its answer.",
    ),
    ErrorCode.LLM_KEY_NOT_CONFIGURED: (
        422, "validation_error", False,
        ("Send X-LLM-Api-Key with X-LLM-Provider, or store a key with "
         "PUT /v1/llm/keys/{provider} (live keys)."),
    ),
    ErrorCode.LLM_KEY_NOT_FOUND: (
        404, "not_found_error", False,
        "No key is stored for this provider; PUT /v1/llm/keys/{provider} stores one.",
    ),
    ErrorCode.SESSION_NOT_FOUND: (
        404, "not_found_error", False,
        "Sessions expire after 2 hours without use; create a new one with POST /v1/sessions.",
    ),
    ErrorCode.INVALID_SCREENSHOT: (
        422, "validation_error", False, "Send the screenshot as base64 of a PNG or JPEG image.",
    ),
    ErrorCode.INTERNAL_ERROR: (
        500, "server_error", True,
        "Retry the request; if it keeps failing, report the request_id.",
    ),
    ErrorCode.DB_UNAVAILABLE: (503, "server_error", True, "Retry in a few seconds."),
    ErrorCode.SERVICE_UNAVAILABLE: (503, "server_error", True, "Retry in a few seconds."),
    ErrorCode.CANCELLED: (409, "state_error", False, None),
    ErrorCode.AGENT_FAILED: (422, "state_error", False, None),
    ErrorCode.STEP_FAILED: (422, "state_error", False, None),
    ErrorCode.TEMPLATE_ERROR: (
        422, "validation_error", False, "Check the template's expressions against the workflow's inputs.",
    ),
    ErrorCode.CONDITION_ERROR: (
        422, "validation_error", False, "Check the condition's expression.",
    ),
    ErrorCode.APPROVAL_REJECTED: (422, "state_error", False, None),
    ErrorCode.MACHINE_REQUIRED: (
        422, "validation_error", False, "Give the task step (or the workflow run) a machine_id.",
    ),
}


def http_status(code: ErrorCode) -> int:
    return _SPEC[code][0]


def error_type(code: ErrorCode) -> str:
    return _SPEC[code][1]


def is_retryable(code: ErrorCode) -> bool:
    return _SPEC[code][2]


def suggestion(code: ErrorCode) -> str | None:
    return _SPEC[code][3]


# A run's outcomes: the agent tried and did not get there this time. Not
# retryable as an HTTP request (sending it again answers the same), but a new
# attempt of the work may end otherwise, which is what a workflow's `retry` is for.
_OUTCOMES = frozenset({
    ErrorCode.MAX_STEPS_REACHED, ErrorCode.DEADLINE_EXCEEDED, ErrorCode.VERIFICATION_FAILED,
    ErrorCode.HUMAN_REQUIRED, ErrorCode.AWAITING_HUMAN_TIMEOUT, ErrorCode.AGENT_FAILED,
    ErrorCode.STEP_FAILED, ErrorCode.CANCELLED, ErrorCode.TEMPLATE_ERROR,
    ErrorCode.CONDITION_ERROR, ErrorCode.INVALID_SCREENSHOT,
})


def another_attempt_can_help(code: str) -> bool:
    """False for failures a new attempt of the same work cannot change: the
    request's own configuration, credentials or credits (``LLM_AUTH_FAILED``,
    ``LLM_KEY_NOT_CONFIGURED``, ``INSUFFICIENT_CREDITS``, a machine that is not
    there). Codes outside the tree (a workflow's ``ASSERTION_FAILED``) can."""
    try:
        known = ErrorCode(code)
    except ValueError:
        return True
    return is_retryable(known) or known in _OUTCOMES


class DeckhandError(Exception):
    """Base of every error Deckhand raises on purpose."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        retry_after: int | None = None,
        examples: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.retry_after = retry_after
        self.examples = examples
        self.headers = headers or {}


class ValidationFailed(DeckhandError):
    code = ErrorCode.VALIDATION_ERROR


class AuthError(DeckhandError):
    code = ErrorCode.INVALID_API_KEY


class ScopeError(DeckhandError):
    code = ErrorCode.INSUFFICIENT_SCOPE


class CsrfError(DeckhandError):
    """A state-changing request on a dashboard session without its CSRF token."""

    code = ErrorCode.CSRF_TOKEN_INVALID


class NotFound(DeckhandError):
    code = ErrorCode.NOT_FOUND


class InvalidState(DeckhandError):
    code = ErrorCode.INVALID_STATE


class InsufficientCredits(DeckhandError):
    code = ErrorCode.INSUFFICIENT_CREDITS


class MachineError(DeckhandError):
    """The machine or its agent failed (unreachable, crashed, refused)."""

    code = ErrorCode.MACHINE_ERROR


class BrainError(DeckhandError):
    code = ErrorCode.BRAIN_ERROR


class LlmError(DeckhandError):
    """A model provider failed: bad key, rate limit, outage, refusal."""

    code = ErrorCode.LLM_UPSTREAM_ERROR


class BrainUnsupported(DeckhandError):
    """The brain cannot do what was asked of it (the offline planner asked to
    ground an element on a screenshot): a model is needed."""

    code = ErrorCode.OFFLINE_BRAIN_UNSUPPORTED


class ArtifactError(DeckhandError):
    """The artifact store (the data dir's files or an S3 bucket) failed."""

    code = ErrorCode.SERVICE_UNAVAILABLE

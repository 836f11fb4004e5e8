"""Where a model brain's requests go and with which key: the transport, kept
apart from the wire format (as pydantic-ai separates a Provider from a
Model). A :class:`Provider` names the service, its base URL, the API key
(a :class:`~pydantic.SecretStr`, never shown in a repr or a log), the timeout
and the retries, builds the configured SDK client, and turns the SDK's
exceptions into ``LLM_*`` errors without the key. The brains
(:mod:`~deckhand.brains.anthropic`, :mod:`~deckhand.brains.openai`,
:mod:`~deckhand.brains.openai_compat`) build requests and read answers; whose
key it is was settled before they are built (the engine opens BYOK keys).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import SecretStr

from deckhand.errors import ErrorCode, LlmError

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from openai import AsyncOpenAI

ANTHROPIC_URL = "https://api.anthropic.com"
OPENAI_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 120.0
DEFAULT_RETRIES = 2

_KEYISH = re.compile(r"\b(sk|key|ant|proj)[-_][A-Za-z0-9_\-*]{6,}")


@dataclass(frozen=True)
class Provider:
    """One model service as a brain reaches it."""

    name: str  # anthropic | openai | openai_compat: how errors name it
    api_key: SecretStr = field(repr=False)
    base_url: str
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_RETRIES

    def anthropic_client(self) -> AsyncAnthropic:
        """The Anthropic SDK client for this provider (imported on first use:
        a server without a model never loads the SDK)."""
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(api_key=self.api_key.get_secret_value(), base_url=self.base_url,
                              timeout=self.timeout, max_retries=self.max_retries)

    def openai_client(self) -> AsyncOpenAI:
        """The OpenAI SDK client (OpenAI itself or a server that speaks its protocol)."""
        from openai import AsyncOpenAI

        return AsyncOpenAI(api_key=self.api_key.get_secret_value(), base_url=self.base_url,
                           timeout=self.timeout, max_retries=self.max_retries)

    def error(self, exc: Exception) -> LlmError:
        """The SDK's ``exc`` as an ``LLM_*`` error naming this provider."""
        return provider_error(exc, self.name, self.api_key.get_secret_value())


def provider_error(exc: Exception, provider: str, api_key: str | None) -> LlmError:
    """A model SDK's exception as an ``LLM_*`` error (the key never in the message)."""
    status = getattr(exc, "status_code", None)
    detail = _redact(str(getattr(exc, "api_message", None) or getattr(exc, "message", None)
                         or exc), api_key)
    if status in (401, 403):
        code = ErrorCode.LLM_AUTH_FAILED
        message = f"{provider} rejected the API key ({status}): {detail}"
    elif status == 429:
        code = ErrorCode.LLM_PROVIDER_RATE_LIMITED
        message = f"{provider} rate-limited the request: {detail}"
    elif status is None:
        code = ErrorCode.LLM_UPSTREAM_ERROR
        what = "timed out" if "Timeout" in type(exc).__name__ else "could not be reached"
        message = f"{provider} {what}: {detail}"
    else:
        code = ErrorCode.LLM_UPSTREAM_ERROR
        message = f"{provider} answered {status}: {detail}"
    return LlmError(message[:2000], code=code)


def _redact(text: str, api_key: str | None) -> str:
    """``text`` without ``api_key`` or anything shaped like a key (providers
    echo a masked or partial key in their 401s)."""
    if api_key:
        text = text.replace(api_key, "[redacted]")
    return _KEYISH.sub("[redacted]", text)

"""Which brain and whose key: the managed default from the settings, the
bring-your-own-key rules of the contract, and provider errors as LLM_* codes."""

from __future__ import annotations

import pytest

from deckhand.brains.providers import provider_error
from deckhand.brains.resolve import BrainResolver, LlmRequest, parse_model
from deckhand.config import Settings
from deckhand.errors import ErrorCode, ValidationFailed

CLEAR = {"anthropic_api_key": None, "openai_api_key": None, "openai_base_url": None,
         "anthropic_base_url": None}


def resolver(**kw) -> BrainResolver:  # type: ignore[no-untyped-def]
    return BrainResolver(Settings(**{**CLEAR, **kw}))


def test_managed_is_the_first_configured_provider() -> None:
    assert resolver().managed() == "offline"
    assert resolver(anthropic_api_key="k" * 20).managed() == "anthropic"
    assert resolver(openai_api_key="k" * 20).managed() == "openai"
    assert resolver(openai_api_key="k" * 20,
                    openai_base_url="https://api.openai.com/v1").managed() == "openai"
    assert resolver(openai_base_url="http://127.0.0.1:11434/v1").managed() == "openai_compat"
    assert resolver(openai_compat_base_url="http://vllm:8000/v1").managed() == "openai_compat"
    assert resolver(brain="offline", anthropic_api_key="k" * 20).managed() == "offline"
    with pytest.raises(ValueError):
        resolver(brain="gpt")


def test_model_strings() -> None:
    assert parse_model(None) == (None, None)
    assert parse_model("scripted") == ("scripted", None)
    assert parse_model("openai_compat:qwen2.5-vl:7b") == ("openai_compat", "qwen2.5-vl:7b")
    assert parse_model("claude-sonnet-4-6") == (None, "claude-sonnet-4-6")


def test_byok_request_rules() -> None:
    assert LlmRequest.from_parts() is None
    assert LlmRequest.from_parts(body_provider="managed", header_model="x") is None
    r = LlmRequest.from_parts(header_provider="anthropic", header_key="sk-ant-" + "x" * 20,
                              body_model="claude-a", header_model="claude-b")
    assert r is not None and (r.provider, r.model) == ("anthropic", "claude-b")
    assert "sk-ant" not in repr(r)
    body_only = LlmRequest.from_parts(body_provider="openai", body_model="m")
    assert body_only is not None and body_only.api_key is None
    for kw, code in (
        ({"header_key": "k" * 20}, ErrorCode.LLM_PROVIDER_UNSUPPORTED),
        ({"body_provider": "openai", "header_key": "k" * 20},
         ErrorCode.LLM_PROVIDER_UNSUPPORTED),
        ({"header_provider": "gemini", "header_key": "k" * 20},
         ErrorCode.LLM_PROVIDER_UNSUPPORTED),
        ({"body_provider": "mistral"}, ErrorCode.LLM_PROVIDER_UNSUPPORTED),
        ({"body_provider": "openai", "header_provider": "anthropic"},
         ErrorCode.LLM_PROVIDER_UNSUPPORTED),
        ({"header_provider": "openai", "header_key": "short"}, ErrorCode.VALIDATION_ERROR),
    ):
        with pytest.raises(ValidationFailed) as caught:
            LlmRequest.from_parts(**kw)
        assert caught.value.code == code, kw


class _StatusError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status
        self.message = message


class APITimeoutError(Exception):
    pass


def test_provider_errors_become_llm_codes_without_the_key() -> None:
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz"
    e = provider_error(_StatusError(401, f"Incorrect API key provided: {key}"), "openai", key)
    assert e.code == ErrorCode.LLM_AUTH_FAILED and key not in e.message
    masked = provider_error(_StatusError(401, "Incorrect API key: sk-proj-****wxyz"), "openai",
                            key)
    assert "****wxyz" not in masked.message
    assert provider_error(_StatusError(429, "slow down"), "a", None).code == \
        ErrorCode.LLM_PROVIDER_RATE_LIMITED
    assert provider_error(_StatusError(529, "Overloaded"), "a", None).code == \
        ErrorCode.LLM_UPSTREAM_ERROR
    timeout = provider_error(APITimeoutError("Request timed out"), "anthropic", None)
    assert timeout.code == ErrorCode.LLM_UPSTREAM_ERROR and "timed out" in timeout.message


def test_providers_carry_the_url_the_key_and_the_limits() -> None:
    from pydantic import SecretStr

    from deckhand.brains.providers import ANTHROPIC_URL, OPENAI_URL
    from deckhand.errors import LlmError

    r = resolver(anthropic_api_key="sk-ant-server-0000000000", llm_timeout_seconds=7,
                 llm_max_retries=1)
    server = r.provider("anthropic")
    assert (server.name, server.base_url, server.timeout, server.max_retries) == \
        ("anthropic", ANTHROPIC_URL, 7, 1)
    assert server.api_key.get_secret_value() == "sk-ant-server-0000000000"
    assert "sk-ant-server" not in repr(server)
    caller = r.provider("openai", SecretStr("sk-caller-000000000000"))
    assert (caller.base_url, caller.api_key.get_secret_value()) == \
        (OPENAI_URL, "sk-caller-000000000000")
    with pytest.raises(LlmError) as caught:
        r.provider("openai")
    assert caught.value.code == ErrorCode.LLM_KEY_NOT_CONFIGURED
    compat = resolver(openai_compat_base_url="http://vllm:8000/v1").provider("openai_compat")
    assert (compat.base_url, compat.api_key.get_secret_value()) == \
        ("http://vllm:8000/v1", "not-needed")
    assert "sk-x-secret" not in r.provider("anthropic").error(
        _StatusError(401, "bad key sk-x-secret-value")).message

"""Bring your own key, as a request asks for it: the contract's ``llm`` block
and the ``X-LLM-Provider`` / ``X-LLM-Api-Key`` / ``X-LLM-Model`` headers.
Shared by runs, workflow runs, predict, ground and sessions, so each of them
accepts and refuses exactly the same things."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from deckhand.brains.resolve import LlmRequest


class LlmConfig(BaseModel):
    """The contract's ``LlmConfig``. It has no key field on purpose: keys ride
    the X-LLM-Api-Key header or the /v1/llm/keys store only."""

    model_config = ConfigDict(extra="forbid")

    # managed | anthropic | openai; anything else is 422 LLM_PROVIDER_UNSUPPORTED
    provider: str = Field(default="managed", max_length=64)
    model: str | None = Field(default=None, min_length=1, max_length=512)
    grounding_model: str | None = Field(default=None, min_length=1, max_length=512)
    compaction_model: str | None = Field(default=None, min_length=1, max_length=512)
    code_agent_model: str | None = Field(default=None, min_length=1, max_length=512)


def llm_request(llm: LlmConfig | None, provider: str | None, key: str | None,
                model: str | None) -> LlmRequest | None:
    """The bring-your-own-key choice of a request (``llm`` + ``X-LLM-*``); None
    for the server's own brain. Raises the contract's 422s."""
    return LlmRequest.from_parts(
        body_provider=llm.provider if llm else None, body_model=llm.model if llm else None,
        grounding_model=llm.grounding_model if llm else None,
        header_provider=provider, header_key=key, header_model=model)

"""Which brain and which model, and the brain built for them: for a new run,
for a run being driven, and for an inference call (/v1/predict, /v1/ground,
/v1/sessions). Whose key is settled by :mod:`deckhand.engine.llm_credentials`.

The server's default (``managed``) comes from :class:`~deckhand.config.Settings`:
``DECKHAND_BRAIN`` names a brain outright; left at ``managed`` it is the first
provider configured — ``ANTHROPIC_API_KEY`` → ``anthropic``; an
OpenAI-compatible base URL (``DECKHAND_OPENAI_COMPAT_BASE_URL``, or an
``OPENAI_BASE_URL`` that is not api.openai.com) → ``openai_compat``;
``OPENAI_API_KEY`` → ``openai`` — and ``offline`` with nothing configured.

A run's ``model`` may name a brain (``offline``, ``scripted``, ``anthropic``,
``openai``, ``openai_compat``), a brain and a model (``openai_compat:qwen2.5-vl``),
or only a model for the managed provider.

Bring your own key (the contract's ``llm`` block and ``X-LLM-*`` headers): the
caller's key for ``anthropic`` or ``openai`` — the header's, else the one
stored with PUT /v1/llm/keys — runs the whole harness. There is no fallback:
without a key the request fails with ``LLM_KEY_NOT_CONFIGURED``, and provider
failures surface as ``LLM_*`` codes. This module checks the request
(:class:`LlmRequest`) and builds the brain for a key it is handed; looking the
key up, sealing and opening it is :mod:`deckhand.engine.llm_credentials`'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from deckhand.brains.base import Brain
from deckhand.brains.history import ScreenBudget
from deckhand.brains.providers import ANTHROPIC_URL, OPENAI_URL, Provider
from deckhand.config import Settings
from deckhand.errors import ErrorCode, LlmError, ValidationFailed

OFFLINE = "offline"
SCRIPTED = "scripted"
ANTHROPIC = "anthropic"
OPENAI = "openai"
OPENAI_COMPAT = "openai_compat"
MANAGED = "managed"
PROVIDERS = (ANTHROPIC, OPENAI, OPENAI_COMPAT)
BYOK_PROVIDERS = (ANTHROPIC, OPENAI)
BRAINS = (OFFLINE, SCRIPTED, *PROVIDERS)

# BYOK defaults. The contract names gpt-4o for openai, but the Responses API's
# computer-use tool needs a computer-use model, so that is the default here.
BYOK_DEFAULT_MODELS = {ANTHROPIC: "claude-sonnet-4-6", OPENAI: "computer-use-preview"}

# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class LlmRequest:
    """A caller's bring-your-own-key choice (already checked)."""

    provider: str
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)  # the header's key, if any
    grounding_model: str | None = None
    # a key already sealed for another record (a workflow run's snapshot,
    # inherited by its task runs) and where it came from (header | stored)
    sealed_key: str | None = field(default=None, repr=False)
    key_source: str | None = None

    @classmethod
    def inherited(cls, echo: dict[str, Any], sealed_key: str) -> LlmRequest:
        """The choice a workflow run made (its ``llm`` echo and sealed key
        snapshot), for one of its task runs."""
        return cls(provider=echo["provider"], model=echo.get("model"),
                   grounding_model=echo.get("grounding_model"), sealed_key=sealed_key,
                   key_source=echo.get("key_source"))

    @classmethod
    def from_parts(cls, *, body_provider: str | None = None, body_model: str | None = None,
                   grounding_model: str | None = None, header_provider: str | None = None,
                   header_key: str | None = None,
                   header_model: str | None = None) -> LlmRequest | None:
        """From the ``llm`` block and the ``X-LLM-*`` headers; None for the
        server's own brain. Raises the contract's 422s."""
        body = body_provider if body_provider not in (None, MANAGED) else None
        if header_provider is not None and header_provider not in BYOK_PROVIDERS:
            raise ValidationFailed(
                f"X-LLM-Provider {header_provider!r} is not supported; use anthropic or openai.",
                code=ErrorCode.LLM_PROVIDER_UNSUPPORTED)
        if body is not None and body not in BYOK_PROVIDERS:
            raise ValidationFailed(f"llm.provider {body!r} is not supported.",
                                   code=ErrorCode.LLM_PROVIDER_UNSUPPORTED)
        if header_key is not None and header_provider is None:
            raise ValidationFailed(
                "X-LLM-Api-Key was sent without X-LLM-Provider; say whose key it is "
                "(anthropic or openai).", code=ErrorCode.LLM_PROVIDER_UNSUPPORTED)
        if header_provider and body and header_provider != body:
            raise ValidationFailed(
                f"X-LLM-Provider ({header_provider}) and llm.provider ({body}) disagree.",
                code=ErrorCode.LLM_PROVIDER_UNSUPPORTED)
        provider = header_provider or body
        if provider is None:
            return None
        if header_key is not None and not 16 <= len(header_key) <= 512:
            raise ValidationFailed("X-LLM-Api-Key must be 16 to 512 characters.")
        if header_model is not None and not 1 <= len(header_model) <= 512:
            raise ValidationFailed("X-LLM-Model must be 1 to 512 characters.")
        return cls(provider=provider, model=header_model or body_model, api_key=header_key,
                   grounding_model=grounding_model)


def parse_model(model: str | None) -> tuple[str | None, str | None]:
    """A run's ``model`` → (brain or None for the managed one, model name or None)."""
    if not model:
        return None, None
    if model in BRAINS:
        return model, None
    head, sep, rest = model.partition(":")
    if sep and head in BRAINS:
        return head, rest or None
    return None, model


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Choice:
    """The brain for a new run or an inference call."""

    brain: str
    model: str | None
    llm: dict[str, Any] | None = None  # the non-secret BYOK echo
    sealed_key: str | None = field(default=None, repr=False)  # BYOK key, sealed


# --------------------------------------------------------------------------- the resolver


class BrainResolver:
    """Which brain and model a run or a call gets, and the brain built for
    it, from the server's settings. Whose key a bring-your-own-key brain uses
    is settled before (:mod:`deckhand.engine.llm_credentials` opens it) and
    handed in as ``api_key``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if settings.brain not in (MANAGED, *BRAINS):
            raise ValueError(f"DECKHAND_BRAIN={settings.brain!r}: use managed or one of "
                             + ", ".join(BRAINS))

    # -- the server's default ------------------------------------------------

    def managed(self) -> str:
        s = self.settings
        if s.brain != MANAGED:
            return s.brain
        if s.anthropic_api_key is not None:
            return ANTHROPIC
        if s.openai_compat_base_url or (s.openai_base_url and not _is_openai(s.openai_base_url)):
            return OPENAI_COMPAT
        if s.openai_api_key is not None:
            return OPENAI
        return OFFLINE

    def default_model(self, brain: str) -> str | None:
        s = self.settings
        return {ANTHROPIC: s.anthropic_model, OPENAI: s.openai_model,
                OPENAI_COMPAT: s.openai_compat_model}.get(brain)

    def configured(self, brain: str) -> bool:
        """Whether the server itself can run ``brain`` (its key or URL is set)."""
        s = self.settings
        if brain == ANTHROPIC:
            return s.anthropic_api_key is not None
        if brain == OPENAI:
            return s.openai_api_key is not None
        if brain == OPENAI_COMPAT:
            return bool(s.openai_compat_base_url or s.openai_base_url)
        return True

    # -- choosing ------------------------------------------------------------

    def choose(self, model: str | None) -> Choice:
        """The server's brain for a run's or call's ``model`` (no BYOK)."""
        brain, name = parse_model(model)
        brain = brain or self.managed()
        if not self.configured(brain):
            raise ValidationFailed(
                f"This server has no {brain} provider configured "
                f"({_how_to_configure(brain)}); send your own key with X-LLM-Provider and "
                "X-LLM-Api-Key, or omit `model` to use the server's default brain.",
                code=ErrorCode.LLM_KEY_NOT_CONFIGURED)
        if brain not in PROVIDERS:
            return Choice(brain=brain, model=None)
        return Choice(brain=brain, model=name or self.default_model(brain))

    def choose_for_run(self, brain: str | None, model: str | None) -> Choice:
        """The server's brain for a run recorded with ``brain`` and ``model``
        (its model name, else the brain's default)."""
        _, name = parse_model(model)
        brain = brain or self.managed()
        return Choice(brain=brain, model=name or self.default_model(brain))

    # -- building ------------------------------------------------------------

    def provider(self, brain: str, api_key: SecretStr | None = None) -> Provider:
        """Where ``brain``'s requests go: ``api_key`` given, with the caller's
        key (BYOK); otherwise with the server's."""
        s = self.settings
        timeout, retries = s.llm_timeout_seconds, s.llm_max_retries
        if brain == ANTHROPIC:
            return Provider(ANTHROPIC, api_key or _secret(s.anthropic_api_key, brain),
                            s.anthropic_base_url or ANTHROPIC_URL, timeout, retries)
        if brain == OPENAI:
            return Provider(OPENAI, api_key or _secret(s.openai_api_key, brain),
                            s.openai_base_url or OPENAI_URL, timeout, retries)
        if brain == OPENAI_COMPAT:
            base_url = s.openai_compat_base_url or s.openai_base_url
            if not base_url:
                raise LlmError(f"No OpenAI-compatible server is configured "
                               f"({_how_to_configure(brain)}).",
                               code=ErrorCode.LLM_KEY_NOT_CONFIGURED)
            key = api_key or s.openai_compat_api_key or s.openai_api_key \
                or SecretStr("not-needed")
            return Provider(OPENAI_COMPAT, key, base_url, timeout, retries)
        raise LlmError(f"Unknown brain {brain!r}.", code=ErrorCode.LLM_PROVIDER_UNSUPPORTED)

    def build(self, brain: str, *, model: str | None, task: str = "",
              api_key: SecretStr | None = None, grounding_model: str | None = None) -> Brain:
        """The brain named ``brain`` (a model brain through :meth:`provider`)."""
        s = self.settings
        if brain == SCRIPTED:
            from deckhand.brains.scripted import ScriptedBrain

            return ScriptedBrain.from_task(task)
        if brain == OFFLINE:
            from deckhand.brains.offline import OfflineBrain

            return OfflineBrain()
        provider = self.provider(brain, api_key)
        if brain == ANTHROPIC:
            from deckhand.brains.anthropic import AnthropicBrain

            return AnthropicBrain(provider, model=model or s.anthropic_model,
                                  grounding_model=grounding_model,
                                  screens=ScreenBudget(s.anthropic_screens_kept, s.screens_chunk))
        if brain == OPENAI:
            from deckhand.brains.openai import OpenAIBrain

            return OpenAIBrain(provider, model=model or s.openai_model,
                               grounding_model=grounding_model,
                               screens=ScreenBudget(s.openai_screens_kept, s.screens_chunk))
        from deckhand.brains.openai_compat import OpenAICompatBrain

        return OpenAICompatBrain(provider, model=model, grounding_model=grounding_model,
                                 screens=ScreenBudget(s.openai_compat_screens_kept,
                                                      s.screens_chunk))


def _secret(value: SecretStr | None, brain: str) -> SecretStr:
    if value is None:
        raise LlmError(f"This server has no {brain} key ({_how_to_configure(brain)}).",
                       code=ErrorCode.LLM_KEY_NOT_CONFIGURED)
    return value


def _how_to_configure(brain: str) -> str:
    return {
        ANTHROPIC: "set ANTHROPIC_API_KEY",
        OPENAI: "set OPENAI_API_KEY",
        OPENAI_COMPAT: "set DECKHAND_OPENAI_COMPAT_BASE_URL or OPENAI_BASE_URL",
    }.get(brain, "nothing to configure")


def _is_openai(url: str) -> bool:
    return re.match(r"^https?://api\.openai\.com(/|$)", url.strip()) is not None

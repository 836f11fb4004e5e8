"""Which brain, which model and whose key: for a new run, for a run being
driven, and for an inference call (/v1/predict, /v1/ground, /v1/sessions).

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
failures surface as ``LLM_*`` codes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand import crypto
from deckhand.brains.base import Brain
from deckhand.config import Settings
from deckhand.errors import ErrorCode, LlmError, ValidationFailed
from deckhand.store import llm_keys as llm_keys_store

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

GROUND_TOOL = "point"
GROUND_TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "found": {"type": "boolean", "description": "false if the element is not visible"},
        "x": {"type": "integer", "description": "x of the element's centre, in image pixels"},
        "y": {"type": "integer", "description": "y of the element's centre, in image pixels"},
    },
    "required": ["found"],
}


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


# --------------------------------------------------------------------------- errors

_KEYISH = re.compile(r"\b(sk|key|ant|proj)[-_][A-Za-z0-9_\-*]{6,}")


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
    if api_key:
        text = text.replace(api_key, "[redacted]")
    return _KEYISH.sub("[redacted]", text)


# --------------------------------------------------------------------------- the resolver


class BrainResolver:
    """Builds brains from the settings, the account's stored keys and a
    run's key snapshot."""

    def __init__(self, settings: Settings, secret: bytes) -> None:
        self.settings = settings
        self.secret = secret
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

    async def choose(self, conn: AsyncConnection, *, account_id: str, mode: str,
                     model: str | None, llm: LlmRequest | None) -> Choice:
        """The brain for a new run or call; BYOK keys are looked up and sealed."""
        if llm is not None:
            return await self._byok(conn, account_id=account_id, mode=mode, llm=llm)
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

    async def _byok(self, conn: AsyncConnection, *, account_id: str, mode: str,
                    llm: LlmRequest) -> Choice:
        if llm.sealed_key is not None:
            sealed, source = llm.sealed_key, llm.key_source or "header"
            key = llm_keys_store.open_key(self.secret, sealed)
        elif llm.api_key is not None:
            key, source = llm.api_key, "header"
            sealed = llm_keys_store.seal(self.secret, key)
        else:
            stored = None if mode == "test" else await llm_keys_store.get(conn, account_id,
                                                                          llm.provider)
            if stored is None:
                why = ("test keys use only X-LLM-Api-Key (stored keys belong to live mode)"
                       if mode == "test" else f"no {llm.provider} key is stored")
                raise ValidationFailed(
                    f"Bring-your-own-key {llm.provider} was asked for, but {why}. Send "
                    "X-LLM-Api-Key, or store a key with PUT /v1/llm/keys/"
                    f"{llm.provider}. Deckhand does not fall back to its own keys.",
                    code=ErrorCode.LLM_KEY_NOT_CONFIGURED)
            sealed, source = stored.key_sealed, "stored"
            key = llm_keys_store.open_key(self.secret, sealed)
        model = llm.model or BYOK_DEFAULT_MODELS[llm.provider]
        echo = {"provider": llm.provider, "model": model,
                "key_fingerprint": crypto.fingerprint(key), "key_source": source,
                "key_scrubbed": False}
        if llm.grounding_model:
            echo["grounding_model"] = llm.grounding_model
        return Choice(brain=llm.provider, model=model, llm=echo, sealed_key=sealed)

    # -- building ------------------------------------------------------------

    async def for_run(self, conn: AsyncConnection, run: Any) -> Brain:
        """The brain that drives ``run`` (its BYOK snapshot, or the server's)."""
        if run.llm:
            sealed = await llm_keys_store.run_key(conn, run.id)
            if sealed is None:
                raise LlmError("The run's key snapshot is gone; it cannot continue without "
                               "the caller's key.", code=ErrorCode.LLM_KEY_NOT_CONFIGURED)
            return self.build(run.llm["provider"], model=run.llm.get("model"),
                              api_key=llm_keys_store.open_key(self.secret, sealed),
                              task=run.task, grounding_model=run.llm.get("grounding_model"))
        _, name = parse_model(run.model)
        brain = run.brain or self.managed()
        return self.build(brain, model=name or self.default_model(brain), task=run.task)

    def for_choice(self, choice: Choice, task: str = "") -> Brain:
        """The brain for an inference call."""
        key = (llm_keys_store.open_key(self.secret, choice.sealed_key)
               if choice.sealed_key else None)
        grounding = (choice.llm or {}).get("grounding_model")
        return self.build(choice.brain, model=choice.model, api_key=key, task=task,
                          grounding_model=grounding)

    def build(self, brain: str, *, model: str | None, task: str = "",
              api_key: str | None = None, grounding_model: str | None = None) -> Brain:
        """``api_key`` given: the caller's key (BYOK); otherwise the server's."""
        s = self.settings
        common = {"timeout": s.llm_timeout_seconds, "max_retries": s.llm_max_retries}
        if brain == SCRIPTED:
            from deckhand.brains.scripted import ScriptedBrain

            return ScriptedBrain.from_task(task)
        if brain == OFFLINE:
            from deckhand.brains.offline import OfflineBrain

            return OfflineBrain()
        if brain == ANTHROPIC:
            from deckhand.brains.anthropic import AnthropicBrain

            return AnthropicBrain(api_key=api_key or _secret(s.anthropic_api_key, brain),
                                  model=model or s.anthropic_model,
                                  base_url=s.anthropic_base_url,
                                  grounding_model=grounding_model, **common)
        if brain == OPENAI:
            from deckhand.brains.openai import OpenAIBrain

            return OpenAIBrain(api_key=api_key or _secret(s.openai_api_key, brain),
                               model=model or s.openai_model, base_url=s.openai_base_url,
                               grounding_model=grounding_model, **common)
        if brain == OPENAI_COMPAT:
            from deckhand.brains.openai_compat import OpenAICompatBrain

            base_url = s.openai_compat_base_url or s.openai_base_url
            if not base_url:
                raise LlmError(f"No OpenAI-compatible server is configured "
                               f"({_how_to_configure(brain)}).",
                               code=ErrorCode.LLM_KEY_NOT_CONFIGURED)
            server_key = s.openai_compat_api_key or s.openai_api_key
            key = api_key or (server_key.get_secret_value() if server_key else "not-needed")
            return OpenAICompatBrain(api_key=key, model=model, base_url=base_url,
                                     grounding_model=grounding_model, **common)
        raise LlmError(f"Unknown brain {brain!r}.", code=ErrorCode.LLM_PROVIDER_UNSUPPORTED)


def _secret(value: Any, brain: str) -> str:
    if value is None:
        raise LlmError(f"This server has no {brain} key ({_how_to_configure(brain)}).",
                       code=ErrorCode.LLM_KEY_NOT_CONFIGURED)
    return str(value.get_secret_value())


def _how_to_configure(brain: str) -> str:
    return {
        ANTHROPIC: "set ANTHROPIC_API_KEY",
        OPENAI: "set OPENAI_API_KEY",
        OPENAI_COMPAT: "set DECKHAND_OPENAI_COMPAT_BASE_URL or OPENAI_BASE_URL",
    }.get(brain, "nothing to configure")


def _is_openai(url: str) -> bool:
    return re.match(r"^https?://api\.openai\.com(/|$)", url.strip()) is not None

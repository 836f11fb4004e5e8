"""Whose key a model brain uses. Bring your own key (the contract's ``llm``
block and ``X-LLM-*`` headers): the header's key, else the one stored with
PUT /v1/llm/keys, else a key already sealed for a workflow run; it is sealed
for the run (or the call) and opened only to build the brain. Which brain a
model string names, and the brain itself, are
:class:`~deckhand.brains.resolve.BrainResolver`'s; it is handed the opened key
as a :class:`~pydantic.SecretStr`, so the brains never see the store or the
server's secret.

Runs and the inference API reach brains only through :class:`LlmCredentials`.
"""

from __future__ import annotations

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand import crypto
from deckhand.brains.base import Brain
from deckhand.brains.resolve import BYOK_DEFAULT_MODELS, BrainResolver, Choice, LlmRequest
from deckhand.errors import ErrorCode, LlmError, ValidationFailed
from deckhand.store import llm_keys as llm_keys_store
from deckhand.store.records import Run


class LlmCredentials:
    """The brain for a new run, a run being driven or an inference call, with
    the caller's key opened from the store (BYOK) or the server's own."""

    def __init__(self, resolver: BrainResolver, secret: bytes) -> None:
        self.resolver = resolver
        self.secret = secret

    # -- the server's brains (GET /v1/models) --------------------------------

    def managed(self) -> str:
        return self.resolver.managed()

    def default_model(self, brain: str) -> str | None:
        return self.resolver.default_model(brain)

    def configured(self, brain: str) -> bool:
        return self.resolver.configured(brain)

    # -- choosing ------------------------------------------------------------

    async def choose(self, conn: AsyncConnection, *, account_id: str, mode: str,
                     model: str | None, llm: LlmRequest | None) -> Choice:
        """The brain for a new run or call; a BYOK key is looked up and sealed
        into the choice (only its fingerprint is shown)."""
        if llm is None:
            return self.resolver.choose(model)
        if llm.sealed_key is not None:
            sealed, source = llm.sealed_key, llm.key_source or "header"
            key = self._open(sealed)
        elif llm.api_key is not None:
            key, source = SecretStr(llm.api_key), "header"
            sealed = llm_keys_store.seal(self.secret, llm.api_key)
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
            key = self._open(sealed)
        chosen = llm.model or BYOK_DEFAULT_MODELS[llm.provider]
        echo: dict[str, str | bool] = {
            "provider": llm.provider, "model": chosen,
            "key_fingerprint": crypto.fingerprint(key.get_secret_value()),
            "key_source": source, "key_scrubbed": False}
        if llm.grounding_model:
            echo["grounding_model"] = llm.grounding_model
        return Choice(brain=llm.provider, model=chosen, llm=echo, sealed_key=sealed)

    # -- building ------------------------------------------------------------

    async def for_run(self, conn: AsyncConnection, run: Run) -> Brain:
        """The brain that drives ``run`` (its BYOK key snapshot, or the server's)."""
        if run.llm:
            sealed = await llm_keys_store.run_key(conn, run.id)
            if sealed is None:
                raise LlmError("The run's key snapshot is gone; it cannot continue without "
                               "the caller's key.", code=ErrorCode.LLM_KEY_NOT_CONFIGURED)
            return self.resolver.build(run.llm["provider"], model=run.llm.get("model"),
                                       api_key=self._open(sealed), task=run.task,
                                       grounding_model=run.llm.get("grounding_model"))
        choice = self.resolver.choose_for_run(run.brain, run.model)
        return self.resolver.build(choice.brain, model=choice.model, task=run.task)

    def for_choice(self, choice: Choice, task: str = "") -> Brain:
        """The brain for an inference call."""
        key = self._open(choice.sealed_key) if choice.sealed_key else None
        grounding = (choice.llm or {}).get("grounding_model")
        return self.resolver.build(choice.brain, model=choice.model, api_key=key, task=task,
                                   grounding_model=grounding)

    def _open(self, sealed: str) -> SecretStr:
        return SecretStr(llm_keys_store.open_key(self.secret, sealed))

"""The Brain base class: a brain that only decides still answers verify and
ground, with the "unsupported" error naming it (the HTTP answer the scripted
brain gives /v1/ground), and closing it is safe."""

from __future__ import annotations

import pytest

from deckhand.brains.base import Brain
from deckhand.brains.offline import OfflineBrain
from deckhand.brains.scripted import ScriptedBrain
from deckhand.core.screens import Observation
from deckhand.core.steps import AgentContext, Decision
from deckhand.errors import BrainUnsupported, DeckhandError, ErrorCode, http_status

SCREEN = Observation(screenshot_jpeg=b"\xff\xd8", width=8, height=8)


class DecideOnly(Brain):
    name = "decide-only"

    async def decide(self, context: AgentContext) -> Decision:
        return Decision(text=context.task)


def test_a_brain_must_decide() -> None:
    class Nothing(Brain):
        name = "nothing"

    with pytest.raises(TypeError):
        Nothing()  # type: ignore[abstract]


async def test_ground_is_unsupported_by_default_and_names_the_brain() -> None:
    with pytest.raises(BrainUnsupported) as caught:
        await DecideOnly().ground(SCREEN, "the OK button")
    assert isinstance(caught.value, DeckhandError)
    assert caught.value.code == ErrorCode.OFFLINE_BRAIN_UNSUPPORTED
    assert http_status(caught.value.code) == 422
    assert caught.value.message == (
        "The decide-only brain cannot ground elements on a screenshot; configure a model "
        "(ANTHROPIC_API_KEY, OPENAI_API_KEY or an OpenAI-compatible base URL) or send your "
        "own key with X-LLM-Provider and X-LLM-Api-Key.")


async def test_verify_is_unsupported_by_default_and_names_the_brain() -> None:
    context = AgentContext(run_id="r", task="t")
    with pytest.raises(BrainUnsupported) as caught:
        await DecideOnly().verify(context, "done", None)
    assert caught.value.code == ErrorCode.OFFLINE_BRAIN_UNSUPPORTED
    assert caught.value.message.startswith("The decide-only brain cannot verify")


async def test_aclose_is_a_no_op_by_default() -> None:
    brain = DecideOnly()
    await brain.aclose()
    assert (await brain.decide(AgentContext(run_id="r", task="still works"))).text == \
        "still works"


async def test_the_offline_and_scripted_brains_verify_and_only_offline_grounds_text() -> None:
    done = AgentContext(run_id="r", task='{"verdict": {"passed": false, "reason": "nope"}}')
    verdict = await ScriptedBrain().verify(done, "", None)
    assert (verdict.passed, verdict.reason, verdict.by) == (False, "nope", "scripted")
    offline = await OfflineBrain().verify(AgentContext(run_id="r", task="Run `ls`"), "", None)
    assert offline.passed and offline.by == "offline verify clauses"
    with pytest.raises(BrainUnsupported, match="^The scripted brain cannot ground"):
        await ScriptedBrain().ground(SCREEN, "x")
    # the offline brain reads the screenshot's text (tests/integration/test_offline_grounding.py);
    # bytes that are no image are the caller's mistake, not an unsupported brain
    with pytest.raises(DeckhandError) as bad:
        await OfflineBrain().ground(SCREEN, "x")
    assert bad.value.code is ErrorCode.INVALID_SCREENSHOT

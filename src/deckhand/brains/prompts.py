"""Every prompt a model brain sends, written once: the agent's system prompt,
the task and its history's opening, the small notes between turns, the
grounding question and the verifier's brief.

The three model brains wrap these texts in their providers' message formats;
the words are the same whichever provider reads them.
"""

from __future__ import annotations

from deckhand.brains.history import trajectory_text
from deckhand.brains.screen import ModelScreen
from deckhand.brains.tools import POINT, REPORT_VERDICT
from deckhand.core.steps import AgentContext

DEFAULT_SYSTEM_PROMPT = (
    "You are Deckhand, an agent that completes tasks on a Linux computer by using the tools "
    "you are given. Work step by step: look at the screen and the results of your previous "
    "actions before acting again. When the task is complete, answer with a short final "
    "message that states the result, without calling a tool. If you cannot go on without a "
    "person (credentials, an approval, a CAPTCHA, a decision only they can make), call "
    "request_human with a clear question."
)
VERIFIER_SYSTEM_PROMPT = (
    "You are an independent verifier for a computer-use agent. You did not do the work; you "
    "judge it. From the task, the agent's trajectory, its final answer and the final "
    "screenshot (when there is one), decide whether the task is really complete. Judge only "
    "from evidence you can see; a claim without evidence fails. Answer by calling "
    f"{REPORT_VERDICT.name} exactly once."
)
SCREEN_NOW = "The screen now:"
SCREEN_AT_START = "The screen at the start:"
SCREEN_AFTER = "The screen after this step:"
CONTINUE = "Continue."  # the user's turn after a step told as text


def system_prompt(context: AgentContext) -> str:
    return context.system_prompt or DEFAULT_SYSTEM_PROMPT


def task_text(context: AgentContext) -> str:
    text = f"Task: {context.task}"
    if context.instructions:
        text += f"\n\nInstructions: {context.instructions}"
    return text


def opening(context: AgentContext, summary: str | None) -> str:
    """The first user message: the task, and the summary of the steps that
    compaction no longer shows in full."""
    text = task_text(context)
    if summary:
        text += f"\n\nEarlier steps (summarized):\n{summary}"
    return text


def human_note(note: str) -> str:
    return f"Note from a human: {note}"


def hint_note(hint: str) -> str:
    """The harness's hint (e.g. the recovery's "re-plan") as the model reads it."""
    return f"Note: {hint}"


def ground_prompt(element: str, screen: ModelScreen) -> str:
    return (f"Find this element in the screenshot ({screen.width}×{screen.height} pixels): "
            f"{element}\nCall {POINT.name} with the pixel coordinates of its centre, or "
            "with found=false if it is not there.")


def verifier_prompt(context: AgentContext, answer: str, has_screen: bool) -> str:
    screen = ("The final screenshot is attached." if has_screen
              else "There is no screenshot (the machine has no screen).")
    return (
        f"{task_text(context)}\n\n"
        f"The agent's trajectory, one line per step:\n{trajectory_text(context)}\n\n"
        f"The agent's final answer: {answer or '(none)'}\n\n"
        f"{screen} Is the task complete? Call {REPORT_VERDICT.name}."
    )

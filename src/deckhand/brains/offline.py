"""The offline brain: a deterministic planner for tasks written in a small
instruction language (parsed by :mod:`deckhand.brains.offline_parse`). It is
not a language model and never pretends to be one.

Every decision is a pure function of the context, so a run rebuilt from its
recorded steps after a crash continues exactly where it stopped:

1. The task is parsed on every call (it is cheap). A clause it cannot read,
   or a plan it cannot carry out, ends the run at the first decision with
   ``OFFLINE_BRAIN_UNSUPPORTED``: the message quotes the clause, gives the
   reason, lists the instructions it knows and says how to configure a model.
   Plans it cannot carry out: ``finish with`` anywhere but last, an output
   or exit-code check with no ``run`` before it.
2. Clause *k* (from 0) is done at step *k*: *k* = the number of recorded
   steps. Every step belongs to exactly one clause; the ``ask a human`` step,
   once recorded (with the human's note after a resume), is its clause done.
3. Look-back: before clause *k*, the brain checks what step *k-1*'s actions
   returned. An action that did not succeed (``ok`` false) of a ``run``,
   ``write`` or ``wait`` ends the run with ``MACHINE_ERROR``; for ``verify
   PATH contains "TEXT"`` (whose step reads the file) a missing or unreadable
   file, or one without TEXT, ends it with ``VERIFICATION_FAILED``. Screen
   instructions (open, click, type, press, scroll) act on the machine's screen
   (labels grounded by the machine: the page's DOM in a browser, text
   recognition on a desktop; ``type … into "LABEL"`` is one ``type`` action
   whose field the machine grounds, and which answers ``ok`` false when its
   text lands in no editable element); an action that fails ends the run with
   ``MACHINE_ERROR``, and ``verify the screen shows "TEXT"`` (whose step reads
   the screen's text) ends it with ``VERIFICATION_FAILED`` when TEXT is not
   there. A check
   that passes costs no step: the same decision goes on with clause *k*, and
   its text starts with what was checked.
4. ``verify the output matches/contains …`` and ``verify the exit code is N``
   are pure checks of the most recent ``RunCommand`` result in the context
   (``re.search`` with ``re.MULTILINE`` on its output; a plain substring test;
   an equality of its exit code). Passing → a text-only step; failing →
   ``VERIFICATION_FAILED`` quoting what was expected and the output's tail. A
   command that exits non-zero is not a failure by itself.
5. The end: ``finish with "ANSWER"`` ends at once as succeeded with ANSWER.
   When the last clause is a passing pure check, its step also ends the run
   as succeeded. Otherwise one more step after the last clause does the
   look-back and ends the run as succeeded. The answer summarises what was
   done and quotes the tail of the last output.

So the reference task (run, run, verify) takes three steps. Token usage is
always zero.
"""

from __future__ import annotations

import re

from deckhand.brains.base import Brain
from deckhand.brains.offline_ground import ground_text
from deckhand.brains.offline_parse import (
    FORMS,
    SCREEN_CLAUSES,
    AskHuman,
    Clause,
    Click,
    FinishWith,
    Open,
    ParseError,
    Press,
    Run,
    Scroll,
    TypeOutput,
    TypeText,
    VerifyExitCode,
    VerifyFileContains,
    VerifyOutputContains,
    VerifyOutputMatches,
    VerifyScreenShows,
    WaitSeconds,
    WriteText,
    format_number,
    parse_task,
    quote,
)
from deckhand.brains.offline_verdict import offline_verdict, shows
from deckhand.core.actions import (
    ActionResult,
    ClickText,
    KeyPress,
    OpenUrl,
    ReadFile,
    RunCommand,
    Screenshot,
    Wait,
    WriteFile,
)
from deckhand.core.actions import Scroll as ScrollAction
from deckhand.core.actions import TypeText as TypeAction
from deckhand.core.screens import Observation
from deckhand.core.steps import AgentContext, Decision, Outcome, StepRecord
from deckhand.core.verdicts import Grounded, Verdict
from deckhand.errors import ErrorCode

#: a generous per-command timeout; the run's own deadline is enforced elsewhere
COMMAND_TIMEOUT_MS = 600_000
TAIL_CHARS = 500

_OUTPUT_CHECKS = (VerifyOutputMatches, VerifyOutputContains, VerifyExitCode)
_SCREEN_FORMS = {"open", "click", "type", "press", "scroll", "verify the screen"}

CONFIGURE_A_MODEL = (
    "For free-form tasks, configure a model: set ANTHROPIC_API_KEY or OPENAI_API_KEY, "
    "or point Deckhand at an OpenAI-compatible base URL (a local vLLM, Ollama or "
    "llama.cpp server), and choose it with DECKHAND_BRAIN."
)


class OfflineBrain(Brain):
    """The embedded default brain for machines with no model provider."""

    name = "offline"

    def __init__(self, *, command_timeout_ms: int = COMMAND_TIMEOUT_MS) -> None:
        self.command_timeout_ms = command_timeout_ms

    async def decide(self, context: AgentContext) -> Decision:
        return next_decision(context, command_timeout_ms=self.command_timeout_ms)

    async def verify(self, context: AgentContext, answer: str,
                     screen: Observation | None) -> Verdict:
        """Its verify clauses checked again against the recorded results."""
        return offline_verdict(context)

    async def ground(self, observation: Observation, element: str) -> Grounded:
        """Visible text only: the centre of the element's words, read with the
        desktop's text recognition (brains/offline_ground.py); anything else is
        ``OFFLINE_BRAIN_UNSUPPORTED``."""
        return await ground_text(observation, element)


def next_decision(
    context: AgentContext, *, command_timeout_ms: int = COMMAND_TIMEOUT_MS
) -> Decision:
    """The offline brain's decision for ``context`` (pure)."""
    clauses = parse_task(context.task)
    if isinstance(clauses, ParseError):
        return unsupported(clauses.clause, clauses.reason)
    problem = _plan_problem(clauses)
    if problem is not None:
        return problem

    k = len(context.steps)
    note: str | None = None
    if 0 < k <= len(clauses):
        checked = _look_back(clauses[k - 1], context.steps[-1])
        if isinstance(checked, Decision):
            return checked
        note = checked
    if k >= len(clauses):
        return Decision(
            text=_join(note, "The instruction is done." if len(clauses) == 1
                       else f"All {len(clauses)} instructions done."),
            outcome=Outcome(success=True, answer=_summary(clauses, context)),
        )
    return _clause_decision(clauses, k, context, note, command_timeout_ms)


# --------------------------------------------------------------------------- the plan


def _plan_problem(clauses: tuple[Clause, ...]) -> Decision | None:
    seen_run = False
    for index, clause in enumerate(clauses):
        if isinstance(clause, FinishWith) and index != len(clauses) - 1:
            return unsupported(
                _written(clause), "`finish with` ends the run, so it must be the last instruction"
            )
        if isinstance(clause, _OUTPUT_CHECKS + (TypeOutput,)) and not seen_run:
            use = "type" if isinstance(clause, TypeOutput) else "check"
            return unsupported(
                _written(clause),
                f"no command runs before it, so there is no output to {use} "
                "(put a `run` instruction first)",
            )
        seen_run = seen_run or isinstance(clause, Run)
    return None


def unsupported(clause: str, reason: str) -> Decision:
    """The decision that ends the run because the task is not in the
    offline brain's language."""
    forms = "\n".join(
        f"  - {form}" + ("  (needs a screen)" if _is_screen_form(form) else "")
        for form in FORMS
    )
    what = _quoted(clause) if clause else "this task"
    message = (
        f"The offline brain cannot do {what}: {reason}.\n"
        "It understands these instructions, separated by \"then\", \"and\", \";\" "
        "or line breaks, with arguments quoted as \"…\", `…` or '…':\n"
        f"{forms}\n"
        f"{CONFIGURE_A_MODEL}"
    )
    return Decision(
        text=f"Cannot do {what}: {reason}.",
        outcome=Outcome(
            success=False, error_code=ErrorCode.OFFLINE_BRAIN_UNSUPPORTED.value, message=message
        ),
    )


def _is_screen_form(form: str) -> bool:
    return any(form.startswith(prefix) for prefix in _SCREEN_FORMS)


# --------------------------------------------------------------------------- one clause


def _clause_decision(
    clauses: tuple[Clause, ...],
    k: int,
    context: AgentContext,
    note: str | None,
    command_timeout_ms: int,
) -> Decision:
    clause = clauses[k]
    if isinstance(clause, Run):
        return Decision(
            actions=(RunCommand(command=clause.command, timeout_ms=command_timeout_ms),),
            text=_join(note, f"Running {_code(clause.command)}"),
        )
    if isinstance(clause, WriteText):
        return Decision(
            actions=(WriteFile(path=clause.path, content=clause.text),),
            text=_join(note, f"Writing {len(clause.text)} characters to {clause.path}"),
        )
    if isinstance(clause, VerifyFileContains):
        return Decision(
            actions=(ReadFile(path=clause.path),),
            text=_join(note, f"Reading {clause.path} to check it contains {quote(clause.text)}"),
        )
    if isinstance(clause, WaitSeconds):
        return Decision(
            actions=(Wait(seconds=clause.seconds),),
            text=_join(note, f"Waiting {format_number(clause.seconds)} seconds"),
        )
    if isinstance(clause, AskHuman):
        return Decision(
            ask_human=clause.question, text=_join(note, f"Asking a human: {clause.question}")
        )
    if isinstance(clause, FinishWith):
        return Decision(
            text=_join(note, "Finishing."), outcome=Outcome(success=True, answer=clause.answer)
        )
    if isinstance(clause, _OUTPUT_CHECKS):
        checked = _check_output(clause, context)
        if isinstance(checked, Decision):
            return checked
        text = _join(note, checked)
        if k == len(clauses) - 1:
            answer = _summary(clauses, context)
            return Decision(text=text, outcome=Outcome(success=True, answer=answer))
        return Decision(text=text)
    if isinstance(clause, TypeOutput):
        return _type_output(clause, context, note)
    return _screen_decision(clause, note)


def _type_output(clause: TypeOutput, context: AgentContext, note: str | None) -> Decision:
    """``type the output [into "LABEL"]``: the last command's output, stripped."""
    last = _last_command(context)
    assert last is not None  # _plan_problem: a run comes before it
    command, result = last
    text = result.output.strip()
    if not text:
        return _verification_failed(
            f"{_said(clause)}: the output of {_code(command.command)} is empty, so there is "
            "nothing to type.", result)
    into = f" into {quote(clause.into)}" if clause.into is not None else ""
    return Decision(actions=(TypeAction(text=text, into=clause.into),),
                    text=_join(note, f"Typing the output of {_code(command.command)} "
                                     f"({len(text)} characters){into}"))


# --------------------------------------------------------------------------- the screen
# Screen clauses act on whatever screen the machine has (a desktop, the
# browser's page, the rendered terminal); labels are grounded by the machine
# (the page's DOM in a browser, text recognition on a desktop screenshot).
# A failed action or a text that is not shown ends the run at the look-back.


def _screen_decision(clause: Clause, note: str | None) -> Decision:
    if isinstance(clause, Open):
        return Decision(actions=(OpenUrl(url=clause.url),),
                        text=_join(note, f"Opening {clause.url}"))
    if isinstance(clause, Click):
        return Decision(actions=(ClickText(label=clause.label),),
                        text=_join(note, f"Clicking {quote(clause.label)}"))
    if isinstance(clause, TypeText):
        # One action: the machine grounds the field ``into`` names (not the
        # label's text) and answers ok false when the text lands nowhere.
        typing = TypeAction(text=clause.text, into=clause.into)
        if clause.into is None:
            return Decision(actions=(typing,), text=_join(note, f"Typing {quote(clause.text)}"))
        return Decision(actions=(typing,), text=_join(note, f"Typing {quote(clause.text)} "
                                                            f"into {quote(clause.into)}"))
    if isinstance(clause, Press):
        return Decision(actions=(KeyPress(keys=clause.key),),
                        text=_join(note, f"Pressing {clause.key}"))
    if isinstance(clause, Scroll):
        return Decision(actions=(ScrollAction(direction=clause.direction),),
                        text=_join(note, f"Scrolling {clause.direction}"))
    assert isinstance(clause, VerifyScreenShows)
    return Decision(actions=(Screenshot(),),
                    text=_join(note, f"Looking at the screen for {quote(clause.text)}"))


def _screen_text(result: ActionResult) -> str:
    text = result.data.get("text")
    return text if isinstance(text, str) else ""


def _look_back_screen(clause: Clause, step: StepRecord) -> Decision | str | None:
    results = step.results
    for index, _action in enumerate(step.decision.actions):
        result = results[index] if index < len(results) else None
        if result is None or not result.ok:
            why = result.error if result is not None and result.error else "no result recorded"
            return Decision(
                text=f"{_said(clause)} failed on the machine.",
                outcome=Outcome(success=False, error_code=ErrorCode.MACHINE_ERROR.value,
                                message=f"{_said(clause)} failed on the machine: {why}"),
            )
    if isinstance(clause, VerifyScreenShows):
        result = results[-1]
        screen = _screen_text(result)
        how = result.data.get("text_source")
        if not shows(screen, clause.text, loose=how == "ocr"):
            where = {"ocr": "text recognition on the screenshot", "dom": "the page's text",
                     "terminal": "the terminal"}.get(str(how), "the screen")
            return _verification_failed(
                f"the screen does not show {quote(clause.text)} (read from {where}: "
                f"{_tail(' '.join(screen.split())) or '(no text)'})."
            )
        return f"Checked: the screen shows {quote(clause.text)}."
    return None


def _check_output(
    clause: VerifyOutputMatches | VerifyOutputContains | VerifyExitCode, context: AgentContext
) -> Decision | str:
    last = _last_command(context)
    if last is None:
        return _verification_failed(
            f"{_said(clause)} has no command result to check (no command has run yet)."
        )
    command, result = last
    ran = _code(command.command)
    if isinstance(clause, VerifyOutputMatches):
        match = re.search(clause.pattern, result.output, re.MULTILINE)
        if match is None:
            return _verification_failed(
                f"the output of {ran} does not match {_code(clause.pattern)}.",
                result,
            )
        where = _line_of(result.output, match.start())
        return f"Checked: the output of {ran} matches {_code(clause.pattern)} ({where})."
    if isinstance(clause, VerifyOutputContains):
        if clause.text not in result.output:
            return _verification_failed(
                f"the output of {ran} does not contain {quote(clause.text)}.", result
            )
        return f"Checked: the output of {ran} contains {quote(clause.text)}."
    if result.exit_code != clause.code:
        got = (
            "reported no exit code"
            if result.exit_code is None
            else f"exited with code {result.exit_code}"
        )
        return _verification_failed(f"{ran} {got}, expected {clause.code}.", result)
    return f"Checked: {ran} exited with code {clause.code}."


def _last_command(context: AgentContext) -> tuple[RunCommand, ActionResult] | None:
    for step in reversed(context.steps):
        for action, result in reversed(list(zip(step.decision.actions, step.results, strict=False))):
            if isinstance(action, RunCommand):
                return action, result
    return None


# --------------------------------------------------------------------------- look-back


def _look_back(clause: Clause, step: StepRecord) -> Decision | str | None:
    """Check what the previous clause's actions returned: a failure ends the
    run (a Decision), a passing file check gives a note, anything else None."""
    actions = step.decision.actions
    results = step.results
    if isinstance(clause, SCREEN_CLAUSES):
        return _look_back_screen(clause, step)
    if isinstance(clause, VerifyFileContains):
        result = results[0] if results else None
        if result is None or not result.ok:
            why = result.error if result is not None and result.error else "no result"
            return _verification_failed(f"{clause.path} could not be read ({why}).")
        content = result.content
        if clause.text not in content:
            return _verification_failed(
                f"{clause.path} does not contain {quote(clause.text)}. "
                f"Its content{_tail_label(content)}: {_tail(content)}"
            )
        return f"Checked: {clause.path} contains {quote(clause.text)}."
    if isinstance(clause, (Run, WriteText, WaitSeconds)):
        for index in range(len(actions)):
            result = results[index] if index < len(results) else None
            if result is None or not result.ok:
                why = result.error if result is not None and result.error else "no result recorded"
                return Decision(
                    text=f"{_said(clause)} failed on the machine.",
                    outcome=Outcome(
                        success=False,
                        error_code=ErrorCode.MACHINE_ERROR.value,
                        message=f"{_said(clause)} failed on the machine: {why}",
                    ),
                )
    return None


# --------------------------------------------------------------------------- the end


def _summary(clauses: tuple[Clause, ...], context: AgentContext) -> str:
    def count(kinds: type | tuple[type, ...]) -> int:
        return sum(isinstance(clause, kinds) for clause in clauses)

    parts = []
    for number, singular, plural in (
        (count(Run), "ran 1 command", "ran {n} commands"),
        (count(WriteText), "wrote 1 file", "wrote {n} files"),
        (count(_OUTPUT_CHECKS + (VerifyFileContains, VerifyScreenShows)), "1 check passed",
         "{n} checks passed"),
        (count(SCREEN_CLAUSES) - count(VerifyScreenShows), "did 1 thing on the screen",
         "did {n} things on the screen"),
        (count(WaitSeconds), "waited once", "waited {n} times"),
        (count(AskHuman), "asked a human once", "asked a human {n} times"),
    ):
        if number:
            parts.append(singular if number == 1 else plural.format(n=number))
    answer = "Done: " + ("; ".join(parts) if parts else "nothing to do") + "."
    last = _last_command(context)
    if last is not None:
        output = last[1].output.strip()
        answer += f" Last output{_tail_label(output)}: {_tail(output) if output else '(empty)'}"
    notes = [step.human_note for step in context.steps if step.human_note]
    if notes:
        answer += f"\nLast note from a human: {notes[-1]}"
    return answer


# --------------------------------------------------------------------------- text helpers


def _verification_failed(what: str, result: ActionResult | None = None) -> Decision:
    message = f"Verification failed: {what}"
    if result is not None:
        output = result.output.strip()
        if result.exit_code is not None:
            message += f" Exit code: {result.exit_code}."
        if output:
            message += f" Output{_tail_label(output)}: {_tail(output)}"
        else:
            message += " The output was empty."
    return Decision(
        text=message,
        outcome=Outcome(
            success=False, error_code=ErrorCode.VERIFICATION_FAILED.value, message=message
        ),
    )


def _tail(text: str) -> str:
    return text if len(text) <= TAIL_CHARS else "…" + text[-TAIL_CHARS:]


def _tail_label(text: str) -> str:
    return f" (last {TAIL_CHARS} characters)" if len(text) > TAIL_CHARS else ""


def _line_of(text: str, index: int) -> str:
    start = text.rfind("\n", 0, index) + 1
    end = text.find("\n", index)
    line = text[start : end if end >= 0 else len(text)].strip()
    if len(line) > 120:
        line = line[:119] + "…"
    return f"line: {quote(line)}" if line else "at an empty line"


def _code(text: str) -> str:
    try:
        return quote(text, prefer="`")
    except ValueError:
        return text


def _quoted(text: str) -> str:
    try:
        return quote(text)
    except ValueError:
        return text


def _said(clause: Clause) -> str:
    """The clause as the task wrote it (whitespace collapsed), quoted."""
    return _quoted(_written(clause))


def _written(clause: Clause) -> str:
    return " ".join(clause.source.split()) or clause.render()


def _join(note: str | None, text: str) -> str:
    return f"{note} {text}" if note else text

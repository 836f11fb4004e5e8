"""The offline brain's screen instructions: the actions it decides, and how
it reads back what the machine answered (pure; no machine)."""

from __future__ import annotations

from deckhand.brains.offline import next_decision
from deckhand.core.actions import (
    ActionResult,
    ClickText,
    KeyPress,
    OpenUrl,
    Screenshot,
    Scroll,
    TypeText,
)
from deckhand.core.steps import AgentContext, StepRecord
from deckhand.machine_agent.browser import BrowserError, check_url

TASK = ('open http://127.0.0.1:8000/signin.html, click "Sign in", type "a@b.c" into "Email", '
        'press enter, scroll down, verify the screen shows "Welcome"')


def ctx(steps: list[StepRecord]) -> AgentContext:
    return AgentContext(run_id="r", task=TASK, steps=tuple(steps))


def ok(**data: object) -> ActionResult:
    return ActionResult(ok=True, data=dict(data))


def test_each_clause_is_one_step_with_grounded_actions() -> None:
    steps: list[StepRecord] = []
    expected = [
        (OpenUrl(url="http://127.0.0.1:8000/signin.html"),),
        (ClickText(label="Sign in"),),
        (TypeText(text="a@b.c", into="Email"),),
        (KeyPress(keys="enter"),),
        (Scroll(direction="down"),),
        (Screenshot(),),
    ]
    for number, actions in enumerate(expected, start=1):
        d = next_decision(ctx(steps))
        assert d.outcome is None, d
        assert d.actions == actions
        results = [ok() for _ in actions]
        if isinstance(actions[0], Screenshot):
            results = [ok(text="Acme portal\nWelcome a@b.c", text_source="dom")]
        steps.append(StepRecord(number=number, decision=d, results=tuple(results)))
    end = next_decision(ctx(steps))
    assert end.outcome is not None and end.outcome.success
    assert 'Checked: the screen shows "Welcome".' in (end.text or "")
    assert "did 5 things on the screen" in (end.outcome.answer or "")


def test_a_label_that_is_not_there_fails_the_run_with_the_machines_reason() -> None:
    d1 = next_decision(ctx([]))
    s1 = StepRecord(number=1, decision=d1, results=(ok(),))
    d2 = next_decision(ctx([s1]))
    s2 = StepRecord(number=2, decision=d2, results=(
        ActionResult(ok=False, error="'Sign in' is not on the screen (text recognition read: x)"),))
    end = next_decision(ctx([s1, s2]))
    assert end.outcome is not None and not end.outcome.success
    assert end.outcome.error_code == "MACHINE_ERROR"
    assert "is not on the screen" in (end.outcome.message or "")


def test_verify_the_screen_reads_ocr_loosely_and_fails_clearly() -> None:
    task = 'verify the screen shows "Welcome, a@b.c"'
    d = next_decision(AgentContext(run_id="r", task=task))
    assert d.actions == (Screenshot(),)

    def after(text: str, source: str):  # type: ignore[no-untyped-def]
        step = StepRecord(number=1, decision=d,
                          results=(ok(text=text, text_source=source),))
        return next_decision(AgentContext(run_id="r", task=task, steps=(step,)))

    assert after("| Welcome  a@b.c |", "ocr").outcome.success  # type: ignore[union-attr]
    failed = after("Welcome a@b.c", "dom").outcome  # punctuation matters in the DOM
    assert failed is not None and failed.error_code == "VERIFICATION_FAILED"
    assert "read from the page's text" in (failed.message or "")


def test_only_web_urls_are_opened() -> None:
    assert check_url("example.test/x") == "http://example.test/x"
    assert check_url("https://a.test") == "https://a.test"
    for bad in ("file:///etc/passwd", "chrome://settings", "javascript:alert(1)"):
        try:
            check_url(bad)
        except BrowserError as exc:
            assert "not allowed" in str(exc)
        else:
            raise AssertionError(bad)


FORM = ('open http://127.0.0.1:8000/form.html, type "ada@example.com" into "Email address", '
        'verify the screen shows "Thanks"')
MISSED = ActionResult(ok=False, data={"grounding": "dom", "label_found": False},
                      error="no editable field on the page is named 'Email address'")


def _form_steps(typed: ActionResult, shown: str) -> list[StepRecord]:
    steps: list[StepRecord] = []
    for number, result in enumerate((ok(), typed, ok(text=shown, text_source="dom")), start=1):
        d = next_decision(AgentContext(run_id="r", task=FORM, steps=tuple(steps)))
        steps.append(StepRecord(number=number, decision=d, results=(result,)))
    return steps


def test_type_into_a_label_is_one_action_the_machine_grounds() -> None:
    d = next_decision(AgentContext(run_id="r", task=FORM, steps=tuple(_form_steps(ok(), "")[:1])))
    assert d.actions == (TypeText(text="ada@example.com", into="Email address"),)


def test_a_type_that_missed_fails_the_run_with_the_reason() -> None:
    steps = _form_steps(ok(), "")[:1]
    d = next_decision(AgentContext(run_id="r", task=FORM, steps=tuple(steps)))
    steps.append(StepRecord(number=2, decision=d, results=(MISSED,)))
    end = next_decision(AgentContext(run_id="r", task=FORM, steps=tuple(steps)))
    assert end.outcome is not None and not end.outcome.success
    assert end.outcome.error_code == "MACHINE_ERROR"
    assert "no editable field on the page is named 'Email address'" in (end.outcome.message or "")


def test_the_verdict_fails_on_a_missed_action_whatever_the_screen_shows() -> None:
    from deckhand.brains.offline_verdict import offline_verdict

    good = offline_verdict(AgentContext(run_id="r", task=FORM,
                                        steps=tuple(_form_steps(ok(), "Thanks, Ada"))))
    assert good.passed, good
    missed = offline_verdict(AgentContext(run_id="r", task=FORM,
                                          steps=tuple(_form_steps(MISSED, "Thanks, Ada"))))
    assert not missed.passed and "no editable field" in missed.reason
    assert "type 'ada@example.com' into 'Email address'" in missed.reason
    unseen = offline_verdict(AgentContext(run_id="r", task=FORM,
                                          steps=tuple(_form_steps(ok(), "Sign up"))))
    assert not unseen.passed and "does not show 'Thanks'" in unseen.reason

"""Reading a verifier model's answer: the forced call's arguments, or its text."""

from __future__ import annotations

from deckhand.brains.verdict import UNUSABLE, judge, verdict_from_arguments, verdict_from_text


def test_arguments() -> None:
    assert verdict_from_arguments({"passed": True, "reason": "shown"}) == (True, "shown")
    assert verdict_from_arguments({"passed": False}) == (False, "not complete")
    assert verdict_from_arguments({"passed": "yes"}) == (False, UNUSABLE)
    assert verdict_from_arguments('{"passed": true, "reason": "ok"}') == (True, "ok")


def test_text_answers() -> None:
    assert verdict_from_text('Here: {"passed": false, "reason": "no menu"}') == \
        (False, "no menu")
    assert verdict_from_text("The task is incomplete.") == (False, "The task is incomplete.")
    assert verdict_from_text("PASS") == (True, "PASS")
    assert verdict_from_text("I am not sure.") == (False, UNUSABLE)


def test_judge_prefers_an_object_over_the_text() -> None:
    assert judge({"passed": True, "reason": "r"}, "FAIL") == (True, "r")
    assert judge("The arguments are not valid JSON: x", "passed") == (True, "passed")
    assert judge(None, "") == (False, UNUSABLE)

"""The offline brain's decisions, driven with hand-built contexts and fake
action results (no machine)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from deckhand.brains.offline import COMMAND_TIMEOUT_MS, OfflineBrain, next_decision
from deckhand.core.actions import ActionResult, ReadFile, RunCommand, Wait, WriteFile
from deckhand.core.steps import AgentContext, Decision, StepRecord, TokenUsage

REFERENCE_TASK = """Run `python3 -m venv /tmp/env && /tmp/env/bin/pip install requests`, then run
`/tmp/env/bin/python -c "import requests; print(requests.__version__)"` and
verify the output matches `^2\\.`"""

Responder = Callable[[Decision], Sequence[ActionResult]]


def ok(output: str = "", exit_code: int | None = 0) -> ActionResult:
    return ActionResult(ok=True, output=output, exit_code=exit_code)


def context(task: str, steps: Sequence[StepRecord] = ()) -> AgentContext:
    return AgentContext(run_id="run_1", task=task, steps=tuple(steps))


def step(number: int, decision: Decision, results: Sequence[ActionResult] = (),
         human_note: str | None = None) -> StepRecord:
    return StepRecord(number=number, decision=decision, results=tuple(results),
                      human_note=human_note)


async def drive(task: str, respond: Sequence[Sequence[ActionResult]] | Responder,
                max_steps: int = 20) -> list[Decision]:
    """Play the loop: decide, 'execute' with canned results, record, repeat
    until the run would end. Returns every decision made."""
    brain = OfflineBrain()
    steps: list[StepRecord] = []
    decisions: list[Decision] = []
    for n in range(max_steps):
        decision = await brain.decide(context(task, steps))
        decisions.append(decision)
        if decision.outcome is not None:
            return decisions
        if callable(respond):
            results = respond(decision)
        else:
            results = respond[n] if n < len(respond) else ()
        note = "approved" if decision.ask_human else None
        steps.append(step(n + 1, decision, results, note))
    raise AssertionError("the run never ended")


# --------------------------------------------------------------------------- the reference task


async def test_reference_task_succeeds_in_three_steps() -> None:
    decisions = await drive(REFERENCE_TASK, [
        [ok("Collecting requests\nSuccessfully installed requests-2.32.3\n")],
        [ok("2.32.3\n")],
    ])
    assert len(decisions) == 3
    first, second, third = decisions
    assert first.actions == (RunCommand(
        command="python3 -m venv /tmp/env && /tmp/env/bin/pip install requests",
        timeout_ms=COMMAND_TIMEOUT_MS,
    ),)
    assert first.text == "Running `python3 -m venv /tmp/env && /tmp/env/bin/pip install requests`"
    assert second.actions == (RunCommand(
        command='/tmp/env/bin/python -c "import requests; print(requests.__version__)"',
        timeout_ms=COMMAND_TIMEOUT_MS,
    ),)
    assert third.actions == ()
    assert third.text is not None and third.text.startswith("Checked: the output of")
    assert third.outcome is not None and third.outcome.success
    assert third.outcome.answer == "Done: ran 2 commands; 1 check passed. Last output: 2.32.3"
    assert all(d.usage == TokenUsage() for d in decisions)
    assert COMMAND_TIMEOUT_MS >= 600_000


async def test_reference_task_fails_when_requests_is_missing() -> None:
    decisions = await drive(REFERENCE_TASK, [
        [ok("ERROR: Could not find a version that satisfies the requirement requests", 1)],
        [ok("Traceback (most recent call last):\n"
            "ModuleNotFoundError: No module named 'requests'", 1)],
    ])
    outcome = decisions[-1].outcome
    assert outcome is not None and not outcome.success
    assert outcome.error_code == "VERIFICATION_FAILED"
    assert outcome.message is not None
    assert "does not match `^2\\.`" in outcome.message
    assert "No module named 'requests'" in outcome.message
    assert "Exit code: 1" in outcome.message


# --------------------------------------------------------------------------- output checks


async def test_verification_message_quotes_only_the_output_tail() -> None:
    long_output = "x" * 2000 + "THE-END"
    decisions = await drive('run `make` and verify the output contains "BUILD OK"',
                            [[ok(long_output, 2)]])
    outcome = decisions[-1].outcome
    assert outcome is not None and outcome.error_code == "VERIFICATION_FAILED"
    assert outcome.message is not None
    assert 'does not contain "BUILD OK"' in outcome.message
    assert "last 500 characters" in outcome.message
    assert outcome.message.endswith("THE-END")
    assert len(outcome.message) < 800


async def test_output_contains_passes() -> None:
    decisions = await drive('run `make` and verify the output contains "BUILD OK"',
                            [[ok("...\nBUILD OK\n")]])
    assert len(decisions) == 2
    assert decisions[-1].outcome is not None and decisions[-1].outcome.success


async def test_exit_code_check() -> None:
    passed = await drive("run `true`; verify the exit code is 0", [[ok("", 0)]])
    assert passed[-1].outcome is not None and passed[-1].outcome.success
    assert passed[-1].text == "Checked: `true` exited with code 0."

    failed = await drive("run `false`; verify the exit code is 0", [[ok("", 1)]])
    outcome = failed[-1].outcome
    assert outcome is not None and outcome.error_code == "VERIFICATION_FAILED"
    assert outcome.message == (
        "Verification failed: `false` exited with code 1, expected 0. Exit code: 1. "
        "The output was empty."
    )

    silent = await drive("run `x`; verify the exit code is 0", [[ok("", None)]])
    assert silent[-1].outcome is not None
    assert "reported no exit code" in str(silent[-1].outcome.message)


async def test_a_passing_check_in_the_middle_is_a_text_only_step() -> None:
    decisions = await drive(
        'run `a` then verify the output contains "A" then run `b`',
        [[ok("A")], [], [ok("B")]],
    )
    assert [len(d.actions) for d in decisions] == [1, 0, 1, 0]
    middle = decisions[1]
    assert middle.outcome is None and middle.ask_human is None
    assert middle.text == 'Checked: the output of `a` contains "A".'
    assert decisions[-1].outcome is not None
    assert decisions[-1].outcome.answer == (
        "Done: ran 2 commands; 1 check passed. Last output: B"
    )


async def test_checks_look_at_the_most_recent_command() -> None:
    decisions = await drive(
        'run `a`, wait 1 second, run `b`, wait 2 seconds and verify the output contains "from b"',
        [[ok("from a")], [ok()], [ok("from b")], [ok()]],
    )
    assert decisions[-1].outcome is not None and decisions[-1].outcome.success


async def test_a_nonzero_exit_is_not_a_failure_by_itself() -> None:
    decisions = await drive("run `false` then run `true`", [[ok("", 1)], [ok("", 0)]])
    assert decisions[-1].outcome is not None and decisions[-1].outcome.success


# --------------------------------------------------------------------------- unsupported tasks


async def test_unknown_clause_ends_the_run_at_the_first_step() -> None:
    task = "run `pytest` and then tell me which tests failed"
    decision = await OfflineBrain().decide(context(task))
    assert decision.actions == ()
    outcome = decision.outcome
    assert outcome is not None and not outcome.success
    assert outcome.error_code == "OFFLINE_BRAIN_UNSUPPORTED"
    message = outcome.message or ""
    assert '"tell me which tests failed"' in message
    for needle in ("run `CMD`", 'verify the output contains "TEXT"', 'ask a human "QUESTION"',
                   "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OpenAI-compatible base URL",
                   "DECKHAND_BRAIN"):
        assert needle in message


async def test_free_form_task_is_not_attempted() -> None:
    task = "Install requests in a venv and print its version"
    decision = await OfflineBrain().decide(context(task))
    assert decision.outcome is not None
    assert decision.outcome.error_code == "OFFLINE_BRAIN_UNSUPPORTED"
    assert "Install requests in a venv" in (decision.outcome.message or "")


async def test_empty_task() -> None:
    decision = await OfflineBrain().decide(context("   "))
    assert decision.outcome is not None
    assert decision.outcome.error_code == "OFFLINE_BRAIN_UNSUPPORTED"
    assert "cannot do this task: the task has no instructions" in (decision.outcome.message or "")


async def test_screen_instructions_act_on_the_screen() -> None:
    decision = await OfflineBrain().decide(context('run `a` then click "Sign in"'))
    assert decision.outcome is None
    assert decision.actions[0].kind == "terminal"


async def test_finish_with_must_be_last() -> None:
    decision = await OfflineBrain().decide(context('finish with "x" then run `a`'))
    assert decision.outcome is not None
    assert decision.outcome.error_code == "OFFLINE_BRAIN_UNSUPPORTED"
    assert "last instruction" in (decision.outcome.message or "")


async def test_output_check_needs_a_command_before_it() -> None:
    decision = await OfflineBrain().decide(context("verify the exit code is 0 then run `a`"))
    assert decision.outcome is not None
    assert decision.outcome.error_code == "OFFLINE_BRAIN_UNSUPPORTED"
    assert "no command runs before it" in (decision.outcome.message or "")


# --------------------------------------------------------------------------- other clauses


async def test_ask_a_human() -> None:
    task = 'run `deploy --dry-run` then ask a human "Deploy for real?" then run `deploy`'
    brain = OfflineBrain()
    first = await brain.decide(context(task))
    steps = [step(1, first, [ok("plan: 3 changes")])]
    second = await brain.decide(context(task, steps))
    assert second.ask_human == "Deploy for real?"
    assert second.actions == () and second.outcome is None
    assert second.text == "Asking a human: Deploy for real?"
    # the human resumes: the loop records the step with the note
    steps.append(step(2, second, (), human_note="yes, go"))
    third = await brain.decide(context(task, steps))
    assert third.actions == (RunCommand(command="deploy", timeout_ms=COMMAND_TIMEOUT_MS),)
    steps.append(step(3, third, [ok("deployed")]))
    last = await brain.decide(context(task, steps))
    assert last.outcome is not None and last.outcome.success
    assert last.outcome.answer == (
        "Done: ran 2 commands; asked a human once. Last output: deployed\n"
        "Last note from a human: yes, go"
    )


async def test_finish_with() -> None:
    decisions = await drive('run `date` then finish with "checked the date"', [[ok("Mon")]])
    assert len(decisions) == 2
    outcome = decisions[-1].outcome
    assert outcome is not None and outcome.success and outcome.answer == "checked the date"


async def test_finish_with_alone() -> None:
    decisions = await drive('finish with "nothing to do"', [])
    assert len(decisions) == 1
    assert decisions[0].outcome is not None and decisions[0].outcome.answer == "nothing to do"


async def test_write_then_verify_file() -> None:
    task = 'write "hello world" to /tmp/greeting.txt then verify /tmp/greeting.txt contains "hello"'
    brain = OfflineBrain()
    first = await brain.decide(context(task))
    assert first.actions == (WriteFile(path="/tmp/greeting.txt", content="hello world"),)
    assert first.text == "Writing 11 characters to /tmp/greeting.txt"
    steps = [step(1, first, [ok(exit_code=None)])]
    second = await brain.decide(context(task, steps))
    assert second.actions == (ReadFile(path="/tmp/greeting.txt"),)
    assert second.text == 'Reading /tmp/greeting.txt to check it contains "hello"'
    steps.append(step(2, second, [ok("hello world", None)]))
    third = await brain.decide(context(task, steps))
    assert third.outcome is not None and third.outcome.success
    assert third.text == 'Checked: /tmp/greeting.txt contains "hello". All 2 instructions done.'
    assert third.outcome.answer == "Done: wrote 1 file; 1 check passed."


async def test_a_passing_file_check_costs_no_extra_step() -> None:
    task = 'verify /etc/hostname contains "box" then run `hostname`'
    decisions = await drive(task, [[ok("box\n", None)], [ok("box")]])
    assert [d.actions for d in decisions[:2]] == [
        (ReadFile(path="/etc/hostname"),),
        (RunCommand(command="hostname", timeout_ms=COMMAND_TIMEOUT_MS),),
    ]
    assert decisions[1].text == 'Checked: /etc/hostname contains "box". Running `hostname`'
    assert len(decisions) == 3


async def test_file_check_fails_on_missing_file() -> None:
    decisions = await drive('verify /nope.txt contains "x"',
                            [[ActionResult(ok=False, error="No such file or directory")]])
    outcome = decisions[-1].outcome
    assert outcome is not None and outcome.error_code == "VERIFICATION_FAILED"
    assert outcome.message == (
        "Verification failed: /nope.txt could not be read (No such file or directory)."
    )


async def test_file_check_fails_when_text_is_missing() -> None:
    decisions = await drive('verify ./a.txt contains "needle" then run `x`',
                            [[ok("only hay", None)]])
    assert len(decisions) == 2
    outcome = decisions[-1].outcome
    assert outcome is not None and outcome.error_code == "VERIFICATION_FAILED"
    assert outcome.message == (
        'Verification failed: ./a.txt does not contain "needle". Its content: only hay'
    )
    assert decisions[-1].actions == ()


async def test_file_content_may_come_in_data() -> None:
    result = ActionResult(ok=True, data={"content": "the needle"})
    decisions = await drive('verify ./a.txt contains "needle"', [[result]])
    assert decisions[-1].outcome is not None and decisions[-1].outcome.success


async def test_wait() -> None:
    decisions = await drive("wait 2.5 seconds", [[ok(exit_code=None)]])
    assert decisions[0].actions == (Wait(seconds=2.5),)
    assert decisions[0].text == "Waiting 2.5 seconds"
    assert decisions[-1].outcome is not None
    assert decisions[-1].outcome.answer == "Done: waited once."


async def test_a_failed_action_ends_the_run() -> None:
    failed = ActionResult(ok=False, error="machine went away")
    decisions = await drive("run `a` then run `b`", [[failed]])
    assert len(decisions) == 2
    outcome = decisions[-1].outcome
    assert outcome is not None and outcome.error_code == "MACHINE_ERROR"
    assert outcome.message == '"run `a`" failed on the machine: machine went away'

    unrecorded = await drive('write "x" to /tmp/x', [[]])
    assert unrecorded[-1].outcome is not None
    assert unrecorded[-1].outcome.error_code == "MACHINE_ERROR"


# --------------------------------------------------------------------------- purity


async def test_decisions_are_a_pure_function_of_the_context() -> None:
    task = 'run `a` then ask a human "ok?" then verify the output contains "A"'
    steps: list[StepRecord] = []
    results = [[ok("A")], []]
    for n in range(3):
        ctx = context(task, steps)
        one = await OfflineBrain().decide(ctx)
        two = await OfflineBrain().decide(ctx)
        assert one == two == next_decision(ctx)
        if one.outcome is not None:
            break
        steps.append(step(n + 1, one, results[n], "fine" if one.ask_human else None))
    assert one.outcome is not None and one.outcome.success


async def test_every_decision_says_what_it_does() -> None:
    task = ('run `a`; write "x" to /tmp/x; verify /tmp/x contains "x"; wait 1 second; '
            'ask a human "ok?"; verify the exit code is 0')

    def respond(decision: Decision) -> list[ActionResult]:
        if decision.actions and isinstance(decision.actions[0], ReadFile):
            return [ok("x", None)]
        return [ok()] if decision.actions else []

    decisions = await drive(task, respond)
    assert len(decisions) == 6
    assert all(d.text for d in decisions)
    assert decisions[-1].outcome is not None and decisions[-1].outcome.success
    assert decisions[-1].outcome.answer == (
        "Done: ran 1 command; wrote 1 file; 2 checks passed; waited once; asked a human once. "
        "Last output: (empty)\nLast note from a human: approved"
    )



# --------------------------------------------------------------------------- type the output


async def test_type_the_output_types_the_last_commands_output_stripped() -> None:
    from deckhand.core.actions import TypeText

    task = 'run `curl -s http://127.0.0.1:9/code`, type the output into "One-time code"'
    decisions = await drive(task, [[ok("  483920\n")], [ok()]])
    assert len(decisions) == 3
    assert decisions[1].actions == (TypeText(text="483920", into="One-time code"),)
    assert decisions[1].text == ("Typing the output of `curl -s http://127.0.0.1:9/code` "
                                 '(6 characters) into "One-time code"')
    assert decisions[2].outcome is not None and decisions[2].outcome.success


async def test_type_the_output_needs_a_command_before_it_and_some_output() -> None:
    [first] = await drive('type the output into "Code"', [])
    assert first.outcome is not None and first.outcome.error_code == "OFFLINE_BRAIN_UNSUPPORTED"
    assert "no output to type" in (first.outcome.message or "")
    decisions = await drive("run `true`, type the output", [[ok("\n")]])
    last = decisions[-1].outcome
    assert last is not None and last.error_code == "VERIFICATION_FAILED"
    assert "is empty, so there is nothing to type" in (last.message or "")


async def test_a_type_the_output_that_misses_ends_the_run() -> None:
    missed = ActionResult(ok=False, error="no editable field on the page is named 'Code'")
    decisions = await drive('run `echo 1`, type the output into "Code"', [[ok("1")], [missed]])
    last = decisions[-1].outcome
    assert last is not None and last.error_code == "MACHINE_ERROR"
    assert "no editable field" in (last.message or "")

"""Property-based tests through the real server (hypothesis): random valid
definitions within the limits all run to a terminal state with the scripted
brain, with a consistent record; random invalid ones are all refused with
422 naming the rule broken."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import LiveServer
from tests.support.contract import assert_error, assert_valid
from tests.support.dsl_strategies import INPUTS, definitions, invalid_definitions
from tests.support.polling import wait_until
from tests.support.runs import machine
from tests.support.workflows import (  # destroy_machines: an autouse fixture
    TERMINAL,
    child_runs,
    destroy_machines,  # noqa: F401
    get_wf_run,
    start_adhoc,
    wait_run_status,
    wf_events,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(600)]

async def _machine(server: LiveServer, c: Any) -> str:
    """One machine for all the examples run against this server."""
    if getattr(server, "prop_machine", None) is None:
        server.prop_machine = await machine(c, "prop")  # type: ignore[attr-defined]
    return server.prop_machine  # type: ignore[attr-defined, no-any-return]


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(definition=definitions(max_steps=10, max_depth=3), data=st.data())
async def test_random_valid_definitions_run_to_a_terminal_state(
        sqlite_server: LiveServer, definition: dict[str, Any], data: st.DataObject) -> None:
    key = await sqlite_server.key(test=True)
    async with sqlite_server.client(key) as c:
        mid = await _machine(sqlite_server, c)
        run = await start_adhoc(c, definition, machine_id=mid, inputs=INPUTS)
        answers = []

        async def answering() -> dict[str, Any]:
            """The run as it is now, after answering the approval it awaits, if any."""
            current = await get_wf_run(c, run["id"])
            if current["status"] == "awaiting_human":
                approved = data.draw(st.integers(0, 3), label="approve") < 3
                answers.append(approved)
                r = await c.post(f"/v1/workflows/runs/{run['id']}/resume",
                                 json={"approved": approved})
                assert r.status_code == 200, r.text
                assert_valid("WorkflowRunResponse", r.json())
            return current

        current = await wait_until(answering, timeout=60, what=f"workflow run {run['id']} to end",
                                   done=lambda body: body["status"] in TERMINAL)

        event(f"ended {current['status']}"
              + (f" {current['error']['code']}" if current["error"] else ""))
        stream = await wf_events(c, run["id"])
        assert [e["seq"] for e in stream] == list(range(1, len(stream) + 1))
        assert stream[-1]["type"] == "done" and stream[-1]["data"]["status"] == current["status"]
        starts = [e["data"] for e in stream if e["type"] == "step_started"]
        ends = [e["data"] for e in stream if e["type"] == "step_finished"]
        assert len({s["key"] for s in starts}) == len(starts), "a step was started twice"
        assert {s["key"] for s in starts} == {e["key"] for e in ends}, "a step never finished"
        assert sum(e["type"] == "resumed" for e in stream) == len(answers)
        if False in answers:
            assert current["status"] == "failed"
            assert current["error"]["code"] == "APPROVAL_REJECTED"

        # each task step made exactly one child run, and every child run ended
        created = [s["child_run_id"] for s in starts if s["type"] == "task"
                   and "child_run_id" in s]
        assert len(set(created)) == len(created)
        kids = await child_runs(c, run["id"])
        assert {k["id"] for k in kids} == set(created)
        event(f"{min(len(kids), 5)}+ task runs" if len(kids) >= 5 else f"{len(kids)} task runs")
        for t in {s["type"] for s in starts}:
            event(f"ran a {t} step")
        for kid in kids:
            assert (await wait_run_status(c, kid["id"]))["status"] in TERMINAL
        if current["status"] == "succeeded":
            assert current["error"] is None
        else:
            assert current["error"]["code"]


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=invalid_definitions())
async def test_random_invalid_definitions_are_refused_naming_the_rule(
        sqlite_server: LiveServer, case: tuple[dict[str, Any], Any, str | None]) -> None:
    definition, rule, step = case
    key = await sqlite_server.key(test=True)
    async with sqlite_server.client(key) as c:
        for r in (await c.post("/v1/workflows", json={"name": "n", "slug": "bad",
                                                      "definition": definition}),
                  await c.post("/v1/workflows/runs", json={"definition": definition,
                                                           "machine_id": "mch_test_00000000"})):
            err = assert_error(r, 422, "VALIDATION_ERROR")
            problems = err["examples"]["problems"]
            assert rule.value in [p["rule"] for p in problems], err["message"]
            if step is not None:
                assert any(p["step_id"] == step for p in problems if p["rule"] == rule.value)
            assert f"rule {rule.value}" in err["message"] or len(problems) > 5
        assert (await c.get("/v1/workflows", params={"status": "all"})).json()["data"] == []

"""The workflow language: every step type parses; every rule refuses what it
should, naming the step and the rule."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from deckhand.engine import dsl
from deckhand.engine.dsl import DefinitionInvalid, Rule, parse_definition

DOC_EXAMPLE: dict[str, Any] = {
    "version": "2026-06-01",
    "steps": [
        {"id": "login", "type": "task",
         "task": "Sign in to {{inputs.site}} as {{inputs.user}}", "max_steps": 30},
        {"id": "logged_in", "type": "assert",
         "condition": {"op": "eq", "left": "{{steps.login.status}}", "right": "succeeded"},
         "message": "could not sign in"},
        {"id": "approve", "type": "human_approval", "message": "Send the report?",
         "timeout_seconds": 3600, "on_timeout": "fail"},
        {"id": "send", "type": "retry", "max_attempts": 3, "delay_ms": 2000, "backoff": 2,
         "body": [{"id": "send_task", "type": "task", "task": "Send the report"}]},
    ],
    "output": {"user": "{{inputs.user}}", "sent": "{{steps.send_task.status}}"},
}


def wait(i: str, seconds: float = 0) -> dict[str, Any]:
    return {"id": i, "type": "wait", "seconds": seconds}


EVERY_STEP_TYPE: dict[str, Any] = {"steps": [
    {"id": "t", "type": "task", "task": "Run `echo {{inputs.x}}`", "machine_id": "{{inputs.m}}",
     "instructions": "i", "system_prompt": "s", "max_steps": 5, "deadline_seconds": 60,
     "cua_version": "v4", "save_as": "out"},
    {"id": "a", "type": "assert", "condition": {"all": [
        {"op": "exists", "left": "{{vars.out}}"},
        {"any": [{"op": "matches", "left": "{{steps.t.result.answer}}", "right": "^o"},
                 {"not": {"op": "in", "left": "{{steps.t.status}}", "right": ["failed"]}}]}]}},
    {"id": "i", "type": "if", "condition": {"op": "gt", "left": "{{inputs.n}}", "right": 1},
     "then": [wait("w1")], "else": [{"id": "f", "type": "fail", "message": "n={{inputs.n}}"}]},
    {"id": "l1", "type": "loop", "count": 2, "body": [wait("w2")]},
    {"id": "l2", "type": "loop", "while": {"op": "lt", "left": "{{loop.index}}", "right": 3},
     "max_iterations": 5, "body": [wait("w3")]},
    {"id": "p", "type": "parallel", "fail_fast": False,
     "branches": [[wait("w4")], [{"id": "r", "type": "retry", "max_attempts": 2,
                                  "body": [wait("w5")]}]]},
    {"id": "h", "type": "human_approval", "message": "ok {{inputs.x}}?", "timeout_seconds": 5,
     "on_timeout": "cancel"},
    {"id": "s", "type": "succeed", "output": {"v": "{{vars.out.answer}}"}},
]}


def test_doc_example_parses() -> None:
    d = parse_definition(DOC_EXAMPLE)
    assert [s.type for s in d.steps] == ["task", "assert", "human_approval", "retry"]
    assert isinstance(d.steps[3], dsl.RetryStep) and d.steps[3].body[0].id == "send_task"
    assert d.version == dsl.DSL_VERSION


def test_every_step_type_parses() -> None:
    d = parse_definition(EVERY_STEP_TYPE)
    types = {s.type for s in dsl.walk(d.steps)}
    assert types == set(dsl.STEP_TYPES)
    loop = d.steps[4]
    assert isinstance(loop, dsl.LoopStep) and loop.while_ is not None and loop.count is None
    assert isinstance(d.steps[2], dsl.IfStep) and d.steps[2].else_ is not None
    assert d.model_dump(by_alias=True, exclude_unset=True)["steps"][2]["else"]


def test_defaults() -> None:
    d = parse_definition({"steps": [
        {"id": "p", "type": "parallel", "branches": [[wait("a")]]},
        {"id": "h", "type": "human_approval", "message": "m"},
        {"id": "r", "type": "retry", "max_attempts": 1, "body": [wait("b")]},
    ]})
    p, h, r = d.steps
    assert isinstance(p, dsl.ParallelStep) and p.fail_fast is True
    assert isinstance(h, dsl.HumanApprovalStep) and h.on_timeout == "fail" and h.timeout_seconds is None
    assert isinstance(r, dsl.RetryStep) and r.delay_ms == 0 and r.backoff == 1


def test_limits_at_the_edge_are_accepted() -> None:
    parse_definition({"steps": [wait(f"w{i}") for i in range(dsl.MAX_STEPS)]})
    parse_definition(nested(dsl.MAX_DEPTH))
    parse_definition({"steps": [{"id": "p", "type": "parallel",
                                 "branches": [[wait(f"w{i}")] for i in range(16)]}]})
    parse_definition({"steps": [{"id": "r", "type": "retry", "max_attempts": 20,
                                 "body": [wait("w")]}]})
    parse_definition({"steps": [{"id": "a" * 64, "type": "wait", "seconds": 0}]})


def nested(levels: int) -> dict[str, Any]:
    """A definition whose innermost step is at ``levels`` deep."""
    step: dict[str, Any] = wait("inner")
    for i in range(levels - 1):
        step = {"id": f"if{i}", "type": "if", "condition": {"op": "eq", "left": 1, "right": 1},
                "then": [step]}
    return {"steps": [step]}


def one(step: dict[str, Any], *more: dict[str, Any]) -> dict[str, Any]:
    return {"steps": [step, *more]}


# (definition, rule, step id named)
INVALID: list[tuple[str, Any, Rule, str | None]] = [
    ("not an object", ["x"], Rule.SCHEMA, None),
    ("no steps", {"steps": []}, Rule.SCHEMA, None),
    ("unknown top-level field", {"steps": [wait("a")], "extra": 1}, Rule.SCHEMA, None),
    ("unknown step field", one({**wait("a"), "colour": "red"}), Rule.SCHEMA, "a"),
    ("missing task text", one({"id": "t", "type": "task"}), Rule.SCHEMA, "t"),
    ("max_steps out of range", one({"id": "t", "type": "task", "task": "x", "max_steps": 0}),
     Rule.SCHEMA, "t"),
    ("wait too long", one({"id": "w", "type": "wait", "seconds": 86401}), Rule.SCHEMA, "w"),
    ("empty then", one({"id": "i", "type": "if", "condition": {"op": "eq", "left": 1, "right": 1},
                        "then": []}), Rule.SCHEMA, "i"),
    ("empty branch", one({"id": "p", "type": "parallel", "branches": [[]]}), Rule.SCHEMA, "p"),
    ("bad on_timeout", one({"id": "h", "type": "human_approval", "message": "m",
                            "on_timeout": "retry"}), Rule.SCHEMA, "h"),
    ("unknown type", one({"id": "x", "type": "shell", "cmd": "ls"}), Rule.STEP_TYPE, "x"),
    ("no type", one({"id": "x"}), Rule.STEP_TYPE, "x"),
    ("wrong dsl version", {"version": "2020-01-01", "steps": [wait("a")]}, Rule.DSL_VERSION,
     None),
    ("id with a space", one(wait("a b")), Rule.STEP_ID_FORMAT, "a b"),
    ("id too long", one(wait("a" * 65)), Rule.STEP_ID_FORMAT, "a" * 65),
    ("empty id", one(wait("")), Rule.STEP_ID_FORMAT, "(empty)"),
    ("duplicate id", one(wait("a"), wait("a")), Rule.STEP_ID_UNIQUE, "a"),
    ("duplicate id nested", one(wait("a"), {"id": "l", "type": "loop", "count": 1,
                                            "body": [wait("a")]}), Rule.STEP_ID_UNIQUE, "a"),
    ("201 steps", {"steps": [wait(f"w{i}") for i in range(201)]}, Rule.MAX_STEPS, "w200"),
    ("201 steps nested", {"steps": [{"id": "l", "type": "loop", "count": 1,
                                     "body": [wait(f"w{i}") for i in range(200)]}]},
     Rule.MAX_STEPS, "w199"),
    ("9 levels", nested(9), Rule.MAX_NESTING, "inner"),
    ("17 branches", one({"id": "p", "type": "parallel",
                         "branches": [[wait(f"w{i}")] for i in range(17)]}),
     Rule.PARALLEL_BRANCHES, "p"),
    ("approval in a branch", one({"id": "p", "type": "parallel", "branches": [
        [{"id": "h", "type": "human_approval", "message": "m"}]]}),
     Rule.PARALLEL_FORBIDDEN_STEP, "h"),
    ("succeed deep in a branch", one({"id": "p", "type": "parallel", "branches": [
        [{"id": "l", "type": "loop", "count": 1, "body": [{"id": "s", "type": "succeed"}]}]]}),
     Rule.PARALLEL_FORBIDDEN_STEP, "s"),
    ("fail in a branch", one({"id": "p", "type": "parallel", "branches": [
        [wait("a")], [{"id": "f", "type": "fail"}]]}), Rule.PARALLEL_FORBIDDEN_STEP, "f"),
    ("retry 0 attempts", one({"id": "r", "type": "retry", "max_attempts": 0,
                              "body": [wait("a")]}), Rule.RETRY_MAX_ATTEMPTS, "r"),
    ("retry 21 attempts", one({"id": "r", "type": "retry", "max_attempts": 21,
                               "body": [wait("a")]}), Rule.RETRY_MAX_ATTEMPTS, "r"),
    ("loop with neither", one({"id": "l", "type": "loop", "body": [wait("a")]}),
     Rule.LOOP_COUNT_OR_WHILE, "l"),
    ("loop with both", one({"id": "l", "type": "loop", "count": 2,
                            "while": {"op": "eq", "left": 1, "right": 1}, "body": [wait("a")]}),
     Rule.LOOP_COUNT_OR_WHILE, "l"),
    ("save_as inputs", one({"id": "t", "type": "task", "task": "x", "save_as": "inputs"}),
     Rule.SAVE_AS_RESERVED, "t"),
    ("save_as vars", one({"id": "t", "type": "task", "task": "x", "save_as": "vars"}),
     Rule.SAVE_AS_RESERVED, "t"),
    ("exists with right", one({"id": "a", "type": "assert", "condition": {
        "op": "exists", "left": "{{inputs.a}}", "right": 1}}), Rule.CONDITION, "a"),
    ("eq without right", one({"id": "a", "type": "assert", "condition": {
        "op": "eq", "left": 1}}), Rule.CONDITION, "a"),
    ("unknown op", one({"id": "a", "type": "assert", "condition": {
        "op": "like", "left": 1, "right": 2}}), Rule.CONDITION, "a"),
    ("not a condition", one({"id": "a", "type": "assert", "condition": {"expr": "1 == 1"}}),
     Rule.CONDITION, "a"),
    ("code as a condition", one({"id": "a", "type": "assert", "condition": "x > 1"}),
     Rule.CONDITION, "a"),
    ("bad regex", one({"id": "a", "type": "assert", "condition": {
        "op": "matches", "left": "x", "right": "(["}}), Rule.CONDITION, "a"),
    ("bad nested while", one({"id": "l", "type": "loop", "while": {
        "all": [{"not": {"op": "eq", "left": 1}}]}, "body": [wait("a")]}), Rule.CONDITION, "l"),
    ("empty all", one({"id": "a", "type": "assert", "condition": {"all": []}}),
     Rule.CONDITION, "a"),
    ("unclosed template", one({"id": "t", "type": "task", "task": "go {{inputs.site"}),
     Rule.TEMPLATE, "t"),
    ("an expression", one({"id": "t", "type": "task", "task": "{{inputs.n + 1}}"}),
     Rule.TEMPLATE, "t"),
    ("a call", one({"id": "t", "type": "task", "task": "{{inputs.site.upper()}}"}),
     Rule.TEMPLATE, "t"),
    ("unknown root", one({"id": "t", "type": "task", "task": "{{env.HOME}}"}),
     Rule.TEMPLATE, "t"),
    ("unknown step", one({"id": "t", "type": "task", "task": "{{steps.nope.status}}"}),
     Rule.TEMPLATE, "t"),
    ("unknown step field", one(wait("w"), {"id": "t", "type": "task",
                                           "task": "{{steps.w.output}}"}), Rule.TEMPLATE, "t"),
    ("loop.index outside a loop", one({"id": "f", "type": "fail",
                                       "message": "{{loop.index}}"}), Rule.TEMPLATE, "f"),
    ("template in a condition", one({"id": "a", "type": "assert", "condition": {
        "op": "eq", "left": "{{inputs}}", "right": 1}}), Rule.TEMPLATE, "a"),
    ("template in the output", {"steps": [wait("w")], "output": {"x": "{{steps.q.status}}"}},
     Rule.TEMPLATE, None),
    ("template in succeed output", one({"id": "s", "type": "succeed",
                                        "output": {"a": ["{{vars.}}"]}}), Rule.TEMPLATE, "s"),
]


@pytest.mark.parametrize(("definition", "rule", "step"),
                         [pytest.param(d, r, s, id=name) for name, d, r, s in INVALID])
def test_invalid_definitions_name_step_and_rule(definition: Any, rule: Rule,
                                                 step: str | None) -> None:
    with pytest.raises(DefinitionInvalid) as exc:
        parse_definition(copy.deepcopy(definition))
    err = exc.value
    assert err.code.value == "VALIDATION_ERROR"
    assert err.examples is not None
    assert err.examples["rule"] == rule.value, err.message
    assert err.examples["step_id"] == step, err.message
    assert f"rule {rule.value}" in err.message
    if step is not None:
        assert f"step {step!r}" in err.message


def test_all_problems_are_listed() -> None:
    with pytest.raises(DefinitionInvalid) as exc:
        parse_definition(one(wait("a"), wait("a"), {"id": "r", "type": "retry",
                                                    "max_attempts": 99, "body": [wait("b c")]}))
    rules = [p["rule"] for p in exc.value.examples["problems"]]  # type: ignore[index]
    assert rules == ["step_id_unique", "retry_max_attempts", "step_id_format"]


def test_hostile_nesting_is_refused_before_the_models() -> None:
    step: dict[str, Any] = wait("x")
    for i in range(3000):  # far beyond Python's recursion limit if it were followed
        step = {"id": f"l{i}", "type": "loop", "count": 1, "body": [step]}
    with pytest.raises(DefinitionInvalid) as exc:
        parse_definition({"steps": [step]})
    assert exc.value.examples["rule"] == "max_nesting"  # type: ignore[index]


def test_inputs_schema_rules() -> None:
    dsl.check_inputs_schema(None)
    dsl.check_inputs_schema({"type": "object", "required": ["site"],
                             "properties": {"site": {"type": "string"}}})
    with pytest.raises(DefinitionInvalid) as exc:
        dsl.check_inputs_schema({"type": "objekt"})
    assert exc.value.examples["rule"] == "inputs_schema"  # type: ignore[index]

    schema = {"type": "object", "required": ["site"], "additionalProperties": False,
              "properties": {"site": {"type": "string"}, "n": {"type": "integer"}}}
    dsl.check_inputs(schema, {"site": "a", "n": 2})
    dsl.check_inputs(None, {"anything": [1]})
    for bad, where in [({}, "'site' is a required property"), ({"site": 1}, "inputs['site']"),
                       ({"site": "a", "x": 1}, "Additional properties")]:
        with pytest.raises(DefinitionInvalid) as exc:
            dsl.check_inputs(schema, bad)
        assert exc.value.examples["rule"] == "inputs_schema"  # type: ignore[index]
        assert where in exc.value.message and exc.value.message.startswith("Invalid inputs")


def test_machine_required_rule() -> None:
    d = parse_definition(one({"id": "t", "type": "task", "task": "x"},
                             {"id": "u", "type": "task", "task": "y", "machine_id": "m"}))
    dsl.check_machines(d, "mch_default")
    with pytest.raises(DefinitionInvalid) as exc:
        dsl.check_machines(d, None)
    assert exc.value.examples["rule"] == "machine_required"  # type: ignore[index]
    assert exc.value.examples["step_id"] == "t"  # type: ignore[index]
    assert [p["step_id"] for p in exc.value.examples["problems"]] == ["t"]  # type: ignore[index]


def test_every_rule_is_exercised() -> None:
    covered = {rule for _, _, rule, _ in INVALID} | {Rule.INPUTS_SCHEMA, Rule.MACHINE_REQUIRED}
    assert covered == set(Rule)


def test_definitions_are_data() -> None:
    d = parse_definition(DOC_EXAMPLE)
    with pytest.raises(ValidationError):  # frozen: the interpreter cannot change a definition
        d.steps[0].id = "other"  # type: ignore[misc]
    assert d.model_dump(mode="json", by_alias=True, exclude_unset=True)["steps"][0]["id"] == "login"

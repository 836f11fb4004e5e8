"""Hypothesis strategies for workflow definitions, shared by the language's
property tests (tests/unit/test_dsl_properties.py) and the ones through the
real server (tests/integration/test_workflows_properties.py): random valid
definitions within the limits (``definitions``), the ``INPUTS`` their
conditions and templates evaluate on, and a valid one with one rule broken
(``invalid_definitions``)."""


from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from deckhand.engine import dsl
from deckhand.engine.dsl import Rule

Draw = Callable[[st.SearchStrategy[Any]], Any]


# -- valid definitions ------------------------------------------------------------------------


def scripted_task(draw: Draw, step_id: str, in_loop: bool) -> dict[str, Any]:
    """A task whose child run, with the scripted brain, ends at once:
    succeeds (maybe after a command) or, rarely, fails."""
    entry: dict[str, Any] = {}
    if draw(st.booleans()):
        word = "{{loop.index}}" if in_loop and draw(st.booleans()) else step_id
        entry["actions"] = [{"kind": "terminal", "command": f"echo {word}"}]
    if draw(st.integers(0, 29)) == 29:  # rarely (hypothesis favours 0)
        entry["outcome"] = {"success": False, "error_code": "TASK_FAILED", "message": "no"}
    else:
        entry["outcome"] = {"success": True, "answer": f"done {step_id}"}
    step: dict[str, Any] = {"id": step_id, "type": "task",
                            "task": json.dumps({"script": [entry]}), "max_steps": 3}
    if draw(st.booleans()):
        step["save_as"] = f"v_{step_id}"
    return step


def condition(draw: Draw, known: list[str], in_loop: bool, depth: int = 0) -> dict[str, Any]:
    """A random condition that evaluates without error on :data:`INPUTS`
    (operands of matching types; earlier steps only through exists)."""
    kind = draw(st.sampled_from(["compare"] * 4 + (["all", "any", "not"] if depth < 2 else [])))
    if kind in ("all", "any"):
        return {kind: [condition(draw, known, in_loop, depth + 1)
                       for _ in range(draw(st.integers(1, 3)))]}
    if kind == "not":
        return {"not": condition(draw, known, in_loop, depth + 1)}
    family = draw(st.sampled_from(["number", "string", "list", "presence"]))
    if family == "number":
        lefts = ["{{inputs.n}}", 1, 3] + (["{{loop.index}}"] * 2 if in_loop else [])
        return {"op": draw(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"])),
                "left": draw(st.sampled_from(lefts)), "right": draw(st.integers(0, 3))}
    if family == "string":
        op = draw(st.sampled_from(["eq", "ne", "contains", "not_contains", "matches", "in",
                                   "not_in"]))
        left = draw(st.sampled_from(["{{inputs.word}}", "abc", "x{{inputs.n}}"]))
        right: Any = draw(st.sampled_from(["abc", "b", "x2", "zz"]))
        if op == "matches":
            right = draw(st.sampled_from(["^a", "c$", "[0-9]", "^x"]))
        elif op in ("in", "not_in"):
            right = draw(st.sampled_from([["abc", "x2"], ["zz"], "xabcx"]))
        return {"op": op, "left": left, "right": right}
    if family == "list":
        return {"op": draw(st.sampled_from(["contains", "not_contains"])),
                "left": "{{inputs.tags}}", "right": draw(st.sampled_from(["a", "z"]))}
    refs = ["{{inputs.word}}", "{{inputs.missing}}", "{{vars.nothing}}"]
    refs += [f"{{{{steps.{k}.status}}}}" for k in known]
    refs += [f"{{{{steps.{k}.result}}}}" for k in known]
    return {"op": draw(st.sampled_from(["exists", "not_exists"])),
            "left": draw(st.sampled_from(refs))}


def weighted(draw: Draw, weights: dict[str, int]) -> str:
    pick = draw(st.integers(0, sum(weights.values()) - 1))
    for kind, weight in weights.items():
        if pick < weight:
            return kind
        pick -= weight
    raise AssertionError("unreachable")


@st.composite
def definitions(draw: Draw, max_steps: int = 10, max_depth: int = 3,
                approvals: bool = True) -> dict[str, Any]:
    """A random valid definition within the limits, every step type possible.
    Its tasks are scripted; its loops and waits are short."""
    count = 0
    known: list[str] = []  # step ids defined earlier (templates may name them)

    def new_id() -> str:
        nonlocal count
        count += 1
        return f"s{count}"

    def block(depth: int, in_parallel: bool, in_loop: bool) -> list[dict[str, Any]]:
        size = draw(st.integers(3, 6) if depth == 1 else st.integers(1, 3))
        steps = []
        for _ in range(size):
            if count >= max_steps and steps:
                break
            steps.append(step(depth, in_parallel, in_loop))
        return steps

    def step(depth: int, in_parallel: bool, in_loop: bool) -> dict[str, Any]:
        weights = {"task": 30, "assert": 10, "wait": 8}
        if depth < max_depth and count < max_steps - 1:
            weights.update({"if": 15, "loop": 15, "parallel": 15, "retry": 10})
        if not in_parallel:
            weights.update({"succeed": 2, "fail": 2})
            if approvals:
                weights["human_approval"] = 5
        kind = weighted(draw, weights)
        sid = new_id()
        out: dict[str, Any]
        if kind == "task":
            out = scripted_task(draw, sid, in_loop)
        elif kind == "assert":
            out = {"id": sid, "type": "assert", "condition": condition(draw, known, in_loop)}
        elif kind == "wait":
            out = {"id": sid, "type": "wait", "seconds": draw(st.sampled_from([0, 0.05, 0.1]))}
        elif kind == "succeed":
            out = {"id": sid, "type": "succeed", "output": {"at": sid, "n": "{{inputs.n}}"}}
        elif kind == "fail":
            out = {"id": sid, "type": "fail", "message": f"failed at {sid}"}
        elif kind == "human_approval":
            out = {"id": sid, "type": "human_approval", "message": f"approve {sid}?"}
            if draw(st.booleans()):
                out["timeout_seconds"] = 60
                out["on_timeout"] = draw(st.sampled_from(["fail", "cancel"]))
        elif kind == "if":
            out = {"id": sid, "type": "if", "condition": condition(draw, known, in_loop),
                   "then": block(depth + 1, in_parallel, in_loop)}
            if draw(st.booleans()):
                out["else"] = block(depth + 1, in_parallel, in_loop)
        elif kind == "loop":
            out = {"id": sid, "type": "loop", "body": []}
            if draw(st.booleans()):
                out["count"] = draw(st.integers(0, 2))
            else:
                out["while"] = {"op": "lt", "left": "{{loop.index}}",
                                "right": draw(st.integers(0, 2))}
            out["body"] = block(depth + 1, in_parallel, True)
        elif kind == "parallel":
            out = {"id": sid, "type": "parallel", "fail_fast": draw(st.booleans()),
                   "branches": [block(depth + 1, True, in_loop)
                                for _ in range(draw(st.integers(1, 3)))]}
        else:
            out = {"id": sid, "type": "retry", "max_attempts": draw(st.integers(1, 3)),
                   "delay_ms": draw(st.sampled_from([0, 20])),
                   "body": block(depth + 1, in_parallel, in_loop)}
        known.append(sid)
        return out

    steps = block(1, False, False)
    while count < 1:
        steps += block(1, False, False)
    definition: dict[str, Any] = {"version": dsl.DSL_VERSION, "steps": steps}
    if draw(st.booleans()):
        definition["output"] = {"n": "{{inputs.n}}", "word": "x{{inputs.word}}"}
    return definition


INPUTS = {"n": 2, "word": "abc", "tags": ["a", "b"]}


# -- invalid definitions: one rule broken --------------------------------------------------------


def all_steps(definition: dict[str, Any]) -> list[dict[str, Any]]:
    out = []

    def visit(steps: list[dict[str, Any]]) -> None:
        for s in steps:
            out.append(s)
            for k in ("then", "else", "body"):
                if isinstance(s.get(k), list):
                    visit(s[k])
            for branch in s.get("branches", []):
                visit(branch)

    visit(definition["steps"])
    return out


def w(i: str) -> dict[str, Any]:
    return {"id": i, "type": "wait", "seconds": 0}


def _nest(levels: int) -> dict[str, Any]:
    step: dict[str, Any] = w("zz_inner")
    for i in range(levels - 1):
        step = {"id": f"zz_if{i}", "type": "if", "then": [step],
                "condition": {"op": "eq", "left": 1, "right": 1}}
    return step


def _pick(draw: Draw, d: dict[str, Any], pred: Callable[[dict[str, Any]], bool] = lambda s: True,
          ) -> dict[str, Any]:
    candidates = [s for s in all_steps(d) if pred(s)]
    return draw(st.sampled_from(candidates))  # type: ignore[no-any-return]


def break_rule(draw: Draw, d: dict[str, Any], rule: Rule) -> str | None:
    """Break ``rule`` in ``d`` (in place); returns the step id the error should name."""
    steps = d["steps"]
    if rule is Rule.SCHEMA:
        s = _pick(draw, d)
        if draw(st.booleans()):
            s["colour"] = "red"
        else:
            s["id"] = 5  # not a string
            return None
        return str(s["id"])
    if rule is Rule.STEP_TYPE:
        s = _pick(draw, d)
        s["type"] = draw(st.sampled_from(["shell", "python", "Task", ""]))
        return str(s["id"])
    if rule is Rule.DSL_VERSION:
        d["version"] = draw(st.sampled_from(["2025-01-01", "1", ""]))
        return None
    if rule is Rule.STEP_ID_FORMAT:
        s = _pick(draw, d)
        s["id"] = draw(st.sampled_from(["has space", "dot.ted", "x" * 65, "ü", "a/b"]))
        return str(s["id"])
    if rule is Rule.STEP_ID_UNIQUE:
        s = _pick(draw, d)
        steps.append(w(s["id"]))
        return str(s["id"])
    if rule is Rule.MAX_STEPS:
        have = len(all_steps(d))
        steps.extend(w(f"zz_{i}") for i in range(dsl.MAX_STEPS + 1 - have))
        return f"zz_{dsl.MAX_STEPS - have}"
    if rule is Rule.MAX_NESTING:
        steps.append(_nest(dsl.MAX_DEPTH + 1))
        return "zz_inner"
    if rule is Rule.PARALLEL_BRANCHES:
        steps.insert(0, {"id": "zz_p", "type": "parallel",
                         "branches": [[w(f"zz_b{i}")] for i in range(
                             draw(st.integers(dsl.MAX_BRANCHES + 1, 20)))]})
        return "zz_p"
    if rule is Rule.PARALLEL_FORBIDDEN_STEP:
        bad = draw(st.sampled_from([
            {"id": "zz_bad", "type": "human_approval", "message": "m"},
            {"id": "zz_bad", "type": "succeed"}, {"id": "zz_bad", "type": "fail"}]))
        if draw(st.booleans()):
            bad = {"id": "zz_wrap", "type": "retry", "max_attempts": 1, "body": [bad]}
        steps.append({"id": "zz_p", "type": "parallel", "branches": [[w("zz_w")], [bad]]})
        return "zz_bad"
    if rule is Rule.RETRY_MAX_ATTEMPTS:
        steps.append({"id": "zz_r", "type": "retry", "body": [w("zz_w")],
                      "max_attempts": draw(st.sampled_from([0, -1, 21, 1000]))})
        return "zz_r"
    if rule is Rule.LOOP_COUNT_OR_WHILE:
        loop = {"id": "zz_l", "type": "loop", "body": [w("zz_w")]}
        if draw(st.booleans()):
            loop.update(count=1, **{"while": {"op": "eq", "left": 1, "right": 2}})
        steps.append(loop)
        return "zz_l"
    if rule is Rule.SAVE_AS_RESERVED:
        steps.append({"id": "zz_t", "type": "task", "task": "x",
                      "save_as": draw(st.sampled_from(["inputs", "vars"]))})
        return "zz_t"
    if rule is Rule.CONDITION:
        cond = draw(st.sampled_from([
            {"op": "exists", "left": "{{inputs.n}}", "right": 1},
            {"op": "eq", "left": 1},
            {"op": "between", "left": 1, "right": 2},
            {"op": "matches", "left": "a", "right": "(unclosed"},
            {"all": []}, {"expr": "n > 1"}, "n > 1",
        ]))
        steps.append({"id": "zz_a", "type": "assert", "condition": cond})
        return "zz_a"
    if rule is Rule.TEMPLATE:
        text = draw(st.sampled_from([
            "{{inputs.n", "{{env.PATH}}", "{{steps.zz_missing.status}}", "{{inputs.n + 1}}",
            "{{inputs.f()}}", "{{loop.index}}", "{{steps}}", "{{inputs.a[-1]}}"]))
        steps.append({"id": "zz_t", "type": "task", "task": f"say {text}"})
        return "zz_t"
    raise AssertionError(rule)


DEFINITION_RULES = [r for r in Rule if r not in (Rule.INPUTS_SCHEMA, Rule.MACHINE_REQUIRED)]


@st.composite
def invalid_definitions(draw: Draw) -> tuple[dict[str, Any], Rule, str | None]:
    d = copy.deepcopy(draw(definitions(max_steps=8)))
    rule = draw(st.sampled_from(DEFINITION_RULES))
    step = break_rule(draw, d, rule)
    return d, rule, step

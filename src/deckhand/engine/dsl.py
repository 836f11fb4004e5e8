"""The workflow definition language (``shared/design/WORKFLOW-DSL.md``).

A definition is data: pydantic models, steps a discriminated union on
``type``, conditions a union told apart by their keys. Nothing here runs
anything; :mod:`deckhand.engine.workflow` interprets a checked definition.

:func:`parse_definition` checks a raw definition against every rule of the
language and returns the model, or raises :class:`DefinitionInvalid` (422
``VALIDATION_ERROR``) whose message names the step and the rule broken. Each
rule has a stable name (:class:`Rule`), also given machine-readably in the
error's ``examples``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
)

from deckhand.engine import templates
from deckhand.errors import ValidationFailed

DSL_VERSION = "2026-06-01"
STEP_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_STEPS = 200
MAX_DEPTH = 8
MAX_BRANCHES = 16
RETRY_ATTEMPTS = (1, 20)
RESERVED_SAVE_AS = frozenset({"inputs", "vars"})
NOT_IN_PARALLEL = frozenset({"human_approval", "succeed", "fail"})
MAX_PATTERN_CHARS = 1000
MAX_PROBLEMS_SHOWN = 5


class Rule(str, Enum):
    """The rules a definition can break (their values appear in messages)."""

    SCHEMA = "schema"  # a field is missing, unknown, or of the wrong shape
    DSL_VERSION = "dsl_version"
    STEP_TYPE = "step_type"
    STEP_ID_FORMAT = "step_id_format"
    STEP_ID_UNIQUE = "step_id_unique"
    MAX_STEPS = "max_steps_total"
    MAX_NESTING = "max_nesting"
    PARALLEL_BRANCHES = "parallel_max_branches"
    PARALLEL_FORBIDDEN_STEP = "parallel_forbidden_step"
    RETRY_MAX_ATTEMPTS = "retry_max_attempts"
    LOOP_COUNT_OR_WHILE = "loop_count_or_while"
    SAVE_AS_RESERVED = "save_as_reserved"
    CONDITION = "condition"
    TEMPLATE = "template"
    INPUTS_SCHEMA = "inputs_schema"
    MACHINE_REQUIRED = "machine_required"


@dataclass(frozen=True)
class Problem:
    step: str | None  # the step id, or where the step is when it has no usable id
    rule: Rule
    detail: str

    def text(self) -> str:
        where = f"step {self.step!r}" if self.step else "definition"
        return f"{where} breaks rule {self.rule.value}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {"step_id": self.step, "rule": self.rule.value, "message": self.detail}


class DefinitionInvalid(ValidationFailed):
    """422 VALIDATION_ERROR naming the step and the rule (first problem first)."""

    def __init__(self, problems: Sequence[Problem], *, what: str = "workflow definition") -> None:
        assert problems
        self.problems = list(problems)
        shown = "; ".join(p.text() for p in self.problems[:MAX_PROBLEMS_SHOWN])
        more = len(self.problems) - MAX_PROBLEMS_SHOWN
        if more > 0:
            shown += f"; and {more} more"
        first = self.problems[0]
        super().__init__(
            f"Invalid {what}: {shown}.",
            examples={"step_id": first.step, "rule": first.rule.value,
                      "problems": [p.as_dict() for p in self.problems[:20]]},
        )


# -- conditions -------------------------------------------------------------------

CompareOp = Literal["eq", "ne", "gt", "gte", "lt", "lte", "contains", "not_contains",
                    "matches", "exists", "not_exists", "in", "not_in"]
UNARY_OPS = frozenset({"exists", "not_exists"})


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Compare(_Data):
    op: CompareOp
    left: Any
    right: Any = None  # absent for exists / not_exists (see model_fields_set)


class AllOf(_Data):
    all: list[Condition] = Field(min_length=1)


class AnyOf(_Data):
    any: list[Condition] = Field(min_length=1)


class NotOf(_Data):
    not_: Condition = Field(alias="not")


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return {Compare: "compare", AllOf: "all", AnyOf: "any", NotOf: "not"}.get(type(value))
    if not isinstance(value, Mapping):
        return None
    for kind in ("all", "any", "not"):
        if kind in value:
            return kind
    return "compare" if "op" in value else None


Condition = Annotated[
    Annotated[Compare, Tag("compare")] | Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")] | Annotated[NotOf, Tag("not")],
    Discriminator(_condition_kind, custom_error_type="condition_kind",
                  custom_error_message="a condition is {op, left, right}, {all: [...]}, "
                                       "{any: [...]} or {not: condition}"),
]

# -- steps ------------------------------------------------------------------------------


class _Step(_Data):
    id: str


class TaskStep(_Step):
    type: Literal["task"]
    task: str = Field(min_length=1, max_length=16000)
    machine_id: str | None = Field(default=None, min_length=1, max_length=256)
    instructions: str | None = Field(default=None, max_length=16000)
    system_prompt: str | None = Field(default=None, max_length=32000)
    max_steps: int | None = Field(default=None, ge=1, le=1000)
    deadline_seconds: int | None = Field(default=None, ge=1, le=86400)
    cua_version: Literal["v1", "v3", "v4", "v5"] | None = None
    save_as: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")


class AssertStep(_Step):
    type: Literal["assert"]
    condition: Condition
    message: str | None = Field(default=None, max_length=2000)


class IfStep(_Step):
    type: Literal["if"]
    condition: Condition
    then: list[Step] = Field(min_length=1)
    else_: list[Step] | None = Field(default=None, alias="else", min_length=1)


class LoopStep(_Step):
    type: Literal["loop"]
    count: int | None = Field(default=None, ge=0, le=100000)
    while_: Condition | None = Field(default=None, alias="while")
    body: list[Step] = Field(min_length=1)
    max_iterations: int | None = Field(default=None, ge=1, le=100000)


class ParallelStep(_Step):
    type: Literal["parallel"]
    branches: list[Annotated[list[Step], Field(min_length=1)]] = Field(min_length=1)
    fail_fast: bool = True


class HumanApprovalStep(_Step):
    type: Literal["human_approval"]
    message: str = Field(min_length=1, max_length=2000)
    timeout_seconds: int | None = Field(default=None, ge=1, le=30 * 86400)
    on_timeout: Literal["fail", "cancel"] = "fail"


class RetryStep(_Step):
    type: Literal["retry"]
    body: list[Step] = Field(min_length=1)
    max_attempts: int
    delay_ms: int = Field(default=0, ge=0, le=3_600_000)
    backoff: float = Field(default=1.0, ge=1.0, le=10.0)


class WaitStep(_Step):
    type: Literal["wait"]
    seconds: float = Field(ge=0, le=86400)


class SucceedStep(_Step):
    type: Literal["succeed"]
    output: dict[str, Any] | None = None


class FailStep(_Step):
    type: Literal["fail"]
    message: str | None = Field(default=None, max_length=2000)


Step = Annotated[
    TaskStep | AssertStep | IfStep | LoopStep | ParallelStep | HumanApprovalStep | RetryStep
    | WaitStep | SucceedStep | FailStep,
    Field(discriminator="type"),
]
STEP_TYPES = ("task", "assert", "if", "loop", "parallel", "human_approval", "retry", "wait",
              "succeed", "fail")
CONTAINERS = frozenset({"if", "loop", "parallel", "retry"})


class Definition(_Data):
    version: str = DSL_VERSION
    steps: list[Step] = Field(min_length=1)
    output: dict[str, Any] | None = None


for _model in (AllOf, AnyOf, NotOf, IfStep, LoopStep, ParallelStep, RetryStep, Definition):
    _model.model_rebuild()

AnyStep = (TaskStep | AssertStep | IfStep | LoopStep | ParallelStep | HumanApprovalStep
           | RetryStep | WaitStep | SucceedStep | FailStep)


def children(step: AnyStep) -> list[list[AnyStep]]:
    """The step lists directly inside a step (its bodies / branches)."""
    if isinstance(step, IfStep):
        return [step.then] + ([step.else_] if step.else_ else [])
    if isinstance(step, (LoopStep, RetryStep)):
        return [step.body]
    if isinstance(step, ParallelStep):
        return list(step.branches)
    return []


def walk(steps: Sequence[AnyStep]) -> Iterator[AnyStep]:
    """Every step of a tree, depth first, in document order."""
    for step in steps:
        yield step
        for block in children(step):
            yield from walk(block)


# -- checking ----------------------------------------------------------------------------

_CHILD_KEYS = ("then", "else", "body")


def _raw_children(step: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for key in _CHILD_KEYS:
        if isinstance(step.get(key), list):
            yield key, step[key]
    branches = step.get("branches")
    if isinstance(branches, list):
        for i, branch in enumerate(branches):
            if isinstance(branch, list):
                yield f"branches[{i}]", branch


def _label(step: Any, path: str) -> str:
    if isinstance(step, Mapping) and isinstance(step.get("id"), str) and step["id"]:
        return str(step["id"])[:80]
    return path


def _size_problems(raw: Mapping[str, Any]) -> list[Problem]:
    """Count and depth on the raw JSON, before the models are built (which
    bounds the work done on a hostile definition)."""
    problems: list[Problem] = []
    count = 0

    def visit(steps: list[Any], depth: int, path: str) -> None:
        nonlocal count
        for i, step in enumerate(steps):
            here = f"{path}[{i}]"
            count += 1
            if count == MAX_STEPS + 1:
                problems.append(Problem(_label(step, here), Rule.MAX_STEPS,
                                        f"a definition has at most {MAX_STEPS} steps in all"))
            if depth > MAX_DEPTH:
                problems.append(Problem(_label(step, here), Rule.MAX_NESTING,
                                        f"steps nest at most {MAX_DEPTH} levels deep "
                                        f"(this one is at level {depth})"))
                continue
            if isinstance(step, Mapping):
                for key, block in _raw_children(step):
                    visit(block, depth + 1, f"{here}.{key}")

    if isinstance(raw.get("steps"), list):
        visit(raw["steps"], 1, "steps")
    return problems


def _fmt(parts: Sequence[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")


def _at_step(parts: Sequence[str | int]) -> bool:
    """Whether a location (of keys and indexes) is a step's position."""
    if len(parts) >= 2 and isinstance(parts[-1], int):
        if parts[-2] in ("steps", "then", "else", "body"):
            return True
        return len(parts) >= 3 and isinstance(parts[-2], int) and parts[-3] == "branches"
    return False


def _schema_problems(raw: Mapping[str, Any], exc: ValidationError) -> list[Problem]:
    out = []
    for err in exc.errors():
        node: Any = raw
        parts: list[str | int] = []
        step_at = -1
        step_node: Any = None
        tag: Any = None  # a union's tag comes right after the value it tells apart
        for part in err["loc"]:
            if tag is not None and part == tag:
                tag = None
                continue
            tag = None
            if isinstance(node, Mapping) and isinstance(part, str) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
            elif isinstance(part, str):
                parts.append(part)  # a field that is missing
                continue
            else:
                continue
            parts.append(part)
            if _at_step(parts):
                step_at, step_node = len(parts), node
                tag = node.get("type") if isinstance(node, Mapping) else None
            elif isinstance(node, Mapping):
                tag = _condition_kind(node)
        label = _label(step_node, _fmt(parts[:step_at])) if step_at >= 0 else None
        field = parts[step_at:] if step_at >= 0 else parts
        where = _fmt(field)
        kind = err["type"]
        if kind in ("union_tag_invalid", "union_tag_not_found") and "type" in str(
                (err.get("ctx") or {}).get("discriminator", "")):
            got = node.get("type") if isinstance(node, Mapping) else None
            rule = Rule.STEP_TYPE
            detail = (f"type must be one of {', '.join(STEP_TYPES)}"
                      + (f" (got {got!r})" if got is not None else " (missing)"))
        elif field and field[0] in ("condition", "while"):
            rule, detail = Rule.CONDITION, f"{where}: {err['msg']}"
        else:
            rule, detail = Rule.SCHEMA, f"{where or 'definition'}: {err['msg']}"
        out.append(Problem(label, rule, detail))
    return out


def _template_problems(step: str | None, value: Any, ids: set[str], in_loop: bool,
                       field: str) -> list[Problem]:
    out = []
    for text in templates.strings_in(value):
        try:
            paths = templates.paths_in(text)
        except templates.TemplateError as exc:
            out.append(Problem(step, Rule.TEMPLATE, f"{field}: {exc}"))
            continue
        for path in paths:
            problem = _path_problem(path, ids, in_loop)
            if problem:
                out.append(Problem(step, Rule.TEMPLATE, f"{field}: {problem}"))
    return out


STEP_FIELDS = frozenset({"status", "result", "error", "run_id"})


def _path_problem(path: templates.Path, ids: set[str], in_loop: bool) -> str | None:
    root = path.parts[0]
    if root not in templates.ROOTS:
        return (f"{{{{{path.text}}}}} starts with {root!r}; a template starts with "
                f"{', '.join(templates.ROOTS)}")
    if len(path.parts) < 2:
        return f"{{{{{path.text}}}}} names no value under {root!r}"
    if root == "loop":
        if path.parts[1:] != ("index",):
            return f"{{{{{path.text}}}}}: the only loop value is loop.index"
        if not in_loop:
            return f"{{{{{path.text}}}}} is used outside a loop body"
    if root == "steps":
        if path.parts[1] not in ids:
            return f"{{{{{path.text}}}}} refers to step {path.parts[1]!r}, which does not exist"
        if len(path.parts) < 3 or path.parts[2] not in STEP_FIELDS:
            return (f"{{{{{path.text}}}}}: a step's values are "
                    f"{', '.join(sorted(STEP_FIELDS))}")
    return None


def _condition_problems(step: str, cond: Any, ids: set[str], in_loop: bool,
                        field: str) -> list[Problem]:
    out: list[Problem] = []
    if isinstance(cond, AllOf | AnyOf):
        for i, c in enumerate(cond.all if isinstance(cond, AllOf) else cond.any):
            out += _condition_problems(step, c, ids, in_loop, f"{field}[{i}]")
        return out
    if isinstance(cond, NotOf):
        return _condition_problems(step, cond.not_, ids, in_loop, f"{field}.not")
    assert isinstance(cond, Compare)
    has_right = "right" in cond.model_fields_set
    if cond.op in UNARY_OPS and has_right:
        out.append(Problem(step, Rule.CONDITION, f"{field}: {cond.op} takes only left"))
    if cond.op not in UNARY_OPS and not has_right:
        out.append(Problem(step, Rule.CONDITION, f"{field}: {cond.op} needs right"))
    if cond.op == "matches" and has_right:
        pattern = cond.right
        if not isinstance(pattern, str):
            out.append(Problem(step, Rule.CONDITION,
                               f"{field}: matches takes a regular expression (a string)"))
        elif len(pattern) > MAX_PATTERN_CHARS:
            out.append(Problem(step, Rule.CONDITION,
                               f"{field}: a pattern has at most {MAX_PATTERN_CHARS} characters"))
        elif not templates.has_template(pattern):
            try:
                re.compile(pattern)
            except re.error as exc:
                out.append(Problem(step, Rule.CONDITION,
                                   f"{field}: invalid regular expression: {exc}"))
    out += _template_problems(step, cond.left, ids, in_loop, f"{field}.left")
    if has_right:
        out += _template_problems(step, cond.right, ids, in_loop, f"{field}.right")
    return out


_TEMPLATED = {
    "task": ("task", "machine_id", "instructions", "system_prompt"),
    "assert": ("message",),
    "human_approval": ("message",),
    "fail": ("message",),
    "succeed": ("output",),
}


def _rule_problems(definition: Definition) -> list[Problem]:
    problems: list[Problem] = []
    ids = {s.id for s in walk(definition.steps)}
    seen: set[str] = set()
    if definition.version != DSL_VERSION:
        problems.append(Problem(None, Rule.DSL_VERSION,
                                f"version must be {DSL_VERSION!r} (got {definition.version!r})"))

    def visit(steps: Sequence[AnyStep], in_parallel: str | None, in_loop: bool) -> None:
        for s in steps:
            if not STEP_ID_RE.match(s.id):
                problems.append(Problem(s.id[:80] or "(empty)", Rule.STEP_ID_FORMAT,
                                        "a step id matches ^[A-Za-z0-9_-]{1,64}$"))
            if s.id in seen:
                problems.append(Problem(s.id, Rule.STEP_ID_UNIQUE,
                                        "step ids are unique across the whole definition"))
            seen.add(s.id)
            if in_parallel and s.type in NOT_IN_PARALLEL:
                problems.append(Problem(s.id, Rule.PARALLEL_FORBIDDEN_STEP,
                                        f"a {s.type} step cannot be inside a parallel branch "
                                        f"(parallel {in_parallel!r})"))
            for name in _TEMPLATED.get(s.type, ()):
                problems.extend(_template_problems(s.id, getattr(s, name), ids, in_loop, name))
            if isinstance(s, TaskStep) and s.save_as in RESERVED_SAVE_AS:
                problems.append(Problem(s.id, Rule.SAVE_AS_RESERVED,
                                        f"save_as cannot be {s.save_as!r}"))
            if isinstance(s, AssertStep | IfStep):
                problems.extend(_condition_problems(s.id, s.condition, ids, in_loop,
                                                    "condition"))
            if isinstance(s, LoopStep):
                if (s.count is None) == (s.while_ is None):
                    problems.append(Problem(s.id, Rule.LOOP_COUNT_OR_WHILE,
                                            "a loop has exactly one of count or while"))
                if s.while_ is not None:
                    problems.extend(_condition_problems(s.id, s.while_, ids, True, "while"))
            if isinstance(s, RetryStep) and not (
                    RETRY_ATTEMPTS[0] <= s.max_attempts <= RETRY_ATTEMPTS[1]):
                problems.append(Problem(s.id, Rule.RETRY_MAX_ATTEMPTS,
                                        f"max_attempts is {RETRY_ATTEMPTS[0]}-"
                                        f"{RETRY_ATTEMPTS[1]} (got {s.max_attempts})"))
            if isinstance(s, ParallelStep) and len(s.branches) > MAX_BRANCHES:
                problems.append(Problem(s.id, Rule.PARALLEL_BRANCHES,
                                        f"a parallel has at most {MAX_BRANCHES} branches "
                                        f"(got {len(s.branches)})"))
            inner_parallel = s.id if isinstance(s, ParallelStep) else in_parallel
            for block in children(s):
                visit(block, inner_parallel, in_loop or isinstance(s, LoopStep))

    visit(definition.steps, None, False)
    if definition.output is not None:
        problems.extend(_template_problems(None, definition.output, ids, False, "output"))
    return problems


def parse_definition(raw: Any) -> Definition:
    """The checked definition, or :class:`DefinitionInvalid`."""
    if not isinstance(raw, Mapping):
        raise DefinitionInvalid([Problem(None, Rule.SCHEMA, "a definition is a JSON object")])
    problems = _size_problems(raw)
    if problems:
        raise DefinitionInvalid(problems)
    try:
        definition = Definition.model_validate(raw)
    except ValidationError as exc:
        raise DefinitionInvalid(_schema_problems(raw, exc)) from None
    problems = _rule_problems(definition)
    if problems:
        raise DefinitionInvalid(problems)
    return definition


def check_inputs_schema(schema: Any) -> None:
    """An ``inputs_schema`` must itself be a valid JSON Schema."""
    if schema is None:
        return
    from jsonschema import Draft202012Validator, SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise DefinitionInvalid(
            [Problem(None, Rule.INPUTS_SCHEMA,
                     f"inputs_schema is not a valid JSON Schema: {exc.message}")],
            what="inputs_schema") from None


def check_inputs(schema: Any, inputs: Mapping[str, Any]) -> None:
    """``inputs`` against the workflow's ``inputs_schema`` (when it has one)."""
    if schema is None:
        return
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(dict(inputs)),
                    key=lambda e: list(e.absolute_path))
    if errors:
        problems = [Problem(None, Rule.INPUTS_SCHEMA,
                            f"inputs{''.join(f'[{p!r}]' for p in e.absolute_path)}: {e.message}")
                    for e in errors]
        raise DefinitionInvalid(problems, what="inputs")


def check_machines(definition: Definition, default_machine: str | None) -> None:
    """Every task step needs a machine: its own ``machine_id`` or the run's."""
    if default_machine:
        return
    missing = [Problem(s.id, Rule.MACHINE_REQUIRED,
                       "a task step needs machine_id, on the step or in the run request")
               for s in walk(definition.steps)
               if isinstance(s, TaskStep) and not s.machine_id]
    if missing:
        raise DefinitionInvalid(missing, what="workflow run")


def has_tasks(definition: Definition) -> bool:
    return any(isinstance(s, TaskStep) for s in walk(definition.steps))

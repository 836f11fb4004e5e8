"""Templates and conditions: pure path lookups over JSON data."""

from __future__ import annotations

from typing import Any

import pytest

from deckhand.engine.dsl import AllOf, AnyOf, Compare, NotOf
from deckhand.engine.templates import (
    ConditionError,
    MissingPath,
    TemplateError,
    evaluate,
    parse_path,
    paths_in,
    render,
    render_text,
)

SCOPE: dict[str, Any] = {
    "inputs": {"site": "example.org", "n": 3, "flag": True, "tags": ["a", "b"],
               "nested": {"k": [10, {"deep": "yes"}]}, "nothing": None},
    "steps": {"login": {"status": "succeeded", "result": {"answer": "ok", "count": 7},
                        "error": None, "run_id": "r-1"}},
    "vars": {"report": {"rows": [1, 2, 3]}},
    "loop": {"index": 2},
}


@pytest.mark.parametrize(("template", "value"), [
    ("{{inputs.site}}", "example.org"),
    ("{{inputs.n}}", 3),  # the whole string: the value keeps its type
    ("{{ inputs.flag }}", True),
    ("{{inputs.tags}}", ["a", "b"]),
    ("{{inputs.tags.1}}", "b"),
    ("{{inputs.tags[0]}}", "a"),
    ("{{inputs.nested.k[1].deep}}", "yes"),
    ("{{inputs.nothing}}", None),
    ("{{steps.login.result.count}}", 7),
    ("{{steps.login.status}}", "succeeded"),
    ("{{vars.report.rows[2]}}", 3),
    ("{{loop.index}}", 2),
])
def test_whole_string_keeps_type(template: str, value: Any) -> None:
    assert render(template, SCOPE) == value


def test_inside_text_renders_as_text() -> None:
    assert render("go to {{inputs.site}} {{inputs.n}} times", SCOPE) == "go to example.org 3 times"
    assert render("{{inputs.flag}}/{{inputs.nothing}}", SCOPE) == "true/null"
    assert render("tags={{inputs.tags}}", SCOPE) == 'tags=["a","b"]'
    assert render_text("{{inputs.n}}", SCOPE) == "3"
    assert render_text(None, SCOPE) is None


def test_render_recurses_into_objects_and_lists() -> None:
    out = render({"a": ["{{inputs.n}}", {"b": "x{{loop.index}}"}], "c": 1, "d": None}, SCOPE)
    assert out == {"a": [3, {"b": "x2"}], "c": 1, "d": None}


def test_text_without_templates_is_untouched() -> None:
    text = '{"script": [{"outcome": {"success": true}}]}'  # JSON braces are not templates
    assert render(text, SCOPE) == text
    assert paths_in(text) == []


@pytest.mark.parametrize("template", [
    "{{inputs.missing}}", "{{inputs.tags.5}}", "{{inputs.tags[9]}}", "{{inputs.site.length}}",
    "{{steps.other.status}}", "{{inputs.nested.k.x}}", "{{inputs.n.real}}",
    # no attribute access, however it is spelled
    "{{inputs.__class__}}", "{{inputs.tags.__len__}}", "{{vars.report.keys}}",
])
def test_missing_path_names_the_path(template: str) -> None:
    with pytest.raises(MissingPath) as exc:
        render(f"x {template}", SCOPE)
    assert template in str(exc.value)
    with pytest.raises(MissingPath):
        render(template, SCOPE)


@pytest.mark.parametrize("text", [
    "{{inputs.a", "{{ }}", "{{inputs.a + 1}}", "{{inputs.a()}}", "{{inputs['a']}}",
    "{{inputs.a|upper}}", "{{inputs.a[-1]}}", "{{ {{inputs.a}} }}", "{{inputs..a}}",
])
def test_malformed_templates(text: str) -> None:
    with pytest.raises(TemplateError):
        paths_in(text)


def test_paths() -> None:
    assert parse_path(" steps.a.result[0].x ").parts == ("steps", "a", "result", 0, "x")
    assert [p.text for p in paths_in("{{inputs.a}} and {{vars.b.c}}")] == ["inputs.a", "vars.b.c"]


def cmp(op: str, left: Any, right: Any = ..., ) -> Compare:
    if right is ...:
        return Compare(op=op, left=left)  # type: ignore[arg-type]
    return Compare(op=op, left=left, right=right)  # type: ignore[arg-type]


@pytest.mark.parametrize(("condition", "expected"), [
    (cmp("eq", "{{steps.login.status}}", "succeeded"), True),
    (cmp("eq", "{{inputs.n}}", 3), True),
    (cmp("eq", "{{inputs.n}}", "3"), False),  # no coercion
    (cmp("eq", "{{inputs.flag}}", 1), False),  # booleans are not numbers
    (cmp("eq", 1, 1.0), True),
    (cmp("eq", "{{inputs.tags}}", ["a", "b"]), True),
    (cmp("ne", "{{inputs.site}}", "x"), True),
    (cmp("gt", "{{inputs.n}}", 2), True),
    (cmp("gte", "{{inputs.n}}", 3), True),
    (cmp("lt", "{{loop.index}}", 2), False),
    (cmp("lte", "b", "b"), True),
    (cmp("contains", "{{inputs.site}}", "example"), True),
    (cmp("contains", "{{inputs.tags}}", "b"), True),
    (cmp("contains", "{{inputs.nested}}", "k"), True),
    (cmp("not_contains", "{{inputs.tags}}", "z"), True),
    (cmp("in", "a", "{{inputs.tags}}"), True),
    (cmp("not_in", "{{inputs.n}}", [1, 2]), True),
    (cmp("matches", "{{inputs.site}}", r"^ex\w+\.org$"), True),
    (cmp("matches", "abc", "^b"), False),
    (cmp("exists", "{{inputs.site}}"), True),
    (cmp("exists", "{{inputs.nothing}}"), True),
    (cmp("exists", "{{inputs.nope}}"), False),
    (cmp("not_exists", "{{steps.nope.status}}"), True),
    (AllOf(all=[cmp("eq", 1, 1), cmp("eq", 2, 2)]), True),
    (AllOf(all=[cmp("eq", 1, 1), cmp("eq", 2, 3)]), False),
    (AnyOf(any=[cmp("eq", 1, 2), cmp("eq", 2, 2)]), True),
    (NotOf.model_validate({"not": {"op": "eq", "left": 1, "right": 2}}), True),
])
def test_conditions(condition: Any, expected: bool) -> None:
    assert evaluate(condition, SCOPE) is expected


def test_combinators_short_circuit() -> None:
    # the second operand would raise (missing path); all/any stop before it
    assert evaluate(AllOf(all=[cmp("eq", 1, 2), cmp("eq", "{{inputs.x}}", 1)]), SCOPE) is False
    assert evaluate(AnyOf(any=[cmp("eq", 1, 1), cmp("eq", "{{inputs.x}}", 1)]), SCOPE) is True


@pytest.mark.parametrize("condition", [
    cmp("gt", "{{inputs.site}}", 3),
    cmp("lt", "{{inputs.tags}}", 3),
    cmp("contains", "{{inputs.n}}", 3),
    cmp("contains", "{{inputs.site}}", 3),
    cmp("matches", "{{inputs.n}}", "3"),
    cmp("matches", "x", "{{inputs.n}}"),
    cmp("matches", "x", "{{vars.report.rows}}"),
])
def test_condition_type_errors(condition: Any) -> None:
    with pytest.raises(ConditionError):
        evaluate(condition, SCOPE)


def test_templated_pattern_is_compiled_at_evaluation() -> None:
    scope = {**SCOPE, "inputs": {"p": "(", "q": "^ex"}}
    with pytest.raises(ConditionError, match="invalid regular expression"):
        evaluate(cmp("matches", "x", "{{inputs.p}}"), scope)
    assert evaluate(cmp("matches", "example", "{{inputs.q}}"), scope) is True


def test_missing_path_in_a_comparison_raises() -> None:
    with pytest.raises(MissingPath):
        evaluate(cmp("eq", "{{inputs.zz}}", 1), SCOPE)

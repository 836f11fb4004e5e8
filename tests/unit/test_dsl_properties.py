"""Property-based tests of the language (hypothesis): random valid definitions
within the limits are accepted; random invalid ones — a valid one with one
rule broken — are refused naming that rule. The strategies live in
tests/support/dsl_strategies.py, shared with the integration tests, which run
the valid ones."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deckhand.engine import dsl
from deckhand.engine.dsl import DefinitionInvalid, Rule, parse_definition
from tests.support.dsl_strategies import all_steps, definitions, invalid_definitions

# -- the properties --------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definitions(max_steps=30, max_depth=dsl.MAX_DEPTH))
def test_valid_definitions_are_accepted(d: dict[str, Any]) -> None:
    parsed = parse_definition(d)
    assert len(list(dsl.walk(parsed.steps))) == len(all_steps(d))
    # the model round-trips to the same definition
    again = parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert parse_definition(again) == parsed


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invalid_definitions())
def test_invalid_definitions_are_refused_naming_the_rule(
        case: tuple[dict[str, Any], Rule, str | None]) -> None:
    d, rule, step = case
    try:
        parse_definition(d)
    except DefinitionInvalid as exc:
        problems = exc.examples["problems"]  # type: ignore[index]
        assert rule.value in [p["rule"] for p in problems], (rule, exc.message)
        if step is not None:
            assert any(p["rule"] == rule.value and p["step_id"] == step for p in problems), (
                step, exc.message)
        assert f"rule {rule.value}" in exc.message or len(problems) > dsl.MAX_PROBLEMS_SHOWN
    else:
        raise AssertionError(f"accepted a definition breaking {rule.value}")


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(["id", "type", "steps", "body", "then",
                                                       "task", "op", "left", "branches"]),
                                      inner, max_size=4),
                    max_leaves=20))
@settings(max_examples=300, deadline=None)
def test_arbitrary_json_never_crashes_the_checker(raw: Any) -> None:
    try:
        parse_definition({"steps": [raw]} if not isinstance(raw, dict) else raw)
    except DefinitionInvalid as exc:
        assert exc.examples and exc.examples["rule"] in {r.value for r in Rule}

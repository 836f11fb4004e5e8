"""MCP tools whose arguments are a request body's fields, flat.

An MCP client (Claude Desktop, Cursor, the MCP Inspector) shows a tool's
input schema and calls it with the names it sees. A tool declared as
``start_run(run: RunRequest)`` makes every caller nest its fields inside
``run``; one declared with :func:`body_tool` takes the contract's field names
(``machine_id``, ``task``, ``max_steps``) as top-level arguments, each with
the request model's type, limits, default and description, so the schema the
client sees is the API's own.

The SDK reads a tool's parameters from its signature (and the context
parameter from its annotations), so the wrapper publishes both; the API
request model stays the one place the fields are written.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

R = TypeVar("R")

#: A tool's own code: the call's context, the request body (fields the caller
#: left unset are absent) and the tool's other arguments (path ids, options).
BodyHandler = Callable[..., Awaitable[R]]


def arg(name: str, annotation: Any, description: str,
        default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    """A tool argument that is not a body field (a path id, an option)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[annotation, Field(description=description)])


def body_fields(model: type[BaseModel]) -> list[inspect.Parameter]:
    """The model's fields as keyword arguments: type, limits, description, default."""
    params = []
    for name, field in model.model_fields.items():
        annotation = Annotated[(field.annotation, *field.metadata,
                                Field(description=field.description))]
        default = (inspect.Parameter.empty if field.is_required()
                   else field.get_default(call_default_factory=True))
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                        default=default, annotation=annotation))
    return params


def body_tool(model: type[BaseModel], *, before: Sequence[inspect.Parameter] = (),
              after: Sequence[inspect.Parameter] = (),
              returns: Any = dict[str, Any]) -> Callable[[BodyHandler[R]], Callable[..., Any]]:
    """Wrap ``handler(ctx, body, **others)`` as a tool whose arguments are
    ``before``, then ``model``'s fields, then ``after``.

    ``body`` holds the fields the caller gave or that have a non-null default,
    in the API's JSON form, ready to send; the API validates it as it would
    any client's body.
    """
    fields = body_fields(model)
    taken = {p.name for p in fields}
    clash = taken & {p.name for p in (*before, *after)}
    if clash:
        raise ValueError(f"{model.__name__} fields clash with tool arguments: {sorted(clash)}")

    def decorate(handler: BodyHandler[R]) -> Callable[..., Any]:
        async def tool(**kwargs: Any) -> Any:
            ctx = kwargs.pop("ctx")
            values = {name: kwargs.pop(name) for name in taken if name in kwargs}
            body = model.model_construct(**values).model_dump(mode="json", exclude_none=True)
            return await handler(ctx, body, **kwargs)

        params = [*before, *fields, *after,
                  inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)]
        tool.__name__ = handler.__name__
        tool.__qualname__ = handler.__qualname__
        tool.__doc__ = handler.__doc__
        tool.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            params, return_annotation=returns)
        tool.__annotations__ = {**{p.name: p.annotation for p in params}, "return": returns}
        return tool

    return decorate

"""What an agent can do to a machine in one step, and what came of it.

Actions are data (a pydantic discriminated union on ``kind``) so that a step
record can store them as JSON and a crashed run can be rebuilt from them.
Execution lives in the machine layer; results are frozen values.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class _Action(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RunCommand(_Action):
    """Run a shell command in the machine's persistent terminal session."""

    kind: Literal["terminal"] = "terminal"
    command: str
    session_id: str | None = None
    cwd: str | None = None
    timeout_ms: int = 120_000


class WriteFile(_Action):
    kind: Literal["write_file"] = "write_file"
    path: str
    content: str


class ReadFile(_Action):
    kind: Literal["read_file"] = "read_file"
    path: str


class Wait(_Action):
    kind: Literal["wait"] = "wait"
    seconds: float = Field(ge=0, le=3600)


Action = Annotated[Union[RunCommand, WriteFile, ReadFile, Wait], Field(discriminator="kind")]


class ActionResult(BaseModel):
    """The outcome of one action. ``ok`` is False when the action itself failed
    (a missing file, a machine error); a command that exits non-zero is still
    ``ok`` — its exit code is data for the brain."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    output: str = ""
    exit_code: int | None = None
    error: str | None = None
    duration_ms: int = 0
    data: dict[str, Any] = Field(default_factory=dict)

"""What the agent sees of a machine: its screen, when it has one."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Observation(BaseModel):
    """What the agent sees before deciding: the screen, when the machine has one."""

    model_config = ConfigDict(frozen=True)

    screenshot_jpeg: bytes
    width: int
    height: int

"""Recovery (cua_version v5): notice when the agent repeats the same actions
and the screen does not change, and tell the brain to re-plan.

The check is a pure function of the context: the last :data:`REPEATS` steps
did the same actions, and the screen before each of them and the screen now
look the same (a small grey thumbnail, so a blinking cursor or a re-encoded
JPEG does not count as a change).
"""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict

from deckhand.core.actions import Screenshot, Wait
from deckhand.core.describe import describe
from deckhand.core.screens import Observation
from deckhand.core.steps import AgentContext

REPEATS = 3
THUMB = (32, 20)
SAME_SCREEN_MEAN_DIFF = 2.0  # mean absolute grey difference (0–255) under which screens match


def with_recovery_hint(context: AgentContext) -> AgentContext:
    """The context with :attr:`AgentContext.hint` set when the agent is stuck (v5 only)."""
    if context.cua_version != "v5":
        return context
    hint = stuck_hint(context)
    if hint is None:
        return context
    merged = f"{context.hint}\n{hint}" if context.hint else hint
    return context.model_copy(update={"hint": merged})


def stuck_hint(context: AgentContext) -> str | None:
    steps = context.steps[-REPEATS:]
    if len(steps) < REPEATS or context.observation is None:
        return None
    first = steps[0].decision.actions
    if not first or all(isinstance(a, (Wait, Screenshot)) for a in first):
        return None
    if any(s.decision.actions != first or s.observation is None for s in steps):
        return None
    screens = [s.observation for s in steps if s.observation is not None] + [context.observation]
    if not all(same_screen(screens[0], other) for other in screens[1:]):
        return None
    what = "; ".join(describe(a) for a in first)
    return (
        f"The last {REPEATS} steps each did the same thing ({what}) and the screen did not "
        "change. Doing it again will not help. Re-plan: look at the screen again, consider "
        "what is really in front of you, and try a different approach (another element, the "
        "keyboard instead of the mouse, scrolling, or a different route to the goal). If you "
        "are truly blocked, call request_human."
    )


def same_screen(a: Observation, b: Observation) -> bool:
    if a.screenshot_jpeg == b.screenshot_jpeg:
        return True
    if (a.width, a.height) != (b.width, b.height):
        return False
    ta, tb = _thumb(a.screenshot_jpeg), _thumb(b.screenshot_jpeg)
    if ta is None or tb is None:
        return False
    diff = sum(abs(x - y) for x, y in zip(ta, tb, strict=False)) / len(ta)
    return diff < SAME_SCREEN_MEAN_DIFF


_thumbs: OrderedDict[bytes, bytes | None] = OrderedDict()
_THUMBS_CACHED = 64


def _thumb(data: bytes) -> bytes | None:
    from PIL import Image, UnidentifiedImageError

    digest = hashlib.sha1(data).digest()
    if digest in _thumbs:
        _thumbs.move_to_end(digest)
        return _thumbs[digest]
    try:
        with Image.open(io.BytesIO(data)) as img:
            grey = img.convert("L").resize(THUMB, Image.Resampling.BILINEAR)
            thumb: bytes | None = grey.tobytes()
    except (UnidentifiedImageError, OSError):
        thumb = None
    _thumbs[digest] = thumb
    if len(_thumbs) > _THUMBS_CACHED:
        _thumbs.popitem(last=False)
    return thumb

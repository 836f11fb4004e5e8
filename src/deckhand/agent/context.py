"""What a model brain is shown: the screen scaled for the model, the steps so
far rendered as a history, and the compaction that keeps a long run inside
the model's context (cua_version v5).

Screens. A model sees the screenshot resized to fit a box (1280×800 by
default, never enlarged); it answers in that image's pixels, and
:meth:`ModelScreen.to_real` maps its coordinates back to the machine's real
resolution (``Observation.width × height``).

History. Each recorded step becomes a :class:`Turn` with the screen the agent
saw after it (the next step's observation, or the current one). Screens of
old steps are only in memory (:data:`OBSERVATIONS_KEPT`); a run rebuilt after a
crash has the current screen only, which is all a brain needs to go on.
With v5 only the last :attr:`Policy.keep_turns` steps are shown in full and
only the last :attr:`Policy.keep_images` screens as images; older steps
become one line each in a summary bounded by :attr:`Policy.summary_chars`,
so a 300-step run costs about what a 20-step one does.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from deckhand.core.actions import (
    Action,
    ActionResult,
    Click,
    ClickText,
    Drag,
    KeyPress,
    MoveMouse,
    OpenUrl,
    ReadFile,
    RunCommand,
    Screenshot,
    Scroll,
    TypeText,
    Wait,
    WriteFile,
)
from deckhand.core.screens import Observation
from deckhand.core.steps import AgentContext, StepRecord

MODEL_SCREEN_BOX = (1280, 800)
OBSERVATIONS_KEPT = 8  # recent steps whose screens stay in memory for the history
RESULT_CHARS = 4000  # a tool result's text shown to a model (the tail)

DEFAULT_SYSTEM_PROMPT = (
    "You are Deckhand, an agent that completes tasks on a Linux computer by using the tools "
    "you are given. Work step by step: look at the screen and the results of your previous "
    "actions before acting again. When the task is complete, answer with a short final "
    "message that states the result, without calling a tool. If you cannot go on without a "
    "person (credentials, an approval, a CAPTCHA, a decision only they can make), call "
    "request_human with a clear question."
)
REQUEST_HUMAN_DESCRIPTION = (
    "Ask a human for help or approval and wait for the answer. Use it when you cannot go on "
    "without a person: credentials, a CAPTCHA, an irreversible or sensitive action to "
    "approve, or a choice only they can make."
)


# --------------------------------------------------------------------------- screens


@dataclass(frozen=True)
class ModelScreen:
    """A screenshot as a model sees it, and the map back to the real screen."""

    data: bytes
    media_type: str
    width: int  # the image the model sees
    height: int
    real_width: int  # the coordinate space actions are in
    real_height: int

    @property
    def b64(self) -> str:
        return base64.b64encode(self.data).decode()

    @property
    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{self.b64}"

    def to_real(self, x: float, y: float) -> tuple[int, int]:
        """Model-image pixels → real screen pixels (clamped onto the screen)."""
        rx = round(float(x) * self.real_width / self.width)
        ry = round(float(y) * self.real_height / self.height)
        return (min(max(rx, 0), self.real_width - 1), min(max(ry, 0), self.real_height - 1))

    def to_model(self, x: float, y: float) -> tuple[int, int]:
        return (round(float(x) * self.width / self.real_width),
                round(float(y) * self.height / self.real_height))


def media_type(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "application/octet-stream"


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG/JPEG/WebP/GIF; ValueError when it is not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError("not a PNG, JPEG, WebP or GIF image") from exc


def fit(width: int, height: int, box: tuple[int, int] = MODEL_SCREEN_BOX) -> tuple[int, int]:
    """The size of a width×height image scaled down (never up) to fit ``box``."""
    scale = min(1.0, box[0] / width, box[1] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


_screens: OrderedDict[tuple[str, int, int, int, int], ModelScreen] = OrderedDict()
_SCREENS_CACHED = 32


def model_screen(obs: Observation, box: tuple[int, int] = MODEL_SCREEN_BOX) -> ModelScreen:
    """``obs`` resized for a model (cached: the same screen is shown on several calls)."""
    digest = hashlib.sha1(obs.screenshot_jpeg).hexdigest()
    key = (digest, obs.width, obs.height, *box)
    found = _screens.get(key)
    if found is not None:
        _screens.move_to_end(key)
        return found
    screen = _prepare(obs, box)
    _screens[key] = screen
    if len(_screens) > _SCREENS_CACHED:
        _screens.popitem(last=False)
    return screen


def _prepare(obs: Observation, box: tuple[int, int]) -> ModelScreen:
    from PIL import Image

    data = obs.screenshot_jpeg
    kind = media_type(data)
    true_w, true_h = image_size(data)
    w, h = fit(true_w, true_h, box)
    if (w, h) != (true_w, true_h) or kind not in ("image/png", "image/jpeg"):
        with Image.open(io.BytesIO(data)) as img:
            small = img.convert("RGB").resize((w, h), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        small.save(out, format="JPEG", quality=80)
        data, kind = out.getvalue(), "image/jpeg"
    return ModelScreen(data=data, media_type=kind, width=w, height=h,
                       real_width=obs.width, real_height=obs.height)


# --------------------------------------------------------------------------- keys

_KEY_NAMES = {
    "enter": "Return", "return": "Return", "esc": "Escape", "escape": "Escape",
    "tab": "Tab", "space": "space", "backspace": "BackSpace", "delete": "Delete",
    "del": "Delete", "insert": "Insert", "home": "Home", "end": "End",
    "pageup": "Page_Up", "page_up": "Page_Up", "pgup": "Page_Up",
    "pagedown": "Page_Down", "page_down": "Page_Down", "pgdn": "Page_Down",
    "up": "Up", "down": "Down", "left": "Left", "right": "Right",
    "arrowup": "Up", "arrowdown": "Down", "arrowleft": "Left", "arrowright": "Right",
    "ctrl": "ctrl", "control": "ctrl", "shift": "shift", "alt": "alt", "option": "alt",
    "cmd": "super", "command": "super", "win": "super", "super": "super", "meta": "super",
    "capslock": "Caps_Lock", "printscreen": "Print",
}


def xdotool_key(name: str) -> str:
    """One key in the machine's (xdotool) naming; pyautogui, OpenAI and xdotool
    spellings are accepted."""
    stripped = name.strip()
    low = stripped.lower()
    if low in _KEY_NAMES:
        return _KEY_NAMES[low]
    if len(low) in (2, 3) and low[0] == "f" and low[1:].isdigit():
        return low.upper()
    return stripped


def xdotool_keys(keys: Sequence[str]) -> str:
    """A combination (``["CTRL", "s"]`` → ``ctrl+s``)."""
    return "+".join(xdotool_key(k) for k in keys)


# --------------------------------------------------------------------------- history


@dataclass(frozen=True)
class Policy:
    keep_turns: int | None  # steps shown in full (None: all)
    keep_images: int  # screens shown as images, the current one included
    summary_chars: int  # the summary of older steps keeps its newest lines within this


def policy_for(cua_version: str) -> Policy:
    if cua_version == "v5":
        return Policy(keep_turns=16, keep_images=3, summary_chars=6000)
    return Policy(keep_turns=None, keep_images=OBSERVATIONS_KEPT, summary_chars=6000)


@dataclass(frozen=True)
class Turn:
    step: StepRecord
    screen_after: Observation | None  # shown as an image when kept, else None


@dataclass(frozen=True)
class History:
    summary: str | None  # the older steps, one line each
    turns: tuple[Turn, ...]
    screen: Observation | None  # the screen now


def history(context: AgentContext, policy: Policy | None = None) -> History:
    policy = policy or policy_for(context.cua_version)
    steps = context.steps
    cut = 0 if policy.keep_turns is None else max(0, len(steps) - policy.keep_turns)
    # steps a brain cannot replay as its own turns (no provider data: a trajectory sent
    # to /v1/predict, or another brain's steps) go to the summary too
    while cut < len(steps) and steps[cut].decision.provider_data is None:
        cut += 1
    lines = [step_line(s) for s in steps[:cut]]
    summary = _bounded(lines, policy.summary_chars) if lines else None
    turns = []
    kept = steps[cut:]
    for i, step in enumerate(kept):
        after_index = cut + i + 1
        after = steps[after_index].observation if after_index < len(steps) else context.observation
        image_rank = len(kept) - i  # 1 = the latest turn
        turns.append(Turn(step=step, screen_after=after if image_rank <= policy.keep_images
                          else None))
    return History(summary=summary, turns=tuple(turns), screen=context.observation)


def _bounded(lines: list[str], limit: int) -> str:
    out: list[str] = []
    used = 0
    for line in reversed(lines):
        if used + len(line) + 1 > limit:
            out.append(f"… {len(lines) - len(out)} earlier steps omitted")
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(reversed(out))


def step_line(step: StepRecord) -> str:
    """One line for a step: what it did and how that went."""
    d = step.decision
    parts = []
    for action, result in zip(d.actions, step.results + (None,) * len(d.actions), strict=False):
        what = describe(action)
        if result is None:
            parts.append(f"{what} (not done)")
        elif not result.ok:
            parts.append(f"{what} → failed: {_short(result.error or '')}")
        elif result.exit_code is not None:
            parts.append(f"{what} → exit {result.exit_code}: {_short(result.output)}")
        else:
            parts.append(what)
    if d.ask_human:
        parts.append(f"asked a human: {_short(d.ask_human)}")
    if step.human_note:
        parts.append(f"the human answered: {_short(step.human_note)}")
    if d.text and not parts:
        parts.append(_short(d.text))
    return f"Step {step.number}: " + ("; ".join(parts) or "looked at the screen")


def describe(action: Action) -> str:
    if isinstance(action, Click):
        times = {1: "", 2: "double-", 3: "triple-"}[action.count]
        button = "" if action.button == "left" else f"{action.button}-"
        return f"{times}{button}click at ({action.x}, {action.y})"
    if isinstance(action, MoveMouse):
        return f"move the mouse to ({action.x}, {action.y})"
    if isinstance(action, Drag):
        return f"drag ({action.x}, {action.y}) → ({action.to_x}, {action.to_y})"
    if isinstance(action, TypeText):
        return f"type {_short(action.text, 60)!r}"
    if isinstance(action, KeyPress):
        return f"press {action.keys}"
    if isinstance(action, Scroll):
        return f"scroll {action.direction} {action.amount}"
    if isinstance(action, OpenUrl):
        return f"open {action.url}"
    if isinstance(action, ClickText):
        return f"click {action.label!r}"
    if isinstance(action, Screenshot):
        return "take a screenshot"
    if isinstance(action, RunCommand):
        return f"run `{_short(action.command, 120)}`"
    if isinstance(action, ReadFile):
        return f"read {action.path}"
    if isinstance(action, WriteFile):
        return f"write {len(action.content)} characters to {action.path}"
    if isinstance(action, Wait):
        return f"wait {action.seconds:g} s"
    return str(getattr(action, "kind", "action"))


def result_text(result: ActionResult | None, limit: int = RESULT_CHARS) -> str:
    """A tool result as text for a model."""
    if result is None:
        return "Not performed."
    if not result.ok:
        return f"Error: {result.error or 'the action failed'}"
    text = result.output
    if not text and isinstance(result.data.get("content"), str):
        text = result.data["content"]
    if len(text) > limit:
        text = f"[… {len(text) - limit} characters cut]\n" + text[-limit:]
    if result.exit_code is not None:
        return f"exit code {result.exit_code}\n{text}" if text else f"exit code {result.exit_code}"
    return text or "Done."


def trajectory_text(context: AgentContext, limit: int = 8000) -> str:
    """All steps, one line each (newest kept within ``limit``), for a verifier."""
    lines = [step_line(s) for s in context.steps]
    return _bounded(lines, limit) if lines else "(no steps)"


def task_text(context: AgentContext) -> str:
    text = f"Task: {context.task}"
    if context.instructions:
        text += f"\n\nInstructions: {context.instructions}"
    return text


def system_prompt(context: AgentContext) -> str:
    return context.system_prompt or DEFAULT_SYSTEM_PROMPT


def _short(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --------------------------------------------------------------------------- the runner's side


def remember(steps: list[StepRecord], step: StepRecord) -> None:
    """Append ``step``; forget screens older than :data:`OBSERVATIONS_KEPT` steps."""
    steps.append(step)
    old = len(steps) - OBSERVATIONS_KEPT - 1
    if old >= 0 and steps[old].observation is not None:
        steps[old] = steps[old].model_copy(update={"observation": None})


# --------------------------------------------------------------------------- one decision's calls


def contract_action_type(action: Action) -> str | None:
    """The contract's ``ActionResponse.action_type`` of an action (None: not a
    screen action the contract can express)."""
    if isinstance(action, Click):
        return "click"
    if isinstance(action, TypeText):
        return "type_text"
    if isinstance(action, KeyPress):
        return "key_combo" if "+" in action.keys.strip("+") else "key_press"
    if isinstance(action, Scroll):
        return "scroll"
    if isinstance(action, Drag):
        return "drag"
    if isinstance(action, MoveMouse):
        return "move"
    if isinstance(action, Wait):
        return "wait"
    return None


class Plan:
    """The actions of one decision, built call by call from a model's tool
    calls, with the context's limits applied: one action per step in v1,
    ``max_actions``, ``allowed_actions``. Each call remembers which actions it
    produced (or why it produced none), so its result can be told to the
    model on the next step."""

    def __init__(self, context: AgentContext) -> None:
        self.limit = 1 if context.cua_version == "v1" else context.max_actions
        self.allowed = context.allowed_actions
        self.terminal = context.terminal
        self.actions: list[Action] = []
        self.calls: list[dict[str, object]] = []
        self.ask_human: str | None = None

    def add(self, call: dict[str, object], produced: Sequence[Action] | str) -> None:
        """Record ``call`` (JSON: its id, name, input…) with the actions it
        produced, or an error message."""
        entry = dict(call)
        if isinstance(produced, str):
            entry["error"] = produced
            self.calls.append(entry)
            return
        kept = [a for a in produced if self._refusal(a) is None]
        notes = sorted({r for r in map(self._refusal, produced) if r is not None})
        room = None if self.limit is None else self.limit - len(self.actions)
        if produced and not kept:
            entry["error"] = "Not performed: " + " ".join(notes)
        elif room is not None and kept and room <= 0:
            entry["error"] = ("Not performed: one action per step (cua_version v1)."
                              if self.limit == 1
                              else f"Not performed: at most {self.limit} actions per step.")
        else:
            if room is not None and len(kept) > room:
                kept = kept[:room]
                notes.append(f"Only the first {room} action(s) were performed.")
            start = len(self.actions)
            self.actions.extend(kept)
            entry["actions"] = [start, len(self.actions)]
            if notes:
                entry["note"] = " ".join(notes)
        self.calls.append(entry)

    def _refusal(self, action: Action) -> str | None:
        kind = contract_action_type(action)
        if isinstance(action, Screenshot):
            return None
        if kind is None and not self.terminal:
            return "There is no terminal or file system here."
        if self.allowed is not None and kind not in self.allowed:
            return (f"The action type {kind or action.kind} is not allowed here "
                    f"(allowed: {', '.join(self.allowed)}).")
        return None

    def human(self, call: dict[str, object], question: str) -> None:
        entry = dict(call)
        entry["human"] = True
        self.calls.append(entry)
        self.ask_human = question if self.ask_human is None else f"{self.ask_human}\n{question}"


def call_results(call: dict[str, object], step: StepRecord) -> list[ActionResult | None]:
    """The results of the actions a recorded call produced."""
    span = call.get("actions")
    if not isinstance(span, list):
        return []
    start, end = int(span[0]), int(span[1])
    return [step.results[i] if i < len(step.results) else None for i in range(start, end)]


def call_result_text(call: dict[str, object], step: StepRecord) -> tuple[str, bool]:
    """(what a recorded call came to, as text for the model; whether it failed)."""
    if call.get("human"):
        note = step.human_note
        return (f"The human answered: {note}" if note
                else "A human looked and resumed the run without a note."), False
    if isinstance(call.get("error"), str):
        return str(call["error"]), True
    results = call_results(call, step)
    note = f"\n{call['note']}" if isinstance(call.get("note"), str) else ""
    if not results:
        return "Done." + note, False
    failed = any(r is None or not r.ok for r in results)
    return "\n".join(result_text(r) for r in results) + note, failed

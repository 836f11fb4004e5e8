"""Key names in the machine's (xdotool) naming.

Models spell keys their own way — pyautogui's ``enter``, OpenAI's
``["CTRL", "ENTER"]``, xdotool's ``Return`` — and the machine presses what
xdotool understands, so every brain translates through here.
"""

from __future__ import annotations

from collections.abc import Sequence

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

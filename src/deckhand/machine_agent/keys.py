"""Key names → what ``Input.dispatchKeyEvent`` needs (``key``, ``code``,
the Windows virtual key code, the text a key types), for the US layout, and
the modifier bits of ``Input.dispatch*Event``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MODIFIER_BITS = {"Alt": 1, "Control": 2, "Meta": 4, "Shift": 8}

_KEY_NAMES = {"ctrl": "Control", "control": "Control", "alt": "Alt", "shift": "Shift",
              "super": "Meta", "meta": "Meta", "cmd": "Meta", "win": "Meta",
              "enter": "Enter", "return": "Enter", "esc": "Escape", "escape": "Escape",
              "tab": "Tab", "backspace": "Backspace", "delete": "Delete", "del": "Delete",
              "space": " ", "up": "ArrowUp", "down": "ArrowDown", "left": "ArrowLeft",
              "right": "ArrowRight", "home": "Home", "end": "End", "pageup": "PageUp",
              "pagedown": "PageDown", "page_up": "PageUp", "page_down": "PageDown",
              "insert": "Insert", "plus": "+", "minus": "-"}

# key → (code, virtual key code, text)
_NAMED: dict[str, tuple[str, int, str]] = {
    "Enter": ("Enter", 13, "\r"), "Tab": ("Tab", 9, "\t"), "Backspace": ("Backspace", 8, ""),
    "Delete": ("Delete", 46, ""), "Escape": ("Escape", 27, ""), " ": ("Space", 32, " "),
    "ArrowUp": ("ArrowUp", 38, ""), "ArrowDown": ("ArrowDown", 40, ""),
    "ArrowLeft": ("ArrowLeft", 37, ""), "ArrowRight": ("ArrowRight", 39, ""),
    "Home": ("Home", 36, ""), "End": ("End", 35, ""), "PageUp": ("PageUp", 33, ""),
    "PageDown": ("PageDown", 34, ""), "Insert": ("Insert", 45, ""),
    "Control": ("ControlLeft", 17, ""), "Shift": ("ShiftLeft", 16, ""),
    "Alt": ("AltLeft", 18, ""), "Meta": ("MetaLeft", 91, ""),
    "CapsLock": ("CapsLock", 20, ""),
}
# punctuation of the US layout: char → (code, virtual key code, shifted)
_PUNCT = {
    "-": ("Minus", 189, False), "_": ("Minus", 189, True), "=": ("Equal", 187, False),
    "+": ("Equal", 187, True), "[": ("BracketLeft", 219, False),
    "{": ("BracketLeft", 219, True), "]": ("BracketRight", 221, False),
    "}": ("BracketRight", 221, True), "\\": ("Backslash", 220, False),
    "|": ("Backslash", 220, True), ";": ("Semicolon", 186, False),
    ":": ("Semicolon", 186, True), "'": ("Quote", 222, False), '"': ("Quote", 222, True),
    ",": ("Comma", 188, False), "<": ("Comma", 188, True), ".": ("Period", 190, False),
    ">": ("Period", 190, True), "/": ("Slash", 191, False), "?": ("Slash", 191, True),
    "`": ("Backquote", 192, False), "~": ("Backquote", 192, True),
}
_SHIFTED_DIGITS = ")!@#$%^&*("


@dataclass(frozen=True)
class Key:
    key: str
    code: str
    key_code: int
    text: str
    shifted: bool = False  # a character the layout types with Shift

    @property
    def modifier(self) -> bool:
        return self.key in MODIFIER_BITS


def key_name(name: str) -> str:
    """A caller's key name (``ctrl``, ``enter``, ``f5``, ``a``) → the DOM key."""
    mapped = _KEY_NAMES.get(name.lower())
    if mapped is not None:
        return mapped
    if len(name) > 1 and name[0] in "fF" and name[1:].isdigit():
        return "F" + name[1:]
    return name


def describe(key: str) -> Key:
    """The events' fields for a DOM key name (from :func:`key_name`)."""
    if key in _NAMED:
        code, vk, text = _NAMED[key]
        return Key(key, code, vk, text)
    if len(key) > 1 and key[0] == "F" and key[1:].isdigit() and 1 <= int(key[1:]) <= 24:
        return Key(key, key, 111 + int(key[1:]), "")
    if len(key) == 1:
        c = key
        if c.isascii() and c.isalpha():
            return Key(c, f"Key{c.upper()}", ord(c.upper()), c, shifted=c.isupper())
        if c.isdigit():
            return Key(c, f"Digit{c}", ord(c), c)
        if c in _SHIFTED_DIGITS:
            d = str(_SHIFTED_DIGITS.index(c))
            return Key(c, f"Digit{d}", ord(d), c, shifted=True)
        if c in _PUNCT:
            code, vk, shifted = _PUNCT[c]
            return Key(c, code, vk, c, shifted=shifted)
        return Key(c, "", 0, c)  # another character: its text only
    raise ValueError(f"unknown key {key!r}")


def split_combo(keys: str | Iterable[str]) -> list[str]:
    """``"ctrl+shift+t"`` or ``["ctrl", "t"]`` → key names. A lone ``+`` is
    the plus key."""
    if isinstance(keys, str):
        if keys.strip() == "+":
            return ["plus"]
        parts = [p.strip() for p in keys.replace(" ", "+").split("+")]
        if keys.endswith("++"):
            parts = [p for p in parts if p] + ["plus"]
        return [p for p in parts if p]
    return [str(k).strip() for k in keys if str(k).strip()]

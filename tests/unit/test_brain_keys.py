"""Key names from every model's spelling into the machine's (xdotool) naming."""

from __future__ import annotations

from deckhand.brains.keys import xdotool_key, xdotool_keys


def test_keys_in_the_machines_naming() -> None:
    assert xdotool_keys(["CTRL", "ENTER"]) == "ctrl+Return"
    assert xdotool_keys(["alt", "f4"]) == "alt+F4"
    assert xdotool_keys(["ArrowDown"]) == "Down"
    assert xdotool_keys(["cmd", "c"]) == "super+c"


def test_unknown_names_pass_through_trimmed() -> None:
    assert xdotool_key(" Return ") == "Return"
    assert xdotool_key("a") == "a"
    assert xdotool_key("f13") == "F13" and xdotool_key("fn") == "fn"

"""POST /v1/parse's core: pyautogui code → structured actions, parsed with
ast and never executed; anything else refused with a clear error."""

from __future__ import annotations

import pytest

from deckhand.parse_pyautogui import ParseFailed, parse
from tests.support.contract import assert_valid


def kinds(code: str) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    actions = parse(code)
    assert_valid("ParseResponse", {"actions": actions})
    return [(a["action_type"], a["params"]) for a in actions]


def test_every_supported_function() -> None:
    code = """
import pyautogui
pyautogui.click(100, 200)
pyautogui.click(x=5, y=6, button='right', clicks=2)
pyautogui.click((7, 8))
pyautogui.doubleClick(10, 20)
pyautogui.write('hello', interval=0.05)
pyautogui.typewrite("world")
pyautogui.typewrite(['a', 'enter'])
pyautogui.press('enter')
pyautogui.press(['tab', 'tab'], presses=2)
pyautogui.hotkey('ctrl', 'shift', 't')
pyautogui.scroll(-3)
pyautogui.scroll(5, x=10, y=20)
pyautogui.dragTo(300, 400, duration=0.5, button='left')
pyautogui.moveTo(1.6, 2.4)
"""
    assert kinds(code) == [
        ("click", {"x": 100, "y": 200, "button": "left", "clicks": 1}),
        ("click", {"x": 5, "y": 6, "button": "right", "clicks": 2}),
        ("click", {"x": 7, "y": 8, "button": "left", "clicks": 1}),
        ("click", {"x": 10, "y": 20, "button": "left", "clicks": 2}),
        ("type_text", {"text": "hello"}),
        ("type_text", {"text": "world"}),
        ("key_press", {"key": "a"}),
        ("key_press", {"key": "enter"}),
        ("key_press", {"key": "enter"}),
        *[("key_press", {"key": "tab"})] * 4,
        ("key_combo", {"keys": ["ctrl", "shift", "t"]}),
        ("scroll", {"direction": "down", "amount": 3}),
        ("scroll", {"direction": "up", "amount": 5, "x": 10, "y": 20}),
        ("drag", {"x": 300, "y": 400, "button": "left"}),
        ("move", {"x": 2, "y": 2}),
    ]


def test_raw_code_aliases_and_sleep() -> None:
    actions = parse("import pyautogui as pag\nimport time\npag.click(1, 2); time.sleep(0.5)\n"
                    "from pyautogui import hotkey\nhotkey('alt', 'f4')")
    assert [a["raw_code"] for a in actions] == ["pag.click(1, 2)", "time.sleep(0.5)",
                                                "hotkey('alt', 'f4')"]
    assert actions[1] == {"action_type": "wait", "params": {"seconds": 0.5},
                          "raw_code": "time.sleep(0.5)"}
    assert parse("pyautogui.click()")[0]["params"] == {"button": "left", "clicks": 1}


@pytest.mark.parametrize("code, says", [
    ("pyautogui.rightClick(1, 2)", "Line 1: pyautogui.rightClick is not supported"),
    ("import os\nos.system('rm -rf /')", "Line 1: import os is not supported"),
    ("pyautogui.click(1, 2)\nos.system('x')", "Line 2: os.system is not supported"),
    ("x = 5", "only calls of pyautogui functions are parsed"),
    ("for i in range(3):\n    pyautogui.click(1, 2)", "only calls of pyautogui functions"),
    ("pyautogui.click(x, 2)", "arguments must be literal values"),
    ("pyautogui.click(__import__('os').getpid(), 1)", "arguments must be literal values"),
    ("pyautogui.click(1, 2", "not valid Python"),
    ("pyautogui.screenshot()", "pyautogui.screenshot is not supported"),
    ("pyautogui.scroll(0)", "non-zero"),
    ("pyautogui.moveTo(5)", "x and y are both needed"),
    ("pyautogui.write(42)", "needs a string"),
    ("pyautogui.click(1, 2, foo=3)", "has no argument 'foo'"),
    ("pyautogui.click('a', 2)", "x must be a number"),
    ("from pyautogui import screenshot", "pyautogui.screenshot is not supported"),
])
def test_refused_with_a_clear_error(code: str, says: str) -> None:
    with pytest.raises(ParseFailed) as caught:
        parse(code)
    assert says in caught.value.message, caught.value.message
    assert caught.value.code.value == "VALIDATION_ERROR"


def test_nothing_is_executed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "ran"
    with pytest.raises(ParseFailed):
        parse(f"open({str(marker)!r}, 'w').write('x')")
    with pytest.raises(ParseFailed):
        parse(f"pyautogui.write(open({str(marker)!r}, 'w').write('x'))")
    assert not marker.exists()

"""Pieces of the desktop that need no display: key names, text recognition's
matching, the rendered terminal, the Xauthority file, JPEG encoding."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image

from deckhand.machine_agent import ocr
from deckhand.machine_agent.desktop import encode_jpeg, write_xauthority
from deckhand.machine_agent.termscreen import TerminalScreen, screen_lines
from deckhand.machine_agent.xinput import (
    InputError,
    keysym_for_char,
    keysym_for_name,
    split_combo,
)


def test_key_names_and_combos() -> None:
    assert split_combo("ctrl+shift+t") == ["ctrl", "shift", "t"]
    assert split_combo(["alt", "F4"]) == ["alt", "F4"]
    assert split_combo("+") == ["plus"]
    assert keysym_for_name("enter") == keysym_for_name("Return") == 0xFF0D
    assert keysym_for_name("f5") == keysym_for_name("F5")
    assert keysym_for_name("a") == ord("a")
    assert keysym_for_char("@") == ord("@")
    assert keysym_for_char("é") == 0xE9
    assert keysym_for_char("€") == 0x01000000 | 0x20AC
    with pytest.raises(InputError, match="unknown key"):
        keysym_for_name("notakey")


def _word(text: str, left: int, line: int = 1) -> ocr.Word:
    return ocr.Word(text, left, 100 * line, 10 * len(text), 20, 90.0, (1, 1, 1, line))


def test_ocr_finds_labels_as_consecutive_words_on_a_line() -> None:
    words = [_word("Acme", 10), _word("portal", 70), _word("Sign", 10, 2), _word("in", 60, 2),
             _word("Email:", 10, 3)]
    m = ocr.find(words, "Sign in")
    assert m is not None and (m.text, m.y) == ("Sign in", 210)
    assert ocr.find(words, "email") is not None  # case and punctuation ignored
    assert ocr.find(words, "Sign out") is None
    assert ocr.contains(ocr.text_of(words), "acme portal")
    assert ocr.text_of(words).splitlines()[0] == "Acme portal"


def test_terminal_screen_renders_the_last_lines() -> None:
    transcript = "".join(f"$ echo {i}\n{i}\n" for i in range(200))
    lines = screen_lines(transcript)
    assert lines[-1] == "199" and len(lines) < 100
    frame = TerminalScreen().render(transcript, version=1)
    img = Image.open(io.BytesIO(frame.jpeg))
    assert img.size == (1280, 800) and frame.source == "terminal"


def test_xauthority_has_a_wildcard_and_a_local_entry(tmp_path: Path) -> None:
    path = tmp_path / "Xauthority"
    write_xauthority(path, b"k" * 16)
    data = path.read_bytes()
    assert path.stat().st_mode & 0o777 == 0o600
    assert struct.unpack(">H", data[:2])[0] == 0xFFFF
    assert data.count(b"MIT-MAGIC-COOKIE-1") == 2 and data.count(b"k" * 16) == 2


def test_jpeg_from_a_raw_bgrx_buffer() -> None:
    raw = bytes([255, 0, 0, 0]) * (64 * 32)  # blue in BGRX
    img = Image.open(io.BytesIO(encode_jpeg(raw, 64, 32)))
    r, _, b = img.convert("RGB").getpixel((10, 10))
    assert img.size == (64, 32) and b > 200 and r < 50

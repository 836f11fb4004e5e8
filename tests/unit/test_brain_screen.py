"""The screen as a model sees it: fitted into the model's box, never enlarged,
and coordinates mapped back onto the real screen."""

from __future__ import annotations

from deckhand.brains.screen import fit, image_size, media_type, model_screen, screen_now
from deckhand.core.screens import Observation
from tests.support.fake_providers import observation, screenshot


def test_fit_and_scaling_round_trip() -> None:
    assert fit(2560, 1600) == (1280, 800)
    assert fit(1920, 1080) == (1280, 720)
    assert fit(1024, 768) == (1024, 768)  # never enlarged
    assert fit(800, 2000) == (320, 800)
    s = model_screen(observation(1920, 1080))
    assert (s.width, s.height, s.real_width, s.real_height) == (1280, 720, 1920, 1080)
    assert s.to_real(0, 0) == (0, 0)
    assert s.to_real(1280, 720) == (1919, 1079)  # clamped onto the screen
    assert s.to_real(640.4, 360) == (961, 540)
    assert s.to_model(961, 540) == (641, 360)


def test_a_png_that_fits_is_passed_through() -> None:
    png = screenshot(800, 600, fmt="PNG")
    s = model_screen(Observation(screenshot_jpeg=png, width=800, height=600))
    assert s.data == png and s.media_type == "image/png"


def test_a_large_screen_is_sent_as_a_smaller_jpeg() -> None:
    png = screenshot(2560, 1600, fmt="PNG")
    s = model_screen(Observation(screenshot_jpeg=png, width=2560, height=1600))
    assert s.media_type == "image/jpeg" and media_type(s.data) == "image/jpeg"
    assert image_size(s.data) == (1280, 800)
    assert s.data_url.startswith("data:image/jpeg;base64,")


def test_no_screen_and_not_an_image() -> None:
    assert screen_now(None) is None
    now = screen_now(observation(640, 480))
    assert now is not None and (now.width, now.height) == (640, 480)
    assert media_type(b"plain text") == "application/octet-stream"
    try:
        image_size(b"plain text")
    except ValueError as exc:
        assert "not a PNG" in str(exc)
    else:
        raise AssertionError("image_size read text as an image")


def test_the_same_screen_is_prepared_once() -> None:
    shown = observation(1920, 1080, color=(1, 2, 3))
    copy = bytes(bytearray(shown.screenshot_jpeg))  # equal bytes, another object
    again = Observation(screenshot_jpeg=copy, width=1920, height=1080)
    assert model_screen(shown) is model_screen(again)
    other_size = Observation(screenshot_jpeg=shown.screenshot_jpeg, width=3840, height=2160)
    assert model_screen(other_size).real_width == 3840


def test_sizes_on_the_screen_grid_scale_both_axes_alike() -> None:
    assert fit(2880, 1800) == (1280, 800)
    assert fit(1600, 1200) == (1064, 798)  # 4:3 exactly, not 1067×800
    assert fit(1366, 768) == (1280, 720)  # no grid size near the box: rounded
    s = model_screen(observation(1600, 1200))
    assert s.real_width / s.width == s.real_height / s.height
    assert s.to_real(532, 399) == (800, 600)

"""The recording (an animated WebP) and the trajectory zip (artifacts/render.py)."""

from __future__ import annotations

import io
import json
import zipfile

from PIL import Image

from deckhand.artifacts import render
from deckhand.machines.fake import screen_image


def _durations(data: bytes) -> list[int]:
    movie = Image.open(io.BytesIO(data))
    out = []
    for i in range(movie.n_frames):
        movie.seek(i)
        movie.load()
        out.append(movie.info["duration"])
    return out


def test_picks_keep_first_and_last_and_every_screens_time() -> None:
    assert render.picks(3, 100) == [(0, 1), (1, 1), (2, 1)]
    picked = render.picks(1000, 100)
    assert len(picked) == 100 and picked[0][0] == 0 and picked[-1][0] == 999
    assert sum(n for _, n in picked) == 1000
    assert [i for i, _ in picked] == sorted({i for i, _ in picked})


def test_a_recording_plays_each_screen_for_its_time() -> None:
    red, blue = screen_image(640, 400, (200, 0, 0)), screen_image(640, 400, (0, 0, 200))
    png = screen_image(320, 200, (0, 200, 0), fmt="PNG")  # another size, another format
    data = render.recording_webp([render.Frame(red), render.Frame(blue, 3000),
                                  render.Frame(png)])
    movie = Image.open(io.BytesIO(data))
    assert movie.format == "WEBP" and movie.size == (640, 400) and movie.is_animated
    assert _durations(data) == [1000, 3000, 1000]
    movie.seek(2)
    assert movie.convert("RGB").getpixel((5, 5))[1] > 150  # the PNG's green, fitted


def test_a_large_screen_is_fitted() -> None:
    big = screen_image(2560, 1600)
    movie = Image.open(io.BytesIO(render.recording_webp([render.Frame(big),
                                                         render.Frame(screen_image(2560, 1600,
                                                                                   (0, 0, 0)))])))
    assert movie.size == (1280, 800)


def test_the_trajectory_layout() -> None:
    out = io.BytesIO()
    t = render.Trajectory(out, {"id": "r1", "status": "succeeded"})
    jpeg, png = screen_image(64, 40), screen_image(64, 40, fmt="PNG")
    t.add_step({"number": 1, "text": "a", "finished_at": "2026-12-07T09:30:02Z"},
               {"screen": ("image/jpeg", jpeg), "after": ("image/png", png)})
    t.add_step({"number": 2, "text": "b", "finished_at": None}, {})
    t.close()
    z = zipfile.ZipFile(io.BytesIO(out.getvalue()))
    assert z.namelist() == ["run.json", "screens/0001.jpg", "screens/0001-after.png",
                            "steps/0001.json", "steps/0002.json"]
    assert json.loads(z.read("run.json"))["id"] == "r1"
    one = json.loads(z.read("steps/0001.json"))
    assert (one["screenshot_file"], one["screenshot_after_file"]) == (
        "screens/0001.jpg", "screens/0001-after.png")
    assert z.read(one["screenshot_after_file"]) == png
    assert z.getinfo("screens/0001.jpg").date_time == (2026, 12, 7, 9, 30, 2)  # zip: even seconds
    two = json.loads(z.read("steps/0002.json"))
    assert two["screenshot_file"] is None and two["screenshot_after_file"] is None

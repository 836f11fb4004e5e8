"""The screen as a model sees it: the image budget.

A model is shown the screenshot resized to fit its provider's box, never
enlarged. It answers in that image's pixels, and :meth:`ModelScreen.to_real`
maps its coordinates back to the machine's real resolution
(``Observation.width × height``). The boxes are what each provider bills
best (docs/models.md, measured by bench/tokens.py):

- Anthropic bills about w·h/750 tokens and downsizes anything above 1568
  pixels on the long edge or 1.15 megapixels; its computer-use models are
  trained on screens up to WXGA, so the box is 1280×800 (1366 tokens);
- OpenAI bills 85 + 170 per 512-pixel tile after scaling the short side to
  768: 1280×800 costs the same 6 tiles (1105 tokens) as every larger 16:10
  size, and fewer pixels would lose detail for 2 tiles' saving at most, so
  it gets the same box;
- OpenAI-compatible servers get it too.

The size keeps the screen's aspect ratio exactly when a size on its pixel
grid is close to the box (1920×1080 → 1280×720, 2560×1600 → 1280×800), so
x and y scale by the same factor; a JPEG of :data:`JPEG_QUALITY` (chosen by
measurement: the lowest quality at which text recognition reads the small
text as well as from the lossless image) is sent, or the original when it is
smaller.
"""

from __future__ import annotations

import base64
import functools
import io
import math
from dataclasses import dataclass

from deckhand.core.screens import Observation

MODEL_SCREEN_BOX = (1280, 800)
JPEG_QUALITY = 70  # bench/tokens.py: the lowest at which text recognition reads ≥ 98 %


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
    """The image's MIME type from its magic bytes (the providers want it declared)."""
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
    """The size of a width×height image scaled down (never up) to fit ``box``:
    on the image's own pixel grid (the same scale on both axes) when such a
    size is within 2 % of the box's, else rounded."""
    scale = min(1.0, box[0] / width, box[1] / height)
    rounded = max(1, round(width * scale)), max(1, round(height * scale))
    if scale == 1.0:
        return rounded
    g = math.gcd(width, height)
    k = min(box[0] * g // width, box[1] * g // height)
    exact = width // g * k, height // g * k
    return exact if k and exact[0] >= 0.98 * rounded[0] else rounded



def model_screen(obs: Observation, box: tuple[int, int] = MODEL_SCREEN_BOX) -> ModelScreen:
    """``obs`` resized for a model. A pure function of the image and the sizes,
    memoized: the history shows the same screens again on every call, byte
    for byte."""
    return _prepare(obs.screenshot_jpeg, obs.width, obs.height, box)


def screen_now(obs: Observation | None) -> ModelScreen | None:
    """The current screen for a model, or None on a machine without one."""
    return model_screen(obs) if obs else None


@functools.lru_cache(maxsize=32)
def _prepare(data: bytes, real_width: int, real_height: int, box: tuple[int, int]
             ) -> ModelScreen:
    from PIL import Image

    kind = media_type(data)
    true_w, true_h = image_size(data)
    w, h = fit(true_w, true_h, box)
    resized = (w, h) != (true_w, true_h)
    if resized or kind not in ("image/jpeg",):
        with Image.open(io.BytesIO(data)) as img:
            small = img.convert("RGB")
            if resized:
                small = small.resize((w, h), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        small.save(out, format="JPEG", quality=JPEG_QUALITY)
        if resized or kind != "image/png" or len(out.getvalue()) < len(data):
            data, kind = out.getvalue(), "image/jpeg"
    return ModelScreen(data=data, media_type=kind, width=w, height=h,
                       real_width=real_width, real_height=real_height)

"""A corpus of small rendered form pages, and the recall of ``type … into
"LABEL"`` on them: the form test and ``bench/forms.py`` measure the same.

Each page has two fields named by visible text (label above, label left,
a wrapping label, placeholders only), in DejaVu Sans, DejaVu Serif or Nimbus
Sans (Liberation is not installed here) at 14-28 px, black or grey on white
or white on a colour. Both labels of a page are typed into; a label counts
as *found* when the machine read it, and its field as *grounded* when the
text typed ends up in that field and nowhere else (read back from the DOM).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from deckhand.core.actions import OpenUrl, TypeText
from tests.support.static_site import static_site

LAYOUTS = ("above", "left", "wrapping", "placeholder")
FONTS = ("DejaVu Sans", "DejaVu Serif", "Nimbus Sans")
SIZES = (14, 18, 20, 24, 28)
SCHEMES = {  # page background, label colour, field border, placeholder colour
    "black-on-white": ("#ffffff", "#111111", "#767676", "#757575"),
    "grey-on-white": ("#ffffff", "#6e6e6e", "#b0b0b0", "#a9a9a9"),
    "white-on-colour": ("#1f5fa8", "#ffffff", "#1f5fa8", "#8a8a8a"),
}
LABELS = (("Email address", "Full name"), ("Company", "Phone number"), ("City", "Postal code"),
          ("First name", "Last name"), ("Username", "Password"), ("Street", "Country"),
          ("Job title", "Website"), ("Order number", "Coupon code"), ("Nickname", "Age"))
PAGES = 36
GOAL = 0.95


@dataclass(frozen=True)
class Page:
    name: str
    layout: str
    font: str
    size: int
    scheme: str
    labels: tuple[str, str]

    def html(self) -> str:
        bg, ink, border, hint = SCHEMES[self.scheme]
        rows = "".join(self._row(i, label) for i, label in enumerate(self.labels))
        return (f"<!doctype html><html><head><title>Form {self.name}</title><style>"
                f"body{{margin:60px 80px;background:{bg};color:{ink};"
                f"font-family:'{self.font}';font-size:{self.size}px}}"
                f"input{{font:inherit;font-size:{self.size}px;padding:6px 8px;width:340px;"
                f"border:1px solid {border};background:#fff;color:#111}}"
                f"input::placeholder{{color:{hint}}}"
                f".row{{margin:0 0 {self.size + 16}px}}.side{{display:inline-block;"
                f"width:{self.size * 9}px}}</style></head><body>"
                f"<h1 style='font-size:{self.size + 6}px'>Sign up</h1>{rows}</body></html>")

    def _row(self, i: int, label: str) -> str:
        field = f"<input id='f{i}' type='{'password' if label == 'Password' else 'text'}'"
        if self.layout == "above":
            return f"<div class='row'><label>{label}</label><div>{field}></div></div>"
        if self.layout == "left":
            return f"<div class='row'><span class='side'>{label}</span>{field}></div>"
        if self.layout == "wrapping":
            return f"<div class='row'><label><span class='side'>{label}</span>{field}></label></div>"
        return f"<div class='row'>{field} placeholder='{label}'></div>"


def pages(count: int = PAGES) -> list[Page]:
    """``count`` pages cycling through layouts, fonts, sizes and colours."""
    out = []
    for i in range(count):
        out.append(Page(f"p{i:02d}", LAYOUTS[i % 4], FONTS[i % 3], SIZES[i % 5],
                        tuple(SCHEMES)[(i // 4) % 3], LABELS[i % len(LABELS)]))
    return out


@contextlib.contextmanager
def serve(corpus: list[Page]) -> Iterator[str]:
    """The pages on loopback (``{base}/{name}.html``)."""
    with static_site({f"{page.name}.html": page.html() for page in corpus}) as base:
        yield base


@dataclass
class Tally:
    """Found labels and grounded fields, with what missed."""

    labels: int = 0
    found: int = 0
    grounded: int = 0
    misses: list[str] = field(default_factory=list)

    def recall(self) -> tuple[float, float]:
        return self.found / max(1, self.labels), self.grounded / max(1, self.labels)


VALUES_JS = "() => [...document.querySelectorAll('input')].map(i => i.value)"


async def measure(agent: Any, base: str, corpus: list[Page]) -> Tally:
    """Type into both labels of every page with ``agent`` (a MachineAgent)
    and count what was found and where the text went."""
    tally = Tally()
    for page in corpus:
        opened, _ = await agent.act(OpenUrl(url=f"{base}/{page.name}.html"))
        assert opened.ok, opened.error
        results = []
        for i, label in enumerate(page.labels):
            result, _ = await agent.act(TypeText(text=f"v{i}-{page.name}", into=label))
            results.append(result)
        values = await agent.browser.execute(VALUES_JS)
        for i, (label, result) in enumerate(zip(page.labels, results, strict=True)):
            tally.labels += 1
            found = result.ok or bool(result.data.get("label_found"))
            right = values[i] == f"v{i}-{page.name}"
            tally.found += found
            tally.grounded += right
            if not (found and right):
                tally.misses.append(f"{page.name} {page.layout} {page.font} {page.size}px "
                                    f"{page.scheme} {label!r}: {result.error or values}")
    return tally

"""Model tokens per step: a 100-step computer-use trajectory driven through
the real brains against the suite's fakes of the Anthropic Messages and
OpenAI Responses / Chat Completions protocols, which compute prompt caching
the way the providers document it (tests/support/prompt_cache.py).

    PYTHONPATH=src:. .venv/bin/python bench/tokens.py [--steps N] [--kept K --chunk C]
                                                      [--sweep]

Per provider: input tokens per step (mean, p95), the share of them read from
the cache (all steps, and from step 3 on), uncached tokens per step (written
to the cache or not cached at all), images per request and request bytes —
and, on the same trajectory (the same model answers, tool results and
screens), the Anthropic demo's policy computed side by side: 3 most recent
screens, removal threshold 3, breakpoints on the 3 last user turns (and the
demo as shipped with caching, every screen kept). A cost per step in
input-token equivalents counts a cache write 1.25×, a cache read 0.1×
(Anthropic's multipliers; OpenAI's cached tokens 0.1×).

Goals (issue #17): uncached input tokens per step ≤ 0.5× the demo's policy;
≥ 85 % of input tokens cached from step 3 on (Anthropic); OpenAI: no request
after the first resends the history while the chain holds. Then the image
budget: JPEG bytes and text recognition by quality on a rendered screen.
Not a test: numbers are read.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support, bench

from bench.demo_policy import DemoConversation  # noqa: E402
from bench.harness import Report, pct  # noqa: E402
from deckhand.agent.context import remember  # noqa: E402
from deckhand.brains.anthropic import AnthropicBrain  # noqa: E402
from deckhand.brains.history import ScreenBudget  # noqa: E402
from deckhand.brains.openai import OpenAIBrain  # noqa: E402
from deckhand.brains.openai_compat import OpenAICompatBrain  # noqa: E402
from deckhand.brains.providers import Provider  # noqa: E402
from deckhand.brains.screen import JPEG_QUALITY, fit  # noqa: E402
from deckhand.core.actions import ActionResult, RunCommand  # noqa: E402
from deckhand.core.screens import Observation  # noqa: E402
from deckhand.core.steps import AgentContext, StepRecord  # noqa: E402
from tests.support.fake_providers import (  # noqa: E402
    FakeProvider,
    anthropic_message,
    chat,
    computer_call,
    fake_provider,
    function_call,
    responses,
    tool_use,
)
from tests.support.fake_providers import text as say  # noqa: E402
from tests.support.prompt_cache import AnthropicCache, Usage  # noqa: E402
from tests.support.rendered_screens import SANS, Button, Screen  # noqa: E402

if TYPE_CHECKING:
    from PIL import Image

TASK = ("Open the supplier portal, download each month's invoice, and enter the totals "
        "into the spreadsheet on the desktop.")
LABELS = ["Invoices", "Download", "Next page", "Save", "Open", "Total", "Cancel", "Submit"]


# --------------------------------------------------------------------------- the trajectory


def screen(n: int) -> Observation:
    """Step ``n``'s screen: a page of labelled buttons, different at each step."""
    buttons = [Button(f"{LABELS[(n + i) % len(LABELS)]} {n}-{i}",
                      (40 + 150 * (i % 8), 60 + 90 * (i // 8)), SANS, 15) for i in range(40)]
    buttons.append(Button(f"Invoice {n:03d}: total {n * 37 % 1000}.{n % 100:02d} EUR",
                          (380, 560), SANS, 22))
    png = Screen(1280, 800, buttons=buttons).png()
    return Observation(screenshot_jpeg=png, width=1280, height=800)


def is_command(n: int) -> bool:
    return n % 5 == 0


def command_output(n: int) -> str:
    return "\n".join(f"invoice-{n:03d}-{i}.pdf  {1000 + 37 * i} bytes" for i in range(8))


def results_for(n: int, actions: int) -> tuple[ActionResult, ...]:
    if is_command(n):
        return (ActionResult(ok=True, output=command_output(n), exit_code=0),) * actions
    return (ActionResult(ok=True),) * actions


def anthropic_reply(n: int) -> dict[str, Any]:
    if is_command(n):
        return anthropic_message(say(f"Listing the downloads after page {n}."),
                                 tool_use("bash", {"command": "ls -l ~/Downloads"}))
    return anthropic_message(say(f"I click the Download button of invoice {n}."), tool_use(
        "computer", {"action": "left_click", "coordinate": [100 + n % 900, 120 + n % 600]}))


def openai_reply(n: int) -> dict[str, Any]:
    if is_command(n):
        return responses(function_call("run_command", {"command": "ls -l ~/Downloads"}))
    return responses(computer_call({"type": "click", "button": "left",
                                    "x": 100 + n % 900, "y": 120 + n % 600}))


def chat_reply(n: int) -> dict[str, Any]:
    if is_command(n):
        return chat(None, [("run_command", {"command": "ls -l ~/Downloads"})])
    return chat(None, [("click", {"x": 100 + n % 900, "y": 120 + n % 600})])


# --------------------------------------------------------------------------- a run


@dataclass
class Measured:
    usages: list[Usage] = field(default_factory=list)
    images: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    resent: int = 0  # requests after the first that resent earlier items (OpenAI)
    chained: int = 0


def count_images(value: Any) -> int:
    if isinstance(value, dict):
        own = value.get("type") in ("image", "input_image", "image_url", "computer_screenshot")
        return int(own) + sum(count_images(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_images(v) for v in value)
    return 0


def provider(name: str, fake: FakeProvider) -> Provider:
    url = fake.anthropic_url if name == "anthropic" else fake.openai_url
    return Provider(name, SecretStr(fake.api_key), url, timeout=60, max_retries=0)


async def drive(name: str, steps: int, budget: ScreenBudget, shots: list[Observation]
                ) -> tuple[Measured, FakeProvider, list[StepRecord]]:
    async with fake_provider() as fake:
        fake.measured = True
        reply = {"anthropic": anthropic_reply, "openai": openai_reply,
                 "openai_compat": chat_reply}[name]
        fake.reply(*(reply(n) for n in range(1, steps + 1)))
        p = provider("openai" if name == "openai_compat" else name, fake)
        brain = (AnthropicBrain(p, model="claude-sonnet-4-6", screens=budget)
                 if name == "anthropic" else
                 OpenAIBrain(p, model="computer-use-preview", screens=budget)
                 if name == "openai" else
                 OpenAICompatBrain(p, model="fake-vision-1", screens=budget))
        records: list[StepRecord] = []
        try:
            for n in range(1, steps + 1):
                context = AgentContext(run_id="bench", task=TASK, cua_version="v5",
                                       max_steps=steps + 1, steps=tuple(records),
                                       observation=shots[n - 1])
                decision = await brain.decide(context)
                actions = decision.actions or (RunCommand(command="true"),)
                remember(records, StepRecord(number=n, decision=decision,
                                             results=results_for(n, len(actions)),
                                             observation=shots[n - 1]))
        finally:
            await brain.aclose()
    m = Measured(usages=list(fake.usages))
    seen: set[str] = set()
    for i, r in enumerate(r for r in fake.requests if r.path != "/v1/models"):
        body = r.body
        m.images.append(count_images(body.get("messages") or body.get("input")))
        m.sizes.append(len(json.dumps(body).encode()))
        if name == "openai":
            items = {json.dumps(x, sort_keys=True) for x in body["input"]}
            if i and body.get("previous_response_id"):
                m.chained += 1
                m.resent += bool(items & seen)
            seen |= items
    return m, fake, records


def demo_usages(fake: FakeProvider, keep: int | None) -> Measured:
    """The demo's policy on the trajectory Deckhand's Anthropic run had: the
    same model answers, tool results and screens, each screen in its step's
    tool result as the demo's tools return it, until the filter takes it out."""
    bodies = [r.body for r in fake.requests]
    cache = AnthropicCache()
    demo = DemoConversation(keep=keep, threshold=3)
    m = Measured()
    first = bodies[0]
    demo.start([_unmarked(b) for b in first["messages"][0]["content"]])
    for i, body in enumerate(bodies):
        if i:  # the turn this request added: the model's answer and the results
            assistant, user = body["messages"][-2]["content"], body["messages"][-1]["content"]
            demo.add_turn(assistant, as_demo_results(user))
        request = demo.request(first["system"][0]["text"], first["tools"])
        m.usages.append(cache.request(request))
        m.images.append(count_images(request["messages"]))
        m.sizes.append(len(json.dumps(request).encode()))
    return m


def as_demo_results(user: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A user turn as the demo sends it: tool results, the screen in the last."""
    results = [_unmarked(b) for b in user if b.get("type") == "tool_result"]
    images = [b for b in user if b.get("type") == "image"]
    if results and images:
        last = results[-1]
        last["content"] = [*last["content"], *(_unmarked(b) for b in images)]
    return results


def _unmarked(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"}


# --------------------------------------------------------------------------- the report


def cost(u: Usage, read_rate: float = 0.1, write_rate: float = 1.25) -> float:
    return u.uncached + write_rate * u.cache_creation + read_rate * u.cache_read


def summarize(report: Report, label: str, m: Measured) -> dict[str, float]:
    inputs = [u.input_tokens for u in m.usages]
    uncached = [u.input_tokens - u.cache_read for u in m.usages]
    later = m.usages[2:]
    share = sum(u.cache_read for u in m.usages) / max(1, sum(inputs))
    share3 = sum(u.cache_read for u in later) / max(1, sum(u.input_tokens for u in later))
    out = {"mean": mean(inputs), "p95": pct(inputs, 95), "share": share, "share3": share3,
           "uncached": mean(uncached), "images": mean(m.images), "bytes": mean(m.sizes),
           "cost": mean(cost(u) for u in m.usages)}
    report.add("input tokens/step mean / p95", label, f"{out['mean']:.0f} / {out['p95']:.0f}")
    report.add("cached share (all / from step 3)", label,
               f"{100 * share:.1f} % / {100 * share3:.1f} %")
    report.add("uncached input tokens/step (mean)", label, f"{out['uncached']:.0f}")
    report.add("cost/step (input-token equivalents)", label, f"{out['cost']:.0f}")
    report.add("images per request (mean / max)", label,
               f"{out['images']:.1f} / {max(m.images)}")
    report.add("request bytes (mean / max)", label,
               f"{out['bytes'] / 1024:.0f} KiB / {max(m.sizes) / 1024:.0f} KiB")
    return out


async def main(steps: int, budget: ScreenBudget, sweep: bool) -> None:
    shots = [screen(n) for n in range(1, steps + 1)]
    report = Report()
    anthropic, fake, _ = await drive("anthropic", steps, budget, shots)
    ours = summarize(report, "anthropic deckhand", anthropic)
    demo = summarize(report, "anthropic demo 3/3", demo_usages(fake, keep=3))
    summarize(report, "anthropic demo as shipped", demo_usages(fake, keep=None))
    ratio = ours["uncached"] / demo["uncached"]
    report.add("uncached/step vs demo's policy", "anthropic", f"{ratio:.2f}×", "≤ 0.5×",
               ratio <= 0.5)
    report.add("cached share from step 3", "anthropic", f"{100 * ours['share3']:.1f} %",
               "≥ 85 %", ours["share3"] >= 0.85)
    openai, _, _ = await drive("openai", steps, budget, shots)
    summarize(report, "openai responses", openai)
    report.add("requests after the first resending history", "openai",
               f"{openai.resent} of {openai.chained} chained", "0",
               openai.resent == 0 and openai.chained == steps - 1)
    compat, _, _ = await drive("openai_compat", steps, budget, shots)
    summarize(report, "openai-compatible", compat)
    if sweep:
        for kept, chunk in ((2, 4), (3, 4), (3, 6), (3, 8), (3, 10), (4, 8)):
            m, _, _ = await drive("anthropic", steps, ScreenBudget(kept, chunk), shots)
            s = summarize(Report(), "", m)
            report.add(f"sweep kept {kept} chunk {chunk}: uncached / cost / share3",
                       "anthropic", f"{s['uncached']:.0f} / {s['cost']:.0f} / "
                       f"{100 * s['share3']:.1f} %")
    await image_budget(report)
    print(report.table().replace("database", "policy  "))


def small_text_screen() -> Image.Image:
    """A 1920×1080 screen of small text (12-14 px), as the model gets it:
    scaled into the 1280×800 box (1280×720)."""
    from PIL import Image

    buttons = [Button(f"{LABELS[i % len(LABELS)]} row {i} total {i * 37 % 1000}.{i % 97:02d}",
                      (30 + 380 * (i % 5), 30 + 40 * (i // 5)), SANS, 12 + i % 3)
               for i in range(120)]
    png = Screen(1920, 1080, buttons=buttons).png()
    with Image.open(io.BytesIO(png)) as img:
        size = fit(1920, 1080)
        return img.convert("RGB").resize(size, Image.Resampling.LANCZOS)


async def image_budget(report: Report) -> None:
    """Tokens by size; JPEG quality: bytes, and how much of the small text
    recognition still reads compared with the lossless image."""
    from PIL import Image

    from deckhand.core import text_on_screen
    from tests.support.prompt_cache import anthropic_image_tokens, openai_image_tokens

    for w, h in ((1280, 800), (1024, 640), (1920, 1080), (1280, 720)):
        report.add(f"image {w}×{h}: tokens anthropic / openai", "image",
                   f"{anthropic_image_tokens(w, h)} / {openai_image_tokens(w, h)}")
    if not text_on_screen.available():
        return
    base = small_text_screen()
    truth = {w.text for w in await text_on_screen.words(base)}
    chosen = None
    for q in (40, 50, 60, 65, 70, 75, 80, 85, 90):
        out = io.BytesIO()
        base.save(out, format="JPEG", quality=q)
        with Image.open(io.BytesIO(out.getvalue())) as img:
            read = {w.text for w in await text_on_screen.words(img.convert("RGB"))}
        recall = len(read & truth) / max(1, len(truth))
        report.add(f"JPEG q{q}: bytes / words read as lossless", "image",
                   f"{len(out.getvalue()) / 1024:.0f} KiB / {100 * recall:.1f} %")
        if chosen is None and recall >= 0.98:
            chosen = q
    report.add("JPEG quality: the lowest reading ≥ 98 %", "image", f"q{chosen}",
               f"q{JPEG_QUALITY} (screen.py)", chosen == JPEG_QUALITY)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--kept", type=int, default=ScreenBudget().kept)
    parser.add_argument("--chunk", type=int, default=ScreenBudget().chunk)
    parser.add_argument("--sweep", action="store_true", help="also try other budgets")
    args = parser.parse_args()
    asyncio.run(main(args.steps, ScreenBudget(args.kept, args.chunk), args.sweep))

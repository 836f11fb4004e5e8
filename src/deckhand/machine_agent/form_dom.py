"""Form fields on a page's DOM: which editable field a label names, and
whether the focus is on an editable element at all.

``type "…" into "Email address"`` must reach the field that label names,
not the label's text: clicking a ``<label>`` without ``for`` that stands
above its ``<input>`` focuses nothing, and the typed text would land
nowhere. So the field is looked for by how HTML names it, in this order:
``<label for>``, a wrapping ``<label>``, ``aria-label``,
``aria-labelledby``, ``placeholder``; and only then by layout: the nearest
editable field below or to the right of visible text that reads the label.
Each way is tried with the exact text (case, spacing and a trailing ``:``
or ``*`` ignored) before any way is tried with the text contained.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deckhand.machine_agent.tab import Tab

# Input types that take typed text (a checkbox, a button or a file input do not).
TEXT_TYPES = ("text", "email", "password", "search", "tel", "url", "number", "date",
              "datetime-local", "month", "time", "week", "")

_EDITABLE = "const TEXT_TYPES = " + json.dumps(list(TEXT_TYPES)) + """;
const editable = el => {
  if (!el || el.disabled || el.readOnly) return false;
  if (el.isContentEditable) return true;
  if (el.tagName === 'TEXTAREA') return true;
  return el.tagName === 'INPUT' &&
    TEXT_TYPES.includes((el.getAttribute('type') || 'text').toLowerCase());
};
"""

# What has the focus, and whether typing there lands in an editable element.
FOCUS_JS = "() => {" + _EDITABLE + """
  let el = document.activeElement;
  while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
  while (el && el.tagName === 'IFRAME') {
    try { el = el.contentDocument.activeElement; } catch (e) { break; }
  }
  if (!el) return {editable: false, tag: null};
  return {editable: editable(el), tag: el.tagName.toLowerCase(),
          type: el.getAttribute('type'), id: el.id || null, name: el.getAttribute('name')};
}"""

FIND_FIELD_JS = "(label) => {" + _EDITABLE + """
  const norm = s => (s || '').toLowerCase().replace(/\\s+/g, ' ').trim()
    .replace(/[\\s:*]+$/, '').trim();
  const want = norm(label);
  if (!want) return null;
  const visible = el => { const r = el.getBoundingClientRect(); const st = getComputedStyle(el);
    return r.width >= 1 && r.height >= 1 && st.visibility !== 'hidden' && st.display !== 'none'; };
  const fields = [...document.querySelectorAll('input,textarea,[contenteditable]')]
    .filter(el => editable(el) && visible(el));
  const textOf = id => { const n = document.getElementById(id); return n ? n.innerText : ''; };
  const names = {
    'label-for': el => el.id ? [...document.querySelectorAll('label[for]')]
      .filter(l => l.htmlFor === el.id).map(l => l.innerText) : [],
    'wrapping-label': el => { const l = el.closest('label');
      return l && !l.htmlFor ? [l.innerText] : []; },
    'aria-label': el => [el.getAttribute('aria-label')],
    'aria-labelledby': el => [(el.getAttribute('aria-labelledby') || '').split(/\\s+/)
      .filter(Boolean).map(textOf).join(' ')],
    'placeholder': el => [el.getAttribute('placeholder')],
  };
  const answer = (el, how) => {
    el.scrollIntoView({block: 'center', inline: 'center'});
    const r = el.getBoundingClientRect();
    return {x: Math.round(r.left + r.width / 2),
            y: Math.round(r.top + r.height / 2), tag: el.tagName.toLowerCase(),
            id: el.id || null, name: el.getAttribute('name'), how,
            box: [Math.round(r.left), Math.round(r.top), Math.round(r.width),
                  Math.round(r.height)]};
  };
  for (const exact of [true, false]) {
    for (const [how, of] of Object.entries(names)) {
      for (const el of fields) {
        const said = of(el).map(norm).filter(Boolean);
        if (said.some(s => exact ? s === want : s.includes(want))) return answer(el, how);
      }
    }
  }
  // By layout: the smallest element whose own text reads the label (the box
  // of its text, not of the element: a <p> holding the label and its field
  // spans both), then the nearest field below it or to its right.
  const textRect = el => {
    let box = null;
    const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
      if (!n.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(n);
      const r = range.getBoundingClientRect();
      if (r.width < 1) continue;
      box = box ? {left: Math.min(box.left, r.left), top: Math.min(box.top, r.top),
                   right: Math.max(box.right, r.right), bottom: Math.max(box.bottom, r.bottom)}
                : {left: r.left, top: r.top, right: r.right, bottom: r.bottom};
    }
    if (box) { box.width = box.right - box.left; box.height = box.bottom - box.top; }
    return box;
  };
  let text = null;
  for (const exact of [true, false]) {
    for (const el of document.querySelectorAll('body *')) {
      if (!visible(el) || fields.includes(el)) continue;
      const own = norm(el.innerText);
      if (!(exact ? own === want : own.includes(want) && own.length <= want.length * 3)) continue;
      const r = textRect(el);
      if (r && (!text || r.width * r.height < text.area)) text = {r, area: r.width * r.height};
    }
    if (text) break;
  }
  if (!text) return null;
  const t = text.r;
  let best = null;
  for (const el of fields) {
    const r = el.getBoundingClientRect();
    let gap = null;
    const below = r.top >= t.top + t.height / 2 && r.left < t.right + 40 && r.right > t.left - 40;
    if (below)
      gap = Math.max(0, r.top - t.bottom) + Math.max(0, r.left - t.left) / 4;
    else if (r.left >= t.right - 4 && r.top < t.bottom && r.bottom > t.top)
      gap = r.left - t.right;
    if (gap !== null && gap <= (below ? 200 : 320) && (!best || gap < best.gap))
      best = {el, gap};
  }
  return best ? answer(best.el, 'nearby-text') : null;
}"""


async def find_field(page: Tab, label: str) -> dict[str, Any] | None:
    """The editable field ``label`` names on ``page`` (scrolled into view):
    where to click it, how it was found (``how``), its box; None when no
    field is named so."""
    return await page.call(FIND_FIELD_JS, label)  # type: ignore[no-any-return]


async def focus(page: Tab) -> dict[str, Any]:
    """What has the focus on ``page`` and whether it takes typed text."""
    return await page.call(FOCUS_JS)  # type: ignore[no-any-return]

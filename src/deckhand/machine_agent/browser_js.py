"""The scripts the browser runs in its pages (:mod:`.browser`): where the
wheel's scroll ended, what is clickable, what a label names."""

# The scroll position once the wheel's scroll is applied: two animation frames
# on (a page that draws no frames, hidden, answers at the cap).
SCROLLED_JS = """
() => new Promise(done => {
  const answer = () => done([scrollX, scrollY]);
  requestAnimationFrame(() => requestAnimationFrame(answer));
  setTimeout(answer, 1000);
})
"""

CLICKABLES_JS = """
() => {
  const sel = 'a[href],button,input,select,textarea,summary,label,[role=button],[role=link],' +
    '[role=checkbox],[role=tab],[role=menuitem],[role=option],[onclick],[tabindex]';
  const out = [];
  for (const el of document.querySelectorAll(sel)) {
    const r = el.getBoundingClientRect();
    const st = getComputedStyle(el);
    if (r.width < 1 || r.height < 1 || st.visibility === 'hidden' || st.display === 'none') continue;
    const text = (el.innerText || el.value || el.getAttribute('aria-label') ||
      el.getAttribute('placeholder') || el.getAttribute('title') || el.getAttribute('alt') ||
      '').trim().replace(/\\s+/g, ' ').slice(0, 120);
    out.push({index: out.length, tag: el.tagName.toLowerCase(), type: el.type || null,
      id: el.id || null, name: el.getAttribute('name'), text, href: el.href || null,
      x: Math.round(r.left + r.width / 2), y: Math.round(r.top + r.height / 2),
      width: Math.round(r.width), height: Math.round(r.height),
      in_viewport: r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth});
  }
  return out;
}
"""

# Finds what a label names: a form control labelled so (label[for], aria-label,
# placeholder), else an element whose text is the label (exact before
# contained, clickable before plain, smallest first). Scrolls it into view.
FIND_LABEL_JS = """
(label) => {
  const norm = s => (s || '').toLowerCase().replace(/\\s+/g, ' ').trim();
  const want = norm(label);
  if (!want) return null;
  const visible = el => { const r = el.getBoundingClientRect(); const st = getComputedStyle(el);
    return r.width >= 1 && r.height >= 1 && st.visibility !== 'hidden' && st.display !== 'none'; };
  const controls = 'input,textarea,select,[contenteditable=true]';
  const labelOf = el => {
    const parts = [el.getAttribute('aria-label'), el.getAttribute('placeholder'),
                   el.getAttribute('title'), el.getAttribute('name')];
    if (el.labels) for (const l of el.labels) parts.push(l.innerText);
    return parts.map(norm);
  };
  const clickable = 'a,button,input,select,textarea,summary,label,[role=button],[role=link],' +
    '[role=tab],[role=menuitem],[onclick]';
  let best = null;
  const consider = (el, score, how) => {
    if (!visible(el)) return;
    const r = el.getBoundingClientRect();
    const area = r.width * r.height;
    if (!best || score > best.score || (score === best.score && area < best.area))
      best = {el, score, area, how};
  };
  for (const el of document.querySelectorAll(controls)) {
    const labels = labelOf(el);
    if (labels.includes(want)) consider(el, 100, 'label');
    else if (labels.some(l => l && l.includes(want))) consider(el, 60, 'label-contains');
  }
  for (const el of document.querySelectorAll('body *')) {
    const own = norm(el.innerText || el.value);
    if (!own) continue;
    const isClick = el.matches(clickable);
    if (own === want) consider(el, isClick ? 90 : 80, 'text');
    else if (own.includes(want) && own.length <= want.length * 4 + 20)
      consider(el, isClick ? 50 : 40, 'text-contains');
  }
  if (!best) return null;
  let el = best.el;
  if (el.tagName === 'LABEL' && el.control) el = el.control;
  el.scrollIntoView({block: 'center', inline: 'center'});
  const r = el.getBoundingClientRect();
  return {x: Math.round(r.left + r.width / 2), y: Math.round(r.top + r.height / 2),
          tag: el.tagName.toLowerCase(), text: (el.innerText || el.value || '').slice(0, 120),
          how: best.how};
}
"""

// Small DOM helpers shared by the pages.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "style") el.style.cssText = v;  // CSSOM: allowed by the pages' CSP
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const LABELS = {
  queued: "Queued", running: "Running", awaiting_human: "Needs a human", succeeded: "Succeeded",
  failed: "Failed", cancelled: "Cancelled", timed_out: "Timed out",
};

export function badge(status, label) {
  return h("span", { class: `badge s-${status}`, "data-status": status }, label || LABELS[status] || status);
}

export function machineBadge(status) {
  return h("span", { class: `badge s-${status === "running" ? "machine-running" : status}` }, status);
}

export function ago(iso) {
  if (!iso) return "—";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 45) return "just now";
  if (s < 90) return "1 min ago";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export function duration(fromIso, toIso) {
  if (!fromIso) return "—";
  const s = Math.max(0, ((toIso ? Date.parse(toIso) : Date.now()) - Date.parse(fromIso)) / 1000);
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export const num = n => (n ?? 0).toLocaleString();

// A task as one line: a scripted run's JSON says how many steps it scripts.
export function taskSummary(task) {
  const t = (task || "").trim();
  if (t.startsWith("{")) {
    try {
      const j = JSON.parse(t);
      if (Array.isArray(j.script)) return `Scripted run: ${j.script.length} step${j.script.length === 1 ? "" : "s"}`;
    } catch (_) { /* plain text */ }
  }
  return t.length > 160 ? t.slice(0, 157) + "…" : t;
}

export function toast(message, kind = "") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const t = h("div", { class: `toast ${kind}` }, message);
  box.append(t);
  setTimeout(() => t.remove(), 5000);
}

// A destructive button asks once more on the button itself (no dialog).
export function confirmButton(label, confirmLabel, action, cls = "btn danger small") {
  let armed = false, timer = null;
  const b = h("button", { type: "button", class: cls }, label);
  b.addEventListener("click", async () => {
    if (!armed) {
      armed = true; b.classList.add("armed"); b.textContent = confirmLabel;
      timer = setTimeout(() => { armed = false; b.classList.remove("armed"); b.textContent = label; }, 4000);
      return;
    }
    clearTimeout(timer);
    b.disabled = true;
    try { await action(); } finally { b.disabled = false; armed = false; b.classList.remove("armed"); b.textContent = label; }
  });
  return b;
}

export function describeAction(a) {
  if (!a) return "";
  switch (a.kind) {
    case "terminal": return `$ ${a.command}`;
    case "write_file": return `write ${a.path} (${(a.content || "").length} chars)`;
    case "read_file": return `read ${a.path}`;
    case "wait": return `wait ${a.seconds} s`;
    case "click": return `${a.count > 1 ? "double-" : ""}click${a.button && a.button !== "left" ? " " + a.button : ""} at (${a.x}, ${a.y})`;
    case "move": return `move the mouse to (${a.x}, ${a.y})`;
    case "drag": return `drag (${a.x}, ${a.y}) → (${a.to_x}, ${a.to_y})`;
    case "type": return `type "${a.text}"${a.into ? ` into ${a.into}` : ""}`;
    case "key": return `press ${a.keys}`;
    case "scroll": return `scroll ${a.direction} ×${a.amount}`;
    case "open_url": return `open ${a.url}`;
    case "click_text": return `click "${a.label}"`;
    case "screenshot": return "take a screenshot";
    default: return JSON.stringify(a);
  }
}

export function errorBox(err) {
  return h("div", { class: "callout bad", role: "alert" }, h("p", {}, err.message || String(err)));
}

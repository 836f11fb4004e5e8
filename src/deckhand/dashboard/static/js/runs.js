// Runs: newest first, live over GET /v1/runs/stream (SSE), filtered by status.
import { stream } from "./api.js";
import { ago, badge, h, LABELS, num, taskSummary } from "./ui.js";

const STATUSES = ["", "queued", "running", "awaiting_human", "succeeded", "failed", "cancelled", "timed_out"];

export function render(main) {
  const params = new URLSearchParams(location.search);
  let status = STATUSES.includes(params.get("status") || "") ? (params.get("status") || "") : "";
  const runs = new Map();
  let es = null;

  const live = h("span", { class: "live", id: "live-state" }, "connecting…");
  const tbody = h("tbody", { id: "runs-body" });
  const empty = h("div", { class: "empty", id: "runs-empty", hidden: true }, "No runs yet. Start one with POST /v1/runs or `deckhand run`.");
  const chips = STATUSES.map(s => h("button", {
    type: "button", class: "chip", "data-status": s || "all", "aria-pressed": String(s === status),
    onclick: () => { status = s; chips.forEach(c => c.setAttribute("aria-pressed", String(c === chipOf(s)))); restart(); },
  }, s ? LABELS[s] : "All"));
  const chipOf = s => chips[STATUSES.indexOf(s)];

  main.replaceChildren(
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Runs"), h("p", { class: "muted" }, "Every agent run of this account, newest first.")),
      live),
    h("div", { class: "filters", role: "group", "aria-label": "Filter by status" }, chips),
    h("div", { class: "table-wrap" },
      h("table", { class: "list", id: "runs" },
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Task"),
          h("th", { scope: "col" }, "Machine"), h("th", { scope: "col", class: "num" }, "Steps"),
          h("th", { scope: "col", class: "num" }, "Credits"), h("th", { scope: "col" }, "Age"))),
        tbody),
      empty),
  );

  function row(run) {
    return h("tr", { "data-run-id": run.id, "data-status": run.status },
      h("td", { "data-label": "Status" }, badge(run.status)),
      h("td", { class: "task", "data-label": "Task" },
        h("a", { class: "task-link", href: `/runs/${run.id}`, title: run.task }, taskSummary(run.task)),
        h("span", { class: "sub" }, run.id)),
      h("td", { "data-label": "Machine" }, h("span", { class: "mono small", title: run.machine_id }, short(run.machine_id))),
      h("td", { class: "num steps", "data-label": "Steps" }, `${run.steps_completed}`),
      h("td", { class: "num", "data-label": "Credits" }, num(run.credits_charged)),
      h("td", { "data-label": "Age" }, h("time", { datetime: run.created_at, class: "age" }, ago(run.created_at))));
  }

  function draw(changed) {
    const ordered = [...runs.values()].sort((a, b) => (b.created_at || "").localeCompare(a.created_at || "") || b.id.localeCompare(a.id));
    tbody.replaceChildren(...ordered.map(run => {
      const tr = row(run);
      if (changed && changed.has(run.id)) tr.classList.add("flash");
      return tr;
    }));
    empty.hidden = ordered.length > 0;
  }

  let pending = new Set(), ready = false, frame = 0;
  function schedule(id) {
    pending.add(id);
    if (!ready || frame) return;
    frame = requestAnimationFrame(() => { frame = 0; const c = pending; pending = new Set(); draw(c); });
  }

  function restart() {
    if (es) es.close();
    runs.clear(); ready = false; pending = new Set();
    const url = new URL(location.href);
    if (status) url.searchParams.set("status", status); else url.searchParams.delete("status");
    history.replaceState(null, "", url);
    live.textContent = "connecting…"; live.classList.remove("on");
    es = stream(`/v1/runs/stream${status ? "?status=" + status : ""}`, {
      run: run => { runs.set(run.id, run); schedule(run.id); },
      removed: ({ id }) => { runs.delete(id); schedule(id); },
      ready: () => { ready = true; draw(null); },
    }, on => {
      live.textContent = on ? "live" : "reconnecting…";
      live.classList.toggle("on", on);
      if (on) { runs.clear(); ready = false; }  // the stream starts with the whole window again
    });
  }

  setInterval(() => { for (const t of tbody.querySelectorAll("time.age")) t.textContent = ago(t.getAttribute("datetime")); }, 15000);
  addEventListener("pagehide", () => es && es.close());
  restart();
}

function short(id) {
  return id && id.length > 14 ? id.slice(0, 8) + "…" : (id || "—");
}

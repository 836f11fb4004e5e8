// Workflows: the saved definitions, the workflow runs with their step tree
// (from each run's events, live while it runs), and approvals to answer.
import { api, stream } from "./api.js";
import { ago, badge, confirmButton, errorBox, h, toast } from "./ui.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled", "timed_out"]);

export async function render(main) {
  const approvals = h("section", { class: "stack", id: "approvals" });
  const defs = h("tbody", { id: "workflows-body" });
  const runsBox = h("div", { class: "stack", id: "workflow-runs" });
  main.replaceChildren(
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Workflows"),
      h("p", { class: "muted" }, "Definitions, their runs step by step, and the approvals they wait for."))),
    h("div", { class: "stack" }, approvals,
      h("h2", {}, "Definitions"),
      h("div", { class: "table-wrap" }, h("table", { class: "list", id: "workflows" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col", class: "num" }, "Version"),
          h("th", { scope: "col", class: "num" }, "Steps"), h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Updated"))),
        defs)),
      h("h2", {}, "Runs"), runsBox));

  async function load() {
    try {
      const [wfs, runs] = await Promise.all([api("/v1/workflows?limit=100&status=all"), api("/v1/workflows/runs?limit=50")]);
      const names = new Map(wfs.data.map(w => [w.id, w.name]));
      defs.replaceChildren(...wfs.data.map(w => h("tr", {},
        h("td", { class: "task", "data-label": "Name" }, h("b", {}, w.name), h("span", { class: "sub" }, w.slug || w.id)),
        h("td", { class: "num", "data-label": "Version" }, `v${w.version}`),
        h("td", { class: "num", "data-label": "Steps" }, String(((w.definition || {}).steps || []).length)),
        h("td", { "data-label": "Status" }, badge(w.status)),
        h("td", { "data-label": "Updated" }, ago(w.updated_at)))));
      if (!wfs.data.length) defs.replaceChildren(h("tr", {}, h("td", { colspan: "5", class: "empty" }, "No saved workflows (POST /v1/workflows).")));
      const waiting = runs.data.filter(r => r.status === "awaiting_human");
      approvals.replaceChildren(...(waiting.length ? [h("h2", {}, "Waiting for approval"), ...waiting.map(r => approval(r, names))] : []));
      runsBox.replaceChildren(...runs.data.map(r => runItem(r, names)));
      if (!runs.data.length) runsBox.replaceChildren(h("div", { class: "card empty" }, "No workflow runs yet."));
    } catch (err) { main.querySelector(".stack").prepend(errorBox(err)); }
  }

  function approval(run, names) {
    const note = h("textarea", { id: `approve-note-${run.id}`, maxlength: "2000", placeholder: "Optional note" });
    const answer = approved => async () => {
      try {
        await api(`/v1/workflows/runs/${run.id}/resume`, { method: "POST", body: { approved, note: note.value.trim() || undefined } });
        toast(approved ? "Approved." : "Rejected: the run fails.");
        await load();
      } catch (err) { toast(err.message, "bad"); }
    };
    return h("div", { class: "callout warn", "data-approval": run.id },
      h("h3", {}, `${names.get(run.workflow_id) || "Ad-hoc workflow"} · step ${run.awaiting_step_id || "?"}`),
      h("p", {}, run.awaiting_human_reason || "Waiting for a human."),
      h("label", { for: note.id }, "Note"), note,
      h("div", { class: "row", style: "margin-top:.6rem" },
        h("button", { type: "button", class: "btn primary", onclick: answer(true) }, "Approve"),
        confirmButton("Reject", "Confirm reject", answer(false), "btn danger")));
  }

  function runItem(run, names) {
    const tree = h("div", { class: "tree-box" }, h("p", { class: "muted small" }, "Loading steps…"));
    const d = h("details", { class: "card wf", "data-workflow-run": run.id },
      h("summary", {}, h("span", { class: "row", style: "display:inline-flex" }, badge(run.status),
        h("b", {}, names.get(run.workflow_id) || "Ad-hoc workflow"),
        h("span", { class: "sub" }, `${run.id} · ${ago(run.created_at)}`))),
      h("div", { style: "margin-top:.75rem" },
        run.error ? h("p", { class: "small" }, h("code", {}, run.error.code), " ", run.error.message) : null,
        tree,
        TERMINAL.has(run.status) ? null : h("div", { class: "row", style: "margin-top:.6rem" },
          confirmButton("Cancel run", "Confirm cancel", async () => {
            try { await api(`/v1/workflows/runs/${run.id}/cancel`, { method: "POST" }); toast("Cancelled."); await load(); }
            catch (err) { toast(err.message, "bad"); }
          }))));
    let es = null;
    d.addEventListener("toggle", () => {
      if (!d.open) { if (es) es.close(); es = null; return; }
      const steps = new Map();
      const draw = () => tree.replaceChildren(stepTree(steps));
      es = stream(`/v1/workflows/runs/${run.id}/events`, {
        step_started: e => { steps.set(e.data.key, { ...(steps.get(e.data.key) || {}), ...e.data }); draw(); },
        step_finished: e => { steps.set(e.data.key, { ...(steps.get(e.data.key) || {}), ...e.data }); draw(); },
        step_skipped: e => { steps.set(e.data.step_id, { key: e.data.step_id, step_id: e.data.step_id, type: e.data.type, status: "skipped" }); draw(); },
        done: () => { es.close(); draw(); },
      });
      draw();
    });
    return d;
  }
  await load();
}

// Step keys name their place: `poll[3]/check`, `fan|1/b`, `send#2/send_task`.
function stepTree(steps) {
  if (!steps.size) return h("p", { class: "muted small" }, "No steps yet.");
  const root = { children: new Map() };
  for (const s of steps.values()) {
    let node = root;
    for (const part of String(s.key || s.step_id).split("/")) {
      if (!node.children.has(part)) node.children.set(part, { part, children: new Map() });
      node = node.children.get(part);
    }
    node.step = s;
  }
  const draw = node => h("ul", {}, [...node.children.values()].map(c => h("li", {},
    h("span", { class: "node" }, c.step ? badge(c.step.status) : null, h("code", {}, c.part),
      c.step ? h("span", { class: "muted small" }, c.step.type) : null,
      c.step && c.step.child_run_id ? h("a", { href: `/runs/${c.step.child_run_id}`, class: "small" }, "task run →") : null,
      c.step && c.step.error ? h("span", { class: "small" }, `${c.step.error.code}: ${c.step.error.message}`) : null),
    c.children.size ? draw(c) : null)));
  const tree = draw(root);
  tree.className = "tree";
  return tree;
}

// Schedules: shown once this server serves GET /v1/schedules.
import { api } from "./api.js";
import { ago, badge, errorBox, h } from "./ui.js";

export async function render(main, ds) {
  const head = h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Schedules"),
    h("p", { class: "muted" }, "Runs and workflows started on a timetable or by a trigger.")));
  if (ds.schedulesApi !== "1") {
    main.replaceChildren(head, h("div", { class: "callout info" },
      h("p", {}, "This server has no schedules yet (it does not serve GET /v1/schedules).")));
    return;
  }
  try {
    const r = await api("/v1/schedules");
    const items = r.data || r.schedules || [];
    main.replaceChildren(head, h("div", { class: "table-wrap" }, h("table", { class: "list", id: "schedules" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Status"),
        h("th", { scope: "col" }, "Next run"), h("th", { scope: "col" }, "Created"))),
      h("tbody", {}, items.map(s => h("tr", {},
        h("td", { class: "task", "data-label": "Name" }, h("b", {}, s.name || s.id), h("span", { class: "sub" }, s.id)),
        h("td", { "data-label": "Status" }, badge(s.status || "active")),
        h("td", { "data-label": "Next run" }, s.next_run_at ? new Date(s.next_run_at).toLocaleString() : "—"),
        h("td", { "data-label": "Created" }, ago(s.created_at)))))),
      items.length ? null : h("div", { class: "empty" }, "No schedules.")));
  } catch (err) { main.replaceChildren(head, errorBox(err)); }
}

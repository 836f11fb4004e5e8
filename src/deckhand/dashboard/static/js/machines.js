// Machines: the list, provisioning a terminal / browser / desktop machine,
// the live view (watch and take over) and deleting.
import { api } from "./api.js";
import { ago, confirmButton, errorBox, h, machineBadge, toast } from "./ui.js";

const KINDS = {
  terminal: { label: "Terminal", body: {} },
  browser: { label: "Browser", body: { metadata: { kind: "browser" } } },
  desktop: { label: "Desktop", body: { desktop_enabled: true } },
};

export async function render(main) {
  const tbody = h("tbody", { id: "machines-body" });
  const empty = h("div", { class: "empty", hidden: true }, "No machines. Provision one above.");
  const name = h("input", { id: "machine-name", required: true, maxlength: "64", placeholder: "e.g. research-box", autocomplete: "off" });
  const kind = h("select", { id: "machine-kind" },
    Object.entries(KINDS).map(([k, v]) => h("option", { value: k }, v.label)));
  const create = h("button", { type: "submit", class: "btn primary", id: "provision" }, "Provision");
  const form = h("form", { class: "card", id: "provision-form", "aria-label": "Provision a machine" },
    h("h2", {}, "New machine"),
    h("div", { class: "form-grid" },
      h("div", {}, h("label", { for: "machine-name" }, "Name"), name),
      h("div", {}, h("label", { for: "machine-kind" }, "Kind"), kind),
      create));
  const status = h("div", { id: "machines-status" });
  main.replaceChildren(
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Machines"),
      h("p", { class: "muted" }, "Sandboxed machines the agents work on: a terminal, a headless browser or a full desktop."))),
    h("div", { class: "stack" }, form, status,
      h("div", { class: "table-wrap" }, h("table", { class: "list", id: "machines" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Kind"),
          h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Created"), h("th", { scope: "col" }, h("span", { class: "muted" }, "Actions")))),
        tbody), empty)));

  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    if (!name.value.trim()) { name.focus(); toast("Give the machine a name.", "bad"); return; }
    create.disabled = true; create.textContent = "Provisioning…";
    try {
      const r = await api("/v1/machines", { method: "POST", body: { display_name: name.value.trim(), ...KINDS[kind.value].body } });
      toast(`Machine ${r.machine.display_name} is ${r.machine.status}.`);
      name.value = "";
      await load();
    } catch (err) { toast(err.message, "bad"); }
    finally { create.disabled = false; create.textContent = "Provision"; }
  });

  async function live(m) {
    const w = window.open("about:blank", "_blank");  // opened in the click: no popup blocker
    try {
      const t = await api(`/v1/machines/${m.id}/live`, { method: "POST" });
      const u = new URL(t.url, location.href), here = u.pathname + u.search;  // this server's page
      if (w) { w.opener = null; w.location.href = here; } else location.assign(here);
    } catch (err) { if (w) w.close(); toast(err.message, "bad"); }
  }

  async function load() {
    try {
      const r = await api("/v1/machines?limit=200");
      const live_ = m => m.status === "running";
      tbody.replaceChildren(...r.data.filter(m => m.status !== "terminated").map(m => h("tr", { "data-machine-id": m.id },
        h("td", { class: "task", "data-label": "Name" }, h("b", {}, m.display_name), h("span", { class: "sub" }, m.id)),
        h("td", { "data-label": "Kind" }, m.desktop_enabled ? "desktop" : (m.kind || "terminal")),
        h("td", { "data-label": "Status" }, machineBadge(m.status)),
        h("td", { "data-label": "Created" }, ago(m.created_at)),
        h("td", { "data-label": "" }, h("div", { class: "row" },
          h("button", { type: "button", class: "btn small", disabled: !live_(m), onclick: () => live(m),
            title: "Watch the screen and take over mouse and keyboard" }, "Live view"),
          confirmButton("Delete", "Confirm delete", async () => {
            try { await api(`/v1/machines/${m.id}`, { method: "DELETE" }); toast(`Deleted ${m.display_name}.`); await load(); }
            catch (err) { toast(err.message, "bad"); }
          }))))));
      empty.hidden = tbody.children.length > 0;
      status.replaceChildren();
    } catch (err) { status.replaceChildren(errorBox(err)); }
  }
  await load();
}

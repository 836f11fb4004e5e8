// Schedules: the account's schedules (what, when, how they have been doing),
// a new one from a preset, pause / resume / run now / delete, and each
// schedule's history of firings. Shown once this server serves GET /v1/schedules.
import { api } from "./api.js";
import { ago, badge, confirmButton, errorBox, h, toast } from "./ui.js";

const FREQUENCIES = [
  ["every_15_minutes", "Every 15 minutes"], ["every_30_minutes", "Every 30 minutes"],
  ["hourly", "Hourly"], ["daily", "Daily"], ["weekdays", "Weekdays"], ["weekly", "Weekly"],
  ["monthly", "Monthly"], ["custom", "Custom (cron)"],
];
const AT_TIME = new Set(["daily", "weekdays", "weekly", "monthly"]);
const DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
const when = s => s ? new Date(s).toLocaleString() : "—";

function field(id, label, input) {
  input.id = id;
  return h("div", {}, h("label", { for: id }, label), input);
}

function rule(s) {
  if (s.frequency === "custom" || (!s.frequency && s.cron)) return `cron ${s.cron}`;
  if (!s.frequency) return "once";
  const f = FREQUENCIES.find(([v]) => v === s.frequency);
  return (f ? f[1] : s.frequency) + (s.timezone ? ` · ${s.timezone}` : "");
}

function state(s) {
  if (s.enabled) return badge("active");
  return h("span", {}, badge("paused"), s.paused_reason ? h("span", { class: "sub" }, s.paused_reason) : null);
}

async function machineOptions(select) {
  const r = await api("/v1/machines?limit=200");
  const usable = r.data.filter(m => m.status !== "terminated" && m.status !== "deleting");
  select.replaceChildren(...usable.map(m => h("option", { value: m.id }, `${m.display_name} (${m.id.slice(0, 8)})`)));
  return usable.length;
}

function createForm(onCreated) {
  const name = h("input", { required: true, maxlength: "100", placeholder: "e.g. morning report", autocomplete: "off" });
  const machine = h("select", {});
  const task = h("textarea", { required: true, rows: "2", placeholder: "What the agent does each time" });
  const frequency = h("select", {}, FREQUENCIES.map(([v, l]) => h("option", { value: v, selected: v === "daily" }, l)));
  const time = h("input", { type: "time", value: "09:00" });
  const day = h("select", {}, DAYS.map(d => h("option", { value: d }, d[0].toUpperCase() + d.slice(1))));
  const dom = h("input", { type: "number", min: "1", max: "31", value: "1" });
  const cron = h("input", { placeholder: "*/5 * * * *", autocomplete: "off" });
  const tz = h("input", { value: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC", autocomplete: "off" });
  const submit = h("button", { type: "submit", class: "btn primary", id: "schedule-create" }, "Create schedule");
  const parts = {
    time: field("schedule-time", "Time", time), day: field("schedule-day", "Day of week", day),
    dom: field("schedule-dom", "Day of month", dom), cron: field("schedule-cron", "Cron", cron),
  };
  const show = () => {
    const f = frequency.value;
    parts.time.hidden = !AT_TIME.has(f);
    parts.day.hidden = f !== "weekly";
    parts.dom.hidden = f !== "monthly";
    parts.cron.hidden = f !== "custom";
  };
  frequency.addEventListener("change", show);
  show();
  const form = h("form", { class: "card", id: "schedule-form", "aria-label": "New schedule" },
    h("h2", {}, "New schedule"),
    h("div", { class: "form-grid wide" },
      field("schedule-name", "Name", name), field("schedule-machine", "Machine", machine),
      field("schedule-frequency", "Frequency", frequency), parts.time, parts.day, parts.dom, parts.cron,
      field("schedule-timezone", "Time zone", tz)),
    h("div", { class: "stack" }, field("schedule-task", "Task", task), h("div", { class: "row" }, submit)));
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const f = frequency.value;
    const body = { name: name.value.trim(), machine_id: machine.value, task_prompt: task.value.trim(),
                   frequency: f, timezone: tz.value.trim() || "UTC" };
    if (AT_TIME.has(f)) body.time = time.value;
    if (f === "weekly") body.day_of_week = day.value;
    if (f === "monthly") body.day_of_month = Number(dom.value);
    if (f === "custom") body.cron = cron.value.trim();
    submit.disabled = true;
    try {
      const s = await api("/v1/schedules", { method: "POST", body });
      toast(`Schedule ${s.name} created; next run ${when(s.next_run_at)}.`);
      name.value = ""; task.value = "";
      await onCreated();
    } catch (err) { toast(err.message, "bad"); }
    finally { submit.disabled = false; }
  });
  return { form, machine };
}

async function history(s, cell) {
  try {
    const r = await api(`/v1/schedules/${s.id}/runs?limit=20`);
    cell.replaceChildren(r.data.length ? h("table", { class: "list compact", "aria-label": `Runs of ${s.name}` },
      h("thead", {}, h("tr", {}, ["When", "Trigger", "Status", "Duration", "Credits", "Error"].map(t => h("th", { scope: "col" }, t)))),
      h("tbody", {}, r.data.map(x => h("tr", { "data-record-id": x.id },
        h("td", { "data-label": "When" }, when(x.executed_at)), h("td", { "data-label": "Trigger" }, x.trigger),
        h("td", { "data-label": "Status" }, badge(x.status)),
        h("td", { "data-label": "Duration" }, x.duration_seconds == null ? "—" : `${x.duration_seconds.toFixed(1)} s`),
        h("td", { "data-label": "Credits" }, String(x.credits_charged ?? 0)),
        h("td", { "data-label": "Error" }, x.error || ""))))) : h("p", { class: "muted" }, "No runs yet."));
  } catch (err) { cell.replaceChildren(errorBox(err)); }
}

export async function render(main, ds) {
  const head = h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Schedules"),
    h("p", { class: "muted" }, "Tasks that run on a timetable, by a signed webhook or after another schedule's run.")));
  if (ds.schedulesApi !== "1") {
    main.replaceChildren(head, h("div", { class: "callout info" },
      h("p", {}, "This server has no schedules (it does not serve GET /v1/schedules).")));
    return;
  }
  const tbody = h("tbody", { id: "schedules-body" });
  const empty = h("div", { class: "empty", hidden: true }, "No schedules. Create one above.");
  const status = h("div", { id: "schedules-status" });
  const { form, machine } = createForm(load);
  main.replaceChildren(head, h("div", { class: "stack" }, form, status,
    h("div", { class: "table-wrap" }, h("table", { class: "list", id: "schedules" },
      h("thead", {}, h("tr", {}, ["Name", "When", "State", "Next run", "Last run", "Runs", "Created"]
        .map(t => h("th", { scope: "col" }, t)), h("th", { scope: "col" }, h("span", { class: "muted" }, "Actions")))),
      tbody), empty)));

  async function act(s, verb, done) {
    // the table is drawn again before the toast says it is done
    try { await api(`/v1/schedules/${s.id}/${verb}`, { method: "POST", body: {} }); await load(); toast(done); }
    catch (err) { toast(err.message, "bad"); }
  }

  async function load() {
    try {
      if (!(await machineOptions(machine))) status.replaceChildren(h("div", { class: "callout info" },
        h("p", {}, "A schedule runs on a machine: provision one on the Machines page first.")));
      else status.replaceChildren();
      const r = await api("/v1/schedules?limit=100");
      const rows = [];
      for (const s of r.data) {
        const more = h("td", { colspan: "8" });
        const detail = h("tr", { class: "detail", hidden: true, "data-history-of": s.id }, more);
        const toggle = h("button", { type: "button", class: "btn small", "aria-expanded": "false" }, "History");
        toggle.addEventListener("click", async () => {
          const open = detail.hidden;
          detail.hidden = !open; toggle.setAttribute("aria-expanded", String(open));
          if (open) await history(s, more);
        });
        rows.push(h("tr", { "data-schedule-id": s.id },
          h("td", { class: "task", "data-label": "Name" }, h("b", {}, s.name), h("span", { class: "sub" }, s.task_prompt)),
          h("td", { "data-label": "When" }, rule(s)),
          h("td", { "data-label": "State" }, state(s)),
          h("td", { "data-label": "Next run", class: "next-run" }, when(s.next_run_at)),
          h("td", { "data-label": "Last run" }, when(s.last_run_at)),
          h("td", { "data-label": "Runs", class: "run-count" },
            `${s.run_count}` + (s.consecutive_failures ? ` (${s.consecutive_failures} failing)` : "")),
          h("td", { "data-label": "Created" }, ago(s.created_at)),
          h("td", { "data-label": "" }, h("div", { class: "row" },
            h("button", { type: "button", class: "btn small", onclick: () => act(s, "run", `Started ${s.name}.`) }, "Run now"),
            s.enabled
              ? h("button", { type: "button", class: "btn small", onclick: () => act(s, "pause", `Paused ${s.name}.`) }, "Pause")
              : h("button", { type: "button", class: "btn small", onclick: () => act(s, "resume", `Resumed ${s.name}.`) }, "Resume"),
            toggle,
            confirmButton("Delete", "Confirm delete", async () => {
              try { await api(`/v1/schedules/${s.id}`, { method: "DELETE" }); toast(`Deleted ${s.name}.`); await load(); }
              catch (err) { toast(err.message, "bad"); }
            })))), detail);
      }
      tbody.replaceChildren(...rows);
      empty.hidden = rows.length > 0;
    } catch (err) { status.replaceChildren(errorBox(err)); }
  }
  await load();
}

// Usage: this month's totals (GET /v1/usage) and credits and tokens per day
// (GET /v1/usage/daily).
import { api } from "./api.js";
import { h, num } from "./ui.js";

export async function render(main) {
  const [month, daily] = await Promise.all([api("/v1/usage"), api("/v1/usage/daily?days=30")]);
  const byDay = new Map(daily.data.map(d => [d.date, d]));
  const days = [];
  const today = new Date();
  for (let i = daily.days - 1; i >= 0; i--) {
    const d = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
    const key = d.toISOString().slice(0, 10);
    days.push(byDay.get(key) || { date: key, credits: 0, steps: 0, input_tokens: 0, output_tokens: 0 });
  }
  const peak = Math.max(1, ...days.map(d => d.credits));
  const kpi = (v, l, id) => h("div", { class: "card kpi", id }, h("div", { class: "v" }, v), h("div", { class: "l" }, l));
  const wallet = month.wallet_unlimited ? "unlimited" : num(month.balance);
  const rows = Object.entries(month.breakdown || {}).sort((a, b) => b[1].credits - a[1].credits);
  main.replaceChildren(
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Usage"),
      h("p", { class: "muted" }, `This month (${month.period}, UTC) and the last ${daily.days} days.`))),
    h("div", { class: "stack" },
      h("div", { class: "kpis" },
        kpi(num(month.total_credits), "Credits this month", "kpi-credits"),
        kpi(num(month.input_tokens), "Input tokens", "kpi-input"),
        kpi(num(month.output_tokens), "Output tokens", "kpi-output"),
        kpi(wallet, "Wallet balance", "kpi-wallet")),
      h("section", { class: "card", "aria-label": "Credits by day" },
        h("h2", {}, "Credits by day"),
        h("div", { class: "bars", id: "usage-bars", role: "list" }, days.map(d => h("div", {
          class: "bar" + (d.credits ? "" : " zero"), role: "listitem", tabindex: "0",
          style: `height:${d.credits ? Math.max(3, (d.credits / peak) * 100) : 1.5}%`,
          title: `${d.date}: ${num(d.credits)} credits, ${num(d.steps)} steps, ${num(d.input_tokens)} in / ${num(d.output_tokens)} out tokens`,
          "aria-label": `${d.date}: ${d.credits} credits`,
        }))),
        h("div", { class: "bar-labels" }, h("span", {}, days[0].date), h("span", {}, days[days.length - 1].date))),
      h("div", { class: "table-wrap" }, h("table", { class: "list", id: "usage-days" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Day (UTC)"), h("th", { scope: "col", class: "num" }, "Steps"),
          h("th", { scope: "col", class: "num" }, "Credits"), h("th", { scope: "col", class: "num" }, "Input tokens"),
          h("th", { scope: "col", class: "num" }, "Output tokens"))),
        h("tbody", {}, [...days].reverse().filter(d => d.credits || d.steps).map(d => h("tr", {},
          h("td", { "data-label": "Day" }, d.date), h("td", { class: "num", "data-label": "Steps" }, num(d.steps)),
          h("td", { class: "num", "data-label": "Credits" }, num(d.credits)),
          h("td", { class: "num", "data-label": "Input tokens" }, num(d.input_tokens)),
          h("td", { class: "num", "data-label": "Output tokens" }, num(d.output_tokens)))))),
        days.some(d => d.credits || d.steps) ? null : h("div", { class: "empty" }, "Nothing used in these days.")),
      h("div", { class: "table-wrap" }, h("table", { class: "list", id: "usage-breakdown" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "What (this month)"), h("th", { scope: "col", class: "num" }, "Requests"),
          h("th", { scope: "col", class: "num" }, "Credits"), h("th", { scope: "col", class: "num" }, "Tokens"))),
        h("tbody", {}, rows.map(([k, v]) => h("tr", {},
          h("td", { "data-label": "What" }, h("code", {}, k)), h("td", { class: "num", "data-label": "Requests" }, num(v.requests)),
          h("td", { class: "num", "data-label": "Credits" }, num(v.credits)),
          h("td", { class: "num", "data-label": "Tokens" }, num((v.input_tokens || 0) + (v.output_tokens || 0))))))))));
}

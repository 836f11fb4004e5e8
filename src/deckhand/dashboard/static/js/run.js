// One run: status, result or error, the steps with their screens (a player
// with previous / next / a scrubber), the live view while it runs, Cancel, and
// Resume for a run that waits for a human. The steps come from
// GET /v1/runs/{id}/steps where the server has it (with each step's screen),
// else from the run's events (GET /v1/runs/{id}/events), which also keep the
// page live.
import { api, ApiError, listAll, stream } from "./api.js";
import { badge, confirmButton, describeAction, duration, h, num, taskSummary, toast, when } from "./ui.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled", "timed_out"]);
const LIVE = new Set(["running", "awaiting_human"]);

export async function render(main, ds) {
  const id = ds.runId;
  let run = await api(`/v1/runs/${id}`);
  let useStepsApi = ds.stepsApi === "1";
  const steps = new Map();        // number -> step (from the steps API, else from events)
  const notes = [];               // {after, kind, text}: a human was asked, a human answered
  let selected = null;            // the step number on screen
  let follow = true;              // keep showing the newest step while the run goes on
  let showAfter = false;          // the settled screen after the step's actions
  let playing = null;

  // ---------------------------------------------------------------- layout
  const head = h("div", { class: "page-head" });
  const facts = h("section", { class: "card", "aria-label": "Run details" });
  const outcome = h("div", { id: "outcome" });
  const sourceNote = h("div", { id: "source-note", hidden: true });
  const screen = h("div", { class: "screen", id: "screen" });
  const counter = h("span", { class: "counter", id: "step-counter", "aria-live": "polite" }, "—");
  const prev = h("button", { type: "button", class: "btn", id: "prev-step", "aria-label": "Previous step" }, "◀ Previous");
  const next = h("button", { type: "button", class: "btn", id: "next-step", "aria-label": "Next step" }, "Next ▶");
  const play = h("button", { type: "button", class: "btn", id: "play", "aria-pressed": "false" }, "▶ Play");
  const scrub = h("input", { type: "range", id: "scrubber", min: "1", max: "1", value: "1", "aria-label": "Step" });
  const afterToggle = h("button", { type: "button", class: "btn small", id: "after-toggle", "aria-pressed": "false", hidden: true }, "Screen after");
  const detail = h("div", { class: "step-detail", id: "step-detail" });
  const player = h("section", { class: "card player", id: "player", tabindex: "0", "aria-label": "Steps player (arrow keys step through)" },
    screen, h("div", { class: "controls" }, prev, counter, next, scrub, play, afterToggle), detail);
  const timeline = h("ol", { class: "timeline", id: "timeline", "aria-label": "Steps" });
  const liveBox = h("section", { class: "card live-view", id: "live-view", hidden: true },
    h("div", { class: "row spread" }, h("h2", {}, "Live view"), h("a", { id: "takeover", target: "_blank", rel: "noopener", class: "btn small" }, "Open / take over")),
    h("div", { id: "live-frame" }));
  main.replaceChildren(h("div", { class: "stack" }, head, facts, outcome, liveBox, sourceNote,
    h("div", { class: "run-grid" }, player,
      h("section", { class: "card" }, h("h2", {}, "Timeline"), timeline))));

  // ---------------------------------------------------------------- run facts
  function drawRun() {
    document.title = `Run ${id.slice(0, 8)} · Deckhand`;
    const actions = h("div", { class: "row" });
    if (!TERMINAL.has(run.status)) {
      actions.append(confirmButton("Cancel run", "Confirm cancel", cancel, "btn danger"));
    }
    head.replaceChildren(
      h("div", {},
        h("a", { href: "/runs", class: "small" }, "← Runs"),
        h("div", { class: "row" }, h("h1", {}, "Run"), h("span", { id: "run-status" }, badge(run.status))),
        h("span", { class: "sub" }, id)),
      actions);
    const usage = run.usage || {};
    facts.replaceChildren(
      h("h2", {}, taskSummary(run.task)),
      h("pre", { class: "task-text mono small", id: "task-text" }, run.task),
      h("dl", { class: "facts" },
        fact("Machine", h("span", { class: "mono" }, run.machine_id)),
        fact("Brain", [run.brain, run.model && run.model !== run.brain ? ` · ${run.model}` : ""].join("")),
        fact("Steps", h("span", { id: "steps-done" }, `${run.steps_completed} of at most ${run.max_steps}`)),
        fact("Credits", num(run.credits_charged)),
        fact("Tokens", `${num(usage.input_tokens)} in · ${num(usage.output_tokens)} out`),
        fact("Created", when(run.created_at)),
        fact("Duration", duration(run.started_at, run.finished_at)),
      ));
    drawOutcome();
    drawLive();
  }

  let outcomeOf = null;
  function drawOutcome() {
    // Redrawn only when it changes: a note being typed survives every refresh.
    const key = JSON.stringify([run.status, run.awaiting_human_reason, run.result, run.error]);
    if (key === outcomeOf) return;
    outcomeOf = key;
    if (run.status === "succeeded") {
      const r = run.result || {};
      outcome.replaceChildren(h("section", { class: "callout ok", id: "result" },
        h("h2", {}, "Result"), h("p", {}, r.answer || "Done."),
        r.last_output ? h("pre", { class: "task-text mono small" }, r.last_output) : null));
    } else if (run.status === "awaiting_human") {
      const note = h("textarea", { id: "note", maxlength: "2000", placeholder: "What you did, or what the agent should know (recorded on the timeline)" });
      const resume = h("button", { type: "button", class: "btn primary", id: "resume" }, "Resume");
      resume.addEventListener("click", async () => {
        resume.disabled = true;
        try {
          const body = note.value.trim() ? { note: note.value.trim() } : undefined;
          run = await api(`/v1/runs/${id}/resume`, { method: "POST", body });
          toast("Resumed: the run goes on.");
          drawRun();
        } catch (err) { toast(err.message, "bad"); resume.disabled = false; }
      });
      outcome.replaceChildren(h("section", { class: "callout warn", id: "awaiting" },
        h("h2", {}, "The agent needs a human"),
        h("p", { id: "question" }, run.awaiting_human_reason || "The agent asked for help."),
        h("p", { class: "small muted" }, "Take over in the live view if you need to, then resume with a note — or cancel the run."),
        h("label", { for: "note" }, "Note for the agent"), note,
        h("div", { class: "row", style: "margin-top:.75rem" }, resume,
          confirmButton("Cancel run", "Confirm cancel", cancel, "btn danger"))));
    } else if (TERMINAL.has(run.status)) {
      const e = run.error || {};
      outcome.replaceChildren(h("section", { class: "callout bad", id: "error" },
        h("h2", {}, run.status === "cancelled" ? "Cancelled" : run.status === "timed_out" ? "Timed out" : "Failed"),
        h("p", {}, h("code", {}, e.code || run.status), " ", e.message || "")));
    } else {
      outcome.replaceChildren();
    }
  }

  async function cancel() {
    try {
      run = await api(`/v1/runs/${id}/cancel`, { method: "POST" });
      toast(run.status === "cancelled" ? "Cancelled." : "Cancel requested.");
      drawRun();
    } catch (err) { toast(err.message, "bad"); }
  }

  // ---------------------------------------------------------------- live view
  let liveFor = null;
  async function drawLive() {
    if (!LIVE.has(run.status)) {
      liveBox.hidden = true; liveFor = null;
      document.getElementById("live-frame").replaceChildren();
      return;
    }
    if (liveFor === run.machine_id) return;
    liveFor = run.machine_id;
    try {
      const t = await api(`/v1/machines/${run.machine_id}/live`, { method: "POST" });
      if (!LIVE.has(run.status)) return;
      // this server's own page: by path, whatever public URL the link was made with
      const u = new URL(t.url, location.href), here = u.pathname + u.search;
      document.getElementById("takeover").href = here;
      document.getElementById("live-frame").replaceChildren(
        h("iframe", { src: here, title: "Live view of the machine", allow: "clipboard-read; clipboard-write" }));
      liveBox.hidden = false;
    } catch (err) {
      liveBox.hidden = false;
      document.getElementById("live-frame").replaceChildren(h("p", { class: "muted small" },
        `No live view: ${err.message}`));
    }
  }

  // ---------------------------------------------------------------- steps
  const ordered = () => [...steps.values()].sort((a, b) => a.number - b.number);

  function stepOf(n) {
    if (!steps.has(n)) steps.set(n, { number: n, actions: [], results: [], status: "running" });
    return steps.get(n);
  }

  function drawSteps() {
    const list = ordered();
    if (follow && list.length) selected = list[list.length - 1].number;
    timeline.replaceChildren(...list.flatMap(s => [
      h("li", {}, h("button", {
        type: "button", "data-step": String(s.number), "aria-current": s.number === selected ? "step" : null,
        onclick: () => { follow = false; select(s.number); player.focus(); },
      }, h("span", { class: "n" }, `#${s.number}`), h("span", { class: "t" },
        h("b", {}, s.text || (s.actions[0] ? describeAction(s.actions[0]) : s.status === "running" ? "deciding…" : "—")),
        h("span", {}, summary(s))))),
      ...notes.filter(x => x.after === s.number).map(x => h("li", { class: "note", "data-note": x.kind }, x.text)),
    ]));
    if (!list.length) timeline.replaceChildren(h("li", { class: "muted" }, run.status === "queued" ? "Waiting for a worker…" : "No steps yet."));
    drawPlayer();
  }

  function summary(s) {
    const r = s.results || [];
    const failed = r.filter(x => x && !x.ok).length;
    const parts = [`${s.actions.length} action${s.actions.length === 1 ? "" : "s"}`];
    if (r.length) parts.push(failed ? `${failed} failed` : "all ok");
    if (s.status === "running") parts.push("in progress");
    return parts.join(" · ");
  }

  function select(n) {
    selected = n;
    for (const b of timeline.querySelectorAll("button[data-step]")) {
      if (Number(b.dataset.step) === n) b.setAttribute("aria-current", "step"); else b.removeAttribute("aria-current");
    }
    drawPlayer();
  }

  function drawPlayer() {
    const list = ordered();
    const i = list.findIndex(s => s.number === selected);
    const s = list[i];
    prev.disabled = i <= 0;
    next.disabled = i < 0 || i >= list.length - 1;
    scrub.max = String(Math.max(1, list.length));
    scrub.value = String(i + 1 || 1);
    scrub.disabled = list.length < 2;
    play.disabled = list.length < 2;
    counter.textContent = s ? `Step ${s.number} of ${list.length}` : "No steps";
    player.dataset.step = s ? String(s.number) : "";
    const url = s && (showAfter && s.screenshot_after_url ? s.screenshot_after_url : s.screenshot_url);
    afterToggle.hidden = !(s && s.screenshot_after_url);
    screen.classList.toggle("blank", !url);
    if (url) {
      const img = screen.querySelector("img") || h("img", { id: "screen-img" });
      img.alt = `The screen the agent saw at step ${s.number}${showAfter ? " (after its actions)" : ""}`;
      if (img.getAttribute("src") !== url) img.src = url;
      screen.replaceChildren(img, h("span", { class: "tag" }, showAfter ? `after step ${s.number}` : `step ${s.number}`));
    } else {
      screen.replaceChildren(h("div", { class: "none", id: "no-screen" }, !s ? "The steps' screens show here."
        : useStepsApi ? "No screen for this step (the machine has no display)." : "No screen recorded for this step."));
    }
    detail.replaceChildren(...(s ? stepDetail(s) : [h("p", { class: "muted" }, "Nothing to show yet.")]).filter(Boolean));
  }

  function stepDetail(s) {
    const rows = s.actions.map((a, k) => {
      const r = (s.results || [])[k];
      return h("li", { "data-action": String(k) },
        h("div", { class: "act" }, describeAction(a)),
        r ? h("div", { class: "res" },
          h("span", { class: r.ok ? "okay" : "fail" }, r.ok ? "✓ ok" : "✗ failed"),
          r.exit_code !== null && r.exit_code !== undefined ? ` · exit ${r.exit_code}` : "",
          r.duration_ms !== undefined && r.duration_ms !== null ? ` · ${r.duration_ms} ms` : "",
          r.error ? h("div", { class: "fail" }, r.error) : null,
          r.output ? h("pre", {}, r.output) : null)
          : h("div", { class: "res muted" }, "running…"));
    });
    const facts = [
      s.started_at && s.finished_at ? duration(s.started_at, s.finished_at)
        : s.duration_ms !== undefined ? `${(s.duration_ms / 1000).toFixed(1)} s` : null,
      s.credits !== undefined ? `${num(s.credits)} credits` : null,
      s.tokens ? `${num(s.tokens.input_tokens)} in / ${num(s.tokens.output_tokens)} out tokens` : null,
    ].filter(Boolean);
    return [
      h("div", { class: "row spread" }, h("h3", {}, `Step ${s.number}`),
        h("span", { class: "small muted" }, facts.join(" · "))),
      s.text ? h("p", { class: "said", id: "said" }, s.text) : null,
      s.reasoning ? h("p", { class: "reasoning" }, s.reasoning) : null,
      ...(s.extra || []).map(x => h("p", { class: "small muted" }, x)),
      rows.length ? h("ul", { class: "actions", id: "step-actions" }, rows) : h("p", { class: "muted small" }, "No actions in this step."),
      (s.downloads || []).length ? h("div", { class: "downloads", id: "step-downloads" },
        h("h4", {}, "Downloaded"),
        h("ul", {}, s.downloads.map(f => h("li", {},
          h("a", { href: f.url, download: f.name }, f.name),
          h("span", { class: "small muted" }, ` · ${size(f.size)}${f.source_url ? ` · from ${f.source_url}` : ""}`))))) : null,
    ];
  }

  function size(bytes) {
    return bytes < 1024 ? `${bytes} B` : bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1048576).toFixed(1)} MB`;
  }

  function move(delta) {
    const list = ordered();
    const i = list.findIndex(s => s.number === selected);
    const j = Math.min(list.length - 1, Math.max(0, i + delta));
    if (list[j]) { follow = j === list.length - 1 && !TERMINAL.has(run.status); select(list[j].number); }
  }
  prev.addEventListener("click", () => { stop(); move(-1); });
  next.addEventListener("click", () => { stop(); move(1); });
  scrub.addEventListener("input", () => { stop(); const s = ordered()[Number(scrub.value) - 1]; if (s) { follow = false; select(s.number); } });
  afterToggle.addEventListener("click", () => { showAfter = !showAfter; afterToggle.setAttribute("aria-pressed", String(showAfter)); drawPlayer(); });
  player.addEventListener("keydown", ev => {
    if (ev.target !== player && ev.target !== scrub) return;
    if (ev.key === "ArrowLeft") { ev.preventDefault(); stop(); move(-1); }
    if (ev.key === "ArrowRight") { ev.preventDefault(); stop(); move(1); }
  });
  function stop() { if (playing) { clearInterval(playing); playing = null; play.textContent = "▶ Play"; play.setAttribute("aria-pressed", "false"); } }
  play.addEventListener("click", () => {
    if (playing) return stop();
    const list = ordered();
    if (list.length && selected === list[list.length - 1].number) select(list[0].number);
    follow = false;
    play.textContent = "❚❚ Pause"; play.setAttribute("aria-pressed", "true");
    playing = setInterval(() => {
      const l = ordered();
      if (selected === l[l.length - 1].number) return stop();
      move(1);
    }, 1000);
  });

  // ---------------------------------------------------------------- sources
  async function loadSteps() {
    if (!useStepsApi) return;
    const after = Math.max(0, ...[...steps.values()].filter(s => s.recorded).map(s => s.number));
    try {
      const page = await listAll(`/v1/runs/${id}/steps`, s => s.number, { start: after || null });
      for (const s of page) {
        const old = steps.get(s.number) || {};
        steps.set(s.number, { ...old, ...s, actions: s.actions || [], results: s.results || [], status: "done", recorded: true });
      }
      drawSteps();
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) { useStepsApi = false; showFallback(); drawPlayer(); }
      else toast(err.message, "bad");
    }
  }

  function showFallback() {
    sourceNote.hidden = false;
    sourceNote.replaceChildren(h("div", { class: "callout info small" },
      h("p", {}, "This server keeps no recorded screens (it does not serve GET /v1/runs/{id}/steps): the timeline below is built from the run's events.")));
  }
  if (!useStepsApi) showFallback();

  let refetch = null, ended = false;
  function refreshRun() {
    clearTimeout(refetch);
    refetch = setTimeout(async () => {
      try {
        run = await api(`/v1/runs/${id}`); drawRun(); drawSteps();
        if (ended) main.dataset.ended = "1";  // every event read, the run's last state drawn
      } catch (err) { toast(err.message, "bad"); }
    }, 150);
  }

  const ev = fn => (e) => { fn(e.data || {}); };
  const es = stream(`/v1/runs/${id}/events`, {
    step: ev(d => {
      const s = stepOf(d.number);
      if (d.status === "completed") {
        s.status = "done"; s.duration_ms = d.duration_ms;
        if (useStepsApi) loadSteps();
      }
      drawSteps();
    }),
    reasoning: ev(d => { const s = stepOf(d.step); if (!s.recorded) s.reasoning = d.text; drawSteps(); }),
    text: ev(d => { const s = stepOf(d.step); if (!s.recorded) s.text = d.text; drawSteps(); }),
    tool_call: ev(d => { const s = stepOf(d.step); if (!s.recorded) s.actions[d.index] = d.action; drawSteps(); }),
    tool_result: ev(d => { const s = stepOf(d.step); if (!s.recorded) s.results[d.index] = d; drawSteps(); }),
    billing: ev(d => { const s = stepOf(d.step); if (!s.recorded) s.credits = d.credits; refreshRun(); }),
    recovery: ev(d => { const s = stepOf(d.step); (s.extra ||= []).push(`Recovery hint: ${d.message}`); }),
    verification: ev(d => { const s = stepOf(d.step); (s.extra ||= []).push(`Verification ${d.passed ? "passed" : "failed"}: ${d.reason}`); }),
    awaiting_human: ev(d => { notes.push({ after: steps.size, kind: "asked", text: `Asked a human: ${d.reason}` }); drawSteps(); refreshRun(); }),
    resumed: ev(d => { notes.push({ after: steps.size, kind: "resumed", text: d.note ? `Resumed with a note: ${d.note}` : "Resumed." }); drawSteps(); refreshRun(); }),
    status: ev(() => refreshRun()),
    done: ev(() => { es.close(); follow = false; ended = true; refreshRun(); }),
  });
  addEventListener("pagehide", () => es.close());

  drawRun();
  drawSteps();
  await loadSteps();
}

function fact(label, value) {
  return h("div", {}, h("dt", {}, label), h("dd", {}, value));
}

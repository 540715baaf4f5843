// History page: the stored runs, newest first; a run opens (also via `?run_id=`) re-rendered
// from its stored files: metadata/summary from `GET /api/runs/{id}`, text and live curves from
// the replayed `events.ndjson`. A run can be pinned as the baseline (localStorage) to see
// per-machine deltas of TTFT, tok/s and total time on every other run.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const PAGE = 20;
  const BASELINE_KEY = "benchrace.baseline";
  const listEl = $("runs-list"), head = $("run-head"), empty = $("run-empty");
  const view = new RunView({ cardsEl: $("cards"), comparisonEl: $("comparison") });
  let offset = 0, total = 0, openId = null;

  function baseline() {
    try { return JSON.parse(localStorage.getItem(BASELINE_KEY) || "null"); } catch (_) { return null; }
  }

  async function loadList() {
    let page;
    try {
      page = await BR.api(`/api/runs?limit=${PAGE}&offset=${offset}`);
    } catch (e) {
      BR.clear(listEl).appendChild(BR.el("li", { class: "notice error", text: `Could not load runs: ${e.message}` }));
      return;
    }
    const runs = BR.list(page, "runs");
    total = typeof page.total === "number" ? page.total : runs.length;
    BR.clear(listEl);
    if (!runs.length) listEl.appendChild(BR.el("li", { class: "hint", text: "No runs yet: start one on the Race page." }));
    const base = baseline();
    for (const r of runs) {
      const li = BR.el("li", { dataset: { runId: r.run_id }, class: r.run_id === openId ? "selected" : "", tabindex: "0",
        on: { click: () => openRun(r.run_id), keydown: (e) => { if (e.key === "Enter") openRun(r.run_id); } } },
        BR.el("div", { class: "run-title" },
          BR.el("strong", { text: `${r.test_type === "llm_sweep" ? "sweep · " : ""}${(r.models || []).join(", ") || "run"}` }),
          BR.el("span", { class: `run-state ${r.status}`, text: r.status || "" })),
        BR.el("div", { class: "hint", text: `${BR.fmtTime(r.started_at)} · ${r.machines ?? "?"} machines${r.winner ? ` · ★ ${r.winner}` : ""}` }),
        r.prompt_preview ? BR.el("div", { class: "hint", text: r.prompt_preview }) : null,
        base && base.run_id === r.run_id ? BR.el("div", { class: "pin", text: "● baseline" }) : null);
      listEl.appendChild(li);
    }
    $("prev").disabled = offset === 0;
    $("next").disabled = offset + PAGE >= total;
    showBaselineInfo();
  }

  function showBaselineInfo() {
    const b = baseline();
    const info = BR.clear($("baseline-info"));
    if (!b) { info.textContent = "No baseline pinned."; return; }
    info.appendChild(document.createTextNode(`Baseline: ${b.run_id} (${b.model || "?"}) `));
    info.appendChild(BR.el("button", { type: "button", class: "chip", text: "unpin",
      on: { click: () => { localStorage.removeItem(BASELINE_KEY); refreshOpen(); } } }));
  }

  async function openRun(runId) {
    openId = runId;
    history.replaceState(null, "", `/history?run_id=${encodeURIComponent(runId)}`);
    listEl.querySelectorAll("li").forEach((li) => li.classList.toggle("selected", li.dataset.runId === runId));
    empty.hidden = true;
    head.hidden = false;
    BR.clear(head).appendChild(BR.el("span", { class: "hint", text: `Loading ${runId}…` }));
    let run, events;
    try {
      [run, events] = await Promise.all([
        BR.api(`/api/runs/${encodeURIComponent(runId)}`),
        BR.ndjson(`/api/runs/${encodeURIComponent(runId)}/events`),
      ]);
    } catch (e) {
      BR.clear(head).appendChild(BR.el("div", { class: "notice error", text: `Could not open ${runId}: ${e.message}` }));
      view.reset(null, []);
      return;
    }
    const md = run.metadata || run;
    const summary = run.summary && Array.isArray(run.summary.machines) ? run.summary : undefined;
    renderHead(runId, md, summary);
    const records = md.machines || [];
    if (md.test_type === "llm_sweep") {
      renderSweep(runId, records, events);
      return;
    }
    view.reset(runId, records.map(BR.machine));
    const repeats = (md.spec && (md.spec.repeat || md.spec.repeats)) || 1;
    for (const st of view.machines.values()) st.repeats = repeats;
    view.markSkipped(records.filter((m) => m.status === "skipped").map((m) => ({ machine_id: m.machine_id, reason: m.reason })));
    for (const ev of events) view.apply({ run_id: runId, ...ev });
    // Machines whose stored status says more than their events (e.g. interrupted, agent died).
    for (const m of records) {
      const st = view.machines.get(m.machine_id);
      if (st && !["done", "skipped"].includes(st.status) && ["error", "cancelled", "interrupted"].includes(m.status)) {
        view.setStatus(st, m.status, m.reason || st.reason);
      }
    }
    if (md.status !== "running") view.finish(summary);
    showDeltas(runId, md, summary);
  }

  function renderHead(runId, md, summary) {
    const { el } = BR;
    const spec = md.spec || {};
    const kv = el("dl", { class: "kv" });
    const add = (k, v) => { kv.appendChild(el("dt", { text: k })); kv.appendChild(el("dd", { text: v })); };
    add("Run", runId);
    add("Status", md.status || "?");
    add("Model", (md.models || []).join(", ") || spec.model || "?");
    add("Started", BR.fmtTime(md.started_at_s ?? md.started_at));
    if (md.ended_at || md.ended_at_s) add("Ended", BR.fmtTime(md.ended_at_s ?? md.ended_at));
    const settings = ["max_tokens", "num_ctx", "temperature", "repeat"].filter((k) => spec[k] !== undefined).map((k) => `${k} ${spec[k]}`);
    if (settings.length) add("Settings", settings.join(" · "));
    if (md.reason) add("Reason", md.reason);
    if (summary && summary.rank_by && md.test_type !== "llm_sweep") add("Ranked by", (RANK_METRICS[summary.rank_by] || { label: summary.rank_by }).label);
    const enc = encodeURIComponent(runId);
    const actions = el("div", { class: "run-actions" },
      el("a", { class: "chip", href: `/api/runs/${enc}/export.csv`, download: `${runId}.csv`, text: "Export CSV" }),
      el("a", { class: "chip", href: `/api/runs/${enc}/export.json`, download: `${runId}.json`, text: "Export JSON" }),
      md.test_type === "llm_sweep" ? null
        : el("button", { type: "button", class: "chip", id: "pin", text: "Pin as baseline", on: { click: () => pin(runId, md) } }),
      el("button", { type: "button", class: "chip danger", id: "delete", text: "Delete", on: { click: () => del(runId) } }));
    if (md.test_type === "llm_sweep") {
      actions.prepend(el("a", { class: "chip", href: `/sweep?run_id=${enc}`, text: "Open sweep charts" }));
    }
    BR.clear(head).append(el("h2", { text: `Run ${runId}` }), kv);
    if (md.prompt) head.append(el("div", { class: "hint prompt-label", text: "Prompt" }), el("pre", { class: "prompt-box", id: "run-prompt", text: md.prompt }));
    head.append(actions);
  }

  /** A stored sweep: each machine's outcome and its summary.csv rows (charts: the Sweep page). */
  function renderSweep(runId, records, events) {
    const { el } = BR;
    view.reset(null, []);
    const box = BR.clear(view.comparisonEl);
    box.hidden = false;
    box.appendChild(el("h2", { text: "Sweep results" }));
    const rowsBy = new Map();
    for (const ev of events) {
      if (ev.type === "sweep_done") rowsBy.set(ev.machine_id, (ev.payload && ev.payload.summary_rows) || []);
    }
    const cols = [["model", "Model"], ["ctx", "Ctx"], ["par", "Par"], ["success_count", "OK"], ["request_count", "Reqs"],
      ["completion_toks_per_s_total", "Total tok/s"], ["stream_toks_per_s_total", "Stream tok/s"],
      ["decode_toks_per_s_mean", "Decode tok/s"], ["ttft_s_mean", "TTFT s"]];
    for (const m of records) {
      const rows = rowsBy.get(m.machine_id) || [];
      box.appendChild(el("h3", {}, `${m.label || m.machine_id} `,
        el("span", { class: `run-state ${m.status === "complete" ? "complete" : "failed"}`, text: m.status }),
        m.reason ? el("span", { class: "hint", text: ` ${m.reason}` }) : null));
      if (!rows.length) continue;
      const table = el("table", { class: "progress-table", dataset: { machine: m.machine_id } },
        el("thead", {}, el("tr", {}, cols.map(([, h]) => el("th", { text: h })))));
      const tbody = el("tbody");
      for (const r of rows) {
        tbody.appendChild(el("tr", {}, cols.map(([k]) => {
          const v = r[k];
          return el("td", { text: typeof v === "number" && !Number.isInteger(v) ? BR.fmt(v, k === "ttft_s_mean" ? 3 : 1) : v ?? "–" });
        })));
      }
      table.appendChild(tbody);
      box.appendChild(table);
    }
    box.appendChild(el("p", {}, el("a", { href: `/sweep?run_id=${encodeURIComponent(runId)}`, text: "Charts of this sweep" })));
  }

  /** Stores the open run's per-machine figures as the baseline. */
  function pin(runId, md) {
    const machines = {};
    for (const r of view.rows()) {
      if (r.status !== "done") continue;
      machines[r.id] = { label: r.label, ttft_ms: r.ttft_ms, decode_tok_s: r.decode_tok_s, total_ms: r.total_ms };
    }
    localStorage.setItem(BASELINE_KEY, JSON.stringify({ run_id: runId, model: (md.models || []).join(", "), machines }));
    refreshOpen();
  }

  /** Green/red deltas per machine against the pinned baseline (same machine_id). */
  function showDeltas(runId) {
    const b = baseline();
    for (const st of view.machines.values()) {
      BR.clear(st.el.delta);
      st.el.delta.hidden = true;
    }
    if (!b || b.run_id === runId) return;
    for (const r of view.rows()) {
      const base = b.machines && b.machines[r.id];
      const st = view.machines.get(r.id);
      if (!base || r.status !== "done" || !st) continue;
      const items = [
        ["TTFT", r.ttft_ms, base.ttft_ms, "lower", BR.fmtMs],
        ["tok/s", r.decode_tok_s, base.decode_tok_s, "higher", (v) => BR.fmt(v, 1)],
        ["total", r.total_ms, base.total_ms, "lower", BR.fmtMs],
      ];
      st.el.delta.appendChild(BR.el("span", { class: "hint", text: "vs baseline:" }));
      for (const [name, now, then, better, f] of items) {
        if (BR.num(now) === null || BR.num(then) === null || then === 0) continue;
        const d = now - then;
        const pct = (d / then) * 100;
        const good = better === "higher" ? d > 0 : d < 0;
        const cls = Math.abs(pct) < 0.5 ? "delta" : `delta ${good ? "better" : "worse"}`;
        const sign = d > 0 ? "+" : d < 0 ? "−" : "±";
        st.el.delta.appendChild(BR.el("span", { class: cls, dataset: { delta: name },
          text: `${name} ${sign}${f(Math.abs(d))} (${sign}${BR.fmt(Math.abs(pct), 1)}%)` }));
      }
      st.el.delta.hidden = false;
    }
  }

  async function del(runId) {
    if (!confirm(`Delete run ${runId} and its stored files?`)) return;
    try {
      await BR.api(`/api/runs/${encodeURIComponent(runId)}`, { method: "DELETE" });
    } catch (e) {
      alert(`Delete failed: ${e.message}`);
      return;
    }
    const b = baseline();
    if (b && b.run_id === runId) localStorage.removeItem(BASELINE_KEY);
    openId = null;
    history.replaceState(null, "", "/history");
    head.hidden = true;
    empty.hidden = false;
    view.reset(null, []);
    loadList();
  }

  function refreshOpen() {
    loadList();
    if (openId) openRun(openId);
  }

  $("refresh").addEventListener("click", () => loadList());
  $("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); loadList(); });
  $("next").addEventListener("click", () => { offset += PAGE; loadList(); });

  // New and finished runs show up without a reload.
  BR.liveSocket((ev) => {
    if (ev.type === "run_start" || ev.type === "run_end") loadList();
    if (ev.type === "run_end" && ev.run_id === openId) openRun(openId);
  });
  loadList();
  const q = new URLSearchParams(location.search).get("run_id");
  if (q) openRun(q);
})();

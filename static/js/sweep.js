// Sweep page: start an `llm_sweep` run (LLMBench: warm-up, calibration, context × parallelism)
// on chosen machines, follow each machine's current cell from `sweep_progress`, and chart tok/s
// and TTFT against context size and parallelism, one line per machine (and model). Points come
// from finished cells live and are replaced by the agents' summary.csv rows at `sweep_done`.
// `/sweep?run_id=…` re-opens a stored sweep from its events.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const form = $("sweep-form"), statusEl = $("sweep-status"), progressEl = $("sweep-progress"), chartsEl = $("sweep-charts");
  const TOKS_METRICS = {
    completion_toks_per_s_total: { label: "total tok/s (mean of stream and non-stream)", progress: "total_tok_s" },
    stream_toks_per_s_total: { label: "stream tok/s (all parallel streams)", progress: "stream_tok_s" },
    decode_toks_per_s_mean: { label: "decode tok/s per request", progress: null },
  };
  let machines = [];
  let runId = null;
  let buffered = null;
  const per = new Map(); // machine_id -> {label, progress, cells: Map(key -> point), done, error}
  const sel = { metric: "completion_toks_per_s_total", par: null, ctx: null };
  let cellsVersion = 0, chartedVersion = -1; // charts are rebuilt only when points change

  async function loadMachines() {
    try {
      machines = BR.list(await BR.api("/api/machines"), "machines").map(BR.machine);
    } catch (e) {
      BR.notice(statusEl, "error", `Could not load machines: ${e.message}`);
      return;
    }
    const mBox = BR.clear($("sweep-machines"));
    for (const m of machines) {
      mBox.appendChild(BR.el("label", {},
        BR.el("input", { type: "checkbox", name: "machine", value: m.id, checked: m.online, disabled: !m.online,
          on: { change: fillModels } }),
        `${m.label}${m.online ? "" : ` (${m.state})`}`));
    }
    if (!machines.length) mBox.appendChild(BR.el("span", { class: "hint", text: "no machines configured" }));
    fillModels();
  }

  function checked(name) {
    return [...form.querySelectorAll(`input[name=${name}]:checked`)].map((i) => i.value);
  }

  /** Models on at least one chosen machine; each says how many of them have it. */
  function fillModels() {
    const chosen = new Set(checked("machine"));
    const prev = new Set(checked("model"));
    const count = new Map();
    for (const m of machines) if (chosen.has(m.id)) for (const name of m.models) count.set(name, (count.get(name) || 0) + 1);
    const box = BR.clear($("sweep-models"));
    if (!count.size) box.appendChild(BR.el("span", { class: "hint", text: "no models on the chosen machines" }));
    [...count.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).forEach(([name, n], i) => {
      box.appendChild(BR.el("label", {},
        BR.el("input", { type: "checkbox", name: "model", value: name, checked: prev.size ? prev.has(name) : i === 0 }),
        `${name} (${n}/${chosen.size})`));
    });
  }

  function intVal(id) {
    const v = Number($(id).value);
    return Number.isFinite(v) ? Math.round(v) : undefined;
  }

  async function start(e) {
    e.preventDefault();
    const parallel = $("parallel").value.split(/[ ,]+/).filter(Boolean).map(Number);
    const body = {
      test_type: "llm_sweep",
      models: checked("model"),
      machine_ids: checked("machine"),
      ctx: intVal("ctx"), sweep_count: intVal("sweep_count"), parallel,
      runs: intVal("runs"), warmup: intVal("warmup"), out_tokens: intVal("out_tokens"),
    };
    if (!body.models.length) { BR.notice(statusEl, "error", "Choose at least one model."); return; }
    $("sweep-run").disabled = true;
    try {
      const res = await BR.api("/api/runs", { json: body });
      open(res.run_id, (res.machines || []).filter((m) => m.status === "skipped"));
    } catch (err) {
      BR.notice(statusEl, "error", `Sweep not started: ${err.message}`);
      $("sweep-run").disabled = false;
    }
  }

  function open(id, skipped = []) {
    runId = id;
    per.clear();
    cellsVersion++;
    history.replaceState(null, "", `/sweep?run_id=${encodeURIComponent(id)}`);
    BR.clear(statusEl).appendChild(BR.el("div", { class: "notice info" }, "Sweep ",
      BR.el("a", { href: `/history?run_id=${encodeURIComponent(id)}`, text: id }),
      skipped.length ? ` — skipped: ${skipped.map((s) => `${s.machine_id} (${s.reason})`).join(", ")}` : ""));
    statusEl.hidden = false;
    resync();
  }

  async function resync() {
    if (!runId || buffered) return;
    buffered = [];
    try {
      const [run, events] = await Promise.all([
        BR.api(`/api/runs/${encodeURIComponent(runId)}`),
        BR.ndjson(`/api/runs/${encodeURIComponent(runId)}/events`),
      ]);
      const md = run.metadata || run;
      for (const m of md.machines || []) {
        const st = state(m.machine_id, m.label);
        if (m.status === "skipped" || m.status === "error") st.error = `${m.status}${m.reason ? `: ${m.reason}` : ""}`;
      }
      per.forEach((st) => { st.seq = new Map(); });
      events.forEach(apply);
      if (md.status && md.status !== "running") $("sweep-run").disabled = false;
    } catch (err) {
      console.warn("sweep resync failed", err);
    } finally {
      const held = buffered;
      buffered = null;
      held.forEach(apply);
      render();
    }
  }

  function state(id, label) {
    if (!per.has(id)) {
      const m = machines.find((x) => x.id === id);
      per.set(id, { id, label: label || (m && m.label) || id, progress: null, cells: new Map(), done: false, error: "", seq: new Map(), started: null });
    }
    return per.get(id);
  }

  function apply(ev) {
    if (!ev || !ev.machine_id) {
      if (ev && ev.type === "run_end") $("sweep-run").disabled = false;
      return;
    }
    const st = state(ev.machine_id);
    if (ev.job_id && typeof ev.seq === "number" && ev.seq > 0) {
      if (ev.seq <= (st.seq.get(ev.job_id) || 0)) return;
      st.seq.set(ev.job_id, ev.seq);
    }
    const p = ev.payload || {};
    switch (ev.type) {
      case "sweep_started": st.started = p; break;
      case "sweep_progress": {
        st.progress = p;
        if (p.state === "done") {
          const key = `${p.model}|${p.ctx}|${p.par}`;
          const old = st.cells.get(key);
          if (!old || !old.final) {
            cellsVersion++;
            st.cells.set(key, { model: p.model, ctx: p.ctx, par: p.par, final: false,
              completion_toks_per_s_total: p.total_tok_s, stream_toks_per_s_total: p.stream_tok_s,
              decode_toks_per_s_mean: null, ttft_s_mean: p.ttft_s });
          }
        }
        break;
      }
      case "sweep_done":
        st.done = true;
        cellsVersion++;
        for (const r of p.summary_rows || []) {
          const ctx = Number(r.ctx), par = Number(r.par);
          st.cells.set(`${r.model}|${ctx}|${par}`, { model: r.model, ctx, par, final: true,
            completion_toks_per_s_total: num(r.completion_toks_per_s_total), stream_toks_per_s_total: num(r.stream_toks_per_s_total),
            decode_toks_per_s_mean: num(r.decode_toks_per_s_mean), ttft_s_mean: num(r.ttft_s_mean) });
        }
        st.files = [p.requests_csv, p.summary_csv, p.load_times_csv].filter(Boolean);
        break;
      case "job_error": st.error = `${p.kind || "error"}: ${p.message || ""}`; break;
      case "job_cancelled": st.error = `cancelled: ${p.reason || ""}`; break;
      case "machine_status":
        if (["error", "cancelled", "interrupted"].includes(ev.status)) st.error = `${ev.status}: ${ev.reason || ""}`;
        break;
      default: break;
    }
  }

  function num(v) {
    const n = typeof v === "number" ? v : v === "" || v === null || v === undefined ? NaN : Number(v);
    return Number.isFinite(n) ? n : null;
  }

  let renderPending = false;
  function render() {
    if (renderPending) return;
    renderPending = true;
    requestAnimationFrame(() => {
      renderPending = false;
      renderProgress();
      if (chartedVersion !== cellsVersion) renderCharts();
    });
  }

  function renderProgress() {
    const { el } = BR;
    BR.clear(progressEl);
    progressEl.hidden = per.size === 0;
    if (!per.size) return;
    const table = el("table", { class: "progress-table", id: "sweep-table" },
      el("thead", {}, el("tr", {}, ...["Machine", "Model", "Ctx", "Par", "State", "Cell", "Warm-up", "Reqs", "Live tok/s", "Total tok/s", "TTFT", "Errors", "Sweep ETA"].map((h) => el("th", { text: h })))));
    const tbody = el("tbody");
    for (const st of per.values()) {
      const p = st.progress || {};
      const stateText = st.error || (st.done ? "done" : p.state ? p.state.replace("_", " ") : "waiting");
      tbody.appendChild(el("tr", { dataset: { machine: st.id } },
        el("td", { text: st.label }), el("td", { text: p.model || "–" }), el("td", { text: p.ctx ?? "–" }), el("td", { text: p.par ?? "–" }),
        el("td", { class: st.error ? "reason" : "", text: p.detail && !st.done ? `${stateText} (${p.detail})` : stateText }),
        el("td", { text: p.cells_total ? `${(p.cell_index || 0) + 1}/${p.cells_total}` : "–" }),
        el("td", { text: p.warmup_total ? `${p.warmup_done}/${p.warmup_total}` : "–" }),
        el("td", { text: p.requests_total ? `${p.requests_done}/${p.requests_total}` : "–" }),
        el("td", { text: st.done || p.state === "done" ? "–" : BR.fmt(p.live_tok_s, 1) }), el("td", { text: BR.fmt(p.total_tok_s, 1) }),
        el("td", { text: BR.num(p.ttft_s) === null ? "–" : BR.fmtMs(p.ttft_s * 1000) }),
        el("td", { text: p.errors ?? 0 }),
        el("td", { class: "sweep-eta", text: etaText(st, p) })));
    }
    table.appendChild(tbody);
    progressEl.append(el("h2", { text: "Progress" }), table);
  }

  /** The whole sweep's ETA from the agent (cells left × measured cell time), as "1m05s". */
  function etaText(st, p) {
    if (st.done || st.error) return "–";
    const eta = BR.num(p.sweep_eta_s);
    if (eta === null) return p.state ? "after the first measurements" : "–";
    const s = Math.max(0, Math.round(eta));
    return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`
      : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  }

  /** All points over every machine, for the axis selectors. */
  function allCells() {
    const out = [];
    for (const st of per.values()) for (const c of st.cells.values()) out.push({ ...c, machine: st });
    return out;
  }

  function selector(label, values, current, onChange, fmtv = String) {
    const s = BR.el("select", { on: { change: (e) => onChange(e.target.value) } });
    values.forEach(([v, text]) => s.appendChild(BR.el("option", { value: v, text: fmtv(text), selected: String(v) === String(current) })));
    return BR.el("label", {}, label, s);
  }

  function renderCharts() {
    chartedVersion = cellsVersion;
    const cells = allCells();
    chartsEl.hidden = cells.length === 0;
    if (!cells.length) return;
    const pars = [...new Set(cells.map((c) => c.par))].sort((a, b) => a - b);
    const ctxs = [...new Set(cells.map((c) => c.ctx))].sort((a, b) => a - b);
    if (!pars.includes(Number(sel.par))) sel.par = pars[0];
    if (!ctxs.includes(Number(sel.ctx))) sel.ctx = ctxs[ctxs.length - 1];
    const metric = TOKS_METRICS[sel.metric];
    BR.clear(chartsEl);
    chartsEl.append(BR.el("h2", { text: "Results" }),
      BR.el("div", { class: "chart-controls" },
        selector("tok/s metric", Object.entries(TOKS_METRICS).map(([k, v]) => [k, v.label]), sel.metric, (v) => { sel.metric = v; renderCharts(); }),
        selector("parallel (for the context charts)", pars.map((p) => [p, p]), sel.par, (v) => { sel.par = Number(v); renderCharts(); }),
        selector("context (for the parallel charts)", ctxs.map((c) => [c, c]), sel.ctx, (v) => { sel.ctx = Number(v); renderCharts(); })),
      BR.el("p", { class: "hint", text: "Points from finished cells appear live; the agents' summary.csv figures replace them when a machine's sweep is done." }));
    const grid = BR.el("div", { class: "chart-grid" });
    chartsEl.appendChild(grid);
    const lines = (filter, xKey, yKey, scale = 1) => {
      const groups = new Map();
      for (const c of cells.filter(filter)) {
        const multiModel = new Set(cells.map((x) => x.model)).size > 1;
        const label = multiModel ? `${c.machine.label} · ${c.model}` : c.machine.label;
        if (!groups.has(label)) groups.set(label, []);
        const y = c[yKey];
        if (BR.num(y) !== null) groups.get(label).push([c[xKey], y * scale]);
      }
      return [...groups.entries()].map(([label, points]) => ({ label, points: points.sort((a, b) => a[0] - b[0]) }));
    };
    const add = (title, xLabel, yLabel, series) => {
      const box = BR.el("div");
      grid.appendChild(box);
      Charts.multiLine(box, { title, xLabel, yLabel, series });
    };
    add(`${metric.label} vs context (parallel ${sel.par})`, "context tokens", "tok/s", lines((c) => c.par === sel.par, "ctx", sel.metric));
    add(`TTFT vs context (parallel ${sel.par})`, "context tokens", "TTFT ms", lines((c) => c.par === sel.par, "ctx", "ttft_s_mean", 1000));
    add(`${metric.label} vs parallel requests (context ${sel.ctx})`, "parallel", "tok/s", lines((c) => c.ctx === sel.ctx, "par", sel.metric));
    add(`TTFT vs parallel requests (context ${sel.ctx})`, "parallel", "TTFT ms", lines((c) => c.ctx === sel.ctx, "par", "ttft_s_mean", 1000));
  }

  BR.liveSocket((ev) => {
    if (!runId || ev.run_id !== runId) return;
    if (buffered) { buffered.push(ev); return; }
    apply(ev);
    render();
  }, (reconnected) => { if (reconnected) resync(); });
  form.addEventListener("submit", start);
  loadMachines().then(() => {
    const q = new URLSearchParams(location.search).get("run_id");
    if (q) open(q);
  });
})();

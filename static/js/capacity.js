// Capacity page: start an `llm_capacity` race (the same seeded schedule and prompts on every chosen
// machine, from the same instant), follow each machine live from `load_progress` (achieved rps,
// requests in flight, TTFT percentiles) and `load_step` (a point of its curve), then draw the
// curves side by side (throughput against p99 latency, goodput against offered load) and the
// verdict from `summary.json` (`run_end`). `/capacity?run_id=…` re-opens a stored race.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const { el, clear, fmt } = BR;
  const form = $("capacity-form"), statusEl = $("capacity-status"), liveEl = $("capacity-live");
  const chartsEl = $("capacity-charts"), verdictEl = $("capacity-verdict");
  let machines = [];
  let runId = null;
  let buffered = null;
  let summary = null;
  let spec = null;
  const per = new Map(); // machine_id -> {id, label, progress, steps: [], done, error, seq: Map}
  let stepsVersion = 0, chartedVersion = -1;

  async function loadMachines() {
    try {
      machines = BR.list(await BR.api("/api/machines"), "machines").map(BR.machine);
    } catch (e) {
      BR.notice(statusEl, "error", `Could not load machines: ${e.message}`);
      return;
    }
    const box = clear($("capacity-machines"));
    for (const m of machines) {
      box.appendChild(el("label", {},
        el("input", { type: "checkbox", name: "machine", value: m.id, checked: m.online, disabled: !m.online,
          on: { change: fillModels } }),
        `${m.label}${m.online ? "" : ` (${m.state})`}`));
    }
    if (!machines.length) box.appendChild(el("span", { class: "hint", text: "no machines configured" }));
    fillModels();
  }

  function chosen() {
    return [...form.querySelectorAll("input[name=machine]:checked")].map((i) => i.value);
  }

  /** Models on the chosen machines, the most widely held first. */
  function fillModels() {
    const ids = new Set(chosen());
    const count = new Map();
    for (const m of machines) if (ids.has(m.id)) for (const name of m.models) count.set(name, (count.get(name) || 0) + 1);
    const sel = clear($("capacity-model"));
    if (!count.size) sel.appendChild(el("option", { value: "", text: "no models on the chosen machines" }));
    [...count.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).forEach(([name, n]) => {
      sel.appendChild(el("option", { value: name, text: `${name} (${n}/${ids.size})` }));
    });
  }

  function numVal(id) {
    const raw = $(id).value;
    if (raw === "") return undefined;
    const v = Number(raw);
    return Number.isFinite(v) ? v : undefined;
  }

  async function start(e) {
    e.preventDefault();
    const search = $("search").value;
    const slo = {};
    if (numVal("slo_ttft_ms") !== undefined) slo.ttft_ms = numVal("slo_ttft_ms");
    if (numVal("slo_tpot_ms") !== undefined) slo.tpot_ms = numVal("slo_tpot_ms");
    const body = {
      test_type: "llm_capacity", model: $("capacity-model").value, machine_ids: chosen(), search, slo,
      percentile: numVal("percentile"), start: numVal("start"), max: numVal("max"),
      duration_s: numVal("duration_s"), input_tokens: numVal("input_tokens"), max_tokens: numVal("max_tokens"),
      repeat: numVal("repeat"),
    };
    const warm = numVal("warmup_s");
    if (warm) body.warmup_s = warm;
    if (!body.model) { BR.notice(statusEl, "error", "Choose a model."); return; }
    $("capacity-run").disabled = true;
    try {
      const res = await BR.api("/api/runs", { json: body });
      open(res.run_id, (res.machines || []).filter((m) => m.status === "skipped"));
    } catch (err) {
      BR.notice(statusEl, "error", `Capacity race not started: ${err.message}`);
      $("capacity-run").disabled = false;
    }
  }

  function open(id, skipped = []) {
    runId = id;
    summary = null;
    spec = null;
    per.clear();
    stepsVersion++;
    history.replaceState(null, "", `/capacity?run_id=${encodeURIComponent(id)}`);
    clear(statusEl).appendChild(el("div", { class: "notice info" }, "Capacity race ",
      el("a", { href: `/history?run_id=${encodeURIComponent(id)}`, text: id }),
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
      spec = md.spec || null;
      for (const m of md.machines || []) {
        const st = state(m.machine_id, m.label);
        if (m.status === "skipped" || m.status === "error") st.error = `${m.status}${m.reason ? `: ${m.reason}` : ""}`;
      }
      per.forEach((st) => { st.seq = new Map(); st.steps = []; });
      events.forEach(apply);
      if (run.summary) summary = run.summary;
      if (md.status && md.status !== "running") $("capacity-run").disabled = false;
    } catch (err) {
      console.warn("capacity resync failed", err);
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
      per.set(id, { id, label: label || (m && m.label) || id, progress: null, steps: [], done: null, error: "", seq: new Map() });
    }
    return per.get(id);
  }

  function apply(ev) {
    if (!ev) return;
    if (ev.type === "run_start" && ev.spec) spec = ev.spec;
    if (ev.type === "run_end") {
      if (ev.summary) summary = ev.summary;
      $("capacity-run").disabled = false;
      return;
    }
    if (!ev.machine_id) return;
    const st = state(ev.machine_id);
    if (ev.job_id && typeof ev.seq === "number" && ev.seq > 0) {
      if (ev.seq <= (st.seq.get(ev.job_id) || 0)) return;
      st.seq.set(ev.job_id, ev.seq);
    }
    const p = ev.payload || {};
    switch (ev.type) {
      case "load_progress": st.progress = p; break;
      case "load_step": st.steps.push(p); stepsVersion++; break;
      case "load_done": st.done = p; st.progress = null; break;
      case "job_error": st.error = `${p.kind || "error"}: ${p.message || ""}`; break;
      case "job_cancelled": st.error = `cancelled: ${p.reason || ""}`; break;
      case "machine_status":
        if (["error", "cancelled", "interrupted", "skipped"].includes(ev.status)) st.error = `${ev.status}: ${ev.reason || ""}`;
        break;
      default: break;
    }
  }

  const unit = () => (spec && spec.search === "rate" ? "req/s" : "concurrent");
  /** A level as people write it: 4 (concurrency), 3.25 (a rate). */
  const lvl = (v) => (v === null || v === undefined ? "none" : Number.isInteger(v) ? String(v) : fmt(v, 2));

  let renderPending = false;
  function render() {
    if (renderPending) return;
    renderPending = true;
    requestAnimationFrame(() => {
      renderPending = false;
      renderCards();
      if (chartedVersion !== stepsVersion) renderCharts();
      renderVerdict();
    });
  }

  function stat(label, value, cls) {
    return el("div", { class: `stat ${cls || ""}` }, el("span", { class: "stat-label", text: label }), el("span", { class: "stat-value", text: value }));
  }

  /** The live figures, or once the machine is done those of its step at capacity. */
  function figures(st) {
    const p = st.progress;
    if (p) return p;
    const d = st.done;
    if (!d) return null;
    return {
      achieved_rps: d.achieved_rps, throughput_rps: d.request_throughput_rps, in_flight: d.max_in_flight,
      ttft_p50_ms: d.ttft_ms ? d.ttft_ms.p50 : null, ttft_p99_ms: d.ttft_ms ? d.ttft_ms.p99 : null, final: true,
    };
  }

  /** The SLO percentile's label ("p90") and a step's value of the first SLO metric at it. */
  function sloAt(s) {
    const v = s.slo && s.slo.values && s.slo.values[0];
    return v ? (v.value_ms === null || v.value_ms === undefined ? "–" : BR.fmtMs(v.value_ms)) : "–";
  }

  function renderCards() {
    clear(liveEl);
    const pct = spec && spec.percentile ? `p${spec.percentile}` : "p99";
    const sloMetric = spec && spec.slo ? Object.keys(spec.slo)[0].replace("_ms", "").toUpperCase() : "TTFT";
    for (const st of per.values()) {
      const p = figures(st);
      const cap = st.done && st.done.capacity;
      const status = st.error ? st.error
        : cap ? (cap.capacity === null || cap.capacity === undefined ? "done: no level met the SLO"
          : `done: capacity ${lvl(cap.capacity)} ${cap.unit}`)
        : p ? `step ${p.step ?? 0} at ${lvl(p.level)} ${unit()} · ${p.phase}` : "waiting for the start";
      const card = el("article", { class: `card${st.error ? " failed" : ""}`, dataset: { machine: st.id } },
        el("header", {}, el("h3", { text: st.label }), el("span", { class: st.error ? "reason" : "hint", text: status })),
        el("div", { class: "stats" },
          stat("achieved", p && p.achieved_rps !== null && p.achieved_rps !== undefined ? `${fmt(p.achieved_rps, 2)} req/s` : "–", "achieved"),
          stat(p && p.final ? "answers/s at capacity" : "answers/s", p ? `${fmt(p.throughput_rps, 1)}` : "–", "throughput"),
          stat(p && p.final ? "max in flight" : "in flight", p ? String(p.in_flight) : "–", "in-flight"),
          stat("TTFT p50", p && p.ttft_p50_ms !== null && p.ttft_p50_ms !== undefined ? BR.fmtMs(p.ttft_p50_ms) : "–", "ttft-p50"),
          stat("TTFT p99", p && p.ttft_p99_ms !== null && p.ttft_p99_ms !== undefined ? BR.fmtMs(p.ttft_p99_ms) : "–", "ttft-p99"),
          stat("steps", String(st.steps.length), "steps")));
      if (st.steps.length) {
        const rows = st.steps.map((s) => el("tr", { class: s.pass ? "pass" : "fail" },
          el("td", { text: String(s.step) }), el("td", { text: lvl(s.level) }), el("td", { text: s.pass ? "pass" : "fail" }),
          el("td", { text: fmt(s.summary.request_throughput_rps, 2) }),
          el("td", { text: sloAt(s) }),
          el("td", { class: "reason", text: (s.slo.reasons || []).join("; ") })));
        card.appendChild(el("table", { class: "progress-table steps" },
          el("thead", {}, el("tr", {}, ...["step", "level", "", "req/s", `${pct} ${sloMetric}`, "why not"].map((h) => el("th", { text: h })))),
          el("tbody", {}, ...rows)));
      }
      liveEl.appendChild(card);
    }
  }

  /** Every step of every machine: the curve points (from summary.json once the race ended). */
  function curves() {
    const out = [];
    for (const st of per.values()) {
      const stored = summary && summary.capacity && summary.capacity.machines && summary.capacity.machines[st.id];
      const steps = stored ? stored.curve : st.steps;
      if (steps.length) out.push({ st, steps });
    }
    return out;
  }

  function renderCharts() {
    chartedVersion = stepsVersion;
    const all = curves();
    chartsEl.hidden = all.length === 0;
    if (!all.length) return;
    clear(chartsEl);
    chartsEl.appendChild(el("h2", { text: "Curves" }));
    const grid = el("div", { class: "chart-grid" });
    chartsEl.appendChild(grid);
    // A search visits a level more than once (and repeats searches): each curve point is the
    // median over the steps run at that offered level, so one point per level, in level order.
    const median = (xs) => {
      const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
      if (!v.length) return NaN;
      const h = Math.floor(v.length / 2);
      return v.length % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
    };
    const p99 = (s) => (s.summary.ttft_ms ? s.summary.ttft_ms.p99 : NaN);
    const perLevel = (steps) => {
      const groups = new Map();
      for (const s of steps) {
        if (!groups.has(s.level)) groups.set(s.level, []);
        groups.get(s.level).push(s);
      }
      return [...groups.entries()].sort((a, b) => a[0] - b[0]).map(([level, g]) => ({
        level,
        rps: median(g.map((s) => s.summary.request_throughput_rps)),
        p99: median(g.map(p99)),
        goodput: median(g.map((s) => s.summary.goodput_rps ?? NaN)),
      }));
    };
    const series = (xf, yf) => all.map(({ st, steps }) => ({
      label: st.label,
      points: perLevel(steps).map((p) => [xf(p), yf(p)]).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
        .sort((a, b) => a[0] - b[0]),
    }));
    const add = (id, title, xLabel, yLabel, ser, scatter) => {
      const box = el("div", { id });
      grid.appendChild(box);
      Charts.multiLine(box, { title, xLabel, yLabel, series: ser, pointTicks: false, scatter });
    };
    // Past the knee throughput can fall as load rises, so these points are not joined.
    add("chart-latency", "Throughput against p99 TTFT (one point per offered level, median)", "completed req/s", "p99 TTFT ms",
      series((p) => p.rps, (p) => p.p99), true);
    add("chart-goodput", "Goodput against offered load (median per level)", `offered (${unit()})`, "goodput req/s",
      series((p) => p.level, (p) => p.goodput), false);
  }

  function renderVerdict() {
    const c = summary && summary.comparison;
    verdictEl.hidden = !c;
    if (!c) return;
    clear(verdictEl);
    const w = c.winner || {};
    const winner = w.machine_id && per.get(w.machine_id);
    verdictEl.append(
      el("h2", { text: "Verdict" }),
      el("p", { class: `winner ${w.status}`, id: "capacity-winner" },
        el("span", { class: `badge ${w.status}`, text: w.status || "–" }), " ",
        winner ? el("strong", { text: `${winner.label} serves more` }) : null),
      // A decided winner's reason is the verdicts below; otherwise it says why there is none.
      ...(w.status === "decided" ? [] : [el("p", { class: "reason", id: "capacity-reason", text: w.reason || "" })]));
    const list = el("ul", { class: "verdicts", id: "capacity-verdicts" });
    for (const v of c.verdicts || []) list.appendChild(el("li", { class: v.significant ? "significant" : "", text: v.text }));
    verdictEl.appendChild(list);
    const warnings = (c.fairness && c.fairness.warnings) || [];
    if (warnings.length) {
      const wl = el("ul", { class: "warnings", id: "capacity-warnings" });
      for (const x of warnings) {
        wl.appendChild(el("li", { class: x.blocks ? "warning" : "hint", dataset: { kind: x.kind } },
          el("strong", { text: x.kind.replace(/_/g, " ") }), `: ${x.detail}${x.blocks ? "" : " (informational)"}`));
      }
      verdictEl.append(el("h3", { text: "Fairness" }), wl);
    }
    const cap = summary.capacity;
    if (cap) {
      const rows = Object.entries(cap.machines || {}).map(([id, m]) => el("tr", { dataset: { machine: id } },
        el("td", { text: (per.get(id) || { label: id }).label }),
        el("td", { text: m.capacity === null || m.capacity === undefined ? "none" : `${lvl(m.capacity)} ${cap.unit}` }),
        el("td", { text: m.first_failing === null || m.first_failing === undefined ? "–" : lvl(m.first_failing) }),
        el("td", { text: (m.searches || []).map((s) => lvl(s.capacity)).join(", ") })));
      verdictEl.appendChild(el("table", { class: "progress-table", id: "capacity-table" },
        el("thead", {}, el("tr", {}, ...["machine", "capacity", "first failing", "searches"].map((h) => el("th", { text: h })))),
        el("tbody", {}, ...rows)));
    }
  }

  BR.liveSocket((ev) => {
    if (!runId || ev.run_id !== runId) return;
    if (ev.type === "load_requests") return; // per-request rows: in events.ndjson and requests.csv
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

// History page: the stored runs, newest first, filtered by model, machine, engine version,
// status and date (the filters live in the URL, so a filtered list is a link); a run opens (also
// via `?run_id=`) re-rendered from its stored files: metadata/summary from `GET /api/runs/{id}`,
// text and live curves from the replayed `events.ndjson`. A run can be pinned as the baseline —
// `?baseline=RUN` in the URL, a link anyone can share — to see per-machine deltas of TTFT, tok/s
// and total time on every other run. With a baseline pinned, "Compare with baseline" on another
// run adds `?compare=RUN`: the statistical comparison of each machine across the two runs
// (`GET /api/compare`), again a link — reloading or sharing it shows the same comparison.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const PAGE = 20;
  const FILTERS = ["model", "machine", "engine_version", "status", "since"];
  const KIND_PREFIX = { llm_sweep: "sweep · ", llm_load: "load · ", llm_capacity: "capacity · ",
    image_generate: "image · ", transcribe: "speech · ", compute: "compute" };
  /** The image, speech and compute races: their own figures, verdict and comparison. */
  const WORKLOADS = ["image_generate", "transcribe", "compute"];
  /** Each workload's figures as shown: [summary key, column, format]. */
  const secs = (ms) => (BR.num(ms) === null ? "–" : `${BR.fmt(ms / 1000, 2)} s`);
  const WORKLOAD_COLUMNS = {
    image_generate: [["s_per_image", "s/image", (v) => BR.fmt(v, 2)], ["steps_per_s", "steps/s", (v) => BR.fmt(v, 1)],
      ["queue_latency_ms", "Queue", BR.fmtMs], ["gen_time_ms", "Generation", secs], ["wall_ms", "Total", secs]],
    transcribe: [["rtfx", "RTFx", (v) => BR.fmt(v, 1)], ["wall_ms", "Time", secs], ["wer", "WER", (v) => `${BR.fmt(100 * v, 1)}%`],
      ["audio_s", "Audio", (v) => `${BR.fmt(v, 1)} s`], ["time_to_first_segment_ms", "First text", BR.fmtMs]],
    compute: [["ops_per_s", "M integers/s", (v) => BR.fmt(v / 1e6, 1)], ["wall_ms", "Time", secs], ["result", "π(n)", String]],
  };
  /** Test types whose runs are ranked by a metric of the text race. */
  const RANKED = ["llm_generate"];
  const listEl = $("runs-list"), head = $("run-head"), empty = $("run-empty"), cmpEl = $("run-compare");
  const view = new RunView({ cardsEl: $("cards"), comparisonEl: $("comparison") });
  let offset = 0, total = 0, openId = null;
  /** The baseline run's per-machine figures, loaded from `?baseline=` (null: none). */
  let base = null;

  function params() { return new URLSearchParams(location.search); }

  /** Sets (or with null removes) URL parameters without reloading. */
  function setParams(changes) {
    const p = params();
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === undefined || v === "") p.delete(k); else p.set(k, v);
    }
    const qs = p.toString();
    history.replaceState(null, "", `/history${qs ? `?${qs}` : ""}`);
    for (const id of ["baseline-link", "compare-link"]) {
      const link = $(id);
      if (link) link.href = location.pathname + location.search;
    }
  }

  function baseline() { return base; }

  /** Loads the figures of the run named by `?baseline=` from its stored summary. */
  async function loadBaseline() {
    const id = params().get("baseline");
    if (!id) { base = null; return; }
    if (base && base.run_id === id) return;
    try {
      const run = await BR.api(`/api/runs/${encodeURIComponent(id)}`);
      const md = run.metadata || {};
      const machines = {};
      for (const m of (run.summary && run.summary.machines) || []) {
        if (m.status !== "complete") continue;
        machines[m.machine_id] = { label: m.label, ttft_ms: BR.num(m.ttft_ms), decode_tok_s: BR.num(m.decode_tok_s), total_ms: BR.num(m.total_ms) };
      }
      base = { run_id: id, model: (md.models || []).join(", "), machines };
    } catch (e) {
      base = { run_id: id, model: "?", machines: {}, error: e.message };
    }
  }

  function filterQuery() {
    const p = params(), q = new URLSearchParams();
    for (const k of FILTERS) if (p.get(k)) q.set(k, p.get(k));
    return q.toString();
  }

  function labelsOf(r) {
    const ls = (r.machine_labels || []).map((m) => m.label || m.machine_id);
    return ls.length ? ls.join(", ") : `${r.machines ?? "?"} machines`;
  }

  function winnerLabel(r) {
    const m = (r.machine_labels || []).find((x) => x.machine_id === r.winner);
    return m ? m.label : r.winner;
  }

  async function loadList() {
    let page;
    try {
      const f = filterQuery();
      page = await BR.api(`/api/runs?limit=${PAGE}&offset=${offset}${f ? `&${f}` : ""}`);
    } catch (e) {
      BR.clear(listEl).appendChild(BR.el("li", { class: "notice error", text: `Could not load runs: ${e.message}` }));
      return;
    }
    const runs = BR.list(page, "runs");
    total = typeof page.total === "number" ? page.total : runs.length;
    BR.clear(listEl);
    if (!runs.length) {
      const text = filterQuery() ? "No run matches these filters." : "No runs yet: start one on the Race page.";
      listEl.appendChild(BR.el("li", { class: "hint", text }));
    }
    const base = baseline();
    for (const r of runs) {
      const li = BR.el("li", { dataset: { runId: r.run_id }, class: r.run_id === openId ? "selected" : "", tabindex: "0",
        on: { click: () => openRun(r.run_id), keydown: (e) => { if (e.key === "Enter") openRun(r.run_id); } } },
        BR.el("div", { class: "run-title" },
          BR.el("strong", { text: runTitle(r) }),
          BR.el("span", { class: `run-state ${r.status}`, text: r.status || "" })),
        BR.el("div", { class: "hint run-machines", text: `${BR.fmtTime(r.started_at)} · ${labelsOf(r)}${r.winner ? ` · ★ ${winnerLabel(r)}` : ""}${r.imported_from ? ` · imported from ${r.imported_from}` : ""}` }),
        r.prompt_preview ? BR.el("div", { class: "hint", text: r.prompt_preview }) : null,
        base && base.run_id === r.run_id ? BR.el("div", { class: "pin", text: "● baseline" }) : null);
      listEl.appendChild(li);
    }
    $("prev").disabled = offset === 0;
    $("next").disabled = offset + PAGE >= total;
    showBaselineInfo();
  }

  /** "image · sdxl", "compute": the list entry's title. */
  function runTitle(r) {
    const models = (r.models || []).join(", ");
    const prefix = KIND_PREFIX[r.test_type] || "";
    if (!models) return prefix || "run";
    return `${prefix}${prefix && !prefix.endsWith(" · ") ? " · " : ""}${models}`;
  }

  function showBaselineInfo() {
    const b = baseline();
    const info = BR.clear($("baseline-info"));
    if (!b) { info.textContent = "No baseline pinned."; return; }
    info.appendChild(document.createTextNode(`Baseline: ${b.run_id} (${b.model || "?"})${b.error ? ` — ${b.error}` : ""} `));
    info.appendChild(BR.el("a", { id: "baseline-link", class: "chip", href: location.pathname + location.search, text: "share link",
      title: "This page's address carries the baseline: anyone opening it sees the same comparison" }));
    info.appendChild(BR.el("button", { type: "button", class: "chip", text: "unpin",
      on: { click: () => { setParams({ baseline: null, compare: null }); base = null; showCompare(); refreshOpen(); } } }));
  }

  async function openRun(runId) {
    openId = runId;
    setParams({ run_id: runId });
    await loadBaseline();
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
    if (md.test_type === "llm_capacity" || md.test_type === "llm_load") {
      renderLoad(runId, md, summary);
      return;
    }
    if (WORKLOADS.includes(md.test_type)) {
      renderWorkload(runId, md, summary);
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
    view.setClock(md.clock || null);
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
    const keys = md.test_type === "llm_capacity" ? ["search", "percentile", "start", "max", "duration_s", "max_tokens", "input_tokens", "repeat", "seed"]
      : md.test_type === "llm_load" ? ["rate_rps", "arrival", "concurrency", "duration_s", "requests", "max_tokens", "input_tokens", "seed"]
        : md.test_type === "image_generate" ? ["checkpoint", "model", "steps", "width", "height", "cfg", "sampler", "seed", "num_images", "repeat"]
          : md.test_type === "transcribe" ? ["audio", "audio_s", "audio_sha256", "language", "repeat"]
            : md.test_type === "compute" ? ["n", "threads", "algorithm", "repeat"]
              : ["max_tokens", "num_ctx", "temperature", "repeat"];
    const settings = keys.filter((k) => spec[k] !== undefined && spec[k] !== null)
      .map((k) => `${k} ${typeof spec[k] === "object" ? JSON.stringify(spec[k]) : spec[k]}`);
    if (spec.slo) settings.push(`slo ${Object.entries(spec.slo).map(([k, v]) => `${k} ≤ ${v}`).join(", ")}`);
    if (settings.length) add("Settings", settings.join(" · "));
    if (md.reason) add("Reason", md.reason);
    if (md.imported) add("Imported", `from ${md.imported.origin || "an unnamed central"} on ${BR.fmtTime(md.imported.imported_at)} (exported ${BR.fmtTime(md.imported.exported_at)})`);
    if (summary && summary.rank_by && RANKED.includes(md.test_type)) add("Ranked by", (RANK_METRICS[summary.rank_by] || { label: summary.rank_by }).label);
    const enc = encodeURIComponent(runId);
    const actions = el("div", { class: "run-actions" },
      el("a", { class: "chip", href: `/api/runs/${enc}/export.csv`, download: `${runId}.csv`, text: "Export CSV" }),
      el("a", { class: "chip", href: `/api/runs/${enc}/export.json`, download: `${runId}.json`, text: "Export JSON" }),
      el("a", { class: "chip", id: "report-link", href: `/api/runs/${enc}/report.html`, target: "_blank", rel: "noopener",
        text: "Report", title: "This run as one self-contained HTML file (prints well, opens offline)" }),
      md.status === "running" ? null
        : el("a", { class: "chip", id: "bundle-link", href: `/api/runs/${enc}/bundle.tar.gz`, download: `${runId}.tar.gz`,
          text: "Bundle", title: "Every file of this run with a manifest of SHA-256s: import it into another central" }),
      md.test_type === "llm_sweep" ? null
        : el("button", { type: "button", class: "chip", id: "pin", text: "Pin as baseline", on: { click: () => pin(runId) } }),
      md.test_type === "llm_sweep" || !params().get("baseline") || params().get("baseline") === runId ? null
        : el("button", { type: "button", class: "chip", id: "compare-baseline", text: "Compare with baseline",
          title: "Each machine of this run against the same machine in the baseline run: change, 95% interval, verdict",
          on: { click: () => compareWith(runId) } }),
      el("button", { type: "button", class: "chip danger", id: "delete", text: "Delete", on: { click: () => del(runId) } }));
    if (md.test_type === "llm_sweep") {
      actions.prepend(el("a", { class: "chip", href: `/sweep?run_id=${enc}`, text: "Open sweep charts" }));
    }
    if (md.test_type === "llm_capacity") {
      actions.prepend(el("a", { class: "chip", href: `/capacity?run_id=${enc}`, text: "Open capacity curves" }));
    }
    BR.clear(head).append(el("h2", { text: `Run ${runId}` }), kv);
    if (md.prompt) head.append(el("div", { class: "hint prompt-label", text: "Prompt" }), el("pre", { class: "prompt-box", id: "run-prompt", text: md.prompt }));
    head.append(actions);
  }

  /** A stored load or capacity race: the verdict, each machine's capacity (or load figures). */
  function renderLoad(runId, md, summary) {
    const { el } = BR;
    view.reset(null, []);
    const box = BR.clear(view.comparisonEl);
    box.hidden = false;
    const c = summary && summary.comparison;
    box.appendChild(el("h2", { text: md.test_type === "llm_capacity" ? "Capacity race" : "Load" }));
    if (c && c.winner) {
      box.append(el("p", { class: `winner ${c.winner.status}`, id: "load-winner" },
        el("span", { class: `badge ${c.winner.status}`, text: c.winner.status })),
        el("ul", { class: "verdict-list", id: "load-verdicts" }, (c.verdicts || []).map((v) => el("li", { text: v.text }))));
      const warnings = (c.fairness && c.fairness.warnings) || [];
      if (warnings.length) {
        box.appendChild(el("ul", { class: "verdict-list" },
          warnings.map((w) => el("li", { text: `${w.kind}: ${w.detail}${w.blocks ? "" : " (informational)"}` }))));
      }
    }
    const cap = summary && summary.capacity;
    const loads = (summary && summary.load) || {};
    const rows = (md.machines || []).map((m) => {
      const mc = cap && cap.machines && cap.machines[m.machine_id];
      const l = loads[m.machine_id];
      const figure = mc ? (mc.capacity === null || mc.capacity === undefined ? "none" : `${BR.fmt(mc.capacity, 2)} ${cap.unit}`)
        : l ? `${BR.fmt(l.request_throughput_rps, 2)} req/s, p99 TTFT ${l.ttft_ms ? BR.fmtMs(l.ttft_ms.p99) : "–"}` : "–";
      return el("tr", { dataset: { machine: m.machine_id } }, el("td", { text: m.label || m.machine_id }),
        el("td", { text: m.status }), el("td", { text: figure }), el("td", { class: "hint", text: m.reason || "" }));
    });
    box.appendChild(el("table", { class: "progress-table", id: "load-table" },
      el("thead", {}, el("tr", {}, ["Machine", "Status", md.test_type === "llm_capacity" ? "Capacity" : "Throughput", ""].map((h) => el("th", { text: h })))),
      el("tbody", {}, rows)));
    if (md.test_type === "llm_capacity") {
      box.appendChild(el("p", {}, el("a", { href: `/capacity?run_id=${encodeURIComponent(runId)}`, text: "Curves of this race" })));
    }
  }

  /** A stored image, speech or compute race: the verdict and each machine's figures (means over
   * the repeats), its images (image) or its transcription (speech). */
  function renderWorkload(runId, md, summary) {
    const { el } = BR;
    view.reset(null, []);
    const box = BR.clear(view.comparisonEl);
    box.hidden = false;
    const wc = summary && summary.workload_comparison;
    box.appendChild(el("h2", { text: { image_generate: "Image race", transcribe: "Speech race", compute: "Compute race" }[md.test_type] }));
    if (wc) {
      box.appendChild(el("p", { class: "winner", id: "workload-winner", text: wc.winner_text }));
      if (wc.not_comparable) box.appendChild(el("p", { class: "notice warn", text: wc.not_comparable }));
      if (wc.outputs) box.appendChild(el("p", { class: "hint", id: "workload-outputs", text: wc.outputs }));
      box.appendChild(el("ul", { class: "verdict-list", id: "workload-verdicts" }, (wc.verdicts || []).map((v) => el("li", { text: v.text }))));
    } else if (md.status === "running") {
      box.appendChild(el("p", { class: "hint", text: "The race is still running: its verdict comes when it ends." }));
    }
    const cols = WORKLOAD_COLUMNS[md.test_type] || [];
    const byId = new Map(((summary && summary.machines) || []).map((m) => [m.machine_id, m]));
    const rows = (md.machines || []).map((rec) => {
      const m = byId.get(rec.machine_id) || rec;
      return el("tr", { dataset: { machine: rec.machine_id } },
        el("td", { text: rec.label || rec.machine_id }),
        el("td", { text: m.status || rec.status || "?" }),
        ...cols.map(([k, , f]) => el("td", { dataset: { metric: k }, text: BR.num(m[k]) === null ? "–" : f(m[k]) })),
        el("td", { class: "hint", text: m.reason || rec.reason || "" }));
    });
    box.appendChild(el("table", { class: "progress-table", id: "workload-table" },
      el("thead", {}, el("tr", {}, ["Machine", "Status", ...cols.map(([, h]) => h), ""].map((h) => el("th", { text: h })))),
      el("tbody", {}, rows)));
    for (const m of (summary && summary.machines) || []) {
      if (m.text) box.appendChild(el("div", { class: "hint", text: `${m.label || m.machine_id} heard: ${m.text}` }));
      if ((m.images || []).length) {
        box.appendChild(el("div", { class: "preview", dataset: { machine: m.machine_id } }, (m.images || []).map((img) =>
          el("img", { src: `/api/runs/${encodeURIComponent(runId)}/images/${encodeURIComponent(img.file)}`,
            alt: `${m.label || m.machine_id}, repeat ${img.repeat_index}`, title: `sha256 ${img.sha256}` }))));
      }
    }
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

  /** Makes the open run the baseline: `?baseline=` in the address, so the link can be shared. */
  async function pin(runId) {
    setParams(params().get("compare") === runId ? { baseline: runId, compare: null } : { baseline: runId });
    showCompare();
    await loadBaseline();
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

  const CHANGE_METRICS = [...Object.keys(RANK_METRICS), "tokens_per_j"];

  /** Shows run `runId` against the baseline: `?compare=` joins `?baseline=` in the address. */
  function compareWith(runId) {
    setParams({ compare: runId });
    showCompare();
  }

  function closeButton() {
    return BR.el("button", { type: "button", class: "chip", id: "compare-close", text: "close",
      on: { click: () => { setParams({ compare: null, metric: null }); showCompare(); } } });
  }

  /** Fetches and renders `GET /api/compare?a=BASELINE&b=COMPARE` (hidden unless both are set). */
  async function showCompare() {
    const p = params(), a = p.get("baseline"), b = p.get("compare");
    if (!a || !b) { BR.clear(cmpEl); cmpEl.hidden = true; return; }
    const metric = p.get("metric") || "decode_tok_s";
    cmpEl.hidden = false;
    BR.clear(cmpEl).appendChild(BR.el("span", { class: "hint", text: `Comparing ${b} with the baseline ${a}…` }));
    let c;
    try {
      c = await BR.api(`/api/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}&metric=${encodeURIComponent(metric)}`);
    } catch (e) {
      const now = params();
      if (now.get("baseline") !== a || now.get("compare") !== b) return;
      BR.clear(cmpEl).append(BR.el("div", { class: "panel-head" }, BR.el("h2", { text: "Run against baseline" }), closeButton()),
        BR.el("div", { class: "notice error", id: "compare-error", text: `Could not compare ${b} with ${a}: ${e.message}` }));
      return;
    }
    // The address may have moved on while this was loading: show only the pair it names now.
    const now = params();
    if (now.get("baseline") !== a || now.get("compare") !== b || (now.get("metric") || "decode_tok_s") !== metric) return;
    renderCompare(c);
  }

  /** "run A 1.10× (1.09–1.11×)": the better run and its ratio over the other (≥ 1). */
  function ratioText(m) {
    if (BR.num(m.ratio) === null) return "–";
    const digits = Math.max(m.ratio, ...(m.ratio_ci || [])) < 1.1 ? 3 : 2;
    const ci = m.ratio_ci ? ` (${BR.fmt(m.ratio_ci[0], digits)}–${BR.fmt(m.ratio_ci[1], digits)}×)` : "";
    return `run ${String(m.better_run || "?").toUpperCase()} ${BR.fmt(m.ratio, digits)}×${ci}`;
  }

  function renderCompare(c) {
    const { el } = BR;
    if (c.kind === "workload") {
      BR.clear(cmpEl).append(
        el("div", { class: "panel-head" }, el("h2", { text: "Run against baseline" }), closeButton()),
        el("p", { class: "hint", text: `Run A (baseline) ${c.a} → run B ${c.b}: each machine's repeats in both runs, `
          + `by the ${c.test_type} race's figures and statistics, minimum effect ${BR.fmt(c.min_effect_pct, 1)}%.` }),
        (c.machines || []).length
          ? el("ul", { class: "verdict-list", id: "compare-workload" }, c.machines.map((m) => el("li", { dataset: { machine: m.machine_id } },
            el("strong", { text: `${m.label || m.machine_id}: ` }),
            m.comparison.not_comparable || m.comparison.verdicts.map((v) => v.text).join("; ") || m.comparison.winner_text)))
          : el("p", { class: "hint", text: "No machine completed both runs." }),
        ...[["A", c.only_in_a], ["B", c.only_in_b]].filter(([, l]) => l && l.length)
          .map(([run, l]) => el("p", { class: "hint", text: `Only in run ${run}: ${l.map((m) => m.label || m.machine_id).join(", ")}` })));
      return;
    }
    if (c.kind === "capacity") {
      BR.clear(cmpEl).append(
        el("div", { class: "panel-head" }, el("h2", { text: "Capacity against baseline" }), closeButton()),
        el("p", { class: "hint", text: `Run A (baseline) ${c.a} → run B ${c.b}: each machine's searches, ratio B ÷ A of geometric means, `
          + `${BR.fmt(100 * c.confidence, 1)}% interval, minimum effect ${BR.fmt(c.min_effect_pct, 1)}%.` }),
        el("ul", { class: "verdict-list", id: "compare-capacity" },
          (c.machines || []).map((m) => el("li", { dataset: { machine: m.machine_id, status: m.status }, text: m.text }))),
        ...(c.warnings || []).map((w) => el("p", { class: "notice warn", text: w })));
      return;
    }
    const pctText = (v) => (BR.num(v) === null ? "–" : `${v > 0 ? "+" : v < 0 ? "−" : "±"}${BR.fmt(Math.abs(v), 1)}%`);
    const level = `${BR.fmt(100 * c.confidence, c.confidence === 0.95 ? 0 : 1)}%`;
    const select = el("select", { id: "compare-metric", "aria-label": "metric",
      on: { change: (e) => { setParams({ metric: e.target.value === "decode_tok_s" ? null : e.target.value }); showCompare(); } } },
      CHANGE_METRICS.map((m) => el("option", { value: m, text: (RANK_METRICS[m] || { label: "tokens per joule" }).label })));
    select.value = c.metric;
    const table = el("table", { id: "compare-table" },
      el("thead", {}, el("tr", {}, ["Machine", "Verdict", "Ratio", "Change (B vs A)", `${level} CI`, "Means A → B", "Repeats", "Summary"]
        .map((h) => el("th", { text: h })))));
    const tbody = el("tbody");
    for (const m of c.machines || []) {
      const ci = BR.num(m.ci95_low_pct) === null ? "–" : `${pctText(m.ci95_low_pct)} … ${pctText(m.ci95_high_pct)}`;
      const means = BR.num(m.mean_a) === null || BR.num(m.mean_b) === null ? "–"
        : `${BR.fmt(m.mean_a, 1)} → ${BR.fmt(m.mean_b, 1)} ${m.unit}`;
      tbody.appendChild(el("tr", { dataset: { machine: m.machine_id, status: m.status } },
        el("td", { text: m.label || m.machine_id }),
        el("td", {}, el("span", { class: `change-status ${m.status}`, text: m.status, title: m.reason || "" })),
        el("td", { class: "change-ratio", text: ratioText(m) }),
        el("td", { text: pctText(m.diff_pct) }),
        el("td", { text: ci }),
        el("td", { text: means }),
        el("td", { text: `${m.n_a} / ${m.n_b}` }),
        el("td", { class: "change-text", text: m.text })));
    }
    table.appendChild(tbody);
    const warnings = [...(c.warnings || []), ...(c.machines || []).flatMap((m) => m.warnings || [])];
    const only = (list, run) => (list && list.length
      ? el("p", { class: "hint", text: `Only in run ${run}: ${list.map((m) => m.label || m.machine_id).join(", ")}` }) : null);
    BR.clear(cmpEl).append(...[
      el("div", { class: "panel-head" },
        el("h2", { text: "Run against baseline" }), select,
        el("a", { class: "chip", id: "compare-link", href: location.pathname + location.search, text: "share link",
          title: "This address names both runs: anyone opening it sees this comparison" }),
        closeButton()),
      el("p", { class: "hint", text: `Run A (baseline) ${c.a} → run B ${c.b}: ${c.higher_is_better ? "higher" : "lower"} ${c.unit} is better; `
        + `warm repeats, Welch's ${level} interval on the log scale per machine (ratio of geometric means), minimum effect ±${BR.fmt(c.min_effect_pct, 1)}%.` }),
      (c.machines || []).length ? table : el("p", { class: "hint", text: "No machine ran in both runs." }),
      only(c.only_in_a, "A"), only(c.only_in_b, "B"),
      warnings.length ? el("ul", { class: "verdict-list", id: "compare-warnings" },
        warnings.map((w) => el("li", { text: `${w.kind}${w.machine_id ? ` (${w.machine_id})` : ""}: ${w.detail}` }))) : null,
    ].filter(Boolean));
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
    if (b && b.run_id === runId) { base = null; setParams({ baseline: null }); }
    if ([params().get("baseline"), params().get("compare")].includes(runId)) { setParams({ compare: null }); showCompare(); }
    openId = null;
    setParams({ run_id: null });
    head.hidden = true;
    empty.hidden = false;
    view.reset(null, []);
    loadList();
  }

  function refreshOpen() {
    loadList();
    if (openId) openRun(openId);
  }

  // Filters: kept in the address (shareable), applied by the API.
  const form = $("filters");
  for (const k of FILTERS) if (form.elements[k]) form.elements[k].value = params().get(k) || "";
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const changes = {};
    for (const k of FILTERS) changes[k] = form.elements[k].value.trim() || null;
    setParams(changes);
    offset = 0;
    loadList();
  });

  $("refresh").addEventListener("click", () => loadList());

  // Import a bundle exported by another central (POST /api/runs/import, the file as the body).
  $("import-file").addEventListener("change", async (e) => {
    const file = e.target.files && e.target.files[0];
    const status = $("import-status");
    if (!file) return;
    status.hidden = false;
    status.className = "hint";
    status.textContent = `Importing ${file.name}…`;
    try {
      const res = await BR.api("/api/runs/import", { method: "POST", headers: { "Content-Type": "application/gzip", Accept: "application/json" }, body: file });
      status.textContent = `Imported run ${res.run_id}.`;
      loadList();
      openRun(res.run_id);
    } catch (err) {
      status.className = "notice error";
      status.textContent = `Not imported: ${err.message}`;
    }
    e.target.value = "";
  });
  $("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); loadList(); });
  $("next").addEventListener("click", () => { offset += PAGE; loadList(); });

  // New and finished runs show up without a reload.
  BR.liveSocket((ev) => {
    if (ev.type === "run_start" || ev.type === "run_end") loadList();
    if (ev.type === "run_end" && ev.run_id === openId) openRun(openId);
  });
  loadBaseline().then(() => {
    loadList();
    // `?baseline=A&compare=B` alone opens run B under the comparison.
    const q = params().get("run_id") || params().get("compare");
    if (q) openRun(q);
    showCompare();
  });
})();

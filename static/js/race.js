// Race page: choose a model and prompt, start a run on every machine that has the model, watch
// the cards fill live from central's WebSocket, then compare. Preflight (who will be skipped and
// why) is computed here before the run and replaced by the server's answer after it.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const form = $("run-form"), modelSel = $("model"), holders = $("model-holders");
  const preflight = $("preflight"), runStatus = $("run-status"), runBtn = $("run"), pullsEl = $("pulls");
  const view = new RunView({ cardsEl: $("cards"), comparisonEl: $("comparison") });
  let machines = [];      // normalised machine records
  let currentRun = null;  // run_id being watched
  let running = false;
  let buffered = null;    // live events held back while the stored log is being replayed
  let pull = null;        // the Pulls.Tracker of a pull started from this page

  async function loadMachines() {
    try {
      const ctx = Number($("num_ctx").value);
      const q = Number.isInteger(ctx) && ctx > 0 ? `?num_ctx=${ctx}` : "";
      machines = BR.list(await BR.api(`/api/machines${q}`), "machines").map(BR.machine);
    } catch (e) {
      BR.notice(preflight, "error", `Could not load machines: ${e.message}`);
      return;
    }
    fillModels();
    if (!currentRun) showIdleCards();
    updatePreflight();
  }

  /** The union of models over online machines, each with the machines that have it. */
  function modelIndex() {
    const idx = new Map();
    for (const m of machines) {
      if (!m.online) continue;
      for (const name of m.models) {
        if (!idx.has(name)) idx.set(name, []);
        idx.get(name).push(m);
      }
    }
    return [...idx.entries()].sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0]));
  }

  function fillModels() {
    const prev = modelSel.value || localStorage.getItem("benchrace.model") || "";
    BR.clear(modelSel);
    const idx = modelIndex();
    if (!idx.length) {
      modelSel.appendChild(BR.el("option", { value: "", text: "no online machine reports a model" }));
      return;
    }
    for (const [name, ms] of idx) {
      modelSel.appendChild(BR.el("option", { value: name, text: `${name}  (${ms.length}/${machines.length} machines)` }));
    }
    if (idx.some(([n]) => n === prev)) modelSel.value = prev;
  }

  function showIdleCards() {
    view.reset(null, machines);
    for (const m of machines) {
      const st = view.machines.get(m.id);
      if (!m.online) view.setStatus(st, m.state === "unknown" ? "unknown" : "offline", m.error || "");
    }
  }

  /** Who will race and who will be skipped (offline / model missing), before pressing Run. */
  function updatePreflight() {
    const model = modelSel.value;
    const have = [], skip = [];
    for (const m of machines) {
      if (!m.online) skip.push(`${m.label}: ${m.state}${m.error ? ` (${m.error})` : ""}`);
      else if (!m.models.includes(model)) skip.push(`${m.label}: model ${model || "?"} not installed`);
      else have.push(m.label);
    }
    BR.clear(holders).appendChild(document.createTextNode(have.length ? `On: ${have.join(", ")}` : ""));
    // Model fit per machine (from the engine's real model size and the KV cache of this context).
    for (const m of machines) {
      const fit = ((m.raw && m.raw.model_fit) || []).find((f) => f.model === model);
      if (!m.online || !fit) continue;
      holders.appendChild(BR.el("div", {
        class: `hint fit fit-${fit.model_fit || "unknown"}`, dataset: { machine: m.id, fit: fit.model_fit || "" },
        text: `${m.label}: fit ${fit.model_fit || "unknown"} (${fit.reason})`,
      }));
    }
    if (running) return;
    BR.clear(preflight);
    preflight.hidden = false;
    preflight.className = skip.length ? "banner warn" : "banner ok";
    preflight.appendChild(BR.el("strong", { text: `${have.length} machine${have.length === 1 ? "" : "s"} will race.` }));
    if (skip.length) {
      preflight.appendChild(document.createTextNode(` ${skip.length} will be skipped:`));
      const ul = BR.el("ul", { id: "preflight-skipped" });
      skip.forEach((s) => ul.appendChild(BR.el("li", { text: s })));
      preflight.appendChild(ul);
    }
    // Online machines without the model: offer to pull it there (Ollama engines can; the
    // others say why not when asked).
    const lacking = machines.filter((m) => m.online && model && !m.models.includes(model));
    if (lacking.length && !(pull && !pull.finished())) {
      preflight.appendChild(BR.el("button", {
        type: "button", id: "pull-missing", class: "chip",
        text: `Pull ${model} on the ${lacking.length} machine${lacking.length === 1 ? "" : "s"} that lack${lacking.length === 1 ? "s" : ""} it`,
        on: { click: () => pullMissing(model, lacking.map((m) => m.id)) },
      }));
    }
    runBtn.disabled = have.length === 0;
  }

  async function pullMissing(model, ids) {
    const btn = $("pull-missing");
    if (btn) btn.disabled = true;
    try {
      pull = new Pulls.Tracker(pullsEl, await Pulls.start(model, ids), machines);
    } catch (err) {
      BR.notice(pullsEl, "error", `Pull not started: ${err.message}`);
      pullsEl.hidden = false;
      if (btn) btn.disabled = false;
    }
  }

  function intField(id) {
    const v = Number($(id).value);
    return Number.isFinite(v) ? v : undefined;
  }

  async function startRun(e) {
    e.preventDefault();
    const body = {
      model: modelSel.value,
      prompt: $("prompt").value,
      max_tokens: intField("max_tokens"),
      num_ctx: intField("num_ctx"),
      temperature: intField("temperature"),
      repeat: intField("repeat"),
    };
    localStorage.setItem("benchrace.model", body.model);
    runBtn.disabled = true;
    // This tab's own run_start must not be "followed" as someone else's race.
    running = true;
    BR.notice(runStatus, "info", "Starting…");
    let res;
    try {
      res = await BR.api("/api/runs", { json: body });
    } catch (err) {
      BR.notice(runStatus, "error", `Run not started: ${err.message}`);
      runBtn.disabled = false;
      running = false;
      return;
    }
    running = true;
    currentRun = res.run_id;
    const skipped = res.skipped ? RunView.skippedList(res.skipped) : RunView.skippedFromMachines(res.machines);
    const skippedIds = new Set(skipped.map((s) => s.machine_id));
    view.reset(currentRun, machines);
    view.markSkipped(skipped);
    view.markQueued(machines.map((m) => m.id).filter((id) => !skippedIds.has(id)));
    for (const st of view.machines.values()) st.repeats = body.repeat || 1;
    for (const m of res.machines || []) {
      const st = view.machines.get(m.machine_id);
      if (st && m.status === "error") view.setStatus(st, "error", m.reason || "could not start the job");
    }
    showServerPreflight(skipped);
    BR.clear(runStatus).appendChild(BR.el("div", { class: "notice info" }, "Run ",
      BR.el("a", { id: "run-link", href: `/history?run_id=${encodeURIComponent(currentRun)}`, text: currentRun }), " is running…"));
    runStatus.hidden = false;
    history.replaceState(null, "", `/?run_id=${encodeURIComponent(currentRun)}`);
    // Events may have raced ahead of this response: pick them up from the stored log.
    resync();
  }

  function showServerPreflight(skipped) {
    BR.clear(preflight);
    preflight.hidden = !skipped.length;
    if (!skipped.length) return;
    preflight.className = "banner warn";
    preflight.appendChild(BR.el("strong", { text: `Skipped by central (${skipped.length}):` }));
    const ul = BR.el("ul", { id: "server-skipped" });
    for (const s of skipped) {
      const m = machines.find((x) => x.id === s.machine_id);
      ul.appendChild(BR.el("li", { text: `${m ? m.label : s.machine_id}: ${s.reason || "skipped"}` }));
    }
    preflight.appendChild(ul);
  }

  /** Re-reads the run's stored events (after a reconnect, or a page reload with ?run_id=). */
  async function resync() {
    if (!currentRun || buffered) return;
    buffered = [];
    try {
      const [meta, events] = await Promise.all([
        BR.api(`/api/runs/${encodeURIComponent(currentRun)}`),
        BR.ndjson(`/api/runs/${encodeURIComponent(currentRun)}/events`),
      ]);
      showSettings(meta);
      const skipped = RunView.skippedList(runSkipped(meta));
      if (skipped.length) view.markSkipped(skipped);
      for (const ev of events) view.apply({ run_id: currentRun, ...ev });
      const status = String((meta && (meta.status || (meta.metadata && meta.metadata.status))) || "");
      if (status && status !== "running") view.finish(runSummary(meta));
      view.setClock(clockOf(meta));
    } catch (err) {
      console.warn("resync failed", err);
    } finally {
      // Stored events first, then what arrived live meanwhile (duplicates are dropped by seq).
      const held = buffered;
      buffered = null;
      held.forEach((ev) => view.apply(ev));
    }
  }

  /** summary.json from a `GET /api/runs/{id}` answer, if the run has one yet. */
  function runSummary(meta) {
    const s = meta && (meta.summary || (meta.machines && meta.rank_by ? meta : null));
    return s && Array.isArray(s.machines) ? s : undefined;
  }

  /** metadata.json `clock` from a `GET /api/runs/{id}` answer (offsets, start skew). */
  function clockOf(meta) {
    const md = meta && (meta.metadata || meta);
    return (md && md.clock) || null;
  }

  /** At run_end the stored summary is final: let it decide winner and order. */
  async function finishFromServer(runId) {
    try {
      const detail = await BR.api(`/api/runs/${encodeURIComponent(runId)}`);
      // Without a summary (still live, or written without one) the page ranks by itself.
      if (runId === currentRun) {
        view.finish(runSummary(detail));
        view.setClock(clockOf(detail));
      }
    } catch (err) {
      console.warn("could not load the run summary", err);
    }
  }

  /** The clock record is final at run_end: offsets and the start skew the race achieved. */
  async function loadClock(runId) {
    try {
      const detail = await BR.api(`/api/runs/${encodeURIComponent(runId)}`);
      if (runId === currentRun) view.setClock(clockOf(detail));
    } catch (err) {
      console.warn("could not load the run's clock record", err);
    }
  }

  function runSkipped(meta) {
    if (!meta) return [];
    const md = meta.metadata || meta;
    if (md.skipped) return md.skipped;
    const ms = md.machines || [];
    return ms.filter((m) => m.status === "skipped").map((m) => ({ machine_id: m.machine_id, reason: m.reason }));
  }

  /** Shows a run this tab did not start (API, another tab, a reload): cards, link, settings. */
  function follow(runId) {
    if (!runId || runId === currentRun) return;
    currentRun = runId;
    running = true;
    runBtn.disabled = true;
    view.reset(runId, machines);
    BR.clear(runStatus).appendChild(BR.el("div", { class: "notice info" }, "Run ",
      BR.el("a", { id: "run-link", href: `/history?run_id=${encodeURIComponent(runId)}`, text: runId }), " is running…"));
    runStatus.hidden = false;
    history.replaceState(null, "", `/?run_id=${encodeURIComponent(runId)}`);
    resync();
  }

  /** The form shows the settings of the run on display. */
  function showSettings(meta) {
    const md = (meta && (meta.metadata || meta)) || {};
    const spec = md.spec || {};
    if (md.prompt !== undefined && md.prompt !== null) $("prompt").value = md.prompt;
    for (const k of ["max_tokens", "num_ctx", "temperature", "repeat"]) {
      if (spec[k] !== undefined && spec[k] !== null && $(k)) $(k).value = spec[k];
    }
    const model = spec.model || (md.models || [])[0];
    if (model && [...modelSel.options].some((o) => o.value === model)) modelSel.value = model;
  }

  function onEvent(ev) {
    if (ev.type === "machine_state") { onMachineState(ev); return; }
    if (ev.type === "model_pull") {
      if (pull && pull.update(ev) && pull.finished()) updatePreflight();
      return;
    }
    // A race started anywhere is followed when this page is not showing one in progress.
    if (ev.type === "run_start" && ev.test_type !== "llm_sweep" && !running) { follow(ev.run_id); return; }
    if (!currentRun || ev.run_id !== currentRun) return;
    if (buffered) { buffered.push(ev); return; }
    view.apply(ev);
    if (ev.type === "run_end") {
      if (ev.summary) loadClock(ev.run_id); else finishFromServer(ev.run_id);
    }
  }

  function onMachineState(ev) {
    const p = ev.machine || ev.payload || ev;
    const id = p.machine_id || ev.machine_id;
    const i = machines.findIndex((m) => m.id === id);
    const next = BR.machine({ ...(i >= 0 ? machines[i].raw : {}), ...p, machine_id: id });
    if (i >= 0) machines[i] = next; else machines.push(next);
    fillModels();
    // Cards of a shown run stay as they are; only the idle view follows the fleet.
    if (!currentRun) showIdleCards();
    updatePreflight();
  }

  // central's run_end (with summary.json) normally follows the last machine's end at once; if
  // it does not arrive, read the stored run instead of leaving the page waiting.
  view.onAllTerminal = () => {
    const runId = currentRun;
    setTimeout(() => { if (runId === currentRun && !view.finished) finishFromServer(runId); }, 3000);
  };

  view.onFinish = (rows, winner) => {
    running = false;
    runBtn.disabled = false;
    const done = rows.filter((r) => r.status === "done").length;
    BR.clear(runStatus).appendChild(BR.el("div", { class: "notice ok", id: "run-finished" },
      `Run finished: ${done}/${rows.filter((r) => r.status !== "skipped").length} machines done${winner ? `, winner ${winner.label}` : ""}. `,
      "Stored as ", BR.el("a", { id: "run-link", href: `/history?run_id=${encodeURIComponent(currentRun)}`, text: currentRun }), "."));
    updatePreflight();
  };

  // "1 repeat: no verdict — run ≥ 3": one click reruns the same race with enough repeats.
  view.onRerun = (repeats) => {
    $("repeat").value = String(repeats);
    form.requestSubmit();
  };

  document.querySelectorAll(".sample").forEach((b) => b.addEventListener("click", () => { $("prompt").value = b.dataset.prompt; }));
  modelSel.addEventListener("change", updatePreflight);
  $("num_ctx").addEventListener("change", () => { if (!running) loadMachines(); });
  form.addEventListener("submit", startRun);

  BR.liveSocket(onEvent, (reconnected) => { if (reconnected) resync(); });
  loadMachines().then(() => {
    const q = new URLSearchParams(location.search).get("run_id");
    if (q) {
      currentRun = q;
      running = true;
      view.reset(q, machines);
      resync();
      return;
    }
    // Opening the page while a race runs (started elsewhere) shows that race.
    BR.api("/api/runs?status=running&limit=5").then((page) => {
      const r = BR.list(page, "runs").find((x) => x.test_type !== "llm_sweep");
      if (r && !currentRun) follow(r.run_id);
    }).catch((err) => console.warn("could not look for a running race", err));
  });
  setInterval(() => { if (!running) loadMachines(); }, 15000);
})();

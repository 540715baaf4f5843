// Machines page: each machine's fleet state, engine, models and hardware, from
// `GET /api/machines`, kept current by `machine_state` WebSocket events; and the models across
// the fleet (`GET /api/models`) with pulls onto the machines that lack one (`model_pull` events).
"use strict";

(() => {
  const root = document.getElementById("machines");
  const modelsEl = document.getElementById("models"), pullsEl = document.getElementById("pulls");
  let machines = [];
  let pull = null; // Pulls.Tracker of the pull started here
  const panels = new Map(); // machine id -> Telemetry.Panel (kept across re-renders)

  async function load() {
    try {
      machines = BR.list(await BR.api("/api/machines"), "machines").map(BR.machine);
      render();
    } catch (e) {
      BR.notice(root, "error", `Could not load machines: ${e.message}`);
    }
  }

  function row(k, v) {
    return BR.el("tr", {}, BR.el("td", { class: "hint", text: k }), BR.el("td", { text: v ?? "–" }));
  }

  function card(m) {
    const { el } = BR;
    const hw = m.hardware || {};
    const raw = m.raw || {};
    const table = el("table", {},
      row("Agent", m.url),
      row("Engine", m.engineKind ? `${m.engineKind}${m.engineVersion ? ` ${m.engineVersion}` : ""} · ${m.engineUrl}${m.engineReachable === false ? " (unreachable)" : ""}` : "–"),
      row("Event stream", raw.ws_connected === undefined ? "–" : raw.ws_connected ? "connected" : "disconnected"),
      row("Last seen", raw.last_seen_s ? BR.fmtTime(raw.last_seen_s) : "–"),
      row("CPU", [hw.cpu_brand, hw.cpu_logical_cores ? `${hw.cpu_logical_cores} threads` : null, hw.cpu_physical_cores ? `${hw.cpu_physical_cores} cores` : null].filter(Boolean).join(" · ") || "–"),
      row("Memory", BR.fmtBytes(hw.memory_total_bytes)),
      row("OS", [hw.os, hw.kernel, hw.arch, hw.hostname].filter(Boolean).join(" · ") || "–"));
    for (const g of hw.gpus || []) {
      const bits = [g.name, g.memory_total_bytes ? BR.fmtBytes(g.memory_total_bytes) : null, g.unified_memory ? "unified memory" : null,
        g.gpu_cores ? `${g.gpu_cores} GPU cores` : null, g.driver ? `driver ${g.driver}` : null,
        g.cuda_compute ? `CUDA ${g.cuda_compute.join(".")}` : null];
      table.appendChild(row("GPU", bits.filter(Boolean).join(" · ")));
    }
    if ((hw.overridden || []).length) table.appendChild(row("Overridden", hw.overridden.join(", ")));
    const fp = (raw.capabilities || {}).engine_fingerprint;
    if (fp && !fp.error) {
      const bits = [fp.build ? `build ${fp.build}` : null, fp.context_size ? `ctx ${fp.context_size}` : null, fp.slots ? `${fp.slots} slots` : null,
        ...(fp.loaded || []).map((l) => `${l.name} loaded${BR.num(l.gpu_offload_pct) !== null ? `, ${Math.round(l.gpu_offload_pct)}% on GPU` : ""}`)];
      if (bits.some(Boolean)) table.appendChild(row("Engine reports", bits.filter(Boolean).join(" · ")));
    }
    const fits = new Map((raw.model_fit || []).map((f) => [f.model, f]));
    const infos = new Map((m.modelInfos || []).map((i) => [i.name, i]));
    const models = el("div", { class: "models" });
    if (!m.models.length) models.appendChild(el("span", { class: "hint", text: "no models reported" }));
    for (const name of m.models) {
      const i = infos.get(name) || {};
      const detail = [i.parameter_size, i.quantization, i.context_length ? `ctx ${i.context_length}` : null, i.size_bytes ? BR.fmtBytes(i.size_bytes) : null].filter(Boolean).join(" · ");
      models.appendChild(el("span", { class: "badge", text: name, title: detail || name }));
      const fit = fits.get(name);
      if (fit) {
        models.appendChild(el("span", {
          class: `hint fit fit-${fit.model_fit || "unknown"}`, dataset: { model: name, fit: fit.model_fit || "" },
          text: `fit ${fit.model_fit || "unknown"}`, title: `at ${fit.num_ctx} tokens of context: ${fit.reason}`,
        }));
      }
    }
    if (!panels.has(m.id)) panels.set(m.id, new Telemetry.Panel());
    const statusClass = m.state === "online" ? "done" : m.state === "busy" ? "running" : "offline";
    return el("article", { class: `card status-${statusClass}`, dataset: { machine: m.id } },
      el("header", {}, el("h3", { text: m.label }), el("span", { class: "status", text: m.state })),
      el("div", { class: "badges" }, BR.badges(m)),
      m.error ? el("div", { class: "reason", text: m.error }) : null,
      m.notes ? el("div", { class: "hint", text: m.notes }) : null,
      table,
      panels.get(m.id).el,
      el("div", { class: "hint", text: "Models" }),
      models);
  }

  async function loadModels() {
    try {
      renderModels(await BR.api("/api/models"));
    } catch (e) {
      BR.notice(modelsEl, "error", `Could not load models: ${e.message}`);
    }
  }

  /** Models × machines: ✓ where the engine lists it; a pull button where reachable ones lack it. */
  function renderModels(view) {
    const { el } = BR;
    BR.clear(modelsEl);
    const targets = view.machines || [];
    if (!(view.models || []).length) {
      modelsEl.appendChild(el("p", { class: "hint", text: "No machine reports a model yet." }));
      return;
    }
    const head = el("tr", {}, el("th", { text: "Model" }), ...targets.map((t) => el("th", { text: t.label, title: `${t.state}${t.engine ? ` · ${t.engine}` : ""}` })), el("th", {}));
    const table = el("table", { class: "model-matrix", id: "model-matrix" }, el("thead", {}, head));
    const body = el("tbody");
    for (const m of view.models) {
      const cells = targets.map((t) => m.present_on.includes(t.machine_id)
        ? el("td", { class: "have", text: "✓", title: `${t.label} has ${m.model}` })
        : el("td", { class: "lack", text: m.missing_on.includes(t.machine_id) ? "–" : "?", title: m.missing_on.includes(t.machine_id) ? `${t.label} lacks ${m.model}` : `${t.label} is ${t.state}` }));
      const n = m.missing_on.length;
      const action = n
        ? el("button", { type: "button", class: "chip pull-row-btn", dataset: { model: m.model }, text: `Pull on ${n} machine${n === 1 ? "" : "s"}`,
          on: { click: () => startPull(m.model, m.missing_on) } })
        : el("span", { class: "hint", text: "everywhere" });
      body.appendChild(el("tr", { dataset: { model: m.model } }, el("td", { text: m.model }), ...cells, el("td", {}, action)));
    }
    table.appendChild(body);
    modelsEl.appendChild(table);
  }

  async function startPull(model, ids) {
    try {
      pull = new Pulls.Tracker(pullsEl, await Pulls.start(model, ids), machines);
    } catch (e) {
      BR.notice(pullsEl, "error", `Pull not started: ${e.message}`);
      pullsEl.hidden = false;
    }
  }

  document.getElementById("pull-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const model = document.getElementById("pull-model").value.trim();
    if (model) startPull(model, []);
  });

  function render() {
    BR.clear(root);
    root.hidden = false;
    if (!machines.length) root.appendChild(BR.el("p", { class: "hint", text: "No machines configured in machines.yaml." }));
    machines.forEach((m) => root.appendChild(card(m)));
  }

  BR.liveSocket((ev) => {
    if (ev.type === "model_pull") {
      if (pull && pull.update(ev) && (ev.state === "done" || ev.state === "failed")) loadModels();
      return;
    }
    if (ev.type === "runtime_metrics") {
      // Telemetry arrives while a machine runs a job; the card's sparklines follow it.
      const panel = panels.get(ev.machine_id);
      if (panel) panel.push(ev.payload);
      return;
    }
    if (ev.type !== "machine_state") return;
    const p = ev.machine || ev.payload || ev;
    const id = p.machine_id || ev.machine_id;
    const i = machines.findIndex((m) => m.id === id);
    const next = BR.machine({ ...(i >= 0 ? machines[i].raw : {}), ...p, machine_id: id });
    if (i >= 0) machines[i] = next; else machines.push(next);
    render();
    loadModels();
  });
  load();
  loadModels();
  setInterval(() => { load(); loadModels(); }, 15000);
})();

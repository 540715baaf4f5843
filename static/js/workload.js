// Image, speech and compute race pages: start a run on every machine that can take it, show each
// machine live (image: progress bar and previews; speech: text with RTFx and WER; compute: a bar),
// then the stored results and the verdict from summary.json. Text from agents is set as text,
// images only from data: URLs or central's own routes. A dropped WebSocket loses nothing: on
// reconnect (and on opening the page with `?run_id=`) the run is re-read from its stored events
// and, once it has ended, its summary; events already shown are skipped by their `seq`.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const form = $("wl-form"), mode = form.dataset.mode;
  const cards = $("wl-cards"), verdict = $("wl-verdict"), status = $("wl-status");
  let machines = [], runId = null, waiting = false;
  const card = new Map();
  /** Per machine, the last agent event shown (its `seq`): an event is never shown twice. */
  const lastSeq = new Map();
  /** Live events that arrive while the run is re-read, shown after it (null: not re-reading). */
  let buffered = null;

  async function loadMachines() {
    machines = BR.list(await BR.api("/api/machines"), "machines").map(BR.machine);
    if (mode === "image") fill($("checkpoint"), machines.flatMap((m) => (m.raw.capabilities || {}).sdxl_profiles || []));
    if (mode === "speech") {
      fill($("model"), machines.flatMap((m) => (m.raw.capabilities || {}).whisper_models || []));
      const assets = await BR.api("/api/assets/audio");
      fill($("audio"), assets.map((a) => a.id), (id) => {
        const a = assets.find((x) => x.id === id);
        return `${id} (${a.audio_s.toFixed(1)} s): ${a.reference_text}`;
      });
    }
  }

  function fill(sel, values, label) {
    const uniq = [...new Set(values)];
    BR.clear(sel);
    for (const v of uniq) sel.appendChild(BR.el("option", { value: v, text: label ? label(v) : v }));
  }

  function body() {
    const n = (id) => Number($(id).value);
    const repeat = n("repeat");
    if (mode === "image") {
      return { test_type: "image_generate", prompt: $("prompt").value, checkpoint: $("checkpoint").value,
        steps: n("steps"), width: n("width"), height: n("height"), seed: n("seed"), repeat };
    }
    if (mode === "speech") return { test_type: "transcribe", model: $("model").value, audio: $("audio").value, repeat };
    return { test_type: "compute", n: n("n"), threads: n("threads"), repeat };
  }

  function makeCard(rec) {
    const c = {
      root: BR.el("article", { class: "card", dataset: { machine: rec.machine_id } }),
      status: BR.el("span", { class: "status", text: rec.status || "pending" }),
      bar: BR.el("progress", { class: "wl-progress", max: "100", value: "0" }),
      preview: BR.el("div", { class: "preview" }),
      live: BR.el("pre", { class: "output" }),
      stats: BR.el("div", { class: "wl-stats" }),
      finals: BR.el("div", { class: "final" }),
    };
    c.root.append(BR.el("h3", { text: rec.label || rec.machine_id }), c.status, c.bar, c.preview, c.live, c.stats, c.finals);
    if (rec.reason) c.stats.textContent = rec.reason;
    card.set(rec.machine_id, c);
    cards.appendChild(c.root);
    return c;
  }

  const s = (ms) => (BR.num(ms) === null ? "–" : `${(ms / 1000).toFixed(2)}s`);
  const f = (v, d = 2) => (BR.num(v) === null ? "–" : v.toFixed(d));

  function onEvent(ev) {
    if (buffered) buffered.push(ev);
    else show(ev);
  }

  function show(ev) {
    // The run's run_start can arrive before the answer to POST /api/runs names the run.
    if (waiting && !runId && ev.type === "run_start") {
      follow(ev.run_id);
      waiting = false;
    }
    if (!runId || ev.run_id !== runId) return;
    if (ev.type === "run_start") {
      if (card.size) return;
      for (const m of ev.machines || []) makeCard(m);
      return;
    }
    if (ev.type === "run_end") return finish();
    if (!ev.machine_id) return;
    if (typeof ev.seq === "number") {
      if (ev.seq <= (lastSeq.get(ev.machine_id) ?? -1)) return;
      lastSeq.set(ev.machine_id, ev.seq);
    }
    const c = card.get(ev.machine_id) || makeCard({ machine_id: ev.machine_id });
    const p = ev.payload || {};
    switch (ev.type) {
      case "job_started": c.status.textContent = "running"; break;
      case "image_progress": c.bar.max = p.total_steps; c.bar.value = p.step; break;
      case "image_preview":
        if (p.preview_b64) {
          BR.clear(c.preview).appendChild(BR.el("img", { src: `data:${p.content_type};base64,${p.preview_b64}`, alt: `step ${p.step}` }));
        }
        break;
      case "image_complete":
        c.stats.textContent = `Queue ${s(p.queue_latency_ms)} • Gen ${s(p.gen_time_ms)} • Total ${s(p.total_ms)} • ${f(p.steps_per_s, 1)} steps/s`;
        break;
      case "transcribe_segment": c.live.textContent += p.text; break;
      case "transcribe_done":
        c.live.textContent = p.text;
        c.stats.textContent = `RTFx ${f(p.rtfx)} • WER ${BR.num(p.wer) === null ? "–" : (100 * p.wer).toFixed(1) + "%"} • ${s(p.wall_ms)}`;
        break;
      case "compute_line": c.live.textContent = p.line; break;
      case "compute_done": c.stats.textContent = `${(p.ops_per_s / 1e6).toFixed(1)} M integers/s • π(n) = ${p.result}`; break;
      case "job_done": c.status.textContent = "done"; break;
      case "job_error": c.status.textContent = "error"; c.stats.textContent = p.message; break;
      default: break;
    }
  }

  /** Empties the cards and the verdict. */
  function reset() {
    BR.clear(cards);
    card.clear();
    lastSeq.clear();
    BR.clear(verdict);
    verdict.hidden = true;
  }

  /** Starts showing run `id` afresh, and puts it in the address (a reload shows it again). */
  function follow(id) {
    runId = id;
    reset();
    history.replaceState(null, "", `${location.pathname}?run_id=${encodeURIComponent(id)}`);
  }

  /** Re-draws the run from its stored events (after a reconnect, or opening `?run_id=`), then
   * the live events that came meanwhile, and the verdict once the run has ended. */
  async function resync() {
    const id = runId;
    if (!id || buffered) return;
    buffered = [];
    let ended = false;
    try {
      const enc = encodeURIComponent(id);
      const [run, events] = await Promise.all([BR.api(`/api/runs/${enc}`), BR.ndjson(`/api/runs/${enc}/events`)]);
      if (runId === id) {
        const md = run.metadata || run;
        reset();
        for (const m of md.machines || []) makeCard(m);
        for (const ev of events) if (ev.type !== "run_end") show({ run_id: id, ...ev });
        ended = Boolean(md.status) && md.status !== "running";
      }
    } catch (err) {
      console.warn("resync failed", err);
    } finally {
      const held = buffered;
      buffered = null;
      held.forEach(show);
    }
    if (ended && runId === id) await finish();
  }

  async function finish() {
    const run = await BR.api(`/api/runs/${encodeURIComponent(runId)}`);
    const summary = run.summary || {};
    const wc = summary.workload_comparison;
    const best = Math.max(...(summary.machines || []).map((m) => m.ops_per_s || 0), 1);
    for (const m of summary.machines || []) {
      const c = card.get(m.machine_id) || makeCard(m);
      c.status.textContent = m.status || "";
      if (m.reason) c.stats.textContent = m.reason;
      BR.clear(c.finals);
      for (const img of m.images || []) {
        c.finals.appendChild(BR.el("img", { src: `/api/runs/${runId}/images/${img.file}`, alt: `repeat ${img.repeat_index}`, title: `sha256 ${img.sha256}` }));
      }
      if (mode === "image" && BR.num(m.s_per_image) !== null) {
        c.stats.textContent = `Queue ${s(m.queue_latency_ms)} • Gen ${s(m.gen_time_ms)} • Total ${s(m.wall_ms)} • ${f(m.steps_per_s, 1)} steps/s • ${f(m.s_per_image)} s/image`;
      }
      if (mode === "compute" && BR.num(m.ops_per_s) !== null) {
        c.bar.max = best;
        c.bar.value = m.ops_per_s;
      }
    }
    BR.clear(verdict);
    verdict.hidden = !wc;
    if (wc) {
      verdict.appendChild(BR.el("h2", { class: "winner", text: wc.winner_text }));
      if (wc.not_comparable) verdict.appendChild(BR.el("p", { class: "warn", text: wc.not_comparable }));
      if (wc.outputs) verdict.appendChild(BR.el("p", { class: "outputs", text: wc.outputs }));
      const ul = BR.el("ul", { class: "verdicts" });
      for (const v of wc.verdicts) ul.appendChild(BR.el("li", { text: v.text }));
      verdict.appendChild(ul);
    }
    BR.notice(status, "info", `Run ${runId} finished.`);
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      runId = null;
      waiting = true;
      const created = await BR.api("/api/runs", { json: body() });
      waiting = false;
      if (runId !== created.run_id) follow(created.run_id);
      BR.notice(status, "info", `Run ${runId} started.`);
      // Events may have raced ahead of this answer: pick them up from the stored log.
      await resync();
    } catch (err) {
      BR.notice(status, "error", err.message);
    }
  });

  BR.liveSocket(onEvent, (reconnected) => { if (reconnected) resync(); });
  loadMachines().catch((e) => BR.notice(status, "error", `Could not load machines: ${e.message}`));
  const asked = new URLSearchParams(location.search).get("run_id");
  if (asked) {
    follow(asked);
    resync();
  }
})();

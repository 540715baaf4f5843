// RunView: renders one run (a card per machine + the final comparison) from a stream of events.
// The race page feeds it live WebSocket events; the history page feeds it the stored
// `events.ndjson` of a run. Both go through `apply`, so a replayed run looks like the live one.
"use strict";

const TERMINAL = new Set(["done", "error", "cancelled", "skipped"]);
const EST_CHARS_PER_TOKEN = 4;
// A result at or above this share of the agent's client ceiling may measure the tool.
const CEILING_WARN_RATIO = 0.5;
const el_ = (...a) => BR.el(...a); // live estimate only; exact counts replace it at request_done
/** The metrics a run can be ranked by (summary.json `rank_by`), as the page names them. */
const RANK_METRICS = {
  decode_tok_s: { label: "decode tok/s", unit: "tok/s", better: "higher", help: "tokens after the first ÷ time from first to last token, mean over warm repeats." },
  gen_tokens_per_s: { label: "tok/s", unit: "tok/s", better: "higher", help: "generated tokens ÷ (total time − time to first token), mean over warm repeats." },
  prefill_tok_s: { label: "prefill tok/s", unit: "tok/s", better: "higher", help: "prompt tokens ÷ prompt-processing time (engine-reported where the engine says), mean over warm repeats." },
  ttft_ms: { label: "time to first token", unit: "ms", better: "lower", help: "request sent → first generated text, mean over warm repeats." },
  total_ms: { label: "total time", unit: "ms", better: "lower", help: "request sent → last byte, mean over warm repeats." },
};

class RunView {
  constructor({ cardsEl, comparisonEl }) {
    this.cardsEl = cardsEl;
    this.comparisonEl = comparisonEl;
    this.runId = null;
    this.machines = new Map(); // id -> state
    this.finished = false;
    this.onFinish = null;
    this.onAllTerminal = null;
    this.onRerun = null; // (repeats) => void: the race page reruns with more repeats
    this.clock = null; // metadata.json `clock`: offsets and the achieved start skew
  }

  /** Starts a fresh view: `machines` = normalised machine records (BR.machine) to show. */
  reset(runId, machines) {
    this.runId = runId;
    this.finished = false;
    this.clock = null;
    this.machines.clear();
    BR.clear(this.cardsEl);
    this.comparisonEl.hidden = true;
    BR.clear(this.comparisonEl);
    machines.forEach((m, i) => this.addMachine(m, i));
  }

  addMachine(m, index = this.machines.size) {
    if (this.machines.has(m.id)) return this.machines.get(m.id);
    const st = {
      id: m.id, label: m.label || m.id, machine: m, color: Charts.color(index),
      status: "idle", reason: "", jobId: null, seqs: new Map(),
      repeat: 0, repeats: 1, startedAt: null, firstTokenAt: null, lastTokenAt: null, chars: 0, liveTokens: 0,
      metrics: {}, final: null, endedAt: null, arrival: null, el: {}, chart: null,
    };
    this.machines.set(m.id, st);
    this.buildCard(st);
    return st;
  }

  buildCard(st) {
    const { el } = BR;
    const metric = (key, label) => {
      const v = el("dd", { text: "–", dataset: { metric: key } });
      st.el[key] = v;
      return el("div", { class: "metric" }, el("dt", { text: label }), v);
    };
    st.el.status = el("span", { class: "status", text: st.status });
    st.el.reason = el("div", { class: "reason", hidden: true });
    st.el.repeat = el("span", { class: "hint repeat" });
    st.el.output = el("pre", { class: "output content", "aria-label": `Output of ${st.label}` });
    st.el.reasoning = el("pre", { class: "output reasoning", hidden: true, title: "reasoning text" });
    st.el.extra = el("div", { class: "extra hint" });
    st.el.delta = el("div", { class: "deltas", hidden: true });
    st.telemetry = new Telemetry.Panel();
    st.el.lead = el("div", { class: "lead", hidden: true, dataset: { metric: "lead" } });
    st.el.warnings = el("div", { class: "card-warnings" });
    st.el.clock = el("div", { class: "hint clock", hidden: true, dataset: { metric: "clock" } });
    // The client-ceiling warning: job_done.ceiling_ratio ≥ 0.5 (its own element: the fairness
    // warnings above are redrawn with the comparison).
    st.el.ceiling = el("div", { class: "fairness-warning ceiling-warning", hidden: true, dataset: { kind: "client_ceiling" } });
    st.el.chart = el("div", { class: "spark", title: "tok/s since the first token; live values are estimated from text until the agent reports the token count" });
    // One colour per machine: the card's edge, its live line and its bars share it.
    st.el.card = el("article", { class: "card status-idle", dataset: { machine: st.id }, style: `border-top: 4px solid ${st.color}` },
      el("header", {},
        el("h3", {}, el("span", { class: "swatch", style: `background:${st.color}` }), st.label),
        st.el.status),
      el("div", { class: "badges" }, BR.badges(st.machine)),
      st.el.reason,
      st.el.lead,
      st.el.warnings,
      st.el.ceiling,
      el("dl", { class: "metrics" },
        metric("ttft", "TTFT (client)"), metric("tokens", "Tokens"), metric("toks", "Decode tok/s (client)"), metric("total", "Total (client)")),
      st.el.extra,
      st.el.clock,
      st.el.delta,
      st.el.chart,
      st.telemetry.el,
      el("div", { class: "output-head" }, el("span", { class: "hint", text: "Output" }), st.el.repeat),
      st.el.reasoning,
      st.el.output);
    this.cardsEl.appendChild(st.el.card);
  }

  setStatus(st, status, reason) {
    st.status = status;
    st.el.status.textContent = status;
    st.el.card.className = `card status-${status}${st.el.card.classList.contains("winner") ? " winner" : ""}`;
    if (reason !== undefined) {
      st.reason = reason || "";
      st.el.reason.textContent = st.reason;
      st.el.reason.hidden = !st.reason;
    }
  }

  /** Marks machines the run did not include (offline, model missing), with the reason. */
  markSkipped(skipped) {
    for (const s of skipped) {
      const st = this.machines.get(s.machine_id) || this.addMachine({ id: s.machine_id, label: s.label || s.machine_id, accel: null });
      this.setStatus(st, "skipped", s.reason);
    }
  }

  markQueued(ids) {
    for (const id of ids) {
      const st = this.machines.get(id);
      if (st && st.status === "idle") this.setStatus(st, "queued", "");
    }
  }

  /** Applies one event (agent envelope with machine_id, or run_start / run_end). */
  apply(ev) {
    if (!ev || !ev.type) return;
    if (ev.run_id && this.runId && ev.run_id !== this.runId) return;
    if (ev.type === "run_end") { this.finish((ev.payload || ev).summary || undefined); return; }
    if (ev.type === "run_start") {
      this.markSkipped(RunView.skippedFromMachines((ev.payload || ev).machines));
      return;
    }
    if (ev.type === "machine_status") { this.onMachineStatus(ev); return; }
    const st = ev.machine_id && this.machines.get(ev.machine_id);
    if (!st) return;
    // Replay after a reconnect re-delivers events: keep only the new ones (per job, by seq).
    if (ev.job_id && typeof ev.seq === "number" && ev.seq > 0) {
      const last = st.seqs.get(ev.job_id) || 0;
      if (ev.seq <= last) return;
      st.seqs.set(ev.job_id, ev.seq);
    }
    const p = ev.payload || {};
    switch (ev.type) {
      case "job_queued": if (!TERMINAL.has(st.status)) this.setStatus(st, "queued"); break;
      case "job_started": this.onStarted(st, ev, p); break;
      case "llm_token": this.onToken(st, p); break;
      case "request_done": this.onRequestDone(st, p); break;
      case "job_done": this.onDone(st, ev, p); break;
      case "runtime_metrics": st.telemetry.push(p); break;
      case "job_error":
        st.endedAt = ev.emitted_at_s || null;
        this.setStatus(st, "error", `${p.kind ? `${p.kind}: ` : ""}${p.message || "failed"}`);
        this.checkAllDone();
        break;
      case "job_cancelled":
        st.endedAt = ev.emitted_at_s || null;
        this.setStatus(st, "cancelled", p.reason || "cancelled");
        this.checkAllDone();
        break;
      default: break;
    }
    if (ev.fallback_reason && !st.el.card.querySelector(".badge.warn")) {
      st.el.card.querySelector(".badges").appendChild(BR.el("span", { class: "badge warn", text: "mock fallback", title: ev.fallback_reason }));
    }
  }

  /** Central's own verdict on a machine (dispatch failed, agent died, timed out). */
  onMachineStatus(ev) {
    const st = this.machines.get(ev.machine_id);
    if (!st || TERMINAL.has(st.status)) return;
    const status = { error: "error", cancelled: "cancelled", interrupted: "error", skipped: "skipped" }[ev.status];
    if (status) {
      this.setStatus(st, status, ev.reason || ev.status);
      this.checkAllDone();
    } else if (ev.status === "running" && st.status === "idle") {
      this.setStatus(st, "queued");
    }
  }

  onStarted(st, ev, p) {
    st.jobId = ev.job_id || st.jobId;
    st.startedAt = BR.num(p.started_at_s) ?? BR.num(ev.emitted_at_s);
    this.setStatus(st, "running", "");
    if (p.engine && !st.machine.engineKind) {
      st.el.card.querySelector(".badges").prepend(BR.el("span", { class: `badge engine-${p.engine}`, text: p.engine }));
    }
  }

  onToken(st, p) {
    if (p.warmup) { st.el.repeat.textContent = "warming up…"; return; }
    if (st.status === "queued" || st.status === "idle") this.setStatus(st, "running");
    const repeat = p.repeat_index || 0;
    if (repeat !== st.repeat) {
      // Every repeat's text stays visible, one after the other, so nothing generated is hidden.
      st.el.output.appendChild(BR.el("span", { class: "repeat-sep", text: `\n── repeat ${repeat + 1} ──\n` }));
      st.chars = 0;
      st.liveTokens = 0;
      st.firstTokenAt = null;
      st.repeat = repeat;
    }
    const ts = BR.num(p.timestamp_s);
    if (st.firstTokenAt === null && ts !== null) {
      st.firstTokenAt = ts;
      // The job's start is the first request's start: only repeat 1 has a live TTFT estimate.
      if (st.startedAt !== null && repeat === 0) st.el.ttft.textContent = `≈${BR.fmtMs((ts - st.startedAt) * 1000)}`;
    }
    if (ts !== null) st.lastTokenAt = ts;
    const text = String(p.text || "");
    if (p.channel === "reasoning") {
      st.el.reasoning.hidden = false;
      st.el.reasoning.appendChild(document.createTextNode(text));
    } else {
      st.el.output.appendChild(document.createTextNode(text));
      st.el.output.scrollTop = st.el.output.scrollHeight;
    }
    // An event's timestamp is when its *first* piece arrived: the text before it arrived
    // between the first event and now, which is what the live rate may divide by that span.
    const before = st.chars;
    st.chars += text.length;
    // Agents say how many engine deltas (tokens) an event carries: count those, not events.
    const tokensBefore = st.liveTokens;
    if (BR.num(p.tokens) !== null && p.tokens > 0) st.liveTokens = (st.liveTokens || 0) + p.tokens;
    else st.liveTokens = null;
    st.el.repeat.textContent = st.repeats > 1 ? `repeat ${repeat + 1}/${st.repeats}` : "";
    this.liveMetrics(st, before, tokensBefore);
  }

  /** Live estimates (marked ≈) until request_done brings the agent's measured figures. */
  liveMetrics(st, charsBefore, tokensBefore) {
    if (st.final) return;
    // Token counts from the agent when every event carried one; else characters ÷ chars/token.
    const counted = st.liveTokens !== null && st.liveTokens !== undefined && tokensBefore !== null && tokensBefore !== undefined;
    const perToken = counted && st.liveTokens > 0 ? st.chars / st.liveTokens : (st.charsPerToken || EST_CHARS_PER_TOKEN);
    st.el.tokens.textContent = `≈${counted ? st.liveTokens : Math.round(st.chars / perToken)}`;
    if (st.startedAt !== null && st.lastTokenAt !== null) st.el.total.textContent = `≈${BR.fmtMs((st.lastTokenAt - st.startedAt) * 1000)}`;
    const span = st.lastTokenAt - st.firstTokenAt;
    // Too early the estimate is mostly noise (one coalesced chunk over a few ms).
    if (st.firstTokenAt !== null && span > 0.3) {
      const charsPerS = charsBefore / span;
      st.el.toks.textContent = `≈${BR.fmt(charsPerS / perToken, 1)}`;
      this.chartPoint(st, st.lastTokenAt - (st.startedAt ?? st.firstTokenAt), charsPerS, perToken);
    }
  }

  /** The live line keeps characters/s and shows them as tok/s with the best known ratio. */
  chartPoint(st, x, charsPerS, perToken) {
    // A rate that is not a number (no characters per token known yet) is not drawn.
    if (!Number.isFinite(charsPerS / perToken) || !Number.isFinite(x)) return;
    if (!st.chart) {
      st.chart = Charts.liveLine(st.el.chart, { stroke: st.color });
      st.points = [];
    }
    st.points.push([x, charsPerS]);
    st.chart.push(x, charsPerS / perToken);
  }

  /** Redraws the live line once the agent's token count gives the real characters per token. */
  recalibrate(st) {
    if (!st.chart || !st.charsPerToken) return;
    st.chart.set(st.points.map((p) => p[0]), st.points.map((p) => p[1] / st.charsPerToken));
  }

  onRequestDone(st, p) {
    if (p.warmup) return;
    // Learn this machine's characters per token, so the next repeat's live estimate is closer.
    if (BR.num(p.gen_tokens) > 0 && st.chars > 0) {
      st.charsPerToken = st.chars / p.gen_tokens;
      this.recalibrate(st);
    }
    this.showMetrics(st, p);
    st.el.extra.textContent = `repeat ${(p.repeat_index || 0) + 1} done`;
  }

  onDone(st, ev, p) {
    st.final = p;
    st.endedAt = BR.num(ev.emitted_at_s);
    st.repeats = p.repeats || st.repeats;
    this.showMetrics(st, p);
    const bits = [];
    if (p.model) bits.push(p.model);
    if (BR.num(p.gen_tokens_per_s) !== null) bits.push(`${BR.fmt(p.gen_tokens_per_s, 1)} tok/s after first token`);
    if (BR.num(p.engine_decode_tok_s) !== null) bits.push(`engine ${BR.fmt(p.engine_decode_tok_s, 1)} tok/s`);
    if (BR.num(p.prompt_tokens) !== null) bits.push(`${p.prompt_tokens} prompt tok`);
    if (BR.num(p.load_ms) !== null) bits.push(`load ${BR.fmtMs(p.load_ms)}`);
    if (p.repeats > 1) bits.push(`mean of ${p.repeats} repeats`);
    if (p.token_source === "chunks") bits.push("tokens counted from chunks");
    if (p.token_source === "words") bits.push("words counted as tokens, timed by the original agent's own client");
    if (BR.num(p.tokens_per_j) !== null) bits.push(`${BR.fmt(p.tokens_per_j, 2)} tok/J (${BR.fmt(p.energy_j, 1)} J per request)`);
    else if (p.requests && p.requests[0] && p.requests[0].energy_unavailable) bits.push(`energy: n/a (${p.requests[0].energy_unavailable})`);
    if (p.throttled === true) bits.push("GPU throttled during the run");
    st.el.extra.textContent = bits.join(" · ");
    this.showCeiling(st, p.ceiling_ratio);
    if (!st.el.output.textContent && p.output_text) st.el.output.textContent = p.output_text;
    this.setStatus(st, "done", "");
    this.checkAllDone();
  }

  /** Shows (or hides) the client-ceiling warning of a card for a `ceiling_ratio`. */
  showCeiling(st, ratio) {
    const text = RunView.ceilingWarning(ratio);
    st.el.ceiling.textContent = text || "";
    st.el.ceiling.hidden = !text;
  }

  showMetrics(st, p) {
    st.metrics = {
      ttft_ms: BR.num(p.ttft_ms), gen_tokens: BR.num(p.gen_tokens), total_ms: BR.num(p.total_ms),
      decode_tok_s: BR.num(p.decode_tok_s) ?? BR.num(p.gen_tokens_per_s),
      gen_tokens_per_s: BR.num(p.gen_tokens_per_s),
    };
    st.el.ttft.textContent = BR.fmtMs(st.metrics.ttft_ms);
    st.el.tokens.textContent = st.metrics.gen_tokens === null ? "–" : String(st.metrics.gen_tokens);
    st.el.toks.textContent = BR.fmt(st.metrics.decode_tok_s, 1);
    st.el.total.textContent = BR.fmtMs(st.metrics.total_ms);
  }

  /**
   * When every machine is terminal: `onAllTerminal` if set (the live page waits for central's
   * run_end, whose summary decides the winner), else render the comparison now.
   */
  checkAllDone() {
    const states = [...this.machines.values()];
    const all = states.length && states.every((s) => TERMINAL.has(s.status) || s.status === "idle")
      && states.some((s) => s.status !== "idle" && s.status !== "skipped");
    if (!all || this.finished) return;
    if (this.onAllTerminal) this.onAllTerminal(); else this.finish();
  }

  /** Ranked rows for the comparison and for baselines. */
  rows() {
    return [...this.machines.values()].map((s) => ({
      id: s.id, label: s.label, status: s.status, color: s.color, reason: s.reason,
      elapsed_s: s.endedAt !== null && s.startedAt !== null ? s.endedAt - s.startedAt : null,
      ...s.metrics,
    }));
  }

  /**
   * Renders finishing order + bar charts with the winner. `summary` (central's summary.json,
   * when known) decides the winner, the metric and the order, so the page never disagrees with
   * the stored result; without it the view ranks by decode tok/s itself.
   */
  finish(summary) {
    if (this.finished && !summary) return;
    this.finished = true;
    const { el } = BR;
    const rows = this.rows();
    const byId = new Map(((summary && summary.machines) || []).map((m) => [m.machine_id, m]));
    for (const r of rows) {
      const s = byId.get(r.id);
      if (!s) continue;
      for (const k of ["ttft_ms", "total_ms", "gen_tokens", "gen_tokens_per_s", "decode_tok_s"]) {
        if (r[k] === null || r[k] === undefined) r[k] = BR.num(s[k]);
      }
      r.finish_order = s.finish_order;
      r.rank = s.rank;
      if (BR.num(s.ceiling_ratio) !== null) this.showCeiling(this.machines.get(r.id), s.ceiling_ratio);
    }
    const rankBy = (summary && summary.rank_by) || "decode_tok_s";
    const metric = RANK_METRICS[rankBy] || { label: rankBy, unit: "", better: "higher", help: "" };
    const comparison = summary && summary.comparison;
    const done = rows.filter((r) => r.status === "done");
    // The comparison's warm means are what the verdict is on: the bars show the same figures.
    for (const r of rows) {
      const f = comparison && Verdict.figure(comparison, rankBy, r.id);
      if (f && BR.num(f.mean) !== null) r[rankBy] = f.mean;
    }
    let winner = null;
    // Only a decided comparison names a winner; without a summary (still live) nobody is crowned.
    if (summary && summary.winner) winner = rows.find((r) => r.id === summary.winner) || null;
    for (const s of this.machines.values()) {
      s.el.card.classList.toggle("winner", !!winner && s.id === winner.id);
      if (s.status === "done") s.el.status.textContent = winner && s.id === winner.id ? "done · winner" : "done";
    }

    const box = BR.clear(this.comparisonEl);
    box.hidden = false;
    box.appendChild(el("h2", { text: "Result" }));
    const digits = metric.unit === "ms" ? 0 : 1;
    box.appendChild(winner
      ? el("p", { class: "winner-line" }, el("span", { class: "trophy", text: "★" }), " Winner: ",
        el("strong", { id: "winner-name", text: winner.label }), ` — ${BR.fmt(winner[rankBy], digits)} ${metric.unit}. `,
        el("span", { class: "hint", id: "winner-metric", text: `Decided by ${metric.label}: ${metric.help}` }))
      : el("p", { class: "hint", id: "no-winner", text: done.length ? `No winner named on ${metric.label}: see the verdict.` : "No machine finished, so there is no winner." }));
    if (comparison) this.showComparison(box, comparison, rankBy);
    this.showClock();

    const orderKey = (r) => r.finish_order ?? (r.elapsed_s ?? Infinity);
    const order = [...done].sort((a, b) => orderKey(a) - orderKey(b));
    const ol = el("ol", { class: "finish-order", id: "finish-order" });
    order.forEach((r) => ol.appendChild(el("li", { dataset: { machine: r.id } },
      el("strong", { text: r.label }), ` — finished after ${BR.fmtMs(r.elapsed_s === null ? r.total_ms : r.elapsed_s * 1000)}`)));
    rows.filter((r) => r.status !== "done").forEach((r) => ol.appendChild(el("li", { class: `not-finished status-${r.status}` },
      el("strong", { text: r.label }), ` — ${r.status}${r.reason ? `: ${r.reason}` : ""}`)));
    const grid = el("div", { class: "bar-grid" }, el("div", { class: "order" }, el("h3", { text: "Finishing order" }), ol));

    // A star only where the verdict on TTFT is significant (or before there is a comparison).
    const ttftVerdict = comparison && (comparison.verdicts || []).find((v) => v.metric === "ttft_ms");
    const ttftBest = comparison && !(ttftVerdict && ttftVerdict.significant) ? null
      : done.filter((r) => r.ttft_ms !== null).sort((a, b) => a.ttft_ms - b.ttft_ms)[0];
    Charts.bars(grid, { title: metric.label, unit: metric.unit, better: metric.better, digits,
      rows: done.map((r) => ({ ...r, value: r[rankBy], winner: !!winner && r.id === winner.id })) });
    Charts.bars(grid, { title: "Time to first token", unit: "ms", better: "lower", digits: 0,
      rows: done.map((r) => ({ ...r, value: r.ttft_ms, winner: !!ttftBest && r.id === ttftBest.id })) });
    box.appendChild(grid);
    if (this.onFinish) this.onFinish(rows, winner);
  }

  /** Verdict panel, each warning on its machine's card, each card led by the `rank_by` figure. */
  showComparison(box, c, rankBy) {
    const labels = new Map([...this.machines.values()].map((s) => [s.id, s.label]));
    Verdict.render(box, c, { labels, onRerun: this.onRerun });
    const metric = RANK_METRICS[rankBy] || { label: rankBy, unit: "" };
    for (const st of this.machines.values()) {
      BR.clear(st.el.warnings);
      for (const w of (c.fairness && c.fairness.warnings) || []) {
        if (w.machine_id === st.id) st.el.warnings.appendChild(Verdict.warningEl(w));
      }
      const f = Verdict.figure(c, rankBy, st.id);
      if (!f || BR.num(f.mean) === null) continue;
      const digits = metric.unit === "ms" ? 0 : 1;
      // The interval is of the geometric mean (log scale): it never reaches below 0.
      const ci = f.ci95 && BR.num(f.geomean) !== null
        ? ` · geometric mean ${BR.fmt(f.geomean, digits)} (95% CI ${BR.fmt(f.ci95[0], digits)}–${BR.fmt(f.ci95[1], digits)})` : "";
      BR.clear(st.el.lead).append(
        BR.el("strong", { class: "lead-value", text: `${BR.fmt(f.mean, digits)} ${metric.unit}` }),
        BR.el("span", { class: "hint", text: ` ${metric.label} (mean)${ci} · ${f.source || "?"}-measured · ${f.n} warm repeat${f.n === 1 ? "" : "s"}` }));
      st.el.lead.hidden = false;
    }
  }

  /**
   * Shows the run's synchronized start (metadata.json `clock`): each card's clock offset and how
   * late its first request went out, and the skew achieved across machines in the result panel.
   */
  setClock(clock) {
    this.clock = clock && typeof clock === "object" ? clock : null;
    const machines = (this.clock && this.clock.machines) || {};
    for (const st of this.machines.values()) {
      const text = RunView.clockLine(machines[st.id]);
      st.el.clock.textContent = text || "";
      st.el.clock.hidden = !text;
    }
    this.showClock();
  }

  /** The result panel's clock line (when the panel is shown). */
  showClock() {
    const box = this.comparisonEl;
    const old = box.querySelector("#clock-info");
    if (old) old.remove();
    if (!this.clock || box.hidden) return;
    const c = this.clock;
    const labels = new Map([...this.machines.values()].map((s) => [s.id, s.label]));
    const offsets = Object.entries(c.machines || {}).map(([id, m]) => {
      const name = labels.get(id) || id;
      if (BR.num(m.offset_ms) === null) return `${name}: offset unknown${m.reason ? ` (${m.reason})` : ""}`;
      return `${name} ${RunView.signedMs(m.offset_ms)}${BR.num(m.rtt_ms) !== null ? ` ±${BR.fmt(m.rtt_ms / 2, 2)} ms` : ""}`;
    });
    const skew = BR.num(c.achieved_skew_ms) !== null
      ? `achieved start skew ${BR.fmt(c.achieved_skew_ms, 2)} ms across ${c.skew_machines} machines (first requests, on central's clock)`
      : "achieved start skew unknown (needs two machines with a measured offset that started)";
    box.appendChild(BR.el("p", { class: "hint clock-info", id: "clock-info", dataset: { skew: BR.num(c.achieved_skew_ms) ?? "" } },
      `Synchronized start: ${skew}. Clock offsets (agent − central): ${offsets.join(", ") || "none measured"}.`));
  }

  /** "clock +1.25 ms ±0.10 · first request 0.42 ms late" for one machine's clock record. */
  static clockLine(m) {
    if (!m) return null;
    const bits = [];
    if (BR.num(m.offset_ms) !== null) {
      bits.push(`clock ${RunView.signedMs(m.offset_ms)}${BR.num(m.rtt_ms) !== null ? ` ±${BR.fmt(m.rtt_ms / 2, 2)} ms` : ""} vs central`);
    } else {
      bits.push(`clock offset unknown${m.reason ? ` (${m.reason})` : ""}`);
    }
    if (BR.num(m.start_error_ms) !== null) {
      const e = m.start_error_ms;
      bits.push(`first request ${BR.fmt(Math.abs(e), 2)} ms ${e >= 0 ? "late" : "early"}`);
    }
    return bits.join(" · ");
  }

  static signedMs(v) {
    return `${v > 0 ? "+" : v < 0 ? "−" : "±"}${BR.fmt(Math.abs(v), 2)} ms`;
  }

  /**
   * The warning for a result at `ratio` (measured decode tok/s ÷ the agent's client ceiling) of
   * what the agent's own measuring path can take, or null below CEILING_WARN_RATIO (or unknown).
   */
  static ceilingWarning(ratio) {
    const r = BR.num(ratio);
    if (r === null || r < CEILING_WARN_RATIO) return null;
    return `⚠ client ceiling: this result is ${BR.fmt(r * 100, 0)}% of what this agent's measuring path can take ` +
      `(ceiling_ratio ${BR.fmt(r, 2)}): the tool, not the machine, may be the limit.`;
  }

  /** The skipped machines of a `machines` list ([{machine_id, status, reason}]). */
  static skippedFromMachines(list) {
    return (Array.isArray(list) ? list : []).filter((m) => m.status === "skipped")
      .map((m) => ({ machine_id: m.machine_id, label: m.label, reason: m.reason || "" }));
  }

  /** Normalises a `skipped` value: [{machine_id, reason}] or {machine_id: reason}. */
  static skippedList(v) {
    if (!v) return [];
    if (Array.isArray(v)) return v.map((s) => (typeof s === "string" ? { machine_id: s, reason: "" } : s));
    return Object.entries(v).map(([machine_id, reason]) => ({ machine_id, reason: typeof reason === "string" ? reason : JSON.stringify(reason) }));
  }
}

// Verdict: the `comparison` block of summary.json in words — the status badge, the reason,
// one sentence per metric, the fairness warnings (each on the card of the machine it concerns)
// and whether the outputs matched. Everything is built with BR.el (no innerHTML).
"use strict";

const Verdict = (() => {
  const { el } = BR;
  const STATUS_TEXT = {
    decided: "decided", tie: "tie", undecided: "no verdict", unfair: "unfair",
  };
  /** Most repeats one run takes (`repeat`, bench_shared::job::MAX_REPEAT). */
  const MAX_REPEAT = 1000;

  /** Fewest warm repeats any machine has on `rank_by` (null when unknown). */
  function fewestRepeats(c) {
    const stats = (c.metrics || []).find((m) => m.metric === c.rank_by);
    if (!stats || !stats.machines || !stats.machines.length) return null;
    return Math.min(...stats.machines.map((m) => m.n || 0));
  }

  /** This machine's figure on one metric: {mean, geomean, n, ci95 (of the geometric mean), source}. */
  function figure(c, metric, machineId) {
    const stats = (c.metrics || []).find((m) => m.metric === metric);
    const m = stats && (stats.machines || []).find((x) => x.machine_id === machineId);
    return m ? { ...m, source: stats.source } : null;
  }

  /**
   * Renders the panel into `box`. `labels`: machine id → label; `onRerun(repeats)`: shown as a
   * one-click rerun when there are too few repeats for a verdict (race page only).
   */
  function render(box, c, { labels = new Map(), onRerun = null } = {}) {
    const name = (id) => labels.get(id) || id;
    const w = c.winner || { status: "undecided", reason: "" };
    const panel = el("section", { class: `verdict verdict-${w.status}`, id: "verdict", dataset: { status: w.status } });
    panel.appendChild(el("h3", {},
      "Verdict ",
      el("span", { class: `verdict-badge status-${w.status}`, id: "verdict-status", text: STATUS_TEXT[w.status] || w.status }),
      w.machine_id ? el("span", { class: "verdict-winner", text: ` ★ ${name(w.machine_id)}` }) : null));
    const fewest = fewestRepeats(c);
    if (w.status === "undecided" && fewest !== null && fewest < 3) {
      const line = el("p", { class: "verdict-few", id: "verdict-few",
        text: `${fewest} repeat${fewest === 1 ? "" : "s"}: no verdict — run ≥ 3. ` });
      if (onRerun) line.appendChild(el("button", { type: "button", id: "rerun-3", text: "Rerun with 3 repeats", on: { click: () => onRerun(3) } }));
      panel.appendChild(line);
    }
    // An open tie or an undecided verdict: how many repeats would settle it, one click away.
    const needed = BR.num(w.repeats_needed);
    if ((w.status === "undecided" || w.status === "tie") && needed !== null && !(fewest !== null && fewest < 3)) {
      const runs = Math.min(needed, MAX_REPEAT);
      const line = el("p", { class: "verdict-repeats", id: "verdict-repeats", dataset: { repeats: String(needed) },
        text: `About ${needed} repeats per machine would settle a ${BR.fmt(c.min_effect_pct, c.min_effect_pct % 1 ? 1 : 0)}% difference at the spread seen`
          + `${needed > MAX_REPEAT ? ` (more than the ${MAX_REPEAT} one run takes)` : ""}. ` });
      if (onRerun) line.appendChild(el("button", { type: "button", id: "rerun-needed", text: `Rerun with ${runs} repeats`, on: { click: () => onRerun(runs) } }));
      panel.appendChild(line);
    }
    panel.appendChild(el("p", { class: "verdict-reason", id: "verdict-reason", text: w.reason || "" }));

    const list = el("ul", { class: "verdict-list", id: "verdicts" });
    for (const v of c.verdicts || []) {
      list.appendChild(el("li", { class: v.significant ? "significant" : "not-significant", dataset: { metric: v.metric } },
        el("span", { class: "metric-name", text: `${v.metric}: ` }), v.text));
    }
    if (list.childNodes.length) panel.appendChild(list);

    const warnings = (c.fairness && c.fairness.warnings) || [];
    const general = warnings.filter((x) => !x.machine_id || !labels.has(x.machine_id));
    panel.appendChild(el("p", { class: "hint", id: "fairness",
      text: warnings.length ? `${warnings.length} fairness warning${warnings.length === 1 ? "" : "s"} (shown on the machines' cards)${c.fairness.fair ? "; none makes a metric incomparable." : "."}` : "Fairness: no warning." }));
    for (const x of general) panel.appendChild(warningEl(x));

    const o = c.outputs || {};
    let outText;
    if (!o.compared) outText = `Outputs not compared: ${o.reason || "—"}.`;
    else if ((o.identical_groups || []).length <= 1) outText = "Outputs: identical on every machine (temperature 0, same seed).";
    else {
      const groups = o.identical_groups.map((g) => g.map(name).join(" = ")).join(" | ");
      const d = o.first_divergence;
      outText = `Outputs differ: ${groups}.${d ? ` First difference at character ${d.char_index}: “${d.excerpts[0]}” vs “${d.excerpts[1]}”.` : ""}`;
    }
    panel.appendChild(el("p", { class: "hint", id: "outputs", text: outText }));
    if ((c.cold || []).length) {
      panel.appendChild(el("p", { class: "hint", id: "cold", text: `Cold starts (left out of the statistics): ${c.cold.map((x) =>
        `${name(x.machine_id)} repeat ${x.repeat_index + 1}${x.load_ms != null ? `, load ${BR.fmtMs(x.load_ms)}` : ""}${x.ttft_ms != null ? `, TTFT ${BR.fmtMs(x.ttft_ms)}` : ""}`).join("; ")}.` }));
    }
    box.appendChild(panel);
    return panel;
  }

  /** One warning as an element (for a card or the panel). */
  function warningEl(x) {
    const blocking = (x.affects || []).length > 0;
    return el("div", { class: `fairness-warning${blocking ? " blocking" : ""}`, dataset: { kind: x.kind, machine: x.machine_id || "" } },
      el("strong", { text: `⚠ ${x.kind}` }), `: ${x.detail}`,
      blocking ? el("span", { class: "hint", text: ` (not comparable: ${x.affects.join(", ")})` }) : null);
  }

  return { render, warningEl, figure, fewestRepeats };
})();

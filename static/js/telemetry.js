// Telemetry: small inline-SVG sparklines of the agent's runtime sampler (CPU %, GPU %, memory,
// VRAM) from `runtime_metrics` events, for race cards and the machines page.
"use strict";

const Telemetry = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const KEEP = 120; // the agent's default buffer_len
  const W = 120, H = 22;

  function pct(used, total) {
    return BR.num(used) !== null && BR.num(total) > 0 ? (100 * used) / total : null;
  }

  /** The series a set of samples gives: only those the machine reports. */
  function series(samples) {
    const gpu0 = (s) => (s.gpus && s.gpus[0]) || {};
    const out = [
      { key: "cpu", label: "CPU", values: samples.map((s) => BR.num(s.cpu_pct)) },
      { key: "mem", label: "Mem", values: samples.map((s) => pct(s.system_mem_used_bytes, s.system_mem_total_bytes)) },
      { key: "gpu", label: "GPU", values: samples.map((s) => BR.num(gpu0(s).util_pct)) },
      { key: "vram", label: "VRAM", values: samples.map((s) => pct(gpu0(s).vram_used_bytes, gpu0(s).vram_total_bytes)) },
    ];
    return out.filter((s) => s.values.some((v) => v !== null));
  }

  /** One 0–100 % sparkline with its label and last value. */
  function line({ key, label, values }) {
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("width", W);
    svg.setAttribute("height", H);
    const step = values.length > 1 ? W / (KEEP - 1) : 0;
    const x0 = W - step * (values.length - 1);
    let d = "", pen = false;
    values.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      const x = x0 + i * step, y = H - 1 - (Math.min(100, Math.max(0, v)) / 100) * (H - 2);
      d += `${pen ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
      pen = true;
    });
    const path = document.createElementNS(NS, "path");
    path.setAttribute("d", d);
    path.setAttribute("class", `spark-${key}`);
    svg.appendChild(path);
    const last = [...values].reverse().find((v) => v !== null);
    return BR.el("div", { class: "telemetry-line", dataset: { series: key } },
      BR.el("span", { class: "hint", text: `${label} ${last === undefined ? "–" : `${Math.round(last)}%`}` }), svg);
  }

  /** A panel that keeps the newest samples and redraws on each. */
  class Panel {
    constructor() {
      this.samples = [];
      this.el = BR.el("div", { class: "telemetry", title: "runtime sampler: CPU, memory, GPU and VRAM use (%)" });
      this.el.hidden = true;
    }

    push(sample) {
      if (!sample || typeof sample !== "object") return;
      this.samples.push(sample);
      if (this.samples.length > KEEP) this.samples.shift();
      this.render();
    }

    render() {
      BR.clear(this.el);
      const all = series(this.samples);
      this.el.hidden = !all.length;
      all.forEach((s) => this.el.appendChild(line(s)));
      const last = this.samples[this.samples.length - 1] || {};
      const hot = (last.gpus || []).filter((g) => g.throttled);
      if (hot.length) this.el.appendChild(BR.el("span", { class: "badge warn", text: "GPU throttling", title: hot.map((g) => (g.throttle_reasons || []).join(", ")).join("; ") }));
    }
  }

  return { Panel, series };
})();

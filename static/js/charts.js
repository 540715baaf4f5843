// Charts: uPlot line charts (live tok/s per card, sweep curves) and plain CSS bar charts
// (the race comparison). CSS bars need no canvas, stay crisp and are readable by tests.
"use strict";

const Charts = (() => {
  const { el, clear, fmt } = BR;
  const PALETTE = ["#4f8cff", "#ff8a3d", "#36c28a", "#d35bd8", "#f2c94c", "#5ad1e6", "#ff5c7a", "#9b8cff"];

  function color(i) {
    return PALETTE[i % PALETTE.length];
  }

  function width(container, fallback = 320) {
    return Math.max(200, Math.floor(container.clientWidth || fallback));
  }

  /**
   * Tick labels with their unit and just enough decimals for neighbouring ticks to differ
   * ("3.00s 3.05s 3.10s", never "3.0s 3.0s 3.1s").
   */
  function tickLabels(values, unit) {
    const finite = values.filter((v) => Number.isFinite(v));
    let step = Infinity;
    for (let i = 1; i < finite.length; i++) step = Math.min(step, Math.abs(finite[i] - finite[i - 1]));
    let decimals = 0;
    while (decimals < 6 && Number.isFinite(step) && step > 0 && Math.round(step * 10 ** decimals) < 1) decimals++;
    // A step like 0.25 needs two decimals, not one.
    while (decimals < 6 && Number.isFinite(step) && step > 0 && Math.abs(step * 10 ** decimals - Math.round(step * 10 ** decimals)) > 1e-6) decimals++;
    return values.map((v) => (Number.isFinite(v) ? `${v.toFixed(decimals)}${unit}` : ""));
  }

  /**
   * Round tick values from 0 (or `min`) to at most `max`: a step of 1, 2, 2.5 or 5 × 10^k chosen
   * for about `count` ticks, so neighbouring labels always differ ("0, 20, 40 tok/s").
   */
  function niceTicks(min, max, count = 4) {
    const lo = Number.isFinite(min) ? Math.min(min, 0) : 0;
    const hi = Number.isFinite(max) && max > lo ? max : lo + 1;
    const raw = (hi - lo) / Math.max(1, count);
    const pow = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * pow).find((s) => s >= raw * 0.8) || 10 * pow;
    const out = [];
    for (let i = 0; ; i++) {
      const v = lo + i * step;
      if (v > hi + step * 1e-9) break;
      out.push(Number(v.toPrecision(12)));
    }
    return out;
  }

  /**
   * A small line chart whose data is appended over time. Returns {push(x, y), set(xs, ys), el}.
   * Draws nothing until uPlot is loaded (it always is: vendored under /static/vendor/).
   */
  function liveLine(container, { label = "tok/s", stroke = color(0), height = 110 } = {}) {
    const xs = [], ys = [];
    const opts = {
      width: width(container),
      height,
      legend: { show: false },
      cursor: { show: false },
      // From zero: a live rate that wobbles by 2 % must not look like a crash.
      scales: { x: { time: false }, y: { range: (u, min, max) => [0, Number.isFinite(max) ? Math.max(1, max * 1.15) : 1] } },
      axes: [
        { stroke: "#8b93a7", grid: { stroke: "#2a3142" }, size: 28, values: (u, v) => tickLabels(v, "s") },
        // Our own round ticks (about one per 30 px): uPlot's default splits on a short axis can
        // round to the same label twice.
        { stroke: "#8b93a7", grid: { stroke: "#2a3142" }, size: 64,
          splits: (u, i, min, max) => niceTicks(min, max, Math.max(2, Math.floor(height / 30))),
          values: (u, v) => tickLabels(v, ` ${label}`) },
      ],
      series: [{}, { label, stroke, width: 2, fill: `${stroke}22`, points: { show: false } }],
    };
    const plot = new uPlot(opts, [xs, ys], container);
    let pending = false;
    const redraw = () => {
      pending = false;
      plot.setData([xs.slice(), ys.slice()]);
    };
    const obs = new ResizeObserver(() => plot.setSize({ width: width(container), height }));
    obs.observe(container);
    return {
      plot,
      push(x, y) {
        xs.push(x);
        ys.push(y);
        if (!pending) { pending = true; requestAnimationFrame(redraw); }
      },
      set(nx, ny) {
        xs.length = 0; ys.length = 0;
        xs.push(...nx); ys.push(...ny);
        redraw();
      },
    };
  }

  /**
   * Multi-series line chart: `series` = [{label, points: [[x, y], …]}], x values may differ per
   * series (uPlot needs one x array, so gaps are filled with null). `pointTicks`: x ticks at the
   * measured points (context sizes, parallel levels) rather than at round numbers. `scatter`:
   * points only, for pairs whose x does not grow with the order of the points.
   */
  function multiLine(container, { title, xLabel, yLabel, series, height = 260, logX = false, pointTicks = true, scatter = false }) {
    clear(container);
    const xsSet = new Set();
    series.forEach((s) => s.points.forEach(([x]) => xsSet.add(x)));
    const xs = [...xsSet].sort((a, b) => a - b);
    const data = [xs];
    for (const s of series) {
      const m = new Map(s.points.map(([x, y]) => [x, y]));
      data.push(xs.map((x) => (m.has(x) ? m.get(x) : null)));
    }
    const box = el("figure", { class: "chart" }, el("figcaption", { text: title }));
    const plotBox = el("div", { class: "plot" });
    box.appendChild(plotBox);
    container.appendChild(box);
    const opts = {
      width: width(container, 600),
      height,
      scales: { x: { time: false, distr: logX ? 3 : 1, log: 2 } },
      axes: [
        pointTicks ? { label: xLabel, stroke: "#8b93a7", grid: { stroke: "#2a3142" }, splits: () => xs }
          : { label: xLabel, stroke: "#8b93a7", grid: { stroke: "#2a3142" } },
        { label: yLabel, stroke: "#8b93a7", grid: { stroke: "#2a3142" }, size: 56 },
      ],
      series: [{ label: xLabel }, ...series.map((s, i) => ({
        label: s.label, stroke: color(i), width: 2, spanGaps: true, points: { show: true, size: scatter ? 9 : 6 },
        ...(scatter ? { paths: () => null } : {}),
      }))],
    };
    const plot = new uPlot(opts, data, plotBox);
    new ResizeObserver(() => plot.setSize({ width: width(container, 600), height })).observe(container);
    return plot;
  }

  /**
   * Horizontal CSS bar chart. rows: [{label, value, winner?}]; `better` = "higher" | "lower"
   * decides nothing here except the caption; the caller marks the winner.
   */
  function bars(container, { title, unit, rows, better, digits = 1 }) {
    const max = Math.max(0, ...rows.map((r) => (typeof r.value === "number" ? r.value : 0)));
    const fig = el("figure", { class: "bars" },
      el("figcaption", {}, el("strong", { text: title }), el("span", { class: "hint", text: ` (${better} is better)` })));
    rows.forEach((r, i) => {
      const has = typeof r.value === "number" && Number.isFinite(r.value);
      const pct = has && max > 0 ? Math.max(1, (r.value / max) * 100) : 0;
      fig.appendChild(el("div", { class: `bar-row${r.winner ? " winner" : ""}`, dataset: { machine: r.id || "" } },
        el("span", { class: "bar-label", text: r.label }),
        el("span", { class: "bar-track" },
          el("span", { class: "bar-fill", style: `width:${pct.toFixed(1)}%;background:${r.color || color(i)}` })),
        el("span", { class: "bar-value", text: has ? `${fmt(r.value, digits)} ${unit}` : "–" }),
        r.winner ? el("span", { class: "trophy", title: "best", text: "★" }) : null));
    });
    container.appendChild(fig);
    return fig;
  }

  return { color, liveLine, multiLine, bars, tickLabels, niceTicks };
})();

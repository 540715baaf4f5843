// Leaderboard page: `GET /api/leaderboard` as a table, best first. The filters and the sort live
// in the address (a filtered, sorted board is a link); sorting is done here, on the rows the API
// returned. Every figure links to the run it came from.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const FILTERS = ["metric", "model", "engine", "since"];
  const form = $("board-filters"), body = $("board").querySelector("tbody"), info = $("board-info");
  /** How many run links a row shows before "+N more". */
  const RUN_LINKS = 5;
  let board = null;

  function params() { return new URLSearchParams(location.search); }

  function setParams(changes) {
    const p = params();
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === undefined || v === "") p.delete(k); else p.set(k, v);
    }
    const qs = p.toString();
    history.replaceState(null, "", `/leaderboard${qs ? `?${qs}` : ""}`);
  }

  function apiQuery() {
    const p = params(), q = new URLSearchParams();
    for (const k of FILTERS) if (p.get(k)) q.set(k, p.get(k));
    return q.toString();
  }

  async function load() {
    const q = apiQuery();
    try {
      board = await BR.api(`/api/leaderboard${q ? `?${q}` : ""}`);
    } catch (e) {
      board = null;
      BR.clear(body);
      info.textContent = `Could not load the leaderboard: ${e.message}`;
      info.className = "notice error";
      return;
    }
    info.className = "hint";
    render();
  }

  /** Rows in the order the address asks for (`sort`, `order`); the API's order otherwise. */
  function sorted(rows) {
    const p = params(), key = p.get("sort");
    if (!key) return rows;
    const dir = p.get("order") === "asc" ? 1 : -1;
    const better = board.higher_is_better ? 1 : -1;
    const val = {
      label: (r) => (r.label || r.machine_id).toLowerCase(),
      best: (r) => r.best * better,
      mean: (r) => (r.geomean ?? r.mean) * better,
      runs: (r) => r.runs,
    }[key];
    if (!val) return rows;
    return [...rows].sort((a, b) => {
      const x = val(a), y = val(b);
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
  }

  function fmtValue(v) {
    if (BR.num(v) === null) return "–";
    const digits = board.unit === "ms" ? 0 : board.unit === "tok/J" ? 2 : 1;
    return `${BR.fmt(v, digits)} ${board.unit}`;
  }

  function runLink(run, text) {
    return BR.el("a", { href: `/history?run_id=${encodeURIComponent(run)}`, text: text || run, title: run });
  }

  function render() {
    const { el } = BR;
    BR.clear(body);
    const rows = sorted(board.rows || []);
    const filters = [board.model && `model “${board.model}”`, board.engine && `engine “${board.engine}”`,
      BR.num(board.since_s) !== null && `since ${BR.fmtTime(board.since_s)}`].filter(Boolean);
    info.textContent = `${rows.length} row${rows.length === 1 ? "" : "s"} from ${board.runs_considered} complete run${board.runs_considered === 1 ? "" : "s"}`
      + `${filters.length ? ` (${filters.join(", ")})` : ""}; ${board.higher_is_better ? "higher" : "lower"} is better. `
      + "Each run counts with its machine's mean over warm repeats; the interval is of the geometric mean over runs.";
    if (!rows.length) {
      body.appendChild(el("tr", {}, el("td", { colspan: "8", class: "hint", text: "No complete run matches: race some machines, or import a bundle." })));
      return;
    }
    rows.forEach((r, i) => {
      const links = r.run_list.slice(0, RUN_LINKS).map((x) => runLink(x.run_id, BR.fmtTime(x.started_at)));
      const more = r.run_list.length > RUN_LINKS ? el("span", { class: "hint", text: ` +${r.run_list.length - RUN_LINKS} more` }) : null;
      const mean = `${fmtValue(r.geomean ?? r.mean)}${r.ci95 ? ` (${BR.fmt(r.ci95[0], board.unit === "ms" ? 0 : 1)}–${BR.fmt(r.ci95[1], board.unit === "ms" ? 0 : 1)})` : ""}`;
      body.appendChild(el("tr", { dataset: { machine: r.machine_id, model: r.model } },
        el("td", { class: "rank", text: String(i + 1) }),
        el("td", {}, el("strong", { text: r.label || r.machine_id }), el("div", { class: "hint", text: r.machine_id })),
        el("td", { text: r.model || "–" }),
        el("td", { text: `${r.engine || "?"}${r.engine_version ? ` ${r.engine_version}` : ""}` }),
        el("td", { class: "best" }, runLink(r.best_run_id, fmtValue(r.best))),
        el("td", { class: "mean", text: mean, title: `arithmetic mean ${fmtValue(r.mean)}` }),
        el("td", { class: "runs" }, el("div", {}, el("strong", { class: "run-count", text: String(r.runs) }),
          r.excluded_runs ? el("span", { class: "hint", text: ` (+${r.excluded_runs} excluded: a fairness warning)` }) : null),
          el("div", { class: "run-links" }, ...links.flatMap((a, j) => (j ? [" · ", a] : [a])), more)),
        el("td", { class: "hardware hint", text: r.hardware || "not reported" })));
    });
  }

  for (const k of FILTERS) if (form.elements[k]) form.elements[k].value = params().get(k) || (k === "metric" ? "decode_tok_s" : "");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const changes = {};
    for (const k of FILTERS) changes[k] = form.elements[k].value.trim() || null;
    if (changes.metric === "decode_tok_s") changes.metric = null;
    setParams(changes);
    load();
  });
  document.querySelectorAll("#board .sort").forEach((b) => b.addEventListener("click", () => {
    const p = params();
    const same = p.get("sort") === b.dataset.sort;
    setParams({ sort: b.dataset.sort, order: same && p.get("order") !== "asc" ? "asc" : null });
    if (board) render();
  }));
  BR.liveSocket((ev) => { if (ev.type === "run_end") load(); });
  load();
})();

// Fleet model pulls: start a pull of a model on the machines that lack it (`POST
// /api/models/pull`) and show one progress bar per machine, fed by central's `model_pull`
// events. A machine whose pull fails shows why; the others go on.
"use strict";

const Pulls = (() => {
  /** Asks central to pull `model` on `machineIds` (all reachable machines lacking it when empty). */
  async function start(model, machineIds) {
    const body = { model };
    if (machineIds && machineIds.length) body.machine_ids = machineIds;
    return BR.api("/api/models/pull", { json: body });
  }

  function label(machines, id) {
    const m = (machines || []).find((x) => x.id === id || x.machine_id === id);
    return m ? m.label : id;
  }

  /** The line under a machine's bar: its state, the engine's words, bytes, or the reason. */
  function describe(p) {
    if (p.state === "failed") return `failed: ${p.error || "no reason given"}`;
    if (p.state === "done") return `done${p.total_bytes ? ` · ${BR.fmtBytes(p.total_bytes)}` : ""}`;
    const bytes = BR.num(p.total_bytes) ? ` · ${BR.fmtBytes(p.completed_bytes || 0)} of ${BR.fmtBytes(p.total_bytes)}` : "";
    return `${p.status || p.state}${bytes}`;
  }

  /** Progress bars of one fleet pull, inside `container`. */
  class Tracker {
    constructor(container, started, machines) {
      this.container = container;
      this.pullId = started.pull_id;
      this.machines = machines;
      this.rows = new Map();
      BR.clear(container);
      container.hidden = false;
      container.appendChild(BR.el("strong", { text: `Pulling ${started.model}` }));
      const list = BR.el("div", { class: "pull-list", dataset: { pull: started.pull_id } });
      container.appendChild(list);
      this.list = list;
      for (const p of started.machines || []) this.update(p);
      if (!(started.machines || []).length) list.appendChild(BR.el("div", { class: "hint", text: "No machine to pull on." }));
      for (const s of started.skipped || []) {
        list.appendChild(BR.el("div", { class: "hint pull-skipped", text: `${label(machines, s.machine_id)}: not asked (${s.reason})` }));
      }
    }

    /** Applies a `model_pull` event (or an entry of the start answer); ignores other pulls. */
    update(p) {
      if (p.pull_id !== this.pullId) return false;
      let row = this.rows.get(p.machine_id);
      if (!row) {
        const bar = BR.el("progress", { max: "1", value: "0" });
        const text = BR.el("span", { class: "hint pull-text" });
        row = { el: BR.el("div", { class: "pull-row", dataset: { machine: p.machine_id } },
          BR.el("span", { class: "pull-label", text: label(this.machines, p.machine_id) }), bar, text), bar, text };
        this.rows.set(p.machine_id, row);
        this.list.appendChild(row.el);
      }
      row.el.dataset.state = p.state;
      if (BR.num(p.total_bytes) && p.total_bytes > 0) {
        row.bar.max = p.total_bytes;
        row.bar.value = p.state === "done" ? p.total_bytes : (p.completed_bytes || 0);
      } else if (p.state === "done") {
        row.bar.max = 1;
        row.bar.value = 1;
      } else if (p.state === "failed") {
        row.bar.value = 0;
      } else {
        row.bar.removeAttribute("value"); // indeterminate until the engine announces sizes
      }
      row.text.textContent = describe(p);
      row.el.className = `pull-row pull-${p.state}`;
      return true;
    }

    /** True once every machine's pull ended. */
    finished() {
      return [...this.rows.values()].every((r) => r.el.dataset.state === "done" || r.el.dataset.state === "failed");
    }
  }

  return { start, Tracker, describe };
})();

// Shared helpers of every page: API calls, safe DOM building, number formatting, the live
// WebSocket with reconnect, and the normalisation of central's machine records.
//
// Text that comes from agents or engines is untrusted: it only reaches the page through
// `textContent` (see `el`), never through innerHTML.
"use strict";

const BR = (() => {
  /** fetch() a JSON API endpoint; throws an Error whose message is the server's `error` field. */
  async function api(path, opts = {}) {
    const init = { headers: { Accept: "application/json" }, ...opts };
    if (opts.json !== undefined) {
      init.method = init.method || "POST";
      init.headers = { ...init.headers, "Content-Type": "application/json" };
      init.body = JSON.stringify(opts.json);
      delete init.json;
    }
    const res = await fetch(path, init);
    const text = await res.text();
    let body = null;
    if (text) {
      try { body = JSON.parse(text); } catch (_) { body = { error: text }; }
    }
    if (res.status === 401) {
      // Central has a token and this browser's session is gone: log in, then come back here.
      location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    }
    if (!res.ok) {
      const msg = (body && (body.error || body.detail)) || `${res.status} ${res.statusText}`;
      const err = new Error(body && body.field ? `${msg} (field: ${body.field})` : msg);
      err.status = res.status;
      err.body = body;
      throw err;
    }
    return body;
  }

  /** GET an NDJSON endpoint and parse every non-empty line. */
  async function ndjson(path) {
    const res = await fetch(path);
    if (!res.ok) throw new Error(`${path}: ${res.status} ${res.statusText}`);
    const text = await res.text();
    const out = [];
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      try { out.push(JSON.parse(line)); } catch (_) { /* a torn last line of a running run */ }
    }
    return out;
  }

  /**
   * Builds an element. `attrs`: `class`, `text` (textContent), `dataset`, `on` ({event: fn}),
   * anything else becomes an attribute. Children: nodes or strings (as text nodes), null skipped.
   */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = String(v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
      else if (k === "style") node.style.cssText = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function num(v) {
    return typeof v === "number" && Number.isFinite(v) ? v : null;
  }

  /** Formats a number with a fixed number of decimals, or "–" when unknown. */
  function fmt(v, digits = 1) {
    const n = num(v);
    return n === null ? "–" : n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  function fmtMs(v) {
    const n = num(v);
    if (n === null) return "–";
    return n >= 1000 ? `${fmt(n / 1000, 2)} s` : `${fmt(n, n >= 100 ? 0 : 1)} ms`;
  }

  function fmtBytes(v) {
    const n = num(v);
    if (n === null || n <= 0) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let x = n, i = 0;
    while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
    return `${fmt(x, i >= 3 ? 1 : 0)} ${units[i]}`;
  }

  /** "2026-11-23 14:30:22" in local time, from epoch seconds, epoch ms or an ISO string. */
  function fmtTime(v) {
    if (v === null || v === undefined || v === "") return "–";
    let d;
    if (typeof v === "number") d = new Date(v > 1e12 ? v : v * 1000);
    else d = new Date(v);
    if (Number.isNaN(d.getTime())) return String(v);
    const p = (x) => String(x).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }

  /** Unwraps list responses that are either a bare array or `{key: [...]}`. */
  function list(body, ...keys) {
    if (Array.isArray(body)) return body;
    for (const k of keys) if (body && Array.isArray(body[k])) return body[k];
    return [];
  }

  /**
   * One machine as the pages use it, from a `GET /api/machines` entry (tolerant of where the
   * backend nests capabilities and health).
   */
  function machine(m) {
    const caps = m.capabilities || m.caps || {};
    const health = m.health || {};
    const engine = m.engine || caps.engine || health.engine || {};
    const hw = m.hardware || caps.hardware || {};
    let models = m.models && m.models.length ? m.models : caps.llm_models || m.llm_models || [];
    models = models.map((x) => (typeof x === "string" ? x : x && x.name)).filter(Boolean);
    const state = String(m.state || m.status || (m.online === false ? "offline" : m.online ? "online" : "unknown")).toLowerCase();
    return {
      id: m.machine_id,
      label: m.label || m.machine_id,
      url: m.agent_base_url || "",
      notes: m.notes || "",
      state,
      online: state === "online" || state === "busy" || state === "idle",
      error: m.error || m.last_error || m.reason || "",
      engineKind: engine.kind || null,
      engineUrl: engine.base_url || "",
      engineVersion: engine.version || "",
      engineReachable: engine.reachable,
      fallback: engine.fallback_reason || null,
      original: m.protocol === "original",
      models,
      modelInfos: caps.models || (m.models || []).filter((x) => x && typeof x === "object"),
      hardware: hw,
      accel: accelerator(hw),
      raw: m,
    };
  }

  /** "GPU: NVIDIA RTX 4090" / "Apple M2 (unified)" / "CPU only". */
  function accelerator(hw) {
    if (!hw || (!hw.cpu_logical_cores && !(hw.gpus || []).length)) return null; // not reported (yet)
    const gpus = hw.gpus || [];
    if (gpus.length) {
      const g = gpus[0];
      return { kind: "gpu", text: `GPU · ${g.name}${g.unified_memory ? " (unified)" : ""}${gpus.length > 1 ? ` ×${gpus.length}` : ""}` };
    }
    return { kind: "cpu", text: "CPU" };
  }

  /** The engine + accelerator badges of a machine card. */
  function badges(m) {
    const out = [];
    if (m.engineKind) out.push(el("span", { class: `badge engine-${m.engineKind}`, text: m.engineKind, title: m.engineUrl }));
    if (m.accel) out.push(el("span", { class: `badge accel-${m.accel.kind}`, text: m.accel.text }));
    if (m.fallback) out.push(el("span", { class: "badge warn", text: "mock fallback", title: m.fallback }));
    if (m.original) {
      out.push(el("span", { class: "badge original", text: "original agent",
        title: "An original bench-race agent: figures from its own client, words counted as tokens" }));
    }
    return out;
  }

  /**
   * Keeps a WebSocket to central's `/api/ws` open: reconnects with capped exponential backoff
   * and calls `onOpen(reconnected)` each time, so pages can re-sync what they missed.
   */
  function liveSocket(onEvent, onOpen) {
    const conn = document.getElementById("conn");
    let delay = 500, opened = false, ws = null;
    const setConn = (state, text) => {
      if (!conn) return;
      conn.className = `conn ${state}`;
      conn.textContent = text;
    };
    function connect() {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      ws = new WebSocket(`${proto}//${location.host}/api/ws`);
      ws.onopen = () => {
        delay = 500;
        setConn("up", "live");
        if (onOpen) onOpen(opened);
        opened = true;
      };
      ws.onmessage = (msg) => {
        let ev;
        try { ev = JSON.parse(msg.data); } catch (_) { return; }
        try { onEvent(ev); } catch (e) { console.error("event handler failed", e, ev); }
      };
      ws.onclose = () => {
        setConn("down", "reconnecting…");
        setTimeout(connect, delay + Math.random() * 250);
        delay = Math.min(delay * 2, 10000);
      };
      ws.onerror = () => { try { ws.close(); } catch (_) { /* already closed */ } };
    }
    connect();
    const handle = { get socket() { return ws; } };
    connections.push(handle);
    return handle;
  }

  /** Every live socket of the page (the browser tests drop one to check the re-sync). */
  const connections = [];

  /** Shows a dismissable error/info line in a container. */
  function notice(container, kind, text) {
    clear(container);
    container.hidden = !text;
    if (text) container.appendChild(el("div", { class: `notice ${kind}`, text }));
  }

  return { api, ndjson, el, clear, num, fmt, fmtMs, fmtBytes, fmtTime, list, machine, badges, liveSocket, notice, connections };
})();

// The Nexus dashboard: reads /dashboard/api/stream (SSE over fetch, so the admin key can
// travel in a header) and renders each pushed state. Data goes in with textContent only.
"use strict";

const KEY_STORE = "nexus.http.dashboard.key";
const SYMBOLS = { healthy: "● healthy", unhealthy: "✖ unhealthy", loading: "◐ loading",
                  unknown: "? unknown" };
const ORIGINS = { api: "added", mdns: "mDNS" };  // a configured backend says nothing
const $ = (selector) => document.querySelector(selector);
let picked = null;        // the request id whose stages are shown
let lastState = null;
let leaderSeen = null;    // the leader on the previous push, to show a change

function headers() {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function dollars(micro) {
  if (micro !== 0 && Math.abs(micro) < 10000) {  // under a cent: enough digits to be non-zero
    const sign = micro < 0 ? "-" : "";
    return `${sign}$0.${String(Math.abs(micro)).padStart(6, "0").replace(/0+$/, "")}`;
  }
  const cents = Math.round(micro / 10000);
  const sign = cents < 0 ? "-" : "";
  const abs = Math.abs(cents);
  return `${sign}$${Math.floor(abs / 100).toLocaleString("en-US")}.${String(abs % 100).padStart(2, "0")}`;
}

function ago(unixSeconds, now) {
  if (unixSeconds == null) return "—";
  const s = Math.max(0, Math.round(now - unixSeconds));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

function ms(value) { return value == null ? "—" : `${Math.round(value)} ms`; }
function clock(unixSeconds) { return new Date(unixSeconds * 1000).toLocaleTimeString(); }

// Bidirectional controls would reorder what follows them on the page: show them instead.
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
function visible(text) {
  return String(text ?? "").replace(BIDI, (c) => `⟨U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}⟩`);
}

function cell(row, text, attrs = {}) {
  const td = document.createElement("td");
  td.textContent = visible(text);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") td.className = value; else td.setAttribute(name, value);
  }
  row.appendChild(td);
  return td;
}

function fill(tbody, items, draw) {
  const rows = items.map((item) => { const tr = document.createElement("tr"); draw(tr, item); return tr; });
  tbody.replaceChildren(...rows);
}

// -- the sections ----------------------------------------------------------------------
function renderFleet(state) {
  const fleet = state.fleet;
  const count = fleet.replicas.length;
  $("#served-by").textContent = visible(`replica ${state.replica}`);
  $("#fleet-summary").textContent = fleet.shared
    ? `${count} live replica${count === 1 ? "" : "s"} sharing Redis; leader ${fleet.leader ?? "none"}${fleet.epoch ? `, epoch ${fleet.epoch}` : ""}`
    : "one replica, in-process store (no Redis configured)";
  if (leaderSeen !== null && fleet.leader !== leaderSeen) {
    const note = $("#leader-change");
    note.hidden = false;
    note.textContent = `Leader changed at ${clock(state.now)}: ${leaderSeen ?? "none"} → ${fleet.leader ?? "none"}`;
  }
  leaderSeen = fleet.leader;
  fill($("#fleet tbody"), fleet.replicas, (tr, r) => {
    tr.dataset.replica = r.id;
    cell(tr, r.id);
    cell(tr, r.leader ? "★ leader" : "follower", { class: r.leader ? "good" : "" });
    cell(tr, r.epoch ?? "—");
    const redis = r.redis.kind === "memory" ? "in-process"
      : r.redis.connected ? "✓ connected" : (r.redis.circuit_open ? "✖ down (circuit open)" : "✖ down");
    cell(tr, redis, { class: r.redis.kind === "memory" || r.redis.connected ? "" : "bad" });
    cell(tr, r.redis.snapshot_age_seconds == null ? "—" : `${r.redis.snapshot_age_seconds.toFixed(1)} s`);
    cell(tr, String(r.in_flight));
    cell(tr, `${Math.round(r.uptime_seconds)} s`);
  });
}

function renderBackends(state) {
  fill($("#backends tbody"), state.backends, (tr, b) => {
    tr.dataset.backend = b.name;
    cell(tr, ORIGINS[b.origin] ? `${b.name} (${ORIGINS[b.origin]})` : b.name);
    cell(tr, SYMBOLS[b.state] ?? b.state, { class: "state", "data-state": b.state });
    cell(tr, `${ago(b.changed_at, state.now)}: ${b.reason}`, { class: "wrap" });
    cell(tr, b.zone);
    cell(tr, String(b.tier));
    cell(tr, b.models.map((m) => m.context_window ? `${m.name} (${m.context_window.toLocaleString("en-US")})` : m.name).join(", ") || "—", { class: "wrap" });
    cell(tr, `${b.in_flight} / ${b.max_concurrent}`);
    cell(tr, ms(b.latency_ms));
    cell(tr, ms(b.ttft_ms));
    cell(tr, b.error_rate == null ? "—" : `${(b.error_rate * 100).toFixed(1)} % of ${b.requests_last_hour}`);
    cell(tr, b.requests_per_minute.toFixed(2));
    cell(tr, engineText(b.engine), { class: "engine" });
  });
}

// The server's own figures: queue (running + waiting / slots), KV use, prefix-cache hits.
function engineText(e) {
  if (!e || !e.fresh) return "—";
  const pct = (x) => (x == null ? "—" : `${Math.round(x * 100)} %`);
  return `${e.running}+${e.waiting}${e.slots ? ` / ${e.slots}` : ""}, KV ${pct(e.kv_usage)}, hits ${pct(e.prefix_cache_hit_rate)}`;
}

function renderMoney(state) {
  const m = state.money;
  $("#spent").textContent = dollars(m.spent_micro_usd);
  $("#spent").title = `${m.spent_micro_usd} micro-USD`;
  $("#limit").textContent = m.limit_micro_usd != null ? `of ${dollars(m.limit_micro_usd)} in ${m.month}` : `in ${m.month}, no monthly limit`;
  const bar = $("#budget-bar");
  bar.hidden = m.limit_micro_usd == null;
  if (m.limit_micro_usd) {
    const share = (x) => `${Math.min(100, (100 * x) / m.limit_micro_usd)}%`;
    bar.querySelector(".used").style.width = share(m.spent_micro_usd);
    bar.querySelector(".soft").style.left = share(m.soft_micro_usd);
    bar.querySelector(".hard").style.left = "calc(100% - 2px)";
    $("#budget-status").textContent = `status: ${m.status} (soft limit at ${dollars(m.soft_micro_usd)}, hard limit at ${dollars(m.limit_micro_usd)}: ${m.hard_limit_action})`;
  } else {
    $("#budget-status").textContent = "";
  }
  $("#projection").textContent = `heading for ${dollars(m.projected_micro_usd)} by the month's end at the current rate`;
  drawDays(m);
  for (const kind of ["backend", "model", "key", "team"]) {
    const rows = m[`by_${kind}`];
    fill($(`#by-${kind} tbody`), rows.length ? rows : [{ name: "—", micro_usd: 0 }], (tr, item) => {
      cell(tr, item.name);
      cell(tr, dollars(item.micro_usd));
    });
  }
}

function svg(name, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function drawDays(m) {
  // Bars of spend per day; a dashed line of the cumulative pace the month is on.
  const chart = $("#by-day");
  const width = 620, height = 160, left = 40, bottom = 20, top = 8;
  const days = m.by_day;
  const peak = Math.max(1, ...days.map((d) => d.micro_usd));
  const slot = (width - left) / days.length;
  const y = (v) => height - bottom - ((height - bottom - top) * v) / peak;
  const nodes = [];
  days.forEach((d, i) => {
    const bar = svg("rect", { class: "day", x: left + i * slot + 1, width: Math.max(1, slot - 2),
                              y: y(d.micro_usd), height: height - bottom - y(d.micro_usd) });
    const tip = svg("title", {});
    tip.textContent = `${d.day}: ${dollars(d.micro_usd)}`;
    bar.appendChild(tip);
    nodes.push(bar);
    if (i % 5 === 0) {
      const label = svg("text", { x: left + i * slot, y: height - 6 });
      label.textContent = d.day.slice(8);
      nodes.push(label);
    }
  });
  const average = m.projected_micro_usd / days.length;
  nodes.push(svg("line", { class: "projection", x1: left, x2: width, y1: y(average), y2: y(average) }));
  const scale = svg("text", { x: 0, y: top + 8 });
  scale.textContent = dollars(peak);
  nodes.push(scale);
  chart.replaceChildren(...nodes);
}

function renderFeed(state) {
  fill($("#feed tbody"), state.decisions, (tr, d) => {
    tr.dataset.request = d.request_id;
    tr.className = `pick${d.request_id === picked ? " picked" : ""}`;
    tr.addEventListener("click", () => { picked = d.request_id; showDecision(d); });
    cell(tr, clock(d.at));
    cell(tr, d.replica);
    cell(tr, [d.key, d.team].filter(Boolean).join(" / ") || "—");
    cell(tr, d.resolved_model && d.resolved_model !== d.model ? `${d.model} → ${d.resolved_model}` : d.model);
    cell(tr, d.backend ?? "—");
    cell(tr, d.error ?? d.reason ?? "", { class: "wrap" });
    cell(tr, d.zone ?? "—");
    cell(tr, d.cost_micro_usd ? dollars(d.cost_micro_usd) : "$0.00");
    cell(tr, ms(d.latency_ms));
    cell(tr, d.status < 400 ? `✓ ${d.status}` : `✖ ${d.status}`, { class: d.status < 400 ? "good" : "bad" });
  });
  const current = state.decisions.find((d) => d.request_id === picked);
  if (current) showDecision(current);
}

function stageRows(tbody, stages) {
  fill(tbody, stages, (tr, s) => {
    tr.dataset.stage = s.stage;
    cell(tr, s.stage);
    cell(tr, s.before.join(", ") || "—", { class: "wrap" });
    cell(tr, s.chosen ? `${s.after.join(", ")} → ${s.chosen}` : (s.after.join(", ") || "none"), { class: "wrap" });
    cell(tr, s.rejected.map((r) => `${r.backend}: ${r.reason}`).join("; ") || "—", { class: "wrap" });
  });
}

// The decision's stage table opens under its own row, not below the whole list.
let decisionBox = null;
function showDecision(d) {
  decisionBox ??= $("#decision");
  const box = decisionBox;
  const row = [...document.querySelectorAll("#feed tbody tr[data-request]")]
    .find((tr) => tr.dataset.request === d.request_id);
  if (row) {
    const detail = document.createElement("tr");
    detail.className = "detail";
    const td = document.createElement("td");
    td.colSpan = row.children.length;
    td.appendChild(box);
    detail.appendChild(td);
    document.querySelectorAll("#feed tbody tr.detail").forEach((old) => old.remove());
    row.after(detail);
  }
  box.hidden = false;
  $("#decision-id").textContent = visible(`${d.request_id} (${d.status})`);
  const stages = d.stages ?? [{ stage: "—", before: [], after: [], rejected: [
    { backend: "not routed", reason: d.error ?? "refused before routing" }] }];
  stageRows(box.querySelector("tbody"), stages);
}

function renderPlacement(state) {
  const p = state.placement;
  const advice = p.mode === "auto" ? "the leader loads what it recommends" : "advice only";
  $("#placement-note").textContent = !p.available
    ? "the store cannot be reached: operations and recommendations are not shown"
    : `pre-warm: ${advice}; computed ${ago(p.computed_at, state.now)}${p.by ? ` by ${p.by}` : ""}`;
  const ops = p.operations.length ? p.operations : [{ id: "—", kind: "no operations yet" }];
  fill($("#operations tbody"), ops, (tr, o) => {
    tr.dataset.operation = o.id;
    cell(tr, o.id);
    cell(tr, o.kind);
    cell(tr, o.model ?? "");
    cell(tr, o.from ? `${o.from} → ${o.to}` : (o.backend ?? ""));
    cell(tr, o.state ?? "", { class: o.state === "failed" ? "bad" : (o.state === "done" ? "good" : "") });
    cell(tr, o.progress == null ? "—" : `${Math.round(o.progress * 100)} %`);
    cell(tr, o.started_at ? ago(o.started_at, state.now) : "");
    cell(tr, o.error ?? "", { class: "wrap" });
  });
  const recs = p.recommendations.length ? p.recommendations
    : [{ model: "—", backends: [], reasoning: "nothing to warm now" }];
  fill($("#recommendations tbody"), recs, (tr, r) => {
    tr.dataset.model = r.model;
    cell(tr, r.model);
    cell(tr, r.backends.join(", ") || "—");
    cell(tr, r.confidence == null ? "" : `${Math.round(r.confidence * 100)} %`);
    cell(tr, r.signal ?? "");
    cell(tr, r.reasoning, { class: "wrap" });
  });
}

function renderRefusals(state) {
  const rows = state.refusals.length ? state.refusals : [{ stage: "—", reason: "nothing refused", count: 0 }];
  fill($("#refusals tbody"), rows, (tr, r) => {
    cell(tr, r.stage);
    cell(tr, r.reason, { class: "wrap" });
    cell(tr, String(r.count));
  });
}

function render(state) {
  lastState = state;
  $("#login").hidden = true;
  $("#board").hidden = false;
  renderFleet(state);
  renderBackends(state);
  renderMoney(state);
  renderPlacement(state);
  renderFeed(state);
  renderRefusals(state);
  $("#updated").textContent = `updated ${clock(state.now)}`;
}

// -- the connection --------------------------------------------------------------------
function setLive(state, text) {
  const pill = $("#live");
  pill.dataset.state = state;
  pill.textContent = text;
}

function askForKey(message) {
  $("#board").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message;
  setLive("down", "✖ locked");
}

async function errorText(response) {
  try { return (await response.json()).error.message; } catch { return `HTTP ${response.status}`; }
}

async function connect() {
  let response;
  try {
    response = await fetch("/dashboard/api/stream", { headers: headers() });
  } catch {
    setLive("down", "✖ disconnected, retrying");
    setTimeout(connect, 2000);
    return;
  }
  if (response.status === 401 || response.status === 403) {
    askForKey(sessionStorage.getItem(KEY_STORE) ? await errorText(response) : "");
    return;
  }
  setLive("live", "● live");
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (data) render(JSON.parse(data));
      }
    }
  } catch { /* the replica went away: reconnect */ }
  setLive("down", "✖ disconnected, retrying");
  setTimeout(connect, 2000);
}

// -- the explain form ------------------------------------------------------------------
async function explainRequest(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { model: form.get("model"), privacy: form.get("privacy"), mode: form.get("mode"),
                 priority: Number(form.get("priority") || 0), key: form.get("key") || "" };
  const response = await fetch("/dashboard/api/explain", {
    method: "POST", headers: { "Content-Type": "application/json", ...headers() }, body: JSON.stringify(body) });
  const box = $("#explain-result");
  box.hidden = false;
  if (!response.ok) {
    $("#explain-outcome").textContent = await errorText(response);
    return;
  }
  const result = await response.json();
  $("#explain-outcome").textContent = result.outcome;
  stageRows(box.querySelector(".stages tbody"), result.stages);
  fill(box.querySelector(".scores tbody"), result.scores, (tr, s) => {
    cell(tr, `${s.backend} (${s.model})`);
    for (const part of [s.score, s.priority, s.free_capacity, s.speed, s.quality]) cell(tr, part.toFixed(3));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORE, $("#login-key").value.trim());
    $("#login-error").textContent = "";
    connect();
  });
  $("#explain-form").addEventListener("submit", explainRequest);
  connect();
});

// The peerq console: the agent's HTTP API (docs/API.md), authenticated by
// the cookie the login form set. No framework, no build step.
"use strict";

const $ = (id) => document.getElementById(id);

async function api(path, init) {
  const resp = await fetch(path, Object.assign({ credentials: "same-origin" }, init));
  if (resp.status === 401) {
    showLogin("");
    throw new Error("not logged in");
  }
  return resp;
}

function showLogin(message) {
  $("console").hidden = true;
  $("login").hidden = false;
  $("login-error").hidden = !message;
  $("login-error").textContent = message;
}

function cell(tr, text, tag, numeric) {
  const c = document.createElement(tag);
  c.textContent = text;
  if (numeric) c.className = "num";
  tr.appendChild(c);
}

// table renders an answer: its columns and the rows as text with units.
function table(el, columns, rows) {
  el.replaceChildren();
  const head = document.createElement("tr");
  columns.forEach((c) => cell(head, c.name, "th"));
  el.appendChild(head);
  rows.forEach((row) => {
    const tr = document.createElement("tr");
    row.forEach((v, i) => cell(tr, v, "td", columns[i].kind !== "string" && columns[i].kind !== "bool"));
    el.appendChild(tr);
  });
}

// ndjson reads a streamed answer line by line, handing each parsed line
// to onLine until it returns false or the stream ends.
async function ndjson(resp, onLine) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = JSON.parse(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if (onLine(line) === false) {
        reader.cancel();
        return;
      }
    }
  }
}

// query posts a statement and reads the NDJSON answer: progress lines as
// they come, then the result (or error) line.
async function query(statement, onProgress) {
  const resp = await api("/v1/query", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ statement }) });
  if (!resp.ok) {
    const e = await resp.json();
    throw new Error(e.error || resp.statusText);
  }
  let result = null;
  await ndjson(resp, (line) => {
    if (line.type === "progress" && onProgress) onProgress(line);
    if (line.type === "error") throw new Error(line.error);
    if (line.type === "result") { result = line; return false; }
    return true;
  });
  if (result) return result;
  throw new Error("the answer ended without a result");
}

// A WATCH streams an answer per epoch: the table is redrawn and the chart
// (uPlot) gains a point per group, for the first numeric column, until
// Stop, another statement, or the tab closes (the request is aborted, and
// the agent stops the standing query).
let watching = null;

function stopWatch() {
  if (watching) watching.abort();
  watching = null;
  $("stop").hidden = true;
}

async function watch(text) {
  stopWatch();
  const ctl = new AbortController();
  watching = ctl;
  $("stop").hidden = false;
  $("chart").replaceChildren();
  let plot = null, labels = [], data = null;
  try {
    const resp = await api("/v1/query", { method: "POST", signal: ctl.signal, headers: { "Content-Type": "application/json" }, body: JSON.stringify({ statement: text }) });
    if (!resp.ok) throw new Error((await resp.json()).error || resp.statusText);
    await ndjson(resp, (line) => {
      if (line.type === "error") { $("error").textContent = line.error; $("error").hidden = false; return true; }
      if (line.type !== "result") return true;
      const cols = line.columns || [], rows = line.rows || [], m = line.meta || {};
      table($("result"), cols, line.text || []);
      $("status").textContent = `epoch ${m.epoch} · ${m.at} · ${rows.length} row(s) · ${m.peers} peers · ${m.status}`;
      $("status").className = m.status === "partial" ? "partial" : "";
      const num = cols.findIndex((c) => c.kind !== "string" && c.kind !== "bool");
      if (num < 0) return true;
      const label = (r, i) => cols.map((c, j) => (c.kind === "string" || c.kind === "bool") ? r[j] : null).filter((x) => x !== null).join("/") || cols[num].name || String(i);
      if (!plot) {
        labels = rows.slice(0, 8).map(label);
        data = [[], ...labels.map(() => [])];
        plot = new uPlot({ width: 640, height: 240, title: cols[num].name,
          series: [{}, ...labels.map((l, i) => ({ label: l, stroke: `hsl(${(i * 137) % 360} 60% 45%)` }))] }, data, $("chart"));
      }
      data[0].push(Date.parse(m.at) / 1000);
      labels.forEach((l, i) => {
        const r = rows.find((row, k) => label(row, k) === l);
        data[i + 1].push(r ? Number(r[num]) : null);
      });
      plot.setData(data);
      return true;
    });
  } catch (e) {
    if (e.name !== "AbortError") { $("error").textContent = e.message; $("error").hidden = false; }
  } finally {
    if (watching === ctl) stopWatch();
  }
}

// runText puts a statement in the editor and runs it.
function runText(text) {
  $("statement").value = text;
  return run(false);
}

async function run(explain) {
  const text = $("statement").value.trim().replace(/;$/, "");
  stopWatch();
  if (!explain && /^watch\b/i.test(text)) {
    $("error").hidden = true;
    $("explain-text").hidden = true;
    return watch(text);
  }
  $("error").hidden = true;
  $("explain-text").hidden = true;
  $("status").textContent = "";
  $("progress").textContent = "…";
  try {
    const res = await query(explain ? "EXPLAIN " + text : text, (p) => {
      $("progress").textContent = `round ${p.round}/${p.budget} · ${p.peers} peers · ±${(100 * (p.error_estimate || 0)).toFixed(2)}%`;
    });
    $("progress").textContent = "";
    if (res.explain) {
      $("explain-text").textContent = res.explain;
      $("explain-text").hidden = false;
      $("result").replaceChildren();
    } else {
      table($("result"), res.columns || [], res.text || []);
    }
    const m = res.meta || {};
    $("status").textContent = `${(res.text || []).length} row(s) · ${m.peers} peers · ${m.rounds} rounds · ${m.status}` + (m.reason ? ` (${m.reason})` : "");
    $("status").className = m.status === "partial" ? "partial" : "";
    refreshSide();
  } catch (e) {
    $("progress").textContent = "";
    $("error").textContent = e.message;
    $("error").hidden = false;
  }
}

async function refreshSide() {
  try {
    const members = await (await api("/v1/members")).json();
    table($("members"), [{ name: "node", kind: "string" }, { name: "addr", kind: "string" }, { name: "tags", kind: "string" }],
      members.map((m) => {
        const tags = m.tags || {};
        return [m.name, m.addr,
          Object.keys(tags).filter((k) => !k.startsWith("peerq") && !k.startsWith("subcloud")).sort().map((k) => `${k}=${tags[k]}`).join(" ")];
      }));
    const subs = await query("SHOW SUBCLOUDS");
    const keep = ["subcloud", "owner", "target", "size", "earliest_expiry"];
    const idx = keep.map((k) => (subs.columns || []).findIndex((c) => c.name === k)).filter((i) => i >= 0);
    table($("subclouds"), idx.map((i) => subs.columns[i]), (subs.text || []).map((r) => idx.map((i) => r[i])));
    // This agent's own subclouds (it knows their target) can be released here.
    const target = (subs.columns || []).findIndex((c) => c.name === "target");
    $("subclouds").querySelectorAll("tr").forEach((tr, k) => {
      if (k === 0) return;
      const row = (subs.rows || [])[k - 1] || [];
      if (target < 0 || row[target] === null) return;
      const b = document.createElement("button");
      b.textContent = "Release";
      b.className = "release";
      b.dataset.name = row[0];
      b.addEventListener("click", () => runText(`RELEASE "${row[0].replaceAll('"', '""')}"`));
      const td = document.createElement("td");
      td.appendChild(b);
      tr.appendChild(td);
    });
    const attrs = await (await api("/v1/attributes")).json();
    $("words").replaceChildren(...attrs.map((a) => { const o = document.createElement("option"); o.value = a.name; return o; }));
  } catch (e) { /* shown on the next run */ }
}

async function start() {
  const resp = await fetch("/v1/health", { credentials: "same-origin" });
  if (resp.status === 401) {
    showLogin(new URLSearchParams(location.search).has("denied") ? "wrong token" : "");
    return;
  }
  const h = await resp.json();
  const states = Object.entries(h.members || {}).filter(([s, k]) => s !== "alive" && k > 0).map(([s, k]) => `${k} ${s}`);
  $("agent").textContent = `agent ${h.node} · ${h.peers} peers` + (states.length ? ` (${states.join(", ")})` : "");
  $("login").hidden = true;
  $("console").hidden = false;
  await refreshSide();
  document.body.dataset.ready = "1"; // for tests: the console is loaded and listed
}

$("run").addEventListener("click", () => run(false));
$("explain").addEventListener("click", () => run(true));
$("stop").addEventListener("click", stopWatch);
$("reserve-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("reserve-name").value.trim().replaceAll('"', '""');
  runText(`RESERVE ${Number($("reserve-n").value)} AS "${name}" FOR ${$("reserve-for").value.trim()}`);
});
$("statement").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(false); });
window.addEventListener("load", start);

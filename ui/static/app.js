// The peerq console: the agent's HTTP API (docs/API.md), authenticated by
// the cookie the login form set. No framework, no build step. Two views
// share the page beside the members and subclouds: the statements (#/)
// and a node's page (#/nodes/NAME).
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

// Columns whose values are members' names: their cells link to the
// node's page (members: a comma-separated list).
const nodeColumns = new Set(["node", "owner", "members"]);

function nodeHref(name) { return "#/nodes/" + encodeURIComponent(name); }

// nodeLinks fills el with a link per name in text (comma-separated).
function nodeLinks(el, text) {
  String(text).split(",").filter((n) => n !== "").forEach((name, i) => {
    if (i > 0) el.appendChild(document.createTextNode(","));
    const a = document.createElement("a");
    a.href = nodeHref(name);
    a.className = "node-link";
    a.textContent = name;
    el.appendChild(a);
  });
}

function cell(tr, text, tag, numeric, linked) {
  const c = document.createElement(tag);
  if (linked && text !== null && text !== "") nodeLinks(c, text);
  else c.textContent = text;
  if (numeric) c.className = "num";
  tr.appendChild(c);
  return c;
}

const textual = (c) => c.kind === "string" || c.kind === "bool";

// table renders an answer: its columns and the rows as text with units;
// the cells of a column of members' names link to their pages.
function table(el, columns, rows) {
  el.replaceChildren();
  const head = document.createElement("tr");
  columns.forEach((c) => cell(head, c.name, "th"));
  el.appendChild(head);
  rows.forEach((row) => {
    const tr = document.createElement("tr");
    row.forEach((v, i) => cell(tr, v, "td", !textual(columns[i]), columns[i].kind === "string" && nodeColumns.has(columns[i].name)));
    el.appendChild(tr);
  });
  return el;
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

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function setStatus(text, className) {
  $("status").textContent = text;
  $("status").className = className || "";
}

// clearOutput empties what the last statement showed — rows, chart,
// plan, status, error — so that a statement's output is only its own.
function clearOutput() {
  $("result").replaceChildren();
  $("chart").replaceChildren();
  $("explain-text").hidden = true;
  $("explain-text").textContent = "";
  $("error").hidden = true;
  $("error").textContent = "";
  $("progress").textContent = "";
  setStatus("");
}

// A WATCH streams an answer per epoch: the table is redrawn and the chart
// (uPlot) gains a point per series, until Stop, another statement, or the
// tab closes (the request is aborted, and the agent stops the standing
// query). watching is the running one: its abort controller, and the
// epochs and rounds it has shown, for the status after Stop.
let watching = null;

function stopWatch() {
  const w = watching;
  watching = null;
  $("stop").hidden = true;
  if (w) w.ctl.abort();
  return w;
}

// series says which series each row of a WATCH's answer belongs to, and
// which column is charted: the first numeric column that is not a key
// (the columns marked key — GROUP BY keys, a top-k's node — name a row;
// docs/API.md). A row is named by its keys; without keys, an ungrouped
// aggregate's one row by the column, a top-k's rows by their rank.
function series(cols, rows) {
  const keys = cols.map((c, j) => (c.key ? j : -1)).filter((j) => j >= 0);
  const num = cols.findIndex((c) => !c.key && !textual(c));
  const name = (r, i) => keys.length ? keys.map((j) => String(r[j])).join("/") : rows.length === 1 ? cols[num].name : `#${i + 1}`;
  return { num, name };
}

// The chart keeps at most maxSeries series: the first groups seen.
const maxSeries = 8;

async function watch(text) {
  const ctl = new AbortController();
  const w = { ctl, epochs: 0, rounds: 0, last: null };
  watching = w;
  $("stop").hidden = false;
  setStatus("waiting for the first epoch…");
  let plot = null, data = null;
  const index = new Map(); // series name → its index in data
  try {
    const resp = await api("/v1/query", { method: "POST", signal: ctl.signal, headers: { "Content-Type": "application/json" }, body: JSON.stringify({ statement: text }) });
    if (!resp.ok) throw new Error((await resp.json()).error || resp.statusText);
    await ndjson(resp, (line) => {
      // Lines already read when Stop or another statement ended this
      // WATCH are not shown: the page is the new statement's.
      if (watching !== w) return false;
      if (line.type === "error") { showError(line.error); return true; }
      if (line.type !== "result") return true;
      const cols = line.columns || [], rows = line.rows || [], m = line.meta || {};
      w.epochs++;
      w.rounds += m.rounds || 0;
      w.last = m.at;
      $("error").hidden = true;
      table($("result"), cols, line.text || []);
      setStatus(`epoch ${m.epoch} · ${m.at} · ${rows.length} row(s) · ${m.peers} peers · ${m.rounds} rounds · ${m.status}` + (m.reason ? ` (${m.reason})` : ""),
        m.status === "partial" ? "partial" : "");
      const { num, name } = series(cols, rows);
      if (num < 0) return true;
      if (!plot) {
        data = [[]];
        plot = new uPlot({ width: 640, height: 240, title: cols[num].name, series: [{}] }, data, $("chart"));
        $("chart").plot = plot; // for the browser test: the series and their points
      }
      data[0].push(Date.parse(m.at) / 1000);
      const seen = new Map();
      rows.forEach((r, i) => seen.set(name(r, i), r[num]));
      for (const s of seen.keys()) {
        if (index.has(s) || index.size >= maxSeries) continue;
        index.set(s, data.length);
        data.push(new Array(data[0].length - 1).fill(null));
        plot.addSeries({ label: s, stroke: `hsl(${(index.size * 137) % 360} 60% 45%)` }, data.length - 1);
      }
      index.forEach((k, s) => data[k].push(seen.has(s) ? Number(seen.get(s)) : null));
      plot.setData(data);
      return true;
    });
    if (watching === w) {
      stopWatch();
      setStatus(`ended by the agent after ${w.epochs} epochs · ${w.rounds} rounds`, "stopped");
    }
  } catch (e) {
    if (e.name === "AbortError") return;
    if (watching === w) stopWatch();
    showError(e.message);
  }
}

// stop is the Stop button: the WATCH ends, and the status says so and how
// far it went.
function stop() {
  const w = stopWatch();
  if (!w) return;
  setStatus(`stopped after ${w.epochs} epochs · ${w.rounds} rounds` + (w.last ? ` · last epoch ${w.last}` : ""), "stopped");
}

// runText puts a statement in the editor and runs it.
function runText(text) {
  $("statement").value = text;
  return run(false);
}

async function run(explain) {
  const text = $("statement").value.trim().replace(/;$/, "");
  stopWatch();
  clearOutput();
  if (!explain && /^watch\b/i.test(text)) return watch(text);
  $("progress").textContent = "…";
  try {
    const res = await query(explain ? "EXPLAIN " + text : text, (p) => {
      $("progress").textContent = `round ${p.round}/${p.budget} · ${p.peers} peers · ±${(100 * (p.error_estimate || 0)).toFixed(2)}%`;
    });
    $("progress").textContent = "";
    if (res.explain) {
      $("explain-text").textContent = res.explain;
      $("explain-text").hidden = false;
    } else {
      table($("result"), res.columns || [], res.text || []);
    }
    const m = res.meta || {};
    setStatus(`${(res.text || []).length} row(s) · ${m.peers} peers · ${m.rounds} rounds · ${m.status}` + (m.reason ? ` (${m.reason})` : ""),
      m.status === "partial" ? "partial" : "");
    refreshSide();
  } catch (e) {
    $("progress").textContent = "";
    showError(e.message);
  }
}

// ago is how long before now an RFC 3339 time was, for people.
function ago(t) {
  const s = Math.max(0, (Date.now() - Date.parse(t)) / 1000);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

// userTags are a member's tags but peerq's own.
function userTags(tags) {
  return Object.keys(tags || {}).filter((k) => !k.startsWith("peerq") && !k.startsWith("subcloud")).sort().map((k) => `${k}=${tags[k]}`).join(" ");
}

// refreshMembers lists every member the agent knows: live ones, and in
// red those that failed (grey: left), with when they were last seen.
async function refreshMembers() {
  const members = await (await api("/v1/members")).json();
  const str = { kind: "string" };
  table($("members"), [{ name: "node", kind: "string" }, { name: "status", ...str }, { name: "addr", ...str }, { name: "tags", ...str }],
    members.map((m) => [m.name, m.status === "alive" ? "alive" : `${m.status}` + (m.last_seen ? ` · last seen ${ago(m.last_seen)}` : ""),
      m.addr, userTags(m.tags)]));
  $("members").querySelectorAll("tr").forEach((tr, k) => {
    if (k > 0) tr.className = members[k - 1].status;
  });
}

async function refreshSubclouds() {
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
}

async function refreshHealth() {
  const h = await (await api("/v1/health")).json();
  const states = Object.entries(h.members || {}).filter(([s, k]) => s !== "alive" && k > 0).map(([s, k]) => `${k} ${s}`);
  $("agent").textContent = `agent ${h.node} · ${h.peers} peers` + (states.length ? ` (${states.join(", ")})` : "");
}

async function refreshSide() {
  try {
    await Promise.all([refreshHealth(), refreshMembers(), refreshSubclouds()]);
    const attrs = await (await api("/v1/attributes")).json();
    $("words").replaceChildren(...attrs.map((a) => { const o = document.createElement("option"); o.value = a.name; return o; }));
  } catch (e) { /* shown on the next run */ }
}

// facts fills a two-column table of label and value (a value may be a
// node element).
function facts(el, pairs) {
  el.replaceChildren(...pairs.filter(([, v]) => v !== null && v !== undefined && v !== "").map(([k, v]) => {
    const tr = document.createElement("tr");
    cell(tr, k, "th");
    const td = document.createElement("td");
    if (v instanceof Node) td.appendChild(v); else td.textContent = v;
    tr.appendChild(td);
    return tr;
  }));
}

// stamp is an RFC 3339 time to the second, UTC.
function stamp(t) { return new Date(t).toISOString().replace(/\.\d+Z$/, "Z"); }

function when(t) { return t ? `${stamp(t)} (${ago(t)})` : null; }

// showNode renders a node's page (GET /v1/nodes/NAME): what this agent
// knows of it, without gossip.
async function showNode(name) {
  const resp = await api(`/v1/nodes/${encodeURIComponent(name)}?events=50`);
  const n = await resp.json();
  if (!resp.ok) {
    $("node-error").textContent = n.error || resp.statusText;
    $("node-error").hidden = false;
    return;
  }
  $("node-error").hidden = true;
  $("node-status").textContent = n.status;
  $("node-status").className = "badge " + n.status;
  facts($("node-facts"), [["address", n.addr], ["exchange", n.exchange], ["identity", n.identity], ["incarnation", n.incarnation],
    ["last seen", n.status === "alive" ? null : when(n.last_seen)], ["", n.self ? "this agent's own peer" : null]]);
  table($("node-tags"), [{ name: "tag", kind: "string" }, { name: "value", kind: "string" }],
    Object.keys(n.tags || {}).filter((k) => !k.startsWith("peerq")).sort().map((k) => [k, n.tags[k]]));
  const lease = $("node-lease");
  lease.replaceChildren();
  if (n.lease) {
    const owner = document.createElement("span");
    nodeLinks(owner, n.lease.owner);
    lease.append(`in subcloud ${n.lease.subcloud}, owned by `, owner,
      n.lease.expires ? `, until ${stamp(n.lease.expires)}` : "", n.lease.since ? ` (the subcloud since ${stamp(n.lease.since)})` : "");
  } else {
    lease.textContent = "none: it is free";
  }
  table($("node-owns"), [{ name: "subcloud", kind: "string" }, { name: "size", kind: "count" }, { name: "members", kind: "string" },
    { name: "earliest_expiry", kind: "string" }, { name: "source", kind: "string" }],
    n.owns.map((o) => [o.subcloud, String(o.members.length), o.members.join(","), o.earliest_expiry ? stamp(o.earliest_expiry) : "", o.source]));
  $("node-events-hint").textContent = n.self ? "the last membership events this agent saw, newest first"
    : `the last membership events about ${n.name} this agent saw, newest first`;
  table($("node-events"), [{ name: "at", kind: "string" }, { name: "node", kind: "string" }, { name: "event", kind: "string" },
    { name: "address", kind: "string" }, { name: "pool", kind: "string" }],
  n.events.slice().reverse().map((e) => [when(e.at), e.node, e.event, e.addr || "", e.pool || ""]));
  $("node-events").querySelectorAll("tr").forEach((tr, k) => {
    if (k > 0 && tr.cells[2].textContent === "member-failed") tr.className = "failed";
  });
  $("node-view").dataset.loaded = name; // for tests: this node's page is drawn
}

// route shows the view the address names: #/nodes/NAME or the statements.
async function route() {
  const m = /^#\/nodes\/(.+)$/.exec(location.hash);
  $("query-view").hidden = !!m;
  $("node-view").hidden = !m;
  if (!m) return;
  const name = decodeURIComponent(m[1]);
  delete $("node-view").dataset.loaded;
  $("node-name").textContent = name;
  try {
    await showNode(name);
  } catch (e) {
    $("node-error").textContent = e.message;
    $("node-error").hidden = false;
  }
}

// An operator keeps the console open: the members and the node page
// shown are read again every few seconds (the agent's own state, no
// gossip); the subclouds (which asks their owners) less often.
function poll() {
  let tick = 0, busy = false;
  setInterval(async () => {
    if (busy || $("console").hidden) return;
    busy = true;
    try {
      await Promise.all([refreshHealth(), refreshMembers(), $("node-view").hidden ? null : showNode($("node-name").textContent),
        ++tick % 6 === 0 ? refreshSubclouds() : null]);
    } catch (e) { /* shown on the next run */ } finally {
      busy = false;
    }
  }, 5000);
}

async function start() {
  const resp = await fetch("/v1/health", { credentials: "same-origin" });
  if (resp.status === 401) {
    showLogin(new URLSearchParams(location.search).has("denied") ? "wrong token" : "");
    return;
  }
  $("login").hidden = true;
  $("console").hidden = false;
  await Promise.all([refreshSide(), route()]);
  poll();
  document.body.dataset.ready = "1"; // for tests: the console is loaded and listed
}

$("run").addEventListener("click", () => run(false));
$("explain").addEventListener("click", () => run(true));
$("stop").addEventListener("click", stop);
$("node-record").addEventListener("click", () => {
  const name = $("node-name").textContent;
  location.hash = "#/";
  runText(`SELECT * FROM peers WHERE node = '${name.replaceAll("'", "''")}'`);
});
$("reserve-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("reserve-name").value.trim().replaceAll('"', '""');
  runText(`RESERVE ${Number($("reserve-n").value)} AS "${name}" FOR ${$("reserve-for").value.trim()}`);
});
$("statement").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(false); });
window.addEventListener("hashchange", route);
window.addEventListener("load", start);

// Cairn audit view: a read-only page over the audit endpoints of the HTTP API (docs/openapi.yaml).
// Plain JavaScript, no framework, nothing fetched but this server's own /v1 endpoints.
//
// The DAG is drawn like a forge's network graph: one row per entry, newest first, each entry a
// dot in a lane, edges to its parents. Windows of rows are fetched as the list is scrolled, and
// only the rows on screen are put in the DOM and drawn, so a 100k-entry log scrolls as fast as a
// small one. The lane layout is incremental: each window continues the lanes the last one left.
"use strict";

const ROW = 22;          // px per row (style.css --row)
const LANE = 14;         // px per lane (style.css --lane)
const WINDOW = 200;      // rows per fetched window
const PREFETCH = 120;    // fetch the next window when the screen ends this close to the last row
const PALETTE = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#0598bc", "#bf3989", "#6e7781"];

// ---------------------------------------------------------------------------------------------
// Small helpers

/** Makes an element; children are nodes or strings (always text: data never becomes markup). */
function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") element.className = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

// An HLC is wall milliseconds << 16 | counter; past 2^53 a JSON number is rounded, which moves
// it by far less than a millisecond: fine for showing its time.
const hlcTime = (hlc) => new Date(Math.floor(hlc / 65536)).toISOString();
const short = (hex) => (hex ? hex.slice(0, 12) : "");
const enc = encodeURIComponent;
const entryHref = (id) => "#/entry/" + id;
const keyHref = (bucket, key) => "#/key/" + enc(bucket) + "/" + enc(key);
const entryLink = (id) => h("a", { href: entryHref(id), class: "mono" }, short(id));
const keyLink = (bucket, key) => h("a", { href: keyHref(bucket, key), class: "mono" }, bucket + "/" + key);

/** Fetches JSON; a problem document (RFC 9457) becomes an Error carrying it. */
async function api(path, options) {
  const response = await fetch(path, Object.assign({ headers: { accept: "application/json" } }, options));
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error((body && (body.detail || body.title)) || response.status + " " + response.statusText);
    error.problem = body;
    throw error;
  }
  return body;
}

// Authors are coloured by their place in the writer set (sorted by key): the same log always
// gets the same colours, and the header shows the legend.
const authorColours = new Map();
function colourOf(author) {
  if (!authorColours.has(author)) authorColours.set(author, PALETTE[authorColours.size % PALETTE.length]);
  return authorColours.get(author);
}

// ---------------------------------------------------------------------------------------------
// Lane layout

/**
 * Places rows in lanes, newest first. `lanes[i]` is the id lane i waits for (a parent of a row
 * above), or null. A row takes the leftmost lane waiting for it (a new lane if none: a head);
 * its first parent continues that lane, other parents take a free lane unless some lane already
 * waits for them. Each row records the segments to draw in its upper half (into the dot) and
 * lower half (out of the dot), so drawing a screen needs only the rows on it.
 */
class LaneLayout {
  constructor() {
    this.lanes = [];
    this.colours = [];
    this.edges = 0;
  }

  freeLane() {
    const index = this.lanes.indexOf(null);
    return index >= 0 ? index : this.lanes.length;
  }

  place(entry) {
    const colour = colourOf(entry.author);
    const top = [];
    const through = new Set();
    let column = this.lanes.indexOf(entry.id);
    this.lanes.forEach((waiting, lane) => {
      if (waiting === null) return;
      if (waiting !== entry.id) through.add(lane);
      top.push([lane, waiting === entry.id ? column : lane, this.colours[lane]]);
    });
    if (column < 0) column = this.freeLane();
    this.lanes.forEach((waiting, lane) => { if (waiting === entry.id) this.lanes[lane] = null; });

    const targets = [];
    for (const parent of orderedParents(entry)) {
      let lane = this.lanes.indexOf(parent);
      if (lane < 0) {
        lane = this.lanes[column] === null || this.lanes[column] === undefined ? column : this.freeLane();
        this.lanes[lane] = parent;
        this.colours[lane] = colour;
      }
      targets.push(lane);
    }
    while (this.lanes.length && this.lanes[this.lanes.length - 1] === null) this.lanes.pop();
    this.edges += targets.length;

    const bottom = [];
    this.lanes.forEach((waiting, lane) => {
      if (waiting === null) return;
      if (through.has(lane)) bottom.push([lane, lane, this.colours[lane]]);
    });
    for (const lane of new Set(targets)) bottom.push([column, lane, colour]);
    const width = Math.max(column + 1, this.lanes.length, ...top.map(([from]) => from + 1));
    return { column, top, bottom, width, colour };
  }
}

/** The first parent continues the lane: the author's own previous entry, as `cairn log --graph`. */
function orderedParents(entry) {
  if (!entry.first_parent) return entry.parents;
  return [entry.first_parent, ...entry.parents.filter((p) => p !== entry.first_parent)];
}

// ---------------------------------------------------------------------------------------------
// The graph: windows fetched on scroll, rows drawn where visible

const graph = {
  rows: [],            // { entry, layout }
  byID: new Map(),     // id -> row index
  layout: new LaneLayout(),
  next: undefined,     // cursor of the next window; null once the last window came
  loading: null,       // the window being fetched
  selected: null,
  maxWidth: 1,
  firstRenderMs: null,
};

const scroller = document.getElementById("graph-scroll");
const spacer = document.getElementById("graph-spacer");
const viewport = document.getElementById("graph-viewport");
const canvas = document.getElementById("graph-canvas");
const rowsBox = document.getElementById("graph-rows");
const statusLine = document.getElementById("graph-status");

/** Fetches the next window (once at a time) and lays it out. */
function loadWindow() {
  if (graph.loading || graph.next === null) return graph.loading;
  const query = "?limit=" + WINDOW + (graph.next ? "&before=" + enc(graph.next) : "");
  graph.loading = api("/v1/log" + query).then((page) => {
    for (const entry of page.entries) {
      const layout = graph.layout.place(entry);
      graph.maxWidth = Math.max(graph.maxWidth, layout.width);
      graph.byID.set(entry.id, graph.rows.length);
      graph.rows.push({ entry, layout });
    }
    graph.next = page.next ?? null;  // absent after the oldest entry
    graph.loading = null;
    render();
  }, (error) => {
    graph.loading = null;
    statusLine.textContent = "could not load the log: " + error.message;
  });
  return graph.loading;
}

// How long drawing a screen takes (read by the browser test's measure mode).
const renderStats = { count: 0, totalMs: 0, maxMs: 0 };

/** Draws the rows on screen, and asks for more when the screen nears the last loaded row. */
function render() {
  const started = performance.now();
  const total = graph.rows.length;
  spacer.style.height = (total + (graph.next === null ? 0 : 3)) * ROW + "px";
  const first = Math.max(0, Math.floor(scroller.scrollTop / ROW) - 5);
  const last = Math.min(total, Math.ceil((scroller.scrollTop + scroller.clientHeight) / ROW) + 5);
  viewport.style.top = first * ROW + "px";

  const gutter = (graph.maxWidth + 1) * LANE;
  rowsBox.replaceChildren(...graph.rows.slice(first, last).map((row) => rowElement(row, gutter)));
  drawEdges(first, last, gutter);

  document.body.dataset.loadedRows = total;
  document.body.dataset.edges = graph.layout.edges;
  document.body.dataset.complete = graph.next === null ? "yes" : "no";
  statusLine.textContent = total + " entries loaded" + (graph.next === null ? " (all)" : ", more on scroll");
  if (graph.firstRenderMs === null && total > 0) {
    graph.firstRenderMs = Math.round(performance.now());
    document.body.dataset.firstRenderMs = graph.firstRenderMs;
  }
  const spent = performance.now() - started;
  renderStats.count += 1;
  renderStats.totalMs += spent;
  renderStats.maxMs = Math.max(renderStats.maxMs, spent);
  document.body.dataset.renderMsMax = renderStats.maxMs.toFixed(2);
  document.body.dataset.renderMsMean = (renderStats.totalMs / renderStats.count).toFixed(2);
  if (last + PREFETCH >= total && graph.next !== null) loadWindow();
}

function rowElement(row, gutter) {
  const entry = row.entry;
  const what = entry.bucket !== undefined && entry.bucket !== null ? entry.bucket + "/" + entry.key : entry.op;
  return h("div", {
    class: "row" + (entry.inert ? " inert" : "") + (graph.selected === entry.id ? " selected" : ""),
    "data-id": entry.id,
    title: entry.op,
    onclick: () => { location.hash = entryHref(entry.id); },
  },
    h("span", { style: "width:" + gutter + "px;flex:none" }),
    h("span", { class: "id" }, short(entry.id).slice(0, 8)),
    h("span", { class: "kind " + entry.kind }, entry.kind + (entry.decisions ? " · " + entry.decisions.length : "")),
    h("span", { class: "what" }, what),
    h("span", { class: "time" }, entry.time.replace("T", " ").replace("Z", "")));
}

function drawEdges(first, last, gutter) {
  const ratio = window.devicePixelRatio || 1;
  const height = (last - first) * ROW;
  canvas.width = gutter * ratio;
  canvas.height = Math.max(1, height * ratio);
  canvas.style.width = gutter + "px";
  canvas.style.height = height + "px";
  const context = canvas.getContext("2d");
  context.scale(ratio, ratio);
  context.lineWidth = 1.6;
  const x = (lane) => lane * LANE + LANE / 2 + 2;
  for (let index = first; index < last; index++) {
    const { layout, entry } = graph.rows[index];
    const y = (index - first) * ROW;
    for (const [from, to, colour] of layout.top) segment(context, x(from), y, x(to), y + ROW / 2, colour);
    for (const [from, to, colour] of layout.bottom) segment(context, x(from), y + ROW / 2, x(to), y + ROW, colour);
    dot(context, x(layout.column), y + ROW / 2, layout.colour, entry);
  }
}

function segment(context, x1, y1, x2, y2, colour) {
  context.strokeStyle = colour;
  context.beginPath();
  context.moveTo(x1, y1);
  if (x1 === x2) context.lineTo(x2, y2);
  else context.bezierCurveTo(x1, (y1 + y2) / 2, x2, (y1 + y2) / 2, x2, y2);
  context.stroke();
}

/** Puts are filled dots, merges rings, writer-set entries squares; inert entries are hollow grey. */
function dot(context, x, y, colour, entry) {
  context.fillStyle = entry.inert ? "#ffffff" : colour;
  context.strokeStyle = entry.inert ? "#8c959f" : colour;
  context.lineWidth = entry.kind === "merge" ? 2.5 : 1.5;
  context.beginPath();
  if (["genesis", "add-writer", "revoke-writer"].includes(entry.kind)) context.rect(x - 4, y - 4, 8, 8);
  else context.arc(x, y, entry.kind === "merge" ? 5 : 4, 0, Math.PI * 2);
  if (entry.kind === "merge") { context.fillStyle = "#ffffff"; }
  context.fill();
  context.stroke();
}

let scrollQueued = false;
scroller.addEventListener("scroll", () => {
  if (scrollQueued) return;
  scrollQueued = true;
  requestAnimationFrame(() => { scrollQueued = false; render(); });
});
window.addEventListener("resize", render);

/** Marks an entry's row and scrolls it into view if it is loaded. */
function select(id) {
  graph.selected = id;
  const index = graph.byID.get(id);
  if (index !== undefined) {
    const top = index * ROW;
    if (top < scroller.scrollTop || top > scroller.scrollTop + scroller.clientHeight - ROW) {
      scroller.scrollTop = Math.max(0, top - scroller.clientHeight / 3);
    }
  }
  render();
}

// ---------------------------------------------------------------------------------------------
// Detail views, chosen by the URL fragment

const detail = document.getElementById("detail");
const routes = [
  [/^#\/entry\/([0-9a-fA-F]+)$/, (m) => showEntry(m[1])],
  [/^#\/key\/([^/]*)\/(.*)$/, (m) => showKey(decodeURIComponent(m[1]), decodeURIComponent(m[2]))],
  [/^#\/writers$/, () => showWriters()],
  [/^#\/peers$/, () => showPeers()],
  [/^#\/verify$/, () => showVerify()],
];

async function route() {
  const hash = location.hash;
  const match = routes.map(([pattern, view]) => [hash.match(pattern), view]).find(([m]) => m);
  detail.dataset.view = "loading";
  try {
    const view = match ? await match[1](match[0]) : await showOverview();
    detail.replaceChildren(...view.nodes);
    detail.dataset.view = view.name;
  } catch (error) {
    detail.replaceChildren(problemBox(error));
    detail.dataset.view = "problem";
  }
}
window.addEventListener("hashchange", route);

function problemBox(error) {
  const candidates = error.problem && error.problem.candidates;
  return h("div", { class: "problem" },
    h("strong", {}, (error.problem && error.problem.title) || "Error"), ": ", error.message,
    candidates ? h("ul", {}, candidates.map((c) => h("li", {}, entryLink(c.id), " ", c.kind, " ", c.time))) : null);
}

function fieldTable(rows) {
  return h("table", { class: "fields" },
    rows.filter(Boolean).map(([name, ...value]) => h("tr", {}, h("th", {}, name), h("td", {}, ...value))));
}

const check = (good, yes, no) => h("span", { class: good ? "ok" : "bad" }, good ? "✓ " + yes : "✗ " + no);

async function showOverview() {
  const [status, heads] = await Promise.all([api("/v1/status"), api("/v1/heads")]);
  return {
    name: "overview",
    nodes: [
      h("h2", {}, "Log " + status.name),
      fieldTable([
        ["log id", h("span", { class: "mono" }, status.log)],
        ["entries", status.entries],
        ["heads", ...heads.heads.flatMap((head) => [entryLink(head.id), " "])],
        ["this node", h("span", { class: "mono" }, status.node_key || "(no node key: read-only)")],
        ["orphans", status.orphans],
        ["quarantined", status.quarantined],
      ]),
      h("p", { class: "muted" }, "Click an entry in the graph for its detail; its key links to the key's history."),
    ],
  };
}

async function showEntry(id) {
  const entry = await api("/v1/entries/" + enc(id));
  select(entry.id);
  const v = entry.verification;
  const payload = [];
  if (entry.bucket !== undefined && entry.bucket !== null) payload.push(["key", keyLink(entry.bucket, entry.key)]);
  if (entry.value) payload.push(["value", h("span", { class: "mono" }, entry.value.digest), " · " + entry.value.length + " bytes · " + entry.value.state]);
  if (entry.genesis) {
    payload.push(["name", entry.genesis.name]);
    entry.genesis.writers.forEach((w, i) => payload.push([i === 0 ? "writers" : "", h("span", { class: "mono" }, w.key), " " + w.role]));
  }
  if (entry.grant) payload.push(["grants", h("span", { class: "mono" }, entry.grant.key), " " + entry.grant.role]);
  if (entry.revoke) payload.push(["revokes", h("span", { class: "mono" }, entry.revoke.key), " from " + entry.revoke.from_time]);
  const decisions = (entry.decisions || []).map((d) => h("tr", {},
    h("td", {}, keyLink(d.bucket, d.key)), h("td", {}, entryLink(d.winner)),
    h("td", {}, ...d.losers.flatMap((l) => [entryLink(l), " "]))));
  return {
    name: "entry",
    nodes: [
      h("h2", {}, entry.kind + " ", h("span", { class: "mono", id: "entry-id" }, entry.id)),
      fieldTable([
        ["hlc", entry.time + " (counter " + entry.hlc_counter + ", raw " + entry.hlc + ")"],
        ["author", h("span", { class: "swatch", style: "background:" + colourOf(entry.author) }), " ",
          h("span", { class: "mono" }, entry.author)],
        ["parents", ...(entry.parents.length ? entry.parents.flatMap((p) => [h("a", { href: entryHref(p), class: "mono parent" }, p), h("br")]) : ["(none: the genesis)"])],
        ...payload,
        ["signature", h("span", { class: "mono" }, entry.signature)],
        ["cursor", entry.seq + " (ingested " + entry.ingested + ")"],
      ]),
      entry.decisions ? h("h3", {}, "Merge decisions") : null,
      entry.decisions ? (decisions.length
        ? h("table", { class: "list" }, h("tr", {}, h("th", {}, "key"), h("th", {}, "winner"), h("th", {}, "losers")), decisions)
        : h("p", { class: "muted" }, "None: no key was written on more than one branch.")) : null,
      h("h3", {}, "Verification"),
      fieldTable([
        ["id", check(v.id_matches_body, "BLAKE2b-256 of the body", "does not match the body")],
        ["signature", check(v.signature_valid, "valid Ed25519 signature by the author", "invalid signature")],
        ["parents", check(v.parents_present, "all present", "missing: " + v.missing_parents.map(short).join(", "))],
        ["standing", v.inert ? h("span", { class: "bad" }, "inert: its author was revoked at its HLC (not in the state)") : check(true, "counts in the state", "")],
      ]),
    ],
  };
}

async function showKey(bucket, key) {
  const history = await api("/v1/keys/" + enc(bucket) + "/" + enc(key) + "/history");
  const rows = history.versions.slice().reverse().map((version) => h("tr", { class: version.status === "winner" ? "winner" : "" },
    h("td", {}, entryLink(version.id)),
    h("td", {}, version.kind),
    h("td", {}, h("span", { class: "swatch", style: "background:" + colourOf(version.author) }), " ", short(version.author)),
    h("td", {}, version.time.replace("T", " ").replace("Z", "")),
    h("td", { class: "status" }, version.status + (version.lost_in ? " (merge " : ""), version.lost_in ? entryLink(version.lost_in) : null, version.lost_in ? ")" : "")));
  const merges = history.merges.map((m) => h("tr", {},
    h("td", {}, entryLink(m.merge)), h("td", {}, m.time.replace("T", " ").replace("Z", "")), h("td", {}, entryLink(m.winner)),
    h("td", {}, ...m.losers.flatMap((l) => [entryLink(l), " "]))));
  return {
    name: "key",
    nodes: [
      h("h2", {}, "History of ", h("span", { class: "mono", id: "key-path" }, bucket + "/" + key)),
      h("p", {}, history.winner ? ["Winner: ", entryLink(history.winner)] : "Never written."),
      h("table", { class: "list", id: "versions" },
        h("tr", {}, h("th", {}, "entry"), h("th", {}, "kind"), h("th", {}, "author"), h("th", {}, "time"), h("th", {}, "status")), rows),
      h("h3", {}, "Merges that decided it"),
      merges.length
        ? h("table", { class: "list" }, h("tr", {}, h("th", {}, "merge"), h("th", {}, "time"), h("th", {}, "winner"), h("th", {}, "losers")), merges)
        : h("p", { class: "muted" }, "None: no concurrent writes to this key were merged."),
    ],
  };
}

async function showWriters() {
  const [now, history] = await Promise.all([api("/v1/writers"), api("/v1/writers/history")]);
  const current = now.writers.map((w) => h("tr", {},
    h("td", {}, h("span", { class: "swatch", style: "background:" + colourOf(w.key) }), " ", h("span", { class: "mono" }, w.key)),
    h("td", {}, w.role || "none"), h("td", {}, w.revoked_from === null ? "-" : hlcTime(w.revoked_from))));
  const events = history.events.map((e) => h("tr", { class: e.took_effect ? "" : "muted" },
    h("td", {}, e.time), h("td", {}, entryLink(e.id)), h("td", {}, short(e.author)),
    h("td", {}, e.changes.map((c) => h("div", {}, c.action + " ", h("span", { class: "mono" }, short(c.key)), c.role ? " " + c.role : "", c.from_time ? " from " + c.from_time : ""))),
    h("td", {}, e.took_effect ? check(true, "took effect", "") : h("span", { class: "bad" }, "no effect (inert)"))));
  return {
    name: "writers",
    nodes: [
      h("h2", {}, "Writer set"),
      h("table", { class: "list" }, h("tr", {}, h("th", {}, "key"), h("th", {}, "role"), h("th", {}, "revoked from")), current),
      h("h3", {}, "Over time (in the writer-set rule's order)"),
      h("table", { class: "list", id: "writer-events" },
        h("tr", {}, h("th", {}, "time"), h("th", {}, "entry"), h("th", {}, "by"), h("th", {}, "change"), h("th", {}, "effect")), events),
    ],
  };
}

async function showPeers() {
  const result = await api("/v1/sync/peers");
  const rows = result.peers.map((p) => h("tr", {},
    h("td", {}, p.address), h("td", { class: "mono" }, p.identity ? short(p.identity) : "(not pinned)"),
    h("td", {}, p.state || "never connected"), h("td", {}, p.last_sync || "-"),
    h("td", {}, p.lag_entries === null || p.lag_entries === undefined ? "-" : (p.lag_is_lower_bound ? "≥ " : "") + p.lag_entries),
    h("td", {}, p.last_error || "")));
  return {
    name: "peers",
    nodes: [
      h("h2", {}, "Peers and sync state"),
      rows.length
        ? h("table", { class: "list" }, h("tr", {}, h("th", {}, "address"), h("th", {}, "identity"), h("th", {}, "state"),
          h("th", {}, "last sync"), h("th", {}, "lag (entries)"), h("th", {}, "last error")), rows)
        : h("p", { class: "muted" }, "No peers: this node syncs with nobody."),
    ],
  };
}

async function showVerify() {
  const bar = h("progress", { max: 1, value: 0 });
  const state = h("p", { id: "verify-state" }, "Checks every hash, signature, link and derived table, like git fsck.");
  const problems = h("ul", {});
  const button = h("button", {
    id: "verify-button",
    onclick: async () => {
      button.disabled = true;
      try {
        const job = await api("/v1/verify", { method: "POST" });
        await followVerify(job.href, bar, state, problems);
      } catch (error) {
        state.replaceChildren(problemBox(error));
      }
      button.disabled = false;
    },
  }, "Verify the log");
  return { name: "verify", nodes: [h("h2", {}, "Verify"), button, bar, state, problems] };
}

/** Follows a verify job until it ends, showing its progress. */
async function followVerify(href, bar, state, problems) {
  for (;;) {
    const job = await api(href);
    bar.max = Math.max(1, job.total);
    bar.value = job.checked;
    state.textContent = job.state + ": " + job.checked + " of " + job.total + " checked";
    if (job.state !== "running") {
      state.textContent = job.state === "done"
        ? (job.problems.length ? job.problems.length + " problem(s) in " : "Clean: ") + job.entries_checked + " entries, " + job.values_checked + " values"
        : "failed: " + job.error;
      state.className = job.state === "done" && !job.problems.length ? "ok" : "bad";
      problems.replaceChildren(...job.problems.map((p) => h("li", {}, p.entry ? entryLink(p.entry) : "", " ", p.message)));
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));  // progress refresh, not synchronization
  }
}

// ---------------------------------------------------------------------------------------------
// Start: the writer set first (it fixes the authors' colours), then the first window and the view.

async function start() {
  try {
    const [status, writers] = await Promise.all([api("/v1/status"), api("/v1/writers")]);
    document.getElementById("log-name").textContent = status.name;
    for (const w of writers.writers) colourOf(w.key);
    document.getElementById("authors").replaceChildren(...writers.writers.map((w) =>
      h("span", { title: w.key }, h("span", { class: "swatch", style: "background:" + colourOf(w.key) }), short(w.key).slice(0, 8))));
  } catch (error) {
    statusLine.textContent = "could not load the log: " + error.message;
  }
  await loadWindow();
  await route();
}
start();

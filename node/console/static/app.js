// Meridian operator console. Plain JavaScript, no build step: every call
// is a Connect call (JSON over HTTP POST) of the public API, with the
// viewer's bearer token, to the node that served this page or (through
// CORS, which nodes allow for the deployment's own origins) to a node of
// another region. Pages re-poll every second; a call that does not answer
// within CALL_TIMEOUT_MS shows its node as unreachable.
"use strict";

const CALL_TIMEOUT_MS = 1500;
const POLL_MS = 1000;
// A region last reached longer ago than this counts as unreachable: the
// nodes probe each region every 2 s.
const STALE_REACH_MS = 3500;
const CHART_WINDOW_MS = 5 * 60 * 1000;
const SERIES_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"];

// ---- calls -------------------------------------------------------------

function token() {
  return sessionStorage.getItem("meridian-token") || "";
}

// call invokes service/method on base ("" for this node) and returns the
// decoded response, or throws an Error whose message says what failed.
async function call(base, service, method, body) {
  const headers = { "Content-Type": "application/json", "Connect-Protocol-Version": "1" };
  if (token()) headers.Authorization = "Bearer " + token();
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), CALL_TIMEOUT_MS);
  let resp;
  try {
    resp = await fetch(base + "/meridian.v1." + service + "/" + method, {
      method: "POST", headers, body: JSON.stringify(body || {}), signal: ctl.signal,
    });
  } catch (e) {
    throw new Error(ctl.signal.aborted ? "no answer within " + CALL_TIMEOUT_MS + " ms" : "unreachable (" + e.message + ")");
  } finally {
    clearTimeout(timer);
  }
  const text = await resp.text();
  let msg = {};
  try { msg = text ? JSON.parse(text) : {}; } catch (e) { msg = { message: text }; }
  if (!resp.ok) throw new Error((msg.code || resp.status) + ": " + (msg.message || resp.statusText));
  return msg;
}

// endpointBase turns an API address (host:port) into a URL base with this
// page's scheme.
function endpointBase(addr) {
  if (/^https?:\/\//.test(addr)) return addr.replace(/\/$/, "");
  return location.protocol + "//" + addr;
}

// ---- DOM helpers ---------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function table(headers, rows, attrs) {
  return el("table", attrs || {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))),
    el("tbody", {}, rows));
}

function vectorText(v) {
  const keys = Object.keys(v || {}).sort();
  return keys.length ? keys.map((k) => k + "=" + v[k]).join(",") : "-";
}

function seconds(d) {
  // protojson Durations are strings like "1.5s".
  if (!d) return 0;
  return parseFloat(String(d).replace(/s$/, "")) || 0;
}

function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 1 ? "just now" : s + " s ago";
}

function decodeData(b64) {
  if (!b64) return "";
  try {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (e) {
    return "(" + atob(b64).length + " bytes, binary)";
  }
}

// ---- freshness footer ----------------------------------------------------

const fresh = { who: "", at: 0, error: "" };

function answered(who) {
  fresh.who = who;
  fresh.at = Date.now();
  fresh.error = "";
}

function renderFreshness() {
  const f = document.getElementById("freshness");
  if (!fresh.at) {
    f.textContent = fresh.error ? "no answer yet: " + fresh.error : "waiting for the first answer...";
    return;
  }
  f.textContent = "answered by " + fresh.who + " at " + new Date(fresh.at).toISOString().slice(11, 19) +
    " UTC (" + ago(Date.now() - fresh.at) + ")" + (fresh.error ? "; last call failed: " + fresh.error : "");
}

// ---- pages -----------------------------------------------------------------

// Each page has mount(root) and tick(): tick re-polls and re-renders.
const lagHistory = new Map(); // region -> Map(origin -> [[t, lagSeconds]])

const regionsPage = {
  mount(root) {
    this.root = root;
    this.body = el("div", { id: "regions" });
    root.append(el("h2", { text: "Regions" }), this.body);
  },
  async tick() {
    const lr = await listRegions(this.body);
    if (!lr) return;
    const regions = lr.regions || [];
    const statuses = await Promise.all(regions.map((r) => regionStatus(r)));
    const now = Date.now();
    const who = (lr.table && lr.table.answeredBy) || "this node";
    const rows = regions.map((r, i) => {
      const s = statuses[i];
      // Unreachable: the answering node's probes stopped reaching it
      // (reachable unset, or last reached longer ago than a probe round,
      // judged by this browser's clock), or this browser cannot.
      const reachedAgo = r.lastReached ? now - Date.parse(r.lastReached) : Infinity;
      let why = "";
      if (r.reachable !== true || reachedAgo > STALE_REACH_MS) why = "unreachable from " + who + " (last reached " + (r.lastReached ? ago(reachedAgo) : "never") + ")";
      else if (s.error) why = "unreachable from this browser: " + s.error;
      const up = !why;
      const lease = r.lease || {};
      const leaseText = lease.lease ? (lease.expired ? "expired" : "holds") + " (" + (lease.lease.holder || "?") + "); unreplicated tail " +
        (lease.lease.tailEvents || 0) + " events" : "-";
      return el("tr", { "data-region": r.name, class: up ? "up" : "down" },
        el("td", { text: r.name }),
        el("td", { class: up ? "reachable" : "unreachable", "data-reachability": up ? "reachable" : "unreachable",
          text: up ? "reachable" : why }),
        el("td", { class: "mono", text: s.error ? "-" : (s.status.leader || "-") }),
        el("td", { class: "mono", text: s.error ? "-" : vectorText(s.status.applied) }),
        el("td", { text: leaseText + (!s.error && s.status.leaseFenced ? "; fenced: " + s.status.leaseFenced : "") }),
        el("td", { class: "mono", text: (r.endpoints || []).join(" ") }),
      );
    });
    // Lag per origin into each region, from the region leader's status.
    for (let i = 0; i < regions.length; i++) {
      const s = statuses[i];
      if (s.error || !s.leaderStatus) continue;
      let h = lagHistory.get(regions[i].name);
      if (!h) { h = new Map(); lagHistory.set(regions[i].name, h); }
      for (const lag of s.leaderStatus.replication || []) {
        if (!h.has(lag.origin)) h.set(lag.origin, []);
        const pts = h.get(lag.origin);
        pts.push([now, seconds(lag.lag)]);
        while (pts.length && pts[0][0] < now - CHART_WINDOW_MS) pts.shift();
      }
    }
    const charts = regions.map((r) => lagChart(r.name, lagHistory.get(r.name) || new Map(), now));
    this.body.replaceChildren(
      table(["region", "reachability", "leader", "applied", "home lease", "endpoints"], rows, { id: "regions-table" }),
      el("h2", { text: "Replication lag into each region, per origin (last 5 minutes)" }),
      el("div", { class: "charts" }, charts),
      lr.change ? el("p", { class: "warn", text: "placement change in progress: " + JSON.stringify(lr.change) }) : "",
    );
  },
};

// listRegions asks this node for the regions (ListRegions) and notes who
// answered; on failure it shows the error in body and returns null.
async function listRegions(body) {
  try {
    const lr = await call("", "Placement", "ListRegions", {});
    answered((lr.table && lr.table.answeredBy) || "this node");
    return lr;
  } catch (e) {
    fresh.error = e.message;
    body.replaceChildren(el("p", { class: "error", text: "ListRegions: " + e.message }));
    return null;
  }
}

// regionStatus asks the region's nodes for their status (the first that
// answers), and its leader for the replication lag it reports.
async function regionStatus(r) {
  let lastErr = "no endpoints";
  for (const ep of r.endpoints || []) {
    try {
      const status = await call(endpointBase(ep), "EventStore", "Status", {});
      let leaderStatus = status.isLeader ? status : null;
      if (!leaderStatus && status.leaderAddress) {
        try { leaderStatus = await call(endpointBase(status.leaderAddress), "EventStore", "Status", {}); } catch (e) { /* lag unknown */ }
      }
      return { status, leaderStatus };
    } catch (e) {
      lastErr = e.message;
    }
  }
  return { error: lastErr };
}

// lagChart draws one region's lag series (one polyline per origin) as SVG.
function lagChart(region, series, now) {
  const W = 360, H = 140, P = 28;
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("width", W);
  svg.setAttribute("height", H);
  svg.setAttribute("class", "lag-chart");
  svg.setAttribute("data-region", region);
  let maxLag = 0.1;
  for (const pts of series.values()) for (const [, v] of pts) maxLag = Math.max(maxLag, v);
  const x = (t) => P + (W - 2 * P) * (1 - (now - t) / CHART_WINDOW_MS);
  const y = (v) => H - P - (H - 2 * P) * (v / maxLag);
  const axis = document.createElementNS(svgNS, "path");
  axis.setAttribute("d", `M${P},${P} L${P},${H - P} L${W - P},${H - P}`);
  axis.setAttribute("stroke", "#999");
  axis.setAttribute("fill", "none");
  svg.append(axis);
  const label = document.createElementNS(svgNS, "text");
  label.setAttribute("x", 2);
  label.setAttribute("y", P - 8);
  label.setAttribute("font-size", "10");
  label.textContent = maxLag.toFixed(2) + " s";
  svg.append(label);
  const legend = el("div", { class: "legend" });
  let i = 0;
  for (const [origin, pts] of [...series.entries()].sort()) {
    const color = SERIES_COLORS[i++ % SERIES_COLORS.length];
    const line = document.createElementNS(svgNS, "polyline");
    line.setAttribute("points", pts.map(([t, v]) => x(t).toFixed(1) + "," + y(v).toFixed(1)).join(" "));
    line.setAttribute("stroke", color);
    line.setAttribute("fill", "none");
    line.setAttribute("stroke-width", "1.5");
    line.setAttribute("class", "series");
    line.setAttribute("data-origin", origin);
    svg.append(line);
    const last = pts.length ? pts[pts.length - 1][1] : 0;
    const swatch = el("i");
    swatch.style.background = color;
    legend.append(el("span", {}, swatch, origin + " " + last.toFixed(3) + " s"));
  }
  if (!series.size) legend.append(el("span", { text: "no lag reported yet (the region leader reports it)" }));
  return el("figure", { class: "chart" }, el("figcaption", { text: "into " + region }), svg, legend);
}

const placementPage = {
  mount(root) {
    this.rules = el("div", { id: "rules" });
    this.result = el("div", { id: "lookup-result" });
    const input = el("input", { type: "text", id: "lookup-entity", placeholder: "entity, e.g. eu/order-1" });
    const form = el("form", { class: "inline", id: "lookup-form" }, input, el("button", { type: "submit", text: "Look up home" }));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.entity = input.value.trim();
      this.tick();
    });
    root.append(el("h2", { text: "Rules" }), this.rules, el("h2", { text: "Home of an entity" }), form, this.result);
  },
  async tick() {
    try {
      const rules = await call("", "Placement", "ListRules", {});
      answered((rules.table && rules.table.answeredBy) || "this node");
      const rows = (rules.rules || []).map((r) => el("tr", {},
        el("td", { class: "mono", text: r.prefix }),
        el("td", { text: (r.homeRegion || "every region") + ((r.failover || []).length ? " (failover " + r.failover.join(", ") + ")" : "") }),
        el("td", { text: r.mode || "" }),
        el("td", { text: r.epoch || "" })));
      rows.push(el("tr", {}, el("td", { text: "(default)" }), el("td", { text: rules.defaultRegion || "-" }), el("td"), el("td", { text: rules.defaultEpoch || "" })));
      this.rules.replaceChildren(
        table(["prefix", "home", "mode", "epoch"], rows, { id: "rules-table" }),
        el("p", { text: (rules.pins || 0) + " pins; table index " + ((rules.table && rules.table.index) || 0) +
          (rules.change ? "; change in progress: " + JSON.stringify(rules.change) : "") }));
    } catch (e) {
      fresh.error = e.message;
      this.rules.replaceChildren(el("p", { class: "error", text: "ListRules: " + e.message }));
    }
    if (!this.entity) return;
    try {
      const p = await call("", "Placement", "GetPlacement", { entity: this.entity });
      this.result.replaceChildren(table(["entity", "home", "mode", "epoch", "failover", "source", "home endpoints"], [
        el("tr", {}, el("td", { class: "mono", text: p.entity }), el("td", { text: p.homeRegion }), el("td", { text: p.mode || "" }),
          el("td", { text: p.epoch || "" }), el("td", { text: (p.failover || []).join(", ") }),
          el("td", { text: (p.source || "") + (p.rulePrefix ? " " + p.rulePrefix : "") }),
          el("td", { class: "mono", text: (p.homeEndpoints || []).join(" ") }))]),
      p.change ? el("p", { class: "warn", text: "moving: " + JSON.stringify(p.change) }) : "");
    } catch (e) {
      this.result.replaceChildren(el("p", { class: "error", text: "GetPlacement: " + e.message }));
    }
  },
};

const streamsPage = {
  mount(root) {
    const input = el("input", { type: "text", id: "stream-entity", placeholder: "entity, e.g. eu/order-1" });
    const follow = el("input", { type: "checkbox", id: "stream-follow" });
    const older = el("button", { type: "button", id: "stream-older", text: "Older" });
    const form = el("form", { class: "inline", id: "stream-form" }, input,
      el("button", { type: "submit", text: "Read" }), older, el("label", {}, follow, " follow live"));
    this.out = el("div", { id: "stream-events" });
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.entity = input.value.trim();
      this.before = 0;
      this.loaded = false;
      this.tick();
    });
    older.addEventListener("click", () => {
      if (this.first > 1) { this.before = this.first - 1; this.loaded = false; this.tick(); }
    });
    follow.addEventListener("change", () => { this.follow = follow.checked; if (this.follow) this.before = 0; });
    const q = new URLSearchParams(location.hash.split("?")[1] || "");
    if (q.get("entity")) { input.value = q.get("entity"); this.entity = q.get("entity"); }
    root.append(el("h2", { text: "Streams" }), form, this.out);
  },
  async tick() {
    if (!this.entity || (this.loaded && !this.follow)) return;
    // The newest page (or the page before this.before), newest last.
    const req = { entity: this.entity, direction: "DIRECTION_BACKWARD", maxCount: 20 };
    if (this.before) req.fromVersion = this.before;
    try {
      const r = await call("", "EventStore", "Read", req);
      answered((r.region || "?") + "/" + (r.node || "?"));
      const events = (r.events || []).slice().reverse();
      this.first = events.length ? Number(events[0].version) : 0;
      const rows = events.map((e) => el("tr", { class: "event", "data-version": e.version },
        el("td", { text: e.version }), el("td", { text: e.type }),
        el("td", { class: "mono", text: decodeData(e.data) }),
        el("td", { class: "mono", text: e.origin ? e.origin.region + "/" + e.origin.seq : "-" }),
        el("td", { text: e.epoch || "" }),
        el("td", { class: "mono", text: vectorText(e.deps) }),
        el("td", { class: "mono", text: e.hlc ? new Date(Number(BigInt(e.hlc.wallNanos) / 1000000n)).toISOString() : "-" })));
      let note = (r.headVersion || 0) + " versions; served by " + r.region + "/" + r.node;
      if (r.tombstone) note += "; deleted for good at version " + r.tombstone;
      else if (Number(r.truncateBefore) > 1) note += "; versions below " + r.truncateBefore + " deleted or truncated";
      this.out.replaceChildren(el("p", { id: "stream-note", text: note }),
        table(["version", "type", "data", "dot", "epoch", "deps", "stamped"], rows, { id: "events-table" }));
      this.loaded = true;
    } catch (e) {
      fresh.error = e.message;
      this.out.replaceChildren(el("p", { class: "error", text: "Read " + this.entity + ": " + e.message }));
    }
  },
};

const nodesPage = {
  mount(root) {
    this.body = el("div", { id: "nodes" });
    root.append(el("h2", { text: "Nodes" }), this.body);
  },
  async tick() {
    const lr = await listRegions(this.body);
    if (!lr) return;
    const eps = [];
    for (const r of lr.regions || []) for (const ep of r.endpoints || []) eps.push([r.name, ep]);
    const results = await Promise.all(eps.map(([, ep]) => call(endpointBase(ep), "EventStore", "Status", {}).then((s) => ({ s }), (e) => ({ e }))));
    const rows = eps.map(([region, ep], i) => {
      const { s, e } = results[i];
      if (e) return el("tr", { class: "down" }, el("td", { text: region }), el("td", { class: "mono", text: ep }),
        el("td", { class: "unreachable", text: "unreachable: " + e.message }), el("td"), el("td"), el("td"), el("td"), el("td"));
      return el("tr", { class: "up" }, el("td", { text: region }), el("td", { class: "mono", text: ep }),
        el("td", { text: s.node + " " + (s.raftState || "") }), el("td", { text: s.appliedIndex || 0 }),
        el("td", { text: (s.raftLastIndex || 0) + " / term " + (s.raftTerm || 0) }),
        el("td", { class: "mono", text: vectorText(s.applied) }),
        el("td", { text: (s.reclaimedEvents || 0) + " events, " + (s.reclaimedBytes || 0) + " bytes" }),
        el("td", { class: "mono", text: s.version || "-" }));
    });
    this.body.replaceChildren(table(["region", "endpoint", "node, raft state", "applied index", "raft last index", "applied vector", "reclaimed", "version"], rows, { id: "nodes-table" }));
  },
};

// ---- routing and polling ---------------------------------------------------

const pages = { regions: regionsPage, placement: placementPage, streams: streamsPage, nodes: nodesPage };
let current = null;
let generation = 0;

function route() {
  const name = (location.hash.replace(/^#\/?/, "").split("?")[0]) || "regions";
  const page = pages[name] || regionsPage;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.id === "nav-" + name);
  const root = document.getElementById("page");
  root.replaceChildren();
  fresh.at = 0;
  fresh.error = "";
  current = page;
  page.loaded = false;
  page.mount(root);
  poll(++generation);
}

async function poll(gen) {
  while (gen === generation) {
    const started = Date.now();
    try {
      await current.tick();
    } catch (e) {
      fresh.error = e.message;
    }
    renderFreshness();
    await new Promise((r) => setTimeout(r, Math.max(0, POLL_MS - (Date.now() - started))));
  }
}

function init() {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  if (q.get("token")) {
    sessionStorage.setItem("meridian-token", q.get("token"));
    history.replaceState(null, "", location.pathname + location.hash.replace(/([?&])token=[^&]*&?/, "$1").replace(/[?&]$/, ""));
  }
  const form = document.getElementById("token-form");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = document.getElementById("token").value.trim();
    if (t) sessionStorage.setItem("meridian-token", t);
    else sessionStorage.removeItem("meridian-token");
    document.getElementById("token").value = "";
    route();
  });
  window.addEventListener("hashchange", route);
  setInterval(renderFreshness, 1000);
  route();
}

init();

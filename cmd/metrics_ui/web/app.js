// Metrics UI page: routes on location.pathname, polls the JSON API every
// second and updates tables and uPlot charts in place.
"use strict";

const POLL_MS = 1000;
const KIND_TITLES = { pipelines: "Pipelines", workers: "Workers", computations: "Computations" };
const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const statusEl = document.getElementById("status");

// ---- formatting -----------------------------------------------------------

function fmtNs(ns) {
  if (ns == null) return "–";
  if (ns < 1e3) return ns + " ns";
  if (ns < 1e6) return (ns / 1e3).toPrecision(3) + " µs";
  if (ns < 1e9) return (ns / 1e6).toPrecision(3) + " ms";
  return (ns / 1e9).toPrecision(3) + " s";
}

function fmtRate(r) {
  if (r == null) return "–";
  if (r >= 100) return Math.round(r).toLocaleString("en-US");
  return r.toFixed(1);
}

function fmtTput(t) {
  if (!t) return "–";
  return fmtRate(t.min) + " / " + fmtRate(t.median) + " / " + fmtRate(t.max);
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function enc(s) { return encodeURIComponent(s); }

function setStatus(text, error) {
  statusEl.textContent = text;
  statusEl.className = "status" + (error ? " error" : "");
}

// ---- charts ---------------------------------------------------------------

const COLORS = ["#2b7bb9", "#e07b39", "#3a9a5b", "#b03a6e"];

// lineChart makes a uPlot line chart of one or more series over time.
function lineChart(parent, names, opts) {
  const series = [{}];
  names.forEach((n, i) => series.push({
    label: n, stroke: COLORS[i % COLORS.length], width: 1.5,
    fill: i === 0 && opts.fill ? "rgba(43,123,185,0.12)" : undefined,
    value: opts.value,
  }));
  const small = opts.small;
  const u = new uPlot({
    width: opts.width, height: opts.height,
    legend: { show: !small },
    cursor: { show: !small },
    scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, Math.max(hi, 1)] } },
    axes: small ? [{ show: false }, { show: false }] :
      [{}, { size: 70, values: (u, vals) => vals.map(opts.axis || (v => v)) }],
    series: series,
  }, [[], ...names.map(() => [])], parent);
  return u;
}

// barChart makes the "percent by latency bin" chart.
function barChart(parent, labels) {
  const xs = labels.map((_, i) => i);
  return new uPlot({
    width: 700, height: 260,
    legend: { show: false },
    cursor: { show: false },
    scales: { x: { time: false, range: [-0.6, labels.length - 0.4] }, y: { range: [0, 100] } },
    axes: [
      { splits: () => xs, values: (u, vals) => vals.map(v => labels[v] || ""), size: 40, font: "11px system-ui, sans-serif" },
      { values: (u, vals) => vals.map(v => v + " %") },
    ],
    series: [{}, {
      label: "percent", stroke: "#2b7bb9", fill: "rgba(43,123,185,0.55)",
      paths: uPlot.paths.bars({ size: [0.7, 80] }), points: { show: false },
    }],
  }, [xs, labels.map(() => 0)], parent);
}

function seconds(endsMs) { return endsMs.map(t => t / 1000); }

// ---- stats rows -----------------------------------------------------------

// row keeps one element's table row and sparkline up to date.
class Row {
  constructor(tbody, kind, hrefBase, withChart) {
    this.kind = kind;
    this.tr = el("tr", { class: "element", "data-kind": kind });
    this.name = el("td", { class: "name" });
    this.cells = {};
    this.tr.append(this.name);
    for (const c of ["p50", "p95", "p99", "tput"]) {
      this.cells[c] = el("td", { class: c });
      this.tr.append(this.cells[c]);
    }
    this.hrefBase = hrefBase;
    if (withChart) {
      const td = el("td", { class: "chart" });
      this.tr.append(td);
      const names = kind === "pipelines" ? ["out/s", "in/s"] : ["msgs/s"];
      this.chart = lineChart(td, names, { width: 260, height: 46, small: true, fill: true });
    }
    tbody.append(this.tr);
  }

  update(e, ends, label) {
    this.tr.setAttribute("data-name", e.name);
    this.tr.setAttribute("data-count", String(e.count));
    if (e.sub) this.tr.setAttribute("data-sub", e.sub);
    if (e.ingestion) this.tr.setAttribute("data-ingested", String(e.ingested || 0));
    this.name.replaceChildren(this.hrefBase ?
      el("a", { href: this.hrefBase + enc(e.name), text: label }) : label);
    const lat = e.latency || {};
    this.cells.p50.textContent = fmtNs(lat.p50);
    this.cells.p95.textContent = fmtNs(lat.p95);
    this.cells.p99.textContent = fmtNs(lat.p99);
    if (e.ingestion) {
      this.cells.tput.replaceChildren(fmtTput(e.ingestion), el("span", { class: "sep", text: " -|< " }), fmtTput(e.throughput));
      this.cells.tput.title = "ingested -|< completed, messages/s min / median / max";
    } else {
      this.cells.tput.textContent = fmtTput(e.throughput);
    }
    if (this.chart) {
      const data = [seconds(ends), e.rate];
      if (this.kind === "pipelines") data.push(e.ingest_rate);
      this.chart.setData(data);
    }
  }

  remove() {
    if (this.chart) this.chart.destroy();
    this.tr.remove();
  }
}

function statsTable(kind, withChart) {
  const head = el("tr", {},
    el("th", { class: "name", text: "name" }),
    el("th", { text: "p50" }), el("th", { text: "p95" }), el("th", { text: "p99" }),
    el("th", { text: kind === "pipelines" ? "in -|< out msgs/s (min / median / max)" : "msgs/s (min / median / max)" }));
  if (withChart) head.append(el("th", { text: "last 5 minutes" }));
  const tbody = el("tbody");
  return { table: el("table", { class: "stats", "data-kind": kind }, el("thead", {}, head), tbody), tbody };
}

// syncRows makes rows (a Map name → Row) match elements.
function syncRows(rows, tbody, kind, elements, ends, hrefBase, withChart, keyOf, labelOf) {
  const seen = new Set();
  for (const e of elements) {
    const key = keyOf(e);
    seen.add(key);
    let r = rows.get(key);
    if (!r) { r = new Row(tbody, kind, hrefBase, withChart); rows.set(key, r); }
    r.update(e, ends, labelOf(e));
  }
  for (const [key, r] of rows) {
    if (!seen.has(key)) { r.remove(); rows.delete(key); }
  }
  // keep API order (by name)
  for (const e of elements) tbody.append(rows.get(keyOf(e)).tr);
}

// ---- views ----------------------------------------------------------------

function landing() {
  crumbs.replaceChildren();
  const tbody = el("tbody");
  const empty = el("p", { class: "empty", text: "No application has reported yet. Start workers with --metrics pointing at this UI's listen address." });
  main.replaceChildren(el("h2", { text: "Applications" }),
    el("table", { class: "apps" },
      el("thead", {}, el("tr", {}, el("th", { class: "name", text: "application" }),
        el("th", { text: "connected workers" }), el("th", { text: "pipelines" }),
        el("th", { text: "workers" }), el("th", { text: "computations" }))),
      tbody), empty);
  return async () => {
    const apps = await getJSON("/api/apps");
    empty.hidden = apps.length > 0;
    tbody.replaceChildren(...apps.map(a => el("tr", { class: "app", "data-name": a.name },
      el("td", { class: "name" }, el("a", { href: "/apps/" + enc(a.name), text: a.name })),
      el("td", { text: a.workers.length ? a.workers.join(", ") : "none" }),
      el("td", { text: String(a.pipelines) }), el("td", { text: String(a.workers_seen) }),
      el("td", { text: String(a.computations) }))));
  };
}

function dashboard(app) {
  crumbs.replaceChildren(el("span", { text: "›" }), el("a", { href: "/apps/" + enc(app), text: app }));
  const connected = el("p", { class: "connected" });
  main.replaceChildren(el("h1", { text: app }), connected);
  const sections = {};
  for (const kind of Object.keys(KIND_TITLES)) {
    const t = statsTable(kind, true);
    const empty = el("p", { class: "empty", text: "nothing reported in the last 5 minutes" });
    main.append(el("section", { id: kind }, el("h2", { text: KIND_TITLES[kind] }), t.table, empty));
    sections[kind] = { tbody: t.tbody, table: t.table, empty, rows: new Map() };
  }
  return async () => {
    const d = await getJSON("/api/apps/" + enc(app));
    connected.textContent = "Connected workers: " + (d.connected.length ? d.connected.join(", ") : "none");
    for (const kind of Object.keys(KIND_TITLES)) {
      const s = sections[kind];
      syncRows(s.rows, s.tbody, kind, d[kind], d.ends_ms, "/apps/" + enc(app) + "/" + kind + "/", true,
        e => e.name, e => e.name);
      s.empty.hidden = d[kind].length > 0;
      s.table.hidden = d[kind].length === 0;
    }
  };
}

function detail(app, kind, name) {
  crumbs.replaceChildren(el("span", { text: "›" }), el("a", { href: "/apps/" + enc(app), text: app }),
    el("span", { text: "› " + (KIND_TITLES[kind] || kind) + " ›" }), el("span", { text: name }));
  const summary = el("table", { class: "summary" });
  const binsTable = el("table", { class: "bins" });
  const bars = el("figure", {}, el("figcaption", { text: "Percent by latency bin (last 5 minutes)" }));
  const tput = el("figure", {}, el("figcaption", { text: "Throughput per second (each 2-s period)" }));
  const lat = el("figure", {}, el("figcaption", { text: "Latency p50 and p99 (each 2-s period)" }));
  const by = statsTable(kind, true);
  const byTitle = el("h2");
  main.replaceChildren(el("h1", { text: name }), summary, el("div", { class: "charts" }, bars, tput, lat),
    el("h2", { text: "Latency bins" }), binsTable, byTitle, by.table);
  let barC = null;
  const tputC = lineChart(tput, kind === "pipelines" ? ["completed/s", "ingested/s"] : ["msgs/s"],
    { width: 560, height: 240, fill: true, value: (u, v) => fmtRate(v) });
  const latC = lineChart(lat, ["p50", "p99"], { width: 560, height: 240, axis: fmtNs, value: (u, v) => fmtNs(v) });
  const rows = new Map();
  return async () => {
    const d = await getJSON("/api/apps/" + enc(app) + "/" + enc(kind) + "/" + enc(name));
    const e = d.element, l = e.latency || {};
    const cells = [["count", String(e.count)], ["p50", fmtNs(l.p50)], ["p90", fmtNs(l.p90)],
      ["p95", fmtNs(l.p95)], ["p99", fmtNs(l.p99)], ["p99.9", fmtNs(l.p99_9)], ["p99.99", fmtNs(l.p99_99)],
      ["min", fmtNs(l.min)], ["max", fmtNs(l.max)], ["msgs/s min / median / max", fmtTput(e.throughput)]];
    if (e.ingestion) cells.push(["ingested msgs/s min / median / max", fmtTput(e.ingestion)]);
    summary.setAttribute("data-count", String(e.count));
    summary.replaceChildren(el("tr", {}, ...cells.map(c => el("th", { text: c[0] }))),
      el("tr", {}, ...cells.map(c => el("td", { text: c[1] }))));
    if (!barC) barC = barChart(bars, d.bins.map(b => b.label));
    barC.setData([d.bins.map((_, i) => i), d.bins.map(b => b.percent)]);
    binsTable.replaceChildren(el("tr", {}, ...d.bins.map(b => el("th", { text: b.label }))),
      el("tr", {}, ...d.bins.map(b => el("td", { "data-percent": b.percent.toFixed(2), text: b.percent.toFixed(1) + " %" }))));
    const t = [seconds(d.ends_ms), e.rate];
    if (kind === "pipelines") t.push(e.ingest_rate);
    tputC.setData(t);
    latC.setData([seconds(d.ends_ms), d.p50, d.p99]);
    byTitle.textContent = KIND_TITLES[kind] + " › " + name + " by " + d.by_label;
    syncRows(rows, by.tbody, kind, d.by, d.ends_ms, null, true, x => x.sub, x => x.sub);
  };
}

// ---- polling --------------------------------------------------------------

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(url + ": " + r.status + " " + (await r.text()).trim());
  return r.json();
}

function route() {
  const parts = location.pathname.split("/").filter(p => p !== "").map(decodeURIComponent);
  if (parts[0] === "apps" && parts.length === 2) return dashboard(parts[1]);
  if (parts[0] === "apps" && parts.length === 4) return detail(parts[1], parts[2], parts[3]);
  return landing();
}

async function poll(refresh) {
  try {
    await refresh();
    setStatus("updated " + new Date().toLocaleTimeString("en-GB"));
  } catch (err) {
    setStatus(String(err.message || err), true);
  }
  setTimeout(() => poll(refresh), POLL_MS);
}

poll(route());

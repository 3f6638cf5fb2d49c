// dealledger's dashboard: each page is a view of the daemon's JSON API (GET /v1/reports/...),
// never a second computation. No framework, no build step: the daemon embeds this file.
"use strict";

const page = document.getElementById("page");
const live = document.getElementById("live");
// The one-file report (`dealledger report html`) carries its reports in the page itself: no
// server, no network. Then every view reads them instead of asking the API.
const DATA = (() => {
  const node = document.getElementById("dealledger-data");
  return node ? JSON.parse(node.textContent) : null;
})();
if (DATA) document.body.classList.add("static");

// ---- the API -------------------------------------------------------------------------------

class Unauthorized extends Error {}

async function api(path) {
  const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401) throw new Unauthorized();
  const body = await response.json();
  if (!response.ok) throw new Error(body.reason || response.statusText);
  return body;
}

function query(params) {
  const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
}

// `key` names the report in a one-file report when one page shows two of the same name.
async function report(name, params, key) {
  if (DATA) {
    const found = DATA.reports[key || name];
    if (!found) throw new Error(`this file holds no ${key || name} report`);
    return found;
  }
  return api(`/v1/reports/${name}?${query({ ...params, format: "json" })}`);
}

// ---- the page's state: #name?key=value -------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#/, "") || "pipeline";
  const [name, search] = hash.split("?");
  return { name, params: Object.fromEntries(new URLSearchParams(search || "")) };
}

function go(name, params) {
  const q = query(params);
  location.hash = q ? `${name}?${q}` : name;
}

// ---- building blocks -----------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

const number = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

function cell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return number.format(value);
  return String(value);
}

function table(caption, columns, rows) {
  return el("table", {},
    el("caption", { text: caption }),
    el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { scope: "col", text: c.label })))),
    el("tbody", {}, ...rows.map((row) => el("tr", {}, ...columns.map((c) => {
      const value = c.value(row);
      return el("td", {}, value instanceof Node ? value : cell(value));
    })))));
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

// Horizontal bars: one group per row, one bar per series. A picture of the table below it.
function bars(title, rows, label, series) {
  const width = 640, labelWidth = 130, barHeight = 14, gap = 10;
  const max = Math.max(1e-9, ...rows.flatMap((r) => series.map((s) => s.value(r) || 0)));
  const groupHeight = series.length * barHeight + gap;
  const height = rows.length * groupHeight + 8;
  const chart = svg("svg", { width, height, role: "img", "aria-label": title, viewBox: `0 0 ${width} ${height}` });
  chart.append(svg("title", { text: title }));
  rows.forEach((row, i) => {
    const y = i * groupHeight + 4;
    chart.append(svg("text", { x: 0, y: y + barHeight, text: label(row) }));
    series.forEach((s, j) => {
      const value = s.value(row) || 0;
      const w = ((width - labelWidth - 170) * value) / max;
      chart.append(svg("rect", { class: ["bar", "bar2", "bar3"][j % 3], x: labelWidth, y: y + j * barHeight, width: Math.max(0, w), height: barHeight - 2 }));
      chart.append(svg("text", { x: labelWidth + w + 4, y: y + j * barHeight + barHeight - 3, text: `${s.name} ${cell(value)}` }));
    });
  });
  return chart;
}

// Lines over a sweep's thresholds, one per series, the best threshold marked: a picture of the
// sweep's table.
function lines(title, rows, series, best) {
  const width = 640, height = 260, left = 70, bottom = 30, top = 10;
  const xs = rows.map((r) => r.value);
  const values = rows.flatMap((r) => series.map((s) => s.value(r) || 0));
  const [xMin, xMax] = [Math.min(...xs), Math.max(...xs)];
  const [yMin, yMax] = [Math.min(0, ...values), Math.max(1e-9, ...values)];
  const x = (v) => left + ((width - left - 10) * (v - xMin)) / Math.max(1e-9, xMax - xMin);
  const y = (v) => top + ((height - top - bottom) * (yMax - v)) / Math.max(1e-9, yMax - yMin);
  const chart = svg("svg", { width, height, role: "img", "aria-label": title, viewBox: `0 0 ${width} ${height}` });
  chart.append(svg("title", { text: title }));
  chart.append(svg("line", { x1: left, x2: width - 10, y1: y(0), y2: y(0), class: "axis" }));
  // Colours by class (s0, s1, s2 in app.css): the page's policy allows no inline style.
  series.forEach((s, i) => {
    const points = rows.map((r) => `${x(r.value)},${y(s.value(r) || 0)}`).join(" ");
    chart.append(svg("polyline", { points, class: `line s${i % 3}` }));
    chart.append(svg("text", { x: left + 4 + i * 170, y: height - 6, text: `— ${s.name}`, class: `s${i % 3}` }));
  });
  if (best !== undefined && best !== null) {
    chart.append(svg("line", { x1: x(best), x2: x(best), y1: top, y2: height - bottom, class: "best" }));
    const right = x(best) > width - 90;
    chart.append(svg("text", { x: x(best) + (right ? -4 : 4), y: top + 12, "text-anchor": right ? "end" : "start", text: `best ${cell(best)}` }));
  }
  chart.append(svg("text", { x: 0, y: y(yMax) + 10, text: cell(yMax) }));
  chart.append(svg("text", { x: 0, y: y(yMin), text: cell(yMin) }));
  return chart;
}

// A deal on a time axis: its stage visits as bars, touches as ticks (outbound above the line,
// inbound below), and its lifecycle changes as marks. The tables below it hold the same.
function dealPicture(t) {
  const width = 900, left = 10, right = 10;
  const times = t.visits.flatMap((v) => [v.start, v.end]).concat(t.touches.map((x) => x.at), t.changes.map((c) => c.at))
    .filter(Boolean).map((x) => Date.parse(x));
  // An open deal's axis runs to the view's moment; a closed one's to its last event.
  const until = t.status === "open" ? [Math.min(Date.now(), Date.parse(t.as_of) || Date.now())] : [];
  const [start, end] = [Math.min(...times), Math.max(...times, ...until)];
  const x = (at) => left + ((width - left - right) * (Date.parse(at) - start)) / Math.max(1, end - start);
  const chart = svg("svg", { width, height: 120, role: "img", "aria-label": `Deal ${t.deal} over time`, viewBox: `0 0 ${width} 120` });
  chart.append(svg("title", { text: `Deal ${t.deal}: stage visits, touches and changes over time` }));
  t.visits.forEach((v, i) => {
    const [x0, x1] = [x(v.start), v.end ? x(v.end) : width - right];
    chart.append(svg("rect", { class: i % 2 ? "bar2" : "bar", x: x0, y: 10, width: Math.max(1, x1 - x0), height: 24 },
      svg("title", { text: `${v.stage}: ${v.start} to ${v.end || "now"}` })));
    chart.append(svg("text", { x: x0 + 3, y: 27, text: v.stage }));
  });
  chart.append(svg("line", { x1: left, x2: width - right, y1: 70, y2: 70, class: "axis" }));
  for (const touch of t.touches) {
    const out = touch.direction === "outbound";
    chart.append(svg("line", { x1: x(touch.at), x2: x(touch.at), y1: out ? 52 : 70, y2: out ? 70 : 88, class: out ? "line s0" : "line s1" },
      svg("title", { text: `${touch.direction} ${touch.channel} ${touch.at}` })));
  }
  const marks = new Set(["disqualified", "requalified", "won", "lost", "amount_changed", "close_date_changed", "owner_changed"]);
  for (const c of t.changes.filter((c) => marks.has(c.type))) {
    chart.append(svg("circle", { cx: x(c.at), cy: 104, r: 5, class: c.type === "won" ? "s0 mark" : c.type === "lost" || c.type === "disqualified" ? "s1 mark" : "s2 mark" },
      svg("title", { text: `${c.type} ${c.at} (recorded ${c.recorded_at})` })));
  }
  chart.append(svg("text", { x: left, y: 118, text: new Date(start).toISOString().slice(0, 10) }));
  chart.append(svg("text", { x: width - right, y: 118, "text-anchor": "end", text: new Date(end).toISOString().slice(0, 10) }));
  return chart;
}

// The deal's stored events, and (fetched when opened) where each sits in the hash chain: the
// block that holds it and the chain hashes before and after that block.
function audit(id, events) {
  const proofs = el("div", { id: "proof" });
  const details = el("details", {}, el("summary", { text: `Audit: the ${events.length} stored events, their seqs and their place in the chain` }),
    table("Every event, in the order the ledger stored them", [
      { label: "seq", value: (e) => e.seq },
      { label: "type", value: (e) => e.type },
      { label: "at", value: (e) => e.at },
      { label: "recorded at", value: (e) => e.recorded_at },
      { label: "detail", value: (e) => detail(e) },
    ], events), proofs);
  details.addEventListener("toggle", async () => {
    if (!details.open || proofs.dataset.loaded || DATA) return;
    const proof = await api(`/v1/deals/${id}/proof`);
    proofs.replaceChildren(table("The hash chain: each event's block and the chain hashes around it (audit verify recomputes them)", [
      { label: "seq", value: (p) => p.seq },
      { label: "block", value: (p) => `${p.block_first_seq}..${p.block_last_seq}` },
      { label: "chain before", value: (p) => p.prev_chain.slice(0, 16) },
      { label: "chain after", value: (p) => p.chain },
    ], proof.events));
    proofs.dataset.loaded = "true";
  });
  return details;
}

function controls(fields, params, onSubmit) {
  const form = el("form", { class: "controls" });
  for (const f of fields) {
    const input = f.options
      ? el("select", { name: f.name }, ...f.options.map((o) => el("option", { value: o, text: o })))
      : el("input", { name: f.name, type: "text", placeholder: f.placeholder || "", value: params[f.name] || "" });
    if (f.options) input.value = params[f.name] || f.options[0];
    form.append(el("label", {}, f.label, input));
  }
  form.append(el("button", { type: "submit", text: "Show" }));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    onSubmit(Object.fromEntries(new FormData(form)));
  });
  return form;
}

const stageColumns = [
  { label: "stage", value: (s) => s.stage },
  { label: "completed", value: (s) => s.completed },
  { label: "mean", value: (s) => s.mean_days },
  { label: "median", value: (s) => s.median_days },
  { label: "p90", value: (s) => s.p90_days },
  { label: "max", value: (s) => s.max_days },
  { label: "open", value: (s) => s.open },
];

const when = [
  { name: "as_of", label: "As of", placeholder: "now (or 2025-06-30)" },
  { name: "known_at", label: "Known at", placeholder: "now" },
];

// ---- pages -----------------------------------------------------------------------------------

const pages = {
  async pipeline(params) {
    const r = await report("pipeline", { as_of: params.as_of, known_at: params.known_at, currency: params.currency });
    const all = r.by_currency && r.by_currency.length ? r.by_currency : [r];
    // With several currencies, a selector shows one (or all); amounts are never summed across.
    const currencies = all.map((b) => b.currency);
    const blocks = params.currency ? all.filter((b) => b.currency === params.currency) : all;
    const fields = currencies.length > 1 ? when.concat([{ name: "currency", label: "Currency", options: [""].concat(currencies) }]) : when;
    const out = [el("h2", { text: "Pipeline" }), controls(fields, params, (p) => go("pipeline", p)),
      el("p", { class: "muted", text: `As of ${r.as_of}, known at ${r.known_at}.` })];
    for (const b of blocks) {
      out.push(el("h3", { text: b.currency }));
      out.push(bars(`Open deals by stage (${b.currency})`, b.stages, (s) => s.stage,
        [{ name: "amount", value: (s) => s.amount }, { name: "weighted", value: (s) => s.weighted_amount }]));
      out.push(table(`Open deals by stage (${b.currency})`, [
        { label: "stage", value: (s) => s.stage },
        { label: "deals", value: (s) => s.deals },
        { label: "amount", value: (s) => s.amount },
        { label: "weighted amount", value: (s) => s.weighted_amount },
      ], b.stages.concat(b.totals ? [{ stage: "total", ...b.totals }] : [])));
      if (b.closed) {
        out.push(table("Closed", [{ label: "status", value: (c) => c[0] }, { label: "deals", value: (c) => c[1] }],
          Object.entries(b.closed)));
      }
    }
    return out;
  },

  async "time-in-stage"(params) {
    const byOwner = params.by === "owner";
    const r = await report("time-in-stage", { as_of: params.as_of, known_at: params.known_at, by: byOwner ? "owner" : undefined });
    const owners = (r.by_owner || []).map((o) => table(`${o.owner}: completed visits (days) and deals open`, stageColumns, o.stages));
    return [el("h2", { text: "Time in stage" }),
      controls(when.concat([{ name: "by", label: "Breakdown", options: ["", "owner"] }]), params, (p) => go("time-in-stage", p)),
      bars("Completed visits, days", r.stages, (s) => s.stage, [
        { name: "median", value: (s) => s.median_days },
        { name: "p90", value: (s) => s.p90_days },
        { name: "max", value: (s) => s.max_days },
      ]),
      table("Completed visits (days) and deals open in each stage", stageColumns, r.stages), ...owners];
  },

  async kpis(params) {
    const period = DATA ? DATA.params.kpis : kpiPeriod(params);
    const { from, to, before } = period;
    const [now, prev] = await Promise.all([
      report("kpis", { from, to, forecast: params.forecast }),
      report("kpis", { from: before, to: from }, "kpis-previous"),
    ]);
    const keys = ["won", "lost", "disqualified", "close_rate", "win_rate", "revenue", "avg_deal_size",
      "avg_cycle_days", "opportunities_created", "pipeline_generated", "avg_first_response_hours",
      "first_response_hours_median", "first_response_hours_p90", "sales_velocity", "spend", "cac"]
      .concat(now.forecast_accuracy !== undefined ? ["forecast_accuracy"] : []);
    return [el("h2", { text: "KPIs" }),
      controls([{ name: "preset", label: "Period", options: ["custom", "this month", "last month", "this quarter", "last quarter"] },
        { name: "from", label: "From", placeholder: from }, { name: "to", label: "To", placeholder: to },
        { name: "forecast", label: "Forecast revenue", placeholder: "none" }], params, (p) => go("kpis", preset(p))),
      table(`${from} to ${to}, beside ${before} to ${from}`, [
        { label: "KPI", value: (k) => k },
        { label: "this period", value: (k) => now[k] },
        { label: "previous period", value: (k) => prev[k] },
      ], keys),
      bars("Stage conversion", now.stage_conversion, (s) => s.stage, [{ name: "rate", value: (s) => s.rate }]),
      table("Stage conversion (deals opened in the period)", [
        { label: "stage", value: (s) => s.stage },
        { label: "entered", value: (s) => s.entered },
        { label: "advanced", value: (s) => s.advanced },
        { label: "rate", value: (s) => s.rate },
      ], now.stage_conversion),
      table("Per owner", [
        { label: "owner", value: (o) => o.owner },
        { label: "won", value: (o) => o.won },
        { label: "lost", value: (o) => o.lost },
        { label: "win rate", value: (o) => o.win_rate },
        { label: "revenue", value: (o) => o.revenue },
        { label: "quota", value: (o) => o.quota },
        { label: "attainment", value: (o) => o.quota_attainment },
        { label: "selling time share", value: (o) => o.selling_time_share },
      ], now.by_owner)];
  },

  async flags(params) {
    const r = await report("flags", { as_of: params.as_of, known_at: params.known_at });
    const by = params.sort || "since";
    const rows = r.flags.slice().sort((a, b) => String(a[by]).localeCompare(String(b[by])));
    const sortable = (key) => el("a", { href: `#flags?${query({ ...params, sort: key })}`, text: `sort by ${key}` });
    return [el("h2", { text: "Flags" }), controls(when, params, (p) => go("flags", p)),
      el("p", {}, sortable("rule"), " · ", sortable("owner"), " · ", sortable("since")),
      table(`Open deals that need a decision (${rows.length})`, [
        { label: "deal", value: (f) => (DATA ? f.deal : el("a", { href: `#deal?id=${encodeURIComponent(f.deal)}`, text: f.deal })) },
        { label: "owner", value: (f) => f.owner },
        { label: "rule", value: (f) => f.rule },
        { label: "since", value: (f) => f.since },
        { label: "detail", value: (f) => f.detail },
      ], rows)];
  },

  async deal(params) {
    const id = encodeURIComponent(params.id || "");
    const [events, t] = await Promise.all([
      api(`/v1/deals/${id}`),
      api(`/v1/deals/${id}/timeline?${query({ as_of: params.as_of, known_at: params.known_at })}`),
    ]);
    return [el("h2", { text: `Deal ${params.id}` }),
      el("p", {}, `${t.status}, ${t.stage}, ${t.owner}, ${cell(t.amount)} ${t.currency}; as of ${t.as_of}, known at ${t.known_at}.`),
      dealPicture(t),
      table("Stage visits", [
        { label: "stage", value: (v) => v.stage }, { label: "start", value: (v) => v.start }, { label: "end", value: (v) => v.end || "(still there)" },
      ], t.visits),
      table("Changes (at: business time; recorded at: when the ledger learnt it)", [
        { label: "type", value: (c) => c.type }, { label: "at", value: (c) => c.at }, { label: "recorded at", value: (c) => c.recorded_at },
        { label: "detail", value: (c) => Object.entries(c.detail).map(([k, v]) => `${k}: ${cell(v)}`).join(", ") },
      ], t.changes),
      audit(id, events)];
  },

  async whatif(params) {
    const rule = params.rule || "gone_dark";
    const from = params.from || "5", to = params.to || "60", step = params.step || "5";
    const sweep = await api(`/v1/whatif?${query({ sweep: `${rule}=${from}..${to}:${step}`, as_of: params.as_of, format: "json" })}`);
    const rows = sweep.rows;
    const figures = el("div", { id: "threshold" });
    const slider = el("input", { type: "range", min: 0, max: Math.max(0, rows.length - 1), step: 1, value: rows.findIndex((r) => sweep.best && r.value === sweep.best.value), "aria-label": "threshold" });
    const show = async () => {
      const row = rows[Number(slider.value)] || rows[0];
      if (!row) return;
      // The false cuts: won deals this threshold would have thrown away.
      const run = await api(`/v1/whatif?${query({ rule: `${rule}=${row.value}`, as_of: params.as_of, deals: "true", format: "json" })}`);
      const wonCut = (run.deals || []).filter((d) => d.outcome === "won");
      figures.replaceChildren(
        table(`Threshold ${cell(row.value)}`, [{ label: "figure", value: (f) => f[0] }, { label: "value", value: (f) => f[1] }],
          [["cut", row.cut], ["cut won", row.cut_won], ["cut bad", row.cut_bad], ["revenue at risk", row.revenue_at_risk],
            ["effort value saved", row.effort_value_saved], ["net value", row.net_value]]),
        table(`False cuts: won deals the rule would have thrown away (${wonCut.length})`, [
          { label: "deal", value: (d) => d.deal }, { label: "owner", value: (d) => d.owner },
          { label: "cut at", value: (d) => d.cut_at }, { label: "won at", value: (d) => d.outcome_at },
        ], wonCut));
      figures.dataset.value = String(row.value);
    };
    slider.addEventListener("input", show);
    if (Number(slider.value) < 0) slider.value = 0;
    await show();
    const rules = ["gone_dark", "no_activity", "stalled", "unanswered_touches"];
    return [el("h2", { text: "What-if" }),
      controls([{ name: "rule", label: "Rule", options: rules }, { name: "from", label: "From", placeholder: from },
        { name: "to", label: "To", placeholder: to }, { name: "step", label: "Step", placeholder: step },
        { name: "as_of", label: "As of", placeholder: "now" }], params, (p) => go("whatif", p)),
      lines(`Sweep of ${rule}: net value, revenue at risk and effort value saved by threshold${sweep.best ? `; best ${cell(sweep.best.value)}` : ""}`,
        rows, [{ name: "net value", value: (r) => r.net_value }, { name: "revenue at risk", value: (r) => r.revenue_at_risk },
          { name: "effort value saved", value: (r) => r.effort_value_saved }], sweep.best && sweep.best.value),
      table(`Sweep of ${rule}`, [
        { label: "threshold", value: (r) => r.value }, { label: "cut", value: (r) => r.cut }, { label: "cut won", value: (r) => r.cut_won },
        { label: "revenue at risk", value: (r) => r.revenue_at_risk }, { label: "effort value saved", value: (r) => r.effort_value_saved },
        { label: "net value", value: (r) => r.net_value },
      ], rows),
      el("label", {}, "Threshold", slider), figures,
      el("h3", { text: "Compare two policies" }),
      controls([{ name: "a", label: "Policy A", placeholder: "gone_dark=14" }, { name: "b", label: "Policy B", placeholder: "gone_dark=30,stalled=2" }],
        params, (p) => go("whatif", { ...params, ...p })),
      ...(params.a && params.b ? [await compare(params.a, params.b, params.as_of)] : [])];
  },

  async cost(params) {
    const { from, to } = DATA ? DATA.params.cost : {
      to: params.to || new Date().toISOString().slice(0, 10),
      from: params.from || new Date(Date.parse(params.to || Date.now()) - 365 * 86400e3).toISOString().slice(0, 10),
    };
    const r = await report("bad-deal-cost", { from, to });
    return [el("h2", { text: "Cost of bad deals" }),
      controls([{ name: "from", label: "From", placeholder: from }, { name: "to", label: "To", placeholder: to }], params, (p) => go("cost", p)),
      bars("Selling time spent on lost and disqualified deals", r.by_owner, (o) => o.owner, [{ name: "time cost", value: (o) => o.time_cost }]),
      table(`Lost or disqualified from ${from} to ${to}`, [
        { label: "owner", value: (o) => o.owner },
        { label: "bad deals", value: (o) => o.bad_deals },
        { label: "effort hours", value: (o) => o.effort_hours },
        { label: "time cost", value: (o) => o.time_cost },
        { label: "commission cost", value: (o) => o.commission_cost },
      ], r.by_owner.concat([{ owner: "total", ...r.totals }]))];
  },
};

// A preset period (this or last month or quarter, UTC) as from and to; "custom" keeps them.
function preset(p) {
  const today = new Date();
  const [y, m] = [today.getUTCFullYear(), today.getUTCMonth()];
  const day = (year, month) => new Date(Date.UTC(year, month, 1)).toISOString().slice(0, 10);
  const q = m - (m % 3);
  const spans = {
    "this month": [day(y, m), day(y, m + 1)],
    "last month": [day(y, m - 1), day(y, m)],
    "this quarter": [day(y, q), day(y, q + 3)],
    "last quarter": [day(y, q - 3), day(y, q)],
  };
  const span = spans[p.preset];
  const out = { ...p, preset: undefined };
  if (span) [out.from, out.to] = span;
  return out;
}

// The KPI period and the one of the same length before it (dates, UTC): 90 days to today by
// default. `dealledger report html` computes the same for its file.
function kpiPeriod(params) {
  const to = params.to || new Date().toISOString().slice(0, 10);
  const from = params.from || new Date(Date.parse(to) - 90 * 86400e3).toISOString().slice(0, 10);
  const length = Date.parse(to) - Date.parse(from);
  const before = new Date(Date.parse(from) - length).toISOString().slice(0, 10);
  return { from, to, before };
}

async function compare(a, b, asOf) {
  const r = await api(`/v1/whatif?${query({ as_of: asOf, format: "json" })}&policy=${encodeURIComponent(a)}&policy=${encodeURIComponent(b)}`);
  const keys = ["cut", "cut_won", "cut_bad", "revenue_at_risk", "effort_value_saved", "net_value", "precision", "recall"];
  return table(`Policy A (${a}) against policy B (${b})`, [
    { label: "figure", value: (k) => k },
    { label: "A", value: (k) => r.policies[0][k] },
    { label: "B", value: (k) => r.policies[1][k] },
  ], keys);
}

function detail(event) {
  const skip = new Set(["seq", "type", "at", "recorded_at", "deal", "appended_at", "version"]);
  return Object.entries(event).filter(([k]) => !skip.has(k)).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
}

// ---- the token, once --------------------------------------------------------------------------

function login() {
  const input = el("input", { type: "password", name: "token", autocomplete: "current-password", required: "" });
  const message = el("p", { class: "error", role: "alert" });
  const form = el("form", { class: "controls" }, el("label", {}, "This daemon's token", input), el("button", { type: "submit", text: "Sign in" }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const response = await fetch("/v1/session", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: input.value }),
    });
    if (response.ok) start();
    else message.textContent = "That is not the token.";
  });
  return [el("h2", { text: "Sign in" }), form, message];
}

// ---- rendering and live updates ---------------------------------------------------------------

let rendering = 0;

async function render() {
  const { name, params } = route();
  const ticket = ++rendering;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.getAttribute("href") === `#${name}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  let nodes;
  try {
    const build = pages[name] || pages.pipeline;
    nodes = await build(params);
  } catch (e) {
    nodes = e instanceof Unauthorized ? login() : [el("p", { class: "error", role: "alert", text: String(e.message || e) })];
  }
  if (ticket !== rendering) return;
  page.replaceChildren(...nodes);
  page.dataset.ready = name;
}

let pending = null;
let arrived = 0;

function listen() {
  const stream = new EventSource("/v1/stream", { withCredentials: true });
  const changed = () => {
    arrived += 1;
    live.textContent = `live: ${arrived} new event${arrived === 1 ? "" : "s"}`;
    clearTimeout(pending);
    pending = setTimeout(render, 300);
  };
  stream.onmessage = changed;
  stream.addEventListener("event", changed);
  stream.onerror = () => { live.textContent = "live: reconnecting"; };
}

// Asks first whether a token is wanted and given, so that a signed-out page shows its sign-in
// rather than failed requests; then renders, and follows the stream.
async function start() {
  if (DATA) {
    live.textContent = `a report of ${DATA.generated}: as of ${DATA.params.as_of}, known at ${DATA.params.known_at}`;
    window.addEventListener("hashchange", render);
    await render();
    return;
  }
  const session = await (await fetch("/v1/session", { credentials: "same-origin" })).json();
  if (session.token_required && !session.signed_in) {
    const { name } = route();
    page.replaceChildren(...login());
    page.dataset.ready = name;
    return;
  }
  window.addEventListener("hashchange", render);
  await render();
  listen();
}

start();

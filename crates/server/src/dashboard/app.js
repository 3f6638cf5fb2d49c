// dealledger's dashboard: each page is a view of the daemon's JSON API (GET /v1/reports/...),
// never a second computation, and its pictures are the daemon's charts (GET /v1/charts/...),
// drawn by the one chart module every chart comes from. No framework, no build step: the
// daemon embeds this file.
"use strict";

const page = document.getElementById("page");
const live = document.getElementById("live");
const sync = document.getElementById("sync");
// The one-file report (`dealledger report html`) carries its reports and charts in the page
// itself: no server, no network. Then every view reads them instead of asking the API.
const DATA = (() => {
  const node = document.getElementById("dealledger-data");
  return node ? JSON.parse(node.textContent) : null;
})();
if (DATA) document.body.classList.add("static");

// "Today" is the daemon's (its clock may be set, `--now`), else the report's, never the
// browser's: the default periods are the ones the reports would take.
let TODAY = DATA ? DATA.generated.slice(0, 10) : new Date().toISOString().slice(0, 10);

// ---- the API -------------------------------------------------------------------------------

class Unauthorized extends Error {}

async function fetched(path, accept) {
  const response = await fetch(path, { credentials: "same-origin", headers: { Accept: accept } });
  if (response.status === 401) throw new Unauthorized();
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.reason || response.statusText);
  }
  return response;
}

async function api(path) {
  return (await fetched(path, "application/json")).json();
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

// A chart of the daemon's (or of the file's, under `key`), as an element of this page. Its
// text comes from our own daemon, which escapes every label it writes.
async function chart(path, params, key) {
  let text;
  if (DATA) {
    text = DATA.charts && DATA.charts[key];
    if (!text) return null;
  } else {
    text = await (await fetched(`/v1/charts/${path}?${query(params)}`, "image/svg+xml")).text();
  }
  const svg = new DOMParser().parseFromString(text, "image/svg+xml").documentElement;
  return svg.nodeName === "svg" ? document.importNode(svg, true) : null;
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
// What an empty figure means, said once under every table that has one.
const NONE = "—";
const NONE_TITLE = "no figure: nothing to divide by, or no data under it (see the notes)";

function cell(value) {
  if (value === null || value === undefined) return NONE;
  if (typeof value === "number") return number.format(value);
  return String(value);
}

const money = (currency) => (value) => (value === null || value === undefined ? null : `${number.format(value)} ${currency}`);
const percent = (value) => (value === null || value === undefined ? null : `${(value * 100).toFixed(1)} %`);

function table(caption, columns, rows) {
  const body = rows.map((row) => el("tr", {}, ...columns.map((c) => {
    const value = c.value(row);
    if (value instanceof Node) return el("td", {}, value);
    const empty = value === null || value === undefined;
    return el("td", empty ? { title: NONE_TITLE } : {}, cell(value));
  })));
  return el("table", {},
    el("caption", { text: caption }),
    el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { scope: "col", text: c.label })))),
    el("tbody", {}, ...body));
}

// What a report says of its own figures (`notes`), and the moment or period it offers where
// its own holds no events (`offer`): a link that asks for it (the one-file report, which
// cannot ask, says it).
function basis(r, page, params) {
  const out = (r.notes || []).map((note) => el("p", { class: "note", text: note }));
  const offer = r.offer;
  if (offer) {
    const wanted = offer.as_of ? { as_of: offer.as_of } : { from: offer.from.slice(0, 10), to: offer.to.slice(0, 10) };
    const words = offer.as_of ? `as of ${offer.as_of}, the ledger's last event` : `from ${wanted.from} to ${wanted.to}, the period that ends with the ledger's last event`;
    out.push(DATA
      ? el("p", { class: "note offer", text: `Asked again with ${words}, this page would show what happened.` })
      : el("p", { class: "note offer" }, el("a", { href: `#${page}?${query({ ...params, ...wanted })}`, class: "offer-link", text: `Show ${words}` })));
  }
  return out;
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
    try {
      const proof = await api(`/v1/deals/${id}/proof`);
      proofs.replaceChildren(table("The hash chain: each event's block and the chain hashes around it (audit verify recomputes them)", [
        { label: "seq", value: (p) => p.seq },
        { label: "block", value: (p) => `${p.block_first_seq}..${p.block_last_seq}` },
        { label: "chain before", value: (p) => p.prev_chain.slice(0, 16) },
        { label: "chain after", value: (p) => p.chain },
      ], proof.events));
      proofs.dataset.loaded = "true";
    } catch (e) {
      proofs.replaceChildren(el("p", { class: "error", role: "alert", text: String(e.message || e) }));
    }
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
  { label: "mean (days)", value: (s) => s.mean_days },
  { label: "median (days)", value: (s) => s.median_days },
  { label: "p90 (days)", value: (s) => s.p90_days },
  { label: "max (days)", value: (s) => s.max_days },
  { label: "deals open", value: (s) => s.open },
];

const when = [
  { name: "as_of", label: "As of", placeholder: "now (or 2025-06-30)" },
  { name: "known_at", label: "Known at", placeholder: "now" },
];

// A date `days` before `date` (YYYY-MM-DD), UTC.
function daysBefore(date, days) {
  return new Date(Date.parse(`${date}T00:00:00Z`) - days * 86400e3).toISOString().slice(0, 10);
}

// The KPI rows: a label for people, the key, and how its value reads.
const KPIS = [
  ["Won (deals)", "won"],
  ["Lost (deals)", "lost"],
  ["Disqualified (deals)", "disqualified"],
  ["Close rate (won / closed)", "close_rate", "percent"],
  ["Win rate (won / won + lost)", "win_rate", "percent"],
  ["Revenue", "revenue", "money"],
  ["Average deal size", "avg_deal_size", "money"],
  ["Average cycle (days)", "avg_cycle_days"],
  ["Opportunities created", "opportunities_created"],
  ["Pipeline generated", "pipeline_generated", "money"],
  ["Average first response (hours)", "avg_first_response_hours"],
  ["Median first response (hours)", "first_response_hours_median"],
  ["p90 first response (hours)", "first_response_hours_p90"],
  ["Sales velocity (a day)", "sales_velocity", "money"],
  ["Spend", "spend", "money"],
  ["CAC (spend / won)", "cac", "money"],
  ["Forecast error (%)", "forecast_accuracy"],
];

function kpiValue(block, key, kind) {
  const value = block ? block[key] : null;
  if (kind === "percent") return percent(value);
  if (kind === "money") return money(block ? block.currency : "")(value);
  return value;
}

// The blocks of a report by currency: each currency's figures (one when there is one).
const blocksOf = (r) => (r.by_currency && r.by_currency.length ? r.by_currency : [r]);
// A block's currency as a chart's `currency`: only one the deals have (a report refuses any
// other); with none, the report's own leading block.
const asked = (currencies, currency) => (currencies.includes(currency) ? currency : undefined);

// ---- pages -----------------------------------------------------------------------------------

const pages = {
  async pipeline(params) {
    const r = await report("pipeline", { as_of: params.as_of, known_at: params.known_at });
    // With several currencies, a selector shows one (or all); amounts are never summed across.
    const currencies = r.currencies || [r.currency];
    const blocks = blocksOf(r).filter((b) => !params.currency || b.currency === params.currency);
    const fields = currencies.length > 1 ? when.concat([{ name: "currency", label: "Currency", options: [""].concat(currencies) }]) : when;
    const out = [el("h2", { text: "Pipeline" }), controls(fields, params, (p) => go("pipeline", p)),
      el("p", { class: "muted", text: `As of ${r.as_of}, known at ${r.known_at}.` }), ...basis(r, "pipeline", params)];
    for (const b of blocks) {
      out.push(el("h3", { text: b.currency }));
      out.push(await chart("pipeline", { as_of: r.as_of, known_at: r.known_at, currency: asked(currencies, b.currency) }, `pipeline:${b.currency}`));
      out.push(table(`Open deals by stage (${b.currency})`, [
        { label: "stage", value: (s) => s.stage },
        { label: "deals", value: (s) => s.deals },
        { label: "amount", value: (s) => money(b.currency)(s.amount) },
        { label: "weighted amount", value: (s) => money(b.currency)(s.weighted_amount) },
      ], b.stages.concat([{ stage: "total", ...b.totals }])));
      out.push(table(`Closed (${b.currency})`, [{ label: "status", value: (c) => c[0] }, { label: "deals", value: (c) => c[1] }],
        Object.entries(b.closed)));
    }
    return out;
  },

  async "time-in-stage"(params) {
    const byOwner = params.by === "owner";
    const r = await report("time-in-stage", { as_of: params.as_of, known_at: params.known_at, by: byOwner ? "owner" : undefined });
    const owners = (r.by_owner || []).map((o) => table(`${o.owner}: completed visits (days) and deals open`, stageColumns, o.stages));
    return [el("h2", { text: "Time in stage" }),
      controls(when.concat([{ name: "by", label: "Breakdown", options: ["", "owner"] }]), params, (p) => go("time-in-stage", p)),
      el("p", { class: "muted", text: `As of ${r.as_of}.` }), ...basis(r, "time-in-stage", params),
      await chart("time-in-stage", { as_of: r.as_of, known_at: params.known_at }, "time-in-stage"),
      table("Completed visits (days) and deals open in each stage", stageColumns, r.stages), ...owners];
  },

  async kpis(params) {
    const period = DATA ? DATA.params.kpis : kpiPeriod(params);
    const { from, to, before } = period;
    const [now, prev] = await Promise.all([
      report("kpis", { from, to, forecast: params.forecast }),
      report("kpis", { from: before, to: from }, "kpis-previous"),
    ]);
    const previous = (currency) => blocksOf(prev).find((b) => b.currency === currency) || null;
    const out = [el("h2", { text: "KPIs" }),
      controls([{ name: "preset", label: "Period", options: ["custom", "this month", "last month", "this quarter", "last quarter"] },
        { name: "from", label: "From", placeholder: from }, { name: "to", label: "To", placeholder: to },
        { name: "forecast", label: "Forecast revenue", placeholder: "none" }], params, (p) => go("kpis", preset(p))),
      ...basis(now, "kpis", params)];
    for (const b of blocksOf(now)) {
      const rows = KPIS.filter(([, key]) => key !== "forecast_accuracy" || b.forecast_accuracy !== undefined);
      out.push(el("h3", { text: b.currency }));
      out.push(table(`KPIs in ${b.currency}: ${from} to ${to}, beside ${before} to ${from}`, [
        { label: "KPI", value: ([label]) => label },
        { label: "this period", value: ([, key, kind]) => kpiValue(b, key, kind) },
        { label: "previous period", value: ([, key, kind]) => kpiValue(previous(b.currency), key, kind) },
      ], rows));
      out.push(await chart("kpis", { from, to, currency: asked(now.currencies || [], b.currency) }, `kpis:${b.currency}`));
      out.push(table(`Stage conversion of the deals opened in the period (${b.currency})`, [
        { label: "stage", value: (s) => s.stage },
        { label: "entered", value: (s) => s.entered },
        { label: "advanced", value: (s) => s.advanced },
        { label: "rate", value: (s) => percent(s.rate) },
      ], b.stage_conversion));
    }
    // Owners' revenue and quota are in [costs] currency, whichever block leads.
    const owners = now.by_owner_currency;
    out.push(table(`Per owner (revenue and quota in ${owners})`, [
      { label: "owner", value: (o) => o.owner },
      { label: "won", value: (o) => o.won },
      { label: "lost", value: (o) => o.lost },
      { label: "win rate", value: (o) => percent(o.win_rate) },
      { label: "revenue", value: (o) => money(owners)(o.revenue) },
      { label: "quota (period)", value: (o) => money(owners)(o.quota) },
      { label: "attainment", value: (o) => percent(o.quota_attainment) },
      { label: "selling time", value: (o) => percent(o.selling_time_share) },
    ], now.by_owner));
    return out;
  },

  async flags(params) {
    const r = await report("flags", { as_of: params.as_of, known_at: params.known_at });
    const by = params.sort || "since";
    const rows = r.flags.slice().sort((a, b) => String(a[by]).localeCompare(String(b[by])));
    const sortable = (key) => el("a", { href: `#flags?${query({ ...params, sort: key })}`, text: `sort by ${key}` });
    return [el("h2", { text: "Flags" }), controls(when, params, (p) => go("flags", p)),
      el("p", { class: "muted", text: `As of ${r.as_of}.` }), ...basis(r, "flags", params),
      el("p", {}, sortable("rule"), " · ", sortable("owner"), " · ", sortable("since")),
      table(`Open deals that need a decision: ${r.deals_flagged} (${rows.length} flag${rows.length === 1 ? "" : "s"})`, [
        { label: "deal", value: (f) => (DATA || !f.deal ? f.deal : el("a", { href: `#deal?id=${encodeURIComponent(f.deal)}`, text: f.deal })) },
        { label: "owner", value: (f) => f.owner },
        { label: "rule", value: (f) => f.rule },
        { label: "since", value: (f) => f.since },
        { label: "detail", value: (f) => f.detail },
      ], rows)];
  },

  async deal(params) {
    const id = encodeURIComponent(params.id || "");
    const view = { as_of: params.as_of, known_at: params.known_at };
    const [events, t, picture] = await Promise.all([
      api(`/v1/deals/${id}`),
      api(`/v1/deals/${id}/timeline?${query(view)}`),
      chart(`deal/${id}`, view),
    ]);
    return [el("h2", { text: `Deal ${params.id}` }),
      el("p", {}, `${t.status}, ${t.stage}, ${t.owner}, ${cell(t.amount)} ${t.currency}; as of ${t.as_of}, known at ${t.known_at}.`),
      picture,
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
    const asked = { sweep: `${rule}=${from}..${to}:${step}`, as_of: params.as_of };
    const [sweep, picture] = await Promise.all([api(`/v1/whatif?${query({ ...asked, format: "json" })}`), chart("whatif", asked)]);
    const rows = sweep.rows;
    // Revenue is in the deals' currency; selling time is priced in [costs] currency.
    const currency = sweep.scope.currency, pricedIn = sweep.scope.priced_in;
    const figures = el("div", { id: "threshold" });
    const start = sweep.best ? rows.findIndex((r) => r.value === sweep.best.value) : 0;
    const slider = el("input", { type: "range", min: 0, max: Math.max(0, rows.length - 1), step: 1, value: Math.max(0, start), "aria-label": "threshold" });
    const show = async () => {
      const row = rows[Number(slider.value)] || rows[0];
      if (!row) return;
      try {
        // The false cuts: won deals this threshold would have thrown away.
        const run = await api(`/v1/whatif?${query({ rule: `${rule}=${row.value}`, as_of: params.as_of, deals: "true", format: "json" })}`);
        const wonCut = (run.deals || []).filter((d) => d.outcome === "won");
        figures.replaceChildren(
          table(`Threshold ${cell(row.value)}`, [{ label: "figure", value: (f) => f[0] }, { label: "value", value: (f) => f[1] }],
            [["cut", row.cut], ["cut won", row.cut_won], ["cut bad", row.cut_bad],
              ["revenue at risk", money(currency)(row.revenue_at_risk)],
              ["effort value saved", money(pricedIn)(row.effort_value_saved)],
              ["net value", money(pricedIn)(row.net_value)]]),
          table(`False cuts: won deals the rule would have thrown away (${wonCut.length})`, [
            { label: "deal", value: (d) => d.deal }, { label: "owner", value: (d) => d.owner },
            { label: "cut at", value: (d) => d.cut_at }, { label: "won at", value: (d) => d.outcome_at },
          ], wonCut));
        figures.dataset.value = String(row.value);
      } catch (e) {
        figures.replaceChildren(el("p", { class: "error", role: "alert", text: String(e.message || e) }));
      }
    };
    slider.addEventListener("input", show);
    await show();
    const rules = ["gone_dark", "no_activity", "stalled", "unanswered_touches", "past_close_date"];
    return [el("h2", { text: "What-if" }),
      controls([{ name: "rule", label: "Rule", options: rules }, { name: "from", label: "From", placeholder: from },
        { name: "to", label: "To", placeholder: to }, { name: "step", label: "Step", placeholder: step },
        { name: "as_of", label: "As of", placeholder: "now" }], params, (p) => go("whatif", p)),
      el("p", { class: "muted", text: `${sweep.scope.deals} deals in ${currency}, history to ${sweep.as_of}; ${sweep.best ? `best ${cell(sweep.best.value)}` : "no best named (see the notes)"}.` }),
      ...basis(sweep, "whatif", params),
      picture,
      table(`Sweep of ${rule}`, [
        { label: "threshold", value: (r) => r.value }, { label: "cut", value: (r) => r.cut }, { label: "cut won", value: (r) => r.cut_won },
        { label: "revenue at risk", value: (r) => money(currency)(r.revenue_at_risk) },
        { label: "effort value saved", value: (r) => money(pricedIn)(r.effort_value_saved) },
        { label: "net value", value: (r) => money(pricedIn)(r.net_value) },
      ], rows),
      el("label", {}, "Threshold", slider), figures,
      el("h3", { text: "Compare two policies" }),
      controls([{ name: "a", label: "Policy A", placeholder: "gone_dark=14" }, { name: "b", label: "Policy B", placeholder: "gone_dark=30,stalled=2" }],
        params, (p) => go("whatif", { ...params, ...p })),
      ...(params.a && params.b ? [await compare(params.a, params.b, params.as_of)] : [])];
  },

  async cost(params) {
    // The year up to today (the daemon's), in whole days, unless the page asks for another.
    const to = params.to || TODAY;
    const period = DATA ? DATA.params.cost : { from: params.from || daysBefore(to, 365), to };
    const r = await report("bad-deal-cost", period);
    const priced = money(r.currency);
    return [el("h2", { text: "Cost of bad deals" }),
      controls([{ name: "from", label: "From", placeholder: period.from }, { name: "to", label: "To", placeholder: period.to }], params, (p) => go("cost", p)),
      ...basis(r, "cost", params),
      await chart("bad-deal-cost", period, "bad-deal-cost"),
      table(`Lost or disqualified from ${period.from} to ${period.to}`, [
        { label: "owner", value: (o) => o.owner },
        { label: "bad deals", value: (o) => o.bad_deals },
        { label: "effort (hours)", value: (o) => o.effort_hours },
        { label: "time cost", value: (o) => priced(o.time_cost) },
        { label: "commission cost", value: (o) => priced(o.commission_cost) },
      ], r.by_owner.concat([{ owner: "total", ...r.totals }]))];
  },
};

// A preset period (this or last month or quarter, UTC, of the daemon's today); "custom" keeps
// them.
function preset(p) {
  const today = new Date(`${TODAY}T00:00:00Z`);
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

// The KPI period and the one of the same length before it (dates, UTC): the 90 days up to
// today by default. `dealledger report html` computes the same for its file.
function kpiPeriod(params) {
  const to = params.to || TODAY;
  const from = params.from || daysBefore(to, 90);
  const length = (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86400e3;
  return { from, to, before: daysBefore(from, length) };
}

async function compare(a, b, asOf) {
  const r = await api(`/v1/whatif?${query({ as_of: asOf, format: "json" })}&policy=${encodeURIComponent(a)}&policy=${encodeURIComponent(b)}`);
  const rows = [["cut", "cut"], ["cut won", "cut_won"], ["cut bad", "cut_bad"], ["revenue at risk", "revenue_at_risk"],
    ["effort value saved", "effort_value_saved"], ["net value", "net_value"], ["precision", "precision"], ["recall", "recall"]];
  return table(`Policy A (${a}) against policy B (${b})`, [
    { label: "figure", value: ([label]) => label },
    { label: "A", value: ([, key]) => r.policies[0][key] },
    { label: "B", value: ([, key]) => r.policies[1][key] },
  ], rows);
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
    else if (response.status === 429) {
      const body = await response.json().catch(() => ({}));
      message.textContent = body.reason || "Too many wrong tokens from here; wait a minute.";
    } else message.textContent = "That is not the token.";
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
    nodes = (await build(params)).filter((node) => node !== null && node !== undefined);
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

// The scheduled CRM syncs' last outcomes ([sync], GET /v1/sync) beside the live count: when
// each ran, what it stored, what still differs from the CRM, or why it failed. Nothing when no
// sync is scheduled.
async function showSyncs() {
  const all = await api("/v1/sync").catch(() => ({}));
  let failed = false;
  const said = Object.entries(all).map(([crm, s]) => {
    const last = s.last;
    if (!last) return `${crm} sync: ${s.state}`;
    if (last.outcome !== "ok") {
      failed = true;
      return `${crm} sync failed at ${last.finished_at}: ${last.error}`;
    }
    const r = last.summary.reconciled;
    const differ = r ? `, ${r.differences_total} difference${r.differences_total === 1 ? "" : "s"} with ${crm}` : "";
    return `${crm} sync at ${last.finished_at}: ${last.summary.events_stored} stored${differ}`;
  });
  sync.textContent = said.join("; ");
  sync.classList.toggle("error", failed);
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
  if (session.now) TODAY = session.now.slice(0, 10);
  if (session.token_required && !session.signed_in) {
    const { name } = route();
    page.replaceChildren(...login());
    page.dataset.ready = name;
    return;
  }
  window.addEventListener("hashchange", render);
  await render();
  listen();
  await showSyncs();
  setInterval(showSyncs, 30000);
}

start().catch((e) => {
  page.replaceChildren(el("p", { class: "error", role: "alert", text: String(e.message || e) }));
  page.dataset.ready = route().name;
});

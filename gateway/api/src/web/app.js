// coldchain web page: verification, partner view (custody + temperature chart)
// and the emergency blood board. Plain JS, no framework; every answer shown
// comes from the API and names the block it is true at. Values the API sends
// as enum words, YYYYMMDD dates and unix seconds are shown as people write
// them (WORDS, day(), when()); nothing raw reaches the page.
"use strict";

const LABELS = {
  authentic_in_spec: "Authentic — in specification",
  compromised: "Compromised — do not dispense",
  recalled: "Recalled — do not dispense",
  quarantined: "Quarantined — do not dispense",
  expired: "Expired — do not dispense",
  already_dispensed: "Already dispensed — possible duplicate",
  unknown: "Unknown — not on the ledger as presented",
};
// Every status, outcome, component and priority word the API sends.
const WORDS = {
  // hand-off outcomes
  proposed: "proposed, awaiting the receiver",
  accepted: "accepted",
  accepted_into_quarantine: "accepted into quarantine",
  rejected: "refused by the receiver",
  cancelled_by_proposer: "cancelled by the requester",
  // thermal status at a hand-off
  in_spec: "in specification",
  in_excursion: "in excursion",
  no_readings: "no readings",
  // lot status
  active: "active",
  quarantined: "quarantined",
  recalled: "recalled",
  compromised: "compromised",
  dispensed: "dispensed",
  destroyed: "destroyed",
  // shipment status
  preparing: "preparing",
  handoff_pending: "hand-off pending",
  in_transit: "in transit",
  delivered: "delivered",
  refused: "refused",
  cancelled: "cancelled",
  // blood components
  red_cells: "red cells",
  whole_blood: "whole blood",
  platelets: "platelets",
  fresh_frozen_plasma: "fresh frozen plasma",
  cryoprecipitate: "cryoprecipitate",
  // request priorities and states
  routine: "routine",
  urgent: "urgent",
  emergency: "emergency",
  open: "open",
  offer_accepted: "units on their way",
  fulfilled: "fulfilled",
  request_cancelled: "cancelled",
};
const $ = (id) => document.getElementById(id);
let lastLot = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

// An enum word as people say it (unknown words lose their underscores).
function human(word) { return WORDS[word] || String(word).replace(/_/g, " "); }
// "1 batch", "2 batches".
function plural(n, one, many) { return `${n} ${n === 1 ? one : (many || one + "s")}`; }
// YYYYMMDD as "30 June 2027" in the reader's language.
function day(yyyymmdd) {
  const y = Math.floor(yyyymmdd / 10000), m = Math.floor(yyyymmdd / 100) % 100, d = yyyymmdd % 100;
  if (!y || !m || !d) return String(yyyymmdd);
  return new Date(Date.UTC(y, m - 1, d)).toLocaleDateString(undefined, { year: "numeric", month: "long", day: "numeric", timeZone: "UTC" });
}
const pad2 = (n) => String(n).padStart(2, "0");
function utcClock(s) { const d = new Date(s * 1000); return `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`; }
function localClock(s) { const d = new Date(s * 1000); return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`; }
function localDay(s) { return new Date(s * 1000).toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" }); }
function utcDay(s) { return new Date(s * 1000).toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" }); }
// Local date and time, with UTC beside it: "5 Dec 2026, 14:03 (13:03 UTC)".
function when(s) {
  if (!s) return "—";
  const utc = localDay(s) === utcDay(s) ? `${utcClock(s)} UTC` : `${utcDay(s)}, ${utcClock(s)} UTC`;
  return `${localDay(s)}, ${localClock(s)} (${utc})`;
}
// "1 h 05 min", "12 min", "40 s".
function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  if (d) return `${d} d ${h} h`;
  return h ? `${h} h ${pad2(m)} min` : `${m} min`;
}
// A span in local time with its UTC: "5 Dec 2026, 14:03 – 15:10 (13:03–14:10 UTC)".
function span(from, to) {
  if (to == null) return `since ${when(from)}, still going`;
  const sameDay = localDay(from) === localDay(to);
  const end = sameDay ? localClock(to) : `${localDay(to)}, ${localClock(to)}`;
  return `${localDay(from)}, ${localClock(from)} – ${end} (${utcClock(from)}–${utcClock(to)} UTC)`;
}
function celsius(cdeg) { return (cdeg / 100).toFixed(2) + " °C"; }
// A reason written by the ledger ("excursion of 2400 s since 1700001400")
// with its unix times and second counts as dates and durations.
function readable(text) {
  return String(text)
    .replace(/\b(since|at|from|until|after|before|on) (\d{10})\b/g, (_, word, s) => `${word} ${when(Number(s))}`)
    .replace(/\b(\d{2,}) s\b/g, (all, s) => (Number(s) >= 60 ? duration(Number(s)) : all))
    .replace(/\b1 (reading|excursion|batche|gap|block|unit|logger|pack)s\b/g, (_, word) => `1 ${word === "batche" ? "batch" : word}`);
}
function zoneName() {
  const offset = -new Date().getTimezoneOffset();
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  return `${zone}, UTC${offset >= 0 ? "+" : "−"}${pad2(Math.floor(Math.abs(offset) / 60))}:${pad2(Math.abs(offset) % 60)}`;
}

function token() { return $("token").value.trim(); }

async function api(path) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = "Bearer " + token();
  const response = await fetch(path, { headers });
  const body = await response.json().catch(() => ({ error: "bad_response", message: "the API sent no JSON" }));
  if (!response.ok) {
    const error = new Error(body.message || response.statusText);
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

// What the code field holds: a Digital Link (path kept in the address bar),
// a bare GTIN (with the lot/serial fields), or anything else a scanner types
// (GS1 element strings, with FNC1 and symbology identifier) for the API's
// scan parser, so the page and the API read a scan the same way.
function request(code, lot, serial) {
  const at = code.indexOf("/01/");
  if (at >= 0) return { path: code.slice(at).split("#")[0], link: true };
  const compact = code.replace(/\s+/g, "");
  if (/^\d{8,14}$/.test(compact)) {
    let path = "/01/" + encodeURIComponent(compact);
    if (lot) path += "/10/" + encodeURIComponent(lot);
    if (serial) path += "/21/" + encodeURIComponent(serial);
    return { path, link: true };
  }
  return { path: "/api/v1/verify?scan=" + encodeURIComponent(code), link: false };
}

// The Digital Link of a verified pack, for the address bar (shareable, reloadable).
function linkOf(result) {
  let path = "/01/" + encodeURIComponent(result.gtin);
  if (result.lot) path += "/10/" + encodeURIComponent(result.lot);
  if (result.serial) path += "/21/" + encodeURIComponent(result.serial);
  if (result.expiry_on_pack) path += "?17=" + String(result.expiry_on_pack).slice(2);
  return path;
}

function showVerdict(result) {
  const box = $("verdict");
  box.hidden = false;
  box.className = "verdict " + result.verdict;
  const pack = [`GTIN ${result.gtin}`];
  if (result.lot) pack.push(`lot ${result.lot}`);
  if (result.serial) pack.push(`serial ${result.serial}`);
  const lot = result.lot_record;
  const facts = [el("p", { class: "pack" }, pack.join(" · "))];
  if (lot) facts.push(el("p", { class: "pack" }, `${lot.product_name}, registered expiry ${day(lot.expiry_date)}`));
  if (lot && result.expiry_on_pack && result.expiry_on_pack !== lot.expiry_date) {
    facts.push(el("p", { class: "mismatch", role: "alert" },
      `Warning: the expiry on the pack (${day(result.expiry_on_pack)}) is not the registered expiry (${day(lot.expiry_date)}).`));
  }
  box.replaceChildren(
    el("p", { class: "word" }, LABELS[result.verdict] || human(result.verdict)),
    ...facts,
    el("ul", {}, ...(result.reasons || []).map((r) => el("li", {}, readable(r)))),
    el("small", {}, result.as_of_block ? `True at block ${result.as_of_block.block_num} (${result.as_of_block.block_id.slice(0, 16)}…)` : "The index is empty"),
  );
}

// "12 blocks / 40 s" from a cannot_verify_now answer.
function behind(r) {
  const parts = [];
  if (r.lag_blocks > 0) parts.push(plural(r.lag_blocks, "block"));
  if (r.lag_blocks > 0 || r.lag_seconds > 0) parts.push(`${Math.round(r.lag_seconds || 0)} s`);
  return parts.join(" / ");
}

function unavailableDetail(r) {
  const lag = behind(r);
  const by = lag ? ` It is ${lag} behind the ledger.` : "";
  switch (r.state) {
    case "empty": return "The service is still reading the ledger (it is starting or rebuilding its copy).";
    case "stuck": return `The service has stopped reading the ledger.${by}`;
    case "no_contact": return r.seconds_since_contact == null
      ? "The service has not reached the ledger yet."
      : `The service lost contact with the ledger ${Math.round(r.seconds_since_contact)} s ago.${by}`;
    default: return lag ? `The service is ${lag} behind the ledger.` : "The service is behind the ledger.";
  }
}

// 503 cannot_verify_now: no verdict, and no alarm either — the answer would be out of date.
function showUnavailable(r, path) {
  const box = $("verdict");
  box.hidden = false;
  box.className = "verdict unavailable";
  const retry = el("button", { type: "button", class: "retry" }, "Try again");
  retry.addEventListener("click", () => { retry.disabled = true; verify(path); });
  box.replaceChildren(
    el("p", { class: "word" }, "The ledger cannot be checked right now"),
    el("p", { class: "reassure" }, "This is not a counterfeit warning: nothing is known to be wrong with this pack. The service cannot give an up-to-date answer, so it gives none."),
    el("p", { class: "behind" }, unavailableDetail(r)),
    retry,
    el("small", {}, "Try again in a minute. If this keeps happening, tell the operator of this service."),
  );
}

async function verify(path, link) {
  try {
    const result = await api(path);
    if (link === false) history.replaceState(null, "", linkOf(result));
    showVerdict(result);
    lastLot = result.lot && result.gtin ? { gtin: result.gtin, lot: result.lot } : null;
    await showProvenance();
  } catch (error) {
    if (error.status === 503 && error.body && error.body.error === "cannot_verify_now") {
      lastLot = null;
      showUnavailable(error.body, path);
      $("provenance").replaceChildren();
      return;
    }
    const box = $("verdict");
    box.hidden = false;
    box.className = "verdict error";
    const what = error.body && error.body.error === "bad_scan" ? "Cannot read this scan" : "Cannot verify";
    box.replaceChildren(el("p", { class: "word" }, what), el("p", {}, error.message));
  }
}

async function showProvenance() {
  const target = $("provenance");
  if (!lastLot || !token()) { target.replaceChildren(); return; }
  try {
    const p = await api(`/api/v1/lots/${encodeURIComponent(lastLot.gtin)}/${encodeURIComponent(lastLot.lot)}`);
    const items = p.custody.map((h) => el("li", {},
      el("strong", {}, `${h.from_org_id} → ${h.to_org_id}`), ` at GLN ${h.at_gln}, ${when(h.decided_at_s || h.proposed_at_s)} (${human(h.outcome)}) — `,
      el("span", { class: "status-" + h.thermal_status }, human(h.thermal_status))));
    const t = p.thermal;
    const summary = t && t.reading_count > 0
      ? `${plural(t.reading_count, "reading")}, min ${celsius(t.min_cdeg)}, max ${celsius(t.max_cdeg)}, MKT ${t.mkt_cdeg == null ? "—" : celsius(t.mkt_cdeg)}, ${duration(t.time_out_of_range_s)} out of range, ${plural(t.excursions_total, "excursion")}, ${plural(t.gaps_total, "data gap")}`
      : "no readings recorded yet";
    const budget = t && t.stability_budget_used ? ` Stability budget used: ${t.stability_budget_used}.` : "";
    target.replaceChildren(
      el("h3", {}, `${p.product.product_name} — lot ${p.product.lot}`),
      el("p", {}, `Status: ${human(p.product.status)}. Expires ${day(p.product.expiry_date)}. Held by ${p.product.holder_withheld ? "(not shown to you)" : p.product.custodian_org_id}. Temperatures: ${summary}.${budget}`),
      el("h3", {}, "Custody"), el("ol", { class: "timeline" }, ...items));
    for (const s of p.shipments) {
      const readings = await api(`/api/v1/shipments/${encodeURIComponent(s.shipment_id)}/readings?points=300`);
      target.append(el("h3", {}, `Shipment ${s.shipment_id} temperatures`));
      // Each logger of this shipment, as the lot's record judged it.
      const loggers = ((t && t.loggers) || []).filter((l) => l.shipment_id === s.shipment_id && l.reading_count > 0);
      if (loggers.length) {
        target.append(el("ul", { class: "loggers" }, ...loggers.map((l) => el("li", {},
          el("strong", {}, l.device_id ? `Logger ${l.device_id}` : "Readings from before per-logger records"),
          `: ${plural(l.reading_count, "reading")}, ${celsius(l.min_cdeg)} to ${celsius(l.max_cdeg)}, ${duration(l.time_above_s + l.time_below_s)} out of range, ${plural(l.excursions_total, "excursion")}`,
          l.stability_budget_used_ppb == null ? "" : `, stability budget used ${(Math.floor(l.stability_budget_used_ppb / 1e6) / 10).toString()} %`,
          l.compromised ? el("span", { class: "status-compromised" }, ` — breached: ${readable(l.compromised_reason)}`) : ""))));
      }
      temperatures(target, readings);
    }
  } catch (error) {
    target.replaceChildren(el("p", { class: "error" }, error.message));
  }
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  return node;
}
// Line colours per logger (the first is the single-logger colour).
const SERIES_COLOURS = ["#123c8c", "#c25e00", "#2b7a4b", "#7b3fa0", "#8a6d00"];

// Chart, legend and the lists of excursions and gaps under it. The chart is
// drawn at the width it has (1 SVG unit = 1 CSS px), so its labels keep their
// CSS size on a phone; it is drawn again when that width changes.
function temperatures(target, readings) {
  const series = readings.series && readings.series.length ? readings.series
    : [{ device_id: "", buckets: readings.buckets || [] }];
  const count = series.reduce((n, s) => n + s.buckets.reduce((m, b) => m + b.count, 0), 0);
  if (!count) {
    target.append(el("p", { class: "no-readings" }, "No readings recorded for this shipment yet."));
    return;
  }
  const figure = el("figure", { class: "chart" });
  target.append(figure);
  let width = 0;
  const draw = () => {
    const now = Math.round(figure.clientWidth);
    if (!now || now === width) return;
    width = now;
    const old = figure.querySelector("svg");
    const drawn = chart(readings, series, width);
    if (old) old.replaceWith(drawn); else figure.prepend(drawn);
  };
  draw();
  if (window.ResizeObserver) new ResizeObserver(draw).observe(figure);
  const band = readings.profile;
  const t = readings.thermal;
  const first = Math.min(...series.flatMap((s) => s.buckets.map((b) => b.first_reading_s)));
  const last = Math.max(...series.flatMap((s) => s.buckets.map((b) => b.last_reading_s)));
  figure.append(el("figcaption", {},
    `Times on the axis are local (${zoneName()}). Readings from ${when(first)} to ${when(last)}.`));
  const legend = el("ul", { class: "legend" });
  if (band) legend.append(el("li", {}, el("span", { class: "swatch band" }), `allowed ${(band.min_cdeg / 100).toFixed(1)}–${(band.max_cdeg / 100).toFixed(1)} °C${band.name ? ` (${band.name})` : ""}`));
  series.forEach((s, i) => legend.append(el("li", {},
    el("span", { class: "swatch", style: `background:${SERIES_COLOURS[i % SERIES_COLOURS.length]}` }),
    s.device_id ? `logger ${s.device_id}` : "temperature")));
  const excursions = (t && t.excursions) || [];
  const gaps = (t && t.gaps) || [];
  if (excursions.length) legend.append(el("li", {}, el("span", { class: "swatch excursion" }), "excursion"));
  if (gaps.length) legend.append(el("li", {}, el("span", { class: "swatch gap" }), "no data"));
  target.append(legend);
  target.append(el("h4", {}, excursions.length ? `Excursions (${(t && t.excursions_total) || excursions.length})` : "Excursions"));
  if (excursions.length) {
    target.append(el("ul", { class: "excursions" }, ...excursions.map((e) => el("li", {},
      el("strong", {}, e.high ? "Too warm" : "Too cold"), `${e.device_id ? ` (logger ${e.device_id})` : ""}: ${span(e.start_s, e.end_s)}; ${duration(e.duration_s)}; peak ${celsius(e.peak_cdeg)}`))));
    if (t.excursions_total > excursions.length) target.append(el("p", {}, `${t.excursions_total - excursions.length} more not listed.`));
  } else {
    target.append(el("p", {}, "None: every reading was in the allowed range."));
  }
  target.append(el("h4", {}, gaps.length ? `Data gaps (${(t && t.gaps_total) || gaps.length})` : "Data gaps"));
  if (gaps.length) {
    target.append(el("ul", { class: "gaps" }, ...gaps.map((g) => el("li", {},
      el("strong", {}, `No data from logger ${g.device_id}`), `: ${span(g.from_s, g.to_s)}; ${duration(g.to_s - g.from_s)}`))));
    if (t.gaps_total > gaps.length) target.append(el("p", {}, `${t.gaps_total - gaps.length} more not listed.`));
  } else {
    target.append(el("p", {}, "None: the loggers reported without interruption."));
  }
  const batches = readings.chain.batches;
  target.append(el("p", { class: readings.chain.intact ? "chain" : "error" }, readings.chain.intact
    ? `Readings hash chain verified over ${plural(batches, "batch", "batches")}.`
    : "Warning: the indexed readings do not reproduce the on-chain hash chain."));
}

// Tick steps in seconds: minutes to weeks.
const TIME_STEPS = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

function chart(readings, series, W) {
  const left = 48, right = 10, top = 10, bottom = 44;
  const H = Math.max(200, Math.min(300, Math.round(W * 0.6)));
  const root = svg("svg", { class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": "Temperature over time, allowed range shaded; excursions and gaps are listed below" });
  const band = readings.profile || { min_cdeg: 200, max_cdeg: 800 };
  const t = readings.thermal || {};
  const all = series.flatMap((s) => s.buckets);
  let lo = Math.min(band.min_cdeg, ...all.map((b) => b.min_cdeg)) - 100;
  let hi = Math.max(band.max_cdeg, ...all.map((b) => b.max_cdeg)) + 100;
  const t0 = Math.min(...all.map((b) => b.first_reading_s));
  const t1 = Math.max(t0 + 60, ...all.map((b) => b.last_reading_s));
  const x = (s) => left + ((s - t0) / (t1 - t0)) * (W - left - right);
  const y = (c) => H - bottom - ((c - lo) / (hi - lo)) * (H - top - bottom);
  const clampX = (s) => Math.min(Math.max(x(s), left), W - right);
  // y ticks: whole degrees in steps that leave ≥ 24 px between labels.
  const stepC = [100, 200, 500, 1000, 2000, 5000].find((s) => (s / (hi - lo)) * (H - top - bottom) >= 24) || 10000;
  lo = Math.floor(lo / stepC) * stepC; hi = Math.ceil(hi / stepC) * stepC;
  root.append(svg("rect", { x: left, y: y(band.max_cdeg), width: W - left - right, height: Math.max(0, y(band.min_cdeg) - y(band.max_cdeg)), fill: "#bfe3ff", "shape-rendering": "crispEdges" }));
  for (let c = lo; c <= hi; c += stepC) {
    root.append(svg("line", { x1: left, x2: W - right, y1: y(c), y2: y(c), class: "grid" }));
    root.append(svg("text", { x: left - 6, y: y(c) + 4, "text-anchor": "end" }, `${c / 100} °C`));
  }
  // Excursions: the time they lasted, shaded.
  for (const e of t.excursions || []) {
    const end = e.end_s == null ? t1 : e.end_s;
    root.append(svg("rect", { x: clampX(e.start_s), y: top, width: Math.max(3, clampX(end) - clampX(e.start_s)), height: H - top - bottom, class: "excursion-span" }));
  }
  // Gaps: hatched, and the lines break there.
  for (const g of t.gaps || []) {
    root.append(svg("rect", { x: clampX(g.from_s), y: top, width: Math.max(2, clampX(g.to_s) - clampX(g.from_s)), height: H - top - bottom, class: "gap-span" }));
  }
  // Time ticks in local time; a date under the first tick of each day.
  const offset = -new Date(t0 * 1000).getTimezoneOffset() * 60;
  const step = TIME_STEPS.find((s) => ((t1 - t0) / s) * 64 <= W - left - right) || 2419200;
  let lastDay = "";
  for (let s = Math.ceil((t0 + offset) / step) * step - offset; s <= t1; s += step) {
    const px = x(s);
    root.append(svg("line", { x1: px, x2: px, y1: H - bottom, y2: H - bottom + 5, class: "axis" }));
    const d = new Date(s * 1000).toLocaleDateString(undefined, { day: "numeric", month: "short" });
    // Ticks a day or more apart fall at midnight: the date alone says it.
    if (step < 86400) root.append(svg("text", { x: px, y: H - bottom + 18, "text-anchor": "middle" }, localClock(s)));
    if (d !== lastDay || step >= 86400) {
      root.append(svg("text", { x: px, y: H - bottom + (step < 86400 ? 34 : 18), "text-anchor": "middle", class: "date" }, d));
      lastDay = d;
    }
  }
  root.append(svg("line", { x1: left, x2: W - right, y1: H - bottom, y2: H - bottom, class: "axis" }));
  root.append(svg("line", { x1: left, x2: left, y1: top, y2: H - bottom, class: "axis" }));
  // One line per logger, broken where the ledger recorded a gap for it.
  series.forEach((s, i) => {
    const colour = SERIES_COLOURS[i % SERIES_COLOURS.length];
    const gaps = (t.gaps || []).filter((g) => !s.device_id || g.device_id === s.device_id);
    let run = [];
    const flush = () => {
      if (run.length === 1) root.append(svg("circle", { cx: run[0][0], cy: run[0][1], r: 2.5, fill: colour }));
      if (run.length > 1) root.append(svg("polyline", { points: run.map((p) => p.join(",")).join(" "), fill: "none", stroke: colour, "stroke-width": 3, "stroke-linejoin": "round" }));
      run = [];
    };
    s.buckets.forEach((b, k) => {
      const prev = s.buckets[k - 1];
      if (prev && gaps.some((g) => g.from_s >= prev.last_reading_s && g.to_s <= b.first_reading_s)) flush();
      run.push([x((b.first_reading_s + b.last_reading_s) / 2).toFixed(1), y(b.mean_cdeg).toFixed(1)]);
    });
    flush();
    for (const b of s.buckets) {
      if (b.max_cdeg > band.max_cdeg || b.min_cdeg < band.min_cdeg) {
        const c = b.max_cdeg > band.max_cdeg ? b.max_cdeg : b.min_cdeg;
        const mark = svg("circle", { cx: x((b.first_reading_s + b.last_reading_s) / 2), cy: y(c), r: 5, fill: "#e0001b" });
        mark.append(svg("title", {}, `Outside the range: ${celsius(c)} at ${when(b.first_reading_s)}`));
        root.append(mark);
      }
    }
  });
  return root;
}

function cell(label, value, attrs) { return el("td", Object.assign({ "data-label": label }, attrs || {}), value); }

// Available units as a board table; each unit by its DIN as printed on the
// bag's label (check character boxed), the 13 characters only if the API has
// no label text for it.
function unitTable(units) {
  const heads = ["DIN (as on the label)", "Component", "Blood type", "Volume", "Expires", "Site"];
  return el("table", { class: "board" },
    el("thead", {}, el("tr", {}, ...heads.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...units.map((u) => el("tr", {},
      cell("DIN", u.din_label || u.donation_id, { class: "din" }), cell("Component", human(u.component)),
      cell("Blood type", u.blood_type), cell("Volume", `${u.volume_ml} ml`),
      cell("Expires", day(u.expiry_date)), cell("Site", `GLN ${u.site_gln}`)))));
}

// What a keyboard-wedge ISBT 128 scanner types, cut into bags. Scans are cut
// at the fixed lengths of their data structures, as the API's parser
// (processors/src/isbt128.rs) cuts them: `=<` product code 10, `=%` blood
// group 6, `&>` expiry 12, `=>` expiry 8, `=` + DIN 16. A second DIN or
// product code starts the next bag. Text with no data identifier is a DIN
// typed from the label (spaces kept, the API ignores them). Anything else goes
// to the API as a DIN, so the API says in words what is wrong with it.
function bagScans(text) {
  const trimmed = text.trim();
  if (!trimmed) return [];
  if (!/[=&]/.test(trimmed)) return [{ unit: trimmed.toUpperCase(), also: [] }];
  const bags = [];
  let bag = { also: [] };
  const put = (key, scan) => {
    if (bag[key]) { bags.push(bag); bag = { also: [] }; }
    bag[key] = scan;
  };
  for (const word of trimmed.split(/\s+/)) {
    let rest = word;
    while (rest) {
      const isDin = /^=[A-NP-Z1-9]/.test(rest);
      const length = rest.startsWith("=<") ? 10 : rest.startsWith("=%") ? 6 : rest.startsWith("&>") ? 12
        : rest.startsWith("=>") ? 8 : isDin ? 16 : 0;
      if (!length) { put("unit", rest); break; }
      const scan = rest.slice(0, length);
      rest = rest.slice(length);
      if (scan.startsWith("=<")) put("product", scan);
      else if (isDin) put("unit", scan);
      else bag.also.push(scan.startsWith("=%") ? "blood group" : "expiry");
    }
  }
  bags.push(bag);
  return bags;
}

// One bag's answer from the API: its unit, the units of its product, or the
// API's reason in words.
async function findBag(bag) {
  const query = [];
  if (bag.unit) query.push("unit=" + encodeURIComponent(bag.unit));
  if (bag.product) query.push("product=" + encodeURIComponent(bag.product));
  const scanned = [bag.unit, bag.product].filter(Boolean).join(" ");
  const box = el("div", { class: "bag" });
  const kinds = [...new Set(bag.also)];
  const also = kinds.length ? [el("p", { class: "hint" },
    `The ${kinds.join(" and ")} bar code${kinds.length > 1 ? "s are" : " is"} not needed to find a unit and ${kinds.length > 1 ? "were" : "was"} not used.`)] : [];
  if (!query.length) {
    box.append(el("p", { class: "error" }, "Scan the donation number (DIN) or the product code to find a unit."), ...also);
    return box;
  }
  try {
    const found = await api("/api/v1/blood/units?" + query.join("&"));
    const units = found.units;
    if (bag.unit && units.length) {
      box.append(el("p", { class: "found" }, `Found ${units[0].din_label || units[0].donation_id}: available, in specification.`), unitTable(units));
    } else if (bag.unit) {
      box.append(el("p", { class: "not-found" }, `No available unit with the donation number ${scanned}: it is not registered, or it is not available now (offered, shipped, transfused, expired, out of its temperature range${bag.product ? ", or not the component of that product code" : ""}).`));
    } else {
      box.append(el("p", { class: "found" }, `${plural(units.length, "available unit")} of the product ${bag.product}${units.length ? ":" : "."}`),
        ...(units.length ? [unitTable(units)] : []));
    }
  } catch (error) {
    box.append(el("p", { class: "error" }, el("strong", {}, `Cannot read ${scanned}: `), error.message.replace(/^(unit|product): /, "")));
  }
  box.append(...also);
  return box;
}

async function bloodBoard() {
  $("verify-section").hidden = true;
  $("blood-section").hidden = false;
  $("bag-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const bags = bagScans($("bag").value);
    // A scanner ends with Enter: select the text once the answer is shown, so
    // the next bag's scan replaces it (not on a touch screen, see verify).
    const scanning = document.activeElement === $("bag") && !matchMedia("(pointer: coarse)").matches;
    const answers = [];
    for (const bag of bags) answers.push(await findBag(bag));
    $("bag-found").replaceChildren(...answers);
    if (scanning) $("bag").select();
  });
  const show = async () => {
    try {
      const requests = await api("/api/v1/blood/requests");
      const units = await api("/api/v1/blood/units");
      const requestHeads = ["Priority", "Component", "Blood type", "Units", "Needed by", "Hospital", "Status"];
      $("blood-requests").replaceChildren(el("h3", {}, `Open requests (${requests.requests.length})`),
        requests.requests.length ? el("table", { class: "board" },
          el("thead", {}, el("tr", {}, ...requestHeads.map((h) => el("th", { scope: "col" }, h)))),
          el("tbody", {}, ...requests.requests.map((r) => el("tr", { class: "priority-" + r.priority },
            cell("Priority", human(r.priority)), cell("Component", human(r.component)), cell("Blood type", r.blood_type),
            cell("Units", r.units), cell("Needed by", when(r.needed_by_s)),
            cell("Hospital", `${r.hospital_org_id} (GLN ${r.hospital_gln})`), cell("Status", human(r.status))))))
          : el("p", {}, "No open requests."));
      $("blood-units").replaceChildren(el("h3", {}, `Available in-spec units (${units.units.length})`),
        units.units.length ? unitTable(units.units) : el("p", {}, "No units available."));
    } catch (error) {
      $("blood-requests").replaceChildren(el("p", { class: "error" }, error.message));
    }
  };
  await show();
  setInterval(show, 10000);
}

// A keyboard-wedge scanner types FNC1 as Ctrl+] (ASCII GS), which a text
// field would drop: put the GS character in, so raw element strings keep
// their separators.
function keepGroupSeparators(input) {
  input.addEventListener("keydown", (event) => {
    if (event.ctrlKey && (event.key === "]" || event.code === "BracketRight")) {
      event.preventDefault();
      const at = input.selectionStart ?? input.value.length;
      input.setRangeText("\u001d", at, input.selectionEnd ?? at, "end");
    }
  });
}

function start() {
  // A partner link carries the token in the fragment: keep it for this tab
  // (sessionStorage survives a reload) and take it out of the address bar,
  // history and anything copied from there.
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem("coldchain-token", hash.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  $("token").value = sessionStorage.getItem("coldchain-token") || "";
  $("token").addEventListener("change", () => { sessionStorage.setItem("coldchain-token", token()); showProvenance(); });
  keepGroupSeparators($("code"));
  $("verify-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const code = $("code").value.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, "");
    const asked = request(code, $("lot").value.trim(), $("serial").value.trim());
    if (asked.link) history.replaceState(null, "", asked.path);
    // A scanner ends with Enter in the field: select its text once the verdict
    // is shown, so the next scan replaces it instead of being appended to it.
    // (Not with a touch screen, where focusing the field covers the verdict
    // with the keyboard.)
    const scanning = document.activeElement === $("code") && !matchMedia("(pointer: coarse)").matches;
    verify(asked.path, asked.link).then(() => { if (scanning) $("code").select(); });
  });
  if (location.pathname === "/blood") { bloodBoard(); return; }
  if (location.pathname.startsWith("/01/")) {
    $("code").value = location.pathname + location.search;
    verify(location.pathname + location.search);
  }
}
start();

// coldchain web page: verification, partner view (custody + temperature chart)
// and the emergency blood board. Plain JS, no framework; every answer shown
// comes from the API and names the block it is true at.
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
const $ = (id) => document.getElementById(id);
let lastLot = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
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

// Accepts a Digital Link URL or path, or a bare GTIN (with the lot/serial fields).
function digitalLinkPath(code, lot, serial) {
  const at = code.indexOf("/01/");
  if (at >= 0) return code.slice(at).split("#")[0];
  let path = "/01/" + encodeURIComponent(code.replace(/\s+/g, ""));
  if (lot) path += "/10/" + encodeURIComponent(lot);
  if (serial) path += "/21/" + encodeURIComponent(serial);
  return path;
}

function showVerdict(result) {
  const box = $("verdict");
  box.hidden = false;
  box.className = "verdict " + result.verdict;
  box.replaceChildren(
    el("p", { class: "word" }, LABELS[result.verdict] || result.verdict),
    el("ul", {}, ...(result.reasons || []).map((r) => el("li", {}, r))),
    el("small", {}, result.as_of_block ? `True at block ${result.as_of_block.block_num} (${result.as_of_block.block_id.slice(0, 16)}…)` : "The index is empty"),
  );
}

// "12 blocks / 40 s" from a cannot_verify_now answer.
function behind(r) {
  const parts = [];
  if (r.lag_blocks > 0) parts.push(`${r.lag_blocks} block${r.lag_blocks === 1 ? "" : "s"}`);
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

async function verify(path) {
  try {
    const result = await api(path);
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
    box.replaceChildren(el("p", { class: "word" }, "Cannot verify"), el("p", {}, error.message));
  }
}

function celsius(cdeg) { return (cdeg / 100).toFixed(2) + " °C"; }
function when(s) { return s ? new Date(s * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC" : "—"; }

async function showProvenance() {
  const target = $("provenance");
  if (!lastLot || !token()) { target.replaceChildren(); return; }
  try {
    const p = await api(`/api/v1/lots/${encodeURIComponent(lastLot.gtin)}/${encodeURIComponent(lastLot.lot)}`);
    const items = p.custody.map((h) => el("li", {},
      el("strong", {}, `${h.from_org_id} → ${h.to_org_id}`), ` at GLN ${h.at_gln}, ${when(h.decided_at_s || h.proposed_at_s)} (${h.outcome}) — `,
      el("span", { class: "status-" + h.thermal_status }, h.thermal_status.replace("_", " "))));
    const t = p.thermal;
    const summary = t ? `${t.reading_count} readings, min ${celsius(t.min_cdeg)}, max ${celsius(t.max_cdeg)}, MKT ${t.mkt_cdeg == null ? "—" : celsius(t.mkt_cdeg)}, ${Math.round(t.time_out_of_range_s / 60)} min out of range, ${t.excursions_total} excursions, ${t.gaps_total} gaps` : "no readings";
    target.replaceChildren(
      el("h3", {}, `${p.product.product_name} — lot ${p.product.lot}`),
      el("p", {}, `Status ${p.product.status}; expires ${p.product.expiry_date}; held by ${p.product.holder_withheld ? "(not shown to you)" : p.product.custodian_org_id}. ${summary}.`),
      el("h3", {}, "Custody"), el("ol", { class: "timeline" }, ...items));
    for (const s of p.shipments) {
      const readings = await api(`/api/v1/shipments/${encodeURIComponent(s.shipment_id)}/readings?points=300`);
      target.append(el("h3", {}, `Shipment ${s.shipment_id} temperatures`), chart(readings),
        el("p", {}, readings.chain.intact ? `Readings hash chain verified over ${readings.chain.batches} batches.` : "Warning: the indexed readings do not reproduce the on-chain hash chain."));
    }
  } catch (error) {
    target.replaceChildren(el("p", { class: "error" }, error.message));
  }
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// Temperature chart: allowed band shaded, mean line, excursion buckets marked.
function chart(readings) {
  const W = 800, H = 260, pad = 40;
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Temperature over time with the allowed band shaded" });
  const b = readings.buckets || [];
  const band = readings.profile || { min_cdeg: 200, max_cdeg: 800 };
  if (!b.length) { root.append(svg("text", { x: pad, y: H / 2 })); root.lastChild.textContent = "No readings yet"; return root; }
  const lo = Math.min(band.min_cdeg, ...b.map((x) => x.min_cdeg)) - 100;
  const hi = Math.max(band.max_cdeg, ...b.map((x) => x.max_cdeg)) + 100;
  const t0 = b[0].from_s, t1 = Math.max(b[b.length - 1].to_s, t0 + 1);
  const x = (t) => pad + ((t - t0) / (t1 - t0)) * (W - 2 * pad);
  const y = (c) => H - pad - ((c - lo) / (hi - lo)) * (H - 2 * pad);
  root.append(svg("rect", { x: pad, y: y(band.max_cdeg), width: W - 2 * pad, height: y(band.min_cdeg) - y(band.max_cdeg), fill: "#bfe3ff", "shape-rendering": "crispEdges" }));
  for (const c of [band.min_cdeg, band.max_cdeg]) {
    const label = svg("text", { x: 2, y: y(c) + 4, "font-size": 12, fill: "#333" });
    label.textContent = (c / 100).toFixed(1) + "°";
    root.append(label);
  }
  const points = b.map((p) => `${x((p.from_s + p.to_s) / 2).toFixed(1)},${y(p.mean_cdeg).toFixed(1)}`).join(" ");
  root.append(svg("polyline", { points, fill: "none", stroke: "#123c8c", "stroke-width": 4, "stroke-linejoin": "round" }));
  for (const p of b) {
    if (p.max_cdeg > band.max_cdeg || p.min_cdeg < band.min_cdeg) {
      const c = p.max_cdeg > band.max_cdeg ? p.max_cdeg : p.min_cdeg;
      const mark = svg("circle", { cx: x((p.from_s + p.to_s) / 2), cy: y(c), r: 6, fill: "#e0001b" });
      const title = svg("title", {});
      title.textContent = `Excursion: ${celsius(c)} at ${when(p.from_s)}`;
      mark.append(title);
      root.append(mark);
    }
  }
  return root;
}

async function bloodBoard() {
  $("verify-section").hidden = true;
  $("blood-section").hidden = false;
  const show = async () => {
    try {
      const requests = await api("/api/v1/blood/requests");
      const units = await api("/api/v1/blood/units");
      $("blood-requests").replaceChildren(el("h3", {}, "Open requests"), el("table", {},
        el("tr", {}, ...["Priority", "Component", "Type", "Units", "Needed by", "Hospital", "Status"].map((h) => el("th", {}, h))),
        ...requests.requests.map((r) => el("tr", {}, ...[r.priority, r.component, r.blood_type, r.units, when(r.needed_by_s), r.hospital_gln, r.status].map((v) => el("td", {}, v))))));
      $("blood-units").replaceChildren(el("h3", {}, "Available in-spec units"), el("table", {},
        el("tr", {}, ...["Donation", "Component", "Type", "Expires", "Site"].map((h) => el("th", {}, h))),
        ...units.units.map((u) => el("tr", {}, ...[u.donation_id, u.component, u.blood_type, u.expiry_date, u.site_gln].map((v) => el("td", {}, v))))));
    } catch (error) {
      $("blood-requests").replaceChildren(el("p", { class: "error" }, error.message));
    }
  };
  await show();
  setInterval(show, 10000);
}

function start() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) sessionStorage.setItem("coldchain-token", hash.get("token"));
  $("token").value = sessionStorage.getItem("coldchain-token") || "";
  $("token").addEventListener("change", () => { sessionStorage.setItem("coldchain-token", token()); showProvenance(); });
  $("verify-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const path = digitalLinkPath($("code").value.trim(), $("lot").value.trim(), $("serial").value.trim());
    history.replaceState(null, "", path);
    verify(path + (path.includes("?") ? "" : location.search));
  });
  if (location.pathname === "/blood") { bloodBoard(); return; }
  if (location.pathname.startsWith("/01/")) {
    $("code").value = location.pathname;
    verify(location.pathname + location.search);
  }
}
start();

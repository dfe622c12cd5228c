// The driver's page: streams the phone's position over /ws/driver (buffered while offline),
// shows the route the server pushes, and reports what happened at each stop (with a photo or the
// customer's signature as proof). A stop is a pickup, a drop-off, a return: a parcel that
// could not be delivered, taken back to where it came from (the shop, or the van's depot), or a
// transfer: a parcel collected from another van, out of service (the stop's from_vehicle).
// Routes carry no personal data: the next stop's address, customer and the dispatcher's notes
// are read over HTTP (GET /orders/{id}/stop-details) and kept in memory only.
/* global L */
import { $, $$, el, ApiError, wsUrl, toast, escapeHtml, clock, inMinutes, loadConfig, createMap, divIcon, tokenFromFragment } from "./common.js";

const TOKEN_KEY = "fleet.driver-token";
const QUEUE_KEY = "fleet.driver-queue";
const MAX_QUEUE = 5000; // fixes kept while offline (the oldest go first)
const BATCH = 100; // FLEET_PING_BATCH_MAX
const SEND_EVERY_MS = 1000;

const d = {
  token: null,
  socket: null,
  queue: JSON.parse(localStorage.getItem(QUEUE_KEY) || "[]"),
  inflight: null, // {seq, count}
  seq: 0,
  route: null,
  done: new Set(), // "order_id:kind" reported done from this phone (kind: pickup, dropoff, return, transfer)
  me: null,
  acked: 0,
  pendingStops: new Map(), // seq → {order_id, event, kind, from, run} (kind: the stop it was for; run: its "all here" tap)
  run: null, // the last "all here" tap: {kind, waiting: "order_id:kind" not answered yet, acked, at}
};
window.fleetDriver = d;

function saveQueue() {
  try { localStorage.setItem(QUEUE_KEY, JSON.stringify(d.queue)); } catch { /* storage full: keep in memory */ }
}

function signIn() {
  const fromUrl = tokenFromFragment();
  if (fromUrl) localStorage.setItem(TOKEN_KEY, fromUrl);
  d.token = localStorage.getItem(TOKEN_KEY);
  if (d.token) return start();
  $("#login").classList.remove("hidden");
}
$("#login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem(TOKEN_KEY, $("#login-token").value.trim());
  $("#login").classList.add("hidden");
  signIn();
});

let map, meMarker, stopLayer;
async function start() {
  const config = await loadConfig();
  map = createMap($("#map"), config, { zoomControl: false });
  const b = config.bbox;
  if (b) map.setView([(b[1] + b[3]) / 2, (b[0] + b[2]) / 2], 13);
  else map.setView([60.17, 24.94], 13);
  stopLayer = L.layerGroup().addTo(map);
  connect();
  watchGps();
  setInterval(flush, SEND_EVERY_MS);
  setInterval(() => d.route && renderRoute(), 30000);
  setInterval(refreshDetails, 1000); // (a request only when the next stop's details are due)
}

// ---------- GPS ----------
function watchGps() {
  if (!("geolocation" in navigator)) { $("#gps").textContent = "GPS: not available on this device"; return; }
  navigator.geolocation.watchPosition(onFix, (err) => { $("#gps").textContent = `GPS: ${err.message || "no permission"}`; }, { enableHighAccuracy: true, maximumAge: 0, timeout: 30000 });
}

function onFix(pos) {
  const c = pos.coords;
  const fix = { lat: c.latitude, lon: c.longitude, ts: Math.round(pos.timestamp || Date.now()) };
  if (Number.isFinite(c.speed) && c.speed >= 0) fix.speed = c.speed;
  if (Number.isFinite(c.heading) && c.heading >= 0 && c.heading < 360) fix.heading = c.heading;
  if (Number.isFinite(c.accuracy) && c.accuracy >= 0) fix.accuracy = c.accuracy;
  const last = d.queue[d.queue.length - 1];
  if (last && last.ts >= fix.ts) return; // the same fix again
  d.queue.push(fix);
  if (d.queue.length > MAX_QUEUE) d.queue.splice(0, d.queue.length - MAX_QUEUE);
  saveQueue();
  d.me = fix;
  $("#gps").textContent = `GPS: ±${Math.round(c.accuracy || 0)} m`;
  const ll = [fix.lat, fix.lon];
  if (!meMarker) {
    meMarker = L.marker(ll, { icon: divIcon('<div class="me-pin"></div>', "", [18, 18]), keyboard: false }).addTo(map);
    map.setView(ll, 15);
  } else meMarker.setLatLng(ll);
  renderQueue();
  flush();
}

function renderQueue() {
  $("#queue").textContent = `${d.queue.length} fix${d.queue.length === 1 ? "" : "es"} queued`;
}

// ---------- the driver socket ----------
function connect() {
  const socket = new WebSocket(wsUrl(`/ws/driver?token=${encodeURIComponent(d.token)}`));
  d.socket = socket;
  const conn = $("#conn");
  socket.onopen = () => { conn.textContent = "online"; conn.className = "badge ok"; d.retry = 0; flush(); };
  socket.onclose = (e) => {
    d.inflight = null; // not acked: it stays queued and is sent again (the server drops duplicates)
    if (d.run) { d.run = null; renderRoute(); } // its answers will not come: the button is offered again
    if (e.code === 4001) {
      conn.textContent = "token refused";
      conn.className = "badge bad";
      localStorage.removeItem(TOKEN_KEY);
      details.clear();
      renderDetails(null);
      toast("This vehicle token is not valid. Ask your dispatcher for a new link.", { bad: true, ms: 60000 });
      return;
    }
    conn.textContent = "offline · buffering";
    conn.className = "badge warn";
    d.retry = Math.min((d.retry || 0) + 1, 5);
    // Jittered, so a fleet cut off at once (a network blip, a server restart) comes back spread
    // out rather than in step: 0.5-1.5 s, then doubling up to 8-24 s.
    setTimeout(connect, 500 * 2 ** d.retry * (0.5 + Math.random()));
  };
  socket.onmessage = (e) => onMessage(JSON.parse(e.data));
}

function flush() {
  const s = d.socket;
  if (d.inflight && Date.now() - d.inflight.at > 15000) d.inflight = null; // never acked: resend
  if (!s || s.readyState !== WebSocket.OPEN || d.inflight || !d.queue.length) return;
  const pings = d.queue.slice(0, BATCH);
  d.seq += 1;
  d.inflight = { seq: d.seq, count: pings.length, at: Date.now() };
  s.send(JSON.stringify({ type: "pings", seq: d.seq, pings }));
}

function onMessage(msg) {
  if (msg.type === "ack") {
    if (d.inflight && msg.seq === d.inflight.seq) {
      d.queue.splice(0, d.inflight.count);
      saveQueue();
      d.acked += msg.accepted;
      d.inflight = null;
      $("#acked").textContent = `sent ✓ ${clock(Date.now())}`;
      renderQueue();
      flush();
    }
  } else if (msg.type === "route") {
    if (!d.route || msg.version >= d.route.version || msg.planned_at >= d.route.planned_at) {
      d.route = msg;
      // A stop reported here stays hidden while the routes still list it (the server's next ETA
      // refresh, same version, drops it); once a route leaves it out, the server has it,
      // and a later route listing it again (a parcel sent out again) means a new visit.
      const listed = new Set(msg.stops.map((s) => `${s.order_id}:${s.kind}`));
      for (const key of [...d.done]) if (!listed.has(key)) d.done.delete(key);
    }
    renderRoute();
  } else if (msg.type === "stop_ack") {
    const sent = d.pendingStops.get(msg.seq);
    d.pendingStops.delete(msg.seq);
    if (sent) {
      // (only a stop the route still lists: one a newer route already left out is done)
      const listed = new Set((d.route ? d.route.stops : []).map((s) => `${s.order_id}:${s.kind}`));
      const done = (kind) => { if (listed.has(`${sent.order_id}:${kind}`)) d.done.add(`${sent.order_id}:${kind}`); };
      // (picked up at a transfer: the parcel collected from the van out of service)
      if (sent.event === "picked_up") done(sent.kind === "transfer" ? "transfer" : "pickup");
      if (sent.event === "returned") done("return");
      if (sent.event === "delivered" || sent.event === "failed") {
        // A failed drop-off the server tries again (the order back with the planner, the parcel
        // still in this van) stays on the route: only one that is over is done here.
        // (One held for the dispatcher, a wrong address, is not tried again by this van now.)
        const again = sent.event === "failed" && !["returning", "returned"].includes(msg.status) && !msg.held;
        if (!again) done("dropoff");
        if (sent.order_id === proofs.orderId) resetProofs(null); // recorded: the proofs went with it
      }
    }
    const said = msg.held ? `held for the dispatcher (${msg.held.replace("_", " ")}): keep the parcel`
      : sent && sent.kind === "transfer" && sent.event === "picked_up" ? `collected${sent.from ? ` from ${sent.from}` : ""}`
      : msg.status.replace("_", " ");
    if (sent && sent.run) runAnswered(sent, true); // (one toast for the whole tap)
    else toast(`${escapeHtml(msg.order_id)}: ${escapeHtml(said)}`);
    renderRoute();
  } else if (msg.type === "error") {
    if (d.pendingStops.has(msg.seq)) {
      const sent = d.pendingStops.get(msg.seq);
      d.pendingStops.delete(msg.seq);
      toast(`Not recorded: ${escapeHtml(msg.message)}`, { bad: true }); // (the stop stays on the list)
      if (sent.run) { runAnswered(sent, false); renderRoute(); }
    } else if (d.inflight && msg.seq === d.inflight.seq) {
      if (msg.code === "invalid_message" || msg.code === "batch_too_large" || msg.code === "empty_batch") d.queue.splice(0, d.inflight.count);
      d.inflight = null;
      setTimeout(flush, 1000);
    }
  }
}

// ---------- route and stop reports ----------
// A transfer: the parcel is on another van, out of service, where that van stands; this driver
// collects it there (reported as picked_up), then delivers it (or takes it back) as usual.
const STOP_VERB = { pickup: "Pick up", dropoff: "Deliver", return: "Return", transfer: "Collect" };
const stopTitle = (s) => `${STOP_VERB[s.kind] || "Deliver"} ${s.order_id}${s.kind === "transfer" && s.from_vehicle ? ` from ${s.from_vehicle}` : ""}`;
// The actions each kind of stop offers (#actions buttons by data-event): a return is only handed
// back, with no proof and no failure; a transfer only collected.
const STOP_ACTIONS = { return: ["returned"], transfer: ["picked_up"] };
// A button's label at a kind of stop, where it differs from the page's.
const ACTION_LABEL = { transfer: { picked_up: "Collected" } };
const DEFAULT_ACTIONS = ["arrived", "picked_up", "delivered", "failed"];

function remaining() {
  return (d.route ? d.route.stops : []).filter((s) => !d.done.has(`${s.order_id}:${s.kind}`));
}

function renderRoute() {
  $("#vehicle-name").textContent = d.route ? d.route.vehicle_id : "Driver";
  const stops = remaining();
  const next = stops[0];
  const end = d.route && d.route.end; // the depot the route ends at, and when the van is back
  const actions = (next && STOP_ACTIONS[next.kind]) || DEFAULT_ACTIONS;
  for (const b of $$("#actions button")) {
    b.disabled = !next;
    b.classList.toggle("hidden", !actions.includes(b.dataset.event));
    b.dataset.label ??= b.textContent; // the page's own label
    b.textContent = (next && ACTION_LABEL[next.kind] && ACTION_LABEL[next.kind][b.dataset.event]) || b.dataset.label;
    if (b.dataset.event !== "returned") b.classList.toggle("wide", actions.length === 1); // alone: the whole row
  }
  renderRun(stops);
  if (!next || next.order_id !== proofs.orderId) closeSheets(); // the forms were for another stop
  forgetDetails(stops);
  if (next && detailsDue(next.order_id)) loadDetails(next.order_id);
  renderDetails(next);
  if (next) {
    $("#next-title").textContent = stopTitle(next);
    $("#next-sub").textContent = `ETA ${clock(next.eta)} · ${inMinutes(next.eta)}${next.late_risk || next.late_s > 0 ? " · running late" : ""}`;
  } else {
    $("#next-title").textContent = "No stops left";
    $("#next-sub").textContent = !d.route ? "Waiting for the dispatcher to plan your route."
      : end ? `Back to the depot, there at ${clock(end.eta)}. New stops appear here by themselves.`
      : "All done for now. New stops appear here by themselves.";
  }
  $("#stops").replaceChildren(...stops.map((s, i) =>
    el("li", { class: `stop ${s.kind}${s.late_risk || s.late_s > 0 ? " late" : ""}` },
      el("span", { class: "n" }, String(i + 1)),
      el("div", {}, el("div", { style: "font-weight:600" }, stopTitle(s)),
        s.kind === "transfer" ? el("div", { class: "muted stop-note" }, transferText(s)) : null),
      el("div", { class: "eta" }, clock(s.eta)))),
    ...(end ? [el("li", { class: "stop depot", id: "route-end" },
      el("span", { class: "n" }, "⌂"),
      el("div", {}, el("div", { style: "font-weight:600" }, "Back at the depot")),
      el("div", { class: "eta" }, clock(end.eta)))] : []));
  stopLayer.clearLayers();
  const line = [];
  if (d.me) line.push([d.me.lat, d.me.lon]);
  stops.forEach((s, i) => {
    line.push([s.lat, s.lon]);
    L.marker([s.lat, s.lon], { icon: divIcon(`<div class="stop-pin ${s.kind}">${i + 1}</div>`, "", [22, 22]), keyboard: false }).addTo(stopLayer);
  });
  if (end) {
    line.push([end.lat, end.lon]);
    L.marker([end.lat, end.lon], { icon: divIcon('<div class="stop-pin depot">⌂</div>', "", [22, 22]), keyboard: false }).addTo(stopLayer);
  }
  if (line.length > 1) L.polyline(line, { color: "#2563eb", weight: 3, dashArray: "6 6", interactive: false }).addTo(stopLayer);
  const shown = d.route ? `${d.route.version}:${stops.length}` : "";
  if (line.length > 1 && shown !== d.fittedTo) {
    map.fitBounds(line.slice(0, 2), { padding: [40, 40], maxZoom: 16 }); // me and the next stop
    d.fittedTo = shown;
  }
}

const online = () => d.socket && d.socket.readyState === WebSocket.OPEN;

// ---------- the next stop's details: address, customer, notes ----------
// Read with the driver token for the next stop only, cached per order in memory (never in
// localStorage: personal data), read again when the route changes (a new version: a dispatcher's
// edit of the notes shows after the next route push) and at least every DETAILS_MAX_AGE_MS while
// the stop is next. A refusal (403: not, or no longer, this van's open order) shows nothing; no
// connection keeps what was read before (or nothing) and tries again soon. Both are asked again
// after 1, 2, 4… s: a route is pushed a moment before the planner puts its new orders on the van,
// so the first answer may be a 403.
const DETAILS_MAX_AGE_MS = 60000;
const DETAILS_RETRY_MS = 10000; // at most this long after no answer
d.detailsMaxAgeMs = DETAILS_MAX_AGE_MS; // (the browser tests shorten them)
d.detailsRetryMs = DETAILS_RETRY_MS;
const details = new Map(); // order id → {data (or null), version, at, misses, failed, loading}

function detailsDue(orderId) {
  const c = details.get(orderId);
  if (!c) return true;
  if (c.loading) return false;
  if (d.route && c.version !== d.route.version) return true; // the route changed
  const every = !c.misses ? d.detailsMaxAgeMs
    : Math.min(1000 * 2 ** (c.misses - 1), c.failed ? d.detailsRetryMs : d.detailsMaxAgeMs);
  return Date.now() - c.at >= every;
}

async function loadDetails(orderId) {
  const c = details.get(orderId) || { data: null, version: null, at: 0, misses: 0, failed: false };
  c.loading = true;
  details.set(orderId, c);
  const version = d.route ? d.route.version : null;
  let data = c.data;
  let failed = false;
  let ok = false;
  try {
    const res = await fetch(`/orders/${encodeURIComponent(orderId)}/stop-details`, {
      headers: { Authorization: `Bearer ${d.token}`, Accept: "application/json" },
      cache: "no-store",
    });
    if (res.ok) { data = await res.json(); ok = true; }
    else if (res.status >= 500) failed = true; // the server's trouble: keep what was read
    else data = null; // 403 (not this van's open order), 404, 401: nothing to show
  } catch {
    failed = true; // no connection (or no JSON): keep what was read, try again soon
  }
  if (details.get(orderId) !== c) return; // forgotten meanwhile (off the route)
  Object.assign(c, { data: data && data.id === orderId ? data : null, version, at: Date.now(), failed, loading: false, misses: ok ? 0 : c.misses + 1 });
  const next = remaining()[0];
  if (next && next.order_id === orderId) renderDetails(next);
}

/** Forget the details of the orders no longer ahead on the route. */
function forgetDetails(stops) {
  const ahead = new Set(stops.map((s) => s.order_id));
  for (const id of [...details.keys()]) if (!ahead.has(id)) details.delete(id);
}

function refreshDetails() {
  const next = remaining()[0];
  if (next && detailsDue(next.order_id)) loadDetails(next.order_id);
}

const telHref = (phone) => {
  const digits = String(phone).replace(/[^0-9+*#]/g, "");
  return digits ? `tel:${digits}` : null;
};

/** Where a transfer's parcel is: on the van out of service the stop names. */
const transferText = (s) => `from van ${s.from_vehicle || "?"} (out of service)`;

/** Under the next stop's title: where it is (the drop-off's address; a pickup's, or a return's
 * to the shop, the pickup address, else the depot: an order without a pickup place is loaded
 * there; a transfer's, the van out of service it is on, which the route itself tells: shown
 * before the details are read, and when they cannot be, as before the order is this van's),
 * whom to ask for (a drop-off's customer,
 * with a phone link), the dispatcher's notes and, at a drop-off, the customer's instructions.
 * Nothing while they are not known. */
function renderDetails(next) {
  const box = $("#next-details");
  const c = next && details.get(next.order_id);
  const transfer = !!next && next.kind === "transfer";
  const info = (c && c.data) || (transfer ? {} : null);
  box.classList.toggle("hidden", !info);
  if (!info) {
    for (const id of ["#next-address", "#next-customer", "#next-notes", "#next-instructions"]) $(id).replaceChildren();
    return;
  }
  let address;
  if (transfer) address = transferText(next);
  else if (next.kind === "pickup") address = info.pickup ? info.pickup.address : "the depot";
  else if (next.kind === "return") address = info.pickup ? info.pickup.address || "the pickup place" : "your depot";
  else address = info.dropoff ? info.dropoff.address : "";
  $("#next-address").textContent = address || "";
  $("#next-address").classList.toggle("hidden", !address);
  const customer = info.customer || {};
  const atDoor = next.kind === "dropoff" || !STOP_VERB[next.kind];
  const showCustomer = atDoor && !!(customer.name || customer.phone);
  const tel = showCustomer && customer.phone ? telHref(customer.phone) : null;
  $("#next-customer").replaceChildren(...(showCustomer ? [
    customer.name ? el("span", { class: "customer-name" }, customer.name) : null,
    customer.name && customer.phone ? " · " : null,
    customer.phone ? (tel ? el("a", { href: tel, class: "customer-phone" }, customer.phone) : el("span", {}, customer.phone)) : null,
  ].filter(Boolean) : []));
  $("#next-customer").classList.toggle("hidden", !showCustomer);
  const notes = (info.notes || "").trim();
  $("#next-notes").textContent = notes;
  $("#next-notes").classList.toggle("hidden", !notes);
  // The customer's own words from the tracking page ("leave it with the neighbour"): for the door.
  const words = atDoor ? (info.instructions || "").trim() : "";
  $("#next-instructions").textContent = words;
  $("#next-instructions").classList.toggle("hidden", !words);
}

/** Report the next stop's outcome (for ``orderId``'s stop only, if given); false when it could
 * not be sent, said in a toast. */
function report(event, { reason, proof, orderId } = {}) {
  const next = remaining()[0];
  if (!next || !online()) { toast("Offline: try again when the connection is back.", { bad: true }); return false; }
  const offered = STOP_ACTIONS[next.kind] || DEFAULT_ACTIONS;
  if ((orderId && next.order_id !== orderId) || !offered.includes(event)) { toast("The next stop has changed: check it and try again.", { bad: true }); return false; }
  d.seq += 1;
  const msg = { type: "stop", seq: d.seq, order_id: next.order_id, event };
  if (reason) msg.reason = reason;
  if (proof) msg.proof = proof;
  d.pendingStops.set(d.seq, { order_id: next.order_id, event, kind: next.kind, from: next.from_vehicle });
  d.socket.send(JSON.stringify(msg));
  return true;
}

// ---------- several parcels at one place: "Picked up all N here" ----------
// A van at its depot in the morning has a pickup stop for each parcel loaded there, all at the
// same place; so has a shop with several parcels, and a van out of service with several to
// collect (transfers). When the next stop is a pickup (or a transfer) and the stops right after
// it are of the same kind and within RUN_RADIUS_M of it, one tap reports them all: one ordinary
// stop event (picked_up) each, with its own seq; each stop leaves the list with its own ack, and
// one refused (an error) stays there, said as for a single report.
const RUN_LABEL = { pickup: "Picked up", transfer: "Collected" }; // the kinds reported with picked_up
const RUN_RADIUS_M = 30;
const RUN_BURST = 15; // stop events sent at once, then as many a second (the socket takes 20 a second)
const RUN_WAIT_MS = 15000; // answers missing by then: the button is offered again
const stopKey = (s) => `${s.order_id}:${s.kind}`;

/** Straight-line distance in metres between two {lat, lon} (Leaflet's great-circle one). */
const metres = (a, b) => L.latLng(a.lat, a.lon).distanceTo(L.latLng(b.lat, b.lon));

/** The next stop, if a pickup or a transfer, and the stops right after it of the same kind
 * within RUN_RADIUS_M of it (consecutive ones only); none for another kind. */
function runAhead(stops) {
  const next = stops[0];
  if (!next || !RUN_LABEL[next.kind]) return [];
  const run = [next];
  for (const s of stops.slice(1)) {
    if (s.kind !== next.kind || !(metres(next, s) <= RUN_RADIUS_M)) break;
    run.push(s);
  }
  return run;
}

const runBusy = () => !!d.run && d.run.waiting.size > 0 && Date.now() - d.run.at < RUN_WAIT_MS;

function renderRun(stops) {
  const run = runAhead(stops);
  const shown = run.length >= 2;
  const button = $("#run-all");
  $("#run-actions").classList.toggle("hidden", !shown);
  button.classList.toggle("transfer", shown && run[0].kind === "transfer");
  button.textContent = shown ? `${RUN_LABEL[run[0].kind]} all ${run.length} here` : "";
  button.disabled = !shown || runBusy();
}

$("#run-all").addEventListener("click", () => {
  const run = runAhead(remaining());
  if (run.length < 2 || runBusy()) return;
  d.run = { kind: run[0].kind, waiting: new Set(run.map(stopKey)), acked: 0, at: Date.now() };
  sendRun(d.run, run);
});

/** Send the stop events of ``stops`` for the tap ``batch``, RUN_BURST at a time. */
function sendRun(batch, stops) {
  if (d.run !== batch) return; // (the socket closed meanwhile: the tap is over)
  if (!online()) { // (as for a single report: nothing sent, said)
    for (const s of stops) batch.waiting.delete(stopKey(s));
    toast("Offline: try again when the connection is back.", { bad: true });
    runSettled(batch);
    renderRoute();
    return;
  }
  const ahead = new Set(remaining().map(stopKey));
  for (const s of stops.slice(0, RUN_BURST)) {
    if (!ahead.has(stopKey(s))) { batch.waiting.delete(stopKey(s)); continue; } // done meanwhile
    d.seq += 1;
    d.pendingStops.set(d.seq, { order_id: s.order_id, event: "picked_up", kind: s.kind, from: s.from_vehicle, run: batch });
    d.socket.send(JSON.stringify({ type: "stop", seq: d.seq, order_id: s.order_id, event: "picked_up" }));
  }
  batch.at = Date.now();
  runSettled(batch); // (all done meanwhile)
  const later = stops.slice(RUN_BURST);
  if (later.length) setTimeout(() => sendRun(batch, later), 1000);
  else setTimeout(() => d.run === batch && renderRoute(), RUN_WAIT_MS + 100); // (answers missing: offered again)
  renderRoute();
}

/** One answer to a tap's stop event. */
function runAnswered(sent, acked) {
  sent.run.waiting.delete(stopKey(sent));
  if (acked) sent.run.acked += 1;
  runSettled(sent.run);
}

/** The tap is over once every stop event of it is answered (or not sent): one toast for the acks. */
function runSettled(batch) {
  if (batch.waiting.size || d.run !== batch) return;
  d.run = null;
  if (batch.acked) toast(`${batch.acked} ${batch.acked === 1 ? "parcel" : "parcels"} ${batch.kind === "transfer" ? "collected" : "picked up"}`);
}

for (const b of $$("#actions button")) {
  b.addEventListener("click", () => {
    if (b.dataset.event === "failed") return openSheet("#fail-form");
    if (b.dataset.event === "delivered") return openSheet("#proof-form");
    report(b.dataset.event);
  });
}
$("#fail-cancel").addEventListener("click", closeSheets);
$("#fail-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const reason = new FormData(e.target).get("reason");
  whileBusy($("#fail-form [type=submit]"), () => reportWithProofs("failed", [proofs.doorPhoto], reason));
});
$("#proof-cancel").addEventListener("click", closeSheets);
$("#proof-form").addEventListener("submit", (e) => {
  e.preventDefault();
  whileBusy($("#proof-deliver"), async () => {
    if (proofs.signed && !proofs.signature) proofs.signature = { kind: "signature", blob: await canvasBlob(pad, "image/png"), id: null };
    return reportWithProofs("delivered", [proofs.photo, proofs.signature]);
  });
});

/** Run ``send`` with ``button`` disabled (no second report while uploading); close the forms
 * once the stop is sent. */
async function whileBusy(button, send) {
  button.disabled = true;
  try {
    if (await send()) closeSheets();
  } finally {
    button.disabled = false;
  }
}

// ---------- proof of delivery ----------
// Photos and the signature are uploaded first (POST /orders/{id}/proofs with the driver token);
// the stop event then names their ids. An upload refused or lost leaves the stop unreported, so
// the driver can try again; what was uploaded already is not sent twice.
const PHOTO_MAX_PX = 1600; // the long side: a phone's 12 MP photo becomes a few hundred KB
const PHOTO_QUALITY = 0.8;
const PROOF_MAX_BYTES = 1024 * 1024; // FLEET_PROOF_MAX_BYTES's default
// The next stop's proofs so far: photo, doorPhoto (the failure form's), signature are
// {kind, blob, id} (id once uploaded); signed: something is drawn on the pad.
const proofs = { orderId: null, photo: null, doorPhoto: null, signature: null, signed: false };
d.proofs = proofs;

function openSheet(form) {
  const next = remaining()[0];
  if (!next) return;
  if (next.order_id !== proofs.orderId) resetProofs(next.order_id);
  for (const f of ["#fail-form", "#proof-form"]) $(f).classList.toggle("hidden", f !== form);
  if (form === "#proof-form") fitSignature();
}

function closeSheets() {
  $("#fail-form").classList.add("hidden");
  $("#proof-form").classList.add("hidden");
}

function resetProofs(orderId) {
  proofs.orderId = orderId;
  proofs.photo = proofs.doorPhoto = null;
  for (const preview of [$("#proof-photo-preview"), $("#door-photo-preview")]) showPreview(preview, null);
  clearSignature();
}

function showPreview(img, blob) {
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  if (blob) img.src = URL.createObjectURL(blob);
  else img.removeAttribute("src");
  img.classList.toggle("hidden", !blob);
}

const canvasBlob = (canvas, type, quality) => new Promise((resolve, reject) =>
  canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("the image could not be made"))), type, quality));

/** A picked photo as a JPEG at most PHOTO_MAX_PX on its long side, well under the upload limit. */
async function shrinkPhoto(file) {
  const url = URL.createObjectURL(file);
  try {
    const img = new Image();
    img.src = url;
    await img.decode(); // turned upright by its EXIF orientation, as shown
    let scale = Math.min(1, PHOTO_MAX_PX / Math.max(img.naturalWidth, img.naturalHeight));
    let quality = PHOTO_QUALITY;
    for (;;) {
      const canvas = el("canvas", { width: Math.max(1, Math.round(img.naturalWidth * scale)), height: Math.max(1, Math.round(img.naturalHeight * scale)) });
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = "#fff"; // a transparent image: white, not black
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
      const blob = await canvasBlob(canvas, "image/jpeg", quality);
      if (blob.size <= PROOF_MAX_BYTES * 0.9 || canvas.width < 400) return blob;
      scale *= 0.75; // a photo full of detail: smaller, a little more compressed
      quality = Math.max(0.6, quality - 0.1);
    }
  } finally {
    URL.revokeObjectURL(url);
  }
}

function photoPicker(input, button, preview, slot) {
  button.addEventListener("click", () => input.click());
  input.addEventListener("change", async () => {
    const file = input.files[0];
    input.value = ""; // the same photo may be picked again
    if (!file) return;
    button.disabled = true;
    try {
      const blob = await shrinkPhoto(file);
      proofs[slot] = { kind: "photo", blob, id: null };
      showPreview(preview, blob);
    } catch {
      toast("This photo cannot be read: take another one.", { bad: true });
    } finally {
      button.disabled = false;
    }
  });
}
photoPicker($("#proof-photo"), $("#proof-photo-take"), $("#proof-photo-preview"), "photo");
photoPicker($("#door-photo"), $("#door-photo-take"), $("#door-photo-preview"), "doorPhoto");

// The signature pad: drawn with a finger, a pen or the mouse (pointer events), sent as a PNG.
const pad = $("#signature");
const ink = pad.getContext("2d");
let pen = null; // the last point of the line being drawn

function fitSignature() {
  const ratio = Math.min(2, window.devicePixelRatio || 1); // sharp, but not a 3× image
  const width = Math.round(pad.clientWidth * ratio);
  const height = Math.round(pad.clientHeight * ratio);
  if (pad.width === width && pad.height === height) return;
  pad.width = width; // which clears it
  pad.height = height;
  clearSignature();
}

function clearSignature() {
  ink.fillStyle = "#fff";
  ink.fillRect(0, 0, pad.width, pad.height);
  proofs.signed = false;
  proofs.signature = null;
}
$("#signature-clear").addEventListener("click", clearSignature);

function padPoint(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * (pad.width / r.width), (e.clientY - r.top) * (pad.height / r.height)];
}

function drawLine(from, to) {
  ink.strokeStyle = "#0f172a";
  ink.lineWidth = 2.5 * (pad.width / pad.clientWidth);
  ink.lineCap = ink.lineJoin = "round";
  ink.beginPath();
  ink.moveTo(...from);
  ink.lineTo(...to);
  ink.stroke();
  proofs.signed = true;
  proofs.signature = null; // changed: a signature uploaded before is not this one
}

pad.addEventListener("pointerdown", (e) => {
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  pen = padPoint(e);
  drawLine(pen, pen);
});
pad.addEventListener("pointermove", (e) => {
  if (!pen) return;
  const moves = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
  for (const m of moves.length ? moves : [e]) {
    const p = padPoint(m);
    drawLine(pen, p);
    pen = p;
  }
});
for (const type of ["pointerup", "pointercancel"]) pad.addEventListener(type, () => { pen = null; });

async function upload(orderId, item) {
  if (item.id) return item.id;
  let res;
  try {
    res = await fetch(`/orders/${encodeURIComponent(orderId)}/proofs?kind=${item.kind}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${d.token}`, "Content-Type": item.blob.type, Accept: "application/json" },
      body: item.blob,
    });
  } catch {
    throw new Error("no connection");
  }
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data);
  item.id = data.id;
  return item.id;
}

/** Upload the proofs given (those not uploaded yet), then report the stop naming them; false,
 * said in a toast, when an upload or the report failed: nothing is reported then. */
async function reportWithProofs(event, items, reason) {
  const orderId = proofs.orderId;
  if (!online()) { toast("Offline: try again when the connection is back.", { bad: true }); return false; }
  const ids = [];
  for (const item of items.filter(Boolean)) {
    try {
      ids.push(await upload(orderId, item));
    } catch (err) {
      toast(`The ${item.kind} was not sent: ${escapeHtml(err.message)}. Nothing is reported yet: try again.`, { bad: true });
      return false;
    }
  }
  return report(event, { reason, proof: ids.join(","), orderId });
}

window.addEventListener("online", () => { if (!d.socket || d.socket.readyState > 1) connect(); });
signIn();

// The driver's page: streams the phone's position over /ws/driver (buffered while offline),
// shows the route the server pushes, and reports what happened at each stop.
/* global L */
import { $, $$, el, wsUrl, toast, escapeHtml, clock, inMinutes, loadConfig, createMap, divIcon, tokenFromFragment } from "./common.js";

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
  done: new Set(), // "order_id:kind" reported done from this phone
  me: null,
  acked: 0,
  pendingStops: new Map(), // seq → {order_id, event}
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
    if (e.code === 4001) {
      conn.textContent = "token refused";
      conn.className = "badge bad";
      localStorage.removeItem(TOKEN_KEY);
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
    if (!d.route || msg.version >= d.route.version || msg.planned_at >= d.route.planned_at) d.route = msg;
    renderRoute();
  } else if (msg.type === "stop_ack") {
    const sent = d.pendingStops.get(msg.seq);
    d.pendingStops.delete(msg.seq);
    if (sent) {
      if (sent.event === "picked_up") d.done.add(`${sent.order_id}:pickup`);
      if (sent.event === "delivered" || sent.event === "failed") d.done.add(`${sent.order_id}:dropoff`);
    }
    toast(`${escapeHtml(msg.order_id)}: ${escapeHtml(msg.status.replace("_", " "))}`);
    renderRoute();
  } else if (msg.type === "error") {
    if (d.pendingStops.has(msg.seq)) {
      d.pendingStops.delete(msg.seq);
      toast(`Not recorded: ${escapeHtml(msg.message)}`, { bad: true });
    } else if (d.inflight && msg.seq === d.inflight.seq) {
      if (msg.code === "invalid_message" || msg.code === "batch_too_large" || msg.code === "empty_batch") d.queue.splice(0, d.inflight.count);
      d.inflight = null;
      setTimeout(flush, 1000);
    }
  }
}

// ---------- route and stop reports ----------
function remaining() {
  return (d.route ? d.route.stops : []).filter((s) => !d.done.has(`${s.order_id}:${s.kind}`));
}

function renderRoute() {
  $("#vehicle-name").textContent = d.route ? d.route.vehicle_id : "Driver";
  const stops = remaining();
  const next = stops[0];
  for (const b of $$("#actions button")) b.disabled = !next;
  if (next) {
    $("#next-title").textContent = `${next.kind === "pickup" ? "Pick up" : "Deliver"} ${next.order_id}`;
    $("#next-sub").textContent = `ETA ${clock(next.eta)} · ${inMinutes(next.eta)}${next.late_risk || next.late_s > 0 ? " · running late" : ""}`;
  } else {
    $("#next-title").textContent = "No stops left";
    $("#next-sub").textContent = d.route ? "All done for now. New stops appear here by themselves." : "Waiting for the dispatcher to plan your route.";
  }
  $("#stops").replaceChildren(...stops.map((s, i) =>
    el("li", { class: `stop ${s.kind}${s.late_risk || s.late_s > 0 ? " late" : ""}` },
      el("span", { class: "n" }, String(i + 1)),
      el("div", {}, el("div", { style: "font-weight:600" }, `${s.kind === "pickup" ? "Pick up" : "Deliver"} ${s.order_id}`)),
      el("div", { class: "eta" }, clock(s.eta)))));
  stopLayer.clearLayers();
  const line = [];
  if (d.me) line.push([d.me.lat, d.me.lon]);
  stops.forEach((s, i) => {
    line.push([s.lat, s.lon]);
    L.marker([s.lat, s.lon], { icon: divIcon(`<div class="stop-pin ${s.kind}">${i + 1}</div>`, "", [22, 22]), keyboard: false }).addTo(stopLayer);
  });
  if (line.length > 1) L.polyline(line, { color: "#2563eb", weight: 3, dashArray: "6 6", interactive: false }).addTo(stopLayer);
  const shown = d.route ? `${d.route.version}:${stops.length}` : "";
  if (line.length > 1 && shown !== d.fittedTo) {
    map.fitBounds(line.slice(0, 2), { padding: [40, 40], maxZoom: 16 }); // me and the next stop
    d.fittedTo = shown;
  }
}

function report(event, reason) {
  const next = remaining()[0];
  const s = d.socket;
  if (!next || !s || s.readyState !== WebSocket.OPEN) { toast("Offline: try again when the connection is back.", { bad: true }); return; }
  d.seq += 1;
  const msg = { type: "stop", seq: d.seq, order_id: next.order_id, event };
  if (reason) msg.reason = reason;
  d.pendingStops.set(d.seq, { order_id: next.order_id, event });
  s.send(JSON.stringify(msg));
}

for (const b of $$("#actions button")) {
  b.addEventListener("click", () => {
    if (b.dataset.event === "failed") { $("#fail-form").classList.remove("hidden"); return; }
    report(b.dataset.event);
  });
}
$("#fail-cancel").addEventListener("click", () => $("#fail-form").classList.add("hidden"));
$("#fail-form").addEventListener("submit", (e) => {
  e.preventDefault();
  report("failed", new FormData(e.target).get("reason"));
  $("#fail-form").classList.add("hidden");
});

window.addEventListener("online", () => { if (!d.socket || d.socket.readyState > 1) connect(); });
signIn();

// The dispatcher console: live vehicles, routes, orders, traffic events, alerts and KPIs.
/* global L */
import { $, $$, el, api, ApiError, wsUrl, toast, escapeHtml, clock, clockDate, ago, inMinutes, pct, loadConfig, serverNow, createMap, divIcon, tokenFromFragment } from "./common.js";
import { VehicleLayer, STATUS_COLOURS } from "./vehicle-layer.js";

const TOKEN_KEY = "fleet.dispatcher-token";
const state = {
  token: null,
  fleet: new Map(), // id → {id, name, status, connection, route, position}
  orders: [],
  orderFilter: "open",
  vehicleFilter: "all",
  alerts: [],
  traffic: [],
  selected: null,
  mode: null, // "order" | "traffic" | "depot" | "dropoff" (a held order's new place) | null
  depotFor: null, // in "depot" mode: the vehicle whose depot the next map click sets
  draft: [],
  density: false,
  socket: null,
  frames: 0,
  positionsReceived: 0,
  bytesReceived: 0,
  opened: false, // the console socket has been open once (a later open reloads: see resync)
  resyncs: 0, // reloads after missed events
  driverLink: null, // {id, url}: the new driver link made for a vehicle, shown in its detail
  order: null, // the order whose detail is open: {id, data, proofs, urls: proof id → object URL, edit: its open edit form, fix: its open "correct the address" form {node, place}, from: the tab it closes back to}
  search: { shown: null, asked: 0, answered: 0 }, // the order search: the query whose answer is shown, how many were asked, how many answers came back (stale ones too)
  report: null, // the selected vehicle's day: {id, from, data, at, showParts, loading, error, timer}
  hoursForm: null, // the open working-hours form: {id, node}
  zone: "UTC", // the fleet's time zone, which working hours are in (/web/config `time_zone`)
};
window.fleetConsole = state; // for the browser tests and the curious

// ---------- sign-in ----------
function signIn() {
  const fromUrl = tokenFromFragment();
  if (fromUrl) sessionStorage.setItem(TOKEN_KEY, fromUrl);
  state.token = sessionStorage.getItem(TOKEN_KEY);
  if (state.token) return start();
  $("#login").classList.remove("hidden");
  $("#login-token").focus();
}
$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const token = $("#login-token").value.trim();
  try {
    await api("/web/kpis", { token });
  } catch (err) {
    $("#login-error").textContent = err.status === 401 || err.status === 403 ? "This token may not use the console." : `Cannot reach the server (${err.message}).`;
    $("#login-error").classList.remove("hidden");
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("#login").classList.add("hidden");
  state.token = token;
  start();
});
$("#signout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});

/** A refused token (401) is forgotten, and the page reloads to the sign-in. */
function forgetRefusedToken(err) {
  if (err instanceof ApiError && err.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  }
}

const call = (path, opts = {}) =>
  api(path, { ...opts, token: state.token }).catch((err) => {
    forgetRefusedToken(err);
    throw err;
  });

// ---------- map ----------
let map, vehicles, routeLayer, orderLayer, trafficLayer, draftLayer, densityLayer, dayStopsLayer, depotLayer, fixLayer, ordersRenderer;

function colourOf(v) {
  const f = state.fleet.get(v.id);
  if (!f) return STATUS_COLOURS.idle;
  if (f.status && f.status !== "available") return STATUS_COLOURS.service;
  if (f.connection === "offline") return STATUS_COLOURS.offline;
  if (f.connection === "stale") return STATUS_COLOURS.stale;
  return f.route && f.route.stops && f.route.stops.length ? STATUS_COLOURS.busy : STATUS_COLOURS.idle;
}
const kindOf = (f) => {
  if (f.status && f.status !== "available") return "service";
  if (f.connection === "offline" || f.connection === "stale") return "stale";
  if (f.route && f.route.stops && f.route.stops.length) return "busy";
  const hours = shiftAt(f.shift, serverNow()); // outside its working hours: not idle capacity
  return hours && !hours.on ? "service" : "idle";
};

async function start() {
  const config = await loadConfig();
  setFleetZone(config.time_zone);
  $("#export-day").value = dayIn(serverNow(), state.zone);
  map = createMap($("#map"), config, { zoomControl: true });
  const b = config.bbox;
  if (b) map.fitBounds([[b[1], b[0]], [b[3], b[2]]], { padding: [20, 20], animate: false });
  else map.setView([60.17, 24.94], 13, { animate: false });
  if (b && map.getZoom() < 13) map.setZoom(13, { animate: false });
  map.createPane("daystops").style.zIndex = 430;
  map.createPane("orders").style.zIndex = 420;
  map.createPane("routes").style.zIndex = 410;
  map.createPane("traffic").style.zIndex = 400;
  map.createPane("density").style.zIndex = 390;
  ordersRenderer = L.canvas({ pane: "orders", padding: 0.2 });
  densityLayer = L.layerGroup();
  trafficLayer = L.layerGroup().addTo(map);
  routeLayer = L.layerGroup().addTo(map);
  orderLayer = L.layerGroup().addTo(map);
  draftLayer = L.layerGroup().addTo(map);
  dayStopsLayer = L.layerGroup().addTo(map);
  depotLayer = L.layerGroup().addTo(map);
  fixLayer = L.layerGroup().addTo(map);
  vehicles = new VehicleLayer({ colourOf }).addTo(map);
  state.map = map;
  state.layer = vehicles;
  state.dayStopsLayer = dayStopsLayer;
  state.depotLayer = depotLayer;
  state.fixLayer = fixLayer;
  map.on("click", onMapClick);
  map.on("moveend", () => {
    clearTimeout(state.viewportTimer);
    state.viewportTimer = setTimeout(sendViewport, 120);
    if (state.density) refreshDensity();
  });
  measureFrames();
  await loadAll();
  const placed = [...state.fleet.values()].filter((f) => f.position).map((f) => [f.position.lat, f.position.lon]);
  if (placed.length) map.fitBounds(placed, { padding: [40, 40], maxZoom: 15, animate: false });
  connect();
  setInterval(loadKpis, 10000);
  setInterval(() => { if (!document.hidden) { renderVehicles(); refreshHoursLine(); } }, 5000);
  setInterval(() => { if (state.density) refreshDensity(); }, 3000);
}

function viewportBbox() {
  const b = map.getBounds().pad(0.1);
  const clampLat = (x) => Math.max(-90, Math.min(90, x));
  const clampLon = (x) => Math.max(-180, Math.min(180, x));
  return [clampLon(b.getWest()), clampLat(b.getSouth()), clampLon(b.getEast()), clampLat(b.getNorth())];
}

function sendViewport() {
  const bbox = viewportBbox();
  state.bbox = bbox;
  // positions outside the new viewport will not be updated: forget them
  for (const [id, v] of vehicles.vehicles) {
    if (v.lon < bbox[0] || v.lon > bbox[2] || v.lat < bbox[1] || v.lat > bbox[3]) vehicles.vehicles.delete(id);
  }
  vehicles.schedule();
  if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify({ type: "viewport", bbox }));
}

// ---------- the console socket ----------
function connect() {
  const bbox = viewportBbox();
  state.bbox = bbox;
  const socket = new WebSocket(wsUrl(`/ws/console?token=${encodeURIComponent(state.token)}&bbox=${bbox.map((v) => v.toFixed(6)).join(",")}`));
  state.socket = socket;
  const conn = $("#conn");
  socket.onopen = () => {
    conn.textContent = "live";
    conn.className = "badge ok conn";
    state.retry = 0;
    // Events sent while the socket was away are gone: what they would have changed is reloaded.
    if (state.opened) resync();
    state.opened = true;
  };
  socket.onclose = (e) => {
    conn.textContent = e.code === 4001 ? "token refused" : "reconnecting";
    conn.className = "badge warn conn";
    if (e.code === 4001) { sessionStorage.removeItem(TOKEN_KEY); return; }
    state.retry = Math.min((state.retry || 0) + 1, 6);
    setTimeout(connect, 500 * 2 ** state.retry);
  };
  socket.onmessage = (e) => {
    state.bytesReceived += e.data.length;
    const msg = JSON.parse(e.data);
    if (msg.type === "positions") onPositions(msg.vehicles);
    else if (msg.type === "event") onEvent(msg.event);
    else if (msg.type === "resync") resync(); // the server dropped events we were behind on
  };
}

// Everything the events keep current, from the REST API.
function loadAll() {
  return Promise.all([loadFleet(), loadOrders(), loadTraffic(), loadAlerts(), loadKpis()]);
}

function resync() {
  debounce("resync", () => {
    state.resyncs++;
    loadAll().catch((err) => toast(`Could not reload the console's data: ${escapeHtml(err.message)}`, { bad: true }));
  }, 300);
}

function onPositions(list) {
  state.frames++;
  state.positionsReceived += list.length;
  // A frame sent before the last viewport change may still hold vehicles now out of view.
  const [w, s, e, n] = state.bbox;
  list = list.filter((p) => p.lon >= w && p.lon <= e && p.lat >= s && p.lat <= n);
  vehicles.update(list);
  let unknown = false;
  for (const p of list) {
    const f = state.fleet.get(p.id);
    if (f) f.position = p;
    else unknown = true;
  }
  if (unknown) debounce("fleet", loadFleet, 1500);
  if (state.selected && list.some((p) => p.id === state.selected)) debounce("detail-age", renderDetail, 1000);
}

function onEvent(ev) {
  switch (ev.type) {
    case "status": {
      const f = state.fleet.get(ev.vehicle_id);
      if (f) { f.connection = ev.status; vehicles.schedule(); debounce("vehicles", renderVehicles, 500); debounce("alerts", renderAlerts, 500); }
      break;
    }
    case "route": {
      const f = state.fleet.get(ev.vehicle_id);
      if (f) f.route = ev;
      vehicles.schedule();
      debounce("orders", loadOrders, 400);
      debounce("vehicles", renderVehicles, 500);
      if (state.selected === ev.vehicle_id) selectVehicle(ev.vehicle_id, { pan: false, show: false });
      break;
    }
    case "eta": {
      const f = state.fleet.get(ev.vehicle_id);
      if (f && f.route) {
        f.route.stops = ev.stops;
        f.route.late_risk = ev.late_risk;
        if ("end" in ev) f.route.end = ev.end; // back at its depot by then
      }
      debounce("orders-render", renderOrders, 500);
      if (state.selected === ev.vehicle_id) renderDetail();
      break;
    }
    case "order":
      debounce("orders", loadOrders, 400);
      debounce("kpis", loadKpis, 1500);
      if (state.order && state.order.id === ev.order_id) debounce("order-detail", loadOrderDetail, 300);
      break;
    case "order_proof":
      if (state.order && state.order.id === ev.order_id) debounce("order-proofs", loadProofs, 200);
      break;
    case "vehicle": {
      if (ev.removed) { // DELETE /vehicles/{id}: gone from the registry, the map and the lists
        state.fleet.delete(ev.vehicle_id);
        vehicles.remove(ev.vehicle_id);
        if (state.selected === ev.vehicle_id) closeDetail();
        debounce("vehicles", renderVehicles, 300);
        break;
      }
      const f = state.fleet.get(ev.vehicle_id);
      if (!f) { // registered since the fleet was read (ev.added; one reload for an import's many)
        debounce("fleet", () => loadFleet().catch(() => {}), 500);
        break;
      }
      f.status = ev.status;
      if ("shift" in ev) f.shift = ev.shift; // working hours: {start, end} or null
      if ("depot" in ev) f.depot = ev.depot; // where its routes end: {lat, lon} or null
      vehicles.schedule();
      debounce("vehicles", renderVehicles, 300);
      if (state.selected === ev.vehicle_id) renderDetail();
      break;
    }
    case "traffic":
      debounce("traffic", loadTraffic, 300);
      break;
    case "alert":
      state.alerts.unshift(ev);
      debounce("alerts", renderAlerts, 300);
      break;
    default:
      break;
  }
}

const timers = {};
function debounce(key, fn, ms) {
  clearTimeout(timers[key]);
  timers[key] = setTimeout(fn, ms);
}

// ---------- frame time (shown bottom right; read by the browser tests) ----------
function measureFrames() {
  let last = performance.now();
  const recent = [];
  state.frameDeltas = recent;
  function tick(now) {
    recent.push(now - last);
    if (recent.length > 600) recent.shift();
    last = now;
    requestAnimationFrame(tick);
  }
  requestAnimationFrame(tick);
  setInterval(() => {
    const tail = recent.slice(-60);
    if (tail.length) $("#fps").textContent = `${(tail.reduce((a, b) => a + b, 0) / tail.length).toFixed(1)} ms/frame · ${vehicles.vehicles.size} in view`;
  }, 1000);
}

// ---------- data ----------
async function loadFleet() {
  const data = await call("/web/fleet");
  const seen = new Set();
  for (const v of data.vehicles) {
    seen.add(v.id);
    state.fleet.set(v.id, v);
  }
  for (const id of [...state.fleet.keys()]) if (!seen.has(id)) state.fleet.delete(id);
  for (const id of [...vehicles.vehicles.keys()]) if (!seen.has(id)) vehicles.remove(id); // removed
  vehicles.schedule();
  renderVehicles();
  renderOrders(); // their vehicles, stops and ETAs come from the routes (the orders may be in first)
  renderAlerts();
}

const OPEN_LIMIT = 1000; // the open orders the list loads

async function loadOrders() {
  const f = state.orderFilter;
  const q = BY_STATUS.includes(f) ? `status=${f}&limit=300` : `open=true&limit=${OPEN_LIMIT}`;
  state.orders = await call(`/orders?${q}`);
  renderOrders();
  renderAlerts();
}

async function loadTraffic() {
  state.traffic = await call("/traffic-events");
  renderTraffic();
}

async function loadAlerts() {
  state.alerts = await call("/alerts?limit=100");
  renderAlerts();
}

async function loadKpis() {
  const k = await call("/web/kpis").catch(() => null);
  if (!k) return;
  $("#kpi-ontime").textContent = k.delivered ? pct(k.on_time_rate) : "—";
  $("#kpi-open").textContent = k.open_orders;
  $("#kpi-open").title = `${k.unassigned} unassigned`;
  $("#kpi-active").textContent = `${k.active_vehicles}/${k.vehicles}`;
  const err = k.eta_error_s;
  $("#kpi-etaerr").textContent = err === null ? "—" : err < 90 ? `${Math.round(err)} s` : `${Math.round(err / 60)} min`;
  $("#kpi-etaerr").title = `Delivery time against the ETA promised at confirmation (${k.eta_error_orders} deliveries)`;
  $("#kpi-util").textContent = pct(k.utilisation);
  const er = k.error_rate;
  const over = er.rate !== null && er.rate > er.limit;
  $("#kpi-errors").textContent = er.rate === null ? "—" : pct(er.rate);
  $("#kpi-errors").classList.toggle("bad", over);
  const first = k.first_attempt_rate === null ? "" : ` · ${pct(k.first_attempt_rate)} of the deliveries made at the first attempt`;
  $("#kpi-errors").title = `${er.failed} of ${er.attempts} drop-off attempts failed in the last ${Math.round(er.window_s / 3600)} h (alert above ${pct(er.limit)})${first}`;
  const t = k.node_times_s;
  const span = (s) => (s === null ? "—" : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);
  $("#kpi-ontime").title = `${k.delivered} delivered · mean processing ${span(t.processing)}, to departure ${span(t.departure)}, on the road ${span(t.delivery)}, lead time ${span(t.lead_time)}`;
  $("#kpi-active").title = k.orders_per_vehicle_day === null ? "" : `${k.orders_per_vehicle_day.toFixed(1)} orders per vehicle in the last 24 h`;
  const r = k.ratings; // the customers' own, from their tracking pages
  $("#kpi-rating").textContent = r.average === null ? "—" : `${r.average.toFixed(1)} ★`;
  $("#kpi-rating").title = r.count ? `${r.count} rating${r.count === 1 ? "" : "s"}, ${pct(r.share)} of deliveries` : "No delivery rated yet";
}

/** order id → {vehicle, kind, eta, late, index} from every route the console knows: the stop
 * where the order's parcel is left (its drop-off, or for an order going back to its sender, the
 * return). */
function stopIndex() {
  const out = new Map();
  for (const f of state.fleet.values()) {
    const stops = (f.route && f.route.stops) || [];
    const risky = new Set(f.route && f.route.late_risk ? f.route.late_risk : []);
    stops.forEach((s, i) => {
      if (s.kind !== "dropoff" && s.kind !== "return") return;
      out.set(s.order_id, { vehicle: f.id, kind: s.kind, lat: s.lat, lon: s.lon, eta: s.eta, late: !!(s.late_risk || s.late_s > 0 || risky.has(s.order_id)), index: i + 1 });
    });
  }
  return out;
}

// ---------- tabs ----------
for (const tab of $$(".tab")) {
  tab.addEventListener("click", () => showTab(tab.dataset.tab));
}
function showTab(name) {
  for (const t of $$(".tab")) t.classList.toggle("active", t.dataset.tab === name);
  for (const p of $$(".pane")) p.classList.toggle("hidden", p.id !== `pane-${name}`);
  state.tab = name;
}

// ---------- vehicles ----------
$("#vehicle-search").addEventListener("input", () => debounce("vehicles", renderVehicles, 150));
for (const chip of $$("#vehicle-filters .chip")) {
  chip.addEventListener("click", () => {
    state.vehicleFilter = chip.dataset.f;
    for (const c of $$("#vehicle-filters .chip")) c.classList.toggle("active", c === chip);
    renderVehicles();
  });
}
const CONN_BADGE = { online: "ok", stale: "warn", offline: "idle", unknown: "idle" };
const KIND_LABEL = { busy: ["busy", "On route"], idle: ["ok", "Idle"], stale: ["warn", "Stale"], service: ["bad", "Out of service"] };

function renderVehicles() {
  const ids = [...state.fleet.values()].filter((f) => f.status === "available").map((f) => f.id);
  if (ids.join() !== state.datalistIds) {
    state.datalistIds = ids.join();
    $("#vehicle-ids").replaceChildren(...ids.map((id) => el("option", { value: id })));
  }
  const list = $("#vehicle-list");
  const q = $("#vehicle-search").value.trim().toLowerCase();
  const all = [...state.fleet.values()];
  $("#count-vehicles").textContent = all.length;
  const shown = all.filter((f) => (state.vehicleFilter === "all" || kindOf(f) === state.vehicleFilter) && (!q || f.id.toLowerCase().includes(q) || (f.name || "").toLowerCase().includes(q)));
  const limit = 150;
  const now = serverNow();
  list.replaceChildren(
    ...shown.slice(0, limit).map((f) => {
      const [cls, label] = KIND_LABEL[kindOf(f)];
      const stops = (f.route && f.route.stops && f.route.stops.length) || 0;
      const outOfService = f.status !== "available";
      const hours = outOfService ? null : shiftAt(f.shift, now);
      return el("li", { class: "item" + (state.selected === f.id ? " selected" : ""), dataset: { vehicle: f.id }, onclick: () => selectVehicle(f.id) },
        el("div", { class: "top" }, el("span", { class: "title" }, f.name || f.id), el("span", { class: `badge ${cls}` }, outOfService ? f.status.replace("_", " ") : label)),
        el("div", { class: "sub" },
          el("span", {}, `${stops} stop${stops === 1 ? "" : "s"}`),
          el("span", {}, `ping ${f.position ? ago(f.position.ts) : "never"}`),
          el("span", { class: `badge ${CONN_BADGE[f.connection] || "idle"}` }, f.connection),
          hours && !hours.on
            ? el("span", { class: "shift-hint", title: `Outside its working hours (${f.shift.start}–${f.shift.end}, ${state.zone}): the planner gives it no new work until ${f.shift.start}` }, `off shift until ${f.shift.start}`)
            : null),
        el("div", { class: "row" },
          el("button", { class: "btn small", onclick: (e) => { e.stopPropagation(); setVehicleStatus(f.id, outOfService ? "available" : "maintenance"); } }, outOfService ? "Set available" : "Set maintenance")));
    }),
    ...(shown.length > limit ? [el("li", { class: "empty" }, `and ${shown.length - limit} more — search to narrow`)] : []),
    ...(shown.length ? [] : [el("li", { class: "empty" }, all.length ? "No vehicle matches." : "No vehicle registered yet.")])
  );
}

// A lost phone, a driver who left: the vehicle gets a new token, and the link with the old one
// stops working at once (a phone using it is disconnected). The link is shown here once.
async function newDriverLink(id) {
  if (!confirm(`Give ${id} a new driver link? The link it has now stops working at once, and a phone using it is disconnected.`)) return;
  try {
    const made = await call(`/vehicles/${encodeURIComponent(id)}/token`, { method: "POST" });
    state.driverLink = { id, url: driverUrl(made.token) };
    if (state.selected === id) renderDetail();
    toast(`New driver link for ${escapeHtml(id)}: send it to the driver. The old link no longer works.`);
  } catch (err) {
    toast(`Could not make a new link for ${escapeHtml(id)}: ${escapeHtml(err.message)}`, { bad: true });
  }
}

async function copyDriverLink() {
  try {
    await navigator.clipboard.writeText(state.driverLink.url);
    toast("Driver link copied.");
  } catch {
    $("#driver-link").select(); // no clipboard access (plain http): selected for Ctrl-C
  }
}

// ---------- vehicles from a CSV file (POST /vehicles/import) ----------
// Every row is checked before any vehicle is registered: a file with errors registers none,
// and its errors are listed by row and column. The new vehicles' driver links are shown once
// (only the tokens' hashes are stored), so their box stays until dismissed.
const IMPORT_ERRORS_SHOWN = 20;
const driverUrl = (token) => `${location.origin}/driver#token=${encodeURIComponent(token)}`;

async function importVehicles(file) {
  const input = $("#vehicle-import-file");
  input.disabled = true;
  try {
    const res = await fetch("/vehicles/import", {
      method: "POST",
      headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "text/csv", Accept: "application/json" },
      body: await file.text(),
    });
    const data = await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, data);
    const n = data.created;
    showImported(data.vehicles);
    toast(`${n} vehicle${n === 1 ? "" : "s"} registered`);
    loadFleet().catch((e) => toast(`Could not reload the fleet: ${escapeHtml(e.message)}`, { bad: true }));
  } catch (err) {
    forgetRefusedToken(err);
    const details = err instanceof ApiError ? err.body?.error?.details : null;
    if (err.status === 400 && Array.isArray(details?.errors)) {
      showImportErrors(err.message, details.errors, details.count ?? details.errors.length);
      return;
    }
    // A vehicle registered by someone else meanwhile stops the import: the ones before it are
    // registered, and their links are shown (now or never).
    if (err.status === 409 && Array.isArray(details?.created) && details.created.length) {
      showImported(details.created);
      loadFleet().catch(() => {});
    }
    toast(`Could not import the vehicles: ${escapeHtml(err.message)}`, { bad: true });
  } finally {
    input.disabled = false;
    input.value = ""; // the same file chosen again (corrected) is read again
  }
}

/** The box of the vehicles just registered: [{row, id, token}], each with its driver link. */
function showImported(made) {
  const links = made.map((v) => ({ id: v.id, url: driverUrl(v.token) }));
  const box = $("#vehicle-import");
  box.classList.remove("hidden", "bad");
  box.replaceChildren(
    el("div", {}, el("b", {}, `${links.length} vehicle${links.length === 1 ? "" : "s"} registered.`),
      " Their driver links are shown only here and only once: send each to its driver, or download them now."),
    el("ul", { class: "links", id: "vehicle-import-links" }, ...links.map((l) =>
      el("li", { dataset: { vehicle: l.id } },
        el("span", { class: "mono" }, l.id),
        el("input", { class: "text mono", readonly: true, value: l.url, "aria-label": `Driver link of ${l.id}`, onclick: (e) => e.target.select() })))),
    el("div", { class: "row" },
      el("button", { class: "btn small", id: "vehicle-import-download", onclick: () => saveFile(linksCsv(links), "driver-links.csv") }, "Download driver links (CSV)"),
      el("button", { class: "btn small", id: "vehicle-import-dismiss", onclick: dismissImport }, "Dismiss")));
}

/** A refused file's errors ("Row 3, id: …"), the first IMPORT_ERRORS_SHOWN of `count`. */
function showImportErrors(message, errors, count) {
  const shown = errors.slice(0, IMPORT_ERRORS_SHOWN);
  const box = $("#vehicle-import");
  box.classList.remove("hidden");
  box.classList.add("bad");
  box.replaceChildren(
    el("div", {}, el("b", {}, "The file was not imported: "), message),
    el("ul", { id: "vehicle-import-errors" }, ...shown.map((e) => el("li", {}, `Row ${e.row}, ${e.column}: ${e.message}`)),
      count > shown.length ? el("li", { class: "faint" }, `and ${count - shown.length} more`) : null),
    el("div", { class: "row" }, el("button", { class: "btn small", id: "vehicle-import-dismiss", onclick: dismissImport }, "Dismiss")));
}

function dismissImport() {
  $("#vehicle-import").classList.add("hidden");
  $("#vehicle-import").replaceChildren(); // the links hold tokens: not kept around
}

const csvCell = (s) => (/[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);
const linksCsv = (links) =>
  new Blob([["id,driver_link", ...links.map((l) => `${csvCell(l.id)},${csvCell(l.url)}`)].join("\r\n") + "\r\n"], { type: "text/csv" });

$("#vehicle-import-file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (file) importVehicles(file);
});

async function setVehicleStatus(id, status) {
  try {
    const changed = await call(`/vehicles/${encodeURIComponent(id)}`, { method: "PATCH", body: { status } });
    const f = state.fleet.get(id);
    if (f) f.status = changed.status;
    vehicles.schedule();
    renderVehicles();
    if (state.selected === id) renderDetail();
    toast(`${escapeHtml(id)} is now <b>${escapeHtml(status)}</b>; the planner re-plans its orders.`);
  } catch (err) {
    toast(`Could not change ${escapeHtml(id)}: ${escapeHtml(err.message)}`, { bad: true });
  }
}

// ---------- working hours ----------
// A vehicle's shift is daily clock times in the fleet's time zone (FLEET_TIME_ZONE, which
// /web/config tells; UTC if it does not); an end at or before the start runs overnight. Whether
// the vehicle is on shift is counted on the server's clock, as the planner does
// (dispatch/shifts.py: the shift in progress, else the next one).
const DAY_MS = 86_400_000;
const zoneClocks = new Map(); // zone → Intl.DateTimeFormat telling its wall clock

function setFleetZone(name) {
  try {
    wallClock(Date.now(), name || "UTC");
    state.zone = name || "UTC";
  } catch { // a zone this browser does not know
    state.zone = "UTC";
  }
}

/** The wall clock in `zone` at the instant `ms`: {y, mo, d, h, mi, s}. */
function wallClock(ms, zone) {
  let format = zoneClocks.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", { timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric" });
    zoneClocks.set(zone, format);
  }
  const p = Object.fromEntries(format.formatToParts(ms).map(({ type, value }) => [type, Number(value)]));
  return { y: p.year, mo: p.month, d: p.day, h: p.hour % 24, mi: p.minute, s: p.second };
}

/** How far `zone`'s clocks are ahead of UTC at the instant `ms`, in ms. */
function offsetAt(ms, zone) {
  const w = wallClock(ms, zone);
  return Date.UTC(w.y, w.mo - 1, w.d, w.h, w.mi, w.s) - Math.floor(ms / 1000) * 1000;
}

/** The instant at which `zone`'s clocks show a day (days past the month's end roll over) and a
 * time. As Python's zoneinfo: a time shown twice is the first; a time skipped when the clocks go
 * forward takes the offset from before the change. */
function instantAt(y, mo, d, h, mi, zone) {
  const wall = Date.UTC(y, mo - 1, d, h, mi);
  const before = offsetAt(wall - DAY_MS, zone);
  if (offsetAt(wall - before, zone) === before) return wall - before;
  const after = offsetAt(wall + DAY_MS, zone);
  if (offsetAt(wall - after, zone) === after) return wall - after;
  return wall - before;
}

/** The shift in progress at `now`, or the next one: {begins, ends, on} in ms; null without hours. */
function shiftAt(shift, now, zone = state.zone) {
  if (!shift) return null;
  const [sh, sm] = shift.start.split(":").map(Number);
  const [eh, em] = shift.end.split(":").map(Number);
  const overnight = eh * 60 + em <= sh * 60 + sm;
  const today = wallClock(now, zone);
  for (const day of [today.d - 1, today.d, today.d + 1]) {
    const begins = instantAt(today.y, today.mo, day, sh, sm, zone);
    const ends = instantAt(today.y, today.mo, day + (overnight ? 1 : 0), eh, em, zone);
    if (ends > now) return { begins, ends, on: begins <= now };
  }
  return null; // not reached: tomorrow's shift ends after now
}

/** "08:00–16:30 · on shift, ends in 2 h 10 min", "08:00–16:30 · off shift until 08:00", "Any time". */
function hoursText(shift, now = serverNow()) {
  const at = shiftAt(shift, now);
  if (!at) return "Any time";
  const span = `${shift.start}–${shift.end}`;
  return at.on ? `${span} · on shift, ends ${inMinutes(at.ends, now)}` : `${span} · off shift until ${shift.start}`;
}

/** The detail's hours line, counted again (between re-renders, time passes). */
function refreshHoursLine() {
  const line = $("#detail-hours");
  const f = state.selected && state.fleet.get(state.selected);
  if (line && f) line.textContent = hoursText(f.shift);
}

function openHoursForm(id) {
  const f = state.fleet.get(id) || { id };
  const shift = f.shift || { start: "08:00", end: "17:00" };
  const node = el("form", { class: "hours-form", id: "hours-form", onsubmit: (e) => {
      e.preventDefault();
      const form = e.target;
      setVehicleShift(id, { start: form.elements.start.value.slice(0, 5), end: form.elements.end.value.slice(0, 5) });
    } },
    el("div", { class: "grid2" },
      el("label", { class: "field" }, "Starts", el("input", { class: "text", type: "time", name: "start", value: shift.start, required: true })),
      el("label", { class: "field" }, "Ends", el("input", { class: "text", type: "time", name: "end", value: shift.end, required: true }))),
    el("div", { class: "faint", style: "font-size:12px" }, `Every day, ${state.zone} time; an end before the start runs overnight. Off shift, the planner gives it no new work.`),
    el("div", { class: "row" },
      el("button", { class: "btn small primary", type: "submit" }, "Save"),
      el("button", { class: "btn small", type: "button", id: "hours-clear", title: "It may be planned at any time", onclick: () => setVehicleShift(id, null) }, "No hours"),
      el("button", { class: "btn small", type: "button", onclick: closeHoursForm }, "Cancel")));
  state.hoursForm = { id, node };
  renderDetail();
  node.elements.start.focus();
}

function closeHoursForm() {
  state.hoursForm = null;
  renderDetail();
}

async function setVehicleShift(id, shift) {
  try {
    const changed = await call(`/vehicles/${encodeURIComponent(id)}`, { method: "PATCH", body: { shift } });
    const f = state.fleet.get(id);
    if (f) { f.shift = changed.shift || null; f.status = changed.status; }
    if (state.hoursForm && state.hoursForm.id === id) state.hoursForm = null;
    renderVehicles();
    if (state.selected === id) renderDetail();
    toast(shift
      ? `${escapeHtml(id)} works <b>${escapeHtml(shift.start)}–${escapeHtml(shift.end)}</b> (${escapeHtml(state.zone)}) now; the planner re-plans its orders.`
      : `${escapeHtml(id)} has no working hours now: it may be planned at any time.`);
  } catch (err) {
    toast(`Could not change the working hours of ${escapeHtml(id)}: ${escapeHtml(err.message)}`, { bad: true });
  }
}

// ---------- depot ----------
// Where the vehicle's routes end (the planner plans the way back); without one, at the last stop.
// "Set on map" puts the map in "depot" mode: its next click sets the depot (Esc stops).
const depotText = (d) => (d ? `${d.lat.toFixed(5)}, ${d.lon.toFixed(5)}` : "none — routes end at the last stop");
let depotShown = ""; // what depotLayer shows: "id@lat,lon", or "" for nothing

function pickDepot(id) {
  state.depotFor = id;
  setMode("depot"); // a second click on "Set on map" stops, as the tools do
}

function placeDepot(latlng) {
  const id = state.depotFor;
  setMode("depot");
  setVehicleDepot(id, { lat: latlng.lat, lon: latlng.lng });
}

async function setVehicleDepot(id, depot) {
  try {
    const changed = await call(`/vehicles/${encodeURIComponent(id)}`, { method: "PATCH", body: { depot } });
    const f = state.fleet.get(id);
    if (f) { f.depot = changed.depot || null; f.status = changed.status; }
    renderVehicles();
    if (state.selected === id) renderDetail();
    toast(changed.depot
      ? `The routes of ${escapeHtml(id)} end at its depot now (${depotText(changed.depot)}); the planner re-plans its orders.`
      : `${escapeHtml(id)} has no depot now: its routes end at the last stop.`);
  } catch (err) {
    toast(`Could not change the depot of ${escapeHtml(id)}: ${escapeHtml(err.message)}`, { bad: true });
  }
}

/** The selected vehicle's depot on the map (`f` null: none), redrawn only when it changes: the
 * detail re-renders on every ping. */
function drawDepot(f) {
  const d = f ? f.depot : null;
  const key = d ? `${f.id}@${d.lat},${d.lon}` : "";
  if (key === depotShown) return;
  depotShown = key;
  depotLayer.clearLayers();
  if (d) L.marker([d.lat, d.lon], { icon: divIcon('<div class="stop-pin depot">⌂</div>', "", [22, 22]), interactive: false, keyboard: false }).addTo(depotLayer);
}

$("#tool-replan").addEventListener("click", async () => {
  const btn = $("#tool-replan");
  btn.disabled = true;
  try {
    const r = await call("/dispatch/replan", { method: "POST" });
    const dropped = Object.keys(r.dropped || {}).length;
    toast(`Re-optimized in ${r.seconds} s: ${r.assigned} orders on ${r.vehicles} vehicles, ${r.changed_routes.length} routes changed${dropped ? `, ${dropped} unplaceable` : ""}.`);
  } catch (err) {
    toast(`Re-optimize failed: ${escapeHtml(err.message)}`, { bad: true });
  } finally {
    btn.disabled = false;
  }
});

// ---------- vehicle detail ----------
async function selectVehicle(id, { pan = true, show = true } = {}) {
  if (state.driverLink && state.driverLink.id !== id) state.driverLink = null;
  if (state.hoursForm && state.hoursForm.id !== id) state.hoursForm = null;
  if (state.depotFor && state.depotFor !== id) setMode("depot"); // the pick was for another vehicle
  releaseOrder();
  if (!state.report || state.report.id !== id) openReport(id);
  state.selected = id;
  vehicles.selected = id;
  vehicles.schedule();
  if (show) showTab("detail");
  if (pan) {
    const f = state.fleet.get(id);
    const p = vehicles.vehicles.get(id) || (f && f.position);
    if (p && !map.getBounds().contains([p.lat, p.lon])) map.panTo([p.lat, p.lon]);
  }
  renderDetail();
  routeLayer.clearLayers();
  let data = null;
  try {
    data = await call(`/web/routes/${encodeURIComponent(id)}`);
  } catch {
    data = null;
  }
  if (state.selected !== id) return;
  routeLayer.clearLayers();
  if (!data) return;
  const f = state.fleet.get(id);
  if (f) f.route = { ...data.route, late_risk: f.route ? f.route.late_risk : [] };
  const line = data.geometry;
  if (line.length > 1) {
    L.polyline(line, { pane: "routes", color: "#ffffff", weight: 8, opacity: 0.9, interactive: false }).addTo(routeLayer);
    L.polyline(line, { pane: "routes", color: "#2563eb", weight: 4.5, opacity: 0.95, interactive: false }).addTo(routeLayer);
  }
  drawStops(data.route.stops);
  renderDetail();
}

// A route's stops by kind: a return takes a parcel that could not be delivered back to its sender
// (the order's pickup place, or the van's depot); it has no time window. A transfer collects a
// parcel from a van out of service (the stop's from_vehicle), where that van last was.
const STOP_VERB = { pickup: "Pick up", dropoff: "Deliver", return: "Return", transfer: "Collect" };
const stopVerb = (s) => STOP_VERB[s.kind] || "Deliver";

/** What the console says of a stop under its title: its order's window, where a return goes,
 * or which van a transfer collects the parcel from. */
function stopNote(s, o) {
  if (s.kind === "return") return o && o.pickup ? "back to the sender" : "back to the depot";
  if (s.kind === "transfer") return `from ${s.from_vehicle || "a van"} (out of service)`;
  return o ? `window ${clock(Date.parse(o.window.start))}–${clock(Date.parse(o.window.end))}` : "";
}

function drawStops(stops) {
  const orders = new Map(state.orders.map((o) => [o.id, o]));
  stops.forEach((s, i) => {
    const late = s.late_risk || s.late_s > 0;
    const note = stopNote(s, orders.get(s.order_id));
    const icon = divIcon(`<div class="stop-pin ${s.kind}${late ? " late" : ""}">${i + 1}</div>`, "", [22, 22]);
    L.marker([s.lat, s.lon], { icon, pane: "markerPane", keyboard: false })
      .bindPopup(`<b>${i + 1}. ${stopVerb(s)} ${escapeHtml(s.order_id)}</b><br>ETA ${clock(s.eta)}${note ? `<br>${escapeHtml(note.charAt(0).toUpperCase() + note.slice(1))}` : ""}${late ? '<br><span style="color:#dc2626">late risk</span>' : ""}`)
      .addTo(routeLayer);
  });
}

function renderDetail() {
  const pane = $("#pane-detail");
  const id = state.selected;
  if (!id) return;
  const f = state.fleet.get(id) || { id };
  const p = vehicles.vehicles.get(id) || f.position;
  const stops = (f.route && f.route.stops) || [];
  const orders = new Map(state.orders.map((o) => [o.id, o]));
  const risky = new Set((f.route && f.route.late_risk) || []);
  const [cls, label] = KIND_LABEL[kindOf(f)] || ["idle", "—"];
  const now = serverNow();
  const hoursForm = state.hoursForm && state.hoursForm.id === id ? state.hoursForm.node : null;
  const picking = state.mode === "depot" && state.depotFor === id;
  // The hours are on the fleet's clock; the other times here on the browser's: named if they differ.
  const otherClock = f.shift && offsetAt(now, state.zone) !== -new Date(now).getTimezoneOffset() * 60_000;
  fillDetail(pane, hoursForm, [
    el("div", { class: "row", style: "justify-content:space-between" },
      el("h2", {}, f.name || id),
      el("button", { class: "btn small", onclick: closeDetail }, "✕ Close")),
    el("div", { class: "row" }, el("span", { class: `badge ${cls}` }, f.status && f.status !== "available" ? f.status.replace("_", " ") : label), el("span", { class: `badge ${CONN_BADGE[f.connection] || "idle"}` }, f.connection || "unknown")),
    el("dl", { class: "facts" },
      el("dt", {}, "Vehicle"), el("dd", { class: "mono" }, id),
      el("dt", {}, "Driver"), el("dd", {}, f.name || "—"),
      el("dt", {}, "Last ping"), el("dd", { id: "detail-age" }, p ? `${ago(p.ts)} · ${clock(p.ts)}` : "never"),
      el("dt", {}, "Speed"), el("dd", {}, p && p.speed != null ? `${Math.round(p.speed * 3.6)} km/h` : "—"),
      el("dt", {}, "Heading"), el("dd", {}, p && p.heading != null ? `${Math.round(p.heading)}°` : "—"),
      el("dt", {}, "Route"), el("dd", { id: "detail-version" }, f.route ? `version ${f.route.version} · planned ${clock(f.route.planned_at)}` : "none"),
      el("dt", {}, "Capacity"), el("dd", {}, Object.entries(f.capacity || {}).map(([k, v]) => `${v} ${k}`).join(", ") || "—"),
      el("dt", {}, "Working hours"), el("dd", { class: "hours" },
        el("span", { id: "detail-hours" }, hoursText(f.shift, now)),
        otherClock ? el("span", { class: "faint", id: "detail-hours-zone" }, `(${state.zone})`) : null,
        hoursForm ? null : el("button", { class: "btn small", id: "hours-edit", title: "Set its daily working hours", onclick: () => openHoursForm(id) }, "Edit")),
      el("dt", {}, "Depot"), el("dd", { class: "depot" },
        el("span", { id: "detail-depot", class: f.depot ? "mono" : "" }, depotText(f.depot)),
        el("button", { class: "btn small" + (picking ? " active" : ""), id: "depot-pick", title: picking ? "Stop (Esc)" : "Click the map where its routes end", onclick: () => pickDepot(id) }, picking ? "Click the map…" : "Set on map"),
        f.depot ? el("button", { class: "btn small", id: "depot-remove", title: "Its routes end at the last stop", onclick: () => setVehicleDepot(id, null) }, "Remove") : null)),
    hoursForm,
    el("div", { class: "row" },
      el("button", { class: "btn small", onclick: () => setVehicleStatus(id, f.status !== "available" ? "available" : "maintenance") }, f.status !== "available" ? "Set available" : "Set maintenance"),
      p ? el("button", { class: "btn small", onclick: () => map.setView([p.lat, p.lon], Math.max(map.getZoom(), 15)) }, "Zoom to") : null,
      el("button", { class: "btn small", id: "new-driver-link", onclick: () => newDriverLink(id) }, "New driver link")),
    state.driverLink && state.driverLink.id === id
      ? el("div", { class: "row" },
          el("input", { id: "driver-link", class: "mono", readonly: true, value: state.driverLink.url, style: "flex:1;min-width:0", onclick: (e) => e.target.select() }),
          el("button", { class: "btn small", onclick: () => copyDriverLink() }, "Copy"))
      : null,
    el("h3", { style: "margin:4px 0 0;font-size:14px" }, `Next stops (${stops.length})`),
    stops.length
      ? el("ol", { class: "stops", id: "detail-stops" }, ...stops.map((s, i) => {
          const o = orders.get(s.order_id);
          const late = s.late_risk || s.late_s > 0 || risky.has(s.order_id);
          return el("li", { class: `stop ${s.kind}${late ? " late" : ""}`, dataset: { order: s.order_id } },
            el("span", { class: "n" }, String(i + 1)),
            el("div", {},
              el("div", { style: "font-weight:600" }, `${stopVerb(s)} · `, el("span", { class: "mono" }, s.order_id)),
              el("div", { class: "muted", style: "font-size:12.5px" }, stopNote(s, o), late ? el("span", { class: "badge bad", style: "margin-left:6px" }, "late risk") : null)),
            el("div", { class: "eta" }, clock(s.eta), el("div", { class: "faint", style: "font-size:11.5px;font-weight:400" }, inMinutes(s.eta))));
        }))
      : el("div", { class: "empty" }, "No stops planned."),
    f.route && f.route.end
      ? el("div", { class: "row muted", id: "detail-route-end", style: "font-size:12.5px" },
          `Back at its depot ${clock(f.route.end.eta)} · ${inMinutes(f.route.end.eta)}`)
      : null,
    todaySection(id),
  ]);
  drawDepot(f);
}

/** The vehicle detail's content replaced by `parts`, except `keep` (the open hours form), which
 * stays where it is: the detail re-renders on every ping, and a form taken out of the page would
 * lose the focus and what is half typed in it. */
function fillDetail(pane, keep, parts) {
  parts = parts.filter((c) => c !== null && c !== undefined && c !== false);
  const old = pane.firstElementChild;
  if (!keep || !old || keep.parentNode !== old) {
    pane.replaceChildren(el("div", { class: "detail" }, ...parts));
    return;
  }
  const at = parts.indexOf(keep);
  while (old.firstChild !== keep) old.firstChild.remove();
  while (keep.nextSibling) keep.nextSibling.remove();
  keep.before(...parts.slice(0, at));
  keep.after(...parts.slice(at + 1));
}

function closeDetail() {
  const back = state.order ? state.order.from : "vehicles"; // an order's detail: where it was opened from
  releaseOrder();
  closeReport();
  state.selected = null;
  state.driverLink = null; // it holds a token: shown once, not kept around
  state.hoursForm = null;
  if (state.mode === "depot") setMode("depot");
  drawDepot(null);
  vehicles.selected = null;
  vehicles.schedule();
  routeLayer.clearLayers();
  showTab(back);
  renderVehicles();
}

// ---------- the vehicle's day: trips and stops since midnight ----------
// Midnight is the fleet's (FLEET_TIME_ZONE, as `time_zone` in /web/config), on the server's
// clock (a simulation's day, not the computer's), whatever zone the browser is in. The day is loaded when the detail opens and reloaded once a minute while it
// stays open; the detail's re-renders on position updates reuse what was loaded.
const REPORT_REFRESH_MS = 60_000;

function openReport(id) {
  closeReport();
  const report = { id, from: null, data: null, at: null, showParts: false, loading: false, error: null, timer: null };
  report.timer = setInterval(() => { if (!document.hidden) loadReport(report); }, REPORT_REFRESH_MS);
  state.report = report;
  loadReport(report);
}

function closeReport() {
  if (!state.report) return;
  clearInterval(state.report.timer);
  state.report = null;
  dayStopsLayer.clearLayers();
}

async function loadReport(report) {
  if (state.report !== report || report.loading) return;
  report.loading = true;
  const now = serverNow();
  const today = wallClock(now, state.zone);
  const from = instantAt(today.y, today.mo, today.d, 0, 0, state.zone);
  try {
    // No `to`: the server's now (plus the minute of clock skew it allows a ping).
    const data = await call(`/vehicles/${encodeURIComponent(report.id)}/report?from=${from}`);
    if (state.report !== report) return; // closed, or another vehicle selected meanwhile
    Object.assign(report, { from, data, at: now, error: null });
    drawDayStops();
  } catch (err) {
    if (state.report !== report) return;
    if (!report.error) toast(`Could not load the day of ${escapeHtml(report.id)}: ${escapeHtml(err.message)}`, { bad: true }); // once, not every minute
    report.error = err.message;
  } finally {
    report.loading = false;
  }
  if (state.selected === report.id) renderDetail();
}

const kmText = (m) => `${(m / 1000).toFixed(1)} km`;
const kmhText = (mps) => `${Math.round(mps * 3.6)} km/h`;
function hoursMinutes(s) {
  const min = Math.round(s / 60);
  return min < 60 ? `${min} min` : `${Math.floor(min / 60)} h ${min % 60} min`;
}

/** The day's stops, numbered in time order (the list and the map's markers share the numbers). */
function dayStops(data) {
  return data.parts.filter((p) => p.type === "stop").map((p, i) => ({ ...p, n: i + 1 }));
}

function drawDayStops() {
  dayStopsLayer.clearLayers();
  const report = state.report;
  if (!report || !report.data || !report.showParts) return;
  for (const s of dayStops(report.data)) {
    const icon = divIcon(`<div class="day-stop-pin">${s.n}</div>`, "", [16, 16]);
    L.marker([s.lat, s.lon], { icon, pane: "daystops", keyboard: false, title: `Stop ${s.n}` })
      .bindTooltip(`Stop ${s.n} · ${clock(s.start_ts)}–${clock(s.end_ts)} · ${hoursMinutes(s.duration_s)}`)
      .addTo(dayStopsLayer);
  }
}

function toggleDayParts() {
  const report = state.report;
  if (!report) return;
  report.showParts = !report.showParts;
  drawDayStops();
  renderDetail();
}

function showDayStop(s) {
  map.setView([s.lat, s.lon], Math.max(map.getZoom(), 15));
  for (const marker of dayStopsLayer.getLayers()) {
    if (marker.options.title === `Stop ${s.n}`) marker.openTooltip();
  }
}

function todaySection(id) {
  const report = state.report && state.report.id === id ? state.report : null;
  const head = el("div", { class: "row", style: "justify-content:space-between" },
    el("h3", { style: "margin:0;font-size:14px" }, "Today"),
    report && report.data ? el("span", { class: "faint", style: "font-size:11.5px" }, `since ${clock(report.from)} · updated ${clock(report.at)}`) : null);
  const box = (...children) => el("section", { class: "today", id: "today" }, head, ...children);
  if (!report || !report.data) {
    return box(el("div", { class: "faint", style: "font-size:12.5px" }, report && report.error ? "Could not load the day's trips." : "Loading…"));
  }
  const { summary, parts } = report.data;
  if (!summary.trips) return box(el("div", { class: "faint", id: "today-empty", style: "font-size:12.5px" }, "No movement recorded today"));
  const figure = (fid, value, label) => el("div", {}, el("div", { class: "v", id: fid }, value), el("div", { class: "l" }, label));
  const numbers = new Map(dayStops(report.data).map((s) => [s.start_ts, s]));
  return box(
    el("div", { class: "today-figures" },
      figure("today-km", kmText(summary.distance_m), "driven"),
      figure("today-driving", hoursMinutes(summary.driving_s), "driving"),
      figure("today-stopped", hoursMinutes(summary.stopped_s), "stopped"),
      figure("today-stops", String(summary.stops), summary.stops === 1 ? "stop" : "stops"),
      figure("today-top", kmhText(summary.max_speed_mps), "top speed")),
    el("button", { class: "btn small" + (report.showParts ? " active" : ""), id: "today-toggle", "aria-expanded": String(report.showParts), onclick: toggleDayParts },
      `${report.showParts ? "Hide" : "Show"} trips and stops (${parts.length})`),
    report.showParts
      ? el("ol", { class: "day-parts", id: "today-parts" }, ...[...parts].reverse().map((p) => {
          const when = `${clock(p.start_ts)}–${clock(p.end_ts)}`;
          if (p.type === "stop") {
            const s = numbers.get(p.start_ts);
            return el("li", { class: "part stop", title: "Show on the map", dataset: { stop: s.n }, onclick: () => showDayStop(s) },
              el("span", { class: "day-stop-pin" }, String(s.n)),
              el("span", {}, `Stop · ${when}`),
              el("span", { class: "num" }, hoursMinutes(p.duration_s)));
          }
          return el("li", { class: "part trip" },
            el("span", { class: "trip-mark" }, "→"),
            el("span", {}, `Trip · ${when}`),
            el("span", { class: "num" }, `${kmText(p.distance_m)} · top ${kmhText(p.max_speed_mps)}`));
        }))
      : null);
}

// ---------- orders ----------
for (const chip of $$("#order-filters .chip")) {
  chip.addEventListener("click", () => {
    state.orderFilter = chip.dataset.f;
    for (const c of $$("#order-filters .chip")) c.classList.toggle("active", c === chip);
    loadOrders();
  });
}
const ENDED = ["delivered", "returned", "cancelled"]; // on no route any more
// `returning`: a failed drop-off going back to its sender, on the route of the van that has it.
const ORDER_BADGE = { received: "warn", processed: "busy", departed: "busy", picked_up: "busy", arrived: "violet", delivered: "ok", failed: "bad", returning: "return", returned: "idle", cancelled: "idle" };
const BY_STATUS = ["delivered", "failed", "returning", "cancelled"]; // the filters that list one status
// The statuses that may become cancelled (server/orders/lifecycle.py, ALLOWED): not once the
// parcel is in the van (picked up, arrived), nor a parcel on its way back (returning), nor one
// back with the planner after a failed attempt (its parcel is still on the van that tried: the
// server answers 409; it is sent back to its sender instead).
const CANCELLABLE = ["received", "processed", "departed"];
const cancellable = (o) => CANCELLABLE.includes(o.status) && !("failed" in (o.nodes || {}));
// A held order failed for a reason another attempt would fail the same way (FLEET_HOLD_ON, a wrong
// address by default): received, its parcel on the van, no stop planned until a dispatcher
// corrects the drop-off or sends it out again as it is (see "held orders" below).
const HELD_TEXT = { address_wrong: "wrong address", customer_absent: "nobody home", refused: "refused", other: "other problem" };
const heldText = (reason) => HELD_TEXT[reason] || String(reason).replaceAll("_", " ");
const heldBadge = (reason) => el("span", { class: "badge bad held", title: "No stop is planned for it until a dispatcher corrects the address or sends it out again" }, `held: ${heldText(reason)}`);

/** A returning order's two ways out: back with its sender, or another delivery attempt. */
function returnActions(id) {
  return [
    el("button", { class: "btn small primary", type: "button", dataset: { action: "returned" }, title: "The parcel is back with its sender: close the order", onclick: (e) => markReturned(id, e.currentTarget) }, "Returned"),
    el("button", { class: "btn small", type: "button", dataset: { action: "retry" }, title: "Send it out again: the planner gives the van that has it a drop-off", onclick: (e) => deliverAgain(id, e.currentTarget) }, "Deliver again"),
  ];
}

function renderOrders() {
  const stops = stopIndex();
  let shown = state.orders;
  if (state.orderFilter === "unassigned") shown = shown.filter((o) => o.status === "received" || !stops.has(o.id));
  if (state.orderFilter === "late") shown = shown.filter((o) => stops.get(o.id)?.late);
  $("#count-orders").textContent = state.orders.length;
  $("#order-list").replaceChildren(
    ...shown.slice(0, 300).map((o) => {
      const s = stops.get(o.id);
      const open = !ENDED.includes(o.status);
      return el("li", { class: "item", dataset: { order: o.id }, onclick: () => focusOrder(o, s) },
        el("div", { class: "top" },
          el("span", { class: "title mono" }, o.id),
          el("span", { class: "row" }, s && s.late ? el("span", { class: "badge bad" }, "late risk") : null, el("span", { class: `badge ${ORDER_BADGE[o.status] || "idle"}` }, o.status.replace("_", " ")))),
        el("div", { class: "sub" },
          o.held ? heldBadge(o.held) : null,
          o.transfer_from ? el("span", { class: "badge transfer", title: `Its parcel is on ${o.transfer_from}, out of service: ${o.vehicle_id || "another van"} collects it` }, `on ${o.transfer_from}`) : null,
          o.reference ? el("span", {}, o.reference) : null,
          el("span", {}, `window ${clock(Date.parse(o.window.start))}–${clock(Date.parse(o.window.end))}`),
          el("span", { class: "order-vehicle" }, s ? `${s.vehicle} · stop ${s.index}${s.kind === "return" ? " (return)" : ""} · ETA ${clock(s.eta)}` : o.vehicle_id ? `${o.held ? "parcel on " : ""}${o.vehicle_id}` : "unassigned"),
          o.priority === "express" ? el("span", { class: "badge violet" }, "express") : null),
        el("div", { class: "row", onclick: (e) => e.stopPropagation() },
          el("button", { class: "btn small details", onclick: () => openOrder(o.id) }, "Details"),
          open && ["received", "processed"].includes(o.status)
            ? el("form", { class: "row reassign", onsubmit: (e) => { e.preventDefault(); assignOrder(o.id, e.target.elements.vehicle.value.trim()); } },
                el("input", { class: "text", name: "vehicle", list: "vehicle-ids", placeholder: "Reassign to…", style: "height:28px;width:130px;font-size:12.5px", "aria-label": "Reassign to vehicle" }),
                el("button", { class: "btn small", type: "submit" }, "Assign"))
            : null,
          o.status === "returning" ? returnActions(o.id) : null,
          cancellable(o) ? el("button", { class: "btn small danger", dataset: { action: "cancel" }, onclick: () => cancelOrder(o.id) }, "Cancel") : null));
    }),
    ...(shown.length ? [] : [el("li", { class: "empty" }, "No order here.")])
  );
  drawOrders(stops);
}

function drawOrders(stops) {
  orderLayer.clearLayers();
  for (const o of state.orders) {
    if (ENDED.includes(o.status)) continue;
    const s = stops.get(o.id);
    const colour = s && s.late ? "#dc2626" : s && s.kind === "return" ? "#c2410c" : s ? "#2563eb" : "#d97706";
    const at = s && s.kind === "return" ? s : o.dropoff; // going back: where the parcel goes now
    L.circleMarker([at.lat, at.lon], { renderer: ordersRenderer, radius: 5, color: "#fff", weight: 1.5, fillColor: colour, fillOpacity: 1 })
      .bindTooltip(`${o.id} · ${o.status}${s ? ` · ${s.vehicle} ETA ${clock(s.eta)}` : ""}`)
      .addTo(orderLayer);
  }
}

function focusOrder(o, s) {
  const at = s && s.kind === "return" ? s : o.dropoff;
  map.panTo([at.lat, at.lon]);
  // On its way: its vehicle's detail. (A route may still list a stop just done until re-planned.)
  if (s && !ENDED.includes(o.status)) selectVehicle(s.vehicle, { pan: false });
  else openOrder(o.id);
}

// ---------- order search ----------
// A dispatcher is asked about an order by the customer's name or phone, a street, the shop's
// reference: GET /orders/search finds it among every open order and the newest 10,000, ended ones
// too (server/orders/search.py says how words match). The results take the list's place until
// the search is cleared (× or Esc); each opens its order's detail. Every question counts: an
// answer that comes back after a newer question was asked is dropped.
const SEARCH_DELAY_MS = 300; // after the last key
const SEARCH_MIN_CHARS = 2; // spaces aside, as the server counts
const SEARCH_LIMIT = 20; // the newest that match

function onSearchInput() {
  const text = $("#order-search").value;
  $("#order-search-clear").classList.toggle("hidden", !text);
  if (!text.trim()) endSearch();
  else debounce("order-search", () => runSearch(text), SEARCH_DELAY_MS);
}

async function runSearch(text) {
  const search = state.search;
  const asked = ++search.asked;
  if (text.replace(/\s/g, "").length < SEARCH_MIN_CHARS) {
    endSearch(); // the list stays (or comes back)
    searchNote(`Type at least ${SEARCH_MIN_CHARS} characters to find an order.`);
    return;
  }
  showSearch(true);
  searchNote("Searching…");
  let found = null;
  let failure = null;
  try {
    found = await call(`/orders/search?q=${encodeURIComponent(text.trim())}&limit=${SEARCH_LIMIT}`);
  } catch (err) {
    failure = err;
  }
  search.answered++;
  if (asked !== search.asked) return; // a newer question was asked meanwhile, or the search ended
  search.shown = text;
  if (failure) {
    renderSearchResults(null);
    // A 400 says what is wrong with the query (too short once folded, too long): as it says it.
    searchNote(failure.status === 400 ? failure.message : `Could not search: ${failure.message}`, { bad: true });
    return;
  }
  renderSearchResults(found);
  searchNote(found.length >= SEARCH_LIMIT ? `The newest ${SEARCH_LIMIT} orders that match: add a word to narrow.` : "");
}

/** The results (`null`: none to show, after an error) in place of the order list. */
function renderSearchResults(found) {
  $("#order-results").replaceChildren(
    ...(found || []).map(searchResult),
    ...(found && !found.length ? [el("li", { class: "empty" }, "No order matches.")] : []));
}

function searchResult(o) {
  const customer = [o.customer.name, o.customer.phone].filter(Boolean).join(" · ");
  return el("li", { class: "item linked", dataset: { order: o.id } },
    el("button", { type: "button", class: "item-button", title: "Open the order", onclick: () => openFoundOrder(o) },
      el("span", { class: "top" },
        el("span", { class: "title mono" }, o.id),
        el("span", { class: `badge ${ORDER_BADGE[o.status] || "idle"}` }, o.status.replace("_", " "))),
      el("span", { class: "sub" },
        el("span", { class: "result-customer" }, customer || "no customer named"),
        o.dropoff.address ? el("span", { class: "result-address" }, o.dropoff.address) : null,
        o.reference ? el("span", {}, o.reference) : null,
        el("span", {}, `${clockDate(Date.parse(o.window.start))}–${clock(Date.parse(o.window.end))}`))));
}

function openFoundOrder(o) {
  map.panTo([o.dropoff.lat, o.dropoff.lon]);
  openOrder(o.id, { data: o });
}

/** The results in the list's place (`true`), or the list with its filters back. */
function showSearch(on) {
  $("#order-results").classList.toggle("hidden", !on);
  for (const sel of ["#order-list", "#order-filters", "#order-hint"]) $(sel).classList.toggle("hidden", on);
}

function searchNote(text, { bad = false } = {}) {
  const note = $("#order-search-status");
  note.textContent = text;
  note.classList.toggle("bad", bad);
  note.classList.toggle("hidden", !text);
}

/** Back to the order list; an answer still on its way is dropped. */
function endSearch() {
  clearTimeout(timers["order-search"]);
  state.search.asked++;
  state.search.shown = null;
  showSearch(false);
  searchNote("");
  $("#order-results").replaceChildren();
}

function clearSearch() {
  $("#order-search").value = "";
  $("#order-search-clear").classList.add("hidden");
  endSearch();
  $("#order-search").focus();
}

$("#order-search").addEventListener("input", onSearchInput);
$("#order-search-clear").addEventListener("click", clearSearch);
for (const node of [$("#order-search"), $("#order-results")]) {
  node.addEventListener("keydown", (e) => {
    if (e.key !== "Escape" || !$("#order-search").value) return;
    e.stopPropagation(); // not also the map tools' Esc
    clearSearch();
  });
}

// ---------- orders to a spreadsheet ----------
// GET /orders/export answers the orders created in a range as a CSV file. It needs the staff
// token, which a plain link cannot send: the file is fetched, then saved through an object URL
// (revoked once the browser has started the download). The day is the fleet's (`state.zone`),
// from its midnight to the next.
const DOWNLOAD_URL_MS = 1000; // how long a downloaded file's object URL is kept
const pad = (n, width = 2) => String(n).padStart(width, "0");

/** The day in `zone` at the instant `ms`, as a date input holds it: "2024-03-05". */
function dayIn(ms, zone) {
  const w = wallClock(ms, zone);
  return `${pad(w.y, 4)}-${pad(w.mo)}-${pad(w.d)}`;
}

/** The instant `ms` as an ISO 8601 time on `zone`'s clock, with its offset:
 * "2024-03-05T23:59:59.999+01:00". */
function isoIn(ms, zone) {
  const w = wallClock(ms, zone);
  const off = Math.round(offsetAt(ms, zone) / 60_000);
  const sign = off < 0 ? "-" : "+";
  return `${pad(w.y, 4)}-${pad(w.mo)}-${pad(w.d)}T${pad(w.h)}:${pad(w.mi)}:${pad(w.s)}.${pad(((ms % 1000) + 1000) % 1000, 3)}${sign}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
}

async function exportOrders() {
  const day = $("#export-day").value; // "" when the date typed is not one
  if (!day) { toast("Choose the day whose orders to export.", { bad: true }); return; }
  const [y, mo, d] = day.split("-").map(Number);
  const from = instantAt(y, mo, d, 0, 0, state.zone);
  const to = instantAt(y, mo, d + 1, 0, 0, state.zone) - 1; // the range's ends are both in it
  const button = $("#export-csv");
  button.disabled = true;
  try {
    const q = `from=${encodeURIComponent(isoIn(from, state.zone))}&to=${encodeURIComponent(isoIn(to, state.zone))}`;
    const res = await fetch(`/orders/export?${q}`, { headers: { Authorization: `Bearer ${state.token}` } });
    if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
    const named = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "");
    saveFile(await res.blob(), named ? named[1] : `orders-${day}.csv`);
  } catch (err) {
    forgetRefusedToken(err);
    toast(`Could not export the orders: ${escapeHtml(err.message)}`, { bad: true });
  } finally {
    button.disabled = false;
  }
}

/** The browser saves `blob` as a file named `name` (its downloads, or where the user says). */
function saveFile(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: name, class: "hidden" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), DOWNLOAD_URL_MS);
}

$("#export-form").addEventListener("submit", (e) => { e.preventDefault(); exportOrders(); });

// ---------- order detail (with its proofs of delivery) ----------
// The proofs' images need the staff token, so an <img> cannot load them by URL: each is fetched
// once into an object URL, kept while the detail is open and revoked when it closes.
function openOrder(id, { data = null, from = "orders" } = {}) {
  releaseOrder();
  closeReport();
  state.selected = null; // one detail at a time
  state.driverLink = null;
  state.hoursForm = null;
  if (state.mode === "depot") setMode("depot");
  drawDepot(null);
  vehicles.selected = null;
  vehicles.schedule();
  routeLayer.clearLayers();
  // An ended order found by a search, or named by an alert, is not in the open list: the data
  // the caller has (a search result) shows at once, GET /orders/{id} follows in any case.
  state.order = { id, data: state.orders.find((o) => o.id === id) || data, proofs: [], urls: new Map(), from };
  showTab("detail");
  renderOrderDetail();
  loadOrderDetail();
  loadProofs();
}

function releaseOrder() {
  if (!state.order) return;
  for (const url of state.order.urls.values()) URL.revokeObjectURL(url);
  dropFix(state.order);
  state.order = null;
  $("#proof-large")?.remove();
}

async function loadOrderDetail() {
  const open = state.order;
  if (!open) return;
  try {
    const data = await call(`/orders/${encodeURIComponent(open.id)}`);
    if (state.order !== open) return;
    open.data = data;
    renderOrderDetail();
  } catch (err) {
    toast(`Could not load order ${escapeHtml(open.id)}: ${escapeHtml(err.message)}`, { bad: true });
  }
}

async function loadProofs() {
  const open = state.order;
  if (!open) return;
  const path = `/orders/${encodeURIComponent(open.id)}/proofs`;
  let list;
  try {
    list = await call(path);
  } catch (err) {
    toast(`Could not load the proofs of ${escapeHtml(open.id)}: ${escapeHtml(err.message)}`, { bad: true });
    return;
  }
  await Promise.all(list.filter((p) => !open.urls.has(p.id)).map(async (p) => {
    const res = await fetch(`${path}/${encodeURIComponent(p.id)}`, { headers: { Authorization: `Bearer ${state.token}` } }).catch(() => null);
    if (!res || !res.ok) return; // listed without its image
    const url = URL.createObjectURL(await res.blob());
    if (state.order !== open || open.urls.has(p.id)) URL.revokeObjectURL(url); // closed, or loaded twice
    else open.urls.set(p.id, url);
  }));
  if (state.order !== open) return;
  open.proofs = list;
  renderOrderDetail();
}

const byWhom = (p) => (p.by === "staff" ? "a dispatcher" : p.by.replace(/^vehicle:/, ""));

function renderOrderDetail() {
  const open = state.order;
  if (!open) return;
  const o = open.data;
  const s = o && !ENDED.includes(o.status) ? stopIndex().get(open.id) : null;
  const reached = (status) => (o && o.nodes[status] ? clockDate(Date.parse(o.nodes[status])) : null);
  const editable = !!o && !ENDED.includes(o.status); // contact and notes change while it is open
  if (!editable) open.edit = null;
  if (open.fix && !(o && o.held)) dropFix(open); // released meanwhile (by another dispatcher?)
  const forms = [open.edit, open.fix && open.fix.node].filter(Boolean);
  const focused = forms.find((f) => f.contains(document.activeElement)) ? document.activeElement : null;
  $("#pane-detail").replaceChildren(
    el("div", { class: "detail", id: "order-detail", dataset: { order: open.id } },
      el("div", { class: "row", style: "justify-content:space-between" },
        el("h2", { class: "mono" }, open.id),
        el("button", { class: "btn small", onclick: closeDetail }, "✕ Close")),
      o ? el("div", { class: "row" },
            el("span", { class: `badge ${ORDER_BADGE[o.status] || "idle"}` }, o.status.replace("_", " ")),
            o.held ? heldBadge(o.held) : null,
            o.priority === "express" ? el("span", { class: "badge violet" }, "express") : null)
        : null,
      o && o.held ? heldSection(open, o) : null,
      o && o.transfer_from ? transferSection(o) : null,
      o ? el("dl", { class: "facts" },
            el("dt", {}, "Reference"), el("dd", {}, o.reference || "—"),
            el("dt", {}, "Customer"), el("dd", {}, [o.customer.name, o.customer.phone].filter(Boolean).join(" · ") || "—"),
            o.pickup ? [el("dt", {}, "Pickup"), el("dd", { id: "order-pickup-address" }, o.pickup.address || placeText(o.pickup))] : null,
            el("dt", {}, "Drop-off"), el("dd", { id: "order-dropoff-address" }, o.dropoff.address || placeText(o.dropoff)),
            el("dt", {}, "Window"), el("dd", {}, `${clockDate(Date.parse(o.window.start))}–${clock(Date.parse(o.window.end))}`),
            el("dt", {}, "Vehicle"), el("dd", {}, o.vehicle_id ? el("a", { href: "#", onclick: (e) => { e.preventDefault(); selectVehicle(o.vehicle_id); } }, o.vehicle_id) : "unassigned"),
            el("dt", {}, s ? (s.kind === "return" ? "Return ETA" : "ETA") : "Last change"), el("dd", {}, s ? `${clock(s.eta)} · stop ${s.index}` : reached(o.status) || "—"),
            o.failures > 0 ? [el("dt", {}, "Failed attempts"), el("dd", { id: "order-failures" }, String(o.failures))] : null,
            el("dt", {}, "Notes"), el("dd", { class: "notes", id: "order-notes" }, o.notes || "—"),
            o.instructions ? [el("dt", {}, "Customer's instructions"), el("dd", { class: "notes", id: "order-instructions" }, o.instructions)] : null,
            o.feedback ? ratingFacts(o.feedback) : null)
        : el("div", { class: "faint" }, "Loading…"),
      open.edit,
      editable && (!open.edit || o.status === "returning")
        ? el("div", { class: "row" },
            open.edit ? null : el("button", { class: "btn small", type: "button", id: "order-edit", title: "Change the customer's phone and the notes for the driver", onclick: openOrderEdit }, "Edit phone & notes"),
            o.status === "returning" ? returnActions(open.id) : null)
        : null,
      el("h3", { style: "margin:4px 0 0;font-size:14px" }, `Proof of delivery (${open.proofs.length})`),
      open.proofs.length
        ? el("div", { class: "proof-grid", id: "order-proofs" }, ...open.proofs.map((p) => {
            const url = open.urls.get(p.id);
            return el("figure", { dataset: { proof: p.id, kind: p.kind } },
              url ? el("img", { src: url, class: p.kind, alt: p.kind, title: "Show larger", onclick: () => showProof(p, url) })
                : el("div", { class: "noimg faint" }, "no image"),
              el("figcaption", {}, `${p.kind} · ${clock(Date.parse(p.at))} · ${byWhom(p)}`));
          }))
        : el("div", { class: "faint", style: "font-size:12.5px" }, "None yet.")));
  if (focused && focused.isConnected) focused.focus(); // re-rendered while typing
}

/** An order whose parcel is on a van out of service (its transfer_from), which the order's van
 * is sent to collect it from (a transfer stop on its route); gone once collected. */
function transferSection(o) {
  return el("div", { class: "transfer-box", id: "order-transfer", role: "status" },
    `To be collected from ${o.transfer_from} (out of service)${o.vehicle_id ? ` by ${o.vehicle_id}` : ""}`);
}

/** The customer's rating of the delivery (stars, the number, when) and their comment. */
function ratingFacts(f) {
  return [
    el("dt", {}, "Customer's rating"),
    el("dd", { id: "order-rating" },
      el("span", { class: "rating-stars", "aria-hidden": "true" }, "★".repeat(f.rating) + "☆".repeat(5 - f.rating)),
      ` ${f.rating} of 5 · ${clockDate(Date.parse(f.at))}`),
    ...(f.comment ? [el("dt", {}, "Customer's comment"), el("dd", { class: "notes", id: "order-comment" }, f.comment)] : []),
  ];
}

// The customer's phone and the notes for the driver, changed in place while the order is open
// (PATCH /orders/{id}); the driver's phone reads them again at its next route or within a minute.
function openOrderEdit() {
  const open = state.order;
  const o = open && open.data;
  if (!o) return;
  const node = el("form", { class: "order-edit", id: "order-edit-form", onsubmit: (e) => { e.preventDefault(); saveOrderEdit(open, node); } },
    el("label", { class: "field" }, "Customer's phone", el("input", { class: "text", name: "phone", type: "tel", maxlength: 40, autocomplete: "off" })),
    el("label", { class: "field" }, "Notes for the driver", el("textarea", { class: "text", name: "notes", rows: 3, maxlength: 500, placeholder: "e.g. door code 4521, third floor" })),
    el("div", { class: "row" },
      el("button", { class: "btn small primary", type: "submit" }, "Save"),
      el("button", { class: "btn small", type: "button", onclick: () => { if (open.edit === node) open.edit = null; renderOrderDetail(); } }, "Discard")));
  node.elements.phone.value = o.customer.phone || "";
  node.elements.notes.value = o.notes || "";
  open.edit = node;
  renderOrderDetail();
  node.elements.notes.focus();
}

async function saveOrderEdit(open, node) {
  const o = open.data;
  const phone = node.elements.phone.value.trim();
  const notes = node.elements.notes.value.trim();
  const body = {};
  if (notes !== (o.notes || "")) body.notes = notes;
  // The server merges the customer: the name stays as it is.
  if (phone !== (o.customer.phone || "")) body.customer = { phone };
  const done = () => { if (open.edit === node) open.edit = null; };
  if (!Object.keys(body).length) { done(); renderOrderDetail(); return; }
  const save = node.querySelector("[type=submit]");
  save.disabled = true;
  try {
    await call(`/orders/${encodeURIComponent(open.id)}`, { method: "PATCH", body });
    done();
    toast(`Order ${escapeHtml(open.id)} changed; its driver's phone shows it at its next update.`);
  } catch (err) {
    toast(`Could not change ${escapeHtml(open.id)}: ${escapeHtml(err.message)}`, { bad: true });
  } finally {
    save.disabled = false;
  }
  if (state.order === open) await loadOrderDetail();
}

/** A dispatcher's action on an order (``button`` disabled meanwhile), then the list and the
 * order's detail reloaded; a toast says how it went. */
async function orderAction(id, button, path, body, done, failed) {
  if (button) button.disabled = true;
  try {
    await call(`/orders/${encodeURIComponent(id)}/${path}`, { method: "POST", body });
    toast(done);
  } catch (err) {
    toast(`${failed}: ${escapeHtml(err.message)}`, { bad: true });
  } finally {
    if (button) button.disabled = false;
  }
  await loadOrders().catch(() => {});
  if (state.order && state.order.id === id) await loadOrderDetail();
}

const markReturned = (id, button) => orderAction(id, button, "returned", { reason: "back with the sender (dispatcher)" },
  `Order ${escapeHtml(id)} is back with its sender: <b>returned</b>.`, `Could not close ${escapeHtml(id)}`);
const deliverAgain = (id, button) => orderAction(id, button, "retry", { reason: "another delivery attempt (dispatcher)" },
  `Order ${escapeHtml(id)} goes out again: the planner gives its van a drop-off.`, `Could not send ${escapeHtml(id)} out again`);

// ---------- held orders ----------
// A held order waits for the dispatcher, who calls the customer, then either corrects the
// drop-off (PATCH /orders/{id} `dropoff`: the place set by a click on the map, as a depot is,
// and the address) or sends it out again as it is (POST /orders/{id}/retry). Either releases
// it: an `order` event follows, which reloads the open detail.
const placeText = (p) => `${p.lat.toFixed(5)}, ${p.lon.toFixed(5)}`;

function heldSection(open, o) {
  const at = o.dropoff.address || placeText(o.dropoff);
  return el("section", { class: "held-box", id: "order-held" },
    el("div", {}, `The delivery failed: ${heldText(o.held)}. The parcel stays on ${o.vehicle_id || "its van"}; no stop is planned for it until the address is corrected or it is sent out again as it is.`),
    el("div", { class: "muted" }, "Delivered to: ", el("span", { id: "order-held-address" }, at)),
    open.fix
      ? open.fix.node
      : el("div", { class: "row" },
          el("button", { class: "btn small primary", type: "button", id: "held-correct", title: "Set the right place on the map and the address: the order goes out there", onclick: openFix }, "Correct the address"),
          el("button", { class: "btn small", type: "button", id: "held-release", title: "The address was right: another attempt at the same place", onclick: (e) => sendOutAsItIs(open.id, e.currentTarget) }, "Send out as it is"),
          el("button", { class: "btn small", type: "button", id: "held-return", title: "The customer cannot be reached: the van takes the parcel back to its sender", onclick: (e) => returnToSender(open.id, e.currentTarget) }, "Return to sender")));
}

const returnToSender = (id, button) => orderAction(id, button, "return", { reason: "sent back by the dispatcher" },
  `Order ${escapeHtml(id)} goes back to its sender: its van is given a return stop.`, `Could not send ${escapeHtml(id)} back`);

const sendOutAsItIs = (id, button) => orderAction(id, button, "retry", { reason: "sent out again as it is (dispatcher)" },
  `Order ${escapeHtml(id)} goes out again to the same address: the planner gives its van a drop-off.`, `Could not send ${escapeHtml(id)} out again`);

/** The "correct the address" form, filled with the drop-off as it is; the map waits for a
 * click on the new place at once. */
function openFix() {
  const open = state.order;
  const o = open && open.data;
  if (!o) return;
  const fix = { node: null, place: { lat: o.dropoff.lat, lon: o.dropoff.lon } };
  fix.node = el("form", { class: "dropoff-fix", id: "dropoff-form", onsubmit: (e) => { e.preventDefault(); saveFix(open, fix); } },
    el("label", { class: "field" }, "Address", el("input", { class: "text", name: "address", maxlength: 300, autocomplete: "off", placeholder: "e.g. Carrer Major 3, Andorra la Vella" })),
    el("div", { class: "field" }, "Place",
      el("div", { class: "row" },
        el("span", { class: "mono", id: "dropoff-place" }),
        el("button", { class: "btn small", type: "button", id: "dropoff-pick", onclick: () => setMode("dropoff") }))),
    el("div", { class: "form-error hidden", id: "dropoff-error", role: "alert" }),
    el("div", { class: "row" },
      el("button", { class: "btn small primary", type: "submit" }, "Save and send out"),
      el("button", { class: "btn small", type: "button", onclick: closeFix }, "Cancel")));
  fix.node.elements.address.value = o.dropoff.address || "";
  open.fix = fix;
  renderOrderDetail();
  if (state.mode !== "dropoff") setMode("dropoff");
  showFix();
  fix.node.elements.address.focus();
}

/** The open form's place, its "Set on map" button and the place's marker, as they are now. */
function showFix() {
  const fix = state.order && state.order.fix;
  fixLayer.clearLayers();
  if (!fix) return;
  const picking = state.mode === "dropoff";
  fix.node.querySelector("#dropoff-place").textContent = placeText(fix.place);
  const pick = fix.node.querySelector("#dropoff-pick");
  pick.textContent = picking ? "Click the map…" : "Set on map";
  pick.title = picking ? "Stop (Esc)" : "Click the map where the parcel goes";
  pick.classList.toggle("active", picking);
  L.marker([fix.place.lat, fix.place.lon], { icon: divIcon('<div class="stop-pin fix"></div>', "", [22, 22]), interactive: false, keyboard: false }).addTo(fixLayer);
}

function placeDropoff(latlng) {
  const fix = state.order && state.order.fix;
  if (fix) {
    fix.place = { lat: latlng.lat, lon: latlng.lng };
    fix.node.querySelector("#dropoff-error").classList.add("hidden"); // said of the place before
  }
  setMode("dropoff"); // one click: the map is the map again (showFix follows)
}

/** The form gone (nothing re-rendered): the map stops waiting for its place. */
function dropFix(open) {
  open.fix = null;
  if (state.mode === "dropoff") setMode("dropoff");
  fixLayer.clearLayers();
}

function closeFix() {
  if (state.order) dropFix(state.order);
  renderOrderDetail();
}

async function saveFix(open, fix) {
  const error = fix.node.querySelector("#dropoff-error");
  const save = fix.node.querySelector("[type=submit]");
  const dropoff = { ...fix.place, address: fix.node.elements.address.value.trim() };
  save.disabled = true;
  error.classList.add("hidden");
  try {
    await call(`/orders/${encodeURIComponent(open.id)}`, { method: "PATCH", body: { dropoff } });
    if (open.fix === fix) dropFix(open);
    toast(`Order ${escapeHtml(open.id)} goes out to the corrected address: the planner gives its van a drop-off.`);
  } catch (err) {
    // A 422 says the place is off the roads, a 409 that the order has left: as the server says it.
    error.textContent = err.message;
    error.classList.remove("hidden");
    if (err.status === 422 && open.fix === fix && state.order === open && state.mode !== "dropoff") setMode("dropoff"); // another place
    toast(`Could not correct the address of ${escapeHtml(open.id)}: ${escapeHtml(err.message)}`, { bad: true });
  } finally {
    save.disabled = false;
  }
  await loadOrders().catch(() => {});
  if (state.order === open) await loadOrderDetail();
}

function showProof(p, url) {
  $("#proof-large")?.remove();
  const type = p.content_type.split("/")[1];
  document.body.append(
    el("div", { class: "overlay lightbox", id: "proof-large", title: "Close", onclick: (e) => { if (e.target.tagName !== "A") e.currentTarget.remove(); } },
      el("figure", {},
        el("img", { src: url, alt: p.kind }),
        el("figcaption", {},
          `${p.kind} of ${p.order_id} · ${clockDate(Date.parse(p.at))} · by ${byWhom(p)} · `,
          el("a", { href: url, download: `${p.order_id}-${p.id}.${type === "jpeg" ? "jpg" : type}` }, "Download")))));
}

async function assignOrder(id, vehicleId) {
  if (!vehicleId) return;
  try {
    await call(`/orders/${encodeURIComponent(id)}/assign`, { method: "POST", body: { vehicle_id: vehicleId } });
    toast(`Order ${escapeHtml(id)} goes to <b>${escapeHtml(vehicleId)}</b>; routes are being re-planned.`);
    loadOrders();
  } catch (err) {
    toast(`Could not reassign ${escapeHtml(id)}: ${escapeHtml(err.message)}`, { bad: true });
  }
}

async function cancelOrder(id) {
  try {
    await call(`/orders/${encodeURIComponent(id)}/cancel`, { method: "POST", body: { reason: "cancelled by dispatcher" } });
    toast(`Order ${escapeHtml(id)} cancelled.`);
    loadOrders();
  } catch (err) {
    toast(`Could not cancel ${escapeHtml(id)}: ${escapeHtml(err.message)}`, { bad: true });
  }
}

// ---------- tools: new order, traffic drawing, density ----------
function setMode(mode) {
  const wasDepot = state.mode === "depot";
  const wasDropoff = state.mode === "dropoff";
  state.mode = state.mode === mode ? null : mode;
  if (state.mode !== "depot") state.depotFor = null;
  $("#tool-order").classList.toggle("active", state.mode === "order");
  $("#tool-traffic").classList.toggle("active", state.mode === "traffic");
  map.getContainer().style.cursor = state.mode ? "crosshair" : "";
  const hint = $("#hint");
  if (state.mode === "order") {
    hint.innerHTML = "Click the map where the order is delivered. <b>Esc</b> to stop.";
  } else if (state.mode === "traffic") {
    state.draft = [];
    draftLayer.clearLayers();
    map.doubleClickZoom.disable();
    hint.innerHTML = 'Click the corners of the area. <button class="btn small" id="draw-finish">Finish</button> <button class="btn small" id="draw-cancel">Cancel</button>';
    $("#draw-finish").onclick = (e) => { e.stopPropagation(); finishDraft(); };
    $("#draw-cancel").onclick = (e) => { e.stopPropagation(); discardDraft(); };
  } else if (state.mode === "depot") {
    hint.innerHTML = `Click the map where the routes of <b>${escapeHtml(state.depotFor)}</b> end. <b>Esc</b> to stop.`;
  } else if (state.mode === "dropoff") {
    hint.innerHTML = `Click the map where order <b>${escapeHtml(state.order ? state.order.id : "")}</b> is delivered. <b>Esc</b> to stop.`;
  }
  if (state.mode !== "traffic") map.doubleClickZoom.enable();
  hint.classList.toggle("hidden", !state.mode);
  if (wasDepot !== (state.mode === "depot") && state.selected) renderDetail(); // its "Set on map"
  if (wasDropoff !== (state.mode === "dropoff")) showFix(); // the address form's "Set on map"
}
$("#tool-order").addEventListener("click", () => setMode("order"));
$("#tool-traffic").addEventListener("click", () => setMode("traffic"));
document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("#proof-large")?.remove(); });
document.addEventListener("keydown", (e) => { if (e.key === "Escape" && state.mode) { if (state.mode === "traffic") discardDraft(); else setMode(state.mode); } });

function onMapClick(e) {
  if (state.mode === "depot") return placeDepot(e.latlng);
  if (state.mode === "dropoff") return placeDropoff(e.latlng);
  if (state.mode === "order") return openOrderForm(e.latlng);
  if (state.mode === "traffic") {
    state.draft.push(e.latlng);
    drawDraft();
    return;
  }
  const hit = vehicles.hit(e.containerPoint);
  if (hit) selectVehicle(hit.id);
}

function openOrderForm(latlng) {
  const now = new Date(serverNow());
  const form = el("form", { class: "popup-form", id: "order-form" },
    el("h3", {}, "New delivery"),
    el("div", { class: "faint mono" }, `${latlng.lat.toFixed(5)}, ${latlng.lng.toFixed(5)}`),
    el("label", { class: "field" }, "Reference", el("input", { class: "text", name: "reference", placeholder: "e.g. INV-1042", maxlength: 100 })),
    el("div", { class: "grid2" },
      el("label", { class: "field" }, "Deliver within",
        el("select", { class: "text", name: "hours" }, ...[[1, "1 hour"], [2, "2 hours"], [4, "4 hours"], [8, "8 hours"]].map(([v, t]) => el("option", { value: v, selected: v === 2 }, t)))),
      el("label", { class: "field" }, "Priority",
        el("select", { class: "text", name: "priority" }, el("option", { value: "normal" }, "Normal"), el("option", { value: "express" }, "Express")))),
    el("div", { class: "grid2" },
      el("label", { class: "field" }, "Parcels", el("input", { class: "text", name: "parcels", type: "number", min: 1, max: 100, value: 1 })),
      el("label", { class: "field" }, "Customer", el("input", { class: "text", name: "name", placeholder: "optional", maxlength: 200 }))),
    el("label", { class: "field" }, "Phone", el("input", { class: "text", name: "phone", placeholder: "optional", maxlength: 40 })),
    el("label", { class: "field" }, "Notes for the driver", el("textarea", { class: "text", name: "notes", rows: 2, maxlength: 500, placeholder: "e.g. door code 4521, third floor" })),
    el("button", { class: "btn primary", type: "submit" }, "Create order"));
  const popup = L.popup({ minWidth: 260, closeOnClick: false }).setLatLng(latlng).setContent(form).openOn(map);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const d = new FormData(form);
    const end = new Date(now.getTime() + Number(d.get("hours")) * 3600e3);
    const body = {
      dropoff: { lat: latlng.lat, lon: latlng.lng },
      window: { start: now.toISOString(), end: end.toISOString() },
      priority: d.get("priority"),
      size: { parcels: Number(d.get("parcels")) || 1 },
      reference: String(d.get("reference") || ""),
      customer: { name: String(d.get("name") || ""), phone: String(d.get("phone") || "") },
      notes: String(d.get("notes") || "").trim(),
    };
    try {
      const created = await call("/orders", { method: "POST", body });
      map.closePopup(popup);
      const link = `${location.origin}/t/${created.tracking_token}`;
      state.lastCreated = { id: created.order.id, link };
      toast(`Order <b>${escapeHtml(created.order.id)}</b> created. Customer link: <a href="${escapeHtml(link)}" target="_blank" rel="noopener" id="tracking-link">${escapeHtml(link.slice(0, 48))}…</a>`, { ms: 15000 });
      setMode("order");
      showTab("orders");
      loadOrders();
    } catch (err) {
      toast(`Order refused: ${escapeHtml(err.message)}`, { bad: true });
    }
  });
}

function drawDraft() {
  draftLayer.clearLayers();
  if (state.draft.length > 1) L.polygon(state.draft, { color: "#dc2626", weight: 2, dashArray: "6 4", fillOpacity: 0.12 }).addTo(draftLayer);
  for (const p of state.draft) L.circleMarker(p, { radius: 4, color: "#dc2626", fillColor: "#fff", fillOpacity: 1, weight: 2 }).addTo(draftLayer);
}

function finishDraft() {
  if (state.draft.length < 3) { toast("An area needs at least three corners.", { bad: true }); return; }
  state.mode = null;
  $("#tool-traffic").classList.remove("active");
  $("#hint").classList.add("hidden");
  map.getContainer().style.cursor = "";
  map.doubleClickZoom.enable();
  showTab("traffic");
  $("#traffic-form").classList.remove("hidden");
}

function discardDraft() {
  state.draft = [];
  draftLayer.clearLayers();
  $("#traffic-form").classList.add("hidden");
  if (state.mode === "traffic") setMode("traffic");
}
$("#traffic-cancel").addEventListener("click", discardDraft);
$("#traffic-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const d = new FormData(e.target);
  const ring = state.draft.map((p) => [p.lng, p.lat]);
  ring.push(ring[0]);
  const body = { polygon: ring, label: String(d.get("label") || "") };
  if (d.get("kind") === "closed") body.closed = true;
  else body.factor = Number(d.get("kind"));
  if (d.get("minutes")) body.end = new Date(serverNow() + Number(d.get("minutes")) * 60e3).toISOString();
  try {
    const r = await call("/traffic-events", { method: "POST", body });
    toast(`Traffic event <b>${escapeHtml(r.id)}</b> affects ${r.arcs} road segments; routes are being re-planned.`);
    state.draft = [];
    draftLayer.clearLayers();
    $("#traffic-form").classList.add("hidden");
    loadTraffic();
  } catch (err) {
    toast(`Traffic event refused: ${escapeHtml(err.message)}`, { bad: true });
  }
});

function renderTraffic() {
  trafficLayer.clearLayers();
  $("#count-traffic").textContent = state.traffic.length;
  for (const t of state.traffic) {
    if (!t.polygon) continue;
    const ring = t.polygon.map(([lon, lat]) => [lat, lon]);
    L.polygon(ring, { pane: "traffic", color: t.closed ? "#b91c1c" : "#d97706", weight: 2, fillOpacity: 0.18, interactive: true })
      .bindTooltip(`${t.label || t.id}: ${t.closed ? "closed" : `speed ×${t.factor}`}`)
      .addTo(trafficLayer);
  }
  $("#traffic-list").replaceChildren(
    ...state.traffic.map((t) =>
      el("li", { class: "item", dataset: { traffic: t.id }, onclick: () => t.polygon && map.fitBounds(t.polygon.map(([lon, lat]) => [lat, lon]), { maxZoom: 16 }) },
        el("div", { class: "top" }, el("span", { class: "title" }, t.label || t.id), el("span", { class: `badge ${t.closed ? "bad" : "warn"}` }, t.closed ? "closure" : `speed ×${t.factor}`)),
        el("div", { class: "sub" }, el("span", { class: "mono" }, t.id), el("span", {}, t.end ? `until ${clockDate(Date.parse(t.end))}` : "until ended")),
        el("div", { class: "row" }, el("button", { class: "btn small danger", onclick: (e) => { e.stopPropagation(); endTraffic(t.id); } }, "End now")))),
    ...(state.traffic.length ? [] : [el("li", { class: "empty" }, "No traffic event in force.")])
  );
}

async function endTraffic(id) {
  try {
    await call(`/traffic-events/${encodeURIComponent(id)}`, { method: "DELETE" });
    toast(`Traffic event ${escapeHtml(id)} ended.`);
    loadTraffic();
  } catch (err) {
    toast(`Could not end ${escapeHtml(id)}: ${escapeHtml(err.message)}`, { bad: true });
  }
}

$("#tool-density").addEventListener("click", () => {
  state.density = !state.density;
  $("#tool-density").classList.toggle("active", state.density);
  if (state.density) { densityLayer.addTo(map); refreshDensity(); } else densityLayer.remove();
});

async function refreshDensity() {
  const z = map.getZoom();
  const res = z >= 15 ? 9 : z >= 13 ? 8 : z >= 11 ? 7 : 6;
  const cells = await call(`/web/density?res=${res}&bbox=${viewportBbox().map((v) => v.toFixed(5)).join(",")}`).catch(() => []);
  if (!state.density) return;
  state.densityCells = cells.length;
  densityLayer.clearLayers();
  const max = Math.max(1, ...cells.map((c) => c.count));
  for (const c of cells) {
    const t = c.count / max;
    L.polygon(c.boundary, { pane: "density", color: "#7c3aed", weight: 1, opacity: 0.5, fillColor: "#7c3aed", fillOpacity: 0.1 + 0.5 * t, interactive: true })
      .bindTooltip(`${c.count} vehicle${c.count === 1 ? "" : "s"}`)
      .addTo(densityLayer);
  }
}

// ---------- alerts ----------
const NODE_TEXT = { processing: "not processed within 2 h", departure: "not departed within 3 h", lead_time: "not delivered within 48 h", receipt: "not acknowledged within 1 h" };

function renderAlerts() {
  const items = [];
  for (const a of state.alerts.slice(0, 50)) {
    if (a.kind === "held") continue; // while the order is held: see heldAlerts
    if (a.kind === "error_rate") {
      items.push({ cls: "bad", title: `${pct(a.rate)} of drop-offs failed (${a.failed} of ${a.attempts}): above ${pct(a.limit)}`, sub: clockDate(a.at), tag: "error rate" });
      continue;
    }
    if (a.kind === "low_rating") {
      items.push({ cls: "warn", title: `Order ${a.order_id} rated ${a.rating} of 5`, sub: `by its customer · ${clockDate(a.at)}`, tag: "low rating", order: a.order_id });
      continue;
    }
    const text = a.kind === "node_breach" ? `Order ${a.order_id} ${NODE_TEXT[a.node] || `missed the ${a.node} limit`}` : `${a.kind || a.type}${a.order_id ? ` · ${a.order_id}` : ""}`;
    items.push({ cls: "bad", title: text, sub: clockDate(a.at), tag: "breach", order: a.order_id });
  }
  items.push(...heldAlerts());
  const stops = stopIndex();
  for (const [orderId, s] of stops) if (s.late) items.push({ cls: "warn", title: `Order ${orderId} at risk of being late`, sub: `${s.vehicle} · ETA ${clock(s.eta)}`, tag: "late risk", order: orderId });
  for (const f of state.fleet.values()) {
    if (f.connection === "stale" || f.connection === "offline") items.push({ cls: f.connection === "offline" ? "idle" : "warn", title: `${f.name || f.id} is ${f.connection}`, sub: `last ping ${f.position ? ago(f.position.ts) : "never"}`, tag: f.connection });
  }
  // open orders on no route: never planned, or left out by the last plan (e.g. unreachable)
  // (a held order is left out on purpose: its own alert says so)
  const unassigned = state.orders.filter((o) => ["received", "processed"].includes(o.status) && !o.held && !stops.has(o.id));
  if (unassigned.length) items.push({ cls: "warn", title: `${unassigned.length} unassigned order${unassigned.length === 1 ? "" : "s"}`, sub: unassigned.slice(0, 5).map((o) => o.id).join(", "), tag: "unassigned" });
  const failed = state.orders.filter((o) => o.status === "failed");
  for (const o of failed) items.push({ cls: "bad", title: `Delivery failed: ${o.id}`, sub: o.vehicle_id || "", tag: "failed", order: o.id });
  const returning = state.orders.filter((o) => o.status === "returning");
  for (const o of returning) {
    const s = stops.get(o.id);
    items.push({ cls: "return", title: `Returning to sender: ${o.id}`, sub: s ? `${s.vehicle} · back ${clock(s.eta)}` : o.vehicle_id || "", tag: "returning", order: o.id });
  }
  $("#count-alerts").textContent = items.length;
  $("#kpi-alerts").textContent = items.length;
  // The list is redrawn on every status event: an alert's button that had the focus gets it back.
  const focused = document.activeElement && document.activeElement.closest("#alert-list [data-alert]");
  const key = focused ? focused.dataset.alert : null;
  $("#alert-list").replaceChildren(
    ...items.slice(0, 200).map(alertItem),
    ...(items.length ? [] : [el("li", { class: "empty" }, "All clear.")])
  );
  if (key) $$("#alert-list [data-alert]").find((b) => b.dataset.alert === key)?.focus();
}

/** The held orders, one alert each, for as long as they are held: those the order list shows
 * held, and those a `held` alert named that the console does not know released (the list may be
 * filtered to ended orders, or the alert newer than the list). */
function heldAlerts() {
  const raised = new Map(); // order id → its newest held alert
  for (const a of state.alerts) if (a.kind === "held" && !raised.has(a.order_id)) raised.set(a.order_id, a);
  const held = new Map(state.orders.filter((o) => o.held).map((o) => [o.id, o]));
  for (const [id, a] of raised) if (!held.has(id) && heldNow(id) !== false) held.set(id, { id, held: a.reason, vehicle_id: null });
  return [...held.values()].map((o) => {
    const a = raised.get(o.id);
    const sub = [o.vehicle_id ? `parcel on ${o.vehicle_id}` : "", a ? clockDate(a.at) : ""].filter(Boolean).join(" · ");
    return { cls: "bad", title: `Order ${o.id} held: ${heldText(o.held)} — correct it or send it out again`, sub, tag: "held", order: o.id };
  });
}

/** Whether an order is held, as far as the console knows: true, false or null (not known). */
function heldNow(id) {
  const o = state.orders.find((x) => x.id === id) || (state.order && state.order.id === id ? state.order.data : null);
  if (o) return !!o.held;
  // A held order is open (received): absent from the list of every open order, it is not held.
  return state.orderFilter === "open" && state.orders.length < OPEN_LIMIT ? false : null;
}

/** An alert in the list; one that names an order is a button opening the order's detail. */
function alertItem(a) {
  if (!a.order) return el("li", { class: "item" }, el("div", { class: "top" }, el("span", { class: "title" }, a.title), el("span", { class: `badge ${a.cls}` }, a.tag)), el("div", { class: "sub" }, a.sub));
  return el("li", { class: "item linked", dataset: { order: a.order } },
    el("button", { type: "button", class: "item-button", title: "Open the order", dataset: { alert: `${a.tag}:${a.order}` }, onclick: () => openOrder(a.order, { from: "alerts" }) },
      el("span", { class: "top" }, el("span", { class: "title" }, a.title), el("span", { class: `badge ${a.cls}` }, a.tag)),
      el("span", { class: "sub" }, a.sub)));
}

signIn();

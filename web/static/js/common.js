// Shared helpers of the fleet pages: tokens, API calls, sockets, the map and its offline basemap.
/* global L */

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

/** A token from the URL fragment (#token=…), which browsers never send to the server; the
 * fragment is cleared at once so the token does not linger in the address bar. */
export function tokenFromFragment() {
  const m = location.hash.match(/token=([^&]+)/);
  if (!m) return null;
  history.replaceState(null, "", location.pathname + location.search);
  return decodeURIComponent(m[1]);
}

export function wsUrl(path) {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(path, { token, method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export function toast(html, { bad = false, ms = 5000 } = {}) {
  let box = $(".toasts");
  if (!box) document.body.append((box = el("div", { class: "toasts" })));
  const t = el("div", { class: "toast" + (bad ? " bad" : "") });
  t.innerHTML = html;
  box.append(t);
  setTimeout(() => t.remove(), ms);
}

export const escapeHtml = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

// ---- the server's clock ----
// "2 min ago" and "in 5 min" are counted from the server's time, which /web/config tells: the
// browser's computer may be off by minutes, and a simulation (`fleet simulate --speed N`) runs
// its servers' clock N times faster than real time. Until the config is read: the browser's.
let serverClock = null; // { at: server ms, local: Date.now() then, rate }
function setServerClock(c) {
  if (c && Number.isFinite(c.now_ms) && Number.isFinite(c.rate) && c.rate > 0) {
    serverClock = { at: c.now_ms, local: Date.now(), rate: c.rate };
  }
}
export const serverNow = () =>
  serverClock ? serverClock.at + (Date.now() - serverClock.local) * serverClock.rate : Date.now();

// ---- time formatting ----
export const clock = (ms) => (ms ? new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "—");
export const clockDate = (ms) => (ms ? new Date(ms).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }) : "—");
export function ago(ms, now = serverNow()) {
  if (!ms) return "never";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}
export function inMinutes(ms, now = serverNow()) {
  const m = Math.round((ms - now) / 60000);
  if (m <= 0) return "now";
  if (m < 60) return `in ${m} min`;
  return `in ${Math.floor(m / 60)} h ${m % 60} min`;
}
export const pct = (x) => (x === null || x === undefined ? "—" : `${Math.round(x * 100)}%`);

// ---- map ----
export async function loadConfig() {
  try {
    const config = await api("/web/config");
    setServerClock(config.clock);
    return config;
  } catch {
    return { tile_url: "", bbox: null };
  }
}

const ROAD_STYLE = [
  // by class: 0 fast … 3 slow; casing then fill
  { casing: "#d9a13b", fill: "#fcd581", w: [2, 3, 5, 8] },
  { casing: "#c9d1dc", fill: "#ffffff", w: [1.5, 2.5, 4, 6.5] },
  { casing: "#d3d9e2", fill: "#ffffff", w: [1, 2, 3, 5] },
  { casing: null, fill: "#d5dbe4", w: [0.6, 1, 2, 3.5] },
];

/** A Leaflet map with online tiles when a tile URL is configured, else the road network drawn
 * from /roads/geometry (no internet needed). */
export function createMap(node, config, options = {}) {
  const map = L.map(node, { preferCanvas: true, zoomSnap: 0.5, attributionControl: true, ...options });
  map.attributionControl.setPrefix(false);
  if (config.tile_url) {
    L.tileLayer(config.tile_url, { maxZoom: 19, attribution: "© OpenStreetMap contributors" }).addTo(map);
  } else {
    addRoadBasemap(map, options.roadsBbox);
    map.attributionControl.addAttribution("Roads © OpenStreetMap contributors");
  }
  return map;
}

export function addRoadBasemap(map, bbox) {
  const pane = map.createPane("roads");
  pane.style.zIndex = 250;
  pane.style.pointerEvents = "none";
  const renderer = L.canvas({ pane: "roads", padding: 0.3 });
  const layers = [];
  const q = bbox ? `?bbox=${bbox.map((v) => v.toFixed(5)).join(",")}` : "";
  fetch(`/roads/geometry${q}`)
    .then((r) => (r.ok ? r.json() : { lines: [] }))
    .then((data) => {
      const byClass = [[], [], [], []];
      for (const line of data.lines) {
        const pts = [];
        for (let i = 1; i < line.length; i += 2) pts.push([line[i], line[i + 1]]);
        byClass[line[0]].push(pts);
      }
      // Slow roads first, fast ones on top; one multi-polyline per class and style.
      for (let k = 3; k >= 0; k--) {
        const s = ROAD_STYLE[k];
        if (!byClass[k].length) continue;
        if (s.casing) layers.push({ k, casing: true, layer: L.polyline(byClass[k], { renderer, color: s.casing, weight: 1, interactive: false, lineCap: "round", lineJoin: "round" }) });
        layers.push({ k, casing: false, layer: L.polyline(byClass[k], { renderer, color: s.fill, weight: 1, interactive: false, lineCap: "round", lineJoin: "round" }) });
      }
      layers.sort((a, b) => (a.casing === b.casing ? b.k - a.k : a.casing ? -1 : 1));
      for (const l of layers) l.layer.addTo(map);
      restyle();
      map.fire("roadsloaded");
    })
    .catch(() => {});
  function restyle() {
    const z = map.getZoom();
    const idx = z < 12 ? 0 : z < 14 ? 1 : z < 16 ? 2 : 3;
    for (const { k, casing, layer } of layers) {
      const w = ROAD_STYLE[k].w[idx];
      layer.setStyle({ weight: casing ? w + 1.5 : w });
    }
  }
  map.on("zoomend", restyle);
}

export function divIcon(html, className, size = [22, 22]) {
  return L.divIcon({ html, className, iconSize: size, iconAnchor: [size[0] / 2, size[1] / 2] });
}

// A Leaflet layer that draws every live vehicle on one canvas: thousands of arrows in a few
// milliseconds, redrawn at most once per animation frame, no DOM element per vehicle.
/* global L */

export const STATUS_COLOURS = {
  busy: "#2563eb", // online with stops ahead
  idle: "#16a34a", // online, nothing to do
  stale: "#d97706", // no ping for a while
  offline: "#94a3b8", // gone
  service: "#dc2626", // maintenance, broken down, off shift
};

const TAU = Math.PI * 2;

export const VehicleLayer = L.Layer.extend({
  initialize(options = {}) {
    this.vehicles = new Map(); // id → {lat, lon, heading, ts, speed}
    this.colourOf = options.colourOf || (() => STATUS_COLOURS.idle);
    this.selected = null;
    this.frameRequested = false;
    this.draws = 0;
    this.sprites = new Map();
    this.drawMs = []; // how long the last draws took (ms), for the frame budget
  },

  onAdd(map) {
    this.canvas = L.DomUtil.create("canvas", "leaflet-zoom-hide vehicle-canvas");
    this.canvas.style.pointerEvents = "none";
    const pane = map.getPane("vehicles") || map.createPane("vehicles");
    pane.style.zIndex = 450;
    pane.appendChild(this.canvas);
    this.ctx = this.canvas.getContext("2d");
    map.on("moveend zoomend resize viewreset", this.reset, this);
    this.reset();
  },

  onRemove(map) {
    map.off("moveend zoomend resize viewreset", this.reset, this);
    this.canvas.remove();
  },

  reset() {
    const map = this._map;
    if (!map) return;
    const size = map.getSize();
    const ratio = window.devicePixelRatio || 1;
    if (this.canvas.width !== size.x * ratio || this.canvas.height !== size.y * ratio) {
      this.canvas.width = size.x * ratio;
      this.canvas.height = size.y * ratio;
      this.canvas.style.width = size.x + "px";
      this.canvas.style.height = size.y + "px";
    }
    this.draw();
  },

  /** Merge positions (the console socket's frames); draws on the next animation frame. */
  update(list) {
    for (const v of list) this.vehicles.set(v.id, v);
    this.schedule();
  },

  remove(id) {
    this.vehicles.delete(id);
    this.schedule();
  },

  schedule() {
    if (this.frameRequested || !this._map) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      this.draw();
    });
  },

  /** Container pixel of a position, by Web Mercator arithmetic (no allocation). */
  project(lat, lon, out) {
    const phi = (Math.max(-85.05, Math.min(85.05, lat)) * Math.PI) / 180;
    out[0] = ((lon + 180) / 360) * this.scale - this.ox;
    out[1] = (0.5 - Math.log(Math.tan(Math.PI / 4 + phi / 2)) / TAU) * this.scale - this.oy;
  },

  prepare() {
    const map = this._map;
    this.scale = 256 * Math.pow(2, map.getZoom());
    const topLeft = map.containerPointToLayerPoint([0, 0]).add(map.getPixelOrigin());
    this.ox = topLeft.x;
    this.oy = topLeft.y;
  },

  draw() {
    const map = this._map;
    if (!map) return;
    this.draws++;
    const started = performance.now();
    const ctx = this.ctx;
    const ratio = window.devicePixelRatio || 1;
    const w = this.canvas.width / ratio, h = this.canvas.height / ratio;
    L.DomUtil.setPosition(this.canvas, map.containerPointToLayerPoint([0, 0]));
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    this.prepare();
    const zoom = map.getZoom();
    const r = zoom >= 15 ? 8 : zoom >= 13 ? 6.5 : 5;
    const p = [0, 0];
    let selected = null;
    // Each vehicle is one drawImage of a pre-drawn sprite (colour × heading in 10° steps), at its
    // natural size in device pixels: software canvases (no GPU) blit small images far faster
    // than they fill and stroke paths, and an unscaled blit is the cheapest of all.
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    const sets = new Map(); // colour → its 37 sprites at this size, looked up once per colour
    const margin = r * 2;
    for (const v of this.vehicles.values()) {
      this.project(v.lat, v.lon, p);
      const x = p[0], y = p[1];
      if (x < -margin || y < -margin || x > w + margin || y > h + margin) continue;
      const colour = this.colourOf(v);
      let set = sets.get(colour);
      if (!set) sets.set(colour, (set = this.spriteSet(colour, r, ratio)));
      const heading = v.heading;
      const sprite = set[Number.isFinite(heading) ? (((Math.round(heading / 10) % 36) + 36) % 36) : 36];
      ctx.drawImage(sprite, Math.round((x - sprite.half) * ratio), Math.round((y - sprite.half) * ratio));
      if (v.id === this.selected) selected = [x, y];
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    if (selected) {
      ctx.beginPath();
      ctx.arc(selected[0], selected[1], r * 2.2, 0, TAU);
      ctx.strokeStyle = "#0f172a";
      ctx.lineWidth = 2.5;
      ctx.stroke();
    }
    this.drawMs.push(performance.now() - started);
    if (this.drawMs.length > 200) this.drawMs.shift();
  },

  /** One colour's sprites at one size: index = heading / 10° (0–35), 36 = no heading. */
  spriteSet(colour, r, ratio) {
    const key = `${colour}|${r}|${ratio}`;
    let set = this.sprites.get(key);
    if (!set) {
      set = [];
      for (let bucket = 0; bucket < 36; bucket++) set.push(this.sprite(colour, bucket, r, ratio));
      set.push(this.sprite(colour, -1, r, ratio));
      this.sprites.set(key, set);
    }
    return set;
  },

  /** A small canvas with one vehicle symbol (heading bucket, -1 = none), drawn once. */
  sprite(colour, bucket, r, ratio) {
    const css = Math.ceil(r * 2.5 + 3); // the arrow reaches 1.25 r from the centre, plus its outline
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = css * ratio;
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    const c = css / 2;
    ctx.beginPath();
    if (bucket < 0) {
      ctx.arc(c, c, r * 0.8, 0, TAU);
    } else {
      const a = (bucket * 10 * Math.PI) / 180;
      const sn = Math.sin(a), cs = Math.cos(a);
      // an arrow pointing along the heading (0 = north, clockwise)
      ctx.moveTo(c + sn * r * 1.25, c - cs * r * 1.25);
      ctx.lineTo(c + cs * r * 0.85 - sn * r * 0.9, c + sn * r * 0.85 + cs * r * 0.9);
      ctx.lineTo(c - sn * r * 0.35, c + cs * r * 0.35);
      ctx.lineTo(c - cs * r * 0.85 - sn * r * 0.9, c - sn * r * 0.85 + cs * r * 0.9);
      ctx.closePath();
    }
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = "rgba(255,255,255,0.95)";
    ctx.fillStyle = colour;
    ctx.stroke();
    ctx.fill();
    canvas.half = c;
    return canvas;
  },

  /** The vehicle nearest to a container point, within ``radius`` pixels. */
  hit(point, radius = 12) {
    if (!this._map) return null;
    this.prepare();
    const p = [0, 0];
    let best = null, bestD = radius * radius;
    for (const v of this.vehicles.values()) {
      this.project(v.lat, v.lon, p);
      const d = (p[0] - point.x) ** 2 + (p[1] - point.y) ** 2;
      if (d <= bestD) { best = v; bestD = d; }
    }
    return best;
  },

  /** Screen position of a vehicle (for tests and popups). */
  pointOf(id) {
    const v = this.vehicles.get(id);
    if (!v || !this._map) return null;
    this.prepare();
    const p = [0, 0];
    this.project(v.lat, v.lon, p);
    return { x: p[0], y: p[1] };
  },
});

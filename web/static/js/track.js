// The customer's tracking page: status timeline, live ETA, the vehicle only once it is close, and
// once delivered the proof of delivery (photo, signature) and the customer's rating of it. A
// parcel that could not be delivered and goes back to the sender (returning, then returned) has
// no ETA: the van is not coming.
/* global L */
import { $, el, api, wsUrl, clock, inMinutes, loadConfig, createMap, divIcon, toast, escapeHtml, serverNow } from "./common.js";

const token = decodeURIComponent(location.pathname.split("/").pop());
const STEPS = [
  ["received", "Order received"],
  ["processed", "Confirmed, driver assigned"],
  ["departed", "Out for delivery"],
  ["arrived", "Driver at your door"],
  ["delivered", "Delivered"],
];
const HEADLINE = {
  received: "Order received",
  processed: "Preparing your delivery",
  departed: "On the way",
  picked_up: "On the way",
  arrived: "Driver has arrived",
  delivered: "Delivered",
  failed: "Delivery attempt failed",
  returning: "Being returned to the sender",
  returned: "Returned to the sender",
  cancelled: "Cancelled",
};
const GOING_BACK = ["returning", "returned"];
const NOT_COMING = ["failed", "returning"]; // not final, but no van is on its way to the customer (nor while held)
const BAD = ["failed", "returning", "returned", "cancelled"];
const REASONS = { customer_absent: "nobody was home", refused: "the parcel was refused", address_wrong: "the address could not be found", other: "a problem on the way" };
const page = { view: null, map: null, dest: null, van: null, area: null, fitted: false };
window.fleetTracking = page;

function showUnknown() {
  document.body.replaceChildren(
    el("div", { class: "phone" },
      el("header", {}, el("div", { class: "brand" }, el("span", { class: "logo" }, "▲"), el("span", {}, "Delivery tracking"))),
      el("main", { class: "body" },
        el("div", { class: "card notice", id: "unknown-link" },
          el("div", { class: "icon" }, "?"),
          el("h1", {}, "This tracking link is unknown or has expired"),
          el("p", { class: "muted", style: "margin:0" }, "Check that you opened the whole link from your message.")))));
}

async function main() {
  let view;
  try {
    view = await api(`/track/${encodeURIComponent(token)}`);
  } catch (err) {
    if (err.status === 404) return showUnknown();
    $("#status").textContent = "Cannot reach the server; retrying…";
    setTimeout(main, 3000);
    return;
  }
  const config = await loadConfig();
  const d = view.destination;
  const span = 0.08;
  page.map = createMap($("#map"), config, { zoomControl: false, roadsBbox: [d.lon - span, d.lat - span, d.lon + span, d.lat + span] });
  page.map.setView([d.lat, d.lon], 14);
  page.dest = L.marker([d.lat, d.lon], { icon: divIcon('<div class="dest-pin"></div>', "", [30, 30]), keyboard: false, title: "Your address" }).addTo(page.map);
  render(view);
  connect();
  setInterval(() => page.view && renderEta(page.view), 30000);
}

function connect() {
  const socket = new WebSocket(wsUrl(`/ws/track/${encodeURIComponent(token)}`));
  const live = $("#live");
  socket.onopen = () => { live.textContent = "live"; live.className = "badge ok"; };
  socket.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (msg.type === "track") render(msg);
  };
  socket.onclose = (e) => {
    if (e.code === 4004) return showUnknown();
    live.textContent = "reconnecting";
    live.className = "badge warn";
    setTimeout(connect, 3000);
  };
}

/** Whether a van is on its way to the customer (so an ETA means something). */
const coming = (v) => !v.final && !v.held && !NOT_COMING.includes(v.status);

function renderEta(v) {
  const eta = $("#eta");
  delete eta.dataset.eta; // set below only while an ETA is shown
  if (v.status === "delivered") {
    const at = v.timeline.find((t) => t.status === "delivered");
    eta.textContent = at ? `at ${clock(at.at)}` : "Delivered";
  } else if (!coming(v)) {
    eta.textContent = "—";
  } else if (v.eta) {
    eta.textContent = `${clock(v.eta)}`;
    eta.dataset.eta = String(v.eta);
  } else {
    eta.textContent = "Being scheduled";
  }
  if (v.held) {
    $("#window").textContent = "We will contact you. Tell the driver below how to find you: the next attempt goes by it.";
    return;
  }
  if (GOING_BACK.includes(v.status)) {
    $("#window").textContent = `${v.status === "returned" ? "The parcel is back with the sender" : "The parcel could not be delivered and goes back to the sender"}: contact them to arrange a new delivery.`;
    return;
  }
  const w = v.window;
  const extra = v.eta && coming(v) ? ` · arriving ${inMinutes(v.eta)}` : "";
  $("#window").textContent = `Promised between ${clock(w.start)} and ${clock(w.end)}${extra}${v.late_risk && coming(v) ? " · running late" : ""}`;
}

function render(v) {
  page.view = v;
  page.updates = (page.updates || 0) + 1;
  // Held: the driver could not find the address; the company calls, and the customer's own
  // instructions are what helps the next attempt.
  $("#status").textContent = v.held ? "We could not find your address" : HEADLINE[v.status] || v.status;
  $("#status").style.color = BAD.includes(v.status) || v.held ? "var(--bad)" : v.status === "delivered" ? "var(--ok)" : "";
  renderEta(v);
  renderTimeline(v);
  renderMap(v);
  renderProofs(v);
  renderInstructions(v);
  renderFeedback(v);
}

// The customer's instructions for the driver: editable until the van is at the door, then shown.
function renderInstructions(v) {
  const card = $("#instructions-card");
  const open = v.instructions_open;
  card.classList.toggle("hidden", !open && !v.instructions);
  $("#instructions-form").classList.toggle("hidden", !open);
  const text = $("#instructions-text");
  text.classList.toggle("hidden", open);
  text.textContent = v.instructions || "";
  const box = $("#instructions");
  if (open && document.activeElement !== box && !box.dataset.dirty) box.value = v.instructions || "";
}

$("#instructions").addEventListener("input", (e) => { e.target.dataset.dirty = "1"; });
$("#instructions-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const box = $("#instructions");
  const button = e.target.querySelector("button");
  button.disabled = true;
  try {
    const saved = await api(`/track/${encodeURIComponent(token)}/instructions`, { method: "PUT", body: { instructions: box.value } });
    box.value = saved.instructions;
    delete box.dataset.dirty;
    $("#instructions-state").textContent = `Saved at ${clock(serverNow())}: your driver will see them.`;
  } catch (err) {
    toast(`Not saved: ${escapeHtml(err.message)}`, { bad: true });
  } finally {
    button.disabled = false;
  }
});

// The customer's rating of the delivery, once it is made: 1 to 5 stars and a comment, then
// thanks with what they gave, and "Change" to reopen the form (prefilled). While the form is
// being changed, a live update leaves it alone.
function renderFeedback(v) {
  const given = v.feedback;
  const form = $("#feedback-form");
  const asking = v.feedback_open && (!given || page.feedbackEditing || !!form.dataset.dirty);
  $("#feedback-card").classList.toggle("hidden", !v.feedback_open && !given);
  form.classList.toggle("hidden", !asking);
  $("#feedback-thanks").classList.toggle("hidden", asking || !given);
  $("#feedback-change").classList.toggle("hidden", !v.feedback_open);
  $("#feedback-keep").classList.toggle("hidden", !given);
  if (given) {
    const stars = $("#feedback-given");
    stars.textContent = "★".repeat(given.rating) + "☆".repeat(5 - given.rating);
    stars.setAttribute("aria-label", `${given.rating} of 5 stars`);
    const text = $("#feedback-text");
    text.textContent = given.comment;
    text.classList.toggle("hidden", !given.comment);
  }
  if (asking && !form.dataset.dirty) {
    const box = $("#feedback-comment");
    if (document.activeElement !== box) box.value = given ? given.comment : "";
    pickStars(given ? given.rating : 0);
  }
}

/** Show ``rating`` stars (0: none) as chosen: that one pressed, it and those before it lit. */
function pickStars(rating) {
  $("#feedback-form").dataset.rating = String(rating);
  for (const star of $("#feedback-stars").children) {
    const n = Number(star.dataset.rating);
    star.setAttribute("aria-pressed", String(n === rating));
    star.classList.toggle("on", n <= rating);
  }
}

$("#feedback-stars").addEventListener("click", (e) => {
  const star = e.target.closest("button[data-rating]");
  if (!star) return;
  $("#feedback-form").dataset.dirty = "1";
  pickStars(Number(star.dataset.rating));
  $("#feedback-state").textContent = "";
});
$("#feedback-comment").addEventListener("input", () => { $("#feedback-form").dataset.dirty = "1"; });
$("#feedback-change").addEventListener("click", (e) => {
  e.preventDefault();
  page.feedbackEditing = true;
  delete $("#feedback-form").dataset.dirty; // prefilled with what was given
  $("#feedback-state").textContent = "";
  renderFeedback(page.view);
  $("#feedback-stars [aria-pressed=true]")?.focus();
});
$("#feedback-keep").addEventListener("click", () => {
  page.feedbackEditing = false;
  delete $("#feedback-form").dataset.dirty;
  renderFeedback(page.view);
});
$("#feedback-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = e.target;
  const state = $("#feedback-state");
  const rating = Number(form.dataset.rating);
  state.classList.remove("bad");
  if (!rating) {
    state.textContent = "Choose from 1 to 5 stars first.";
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  state.textContent = "";
  try {
    const saved = await api(`/track/${encodeURIComponent(token)}/feedback`, { method: "PUT", body: { rating, comment: $("#feedback-comment").value } });
    delete form.dataset.dirty;
    page.feedbackEditing = false;
    page.view = { ...page.view, feedback: saved };
    renderFeedback(page.view);
  } catch (err) {
    state.textContent = `Not sent: ${err.message}`;
    state.classList.add("bad");
  } finally {
    button.disabled = false;
  }
});

const PROOF_LABEL = { photo: "Photo at delivery", signature: "Signature" };

function renderProofs(v) {
  const proofs = v.proofs || [];
  const shown = proofs.map((p) => p.id).join();
  if (shown === page.proofsShown) return; // the images stay as they are: no reload, no flicker
  page.proofsShown = shown;
  $("#proofs").classList.toggle("hidden", !proofs.length);
  $("#proof-list").replaceChildren(...proofs.map((p) =>
    el("figure", { dataset: { proof: p.id, kind: p.kind } },
      el("a", { href: p.url, target: "_blank", rel: "noopener", title: "Open full size" },
        el("img", { src: p.url, class: p.kind, alt: PROOF_LABEL[p.kind] || p.kind })),
      el("figcaption", {}, `${PROOF_LABEL[p.kind] || p.kind} · ${clock(p.at)}`))));
}

function renderTimeline(v) {
  const when = {};
  for (const t of v.timeline) if (!(t.status in when)) when[t.status] = t.at;
  const failed = v.timeline.filter((t) => t.status === "failed").pop();
  // Going back to the sender: no delivery step ahead; the failed attempt is where it stands, then
  // the parcel back with the sender.
  const back = GOING_BACK.includes(v.status);
  const steps = back ? STEPS.filter(([s]) => s !== "delivered") : STEPS;
  const reached = steps.map(([s]) => s in when || (s === "departed" && "picked_up" in when));
  let last = -1;
  reached.forEach((r, i) => { if (r) last = i; });
  const items = steps.map(([s, label], i) => {
    const cls = i <= last ? "done" : i === last + 1 && coming(v) ? "now" : "todo";
    return el("li", { class: cls, dataset: { step: s } },
      el("span", { class: "dot" }, cls === "done" ? "✓" : ""),
      el("span", { class: "what" }, label),
      el("span", { class: "when" }, when[s] ? clock(when[s]) : s === "delivered" && v.eta && coming(v) ? `ETA ${clock(v.eta)}` : ""));
  });
  if (failed) items.push(el("li", { class: `fail${v.status === "returning" ? " now" : ""}`, dataset: { step: "failed" } }, el("span", { class: "dot" }, "!"), el("span", { class: "what" }, `Attempt failed: ${REASONS[failed.reason] || "see the sender"}`), el("span", { class: "when" }, clock(failed.at))));
  if (back) {
    const done = v.status === "returned";
    items.push(el("li", { class: done ? "done" : "todo", dataset: { step: "returned" } }, el("span", { class: "dot" }, done ? "✓" : ""), el("span", { class: "what" }, "Returned to the sender"), el("span", { class: "when" }, done && when.returned ? clock(when.returned) : "")));
  }
  if (v.status === "cancelled") items.push(el("li", { class: "fail" }, el("span", { class: "dot" }, "✕"), el("span", { class: "what" }, "Order cancelled"), el("span", { class: "when" }, clock(when.cancelled))));
  $("#timeline").replaceChildren(...items);
}

function renderMap(v) {
  const map = page.map;
  const note = $("#mapnote");
  if (page.van) { page.van.remove(); page.van = null; }
  if (page.area) { page.area.remove(); page.area = null; }
  if (v.vehicle) {
    page.van = L.marker([v.vehicle.lat, v.vehicle.lon], { icon: divIcon('<div class="van-pin" id="vehicle-marker" title="Your driver"><svg viewBox="0 0 24 24" width="18" height="18" fill="#fff" aria-hidden="true"><path d="M2 6h12v10H2zM15 9h4l3 3.5V16h-7z"/><circle cx="6.5" cy="17.5" r="2" stroke="#2563eb" stroke-width="1"/><circle cx="17.5" cy="17.5" r="2" stroke="#2563eb" stroke-width="1"/></svg></div>', "", [34, 34]), keyboard: false, title: "Your driver" }).addTo(map);
    note.textContent = v.distance_m != null ? `Your driver is ${v.distance_m < 1000 ? `${v.distance_m} m` : `${(v.distance_m / 1000).toFixed(1)} km`} away${v.stops_away ? ` · ${v.stops_away === 1 ? "you are the next stop" : `${v.stops_away - 1} stops before yours`}` : ""}.` : "Your driver is nearby.";
    if (page.fitted !== "vehicle") { map.fitBounds([[v.vehicle.lat, v.vehicle.lon], [v.destination.lat, v.destination.lon]], { paddingTopLeft: [40, 40], paddingBottomRight: [40, 90], maxZoom: 16 }); page.fitted = "vehicle"; }
  } else if (v.vehicle_area) {
    page.area = L.polygon(v.vehicle_area.boundary, { color: "#2563eb", weight: 1.5, dashArray: "4 4", fillOpacity: 0.12, interactive: false }).addTo(map);
    const vis = v.visibility;
    const rules = []; // the server's privacy rules that are on (0: off)
    if (vis.stops) rules.push(`your stop is ${vis.stops === 1 ? "next" : `at most ${vis.stops} stops away`}`);
    if (vis.minutes) rules.push(`the driver is due within ${vis.minutes} min`);
    if (vis.metres) rules.push(`the driver is within ${vis.metres >= 1000 ? `${(vis.metres / 1000).toFixed(1)} km` : `${vis.metres} m`}`);
    note.textContent = `Your driver is in the shaded area.${rules.length ? ` The exact position appears when ${rules.join(" or ")}.` : ""}`;
    if (page.fitted !== "area") { map.fitBounds([...v.vehicle_area.boundary, [v.destination.lat, v.destination.lon]], { paddingTopLeft: [30, 30], paddingBottomRight: [30, 90], maxZoom: 15 }); page.fitted = "area"; }
  } else {
    note.textContent = v.status === "returning" ? "The parcel is going back to the sender: no driver is on the way to you."
      : v.status === "returned" ? "The parcel is back with the sender."
      : v.final ? "This delivery is complete."
      : "Your driver's position will appear here once the delivery is on its way.";
  }
}

main();

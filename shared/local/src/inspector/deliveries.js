// The delivery inspector: the deliveries from /api/deliveries (polled, so new ones show
// within two seconds), an event's journey from /api/events/<id>, and sends again
// through /api/replays (a JSON POST: a page on another site cannot make one). Standard
// library only.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const withToken = (url) => token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
const $ = (id) => document.getElementById(id);
const FILTERS = ["endpoint", "outcome", "type", "since"];
const CONSUMERS = ["slack", "alerts", "progress"];
const EVERY_MS = 2000;
let shown = null; // the event whose journey is open
let counted = null; // the re-send the count was for

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function when(at) {
  const d = new Date(at);
  return isNaN(d) ? at : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function query() {
  const p = new URLSearchParams();
  for (const name of FILTERS) {
    const value = $(name).value.trim();
    if (value) p.set(name, value);
  }
  p.set("limit", "200");
  return p;
}

async function json(response) {
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || ("HTTP " + response.status));
  return body;
}

async function load() {
  try {
    const { items } = await json(await fetch(withToken("/api/deliveries?" + query())));
    render(items);
    $("error").hidden = true;
    $("live").textContent = "live";
    $("live").className = "on";
  } catch (error) {
    $("error").textContent = error.message;
    $("error").hidden = false;
    $("live").textContent = "not updating";
    $("live").className = "";
  }
}

function render(items) {
  const rows = $("rows");
  rows.replaceChildren(...items.map((d) => {
    const tr = el("tr", "delivery");
    tr.append(el("td", "time", when(d.time)), el("td", "endpoint", d.endpoint),
              el("td", "wide", d.method + " " + d.status));
    const outcome = el("td");
    outcome.append(el("span", "outcome " + d.outcome, d.outcome));
    if (d.reason && d.reason !== d.outcome) outcome.append(" ", el("span", "reason", d.reason));
    if (d.body !== undefined) {
      // Captured while its endpoint captures refused bodies (kept a day).
      const body = el("details", "body");
      body.append(el("summary", "reason", "body captured"), el("pre", "captured", d.body));
      outcome.append(body);
    }
    tr.append(outcome);
    const event = el("td");
    if (d.event_id) {
      const link = el("button", "event", d.event_id);
      link.type = "button";
      link.dataset.id = d.event_id;
      link.addEventListener("click", () => open(d.event_id));
      event.append(link, el("div", "reason", d.type || ""));
    }
    tr.append(event);
    return tr;
  }));
  $("empty").hidden = items.length > 0;
}

async function open(id) {
  if (shown !== id) $("retry-note").textContent = "";
  shown = id;
  history.replaceState(null, "", "#event=" + encodeURIComponent(id));
  try {
    const journey = await json(await fetch(withToken("/api/events/" + encodeURIComponent(id))));
    // Closed, or another event opened, while this one was asked for.
    if (shown === id) showJourney(journey);
  } catch (error) {
    if (shown === id) $("retry-note").textContent = error.message;
  }
}

// Runs of the same step (a consumer's retries with the same reason) as one row: its
// first time, how many, and the attempts from first to last.
function runs(steps) {
  const rows = [];
  for (const s of steps) {
    const detail = (s.replay ? "[replay " + s.replay + "] " : "") + (s.detail || "");
    const last = rows[rows.length - 1];
    if (last && last.consumer === s.consumer && last.outcome === s.outcome && last.detail === detail) {
      last.count += 1;
      last.to = s.attempt;
    } else {
      rows.push({ time: s.time, consumer: s.consumer, outcome: s.outcome, detail, count: 1, from: s.attempt, to: s.attempt });
    }
  }
  return rows;
}

function showJourney(journey) {
  $("event").hidden = false;
  $("event-id").textContent = journey.event_id;
  // The trace its delivery started (docs/deliveries.md, "Traces"), to look up elsewhere.
  const traced = (journey.deliveries || []).find((d) => d.trace_id);
  $("event-trace").textContent = traced ? "trace " + traced.trace_id : "";
  $("steps").replaceChildren(...runs(journey.steps).map((r) => {
    const tr = el("tr", "step");
    const what = el("td");
    what.append(el("span", "outcome " + r.outcome, r.outcome));
    if (r.count > 1) what.append(" ×" + r.count);
    const attempts = r.from === r.to ? String(r.from) : r.from + "–" + r.to;
    tr.append(el("td", "time", when(r.time)), el("td", "consumer", r.consumer), what,
              el("td", "attempt", attempts), el("td", "detail", r.detail));
    return tr;
  }));
  // Retry to each consumer the event was queued for (the warehouse is the archive a
  // retry reads from, so it is not one of them).
  const queued = journey.steps.filter((s) => s.consumer === "ingest")
    .map((s) => s.detail).join(" ");
  const buttons = CONSUMERS.filter((c) => queued.includes(c)).map((c) => {
    const b = el("button", "retry-to", "Retry to " + c);
    b.type = "button";
    b.dataset.to = c;
    b.addEventListener("click", () => retry(journey.event_id, c));
    return b;
  });
  $("retry").replaceChildren(...buttons);
}

async function replay(body) {
  return json(await fetch(withToken("/api/replays"), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  }));
}

async function retry(id, to) {
  $("retry-note").textContent = "Sending to " + to + "…";
  try {
    const r = await replay({ to, ids: [id] });
    $("retry-note").textContent = r.sent > 0
      ? "Sent again to " + to + " (replay " + r.name + "); its steps follow below."
      : "Nothing sent: the event is not in the warehouse yet, or " + to + " does not take it.";
    open(id);
  } catch (error) {
    $("retry-note").textContent = error.message;
  }
}

// What the filters select, as a replay's selection.
function selection() {
  const body = { to: $("resend-to").value };
  if ($("endpoint").value.trim()) body.endpoint = $("endpoint").value.trim();
  if ($("type").value.trim()) body.type = $("type").value.trim();
  if ($("since").value.trim()) body.since = $("since").value.trim();
  return body;
}

function resetCount() {
  counted = null;
  $("send").hidden = true;
  $("resend-note").textContent = "";
}

async function count() {
  resetCount();
  const outcome = $("outcome").value;
  if (outcome && outcome !== "accepted" && outcome !== "duplicate") {
    $("resend-note").textContent = outcome + " deliveries never became events: nothing to send again.";
    return;
  }
  const body = selection();
  try {
    const r = await replay({ ...body, dry_run: true });
    const skipped = body.to === "slack" && r.already_posted > 0
      ? " (" + r.already_posted + " posted already: Slack skips them)" : "";
    $("resend-note").textContent = r.sent + " event(s) would go to " + body.to + skipped + ".";
    if (r.sent > 0) {
      counted = body;
      $("send").textContent = "Send " + r.sent;
      $("send").hidden = false;
    }
  } catch (error) {
    $("resend-note").textContent = error.message;
  }
}

async function send() {
  if (!counted) return;
  const body = counted;
  resetCount();
  try {
    const r = await replay(body);
    $("resend-note").textContent = "Sent " + r.sent + " event(s) to " + body.to + " (replay " + r.name + ").";
  } catch (error) {
    $("resend-note").textContent = error.message;
  }
}

for (const name of FILTERS) $(name).addEventListener("input", () => { resetCount(); load(); });
$("resend-to").addEventListener("change", resetCount);
$("filters").addEventListener("submit", (e) => e.preventDefault());
$("count").addEventListener("click", count);
$("send").addEventListener("click", send);
$("close").addEventListener("click", () => {
  shown = null;
  $("event").hidden = true;
  history.replaceState(null, "", location.pathname + location.search);
});

const linked = new URLSearchParams(location.hash.slice(1)).get("event");
if (linked) open(linked);
load();
// One poll at a time: a slow answer is not overtaken by the next poll's.
let polling = false;
setInterval(async () => {
  if (polling) return;
  polling = true;
  try {
    await load();
    if (shown) await open(shown);
  } finally {
    polling = false;
  }
}, EVERY_MS);

// The live progress dashboard: loads the read model from /api/progress, then applies
// each record the server streams (/api/progress/stream). Standard library only.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const withToken = (url) => token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
const records = new Map(); // key -> record
const $ = (id) => document.getElementById(id);
const RULES = { behind_pace: "behind pace", low: "low", dropped: "dropped", at_risk: "at risk" };

const keyOf = (r) => r.source + "#" + r.id;
const words = (s) => (s || "").trim().toLowerCase().replace(/[_-]/g, " ");

function elapsed(period, at) {
  const start = Date.parse(period.start), due = Date.parse(period.due), t = Date.parse(at);
  if (!(due > start)) return 100;
  return Math.min(100, Math.max(0, (t - start) / (due - start) * 100));
}

// As the API's sort=behind: points behind the period's pace (or below 100 without one).
function behind(r) {
  if (r.completed || r.deleted) return -Infinity;
  const p = r.progress ?? 0;
  return r.period ? elapsed(r.period, r.updated_at) - p : 100 - p;
}

function ago(at) {
  const s = Math.max(0, (Date.now() - Date.parse(at)) / 1000);
  if (s < 60) return "just now";
  const units = [[60, "min"], [3600, "h"], [86400, "d"]];
  let text = "";
  for (const [size, unit] of units) if (s >= size) text = Math.floor(s / size) + " " + unit + " ago";
  return text;
}

function percent(p) {
  const r = Math.round(p * 10) / 10;
  return (Number.isInteger(r) ? r.toFixed(0) : r.toFixed(1)) + "%";
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function sparkline(history) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 80 18");
  svg.setAttribute("aria-hidden", "true");
  if (history.length > 1) {
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    const step = 78 / (history.length - 1);
    line.setAttribute("points", history.map((h, i) =>
      (1 + i * step).toFixed(1) + "," + (17 - Math.min(100, Math.max(0, h.progress)) * 0.16).toFixed(1)).join(" "));
    svg.appendChild(line);
  }
  return svg;
}

function row(r) {
  const div = el("div", "row" + (r.kind === "key_result" ? " kr" : ""));
  div.dataset.key = keyOf(r);
  if (r.completed) div.classList.add("done");
  else if (r.rules.length) div.classList.add("flagged");
  div.appendChild(el("span", "title", r.title || r.id));
  const bar = el("div", "bar");
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  const fill = el("div", "fill");
  // A completed objective or key result whose progress was never sent is shown done.
  const p = r.progress ?? (r.completed ? 100 : 0);
  fill.style.width = Math.min(100, Math.max(0, p)) + "%";
  bar.setAttribute("aria-valuenow", String(p));
  bar.appendChild(fill);
  div.appendChild(bar);
  div.appendChild(el("span", "pct", r.progress == null ? (r.completed ? "done" : "–") : percent(r.progress)));
  const meta = el("div", "meta");
  // The status, unless the at-risk badge says it already.
  const said = r.rules.includes("at_risk") && ["at risk", "off track", "behind"].includes(words(r.status));
  if (r.status && !said) meta.appendChild(el("span", "status", words(r.status)));
  for (const rule of r.rules) meta.appendChild(el("span", "badge " + rule, RULES[rule] || rule));
  if (r.deleted) meta.appendChild(el("span", "badge deleted", "deleted"));
  const who = (r.updated_by ? r.updated_by + ", " : "") + ago(r.updated_at);
  const when = el("span", "when", who);
  when.dataset.at = r.updated_at;
  when.dataset.by = r.updated_by || "";
  meta.appendChild(when);
  if (r.history.length > 1) meta.appendChild(sparkline(r.history));
  // The owner's place in the directory, when known.
  if (r.owner && r.owner !== r.updated_by) meta.appendChild(el("span", "owner", "owner " + r.owner));
  if (r.department) meta.appendChild(el("span", "dept", r.department));
  if (r.team_lead) meta.appendChild(el("span", "lead", "lead " + r.team_lead));
  meta.appendChild(el("span", "", r.source));
  div.appendChild(meta);
  return div;
}

function filters() {
  return {
    source: $("source").value, status: words($("status").value),
    department: $("department").value, lead: $("lead").value,
    q: $("search").value.trim().toLowerCase(), sort: $("sort").value, deleted: $("deleted").checked,
  };
}

function matches(r, f) {
  return (f.deleted || !r.deleted) && (!f.source || r.source === f.source)
    && (!f.status || words(r.status) === f.status)
    && (!f.department || (r.department || "-") === f.department)
    && (!f.lead || (r.team_lead || "-") === f.lead)
    && (!f.q || (r.title || "").toLowerCase().includes(f.q));
}

const byTitle = (a, b) => (a.title || a.id).localeCompare(b.title || b.id);
const orders = {
  key: (a, b) => keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0,
  behind: (a, b) => behind(b) - behind(a) || byTitle(a, b),
  updated: (a, b) => Date.parse(b.updated_at) - Date.parse(a.updated_at) || byTitle(a, b),
  title: byTitle,
};

// Objectives with their key results nested; a key result shows when it or its
// objective matches. Groups follow the order of their first member.
// Key results by their owner's department or team lead: a section each, most behind
// first, with how many there are, need attention and are done; the unknown last.
const GROUPS = { department: ["department", "No department known"], lead: ["team_lead", "No team lead known"] };
function renderGroups(f, [field, unknown]) {
  const groups = new Map();
  for (const r of records.values()) {
    if (r.kind !== "key_result" || !matches(r, f)) continue;
    const name = r[field] || "";
    if (!groups.has(name)) groups.set(name, []);
    groups.get(name).push(r);
  }
  const names = [...groups.keys()].sort((a, b) => (a === "") - (b === "") || a.localeCompare(b));
  const fragment = document.createDocumentFragment();
  for (const name of names) {
    const results = groups.get(name).sort(orders.behind);
    const section = el("section", "objective group");
    const head = el("div", "row");
    head.appendChild(el("span", "title", name || unknown));
    const live = results.filter((r) => !r.deleted);
    const flagged = live.filter((r) => r.rules.length).length, done = live.filter((r) => r.completed).length;
    const avg = live.length ? live.reduce((s, r) => s + (r.progress ?? 0), 0) / live.length : 0;
    head.appendChild(el("span", "meta", live.length + " key results · " + flagged + " need attention · " + done + " completed · average " + percent(avg)));
    section.appendChild(head);
    for (const r of results) section.appendChild(row(r));
    fragment.appendChild(section);
  }
  const list = $("list");
  list.replaceChildren(fragment);
  if (!names.length) list.appendChild(el("p", "empty", records.size ? "Nothing matches the filters." : "No objectives or key results yet: send a webhook."));
  summarize();
}

function render() {
  const f = filters(), order = orders[f.sort] || orders.key;
  if (GROUPS[f.sort]) return renderGroups(f, GROUPS[f.sort]);
  const groups = new Map();
  const all = [...records.values()];
  for (const r of all) {
    const group = r.kind === "key_result" ? r.source + "#" + (r.objective_id ?? "") : keyOf(r);
    if (!groups.has(group)) groups.set(group, { objective: null, results: [] });
    if (r.kind === "key_result") groups.get(group).results.push(r);
    else groups.get(group).objective = r;
  }
  const shown = [];
  for (const g of groups.values()) {
    const own = g.objective && matches(g.objective, f);
    const results = g.results.filter((r) => own ? (f.deleted || !r.deleted) : matches(r, f)).sort(order);
    if (!own && !results.length) continue;
    const lead = [own ? g.objective : null, ...results].filter(Boolean).sort(order)[0];
    shown.push({ g, own, results, lead });
  }
  shown.sort((a, b) => order(a.lead, b.lead));
  const fragment = document.createDocumentFragment();
  for (const { g, own, results } of shown) {
    const section = el("section", "objective");
    if (g.objective && (own || results.length)) section.appendChild(row(g.objective));
    else section.appendChild(el("div", "row", "")).appendChild(el("span", "title", "Key results of an objective not seen yet"));
    for (const r of results) section.appendChild(row(r));
    fragment.appendChild(section);
  }
  const list = $("list");
  list.replaceChildren(fragment);
  if (!shown.length) list.appendChild(el("p", "empty", records.size ? "Nothing matches the filters." : "No objectives or key results yet: send a webhook."));
  summarize();
  // For the benchmark: when the list was first on screen.
  if (!performance.getEntriesByName("rendered").length && records.size) performance.mark("rendered");
}

function summarize() {
  let krs = 0, flagged = 0, done = 0;
  for (const r of records.values()) {
    if (r.deleted) continue;
    if (r.kind === "key_result") krs++;
    if (r.rules.length) flagged++;
    if (r.completed) done++;
  }
  $("summary").textContent = krs + " key results · " + flagged + " need attention · " + done + " completed";
}

function options(id, values, label = (v) => words(v) || v) {
  const select = $(id), keep = select.value;
  const known = new Set([...select.options].map((o) => o.value));
  for (const v of [...values].sort()) if (!known.has(v)) select.appendChild(new Option(label(v), v));
  select.value = keep;
}

function refreshOptions() {
  options("source", new Set([...records.values()].map((r) => r.source)));
  options("status", new Set([...records.values()].map((r) => r.status).filter(Boolean)));
  const asIs = (v) => v === "-" ? "None known" : v;
  const krs = [...records.values()].filter((r) => r.kind === "key_result");
  options("department", new Set(krs.map((r) => r.department || "-")), asIs);
  options("lead", new Set(krs.map((r) => r.team_lead || "-")), asIs);
}

let pending = null;
function renderSoon() {
  if (pending === null) pending = requestAnimationFrame(() => { pending = null; render(); });
}

// A record from the stream: its row is replaced in place when it stays where it was;
// anything else (new, regrouped, now filtered out) renders the list again.
function update(r) {
  const key = keyOf(r), before = records.get(key);
  if (before && before.version >= r.version) return;
  records.set(key, r);
  const node = document.querySelector('[data-key="' + CSS.escape(key) + '"]');
  const f = filters();
  const stays = node && before && before.objective_id === r.objective_id && matches(r, f) && f.sort === "key";
  if (stays) { node.replaceWith(row(r)); summarize(); } else renderSoon();
  refreshOptions();
}

async function load() {
  let offset = 0;
  const loaded = new Map();
  do {
    const response = await fetch(withToken("/api/progress?include_deleted=true&limit=10000&offset=" + offset));
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      $("list").replaceChildren(el("p", "empty", body.message || ("The API answered " + response.status)));
      return false;
    }
    const page = await response.json();
    for (const r of page.items) loaded.set(keyOf(r), r);
    offset = page.next_offset;
  } while (offset != null);
  for (const [key, r] of loaded) {
    const known = records.get(key);
    if (!known || known.version < r.version) records.set(key, r);
  }
  refreshOptions();
  render();
  return true;
}

function listen() {
  const source = new EventSource(withToken("/api/progress/stream"));
  // Every (re)connection loads what stands now: writes made while the stream was down
  // (or before it was first up) are in it; later ones come through the stream.
  source.addEventListener("open", () => {
    $("live").className = "on";
    $("live").textContent = "live";
    load();
  });
  source.addEventListener("error", () => { $("live").className = ""; $("live").textContent = "reconnecting"; });
  source.addEventListener("entity", (e) => update(JSON.parse(e.data)));
  source.addEventListener("reload", () => load());
  return source;
}

for (const id of ["source", "status", "department", "lead", "sort", "deleted"]) $(id).addEventListener("change", render);
// A link may choose the grouping: /dashboard?group=department (or lead).
const wanted = new URLSearchParams(location.search).get("group");
if (wanted && GROUPS[wanted]) $("sort").value = wanted;
$("search").addEventListener("input", renderSoon);
$("filters").addEventListener("submit", (e) => e.preventDefault());
setInterval(() => {
  for (const when of document.querySelectorAll(".when")) {
    when.textContent = (when.dataset.by ? when.dataset.by + ", " : "") + ago(when.dataset.at);
  }
}, 30000);

listen();

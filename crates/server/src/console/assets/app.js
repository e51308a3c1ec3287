// The switchyard console: a page per hash route, each drawn from the REST API under /v1 with the
// signed-in session's scopes. Everything shown is built as DOM nodes with text content, never
// parsed as HTML: event bodies, names and receivers' answers are other people's input.
"use strict";

const REFRESH_MS = 3000;
const main = document.getElementById("main");
let session = null;
// The running page's timer and whether its view is still the current one.
let timer = null;
let generation = 0;

// h("td", {class: "num"}, "3") builds an element; strings become text nodes.
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, value);
  for (const child of children) el.append(child instanceof Node ? child : String(child));
  return el;
}

// One request to the API. Errors read as the CLI prints them: METHOD PATH: STATUS CODE: message.
async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: { "switchyard-console": "1" } };
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const text = await response.text();
  let value = null;
  try { value = text ? JSON.parse(text) : null; } catch (_) { value = null; }
  if (!response.ok) {
    const error = (value && value.error) || {};
    const err = new Error(`${method} ${path}: ${response.status} ${error.code || ""}: ${error.message || text}`);
    err.status = response.status;
    if (response.status === 401 && path !== "/console/session") sessionEnded(err);
    throw err;
  }
  return value;
}

const enc = encodeURIComponent;
const subPath = (bus, name) => `/v1/buses/${enc(bus)}/subscriptions/${enc(name)}`;

function age(seconds) {
  if (!seconds) return "–";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
const rate = (r) => (r ? `${r.toFixed(r < 10 ? 2 : 0)}/s` : "0");
const can = (what) => session && session[what];

function showError(where, error) {
  where.replaceChildren(h("p", { class: "error", role: "alert" }, error.message || String(error)));
}

// Asks before something that cannot be undone; resolves to true on Confirm only. The dialog
// answers through its close event, once per question, so a question dismissed with Esc
// resolves false and leaves nothing behind to fire with a later one.
function confirmDialog(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}
document.getElementById("confirm-ok").addEventListener("click", () => document.getElementById("confirm").close("ok"));
document.getElementById("confirm-cancel").addEventListener("click", () => document.getElementById("confirm").close("cancel"));

// Runs draw now and every REFRESH_MS while its page is shown.
function live(draw) {
  const mine = generation;
  const tick = async () => {
    if (mine !== generation) return;
    await draw();
    if (mine === generation) timer = setTimeout(tick, REFRESH_MS);
  };
  tick();
}

function circuitBadge(state) {
  const kind = state === "open" ? "bad" : state === "half_open" ? "warn" : "good";
  return h("span", { class: `badge ${kind}` }, state);
}

// ---- overview ----
function overview() {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  main.replaceChildren(h("h1", {}, "Subscriptions"), body);
  live(async () => {
    try {
      const [stats, buses] = await Promise.all([api("GET", "/v1/stats?limit=1000"), api("GET", "/v1/buses?limit=1000")]);
      const rows = stats.items.map((s) =>
        h("tr", { class: s.problem ? "problem" : null, "data-subscription": `${s.bus}/${s.subscription}` },
          h("td", {}, h("a", { href: `#/buses/${enc(s.bus)}/subscriptions/${enc(s.subscription)}` }, `${s.bus} / ${s.subscription}`)),
          h("td", {}, s.problem ? h("span", { class: "badge bad" }, s.problem.replaceAll("_", " ")) : h("span", { class: "badge good" }, "ok"),
            s.enabled ? null : h("span", { class: "badge" }, "disabled"), s.delivery === "pull" ? h("span", { class: "badge" }, "pull") : null),
          h("td", { class: "num" }, rate(s.delivered_per_s)),
          h("td", { class: "num" }, rate(s.failed_per_s)),
          h("td", { class: "num pending" }, s.pending),
          h("td", { class: "num" }, age(s.oldest_pending_age_s)),
          h("td", { class: "num" }, s.dead),
          h("td", {}, circuitBadge(s.circuit))));
      const table = h("table", { id: "overview" },
        h("thead", {}, h("tr", {}, h("th", {}, "Subscription"), h("th", {}, "State"), h("th", { class: "num" }, "Delivered/s"),
          h("th", { class: "num" }, "Failed/s"), h("th", { class: "num" }, "Pending"), h("th", { class: "num" }, "Oldest pending"),
          h("th", { class: "num" }, "Dead letters"), h("th", {}, "Circuit"))),
        h("tbody", {}, rows));
      const notes = [h("p", { class: "muted", id: "buses" }, `${buses.items.length} bus(es): `,
        buses.items.map((b, i) => [i ? ", " : "", `${b.name} (${b.subscriptions} subscription(s), ${b.archives} archive(s))`]))];
      if (!stats.items.length) notes.push(h("p", { class: "muted" }, "No subscriptions yet (or none sampled: the first sample comes within a few seconds)."));
      if (stats.more) notes.push(h("p", { class: "muted" }, `${stats.more} more not shown.`));
      body.replaceChildren(h("section", { class: "card" }, table, notes,
        h("p", { class: "muted" }, `Rates over the last minute; sampled every ${stats.interval_s} s. Problems first.`)));
    } catch (error) { showError(body, error); }
  });
}

// ---- a subscription ----
function chart(samples, a, b, labelA, labelB) {
  const width = 600, height = 140, pad = 18;
  const values = samples.flatMap((s) => [s[a], b ? s[b] : 0]);
  const max = Math.max(1, ...values);
  const x = (i) => pad + (i * (width - 2 * pad)) / Math.max(1, samples.length - 1);
  const y = (v) => height - pad - (v / max) * (height - 2 * pad);
  const line = (key) => samples.map((s, i) => `${x(i).toFixed(1)},${y(s[key]).toFixed(1)}`).join(" ");
  const chartSvg = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img" },
    svg("text", { x: 2, y: 12, class: "axis" }, String(Math.round(max * 100) / 100)),
    svg("text", { x: 2, y: height - 4, class: "axis" }, samples.length ? `${samples[0].at.slice(11, 19)} … now` : "no samples yet"),
    svg("polyline", { class: "a", points: line(a) }));
  if (b) chartSvg.append(svg("polyline", { class: "b", points: line(b) }));
  return h("div", {}, chartSvg, h("div", { class: "legend" }, h("span", { class: "a" }, labelA), b ? h("span", { class: "b" }, labelB) : null));
}

function subscriptionPage(bus, name) {
  const head = h("div", {});
  const charts = h("div", { class: "grid" });
  const letters = h("div", {});
  const attempts = h("div", {});
  const definition = h("pre", {});
  main.replaceChildren(h("h1", {}, `${bus} / ${name}`), head,
    h("h2", {}, "Last hour"), charts,
    h("h2", {}, "Dead letters"), letters,
    h("h2", {}, "Recent attempts"), attempts,
    h("h2", {}, "Definition"), h("section", { class: "card" }, definition));
  api("GET", subPath(bus, name)).then((s) => { definition.textContent = JSON.stringify(s, null, 2); },
    (error) => showError(definition, error));
  const selected = new Set();
  // Kept across redraws of the list, so the outcome of a redrive stays visible.
  const status = h("span", { class: "muted", id: "dead-letter-status", role: "status" });
  live(async () => {
    try {
      const [stats, history, page, tried] = await Promise.all([
        api("GET", `${subPath(bus, name)}/stats`),
        api("GET", `${subPath(bus, name)}/stats/history`),
        api("GET", `${subPath(bus, name)}/dead-letters?limit=100`),
        api("GET", `${subPath(bus, name)}/attempts?limit=25`),
      ]);
      head.replaceChildren(h("section", { class: "card stats", id: "stats" },
        ...[["Pending", stats.pending], ["In flight", stats.in_flight], ["Oldest pending", age(stats.oldest_pending_age_s)],
          ["Delivered", stats.delivered], ["Failed attempts", stats.failed_attempts], ["Dead letters", stats.dead]]
          .map(([label, value]) => h("div", {}, h("b", {}, value), h("span", { class: "muted" }, label))),
        h("div", {}, h("b", {}, circuitBadge(stats.circuit)), h("span", { class: "muted" }, "Circuit"))));
      charts.replaceChildren(
        h("section", { class: "card" }, chart(history.samples, "delivered", "failed_attempts", "delivered", "failed attempts")),
        h("section", { class: "card" }, chart(history.samples, "pending", null, "pending"),
          chart(history.samples, "oldest_pending_age_s", null, "oldest pending age (s)")));
      drawLetters(letters, bus, name, page, selected, status);
      attempts.replaceChildren(h("section", { class: "card" }, tried.items.length ? h("table", {},
        h("thead", {}, h("tr", {}, ["Started", "Event", "Attempt", "Class", "Status", "Latency", "Outcome", "Answer"].map((t) => h("th", {}, t)))),
        h("tbody", {}, tried.items.map((a) => h("tr", {},
          h("td", {}, a.started_at), h("td", {}, h("a", { href: `#/events/${enc(bus)}/${enc(a.event_id)}` }, a.event_id)),
          h("td", { class: "num" }, a.attempt), h("td", {}, a.class), h("td", { class: "num" }, a.status ?? "–"),
          h("td", { class: "num" }, `${a.duration_ms} ms`), h("td", {}, a.outcome, a.reason ? ` (${a.reason})` : ""),
          h("td", { class: "wrap" }, a.error || ""))))) : h("p", { class: "muted" }, "No attempts kept.")));
    } catch (error) { showError(head, error); }
  });
}

function drawLetters(where, bus, name, page, selected, status) {
  const ids = new Set(page.items.map((l) => l.id));
  for (const id of [...selected]) if (!ids.has(id)) selected.delete(id);
  const act = async (text, run) => {
    if (!(await confirmDialog(text))) return;
    try {
      status.className = "muted";
      status.textContent = await run();
    } catch (error) { status.className = "error"; status.textContent = error.message; }
  };
  const admin = can("admin");
  const buttons = admin ? [
    h("button", { id: "redrive-selected", class: "primary", disabled: selected.size === 0,
      onclick: () => act(`Redrive ${selected.size} selected dead letter(s) of ${bus}/${name}?`, async () => {
        const answer = await api("POST", `${subPath(bus, name)}/dead-letters/redrive`, { ids: [...selected] });
        selected.clear();
        return `${answer.redriven} redriven`;
      }) }, "Redrive selected"),
    h("button", { id: "redrive-all", disabled: page.items.length === 0,
      onclick: () => act(`Redrive every dead letter of ${bus}/${name}?`, async () =>
        `${(await api("POST", `${subPath(bus, name)}/dead-letters/redrive`, {})).redriven} redriven`) }, "Redrive all"),
    h("button", { id: "purge", class: "danger", disabled: page.items.length === 0,
      onclick: () => act(`Purge every dead letter of ${bus}/${name}? They cannot be recovered.`, async () =>
        `${(await api("DELETE", `${subPath(bus, name)}/dead-letters`)).purged} purged`) }, "Purge all"),
  ] : [h("span", { class: "muted" }, "Your token may not redrive or purge (it needs the admin scope).")];
  const rows = page.items.map((l) => h("tr", { "data-dead-letter": l.id },
    admin ? h("td", {}, h("input", { type: "checkbox", checked: selected.has(l.id), "aria-label": `select ${l.id}`,
      onchange: (e) => { if (e.target.checked) selected.add(l.id); else selected.delete(l.id);
        document.getElementById("redrive-selected").disabled = selected.size === 0; } })) : null,
    h("td", {}, l.id), h("td", {}, h("a", { href: `#/events/${enc(bus)}/${enc(l.event_id)}` }, l.event_id)),
    h("td", {}, h("span", { class: "badge bad" }, l.reason)), h("td", { class: "num" }, l.attempts),
    h("td", { class: "num" }, l.last_status ?? "–"), h("td", { class: "wrap" }, l.last_error || ""), h("td", {}, l.dead_at)));
  // Redrawn only when the list changed, so a person ticking boxes is not interrupted.
  const key = JSON.stringify([page.items.map((l) => l.id), admin]);
  if (where.dataset.key === key) return;
  where.dataset.key = key;
  where.replaceChildren(h("section", { class: "card" }, h("div", { class: "row" }, buttons, status),
    page.items.length ? h("table", { id: "dead-letters" },
      h("thead", {}, h("tr", {}, admin ? h("th", {}, "") : null, ["Id", "Event", "Reason", "Attempts", "Last status", "Last answer", "Dead since"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows)) : h("p", { class: "muted" }, "No dead letters."),
    page.next ? h("p", { class: "muted" }, "Showing the oldest 100; more are kept.") : null));
}

// ---- an event's trail ----
function eventsPage(bus, id) {
  const busInput = h("input", { placeholder: "bus", value: bus || "", id: "trail-bus" });
  const idInput = h("input", { placeholder: "event id", value: id || "", size: 40, id: "trail-id" });
  const out = h("div", {});
  const go = (e) => { e.preventDefault(); location.hash = `#/events/${enc(busInput.value)}/${enc(idInput.value)}`; };
  main.replaceChildren(h("h1", {}, "Event trail"),
    h("form", { class: "row", onsubmit: go }, busInput, idInput, h("button", { class: "primary" }, "Show")), out);
  if (!bus || !id) return;
  api("GET", `/v1/buses/${enc(bus)}/events/${enc(id)}`).then((trail) => {
    out.replaceChildren(
      h("section", { class: "card" }, h("p", { class: "muted" }, `ingested ${trail.ingested_at} · hops ${trail.hops} · traceparent ${trail.traceparent}`),
        h("pre", {}, JSON.stringify(trail.event, null, 2))),
      ...trail.deliveries.map((d) => h("section", { class: "card" },
        h("h2", {}, h("a", { href: `#/buses/${enc(bus)}/subscriptions/${enc(d.subscription)}` }, d.subscription), " ", h("span", { class: "badge" }, d.state)),
        h("table", {}, h("tbody", {}, d.attempts.map((a) => h("tr", {}, h("td", {}, a.started_at), h("td", {}, `attempt ${a.attempt}`),
          h("td", {}, a.class), h("td", {}, a.status ?? "–"), h("td", {}, `${a.duration_ms} ms`), h("td", {}, a.outcome),
          h("td", { class: "wrap" }, a.error || ""))))))));
  }, (error) => showError(out, error));
}

// ---- the pattern tester ----
async function testPage() {
  const buses = await api("GET", "/v1/buses?limit=1000");
  const busSelect = h("select", { id: "test-bus" }, buses.items.map((b) => h("option", { value: b.name }, b.name)));
  const event = h("textarea", { id: "test-event", spellcheck: "false" },
    JSON.stringify({ source: "shop", "detail-type": "Order Placed", detail: { orderId: "o-1" } }, null, 2));
  const out = h("div", { id: "test-result" });
  const run = async () => {
    try {
      const answer = await api("POST", "/v1/test-pattern", `{"bus":${JSON.stringify(busSelect.value)},"event":${event.value}}`);
      out.replaceChildren(h("section", { class: "card" },
        h("p", {}, answer.subscriptions.length ? `Matches ${answer.subscriptions.length} subscription(s):` : "Matches no subscription of this bus."),
        h("ul", {}, answer.subscriptions.map((s) => h("li", {}, h("a", { href: `#/buses/${enc(answer.bus)}/subscriptions/${enc(s)}` }, s)))),
        answer.archives.length ? h("p", { class: "muted" }, `Archived by: ${answer.archives.join(", ")}`) : null,
        h("h2", {}, "As it would be published"), h("pre", {}, JSON.stringify(answer.event, null, 2))));
    } catch (error) { showError(out, error); }
  };
  main.replaceChildren(h("h1", {}, "Pattern tester"),
    h("p", { class: "muted" }, "Paste an event as you would publish it; see which subscriptions of the bus take it."),
    h("div", { class: "row" }, h("label", {}, "Bus ", busSelect)), event,
    h("div", { class: "row" }, h("button", { class: "primary", id: "test-run", onclick: run }, "Test")), out);
}

// ---- archives and replays ----
function replaysPage() {
  const archives = h("div", {});
  const replays = h("div", {});
  const form = h("div", {});
  main.replaceChildren(h("h1", {}, "Archives & replays"), h("h2", {}, "Archives"), archives,
    ...(can("admin") ? [h("h2", {}, "Start a replay"), form] : []), h("h2", {}, "Replays"), replays);
  api("GET", "/v1/buses?limit=1000").then(async (buses) => {
    const all = [];
    for (const bus of buses.items) all.push(...(await api("GET", `/v1/buses/${enc(bus.name)}/archives?limit=1000`)).items);
    archives.replaceChildren(h("section", { class: "card" }, all.length ? h("table", {},
      h("thead", {}, h("tr", {}, ["Bus", "Archive", "Events", "Bytes", "Oldest", "Retention"].map((t) => h("th", {}, t)))),
      h("tbody", {}, all.map((a) => h("tr", {}, h("td", {}, a.bus), h("td", {}, a.name), h("td", { class: "num" }, a.event_count),
        h("td", { class: "num" }, a.size_bytes), h("td", {}, a.oldest_event_at || "–"), h("td", {}, a.retention_days ? `${a.retention_days} d` : "forever"))))) :
      h("p", { class: "muted" }, "No archives.")));
    if (can("admin")) drawReplayForm(form, all);
  }, (error) => showError(archives, error));
  live(async () => {
    try {
      const page = await api("GET", "/v1/replays?limit=1000");
      replays.replaceChildren(h("section", { class: "card" }, page.items.length ? h("table", { id: "replays" },
        h("thead", {}, h("tr", {}, ["Replay", "Archive", "Range", "State", "Progress", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, page.items.map((r) => h("tr", { "data-replay": r.name }, h("td", {}, r.name), h("td", {}, `${r.bus} / ${r.archive}`),
          h("td", {}, `${r.from} → ${r.to}`), h("td", {}, h("span", { class: "badge replay-state" }, r.state)),
          h("td", {}, h("progress", { max: 1, value: r.progress }), ` ${r.events_replayed} / ${r.events_total} events`,
            r.waiting_for ? h("div", { class: "muted waiting" }, `waiting for ${r.waiting_for.subscription} since ${r.waiting_for.since}: its backlog is full`) : null,
            r.error ? h("div", { class: "error" }, r.error) : null),
          h("td", {}, r.state === "running" && can("admin") ? h("button", { class: "danger",
            onclick: async () => { if (await confirmDialog(`Cancel replay ${r.name}?`)) { try { await api("DELETE", `/v1/replays/${enc(r.name)}`); } catch (error) { showError(replays, error); } } } }, "Cancel") : null))))) :
        h("p", { class: "muted" }, "No replays.")));
    } catch (error) { showError(replays, error); }
  });
}

function drawReplayForm(form, archives) {
  if (!archives.length) { form.replaceChildren(h("p", { class: "muted" }, "Replays need an archive.")); return; }
  const hourAgo = new Date(Date.now() - 3600e3).toISOString();
  const now = new Date(Date.now() + 60e3).toISOString();
  const archive = h("select", { id: "replay-archive" }, archives.map((a) => h("option", { value: `${a.bus}/${a.name}` }, `${a.bus} / ${a.name}`)));
  const name = h("input", { id: "replay-name", value: `replay-${Date.now()}` });
  const from = h("input", { id: "replay-from", value: hourAgo, size: 26 });
  const to = h("input", { id: "replay-to", value: now, size: 26 });
  const targets = h("span", { id: "replay-targets" });
  const status = h("span", {});
  const loadTargets = async () => {
    const [bus] = archive.value.split("/");
    const subs = await api("GET", `/v1/buses/${enc(bus)}/subscriptions?limit=1000`);
    targets.replaceChildren(...subs.items.map((s) => h("label", {}, h("input", { type: "checkbox", value: s.name, checked: true }), ` ${s.name} `)));
  };
  archive.addEventListener("change", loadTargets);
  loadTargets();
  const start = async () => {
    const [bus, archiveName] = archive.value.split("/");
    const subscriptions = [...targets.querySelectorAll("input:checked")].map((i) => i.value);
    if (!(await confirmDialog(`Replay ${bus}/${archiveName} from ${from.value} to ${to.value} to ${subscriptions.join(", ") || "no subscription"}?`))) return;
    try {
      await api("POST", "/v1/replays", { name: name.value, bus, archive: archiveName, from: from.value, to: to.value, subscriptions });
      status.textContent = `started ${name.value}`;
      name.value = `replay-${Date.now()}`;
    } catch (error) { status.textContent = error.message; status.className = "error"; }
  };
  form.replaceChildren(h("section", { class: "card" },
    h("div", { class: "row" }, h("label", {}, "Archive ", archive), h("label", {}, "Name ", name)),
    h("div", { class: "row" }, h("label", {}, "From ", from), h("label", {}, "To ", to)),
    h("div", { class: "row" }, "Subscriptions: ", targets),
    h("div", { class: "row" }, h("button", { class: "primary", id: "replay-start", onclick: start }, "Start replay"), status)));
}

// ---- sources and connections ----
async function sourcesPage() {
  const page = await api("GET", "/v1/sources?limit=1000");
  main.replaceChildren(h("h1", {}, "Sources"), h("section", { class: "card" }, page.items.length ? h("table", { id: "sources" },
    h("thead", {}, h("tr", {}, ["Source", "Kind", "Bus", "Hook", "Published", "Refused", "Refusals by reason"].map((t) => h("th", {}, t)))),
    h("tbody", {}, page.items.map((s) => h("tr", {}, h("td", {}, s.name), h("td", {}, s.kind || s.verify || ""), h("td", {}, s.bus),
      h("td", {}, s.hook_path), h("td", { class: "num" }, s.requests.published), h("td", { class: "num" }, s.requests.refused),
      h("td", { class: "wrap" }, Object.entries(s.requests.refusals).map(([reason, n]) => h("span", { class: "badge bad" }, `${reason}: ${n}`))))))) :
    h("p", { class: "muted" }, "No sources.")), h("p", { class: "muted" }, "Counts since this server started."));
}

async function connectionsPage() {
  const page = await api("GET", "/v1/connections?limit=1000");
  main.replaceChildren(h("h1", {}, "Connections"), h("section", { class: "card" }, page.items.length ?
    page.items.map((c) => h("div", {}, h("h2", {}, c.name), h("pre", {}, JSON.stringify(c, null, 2)))) :
    h("p", { class: "muted" }, "No connections.")), h("p", { class: "muted" }, "Secrets are write-only: they show as ********."));
}

// ---- signing in ----
function signIn() {
  const token = h("input", { type: "password", id: "token", autocomplete: "current-password" });
  const out = h("p", {});
  const submit = async (e) => {
    e.preventDefault();
    try { await api("POST", "/console/session", { token: token.value }); await start(); } catch (error) { showError(out, error); }
  };
  main.replaceChildren(h("h1", {}, "Sign in"), h("form", { class: "signin card", onsubmit: submit },
    h("label", { for: "token" }, "API token"), token, h("button", { class: "primary", id: "sign-in" }, "Sign in"), out,
    h("p", { class: "muted" }, "The token is exchanged for a session cookie; the console can do what the token's scopes allow.")));
}

function drawWho() {
  const who = document.getElementById("who");
  if (!session.tokens_required) { who.replaceChildren("open (no API tokens)"); return; }
  who.replaceChildren(session.token ? `${session.token} (${session.scopes.join(", ")})` : "",
    session.token ? h("button", { onclick: async () => { await api("DELETE", "/console/session"); await start(); } }, "Sign out") : "");
}

// The API refused the session (it expired, or the token changed): ask for a token again. If
// the server still takes the cookie as signed in, something between (a proxy's own
// Authorization header) hides it: say so once instead of asking again and again.
let ending = false;
async function sessionEnded(error) {
  if (ending) return;
  ending = true;
  try {
    session = await api("GET", "/console/session");
    drawWho();
    if (session.token) {
      generation += 1;
      clearTimeout(timer);
      showError(main, error);
    } else {
      await route();
    }
  } catch (e) { showError(main, e); }
  ending = false;
}

async function route() {
  generation += 1;
  clearTimeout(timer);
  if (session.tokens_required && !session.token) { signIn(); return; }
  try {
    const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    if (parts[0] === "buses" && parts[2] === "subscriptions" && parts[3]) subscriptionPage(parts[1], parts[3]);
    else if (parts[0] === "events") eventsPage(parts[1], parts[2]);
    else if (parts[0] === "test") await testPage();
    else if (parts[0] === "replays") replaysPage();
    else if (parts[0] === "sources") await sourcesPage();
    else if (parts[0] === "connections") await connectionsPage();
    else overview();
  } catch (error) { showError(main, error); }
}

async function start() {
  try { session = await api("GET", "/console/session"); } catch (error) { showError(main, error); return; }
  drawWho();
  await route();
}

window.addEventListener("hashchange", route);
start();

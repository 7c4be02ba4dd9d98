// The approvals page: sign in with an API key, see what waits for a decision, decide, watch it land.
// Plain DOM, no framework. Every value from the server is set with textContent (never parsed as HTML).
"use strict";

const POLL_MS = 3000;
const KEY_STORE = "agentops.apiKey"; // sessionStorage: gone when the tab closes
const state = { key: sessionStorage.getItem(KEY_STORE), me: null, timer: null, refreshing: false };

const $ = (selector, root = document) => root.querySelector(selector);
const field = (root, name) => root.querySelector(`[data-f="${name}"]`);

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

const newKey = () => (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`);

// A POST carries an Idempotency-Key, and its one retry (after a lost answer or a 5xx) sends the same key:
// the service then answers with the first plan or decision instead of making a second.
async function api(path, options = {}) {
  const post = options.method === "POST";
  const headers = {
    Authorization: `Bearer ${state.key}`,
    "Content-Type": "application/json",
    ...(post ? { "Idempotency-Key": newKey() } : {}),
    ...(options.headers || {}),
  };
  let response = null;
  for (let attempt = 1; attempt <= (post ? 2 : 1); attempt += 1) {
    try {
      response = await fetch(path, { ...options, headers });
    } catch (error) {
      if (attempt === (post ? 2 : 1)) throw error;
      continue;
    }
    if (response.status < 500) break;
  }
  let body = null;
  try { body = await response.json(); } catch { /* not JSON: the status says enough */ }
  if (!response.ok) throw new ApiError(response.status, (body && body.message) || `HTTP ${response.status}`);
  return { status: response.status, body };
}

// --- formatting -----------------------------------------------------------------------------------

const money = (v) => (typeof v === "number" ? `$${v.toFixed(2)}/h` : "—");
const utc = (iso) => (iso ? `${new Date(iso).toISOString().slice(0, 16).replace("T", " ")} UTC` : "—");
const show = (value) => (value === null || value === undefined ? "—" : Array.isArray(value) ? value.join(", ") : String(value));
const endpointOf = (plan) => (plan.config && plan.config.endpoint_name) || plan.endpoint_name || plan.plan_id.slice(0, 8);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function fillList(list, items) {
  list.replaceChildren(...items.map((item) => el("li", item)));
  list.hidden = items.length === 0;
}

function fillTable(table, rows) {
  table.replaceChildren(...rows.map(([key, ...cells]) => {
    const tr = el("tr");
    tr.append(el("th", key));
    const td = el("td");
    cells.forEach((cell) => td.append(cell instanceof Node ? cell : document.createTextNode(cell)));
    tr.append(td);
    return tr;
  }));
}

function say(message) { $("#live").textContent = message; }

// --- sign in / out --------------------------------------------------------------------------------

async function signIn(key) {
  state.key = key;
  const { body } = await api("/me");
  state.me = body;
  sessionStorage.setItem(KEY_STORE, key);
  $("#who-name").textContent = body.name;
  $("#who-roles").textContent = body.roles.join(", ");
  $("#who").hidden = false;
  $("#sign-in").hidden = true;
  $("#app").hidden = false;
  $("#request").hidden = !body.roles.some((r) => r === "requester" || r === "admin");
  await refresh();
  state.timer = setInterval(refresh, POLL_MS);
  $("#pending-title").focus();
}

function signOut(message = "") {
  clearInterval(state.timer);
  sessionStorage.removeItem(KEY_STORE);
  Object.assign(state, { key: null, me: null, timer: null });
  $("#pending").replaceChildren();
  $("#app").hidden = true;
  $("#who").hidden = true;
  $("#sign-in").hidden = false;
  $("#sign-in-error").textContent = message;
  $("#api-key").value = "";
  $("#api-key").focus();
}

// --- pending plans ----------------------------------------------------------------------------------

function renderPlan(card, plan) {
  field(card, "endpoint").textContent = endpointOf(plan);
  const env = field(card, "env");
  env.textContent = plan.env;
  env.classList.add(plan.env);
  field(card, "requester").textContent = plan.requester;
  field(card, "plan_id").textContent = plan.plan_id.slice(0, 12);
  field(card, "expires").textContent = `expires ${utc(plan.expires_at)}`;
  field(card, "hourly").textContent = money(plan.hourly_cost_usd);
  field(card, "peak").textContent = money(plan.peak_cost_usd);
  field(card, "intent").textContent = plan.intent;
  fillList(field(card, "reading"), readingLines(plan.reading || {}));
  fillList(field(card, "reasons"), plan.approval_reasons || []);
  fillList(field(card, "warnings"), [...((plan.verdict && plan.verdict.warnings) || []), ...((plan.change && plan.change.warnings) || [])]);
  fillTable(field(card, "config"), Object.entries(plan.config || {}).map(([k, v]) => [k, show(v)]));
  renderChange(card, plan.change);
  const evidence = plan.evidence || [];
  field(card, "evidence-count").textContent = String(evidence.length);
  field(card, "evidence").replaceChildren(...evidence.map((e) => {
    const passage = el("div", undefined, "passage");
    passage.append(el("strong", `${e.policy} § ${e.section}`), el("p", e.text));
    return passage;
  }));
  updateApprovals(card, plan);
}

function readingLines(reading) {
  // "from your words: two g5.xlarge → instance_count 2, instance_type ml.g5.xlarge": a field read from words
  // inside a wider phrase is listed with that phrase.
  const items = Object.entries(reading).sort(([, a], [, b]) => a.start - b.start || b.end - a.end);
  const phrases = [];
  for (const [name, item] of items) {
    const home = phrases.find((p) => p.start <= item.start && item.end <= p.end);
    const text = `${name} ${show(item.value)}`;
    if (home) home.fields.push(text); else phrases.push({ start: item.start, end: item.end, words: item.words, fields: [text] });
  }
  return phrases.map((p) => `from your words: “${p.words}” → ${p.fields.join(", ")}`);
}

function renderChange(card, change) {
  // The resolve node's reading of the endpoint: in dry-run it cannot look, and says so.
  const note = field(card, "changes-note");
  const table = field(card, "changes");
  note.textContent = change ? change.summary : "Not known.";
  note.classList.toggle("error", Boolean(change && change.error));
  if (change && change.error) note.textContent += ` — ${change.error}`;
  const rows = change ? [
    ...change.diff.map((c) => [c.field, el("span", show(c.current), "old"), el("span", show(c.planned), "new")]),
    ...change.removes.map((resource) => ["deletes", resource]),
  ] : [];
  fillTable(table, rows);
  table.hidden = rows.length === 0;
}

function updateApprovals(card, plan) {
  const approved = (plan.approvals || []).filter((d) => d.approved).map((d) => d.approver);
  field(card, "approvals").textContent = `${approved.length} of ${plan.approvers_required || 1}`;
  field(card, "approvals").title = approved.length ? `approved by ${approved.join(", ")}` : "no approvals yet";
}

function newCard(plan) {
  const card = $("#plan-template").content.firstElementChild.cloneNode(true);
  card.dataset.planId = plan.plan_id;
  card.setAttribute("aria-label", `${endpointOf(plan)} in ${plan.env}, requested by ${plan.requester}`);
  renderPlan(card, plan);
  $("form.decide", card).addEventListener("submit", (event) => decide(event, card, plan));
  return card;
}

async function renderPending(summaries) {
  const container = $("#pending");
  const wanted = new Set(summaries.map((s) => s.plan_id));
  for (const card of [...container.children]) {
    if (wanted.has(card.dataset.planId)) continue;
    if (card.contains(document.activeElement)) $("#pending-title").focus();
    card.remove();
  }
  const details = await Promise.all(summaries.map((s) => api(`/plans/${s.plan_id}`).then((r) => r.body, () => null)));
  const cards = new Map([...container.children].map((c) => [c.dataset.planId, c]));
  let added = 0;
  details.forEach((plan, position) => {
    if (!plan || plan.status !== "pending_approval") return;
    let card = cards.get(plan.plan_id);
    if (card) {
      updateApprovals(card, plan); // the rest does not change while pending; a reason being typed is kept
    } else {
      card = newCard(plan);
      added += 1;
    }
    if (container.children[position] !== card) container.insertBefore(card, container.children[position] || null);
  });
  if (added) say(`${added} new plan${added > 1 ? "s" : ""} waiting for approval`);
  $("#pending-count").textContent = String(container.children.length);
  $("#pending-empty").hidden = container.children.length > 0;
}

async function decide(event, card, plan) {
  event.preventDefault();
  const form = event.currentTarget;
  const approved = event.submitter ? event.submitter.value === "true" : true;
  const reason = form.reason.value.trim();
  const message = $(".message", form);
  if (!approved && !reason) {
    message.textContent = "Say why you reject it.";
    message.className = "message bad";
    form.reason.focus();
    return;
  }
  form.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  message.className = "message";
  message.textContent = approved ? "Approving…" : "Rejecting…";
  try {
    const { status, body } = await api(`/plans/${plan.plan_id}/decisions`, { method: "POST", body: JSON.stringify({ approved, reason }) });
    const outcome = body.status === "pending_approval" ? "approved; it needs another approver"
      : status === 202 ? `${body.status}: deploying in the background` : body.status;
    message.className = "message good";
    message.textContent = `Recorded — ${outcome}.`;
    say(`${endpointOf(plan)}: ${outcome}`);
    await refresh();
  } catch (error) {
    message.className = "message bad";
    message.textContent = `Refused: ${error.message}`;
    form.querySelectorAll("button").forEach((b) => { b.disabled = false; });
    if (error.status === 401) signOut("Your key is no longer accepted. Sign in again.");
  }
}

// --- recent plans -----------------------------------------------------------------------------------

function renderRecent(plans) {
  const rows = plans.map((p) => {
    const tr = el("tr");
    tr.dataset.planId = p.plan_id;
    const status = el("span", p.status.replace("_", " "), `status ${p.status}`);
    const cells = [endpointOf(p), p.env, status, p.requester, p.decision ? p.decision.approver : "—", money(p.peak_cost_usd), utc(p.updated_at)];
    cells.forEach((cell) => { const td = el("td"); td.append(cell); tr.append(td); });
    return tr;
  });
  $("#recent tbody").replaceChildren(...rows);
  $("#recent-wrap").hidden = rows.length === 0;
  $("#recent-empty").hidden = rows.length > 0;
}

// --- refresh ------------------------------------------------------------------------------------------

async function refresh() {
  if (state.refreshing || !state.key) return;
  state.refreshing = true;
  try {
    const [pending, recent] = await Promise.all([api("/approvals"), api("/plans?limit=25")]);
    await renderPending(pending.body);
    renderRecent(recent.body.filter((p) => !["pending_approval", "planning"].includes(p.status)));
    $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    if (error.status === 401) signOut("Your key is no longer accepted. Sign in again.");
    else $("#updated").textContent = `could not refresh: ${error.message}`;
  } finally {
    state.refreshing = false;
  }
}

// --- requesting -----------------------------------------------------------------------------------------

async function submitIntent(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const message = $("#request-message");
  const button = $("button", form);
  button.disabled = true;
  try {
    const { body } = await api("/plans", { method: "POST", body: JSON.stringify({ intent: form.intent.value, env: form.env.value }) });
    if (body.question) {
      // Words that could not be read: nothing was planned. The intent stays in the box to be restated.
      message.className = "message bad";
      message.textContent = `Plan ${body.plan_id.slice(0, 12)}: needs clarification — ${body.question}`;
      await refresh();
      return;
    }
    message.className = "message good";
    message.textContent = `Plan ${body.plan_id.slice(0, 12)}: ${body.status.replace("_", " ")}` +
      (body.verdict && !body.verdict.allowed ? ` — ${body.verdict.violations.map((v) => v.message).join("; ")}` : ".");
    form.intent.value = "";
    await refresh();
  } catch (error) {
    message.className = "message bad";
    message.textContent = `Refused: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

// --- start ------------------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("#pending-title").tabIndex = -1;
  $("#sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("#api-key").value.trim();
    if (!key) { $("#sign-in-error").textContent = "Enter your API key."; return; }
    try {
      await signIn(key);
    } catch (error) {
      signOut(error.status === 401 ? "That key was not accepted." : `Could not sign in: ${error.message}`);
    }
  });
  $("#sign-out").addEventListener("click", () => signOut());
  $("#request-form").addEventListener("submit", submitIntent);
  if (state.key) signIn(state.key).catch(() => signOut());
  else $("#api-key").focus();
});

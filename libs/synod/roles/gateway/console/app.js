// The Synod console: a hash-routed page over the gateway's /v1 JSON endpoints.
// No build step: plain ES modules. Every value shown goes in with textContent
// (never innerHTML), so nothing a task or a model wrote can run as markup.
// The bearer token lives in sessionStorage and goes in the Authorization
// header, never in a cookie: another site's page cannot act with it.

import { drawDag } from "./dag.js";

const TOKEN_KEY = "synod-token";
const main = document.getElementById("main");
const conn = document.getElementById("conn");
const logout = document.getElementById("logout");
let about = null;
let cleanup = () => {};

// ---------------------------------------------------------------- helpers

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

function headers(extra = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
  } catch (err) {
    throw new ApiError(0, "network", `the gateway did not answer (${err.message})`);
  }
  let doc = null;
  try {
    doc = await response.json();
  } catch {
    doc = null;
  }
  if (!response.ok) {
    const e = (doc && doc.error) || {};
    throw new ApiError(response.status, e.code || "http_error",
      e.message || `HTTP ${response.status} from ${path}`, e.details);
  }
  return doc;
}

// Server-sent events over fetch, so the stream carries the Authorization header.
async function stream(path, onEvent, signal) {
  const response = await fetch(path, { headers: headers(), signal });
  if (!response.ok) {
    let e = {};
    try { e = (await response.json()).error || {}; } catch { /* not JSON */ }
    throw new ApiError(response.status, e.code || "http_error", e.message || `HTTP ${response.status}`);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let type = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) type = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (data.length) onEvent(type, JSON.parse(data.join("\n")));
    }
  }
}

function ago(iso) {
  if (!iso) return "–";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${(s / 60).toFixed(0)}m`;
  if (s < 86400) return `${(s / 3600).toFixed(1)}h`;
  return `${(s / 86400).toFixed(1)}d`;
}

function duration(t) {
  if (t.duration_s != null) return `${t.duration_s.toFixed(2)}s`;
  if (t.submitted_at && t.finished_at) {
    return `${((Date.parse(t.finished_at) - Date.parse(t.submitted_at)) / 1000).toFixed(2)}s (submitted to outcome)`;
  }
  return "–";
}

const usd = (n) => `$${(n || 0).toFixed(n >= 1 ? 2 : 4)}`;
const tokens = (u) => (u ? (u.input_tokens || 0) + (u.output_tokens || 0) : 0);
const badge = (state, extra = "") => h("span", { class: `badge st-${state} ${extra}` }, state);

function problem(err, what) {
  const box = h("div", { class: "problem", role: "alert" },
    h("strong", {}, what), h("p", {}, err.message));
  if (err.code) box.append(h("p", { class: "muted" }, `code: ${err.code}${err.status ? `, HTTP ${err.status}` : ""}`));
  return box;
}

function show(...nodes) {
  main.replaceChildren(...nodes);
}

function setConn(text, ok = true) {
  conn.textContent = text;
  conn.className = ok ? "conn ok" : "conn bad";
}

// ---------------------------------------------------------------- login

function login(err) {
  const input = h("input", {
    id: "token", type: "password", autocomplete: "current-password", required: true,
    "aria-describedby": "token-help",
  });
  const form = h("form", {
    class: "login card",
    onsubmit: (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      start();
    },
  },
  h("h1", {}, "Sign in to the Synod console"),
  err ? problem(err, err.code === "invalid_token" ? "That token was refused" : "A token is needed") : null,
  h("label", { for: "token" }, "Bearer token"),
  input,
  h("p", { id: "token-help", class: "muted" },
    "One of the gateway's SYNOD_API_TOKENS. It is kept in this tab only (session storage)."),
  h("button", { type: "submit" }, "Sign in"));
  show(form);
  input.focus();
}

logout.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.hash = "#/tasks";
  start();
});

// ---------------------------------------------------------------- tasks

const STATES = ["", "submitted", "planning", "running", "voting", "completed", "failed"];

function tasksView(params) {
  const rows = new Map();
  const controller = new AbortController();
  const q = h("input", { id: "q", type: "search", placeholder: "id, goal or label", value: params.get("q") || "" });
  const state = h("select", { id: "state" }, STATES.map((s) => h("option", { value: s }, s || "any state")));
  state.value = params.get("state") || "";
  const label = h("input", { id: "label", type: "search", placeholder: "key or key=value", value: params.get("label") || "" });
  const body = h("tbody");
  const count = h("p", { class: "muted", role: "status" });
  const table = h("table", { class: "tasks" },
    h("thead", {}, h("tr", {}, ["Task", "State", "Mode", "Goal", "Steps", "Age", "Tokens", "Cost"].map((c) => h("th", { scope: "col" }, c)))),
    body);

  const matches = (t) => {
    if (state.value && t.state !== state.value) return false;
    const needle = q.value.trim().toLowerCase();
    if (needle) {
      const labels = Object.entries(t.labels).map(([k, v]) => `${k}=${v}`).join(" ");
      if (![t.task_id, t.goal, labels].some((x) => x.toLowerCase().includes(needle))) return false;
    }
    const want = label.value.trim();
    if (want) {
      const [k, ...rest] = want.split("=");
      if (!(k in t.labels)) return false;
      if (rest.length && t.labels[k] !== rest.join("=")) return false;
    }
    return true;
  };
  let queued = false;
  const render = () => {
    queued = false;
    const shown = [...rows.values()]
      .filter(matches)
      .sort((a, b) => (b.updated_at || "").localeCompare(a.updated_at || ""));
    body.replaceChildren(...shown.map((t) => h("tr", { "data-task": t.task_id, "data-state": t.state },
      h("td", {}, h("a", { href: `#/tasks/${encodeURIComponent(t.task_id)}` }, t.task_id)),
      h("td", {}, badge(t.state)),
      h("td", { class: "mode" }, `${t.consistency}/${t.partition_mode}`, t.settlement ? h("span", { class: `label settle-${t.settlement}` }, t.settlement) : null, t.overturned ? h("span", { class: "label settle-overturned" }, `${t.overturned} overturned`) : null),
      h("td", { class: "goal" }, t.goal, Object.entries(t.labels).map(([k, v]) => h("span", { class: "label" }, `${k}=${v}`))),
      h("td", { class: "num" }, `${t.steps_completed}/${t.steps}`),
      h("td", { class: "num" }, ago(t.submitted_at)),
      h("td", { class: "num" }, tokens(t.usage).toLocaleString()),
      h("td", { class: "num" }, usd(t.usage.cost_usd)))));
    count.textContent = `${shown.length} of ${rows.size} tasks`;
  };
  const queue = () => { if (!queued) { queued = true; requestAnimationFrame(render); } };
  const remember = () => {
    const p = new URLSearchParams();
    for (const [k, el] of [["q", q], ["state", state], ["label", label]]) if (el.value) p.set(k, el.value);
    history.replaceState(null, "", `#/tasks${p.toString() ? `?${p}` : ""}`);
    queue();
  };
  for (const el of [q, state, label]) el.addEventListener("input", remember);

  show(h("section", {},
    h("h1", {}, "Tasks"),
    h("form", { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
      h("label", {}, "Search ", q), h("label", {}, "State ", state), h("label", {}, "Label ", label)),
    count,
    h("div", { class: "scroll" }, table)));

  (async () => {
    for (let attempt = 0; !controller.signal.aborted; attempt++) {
      try {
        await stream("/v1/streams/tasks", (type, doc) => {
          if (type === "task") rows.set(doc.task_id, doc);
          else if (type === "synced") setConn("live");
          queue();
        }, controller.signal);
      } catch (err) {
        if (controller.signal.aborted) return;
        if (err.status === 401) return login(err);
        setConn("reconnecting…", false);
      }
      await new Promise((r) => setTimeout(r, Math.min(5000, 500 * 2 ** attempt)));
    }
  })();
  const ticker = setInterval(queue, 1000);
  return () => { controller.abort(); clearInterval(ticker); };
}

// ---------------------------------------------------------------- one task

function section(title, ...content) {
  return h("section", { class: "card", "aria-label": title }, h("h2", {}, title), ...content);
}

// Records that claimed this task but failed authorship (a wrong or missing
// signature): no service acted on them, so they are listed apart, never as events.
function forgedSection(forged) {
  return section("Forged records (ignored)",
    h("p", { class: "muted" }, "These failed the signature check; no service acted on them."),
    h("table", { class: "forged" },
      h("thead", {}, h("tr", {}, ["type", "claimed sender", "signed by", "why ignored", "topic"].map((c) => h("th", {}, c)))),
      h("tbody", {}, forged.map((f) => h("tr", { class: "forged-record", "data-message": f.message_id },
        h("td", {}, f.type), h("td", {}, `${f.claimed_sender} (${f.claimed_role})`),
        h("td", {}, f.signer || "unsigned"), h("td", {}, h("span", { class: "label fail" }, f.reason)), h("td", {}, f.topic))))));
}

// docs/cap.md: where a task's outcome stands under its partition mode.
function settlementText(t) {
  const earlier = t.overturned && t.overturned.length ? ` after ${t.overturned.length} overturned` : "";
  if (t.settlement === "provisional") return "provisional: decided by the reachable jurors, the rest vote after the heal";
  if (t.settlement === "confirmed") return "confirmed by the full electorate";
  if (t.settlement === "overturned") return "overturned by the full electorate: the task reopened";
  if (t.state === "completed" || t.state === "failed") return `final${earlier}`;
  return earlier ? `open${earlier}` : "open";
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(([, v]) => v !== undefined).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function usageText(u) {
  if (!u) return "–";
  return `${u.model || "?"} · ${(u.input_tokens || 0).toLocaleString()} in / ${(u.output_tokens || 0).toLocaleString()} out · ${usd(u.cost_usd)}`;
}

function attemptsTable(detail) {
  const rows = [];
  for (const step of detail.task.steps) {
    for (const a of detail.attempts[step.step_id] || []) {
      const notes = [];
      if (a.hedge) notes.push("hedge");
      if (a.prompt_variant && !a.hedge) notes.push(`variant ${a.prompt_variant}`);
      if (a.temperature != null) notes.push(`T=${a.temperature}`);
      if (a.reassigned) notes.push(`reassigned: ${a.reassigned.reason}${a.reassigned.model ? ` → ${a.reassigned.model}` : ""}`);
      if (a.cancelled) notes.push(`cancelled: ${a.cancelled}`);
      for (const r of a.retries) notes.push(`retry ${r.retry}: ${r.reason}`);
      rows.push(h("tr", { "data-step": step.step_id },
        h("td", {}, step.step_id), h("td", { class: "num" }, a.attempt),
        h("td", {}, badge(a.outcome)), h("td", {}, a.worker || "–"),
        h("td", { class: "num" }, a.duration_s == null ? "–" : `${a.duration_s.toFixed(2)}s`),
        h("td", {}, a.usage ? a.usage.model || a.model || "–" : a.model || "–"),
        h("td", { class: "num" }, a.usage ? tokens(a.usage).toLocaleString() : "–"),
        h("td", { class: "err" }, a.error ? `${a.error_class}: ${a.error}` : ""),
        h("td", {}, notes.join("; "))));
    }
  }
  if (!rows.length) return h("p", { class: "muted" }, "No step has been requested yet.");
  return h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Step", "#", "Outcome", "Worker", "Latency", "Model", "Tokens", "Error", "Notes"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows)));
}

function ballotCard(b) {
  const d = b.decision;
  const status = d ? (d.provisional ? "provisional" : "confirmed") : "open";
  const voted = new Set(b.votes.map((v) => v.voter));
  return h("article", { class: "ballot", "data-proposal": b.proposal_id, "data-status": status },
    h("h3", {}, `${b.subject} ${b.proposal_id} · ballot ${b.ballot} `, badge(status, "small")),
    kv([["policy", b.policy || "–"], ["partition mode", b.partition_mode || "–"],
      ["electorate", `${b.electorate.length}: ${b.electorate.join(", ")}`],
      ["waiting on", b.electorate.filter((v) => !voted.has(v)).join(", ") || "nobody"]]),
    h("details", {}, h("summary", {}, `${b.candidates.length} candidate(s)`),
      b.candidates.map((c) => h("div", { class: "candidate" },
        h("strong", {}, c.candidate_id), c.author ? h("span", { class: "muted" }, ` by ${c.author}`) : null,
        h("pre", {}, c.content + (c.content_chars > c.content.length ? " …" : ""))))),
    h("table", { class: "votes" },
      h("thead", {}, h("tr", {}, ["Voter", "Vote", "Confidence", "Rationale"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, b.votes.map((v) => h("tr", { class: "vote", "data-voter": v.voter },
        h("td", {}, v.voter), h("td", {}, v.kind === "choice" ? v.choice : v.kind),
        h("td", { class: "num" }, v.confidence.toFixed(2)), h("td", { class: "rationale" }, v.rationale || "–"))))),
    b.verifications.length ? h("p", {}, "Tests run by jurors: ",
      b.verifications.map((t) => h("span", { class: `label ${t.passed ? "pass" : "fail"}` }, `${t.voter}: ${t.passed === null ? "no tests" : t.passed ? "passed" : "failed"}`))) : null,
    d ? h("div", { class: "decision" },
      h("strong", {}, `Decision: ${d.outcome}`),
      ` — ${d.votes_counted} votes counted, quorum ${d.quorum}; tally `,
      Object.entries(d.tally).map(([k, v]) => `${k}: ${v}`).join(", ") || "–",
      d.equivocators.length ? ` · equivocators: ${d.equivocators.join(", ")}` : "")
      : h("p", { class: "muted" }, `No decision yet (${b.votes.length} of ${b.electorate.length} votes).`));
}

function timelineView(detail) {
  const t = detail.timeline;
  let causal = false;
  const list = h("ol", { class: "timeline" });
  const render = () => {
    const order = causal ? t.causal_order : t.events.map((_, i) => i);
    list.replaceChildren(...order.map((i) => {
      const e = t.events[i];
      const clock = Object.keys(e.vclock).length ? ` vclock ${JSON.stringify(e.vclock)}` : "";
      return h("li", { class: `ev ev-${e.type}` },
        h("span", { class: "at" }, new Date(e.created_at).toLocaleTimeString()),
        h("span", { class: "type" }, e.type),
        h("span", { class: "who" }, `${e.sender.role}/${e.sender.instance}`),
        h("span", { class: "what" }, e.summary),
        h("span", { class: "meta muted" }, `${e.log_offset == null ? "not in log yet" : `offset ${e.log_offset}`} · lamport ${e.lamport}${clock}`));
    }));
  };
  const showing = h("strong", { id: "timeline-order" }, "log order");
  const toggle = h("button", {
    type: "button", class: "link", "aria-pressed": "false",
    onclick: () => {
      causal = !causal;
      toggle.setAttribute("aria-pressed", String(causal));
      toggle.textContent = causal ? "Show log order" : "Show causal order";
      showing.textContent = causal ? "causal order" : "log order";
      render();
    },
  }, "Show causal order");
  render();
  return h("div", {}, h("p", { class: "muted" }, "Showing ", showing, ". ",
    `Log order is the task's partition of synod.task-events; causal order puts each event after its causes${t.vclocks ? " and after every event with a smaller vector clock" : " (these envelopes carry no vector clocks yet)"}. `,
    toggle), list);
}

async function workspaceView(taskId, target) {
  target.replaceChildren(h("p", { class: "muted" }, "Reading the workspace…"));
  try {
    const w = await api(`/v1/tasks/${encodeURIComponent(taskId)}/workspace`);
    if (!w.files.length && !w.conflicts.length) {
      target.replaceChildren(h("p", { class: "muted" }, "This task wrote no files."));
      return;
    }
    target.replaceChildren(
      h("p", {}, `${w.mode} consistency · ${w.writes} writes · ${w.conflicts.length} conflicts · ${w.rejected.length} fenced · ${w.superseded.length} superseded${w.lost.length ? ` · LOST: ${w.lost.join(", ")}` : ""}`),
      h("ul", { class: "files" }, w.files.map((f) => h("li", {},
        h("details", {}, h("summary", {}, `${f.path} (${f.chars} chars, by ${f.steps.join(", ")})`, f.conflicted ? h("span", { class: "label fail" }, "conflict") : null),
          f.content ? h("pre", {}, f.content) : null)))),
      w.conflicts.length ? h("ul", { class: "conflicts" }, w.conflicts.map((c) => h("li", {},
        `${c.path}: ${c.siblings.map((s) => `${s.step_id} (${s.write_id})`).join(" vs ")} — `,
        c.open ? h("strong", {}, "open") : `merged by ${c.resolved_by}${c.chosen ? `, kept ${c.chosen}` : ""}`))) : null);
  } catch (err) {
    target.replaceChildren(problem(err, "The workspace could not be read"));
  }
}

function taskView(taskId) {
  const controller = new AbortController();
  let timer = null;
  let last = null;
  const render = (detail) => {
    const t = detail.task;
    const workspace = h("div", {}, h("button", { type: "button", onclick: () => workspaceView(taskId, workspace) }, "Show files"));
    const traceNote = detail.trace_id
      ? (detail.trace_url ? h("a", { href: detail.trace_url, target: "_blank", rel: "noopener" }, `trace ${detail.trace_id}`) : `trace ${detail.trace_id}`)
      : "no trace id (tracing off)";
    const outcome = t.state === "completed"
      ? h("pre", { class: "result" }, t.result || "")
      : t.failure ? h("p", { class: "err" }, `${t.failure.error_class}: ${t.failure.reason}${t.failure.failed_step ? ` (step ${t.failure.failed_step})` : ""}`) : h("p", { class: "muted" }, "Not finished yet.");
    const tests = detail.tests
      ? h("p", {}, h("span", { class: `label ${detail.tests.passed ? "pass" : "fail"}` },
        detail.tests.passed === null ? "no verdict" : detail.tests.passed ? "tests passed" : "tests failed"),
        ` ${detail.tests.summary}`, detail.tests.runs.map((r) => h("span", { class: "muted" }, ` · ${r.voter}: ${r.summary || (r.passed ? "passed" : "failed")}`)))
      : h("p", { class: "muted" }, "This task carries no tests.");
    const legend = h("p", { class: "legend" }, ["pending", "requested", "completed", "failed"].map((s) => badge(s, "small")), h("span", { class: "crit" }, "critical path"));
    show(h("div", { class: "task", "data-task": t.task_id, "data-state": t.state },
      h("p", {}, h("a", { href: "#/tasks" }, "← all tasks")),
      h("h1", {}, `Task ${t.task_id} `, badge(t.state)),
      h("p", { class: "goal" }, t.goal),
      kv([["mode", `${detail.mode.consistency} / ${detail.mode.partition_mode} · ${detail.mode.policy}`],
        ["outcome", h("span", { class: "settlement", "data-settlement": t.settlement || "", "data-overturned": String((t.overturned || []).length) }, `${t.partition_mode || detail.mode.partition_mode} · ${settlementText(t)}`)],
        ["submitted", t.submitted_at ? `${new Date(t.submitted_at).toLocaleString()} (${ago(t.submitted_at)} ago)` : "–"],
        ["duration", duration(t)],
        ["cost", usageText(detail.cost.total)], ["trace", traceNote]]),
      section("Plan", t.steps.length ? [legend, h("div", { class: "scroll" }, drawDag(detail.dag)),
        h("p", { class: "muted" }, `Critical path: ${detail.dag.critical_path.join(" → ")}`)] : h("p", { class: "muted" }, "No plan yet.")),
      section("Steps and attempts", attemptsTable(detail)),
      section("Ballots", detail.ballots.length ? detail.ballots.map(ballotCard) : h("p", { class: "muted" }, "No ballot yet.")),
      section("Tests", tests),
      section("Outcome", outcome),
      section("Workspace", workspace),
      section("Timeline", timelineView(detail)),
      ...(detail.forged && detail.forged.length ? [forgedSection(detail.forged)] : [])));
  };
  const refresh = async () => {
    timer = null;
    try {
      const detail = await api(`/v1/tasks/${encodeURIComponent(taskId)}/detail`);
      const key = JSON.stringify(detail);
      if (key !== last) { last = key; render(detail); }
    } catch (err) {
      if (err.status === 401) return login(err);
      show(h("p", {}, h("a", { href: "#/tasks" }, "← all tasks")), problem(err, err.status === 404 ? `No task ${taskId}` : "The task could not be read"));
    }
  };
  const soon = () => { if (!timer) timer = setTimeout(refresh, 200); };
  show(h("p", { class: "muted" }, `Loading task ${taskId}…`));
  refresh();
  (async () => {
    try {
      await stream(`/v1/tasks/${encodeURIComponent(taskId)}/events`, () => soon(), controller.signal);
      setConn("task finished");
    } catch (err) {
      if (!controller.signal.aborted && err.status !== 404) setConn("stream ended", false);
    }
    soon();
  })();
  return () => { controller.abort(); clearTimeout(timer); };
}

// ---------------------------------------------------------------- agents

function agentsView() {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  show(h("section", {}, h("h1", {}, "Agents"),
    h("p", { class: "muted" }, "Every instance heard on synod.heartbeats. Suspicion is the supervisor's phi-accrual detector (suspect at phi ≥ 8)."),
    body));
  const load = async () => {
    try {
      const doc = await api("/v1/agents");
      if (!doc.agents.length) { body.replaceChildren(h("p", { class: "muted" }, "No heartbeats yet.")); return; }
      body.replaceChildren(h("div", { class: "scroll" }, h("table", { class: "agents" },
        h("thead", {}, h("tr", {}, ["Role", "Instance", "Health", "Heartbeat age", "phi", "State", "Restarts", "In flight", "Breakers", "Quarantine"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, doc.agents.map((a) => h("tr", { "data-instance": a.instance, "data-health": a.health },
          h("td", {}, a.role), h("td", {}, a.instance), h("td", {}, badge(a.health)),
          h("td", { class: "num" }, `${a.heartbeat_age_s.toFixed(1)}s`),
          h("td", { class: "num" }, a.phi_infinite ? "∞" : a.phi.toFixed(1)),
          h("td", {}, a.state), h("td", { class: "num" }, a.restarts),
          h("td", { class: "num" }, a.in_flight.length),
          h("td", {}, Object.entries(a.breakers).map(([m, s]) => h("span", { class: `label br-${s}` }, `${m}: ${s}`))),
          h("td", {}, a.quarantined ? h("span", { class: "label fail" }, `until ${a.quarantine.until ? new Date(a.quarantine.until).toLocaleTimeString() : "?"} (${a.quarantine.reason})`) : "–")))))));
    } catch (err) {
      if (err.status === 401) { clearInterval(ticker); login(err); return; }
      body.replaceChildren(problem(err, "The agents could not be read"));
    }
  };
  load();
  const ticker = setInterval(load, 1000);
  return () => clearInterval(ticker);
}

// ---------------------------------------------------------------- dead letters

function confirmDialog(text, action) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-label": "Confirm" },
      h("p", {}, text),
      h("form", { method: "dialog" },
        h("button", { value: "cancel", class: "secondary" }, "Cancel"),
        h("button", { value: "ok", id: "confirm-ok" }, action)));
    dialog.addEventListener("close", () => { resolve(dialog.returnValue === "ok"); dialog.remove(); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

function deadLettersView(params) {
  const reason = h("select", { id: "reason" }, h("option", { value: "" }, "any reason"));
  const topic = h("select", { id: "topic" }, h("option", { value: "" }, "any topic"));
  const since = h("input", { id: "since", type: "search", placeholder: "10m, 2h, 1d or ISO time", value: params.get("since") || "" });
  const body = h("div", {});
  const status = h("div", { role: "status", "aria-live": "polite" });
  let known = "";
  const load = async () => {
    const p = new URLSearchParams();
    if (reason.value) p.set("reason", reason.value);
    if (topic.value) p.set("topic", topic.value);
    if (since.value.trim()) p.set("since", since.value.trim());
    try {
      const doc = await api(`/v1/deadletters?${p}`);
      const options = JSON.stringify([doc.reasons, doc.topics]);
      if (options !== known) {
        known = options;
        for (const [sel, values] of [[reason, doc.reasons], [topic, doc.topics]]) {
          const keep = sel.value;
          sel.replaceChildren(sel.firstChild, ...values.map((v) => h("option", { value: v }, v)));
          sel.value = keep;
        }
      }
      body.replaceChildren(doc.dead_letters.length ? h("div", { class: "scroll" }, h("table", { class: "dlq" },
        h("thead", {}, h("tr", {}, ["Id", "Failed", "Source", "Reason", "Class", "Tries", "Message", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, doc.dead_letters.map((d) => h("tr", { "data-letter": d.id },
          h("td", {}, h("a", { href: `#/deadletters/${d.id}` }, d.id)),
          h("td", { class: "num" }, `${ago(d.last_failed_at)} ago`),
          h("td", {}, `${d.source_topic}:${d.partition}@${d.offset}`),
          h("td", {}, d.reason), h("td", {}, d.error_class), h("td", { class: "num" }, d.attempts),
          h("td", { class: "msg" }, d.message.slice(0, 120)),
          h("td", {}, d.replayed ? h("span", { class: "label pass" }, "replayed") : d.poison ? h("span", { class: "label fail" }, "poison") : "")))))) :
        h("p", { class: "muted" }, "No dead letters match."));
    } catch (err) {
      if (err.status === 401) return login(err);
      body.replaceChildren(problem(err, "The dead letters could not be read"));
    }
  };
  for (const el of [reason, topic, since]) el.addEventListener("change", load);
  show(h("section", {}, h("h1", {}, "Dead letters"),
    h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); load(); } },
      h("label", {}, "Reason ", reason), h("label", {}, "Topic ", topic), h("label", {}, "Since ", since)),
    status, body));
  load();
  const ticker = setInterval(load, 3000);
  return () => clearInterval(ticker);
}

function deadLetterView(letterId) {
  const status = h("div", { role: "status", "aria-live": "polite", id: "replay-status" });
  const load = async () => {
    try {
      const d = await api(`/v1/deadletters/${encodeURIComponent(letterId)}`);
      const replay = h("button", {
        type: "button", id: "replay",
        onclick: async () => {
          const ok = await confirmDialog(`Republish ${d.id} to ${d.source_topic}? It is replayed at most once.`, "Replay");
          if (!ok) return;
          try {
            const done = await api(`/v1/deadletters/${encodeURIComponent(letterId)}/replay`, {
              method: "POST", headers: { "Content-Type": "application/json" },
              body: JSON.stringify({ confirm: true }),
            });
            status.replaceChildren(h("p", { class: "ok" }, `Replayed to ${done.replayed.source_topic}:${done.replayed.copy_partition}@${done.replayed.copy_offset}.`));
          } catch (err) {
            status.replaceChildren(problem(err, "Not replayed"));
          }
        },
      }, d.replay ? "Replay again…" : "Replay…");
      show(h("section", { "data-letter": d.id },
        h("p", {}, h("a", { href: "#/deadletters" }, "← all dead letters")),
        h("h1", {}, `Dead letter ${d.id}`),
        kv([["source", `${d.source_topic}:${d.partition}@${d.offset}`], ["reason", `${d.reason} (${d.error_class})`],
          ["attempts", d.attempts], ["first failed", d.first_failed_at], ["last failed", d.last_failed_at],
          ["message id", d.original_message_id || "–"], ["stored", `${d.copies}× by ${d.dead_lettered_by.join(", ")}`],
          ["replayed", d.replay ? `at ${d.replay.replayed_at} by ${d.replay.by}` : "no"],
          ["value", `${d.value_size} bytes${d.truncated ? " (truncated)" : ""}`]]),
        h("p", {}, replay), status,
        h("h2", {}, "Message"), h("pre", {}, d.message || "–"),
        h("h2", {}, d.decoded ? "Decoded" : "Value"),
        h("pre", {}, d.decoded ? JSON.stringify(d.decoded, null, 2) : (d.value_text ?? `base64: ${d.value_base64}`)),
        d.decode_error ? h("p", { class: "muted" }, `Does not decode: ${d.decode_error}`) : null));
    } catch (err) {
      if (err.status === 401) return login(err);
      show(h("p", {}, h("a", { href: "#/deadletters" }, "← all dead letters")), problem(err, `No dead letter ${letterId}`));
    }
  };
  load();
  return () => {};
}

// ---------------------------------------------------------------- cost, approvals

function costTable(title, rows) {
  return section(title, h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, [title.replace("By ", ""), "Calls", "Input tokens", "Output tokens", "Cost"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map(([name, u, link]) => h("tr", {},
      h("td", {}, link ? h("a", { href: link }, name) : name), h("td", { class: "num" }, u.calls),
      h("td", { class: "num" }, u.input_tokens.toLocaleString()), h("td", { class: "num" }, u.output_tokens.toLocaleString()),
      h("td", { class: "num" }, usd(u.cost_usd))))))));
}

function costView() {
  (async () => {
    try {
      const doc = await api("/v1/cost");
      show(h("section", {}, h("h1", {}, "Cost"),
        h("p", {}, `All tasks in view: ${usageText(doc.total)}`),
        costTable("By role", Object.entries(doc.by_role)),
        costTable("By model", Object.entries(doc.by_model)),
        costTable("By task", doc.tasks.slice(0, 100).map((t) => [t.task_id, t.total, `#/tasks/${encodeURIComponent(t.task_id)}`]))));
    } catch (err) {
      if (err.status === 401) return login(err);
      show(problem(err, "The cost could not be read"));
    }
  })();
  return () => {};
}

function escalationCard(e, refresh) {
  const note = h("p", { class: "note", role: "status" });
  const answer = async (doc, what) => {
    note.textContent = `${what}…`;
    try {
      const r = await api(`/v1/escalations/${encodeURIComponent(e.escalation_id)}/answer`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(doc),
      });
      note.textContent = r.recorded ? `${what}: recorded on the task's log.` : `${what}: sent; the planner logs it when it runs.`;
      refresh();
    } catch (err) {
      note.replaceChildren(problem(err, `${what} was refused`));
    }
  };
  const guidance = h("textarea", { id: `guidance-${e.escalation_id}`, rows: "2", placeholder: "What should change?", "aria-label": "Guidance for the revision" });
  const body = [
    h("h2", {}, h("a", { href: `#/tasks/${encodeURIComponent(e.task_id)}` }, e.task_id), ` — ${e.kind}`),
    h("p", {}, e.reason),
    kv([["escalation", e.escalation_id], ["raised", ago(e.raised_at)], ["state", e.state]]),
  ];
  for (const c of e.candidates) {
    body.push(h("details", { class: "candidate", "data-candidate": c.candidate_id },
      h("summary", {}, `Candidate ${c.candidate_id}`), h("pre", {}, c.content)));
  }
  if (e.state === "open") {
    const actions = h("div", { class: "actions" });
    for (const c of e.candidates) {
      actions.append(h("button", { type: "button", "data-action": "approve", onclick: () => answer({ action: "approve", candidate_id: c.candidate_id }, `Approve ${c.candidate_id}`) }, `Approve ${c.candidate_id}`));
    }
    actions.append(
      h("button", { type: "button", class: "secondary", "data-action": "reject", onclick: () => answer({ action: "reject", guidance: guidance.value }, "Reject") }, "Reject with guidance"),
      h("button", { type: "button", class: "secondary", "data-action": "cancel", onclick: async () => { if (await confirmDialog(`Cancel task ${e.task_id}?`, "Cancel the task")) answer({ action: "cancel" }, "Cancel"); } }, "Cancel task"));
    body.push(guidance, actions);
  } else if (e.answer) {
    body.push(h("p", { class: "answered" }, `${e.answer.action} by ${e.answer.principal} ${ago(e.answer.answered_at)}`));
  }
  body.push(note);
  return h("article", { class: "card escalation", "data-escalation": e.escalation_id, "data-state": e.state }, ...body);
}

function approvalsView() {
  let stopped = false;
  let shown = "";
  const load = async () => {
    if (stopped) return;
    try {
      const open = await api("/v1/escalations?state=open");
      const answered = await api("/v1/escalations?state=answered");
      // Draw again only when something changed: a guidance being typed stays.
      const seen = JSON.stringify([open, answered].map((d) => d.escalations.map((e) => [e.escalation_id, e.state])));
      if (stopped || seen === shown) return;
      shown = seen;
      show(h("h1", {}, "Approvals"),
        open.escalations.length ? h("div", {}, ...open.escalations.map((e) => escalationCard(e, load)))
          : h("p", { class: "muted" }, "No task is waiting for a person."),
        answered.escalations.length ? section("Answered", ...answered.escalations.slice(-20).map((e) => escalationCard(e, load))) : "");
    } catch (err) {
      if (err.status === 401) return login(err);
      show(problem(err, "The escalations could not be read"));
    }
  };
  load();
  const timer = setInterval(load, 3000);
  return () => { stopped = true; clearInterval(timer); };
}

// ---------------------------------------------------------------- routing

function route() {
  cleanup();
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const view = parts[0] || "tasks";
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (view === "tasks" && parts[1]) cleanup = taskView(parts.slice(1).join("/"));
  else if (view === "tasks") cleanup = tasksView(params);
  else if (view === "agents") cleanup = agentsView();
  else if (view === "deadletters" && parts[1]) cleanup = deadLetterView(parts[1]);
  else if (view === "deadletters") cleanup = deadLettersView(params);
  else if (view === "cost") cleanup = costView();
  else if (view === "approvals") cleanup = approvalsView();
  else {
    cleanup = () => {};
    show(problem(new ApiError(0, "", `There is no page “${path}”.`), "Unknown page"), h("p", {}, h("a", { href: "#/tasks" }, "Go to the tasks")));
  }
}

async function start() {
  cleanup();
  cleanup = () => {};
  try {
    about = await api("/v1/console");
  } catch (err) {
    logout.hidden = !sessionStorage.getItem(TOKEN_KEY);
    if (err.status === 401) { setConn("signed out", false); login(err); return; }
    show(problem(err, "The gateway could not be reached"));
    return;
  }
  logout.hidden = !about.auth_required;
  setConn(about.instance);
  route();
}

window.addEventListener("hashchange", () => { if (about) route(); });
start();

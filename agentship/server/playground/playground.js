// The playground: chats with the served agent through the server's own POST /v1/responses
// (stream: true) and shows each response's events as they come. Paths are relative to the page,
// so the playground works behind a proxy that serves the server under a prefix.
import { errorMessage, historyItems, itemText, serverEvents, shownArguments } from "./stream.js";

const KEY_STORE = "agentship-playground-key";
const $ = (id) => document.getElementById(id);

const state = {
  key: sessionStorage.getItem(KEY_STORE) ?? "",
  config: null,
  previousId: null, // the last response, when the server stores them
  history: [], // the conversation's items, when it does not
  busy: false,
  pending: 0, // approval requests not answered yet
};

// -- the server ---------------------------------------------------------------------------------
function call(path, init = {}) {
  const headers = { ...(init.headers ?? {}) };
  if (state.key) headers.Authorization = `Bearer ${state.key}`;
  return fetch(new URL(path, document.baseURI), { ...init, headers });
}

async function loadConfig() {
  const reply = await call("playground/config");
  if (reply.status === 401) {
    askForKey(await errorMessage(reply));
    return;
  }
  if (!reply.ok) {
    $("status").textContent = `The server's settings could not be read: ${await errorMessage(reply)}`;
    return;
  }
  state.config = await reply.json();
  $("key-panel").hidden = true;
  $("model").textContent = state.config.model;
  $("mode").textContent = state.config.stored
    ? "stored by the server (previous_response_id)"
    : "kept in this page (the server stores nothing)";
  $("traces").textContent = state.config.trace_url ? "linked to the MLflow UI" : "trace ids (no MLflow UI known)";
  $("status").textContent = "";
  updateComposer();
}

function askForKey(message) {
  state.config = null;
  $("key-panel").hidden = false;
  $("key-error").textContent = message;
  $("key").focus();
  updateComposer();
}

function updateComposer() {
  const ready = state.config !== null && !state.busy && state.pending === 0;
  $("question").disabled = $("send").disabled = !ready;
  $("new-conversation").disabled = state.config === null || state.busy;
  const hint = state.pending > 0 ? "Approve or reject the pending tool call first." : "";
  $("composer-hint").textContent = hint;
}

// -- one request --------------------------------------------------------------------------------
async function respond(input, shown) {
  state.busy = true;
  updateComposer();
  const turn = new Turn(shown);
  const body = { input: state.config.stored ? input : [...state.history, ...input], stream: true };
  if (state.config.stored && state.previousId) body.previous_response_id = state.previousId;
  try {
    const reply = await call("v1/responses", {
      method: "POST",
      headers: { "Content-Type": "application/json", "x-mlflow-return-trace-id": "true" },
      body: JSON.stringify(body),
    });
    if (!reply.ok) {
      const message = await errorMessage(reply);
      turn.ended("failed", message);
      if (reply.status === 401) askForKey(message);
      return;
    }
    let final = null;
    for await (const { data } of serverEvents(reply.body)) {
      final = turn.feed(data) ?? final;
    }
    if (final === null && !turn.root.dataset.status) turn.ended("failed", "the stream ended before the response did");
    else if (final.status === "completed") remember(body.input, final);
  } catch (error) {
    turn.ended("failed", String(error?.message ?? error));
  } finally {
    state.busy = false;
    updateComposer();
    turn.end();
  }
}

function remember(input, response) {
  if (state.config.stored) state.previousId = response.id;
  else state.history = [...input, ...historyItems(response.output)];
}

function answerApprovals(turn) {
  const answers = turn.approvals.map(({ item, approve }) => ({
    type: "mcp_approval_response",
    approval_request_id: item.id,
    approve,
  }));
  const said = turn.approvals.map(({ item, approve }) => `${approve ? "Approved" : "Rejected"} ${item.name}`);
  respond(answers, said.join(", "));
}

// -- what the page shows of a response ----------------------------------------------------------
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function labelled(label, className, text) {
  const box = el("div", className);
  box.append(el("span", "label", label), el("pre", "value", text));
  return box;
}

class Turn {
  constructor(shown) {
    const asked = el("article", "turn user");
    asked.append(el("h2", "who", "You"), el("p", "text", shown));
    this.root = el("article", "turn agent");
    this.items = el("div", "items");
    this.meta = el("footer", "meta");
    this.status = el("span", "status", "running");
    this.meta.append(this.status);
    this.root.append(el("h2", "who", "Agent"), this.items, this.meta);
    this.byId = new Map(); // item id -> its view
    this.approvals = [];
    this.over = new Promise((resolve) => {
      this.end = resolve; // called once the request is over
    });
    $("conversation").append(asked, this.root);
    this.root.scrollIntoView({ block: "end" });
  }

  /** Shows one event; the response object when the event ends the response. */
  feed(event) {
    const type = event.type;
    if (type === "response.created") this.root.dataset.responseId = event.response.id;
    else if (type === "response.output_item.added") this.added(event.item);
    else if (type === "response.output_item.done") this.done(event.item);
    else if (type === "response.output_text.delta") this.append(event.item_id, event.delta);
    else if (type === "response.reasoning_summary_text.delta" || type === "response.reasoning_text.delta") {
      this.append(event.item_id, event.delta);
    } else if (type === "error") this.ended("failed", event.message);
    else if (type === "response.completed" || type === "response.failed" || type === "response.incomplete") {
      this.finished(event.response);
      return event.response;
    }
    return null;
  }

  added(item) {
    let view = null;
    if (item.type === "message") view = el("div", "message", "");
    else if (item.type === "reasoning") {
      view = el("details", "reasoning");
      view.open = true;
      view.append(el("summary", "", "Reasoning"), el("p", "text", ""));
    } else if (item.type !== "mcp_approval_request") view = this.tool(item);
    if (view === null) return;
    view.dataset.itemId = item.id;
    this.byId.set(item.id, view);
    this.items.append(view);
    follow(view);
  }

  tool(item) {
    const view = el("section", "tool");
    const head = el("h3", "tool-head");
    head.append(el("span", "tool-name", item.name ?? item.type), el("span", "tool-status", "running"));
    view.append(head);
    if (item.arguments !== undefined) view.append(labelled("Arguments", "arguments", shownArguments(item.arguments)));
    return view;
  }

  append(itemId, delta) {
    const view = this.byId.get(itemId);
    if (!view) return;
    const target = view.classList.contains("reasoning") ? view.querySelector(".text") : view;
    target.textContent += delta;
    follow(view);
  }

  done(item) {
    if (item.type === "mcp_approval_request") {
      this.approval(item);
      return;
    }
    const view = this.byId.get(item.id);
    if (!view) return;
    if (item.type === "message") view.textContent = itemText(item);
    else if (item.type === "reasoning") view.querySelector(".text").textContent = itemText(item);
    else this.toolDone(view, item);
    follow(view);
  }

  toolDone(view, item) {
    const failed = item.status === "failed" || Boolean(item.error);
    const status = item.type === "function_call" ? "for the client to run" : failed ? "failed" : "completed";
    view.querySelector(".tool-status").textContent = status;
    view.dataset.status = failed ? "failed" : "completed";
    const shown = view.querySelector(".arguments pre");
    if (shown && item.arguments !== undefined) shown.textContent = shownArguments(item.arguments);
    if (failed) view.append(labelled("Error", "error", errorText(item.error)));
    else if (item.output !== undefined && item.output !== null) view.append(labelled("Result", "result", item.output));
  }

  approval(item) {
    const view = el("section", "approval");
    view.dataset.itemId = item.id;
    view.dataset.status = "pending";
    const head = el("h3", "approval-head", "Approve ");
    head.append(el("code", "tool-name", item.name), "?");
    const approve = el("button", "approve", "Approve");
    const reject = el("button", "reject", "Reject");
    const buttons = el("div", "buttons");
    buttons.append(approve, reject);
    view.append(head, labelled("Arguments", "arguments", shownArguments(item.arguments)), buttons);
    this.items.append(view);
    follow(view);
    const entry = { item, approve: null };
    this.approvals.push(entry);
    state.pending += 1;
    const decide = (yes) => {
      entry.approve = yes;
      approve.disabled = reject.disabled = true;
      view.dataset.status = yes ? "approved" : "rejected";
      buttons.replaceWith(el("p", "decision", yes ? "Approved" : "Rejected"));
      state.pending -= 1;
      // All answered: one request carries the answers, once this response has ended.
      if (this.approvals.every((a) => a.approve !== null)) {
        this.over.then(() => {
          this.status.textContent = this.root.dataset.status;
          this.status.classList.remove("waiting");
          answerApprovals(this);
        });
      } else updateComposer();
    };
    entry.drop = () => {
      entry.approve = false;
      buttons.replaceWith(el("p", "decision", "Not answerable: the response did not complete"));
      state.pending -= 1;
    };
    approve.addEventListener("click", () => decide(true));
    reject.addEventListener("click", () => decide(false));
  }

  finished(response) {
    const reason = response.error?.message ?? response.incomplete_details?.reason;
    this.ended(response.status, reason);
    if (response.status === "completed" && this.approvals.length > 0) {
      this.status.textContent = "waiting for approval"; // the run is paused until they are answered
      this.status.classList.add("waiting");
    }
    const traceId = response.metadata?.trace_id;
    if (!traceId) return;
    const template = state.config?.trace_url;
    const trace = el(template ? "a" : "span", "trace", `trace ${traceId}`);
    if (template) {
      trace.href = template.replace("{trace_id}", encodeURIComponent(traceId));
      trace.target = "_blank";
      trace.rel = "noopener";
    }
    this.meta.append(trace);
  }

  ended(status, reason) {
    this.root.dataset.status = status;
    this.status.textContent = reason ? `${status}: ${reason}` : status;
    if (status === "completed") return;
    this.root.classList.add("ended-badly");
    for (const entry of this.approvals.filter((a) => a.approve === null)) {
      entry.drop(); // a response that did not complete has no paused run to answer
    }
  }
}

/** Keeps what just changed in sight (above the composer, which stays at the bottom). */
function follow(view) {
  view.scrollIntoView({ block: "nearest" });
}

function errorText(error) {
  if (!error) return "the tool failed";
  if (typeof error === "string") return error;
  if (error.message) return error.message;
  return (error.content ?? []).map((part) => part.text ?? "").join(" ") || JSON.stringify(error);
}

// -- the page -----------------------------------------------------------------------------------
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = $("key").value.trim();
  sessionStorage.setItem(KEY_STORE, state.key);
  $("key").value = "";
  loadConfig();
});

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("question").value.trim();
  if (!text || $("send").disabled) return;
  $("question").value = "";
  respond([{ role: "user", content: text }], text);
});

$("question").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});

$("new-conversation").addEventListener("click", () => {
  state.previousId = null;
  state.history = [];
  state.pending = 0;
  $("conversation").replaceChildren();
  updateComposer();
});

updateComposer();
loadConfig();

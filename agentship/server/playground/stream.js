// The playground's pure parts: a response's server-sent events read off a fetch body, and the
// conversation kept in the page when the server stores nothing. No DOM here.

/** Each server-sent event of `body` (a fetch Response's ReadableStream) as {event, data}: `data`
 * parsed as JSON. Comments (the server's pings) are skipped. Ends when the stream does. */
export async function* serverEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    // A "\r" at the very end may be the first half of a "\r\n": wait for what follows it.
    const held = buffer.endsWith("\r") ? "\r" : "";
    const lines = buffer.slice(0, buffer.length - held.length).replace(/\r\n?/g, "\n");
    const blocks = lines.split("\n\n");
    buffer = blocks.pop() + held;
    for (const block of blocks) {
      const parsed = parseBlock(block);
      if (parsed !== null) yield parsed;
    }
  }
  const last = parseBlock(buffer.replace(/\r\n?/g, "\n"));
  if (last !== null) yield last;
}

/** One event block ("event: NAME" and "data: …" lines) as {event, data}, or null for a comment. */
export function parseBlock(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0) return null;
  return { event, data: JSON.parse(data.join("\n")) };
}

/** The text of a message item, or of a reasoning item (its summary, else its content). */
export function itemText(item) {
  if (item.type === "message") {
    return (item.content ?? []).map((part) => part.text ?? part.refusal ?? "").join("");
  }
  if (item.type === "reasoning") {
    const summary = (item.summary ?? []).map((part) => part.text).join("");
    return summary || (item.content ?? []).map((part) => part.text).join("");
  }
  return "";
}

/** A response's output as input items for the next request, when the page keeps the
 * conversation itself (a server without its state store): the answers and the server's tool
 * calls with their results. Reasoning and approval requests stay out: a server that stores
 * nothing cannot resume an approval. */
export function historyItems(output) {
  const kept = [];
  for (const item of output) {
    if (item.type === "message") {
      kept.push({ role: "assistant", content: itemText(item) });
    } else if (item.type === "mcp_call") {
      const { id, type, server_label, name, arguments: args, output: result, error } = item;
      kept.push({ id, type, server_label, name, arguments: args, output: result, error });
    }
  }
  return kept;
}

/** Arguments as the page shows them: JSON indented by two, or the text as it came. */
export function shownArguments(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** The message of an error answer's body (OpenAI's shape), or a plain description. */
export async function errorMessage(reply) {
  try {
    const body = await reply.json();
    if (body?.error?.message) return body.error.message;
  } catch {
    // not JSON
  }
  return `HTTP ${reply.status}`;
}

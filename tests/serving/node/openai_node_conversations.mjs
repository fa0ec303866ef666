// openai-node's Conversations API against /v1/conversations, as OpenAI's docs use it:
//   node openai_node_conversations.mjs BASE_URL USER MARKER
// Creates a conversation with an item and metadata, runs two turns in it with
// responses.create({conversation}), adds, reads and deletes an item, updates the metadata, deletes
// the conversation and reads it again; prints one JSON summary of what it saw on stdout.
import OpenAI from "openai";

const [baseURL, user, marker] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, defaultHeaders: { "x-user-id": user } });

async function all(conversationId) {
  const items = [];
  for await (const item of client.conversations.items.list(conversationId, { order: "asc", limit: 2 })) {
    items.push(item);
  }
  return items;
}

const seen = {};
const conv = await client.conversations.create({
  items: [{ type: "message", role: "user", content: `My name is Ada ${marker}` }],
  metadata: { topic: "weather" },
});
seen.created = conv;
seen.retrieved = await client.conversations.retrieve(conv.id);
const first = await client.responses.create({
  model: "agent-under-test",
  input: `What is the weather in Paris? ${marker}`,
  conversation: conv.id,
});
seen.first = { text: first.output_text, conversation: first.conversation, status: first.status };
const second = await client.responses.create({
  model: "agent-under-test",
  input: `Thanks ${marker}-second`,
  conversation: { id: conv.id },
});
seen.second = { text: second.output_text, conversation: second.conversation };
seen.items = await all(conv.id);
const added = await client.conversations.items.create(conv.id, {
  items: [{ type: "message", role: "user", content: `Remember blue ${marker}` }],
});
seen.added = added;
const addedId = added.data[0].id;
seen.one = await client.conversations.items.retrieve(addedId, { conversation_id: conv.id });
seen.afterItemDelete = await client.conversations.items.delete(addedId, { conversation_id: conv.id });
seen.countAfterItemDelete = (await all(conv.id)).length;
seen.updated = await client.conversations.update(conv.id, { metadata: { topic: "travel" } });
seen.deleted = await client.conversations.delete(conv.id);
try {
  await client.conversations.retrieve(conv.id);
  seen.gone = null;
} catch (error) {
  seen.gone = { status: error.status, type: error.constructor.name };
}
console.log(JSON.stringify(seen));

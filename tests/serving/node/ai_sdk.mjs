// The Vercel AI SDK (@ai-sdk/openai's Responses model) against /responses:
//   node ai_sdk.mjs BASE_URL generate|stream MARKER [SECOND_URL]
// A plain question, a question that makes the agent use its tool, a second turn built from
// response.messages with store: false (the AI SDK sends the items themselves), and a second turn
// with the default store (it sends item_reference items, resolved by the server's store; an
// optional SECOND_URL sends that turn to another replica). Prints one JSON summary on stdout.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";

globalThis.AI_SDK_LOG_WARNINGS = false;
const [baseURL, mode, marker, secondURL] = process.argv.slice(2);
const model = createOpenAI({ baseURL, apiKey: "unused" }).responses("agent-under-test");
// The stored second turn may go to another replica.
const secondModel = createOpenAI({ baseURL: secondURL ?? baseURL, apiKey: "unused" }).responses("agent-under-test");

async function turn(messages, providerOptions, using = model) {
  const args = { model: using, messages, maxRetries: 0, providerOptions };
  if (mode === "generate") {
    const result = await generateText(args);
    return { result, deltas: null };
  }
  const errors = [];
  const result = streamText({ ...args, onError: ({ error }) => errors.push(error) });
  const deltas = [];
  for await (const delta of result.textStream) deltas.push(delta);
  if (errors.length) throw errors[0];
  return { result, deltas };
}

async function summary({ result, deltas }) {
  const content = await result.content;
  const response = await result.response;
  return {
    text: await result.text,
    finishReason: await result.finishReason,
    steps: (await result.steps).length,
    usage: await result.usage,
    modelId: response.modelId,
    deltas,
    parts: content.map((part) => ({
      type: part.type,
      toolName: part.toolName,
      providerExecuted: part.providerExecuted,
      output: part.output,
    })),
    messages: response.messages,
  };
}

const noStore = { openai: { store: false } };
const results = {};
results.plain = await summary(await turn([{ role: "user", content: `Hello there ${marker}` }], noStore));
const question = { role: "user", content: `What is the weather in Paris? ${marker}` };
const tool = await turn([question], noStore);
results.tool = await summary(tool);
const history = [question, ...(await tool.result.response).messages];
results.second = await summary(
  await turn([...history, { role: "user", content: `Thanks, noted ${marker}-second` }], noStore),
);
// The default: store is true, so the AI SDK sends the earlier turns as item_reference items.
const first = await turn([question], undefined);
const storedHistory = [question, ...(await first.result.response).messages];
try {
  const stored = await turn([...storedHistory, { role: "user", content: `Again ${marker}-stored` }], undefined, secondModel);
  results.stored = { ok: true, text: await stored.result.text };
} catch (error) {
  results.stored = { ok: false, status: error.statusCode ?? error.lastError?.statusCode ?? null, message: String(error.message) };
}
for (const value of Object.values(results)) delete value.messages;
console.log(JSON.stringify(results));

// The Vercel AI SDK with a tool of its own, against an agent that also has its own:
//   node ai_sdk_tools.mjs BASE_URL generate|stream
// The agent's model calls the client's tool; the AI SDK runs it and sends the output back (the
// server resumes the run), within generateText/streamText's own step loop.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";

globalThis.AI_SDK_LOG_WARNINGS = false;
const [baseURL, mode] = process.argv.slice(2);
const model = createOpenAI({ baseURL, apiKey: "unused" }).responses("agent-under-test");
const ran = [];
const tools = {
  get_stock_price: tool({
    description: "The price of a stock.",
    inputSchema: jsonSchema({ type: "object", properties: { symbol: { type: "string" } }, required: ["symbol"] }),
    execute: async ({ symbol }) => {
      ran.push(symbol);
      return `${symbol} is at 12.34`;
    },
  }),
};
const args = { model, prompt: "What is the stock price of NODE?", tools, stopWhen: stepCountIs(4), maxRetries: 0 };
const result = mode === "generate" ? await generateText(args) : streamText(args);
if (mode !== "generate") for await (const _ of result.textStream);
console.log(JSON.stringify({ text: await result.text, steps: (await result.steps).length, ran }));

// openai-node against /responses: node openai_node.mjs BASE_URL create|stream MARKER
// Runs a plain question, a question that makes the agent use its tool, and a second turn built
// the way openai-node users build one (the earlier output items appended to the input), then
// prints one JSON summary per turn on stdout.
import OpenAI from "openai";

const [baseURL, mode, marker] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });

async function turn(input) {
  if (mode === "create") {
    const response = await client.responses.create({ model: "agent-under-test", input });
    return { response, deltas: null };
  }
  const stream = client.responses.stream({ model: "agent-under-test", input });
  const deltas = [];
  const kinds = [];
  stream.on("event", (event) => kinds.push(event.type));
  stream.on("response.output_text.delta", (event) => deltas.push(event.delta));
  const response = await stream.finalResponse();
  return { response, deltas, first: kinds[0], last: kinds[kinds.length - 1] };
}

function summary({ response, deltas, first, last }) {
  return {
    id: response.id,
    model: response.model,
    status: response.status,
    text: response.output_text,
    types: response.output.map((item) => item.type),
    mcp: response.output.filter((item) => item.type === "mcp_call").map((c) => ({ name: c.name, output: c.output, status: c.status })),
    usage: response.usage,
    deltas,
    first,
    last,
  };
}

const results = {};
results.plain = summary(await turn(`Hello there ${marker}`));
const question = { role: "user", content: `What is the weather in Paris? ${marker}` };
const tool = await turn([question]);
results.tool = summary(tool);
const second = [question, ...tool.response.output, { role: "user", content: `Thanks, noted ${marker}-second` }];
results.second = summary(await turn(second));
console.log(JSON.stringify(results));

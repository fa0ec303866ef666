// Drives the agent server's playground page in Debian's headless chromium (through playwright-core,
// which downloads no browser): a list of steps, as a person would take them, and what the page
// showed along the way.
//
//   node scripts/ui/playground.mjs URL STEPS.json
//
// STEPS.json is a JSON list; each step is one of
//   {"fill": LABEL, "text": TEXT}          type TEXT into the field labelled LABEL
//   {"click": NAME}                         click the last button named NAME (exactly)
//   {"waitFor": CSS, "count": N}           wait until N elements (default 1) match CSS
//   {"read": KEY, "css": CSS}              KEY: the text of each element matching CSS
//   {"attr": KEY, "css": CSS, "name": A}   KEY: attribute A of each element matching CSS
//   {"enabled": KEY, "css": CSS}           KEY: whether the element matching CSS is enabled
//   {"watch": KEY, "css": CSS}             from now on, KEY: every text each element matching CSS
//                                          showed (one list per element, in order of appearance)
//   {"screenshot": PATH, "full": BOOL}     a PNG of the viewport (the whole page if "full")
// It prints {"results": {KEY: …}, "calls": [{method, path, status, authorization, body}],
// "errors": [the page's errors and console errors]}: calls are the page's requests to the server.
//
// AGENTSHIP_UI_TOOLS names the directory scripts/ui_tools.sh installed playwright-core into;
// AGENTSHIP_CHROMIUM the browser (default /usr/bin/chromium).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

const require = createRequire(join(process.env.AGENTSHIP_UI_TOOLS ?? ".", "node_modules", "index.js"));
const { chromium } = require("playwright-core");

// The flags this machine needs (no sandbox as root; no background traffic to a closed network).
const FLAGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const TIMEOUT_MS = 30_000;

// Runs in the page: records each text the watched elements show, as it changes.
function startWatching({ key, css }) {
  const seen = (window.__watched ??= {});
  const lists = (seen[key] = []);
  const nodes = [];
  const record = () => {
    document.querySelectorAll(css).forEach((node) => {
      let index = nodes.indexOf(node);
      if (index < 0) {
        index = nodes.push(node) - 1;
        lists.push([]);
      }
      const text = node.textContent;
      const list = lists[index];
      if (list[list.length - 1] !== text) list.push(text);
    });
  };
  new MutationObserver(record).observe(document.body, { childList: true, subtree: true, characterData: true });
  record();
}

function recordCalls(page, origin) {
  const calls = [];
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.origin !== origin || !/^\/(v1\/|playground\/config)/.test(url.pathname)) return;
    const entry = { method: request.method(), path: url.pathname, status: null };
    entry.authorization = request.headers().authorization ?? null;
    entry.body = request.postData() ? JSON.parse(request.postData()) : null;
    calls.push(entry);
    request.response().then((response) => {
      entry.status = response?.status() ?? null;
    }, () => {});
  });
  return calls;
}

async function run(page, step, results) {
  if ("fill" in step) await page.getByLabel(step.fill, { exact: true }).fill(step.text);
  else if ("click" in step) await page.getByRole("button", { name: step.click, exact: true }).last().click();
  else if ("waitFor" in step) {
    await page.waitForFunction(
      ({ css, count }) => document.querySelectorAll(css).length >= count,
      { css: step.waitFor, count: step.count ?? 1 },
    );
  } else if ("read" in step) {
    results[step.read] = await page.locator(step.css).evaluateAll((nodes) => nodes.map((n) => n.innerText));
  } else if ("attr" in step) {
    const name = step.name;
    results[step.attr] = await page.locator(step.css).evaluateAll((nodes, a) => nodes.map((n) => n.getAttribute(a)), name);
  } else if ("enabled" in step) results[step.enabled] = await page.locator(step.css).isEnabled();
  else if ("watch" in step) await page.evaluate(startWatching, { key: step.watch, css: step.css });
  else if ("screenshot" in step) await page.screenshot({ path: step.screenshot, fullPage: Boolean(step.full) });
  else throw new Error(`unknown step ${JSON.stringify(step)}`);
}

async function main() {
  const [url, stepsFile] = process.argv.slice(2);
  if (!url || !stepsFile) throw new Error("usage: playground.mjs URL STEPS.json");
  const steps = JSON.parse(readFileSync(stepsFile, "utf8"));
  const profile = mkdtempSync(join(tmpdir(), "agentship-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.AGENTSHIP_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: FLAGS,
    viewport: { width: 1100, height: 900 },
    deviceScaleFactor: 1,
  });
  const results = {};
  const errors = [];
  let done = 0;
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(TIMEOUT_MS);
    page.on("pageerror", (error) => errors.push(String(error)));
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text());
    });
    const calls = recordCalls(page, new URL(url).origin);
    await page.goto(url, { waitUntil: "domcontentloaded" });
    for (const step of steps) {
      try {
        await run(page, step, results);
      } catch (error) {
        const text = await page.locator("body").innerText().catch(() => "");
        throw new Error(`step ${done} ${JSON.stringify(step)}: ${error.message}\n--- the page showed:\n${text}`);
      }
      done += 1;
    }
    Object.assign(results, await page.evaluate(() => window.__watched ?? {}));
    console.log(JSON.stringify({ results, calls, errors }));
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error?.stack ?? String(error));
  process.exit(1);
});

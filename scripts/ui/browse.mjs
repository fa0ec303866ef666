// Opens an MLflow UI page in Debian's headless chromium (through playwright-core, which downloads
// no browser), waits until it shows the given texts, and either screenshots it or prints its text.
//
//   node scripts/ui/browse.mjs screenshot URL OUT.png --wait TEXT [--wait TEXT] [--full-screen]
//                                [--click TEXT [--nth N]]   select the Nth (0-based) element showing TEXT
//   node scripts/ui/browse.mjs text URL --wait TEXT        prints {"text": "...", "title": "..."}
//
// AGENTSHIP_UI_TOOLS names the directory scripts/ui_tools.sh installed playwright-core into;
// AGENTSHIP_CHROMIUM the browser (default /usr/bin/chromium). The MLflow UI's first-visit
// overlays (a feature tour, the assistant panel) are closed before the page is captured.
import { mkdtempSync, rmSync } from "node:fs";
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
const TIMEOUT_MS = 60_000;

function parse(argv) {
  const [mode, url, ...rest] = argv;
  const options = { mode, url, out: null, wait: [], fullScreen: false, click: null, nth: 0 };
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === "--wait") options.wait.push(rest[++i]);
    else if (rest[i] === "--full-screen") options.fullScreen = true;
    else if (rest[i] === "--click") options.click = rest[++i];
    else if (rest[i] === "--nth") options.nth = Number(rest[++i]);
    else if (!options.out) options.out = rest[i];
  }
  if (!["screenshot", "text"].includes(mode) || !url || (mode === "screenshot" && !options.out)) {
    throw new Error("usage: browse.mjs screenshot URL OUT.png [--wait TEXT]... | text URL [--wait TEXT]...");
  }
  return options;
}

async function clickIfShown(page, locator) {
  try {
    await locator.first().click({ timeout: 1_500 });
  } catch {
    // not there: nothing to close
  }
}

async function closeOverlays(page) {
  await clickIfShown(page, page.getByRole("button", { name: "Got it" }));
  await clickIfShown(page, page.getByRole("button", { name: "Close guidance" }));
  const assistant = page.locator("div", { hasText: /^MLflow Assistant/ }).getByRole("button", { name: "Close" });
  await clickIfShown(page, assistant);
}

async function main() {
  const options = parse(process.argv.slice(2));
  const profile = mkdtempSync(join(tmpdir(), "agentship-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.AGENTSHIP_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: FLAGS,
    viewport: { width: 1440, height: 900 },
    deviceScaleFactor: 1,
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(TIMEOUT_MS);
    // First the page without its query (no drawer open): close the overlays there, and the UI
    // remembers it in the profile's local storage. Then the page itself.
    const plain = options.url.split("?")[0];
    if (plain !== options.url) {
      await page.goto(plain, { waitUntil: "domcontentloaded" });
      await page.waitForTimeout(4_000);
      await closeOverlays(page);
    }
    await page.goto(options.url, { waitUntil: "domcontentloaded" });
    for (const text of options.wait) await page.getByText(text, { exact: false }).first().waitFor();
    await closeOverlays(page);
    if (options.fullScreen) {
      await page.getByRole("button", { name: "Full screen" }).first().waitFor({ timeout: 10_000 }).catch(() => {});
      await clickIfShown(page, page.getByRole("button", { name: "Full screen" }));
      await page.waitForTimeout(1_000);
    }
    if (options.click) {
      await page.getByText(options.click, { exact: true }).nth(options.nth).click();
      await page.waitForTimeout(1_500); // the span's details load
    }
    await page.waitForTimeout(1_000); // let the last layout settle
    if (options.mode === "screenshot") {
      await page.screenshot({ path: options.out });
      console.log(JSON.stringify({ screenshot: options.out }));
    } else {
      console.log(JSON.stringify({ title: await page.title(), text: await page.locator("body").innerText() }));
    }
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error?.stack ?? String(error));
  process.exit(1);
});

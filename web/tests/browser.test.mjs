// Browser tests of the dashboard: the real binary, Debian's Chromium,
// headless. Run by `scripts/test` (`npm run test:browser` in web/), which
// builds marketd first; screenshots of every page go to
// target/browser-screenshots/.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { launchBrowser, repo, startServer, until, watchedPage } from "./harness.mjs";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const shots = join(repo, "target/browser-screenshots");
mkdirSync(shots, { recursive: true });

const SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "BTC-USDT", "ETH-USDT", "NVDA"];
const FEED = `
[feeds.simulated]
enabled = true
symbols = ${JSON.stringify(SYMBOLS)}
ticks_per_second = 10.0

[[tda.stream.baskets]]
name = "crypto"
symbols = ["BTC-USDT", "ETH-USDT", "AAPL"]
interval = "1s"
window = 11
step = 1
min_history = 3
`;

async function clean(page, what) {
  const p = await page.problems();
  assert.deepEqual(p.console, [], `${what}: console errors`);
  assert.deepEqual(p.pageErrors, [], `${what}: page errors`);
  assert.deepEqual(p.csp, [], `${what}: CSP violations`);
  assert.deepEqual(p.foreign, [], `${what}: requests to other hosts`);
}

/**
 * A server with `toml` and a browser for the enclosing `describe`, started
 * before its tests and stopped after them. Read them inside tests only.
 */
function serverAndBrowser(toml) {
  const held = {};
  before(async () => {
    held.server = await startServer({ toml });
    held.browser = await launchBrowser();
  });
  after(async () => {
    await held.browser?.close();
    await held.server?.stop();
  });
  return {
    get server() {
      return held.server;
    },
    get browser() {
      return held.browser;
    },
  };
}

async function signIn(page, key) {
  await page.locator('[data-testid="signin-open"]').click();
  await page.locator('[data-testid="signin-key"]').fill(key);
  await page.locator('[data-testid="signin-submit"]').click();
  await page.locator('[data-testid="role"]').waitFor({ timeout: 10_000 });
}

const priceOf = (page, symbol) => page.locator(`[data-testid="price-${symbol}"]`).first().textContent({ timeout: 1000 });

describe("dashboard in Chromium", () => {
  const env = serverAndBrowser(FEED);

  test("the board lists every symbol live, with no console error, CSP violation or foreign request", async () => {
    const page = await watchedPage(env.browser, env.server.url);
    await page.goto(env.server.url + "/");
    // Every configured symbol, NVDA included (no hard-coded list).
    for (const s of SYMBOLS) {
      await until(`price-${s}`, 15_000, async () => /\d/.test((await priceOf(page, s)) ?? ""));
    }
    // A price changes within 3 s, without a reload (ticks over the WebSocket).
    const navigations = [];
    page.on("framenavigated", (f) => f === page.mainFrame() && navigations.push(f.url()));
    const before = Object.fromEntries(await Promise.all(SYMBOLS.map(async (s) => [s, await priceOf(page, s)])));
    await until("a price change", 3_000, async () => {
      for (const s of SYMBOLS) if ((await priceOf(page, s)) !== before[s]) return true;
      return false;
    });
    assert.deepEqual(navigations, [], "the page reloaded");
    // Filter and sort.
    await page.getByRole("searchbox").or(page.locator('input[type="search"]')).first().fill("USDT");
    await until("filter", 3_000, async () => (await page.locator('[data-testid^="row-"]').count()) === 2);
    await page.getByRole("searchbox").or(page.locator('input[type="search"]')).first().fill("");
    await page.screenshot({ path: join(shots, "board-light.png"), fullPage: true });
    await clean(page, "board");
    await page.close();
  });

  test("the board in the dark theme", async () => {
    const page = await watchedPage(env.browser, env.server.url, { theme: "dark" });
    await page.goto(env.server.url + "/");
    await until("price-AAPL", 15_000, async () => /\d/.test((await priceOf(page, "AAPL")) ?? ""));
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
    await page.screenshot({ path: join(shots, "board-dark.png"), fullPage: true });
    await clean(page, "board (dark)");
    await page.close();
  });

  test("the symbol view draws a candlestick chart and keeps adding bars", async () => {
    const page = await watchedPage(env.browser, env.server.url);
    await page.goto(env.server.url + "/symbols/AAPL");
    const canvas = page.locator('[data-testid="chart"] canvas').first();
    await canvas.waitFor({ timeout: 15_000 });
    await page.getByRole("button", { name: "1s", exact: true }).click();
    const count = async () => Number((await page.locator('[data-testid="bar-count"]').textContent()).replace(/\D/g, ""));
    const first = await until("bars on the chart", 15_000, async () => {
      const n = await count();
      return n > 0 ? n : false;
    });
    await until("more bars", 10_000, async () => (await count()) > first);
    // The chart's canvas has pixels drawn on it.
    const box = await canvas.boundingBox();
    assert.ok(box.width > 200 && box.height > 100, JSON.stringify(box));
    await page.screenshot({ path: join(shots, "symbol.png"), fullPage: true });
    // Reachable from the board by its link, without a reload.
    await page.goto(env.server.url + "/");
    await page.locator('a[href="/symbols/MSFT"]').first().click();
    await page.locator('[data-testid="chart"] canvas').first().waitFor({ timeout: 15_000 });
    assert.equal(new URL(page.url()).pathname, "/symbols/MSFT");
    await clean(page, "symbol view");
    await page.close();
  });

  test("a connector created in the UI appears with its live status", async () => {
    const page = await watchedPage(env.browser, env.server.url);
    await page.goto(env.server.url + "/connectors");
    await signIn(page, env.server.keys.write);
    await page.locator('[data-testid="connector-new"]').click();
    await page.selectOption("select[name=kind]", "rest");
    await page.fill("input[name=name]", "ui-latest-aapl");
    await page.fill("input[name=url]", `${env.server.url}/api/v1/prices/latest?symbol=AAPL`);
    await page.fill('input[name="mapping.records"]', "$");
    await page.fill('input[name="mapping.price"]', "$.price");
    await page.fill('input[name="mapping.symbol"]', "$.symbol");
    await page.fill("input[name=polling_interval_ms]", "500");
    // The mapping preview calls the source and shows what it maps.
    await page.locator('[data-testid="connector-test"]').click();
    await page.locator('[data-testid="connector-preview"]').waitFor({ timeout: 15_000 });
    assert.match(await page.locator('[data-testid="connector-preview"]').textContent(), /AAPL/);
    await page.locator('[data-testid="connector-submit"]').click();
    const status = page.locator('[data-testid="connector-status-ui-latest-aapl"]');
    await until("connector running", 20_000, async () => (await status.textContent({ timeout: 1000 })) === "running");
    // Its counters follow live over the connector-status channel.
    const ticks = page.locator('[data-testid="connector-ticks-ui-latest-aapl"]');
    await until("ticks collected", 20_000, async () => Number(await ticks.textContent({ timeout: 1000 })) >= 2);
    await page.screenshot({ path: join(shots, "connectors.png"), fullPage: true });
    // Stop it from the list: the status follows live.
    await page.locator('[data-testid="connector-stop-ui-latest-aapl"]').click();
    await until("connector stopped", 20_000, async () => /stopped/.test(await status.textContent({ timeout: 1000 })));
    await clean(page, "connectors");
    await page.close();
  });

  test("an uploaded point cloud's job succeeds and its diagram, barcode and landscape are drawn", async () => {
    // 100 points on a noisy circle: one long H1 bar.
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
    const lines = [];
    for (let i = 0; i < 100; i++) {
      const a = (2 * Math.PI * i) / 100;
      lines.push(`${(Math.cos(a) + 0.05 * rand()).toFixed(6)} ${(Math.sin(a) + 0.05 * rand()).toFixed(6)}`);
    }
    const file = join(env.server.dir, "circle.txt");
    writeFileSync(file, lines.join("\n") + "\n");

    const page = await watchedPage(env.browser, env.server.url);
    await page.goto(env.server.url + "/tda");
    await signIn(page, env.server.keys.write);
    await page.setInputFiles('[data-testid="tda-file"]', file);
    await page.selectOption('[data-testid="tda-format"]', "point-cloud");
    await page.locator('[data-testid="tda-upload"]').click();
    await page.locator('[data-testid="tda-upload-result"]').waitFor({ timeout: 10_000 });
    await page.locator('[data-testid="tda-run"]').click();
    const status = page.locator('[data-testid="tda-current-status"]');
    await until("job succeeded", 60_000, async () => {
      const t = await status.textContent({ timeout: 1000 });
      assert.ok(!/failed|canceled/.test(t), `job ${t}`);
      return t === "succeeded";
    });
    for (const plot of ["tda-diagram", "tda-barcode", "tda-landscape"]) {
      const canvas = page.locator(`[data-testid="${plot}"] canvas[data-drawn="true"]`).first();
      await canvas.waitFor({ timeout: 15_000 });
      // Pixels were drawn (the canvas is not blank).
      const inked = await canvas.evaluate((c) => {
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n;
      });
      assert.ok(inked > 1000, `${plot}: ${inked} pixels drawn`);
    }
    // The job list shows it with the same status, from the realtime channel.
    const rows = page.locator('[data-testid^="job-status-"]');
    assert.ok((await rows.count()) >= 1);
    assert.equal(await rows.first().textContent(), "succeeded");
    await page.screenshot({ path: join(shots, "tda.png"), fullPage: true });
    await clean(page, "tda");
    await page.close();
  });

  test("every page renders without errors (screenshots)", async () => {
    const page = await watchedPage(env.browser, env.server.url);
    for (const [path, name] of [
      ["/jobs", "polling-jobs"],
      ["/signals", "signals"],
      ["/operations", "operations"],
    ]) {
      await page.goto(env.server.url + path);
      await page.locator("main h1").first().waitFor({ timeout: 10_000 });
      await page.waitForLoadState("networkidle").catch(() => {});
      await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
    }
    await clean(page, "pages");
    await page.close();
  });
});

describe("accessibility (axe-core, WCAG 2 A and AA)", () => {
  const env = serverAndBrowser(FEED);

  for (const theme of ["light", "dark"]) {
    test(`every page has no serious or critical violation (${theme} theme)`, async () => {
      // axe is injected by the test, so this context bypasses the CSP (the
      // CSP itself is checked by the other tests).
      const context = await env.browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 720 } });
      const page = await context.newPage();
      await page.addInitScript((t) => localStorage.setItem("marketd.theme", t), theme);
      const found = [];
      for (const path of ["/", "/symbols/AAPL", "/connectors", "/connectors/new", "/jobs", "/tda", "/signals", "/operations"]) {
        await page.goto(env.server.url + path);
        await page.locator("main h1").first().waitFor({ timeout: 10_000 });
        if (path === "/") await until("prices", 15_000, async () => /\d/.test((await priceOf(page, "AAPL")) ?? ""));
        await page.addScriptTag({ content: axeSource });
        const result = await page.evaluate(() =>
          window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }),
        );
        for (const v of result.violations) {
          if (v.impact !== "serious" && v.impact !== "critical") continue;
          found.push(`${path}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | ")}`);
        }
      }
      await context.close();
      assert.deepEqual(found, [], found.join("\n"));
    });
  }
});

describe("dashboard with keys required for reads", () => {
  const env = serverAndBrowser(`${FEED}\n[auth]\nrequire_read_key = true\n`);

  test("a sign-in box, the key kept for the session and sent on the WebSocket; writes disabled for a read key", async () => {
    const page = await watchedPage(env.browser, env.server.url);
    await page.goto(env.server.url + "/");
    const key = page.locator('[data-testid="signin-key"]');
    await key.waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('[data-testid^="price-"]').count(), 0, "prices shown before signing in");
    await key.fill(env.server.keys.read);
    await page.locator('[data-testid="signin-submit"]').click();
    await until("price-AAPL after sign-in", 15_000, async () => /\d/.test((await priceOf(page, "AAPL")) ?? ""));
    const p0 = await priceOf(page, "AAPL");
    await until("a live AAPL price", 5_000, async () => (await priceOf(page, "AAPL")) !== p0);
    assert.equal(await page.locator('[data-testid="role"]').textContent(), "read key");
    // sessionStorage only: nothing in localStorage.
    const stored = await page.evaluate(() => ({ s: sessionStorage.getItem("marketd.key"), l: JSON.stringify(localStorage) }));
    assert.equal(stored.s, env.server.keys.read);
    assert.ok(!stored.l.includes(env.server.keys.read));
    // A read key cannot write: the write controls are disabled, with a hint.
    await page.goto(env.server.url + "/jobs");
    await page.locator('[data-testid="polling-job-submit"]').waitFor({ timeout: 10_000 });
    assert.ok(await page.locator('[data-testid="polling-job-submit"]').isDisabled());
    assert.ok(await page.locator('[data-testid="write-hint"]').first().isVisible());
    await page.goto(env.server.url + "/tda");
    await page.locator('[data-testid="tda-upload"]').waitFor({ timeout: 10_000 });
    assert.ok(await page.locator('[data-testid="tda-upload"]').isDisabled());
    assert.equal(await page.evaluate(() => sessionStorage.getItem("marketd.key")), env.server.keys.read, "the key survives a reload in the tab");
    await page.screenshot({ path: join(shots, "signed-in-read.png") });
    await clean(page, "signed in");
    await page.close();
  });
});

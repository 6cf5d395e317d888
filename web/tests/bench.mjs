// Page weight and speed of the dashboard (scripts/bench --web): the release
// server with the simulated feed, Debian's Chromium, loopback.
//  1. bytes transferred by a cold load of the board (compressed, as sent),
//     by kind, WebSocket frames excluded;
//  2. time to first price on a cold load (a new browser context each run:
//     no cache), from navigation start to the first price in the board;
//  3. while SYMBOLS symbols stream at TICKS ticks/s each for SECONDS s:
//     frames per second drawn, long tasks (> 50 ms) and the longest task,
//     ticks received by the page.
// MARKETD_BENCH_SYMBOLS (7), _TICKS_PER_SECOND (10), _SECONDS (20), _RUNS (10).
import { launchBrowser, startServer, until, watchedPage } from "./harness.mjs";

const nSymbols = Number(process.env.MARKETD_BENCH_SYMBOLS ?? 7);
const tps = Number(process.env.MARKETD_BENCH_TICKS_PER_SECOND ?? 10);
const seconds = Number(process.env.MARKETD_BENCH_SECONDS ?? 20);
const runs = Number(process.env.MARKETD_BENCH_RUNS ?? 10);
const base = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "BTC-USDT", "ETH-USDT"];
const symbols = Array.from({ length: nSymbols }, (_, i) => base[i] ?? `SYM${i}`);

const server = await startServer({
  keys: [],
  toml: `[feeds.simulated]\nenabled = true\nsymbols = ${JSON.stringify(symbols)}\nticks_per_second = ${tps}\n`,
});
const browser = await launchBrowser();
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

try {
  // Let every symbol have a stored price first (a cold server start is not
  // what is measured).
  const warm = await watchedPage(browser, server.url);
  await warm.goto(server.url + "/");
  await until("first prices", 20_000, async () => (await warm.locator('[data-testid^="price-"]').count()) >= nSymbols);
  await warm.context().close();

  // 1 and 2: cold loads.
  const firstPrice = [];
  let weight = null;
  for (let i = 0; i < runs; i++) {
    const page = await watchedPage(browser, server.url);
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Network.enable");
    await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
    const byId = new Map();
    cdp.on("Network.responseReceived", (e) => byId.set(e.requestId, { url: e.response.url, type: e.type }));
    const sizes = [];
    cdp.on("Network.loadingFinished", (e) => sizes.push({ ...byId.get(e.requestId), bytes: e.encodedDataLength }));
    await page.addInitScript(() => {
      const seen = () => {
        const el = document.querySelector('[data-testid^="price-"]');
        if (el && /\d/.test(el.textContent ?? "")) {
          window.__firstPrice = performance.now();
          return true;
        }
        return false;
      };
      new MutationObserver((_, obs) => seen() && obs.disconnect()).observe(document, {
        subtree: true,
        childList: true,
        characterData: true,
      });
    });
    await page.goto(server.url + "/");
    const t = await until("first price", 10_000, () => page.evaluate(() => window.__firstPrice), 20);
    firstPrice.push(t);
    if (i === 0) {
      await page.waitForLoadState("networkidle").catch(() => {});
      weight = sizes;
    }
    await page.context().close();
  }
  const total = weight.reduce((s, r) => s + r.bytes, 0);
  const kinds = {};
  for (const r of weight) kinds[r.type ?? "other"] = (kinds[r.type ?? "other"] ?? 0) + r.bytes;
  console.log(`board cold load: ${(total / 1024).toFixed(1)} KiB transferred in ${weight.length} responses (${Object.entries(kinds).map(([k, v]) => `${k} ${(v / 1024).toFixed(1)} KiB`).join(", ")})`);
  for (const r of weight) console.log(`  ${String(r.bytes).padStart(8)} B  ${r.url}`);
  console.log(`time to first price, cold load, ${runs} runs: median ${pct(firstPrice, 50).toFixed(0)} ms, p95 ${pct(firstPrice, 95).toFixed(0)} ms, max ${Math.max(...firstPrice).toFixed(0)} ms`);

  // 3: streaming.
  const page = await watchedPage(browser, server.url);
  await page.addInitScript(() => {
    window.__long = [];
    window.__shift = 0;
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) window.__long.push(e.duration);
    }).observe({ type: "longtask", buffered: true });
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) if (!e.hadRecentInput) window.__shift += e.value;
    }).observe({ type: "layout-shift", buffered: true });
  });
  await page.goto(server.url + "/");
  await until("prices", 10_000, async () => (await page.locator('[data-testid^="price-"]').count()) >= nSymbols);
  const result = await page.evaluate(async (ms) => {
    window.__long = [];
    window.__shift = 0;
    let frames = 0;
    let worst = 0;
    let last = performance.now();
    const t0 = last;
    await new Promise((done) => {
      const step = (now) => {
        frames++;
        worst = Math.max(worst, now - last);
        last = now;
        if (now - t0 < ms) requestAnimationFrame(step);
        else done();
      };
      requestAnimationFrame(step);
    });
    const elapsed = performance.now() - t0;
    return { fps: (frames * 1000) / elapsed, worstFrame: worst, long: window.__long, shift: window.__shift };
  }, seconds * 1000);
  const p = await page.problems();
  console.log(
    `streaming ${nSymbols} symbols x ${tps} ticks/s for ${seconds} s: ${result.fps.toFixed(1)} frames/s, longest frame ${result.worstFrame.toFixed(1)} ms, ` +
      `${result.long.length} long tasks (> 50 ms)${result.long.length ? `, longest ${Math.max(...result.long).toFixed(0)} ms` : ""}; ` +
      `layout shift ${result.shift.toFixed(4)}; console errors ${p.console.length}, CSP violations ${p.csp.length}`,
  );
} finally {
  await browser.close();
  await server.stop();
}

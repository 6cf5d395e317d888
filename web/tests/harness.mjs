// What the browser tests and the page benchmark share: a real `marketd
// serve` on a free port with its own data directory, keys made by the real
// CLI, and Debian's Chromium driven by playwright-core (never a downloaded
// browser), with every request, console error and CSP violation recorded.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, "../..");

/** The marketd binary: MARKETD_BIN, else the debug build, else release. */
export function marketdBin() {
  const candidates = [process.env.MARKETD_BIN, join(repo, "target/debug/marketd"), join(repo, "target/release/marketd")];
  const bin = candidates.find((p) => p && existsSync(p));
  if (!bin) throw new Error("no marketd binary: build it (cargo build) or set MARKETD_BIN");
  return bin;
}

export function chromiumPath() {
  const p = process.env.CHROMIUM ?? "/usr/bin/chromium";
  if (!existsSync(p)) throw new Error(`no Chromium at ${p}: apt-get install chromium (or set CHROMIUM)`);
  return p;
}

/**
 * Starts `marketd serve` on 127.0.0.1:0 with `toml` appended to a config
 * of its own; resolves when it logs its address. Returns { url, keys, stop }.
 */
export async function startServer({ toml = "", keys = ["read", "write", "admin"] } = {}) {
  const bin = marketdBin();
  const dir = mkdtempSync(join(tmpdir(), "marketd-browser-"));
  const config = join(dir, "marketd.toml");
  writeFileSync(config, `data_dir = "${join(dir, "data")}"\n[server]\naddr = "127.0.0.1:0"\nadmin_addr = "127.0.0.1:0"\n[log]\nlevel = "info"\n${toml}\n`);
  const made = {};
  for (const role of keys) {
    const out = execFileSync(bin, ["keys", "create", "--config", config, "--role", role, "--name", `browser-${role}`], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    made[role] = out.trim().split("\n").pop().trim();
  }
  const child = spawn(bin, ["serve", "--config", config], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  const url = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`marketd did not start in 60 s:\n${log}`)), 60_000);
    const scan = (chunk) => {
      log += chunk;
      const m = log.match(/dashboard at (http:\/\/127\.0\.0\.1:\d+)\//);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    };
    child.stdout.on("data", scan);
    child.stderr.on("data", scan);
    child.on("exit", (code) => fail(new Error(`marketd exited (${code}):\n${log}`)));
  });
  return {
    url,
    keys: made,
    dir,
    log: () => log,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((ok) => {
        if (child.exitCode !== null) return ok();
        const t = setTimeout(() => {
          child.kill("SIGKILL");
          ok();
        }, 10_000);
        child.on("exit", () => {
          clearTimeout(t);
          ok();
        });
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: chromiumPath(),
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-quic",
      "--no-first-run",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * A fresh page that records what the tests forbid: console errors, CSP
 * violations (from the `securitypolicyviolation` event), page errors and
 * every request to a host other than the server.
 */
export async function watchedPage(browser, serverUrl, { theme, viewport = { width: 1366, height: 800 } } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const host = new URL(serverUrl).host;
  const problems = { console: [], csp: [], pageErrors: [], foreign: [] };
  await page.addInitScript((t) => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
    if (t) localStorage.setItem("marketd.theme", t);
  }, theme ?? null);
  page.on("console", (m) => {
    if (m.type() === "error") problems.console.push(m.text());
  });
  page.on("pageerror", (e) => problems.pageErrors.push(String(e)));
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.protocol === "data:" || u.protocol === "blob:") return;
    if (u.host !== host) problems.foreign.push(r.url());
  });
  page.problems = async () => {
    const csp = await page.evaluate(() => window.__csp ?? []).catch(() => []);
    return { ...problems, csp: [...problems.csp, ...csp] };
  };
  return page;
}

/** Waits for `fn` to return a truthy value, polling, up to `ms`. */
export async function until(what, ms, fn, every = 100) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, every));
  }
}

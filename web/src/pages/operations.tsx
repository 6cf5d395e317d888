// Operations: readiness of each backend and provider (GET /health/ready),
// key figures from the Prometheus exposition (GET /metrics, rates from the
// counters' deltas between two scrapes) with a trend per figure, and links
// to the server's own documents.
import { useEffect, useRef, useState } from "preact/hooks";
import { fmtAge } from "../lib/format";
import { session } from "../lib/session";
import { Sparkline } from "../components/plot-sparkline";
import "./operations.css";

// ---- Prometheus text format (a small parser) ----

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the text exposition format (0.0.4): one sample per line. */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    let i = 0;
    while (i < line.length && /[A-Za-z0-9_:]/.test(line[i])) i++;
    const name = line.slice(0, i);
    if (!name) continue;
    const labels: Record<string, string> = {};
    if (line[i] === "{") {
      i++;
      while (i < line.length && line[i] !== "}") {
        while (line[i] === " " || line[i] === ",") i++;
        if (line[i] === "}") break;
        const eq = line.indexOf("=", i);
        if (eq < 0) break;
        const key = line.slice(i, eq).trim();
        i = eq + 1;
        if (line[i] !== '"') break;
        i++;
        let val = "";
        while (i < line.length && line[i] !== '"') {
          if (line[i] === "\\" && i + 1 < line.length) {
            const c = line[i + 1];
            val += c === "n" ? "\n" : c;
            i += 2;
          } else val += line[i++];
        }
        i++;
        labels[key] = val;
      }
      i++;
    }
    const rest = line.slice(i).trim().split(/\s+/);
    const v = rest[0];
    const value = v === "+Inf" ? Infinity : v === "-Inf" ? -Infinity : v === "NaN" ? NaN : Number(v);
    if (rest[0] === undefined || (Number.isNaN(value) && v !== "NaN")) continue;
    out.push({ name, labels, value });
  }
  return out;
}

interface Scrape {
  /** ms since the epoch, when it was read. */
  t: number;
  samples: Sample[];
}

type Filter = (l: Record<string, string>) => boolean;

/** Sum of a metric's series (matching `f`); null when it has none. */
function total(s: Scrape, name: string, f?: Filter): number | null {
  let sum = 0;
  let n = 0;
  for (const x of s.samples)
    if (x.name === name && (!f || f(x.labels))) {
      sum += x.value;
      n++;
    }
  return n ? sum : null;
}

/** Delta of a counter between two scrapes (null on a reset). */
function delta(prev: Scrape, cur: Scrape, name: string, f?: Filter): number | null {
  // Counters appear on their first increment: absent means none yet.
  const b = total(cur, name, f);
  if (b === null) return 0;
  const a = total(prev, name, f) ?? 0;
  return b >= a ? b - a : null;
}

function rate(prev: Scrape, cur: Scrape, name: string, f?: Filter): number | null {
  const d = delta(prev, cur, name, f);
  const dt = (cur.t - prev.t) / 1000;
  return d === null || dt <= 0 ? null : d / dt;
}

/** Mean of a histogram over the interval (Δsum / Δcount), null without observations. */
function meanOver(prev: Scrape, cur: Scrape, base: string, f?: Filter): number | null {
  const ds = delta(prev, cur, `${base}_sum`, f);
  const dc = delta(prev, cur, `${base}_count`, f);
  return ds === null || !dc ? null : ds / dc;
}

// ---- formatting ----

function fmtNum(v: number | null, digits = 1): string {
  if (v === null || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  if (a >= 100) return v.toFixed(0);
  if (a === 0) return "0";
  return v.toFixed(a < 1 ? 2 : digits);
}
const fmtInt = (v: number | null) => (v === null || !Number.isFinite(v) ? "–" : Math.round(v).toLocaleString());
const fmtMs = (s: number | null) => (s === null ? "–" : s * 1000 < 1 ? `${(s * 1000).toFixed(2)} ms` : `${fmtNum(s * 1000)} ms`);
const fmtPct = (v: number | null) => (v === null ? "–" : `${(v * 100).toFixed(v >= 0.999 || v === 0 ? 0 : 1)}%`);

// ---- figures ----

interface Figure {
  id: string;
  title: string;
  unit: string;
  value: (p: Scrape, c: Scrape) => number | null;
  fmt: (v: number | null) => string;
  sub: (p: Scrape, c: Scrape) => string;
  /** A figure in bad shape (errors) is highlighted. */
  bad?: (v: number | null) => boolean;
}

const is5xx: Filter = (l) => (l.status ?? "").startsWith("5");
const is4xx: Filter = (l) => (l.status ?? "").startsWith("4");

const FIGURES: Figure[] = [
  {
    id: "ingest",
    title: "Ingest rate",
    unit: "ticks/s",
    value: (p, c) => rate(p, c, "marketd_ticks_ingested_total"),
    fmt: fmtNum,
    sub: (p, c) =>
      `stored ${fmtNum(rate(p, c, "marketd_ticks_stored_total"))}/s · duplicates ${fmtInt(total(c, "marketd_ticks_duplicate_total") ?? 0)} · late ${fmtInt(total(c, "marketd_late_ticks_dropped_total") ?? 0)}`,
  },
  {
    id: "http",
    title: "HTTP requests",
    unit: "req/s",
    value: (p, c) => rate(p, c, "marketd_http_requests_total"),
    fmt: fmtNum,
    sub: (p, c) => `mean latency ${fmtMs(meanOver(p, c, "marketd_http_request_duration_seconds"))} · ${fmtInt(total(c, "marketd_http_requests_total"))} total`,
  },
  {
    id: "http5xx",
    title: "Server errors (5xx)",
    unit: "/s",
    value: (p, c) => rate(p, c, "marketd_http_requests_total", is5xx) ?? 0,
    fmt: fmtNum,
    bad: (v) => (v ?? 0) > 0,
    sub: (p, c) => {
      const all = rate(p, c, "marketd_http_requests_total");
      const e = rate(p, c, "marketd_http_requests_total", is5xx) ?? 0;
      return `${all ? fmtPct(e / all) : "–"} of requests · ${fmtInt(total(c, "marketd_http_requests_total", is5xx) ?? 0)} total`;
    },
  },
  {
    id: "http4xx",
    title: "Client errors (4xx)",
    unit: "/s",
    value: (p, c) => rate(p, c, "marketd_http_requests_total", is4xx) ?? 0,
    fmt: fmtNum,
    sub: (p, c) => {
      const all = rate(p, c, "marketd_http_requests_total");
      const e = rate(p, c, "marketd_http_requests_total", is4xx) ?? 0;
      return `${all ? fmtPct(e / all) : "–"} of requests · ${fmtInt(total(c, "marketd_rate_limited_total") ?? 0)} rate limited · ${fmtInt(total(c, "marketd_auth_failures_total") ?? 0)} auth failures`;
    },
  },
  {
    id: "realtime",
    title: "Realtime connections",
    unit: "clients",
    value: (_p, c) => total(c, "marketd_realtime_clients") ?? 0,
    fmt: fmtInt,
    sub: (p, c) =>
      `${fmtInt(total(c, "marketd_realtime_subscriptions") ?? 0)} subscriptions · ${fmtNum(rate(p, c, "marketd_realtime_messages_sent_total"))} msg/s · ${fmtInt(total(c, "marketd_realtime_skipped_total") ?? 0)} skipped`,
  },
  {
    id: "bus",
    title: "Bus buffer depth",
    unit: "messages",
    value: (_p, c) => total(c, "marketd_bus_buffer_depth"),
    fmt: fmtInt,
    sub: (_p, c) =>
      `consumer lag ${fmtInt(total(c, "marketd_bus_consumer_lag") ?? 0)} · produce errors ${fmtInt(total(c, "marketd_bus_produce_errors_total") ?? 0)} · tail skipped ${fmtInt(total(c, "marketd_bus_tail_skipped_total") ?? 0)}`,
  },
  {
    id: "cache",
    title: "Cache hit ratio",
    unit: "",
    value: (p, c) => {
      const h = delta(p, c, "marketd_cache_hits_total") ?? 0;
      const m = delta(p, c, "marketd_cache_misses_total") ?? 0;
      return h + m > 0 ? h / (h + m) : null;
    },
    fmt: fmtPct,
    sub: (p, c) => {
      if (total(c, "marketd_cache_hits_total") === null && total(c, "marketd_cache_misses_total") === null) return "no cache reads yet";
      return `${fmtNum(rate(p, c, "marketd_cache_hits_total") ?? 0)} hits/s · ${fmtNum(rate(p, c, "marketd_cache_misses_total") ?? 0)} misses/s`;
    },
  },
  {
    id: "store",
    title: "Store writes",
    unit: "batches/s",
    value: (p, c) => rate(p, c, "marketd_store_write_seconds_count"),
    fmt: fmtNum,
    sub: (p, c) =>
      `mean write ${fmtMs(meanOver(p, c, "marketd_store_write_seconds"))} · errors ${fmtInt(total(c, "marketd_store_write_errors_total") ?? 0)}`,
  },
  {
    id: "tda",
    title: "TDA jobs running",
    unit: "jobs",
    value: (_p, c) => total(c, "marketd_tda_jobs_running"),
    fmt: fmtInt,
    sub: (_p, c) =>
      `queued ${fmtInt(total(c, "marketd_tda_jobs_queued") ?? 0)} · succeeded ${fmtInt(total(c, "marketd_tda_jobs_finished_total", (l) => l.status === "succeeded") ?? 0)} · failed ${fmtInt(total(c, "marketd_tda_jobs_finished_total", (l) => l.status === "failed") ?? 0)}`,
  },
  {
    id: "signals",
    title: "Signal windows",
    unit: "/min",
    value: (p, c) => {
      const r = rate(p, c, "marketd_tda_stream_windows_total");
      return r === null ? null : r * 60;
    },
    fmt: fmtNum,
    sub: (_p, c) =>
      `${fmtInt(total(c, "marketd_tda_stream_baskets_running") ?? 0)} baskets running · ${fmtInt(total(c, "marketd_tda_stream_alarms_total") ?? 0)} alarms`,
  },
  {
    id: "providers",
    title: "Provider calls",
    unit: "/s",
    value: (p, c) => rate(p, c, "marketd_provider_requests_total"),
    fmt: fmtNum,
    sub: (p, c) =>
      `errors ${fmtNum(rate(p, c, "marketd_provider_errors_total") ?? 0)}/s · retries ${fmtInt(total(c, "marketd_provider_retries_total") ?? 0)} · circuits open ${c.samples.filter((s) => s.name === "marketd_provider_circuit_state" && s.value === 1).length}`,
  },
  {
    id: "workers",
    title: "Connectors running",
    unit: "",
    value: (_p, c) => total(c, "marketd_connectors_running"),
    fmt: fmtInt,
    sub: (_p, c) =>
      `${fmtInt(total(c, "marketd_polling_jobs_running") ?? 0)} polling jobs · ${fmtInt(total(c, "marketd_ws_connected_sessions") ?? 0)} upstream sockets`,
  },
];

const HISTORY = 60;
const METRICS_EVERY = 3000;
const HEALTH_EVERY = 5000;

// ---- health ----

interface Check {
  status: string;
  backend: string;
  error?: string;
  latency_ms?: number;
}
interface ProviderHealth {
  provider: string;
  healthy: boolean;
  last_success_ns?: number;
  last_error?: string;
  last_error_ns?: number;
  consecutive_failures: number;
  circuit: string;
}
interface Ready {
  status: string;
  checks: Record<string, Check>;
  providers: Record<string, ProviderHealth>;
}
interface Live {
  status: string;
  uptime_s: number;
  version: string;
}

function headers(): Record<string, string> {
  const k = session.key();
  return k ? { "X-API-Key": k } : {};
}

/** GET that keeps the body of an error answer (503 carries the checks). */
async function fetchJson<T>(path: string): Promise<{ status: number; body: T | null; error?: string }> {
  try {
    const r = await fetch(path, { headers: { Accept: "application/json", ...headers() } });
    const text = await r.text();
    try {
      return { status: r.status, body: JSON.parse(text) as T };
    } catch {
      return { status: r.status, body: null, error: `HTTP ${r.status}` };
    }
  } catch {
    return { status: 0, body: null, error: "the server cannot be reached" };
  }
}

/**
 * Runs `f` now, again after `second` ms (so rates show at once), then every
 * `ms` while the tab is visible; never two at once.
 */
function usePoll(f: () => Promise<void>, ms: number, second = ms) {
  const ref = useRef(f);
  ref.current = f;
  useEffect(() => {
    let timer: number | undefined;
    let stopped = false;
    let runs = 0;
    const tick = async () => {
      if (stopped) return;
      window.clearTimeout(timer);
      if (!document.hidden) await ref.current();
      runs++;
      if (!stopped) timer = window.setTimeout(tick, runs === 1 ? second : ms);
    };
    void tick();
    const vis = () => {
      if (!document.hidden) {
        window.clearTimeout(timer);
        void tick();
      }
    };
    document.addEventListener("visibilitychange", vis);
    return () => {
      stopped = true;
      window.clearTimeout(timer);
      document.removeEventListener("visibilitychange", vis);
    };
  }, [ms, second]);
}

export function Operations() {
  return (
    <section class="page ops-page" aria-labelledby="ops-title">
      <div class="ops-head">
        <h1 id="ops-title">Operations</h1>
        <nav class="ops-links" aria-label="Server documents">
          <a href="/docs" data-external>
            API docs (Swagger)
          </a>
          <a href="/redoc" data-external>
            ReDoc
          </a>
          <a href="/openapi.json" data-external>
            openapi.json
          </a>
          <a href="/metrics" data-external>
            Prometheus metrics
          </a>
        </nav>
      </div>
      <HealthSection />
      <MetricsSection />
    </section>
  );
}

function HealthSection() {
  const [ready, setReady] = useState<Ready | null>(null);
  const [live, setLive] = useState<Live | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const [at, setAt] = useState<number | null>(null);

  usePoll(async () => {
    const [r, l] = await Promise.all([fetchJson<Ready>("/health/ready"), fetchJson<Live>("/health/live")]);
    if (r.body && r.body.checks) {
      setReady(r.body);
      setErr(null);
    } else {
      setErr(r.error ?? `HTTP ${r.status}`);
    }
    if (l.body && l.body.version) setLive(l.body);
    setAt(Date.now());
  }, HEALTH_EVERY);

  const checks = ready ? Object.entries(ready.checks) : [];
  const providers = ready ? Object.values(ready.providers) : [];
  return (
    <section class="panel ops-section" aria-labelledby="ops-health-h">
      <div class="ops-section-head">
        <h2 id="ops-health-h">Health</h2>
        {ready && (
          <span class={`badge ${ready.status === "ready" ? "ok" : "bad"}`} data-testid="health-overall" role="status">
            {ready.status}
          </span>
        )}
        <span class="muted ops-meta">
          {live ? `marketd ${live.version} · up ${fmtAge(live.uptime_s * 1000)}` : ""}
          {at ? ` · checked ${new Date(at).toLocaleTimeString([], { hour12: false })}` : ""}
        </span>
      </div>
      {err && (
        <p class="error" role="alert">
          Readiness: {err}
        </p>
      )}
      {!ready && !err && <p class="muted">Checking…</p>}
      {ready && (
        <>
          <div class="ops-cards">
            {checks.map(([name, c]) => (
              <article class={`ops-card ${c.status === "ok" ? "" : "is-bad"}`} data-testid={`health-${name}`} data-status={c.status === "ok" ? "ok" : "failed"} aria-label={`${name}: ${c.status === "ok" ? "ok" : "failed"}`}>
                <header>
                  <span>
                    <strong class="ops-name">{name}</strong> <span class="muted ops-kind">backend</span>
                  </span>
                  <span class={`badge ${c.status === "ok" ? "ok" : "bad"}`}>{c.status === "ok" ? "ok" : "failed"}</span>
                </header>
                <dl>
                  <dt>Backend</dt>
                  <dd>{c.backend}</dd>
                  <dt>Latency</dt>
                  <dd class="num">{c.latency_ms === undefined ? "–" : `${c.latency_ms < 1 ? c.latency_ms.toFixed(3) : c.latency_ms.toFixed(1)} ms`}</dd>
                </dl>
                {c.error && <p class="error ops-err">{c.error}</p>}
              </article>
            ))}
              {providers.map((p) => {
                const ok = p.healthy && p.circuit !== "open";
                return (
                  <article class={`ops-card ${ok ? "" : "is-bad"}`} data-testid={`health-${p.provider}`} data-status={ok ? "ok" : "failed"} aria-label={`${p.provider}: ${ok ? "ok" : "failed"}`}>
                    <header>
                      <span>
                        <strong class="ops-name">{p.provider}</strong> <span class="muted ops-kind">provider</span>
                      </span>
                      <span class={`badge ${ok ? "ok" : "bad"}`}>{ok ? "ok" : "failed"}</span>
                    </header>
                    <dl>
                      <dt>Circuit</dt>
                      <dd>
                        <span class={p.circuit === "closed" ? "" : p.circuit === "open" ? "down" : "stale"}>{p.circuit.replace("_", "-")}</span>
                      </dd>
                      <dt>Failures in a row</dt>
                      <dd class="num">{p.consecutive_failures}</dd>
                      <dt>Last success</dt>
                      <dd class="num">{p.last_success_ns ? `${fmtAge(Date.now() - p.last_success_ns / 1e6)} ago` : "–"}</dd>
                    </dl>
                    {p.last_error && (
                      <p class="error ops-err" title={p.last_error}>
                        {p.last_error_ns ? `${fmtAge(Date.now() - p.last_error_ns / 1e6)} ago: ` : ""}
                        {p.last_error}
                      </p>
                    )}
                  </article>
                );
              })}
          </div>
          {providers.length === 0 && <p class="muted">No price provider is configured.</p>}
        </>
      )}
    </section>
  );
}

interface RouteRow {
  key: string;
  method: string;
  route: string;
  rate: number;
  r4: number;
  r5: number;
  mean: number | null;
}

function MetricsSection() {
  const prev = useRef<Scrape | null>(null);
  const hist = useRef<Map<string, (number | null)[]>>(new Map());
  const [view, setView] = useState<{ p: Scrape; c: Scrape } | null>(null);
  const [err, setErr] = useState<string | null>(null);

  usePoll(
    async () => {
      let text: string;
      try {
        const r = await fetch("/metrics", { headers: { Accept: "text/plain", ...headers() } });
        if (!r.ok) {
          setErr(`HTTP ${r.status}`);
          return;
        }
        text = await r.text();
      } catch {
        setErr("the server cannot be reached");
        return;
      }
      const cur: Scrape = { t: Date.now(), samples: parsePrometheus(text) };
      const p = prev.current;
      prev.current = cur;
      setErr(null);
      if (!p) return;
      for (const f of FIGURES) {
        const arr = hist.current.get(f.id) ?? [];
        arr.push(f.value(p, cur));
        if (arr.length > HISTORY) arr.shift();
        hist.current.set(f.id, arr);
      }
      setView({ p, c: cur });
    },
    METRICS_EVERY,
    1000,
  );

  const routes: RouteRow[] = [];
  const topics: { topic: string; depth: number }[] = [];
  if (view) {
    const { p, c } = view;
    const seen = new Set<string>();
    for (const s of c.samples) {
      if (s.name !== "marketd_http_requests_total") continue;
      const key = `${s.labels.method} ${s.labels.route}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const f: Filter = (l) => l.method === s.labels.method && l.route === s.labels.route;
      routes.push({
        key,
        method: s.labels.method ?? "",
        route: s.labels.route ?? "",
        rate: rate(p, c, "marketd_http_requests_total", f) ?? 0,
        r4: rate(p, c, "marketd_http_requests_total", (l) => f(l) && is4xx(l)) ?? 0,
        r5: rate(p, c, "marketd_http_requests_total", (l) => f(l) && is5xx(l)) ?? 0,
        mean: meanOver(p, c, "marketd_http_request_duration_seconds", f),
      });
    }
    routes.sort((a, b) => b.rate - a.rate || a.key.localeCompare(b.key));
    for (const s of c.samples) if (s.name === "marketd_bus_buffer_depth") topics.push({ topic: s.labels.topic ?? "?", depth: s.value });
    topics.sort((a, b) => b.depth - a.depth || a.topic.localeCompare(b.topic));
  }

  return (
    <section class="panel ops-section" aria-labelledby="ops-metrics-h">
      <div class="ops-section-head">
        <h2 id="ops-metrics-h">Key metrics</h2>
        <span class="muted ops-meta">
          from <code>/metrics</code> every {METRICS_EVERY / 1000} s; rates over the last interval; trends over {(HISTORY * METRICS_EVERY) / 60000} min
        </span>
      </div>
      {err && (
        <p class="error" role="alert">
          Metrics: {err}
        </p>
      )}
      <div class="ops-figures">
        {FIGURES.map((f) => {
          const values = hist.current.get(f.id) ?? [];
          const v = view ? f.value(view.p, view.c) : null;
          const bad = f.bad?.(v) ?? false;
          return (
            <article class={`ops-figure ${bad ? "is-bad" : ""}`} data-testid={`metric-${f.id}`} aria-labelledby={`fig-${f.id}`}>
              <h3 id={`fig-${f.id}`}>
                {f.title}
                {f.unit && <span class="ops-unit"> · {f.unit}</span>}
              </h3>
              <div class="ops-value">
                <span class="num">{view ? f.fmt(v) : "–"}</span>
                <Sparkline values={values} label={`${f.title}, last ${values.length} readings`} />
              </div>
              <p class="muted ops-detail">{view ? f.sub(view.p, view.c) : "waiting for two readings…"}</p>
            </article>
          );
        })}
      </div>
      <div class="ops-tables">
        <div class="table-wrap">
          <table>
            <caption>HTTP by route</caption>
            <thead>
              <tr>
                <th scope="col">Route</th>
                <th scope="col" class="num">
                  req/s
                </th>
                <th scope="col" class="num">
                  4xx/s
                </th>
                <th scope="col" class="num">
                  5xx/s
                </th>
                <th scope="col" class="num">
                  Mean
                </th>
              </tr>
            </thead>
            <tbody>
              {routes.slice(0, 10).map((r) => (
                <tr>
                  <td class="ops-route">
                    <span class="muted">{r.method}</span> <code>{r.route}</code>
                  </td>
                  <td class="num">{fmtNum(r.rate)}</td>
                  <td class="num">{fmtNum(r.r4)}</td>
                  <td class={`num ${r.r5 > 0 ? "down" : ""}`}>{fmtNum(r.r5)}</td>
                  <td class="num">{fmtMs(r.mean)}</td>
                </tr>
              ))}
              {!routes.length && (
                <tr>
                  <td colSpan={5} class="muted">
                    {view ? "No request counted yet." : "Waiting for two readings…"}
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
        <div class="table-wrap">
          <table>
            <caption>Bus buffer per topic</caption>
            <thead>
              <tr>
                <th scope="col">Topic</th>
                <th scope="col" class="num">
                  Depth
                </th>
              </tr>
            </thead>
            <tbody>
              {topics.map((t) => (
                <tr>
                  <td>
                    <code>{t.topic}</code>
                  </td>
                  <td class="num">{fmtInt(t.depth)}</td>
                </tr>
              ))}
              {!topics.length && (
                <tr>
                  <td colSpan={2} class="muted">
                    {view ? "Not reported." : "Waiting for two readings…"}
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      </div>
    </section>
  );
}

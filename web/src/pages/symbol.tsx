// One symbol: the live price, a candlestick chart (history from
// /api/v1/bars continued by the `bars` channel), overlays computed from the
// chart's bars (SMA, EMA, session VWAP: the same for every interval, and
// live), and the latest ticks (seeded from /api/v1/prices/history, then the
// `ticks` channel). Ticks land in a store outside Preact; the parts that show
// them re-render at most once per frame and per 100 ms, the chart not at all.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, get, query } from "../lib/api";
import { fmtCompact, fmtPct, fmtPrice, fmtTime } from "../lib/format";
import { realtime } from "../lib/realtime";
import { useTheme } from "../lib/theme";
import { Candles, type BarInput, type Overlays } from "../components/candles";
import "./symbol.css";

const INTERVALS = ["1s", "1m", "5m", "1h", "1d"] as const;
type Interval = (typeof INTERVALS)[number];
const INTERVAL_LABELS: Record<Interval, string> = { "1s": "1 second", "1m": "1 minute", "5m": "5 minutes", "1h": "1 hour", "1d": "1 day" };
const HISTORY_BARS = 500;
const MAX_TICKS = 50;
const MA_WINDOW = 20;
const STALE_MS = 60_000;

interface Tick {
  symbol: string;
  source?: string;
  kind?: string;
  price: number;
  size?: number;
  bid?: number | null;
  ask?: number | null;
  sequence?: number;
  ts_event: number;
  ts_received?: number;
}

interface BarsResponse {
  symbol?: string;
  count?: number;
  bars?: (BarInput & { last_ts?: number })[];
}

interface HistoryResponse {
  ticks?: Tick[];
  next_cursor?: string | null;
}

interface Day {
  open: number | null;
  high: number | null;
  low: number | null;
  volume: number | null;
  start: number | null; // ns
}

const errText = (e: unknown) => (e instanceof ApiError ? e.detail || e.code : e instanceof Error ? e.message : String(e));
const isAbort = (e: unknown) => (e as Error)?.name === "AbortError";
const tickKey = (t: Tick) => `${t.source ?? ""}|${t.sequence ?? ""}|${t.ts_event}`;

/** The newest ticks (at most MAX_TICKS), newest first: from the narrowest of
 *  the recent windows that holds enough (history pages are oldest first). */
async function recentTicks(symbol: string, signal: AbortSignal): Promise<Tick[]> {
  const windowsMs = [15_000, 5 * 60_000, 6 * 3_600_000];
  let best: Tick[] = [];
  for (const w of windowsMs) {
    const from = new Date(Date.now() - w).toISOString();
    let got: Tick[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 5; page++) {
      const res = await get<HistoryResponse>(`/api/v1/prices/history${query({ symbol, from, limit: 1000, cursor })}`, signal);
      got = got.concat(res.ticks ?? []).slice(-MAX_TICKS);
      cursor = res.next_cursor ?? undefined;
      if (!cursor) break;
    }
    // Pages left: these are not the newest; keep the narrower window's.
    if (cursor) break;
    best = got;
    if (best.length >= MAX_TICKS) break;
  }
  return best.reverse();
}

const sizeFmt = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 6 });
/** A trade size: small ones (fractions of a coin) keep their digits. */
function fmtSize(x: number | null | undefined): string {
  if (typeof x !== "number" || !Number.isFinite(x)) return "–";
  return Math.abs(x) >= 100_000 ? fmtCompact(x) : sizeFmt.format(x);
}

function fmtSigned(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return "–";
  if (x === 0) return fmtPrice(0);
  return `${x > 0 ? "+" : "-"}${fmtPrice(Math.abs(x))}`;
}

/** Least time between two renders driven by ticks (ms). */
const RENDER_EVERY_MS = 100;

/** The symbol's ticks: the live price, the day's range, the latest ticks. */
class LiveTicks {
  ticks: Tick[] = [];
  price: number | null = null;
  tsMs: number | null = null;
  source = "";
  flash = 0;
  flashN = 0;
  day: Day = { open: null, high: null, low: null, volume: null, start: null };
  loading = true;
  error: string | null = null;
  private listeners = new Set<() => void>();
  private raf = 0;
  private timer: number | undefined;
  private lastFlush = 0;
  private seeded = false;
  private pending: Tick[] = [];
  private ac = new AbortController();
  private unsubscribe: (() => void) | null = null;

  constructor(readonly symbol: string) {}

  start() {
    const symbol = this.symbol;
    this.unsubscribe = realtime.subscribe("ticks", [symbol], (m) => {
      const t = m.data as Tick;
      if (!t || t.symbol !== symbol) return;
      if (!this.seeded) {
        this.pending.push(t);
        return;
      }
      this.apply(t);
      this.ticks.unshift(t);
      if (this.ticks.length > MAX_TICKS) this.ticks.length = MAX_TICKS;
      this.changed();
    });
    void this.seed();
  }

  stop() {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.ac.abort();
    this.listeners.clear();
    cancelAnimationFrame(this.raf);
    window.clearTimeout(this.timer);
  }

  listen(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** One flush per frame, at most every RENDER_EVERY_MS. */
  private changed() {
    if (this.raf || this.timer !== undefined) return;
    const frame = () => {
      this.timer = undefined;
      this.raf = requestAnimationFrame(() => {
        this.raf = 0;
        this.lastFlush = performance.now();
        for (const l of this.listeners) l();
      });
    };
    const wait = this.lastFlush + RENDER_EVERY_MS - performance.now();
    if (wait > 0) this.timer = window.setTimeout(frame, wait);
    else frame();
  }

  private apply(t: Tick) {
    if (typeof t?.price !== "number" || !Number.isFinite(t.price)) return;
    const tsMs = typeof t.ts_event === "number" ? t.ts_event / 1e6 : Date.now();
    if (this.tsMs !== null && tsMs < this.tsMs - 1) return;
    if (this.price !== null && t.price !== this.price) {
      this.flash = t.price > this.price ? 1 : -1;
      this.flashN ^= 1;
    }
    this.price = t.price;
    this.tsMs = tsMs;
    if (t.source) this.source = t.source;
    const d = this.day;
    if (d.start !== null && typeof t.ts_event === "number" && t.ts_event >= d.start + 86_400e9) {
      // A new UTC day: its first price opens it.
      d.start = Math.floor(t.ts_event / 86_400e9) * 86_400e9;
      d.open = d.high = d.low = t.price;
      d.volume = 0;
    }
    if (d.open === null) d.open = t.price;
    d.high = d.high === null ? t.price : Math.max(d.high, t.price);
    d.low = d.low === null ? t.price : Math.min(d.low, t.price);
    if (typeof t.size === "number" && d.volume !== null) d.volume += t.size;
  }

  private async seed() {
    const { symbol, ac } = this;
    // The day's bar first (open, range, volume), then the recent ticks.
    try {
      const day = await get<BarsResponse>(`/api/v1/bars${query({ symbol, interval: "1d", limit: 1 })}`, ac.signal);
      const b = day.bars?.[day.bars.length - 1];
      if (b) {
        this.day = { open: b.open, high: b.high, low: b.low, volume: b.volume ?? null, start: b.start };
        if (this.price === null) {
          this.price = b.close;
          this.tsMs = typeof b.last_ts === "number" ? b.last_ts / 1e6 : null;
          this.source = b.source ?? this.source;
        }
      }
    } catch (e) {
      if (isAbort(e)) return;
      // The tick history below reports the error (an invalid symbol fails both).
    }
    let seed: Tick[] = [];
    try {
      seed = await recentTicks(symbol, ac.signal);
    } catch (e) {
      if (isAbort(e)) return;
      this.error = errText(e);
    }
    // Ticks that came live during the seeding follow it, without duplicates.
    const seen = new Set(seed.map(tickKey));
    const merged = seed.slice().reverse(); // oldest first
    for (const t of this.pending) if (!seen.has(tickKey(t))) merged.push(t);
    merged.sort((a, b) => a.ts_event - b.ts_event);
    // The day's bar already counts the seeded ticks: only the price follows them.
    const before = { ...this.day };
    for (const t of merged) this.apply(t);
    if (before.open !== null) {
      this.day = {
        ...before,
        high: Math.max(before.high ?? -Infinity, this.price ?? -Infinity),
        low: Math.min(before.low ?? Infinity, this.price ?? Infinity),
      };
    }
    this.flash = 0;
    this.ticks = merged.slice(-MAX_TICKS).reverse();
    this.seeded = true;
    this.pending = [];
    this.loading = false;
    this.changed();
  }
}

/** Re-renders the caller on every flush of `live`. */
function useLive(live: LiveTicks) {
  const [, set] = useState(0);
  useEffect(() => live.listen(() => set((n) => n + 1)), [live]);
}

function Quote({ live }: { live: LiveTicks }) {
  useLive(live);
  const d = live.day;
  const change = live.price !== null && d.open !== null ? live.price - d.open : null;
  const pct = change !== null && d.open ? (change / d.open) * 100 : null;
  const dir = change === null || change === 0 ? "" : change > 0 ? "up" : "down";
  const flash = live.flash === 0 ? "" : `${live.flash > 0 ? "flash-up" : "flash-down"}${live.flashN ? " flash-alt" : ""}`;
  const age = live.tsMs === null ? null : Date.now() - live.tsMs;
  const stale = age !== null && age > STALE_MS;
  return (
    <>
      <div class="sym-quote">
        <span class={`num sym-price ${flash}`} data-testid={`price-${live.symbol}`}>
          {fmtPrice(live.price)}
        </span>
        <span class={`num sym-change ${dir}`} data-testid="symbol-change">
          <span aria-hidden="true">{dir === "up" ? "▲ " : dir === "down" ? "▼ " : ""}</span>
          {fmtSigned(change)} ({fmtPct(pct)})
        </span>
        {stale && <span class="badge stale-badge">stale</span>}
      </div>
      <dl class="sym-stats">
        <div>
          <dt>Open</dt>
          <dd class="num">{fmtPrice(d.open)}</dd>
        </div>
        <div>
          <dt>High</dt>
          <dd class="num">{fmtPrice(d.high)}</dd>
        </div>
        <div>
          <dt>Low</dt>
          <dd class="num">{fmtPrice(d.low)}</dd>
        </div>
        <div>
          <dt>Volume</dt>
          <dd class="num">{fmtCompact(d.volume)}</dd>
        </div>
        <div>
          <dt>Source</dt>
          <dd>{live.source || "–"}</dd>
        </div>
        <div>
          <dt>Last update</dt>
          <dd class="num">{live.tsMs === null ? "–" : `${fmtTime(live.tsMs).slice(11)} UTC`}</dd>
        </div>
      </dl>
    </>
  );
}

function TicksTable({ live }: { live: LiveTicks }) {
  useLive(live);
  const ticks = live.ticks;
  return (
    <div class="panel ticks-panel">
      <h2 id="ticks-title">Latest ticks</h2>
      <div class="ticks-scroll" tabIndex={0} role="region" aria-labelledby="ticks-title">
        <table class="ticks-table" aria-labelledby="ticks-title" data-testid="ticks">
          <colgroup>
            <col class="w-time" />
            <col class="w-price" />
            <col class="w-size" />
            <col class="w-source" />
            <col class="w-kind" />
          </colgroup>
          <thead>
            <tr>
              <th scope="col">Time (UTC)</th>
              <th scope="col" class="num">
                Price
              </th>
              <th scope="col" class="num">
                Size
              </th>
              <th scope="col">Source</th>
              <th scope="col">Kind</th>
            </tr>
          </thead>
          <tbody>
            {ticks.map((t, i) => {
              const older = ticks[i + 1];
              const td = older ? (t.price > older.price ? "up" : t.price < older.price ? "down" : "") : "";
              return (
                <tr key={tickKey(t)}>
                  <td class="num t-time">{fmtTime(t.ts_event / 1e6).slice(11)}</td>
                  <td class={`num ${td}`}>
                    <span class="t-arrow" aria-hidden="true">
                      {td === "up" ? "▲" : td === "down" ? "▼" : ""}
                    </span>
                    {fmtPrice(t.price)}
                  </td>
                  <td class="num">{fmtSize(t.size)}</td>
                  <td class="muted">{t.source ?? "–"}</td>
                  <td class="muted">{t.kind ?? "–"}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {ticks.length === 0 && (
          <p class={live.error ? "empty error" : "empty"} role={live.error ? "alert" : "status"}>
            {live.loading ? "Loading ticks…" : live.error ? `Cannot load the ticks: ${live.error}` : "No ticks yet."}
          </p>
        )}
      </div>
    </div>
  );
}

/** The API's complaint about the symbol, when both the bars and the ticks failed. */
function Fatal({ live, barsError }: { live: LiveTicks; barsError: string | null }) {
  useLive(live);
  if (!barsError || !live.error) return null;
  return (
    <p class="sym-error" role="alert" data-testid="symbol-error">
      Cannot show {live.symbol}: {barsError}
    </p>
  );
}

export function SymbolView({ symbol: raw }: { symbol: string }) {
  const symbol = raw.trim().toUpperCase();
  const theme = useTheme();
  const [interval, setInterval_] = useState<Interval>("1m");
  const [overlays, setOverlays] = useState<Overlays>({ sma: true, ema: false, vwap: false });
  const [barCount, setBarCount] = useState(0);
  const [barsState, setBarsState] = useState<{ loading: boolean; error: string | null }>({ loading: true, error: null });
  const chart = useRef<Candles>(null);
  const live = useMemo(() => new LiveTicks(symbol), [symbol]);

  useEffect(() => {
    live.start();
    return () => live.stop();
  }, [live]);

  // Bars: history then live updates for the chosen interval.
  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    c.clear();
    setBarsState({ loading: true, error: null });
    const ac = new AbortController();
    let ready = false;
    let source: string | null = null;
    const pending: BarInput[] = [];
    const unsubscribe = realtime.subscribe(
      "bars",
      [symbol],
      (m) => {
        const b = m.data as BarInput & { symbol?: string };
        if (!b || b.interval !== interval || (b.symbol && b.symbol !== symbol)) return;
        if (!ready) {
          pending.push(b);
          return;
        }
        source ??= b.source ?? null;
        if (source && b.source && b.source !== source) return;
        chart.current?.upsert(b);
      },
      interval,
    );
    get<BarsResponse>(`/api/v1/bars${query({ symbol, interval, limit: HISTORY_BARS })}`, ac.signal)
      .then((res) => {
        const bars = res.bars ?? [];
        // One source on the chart: the one of the newest bar.
        source = bars.length ? (bars[bars.length - 1].source ?? null) : null;
        const mine = source ? bars.filter((b) => !b.source || b.source === source) : bars;
        const cc = chart.current;
        if (!cc) return;
        cc.setBars(mine);
        ready = true;
        for (const b of pending) {
          source ??= b.source ?? null;
          if (!source || !b.source || b.source === source) cc.upsert(b);
        }
        pending.length = 0;
        setBarsState({ loading: false, error: null });
      })
      .catch((e) => {
        if (isAbort(e)) return;
        ready = true;
        setBarsState({ loading: false, error: errText(e) });
      });
    return () => {
      unsubscribe();
      ac.abort();
    };
  }, [symbol, interval]);

  return (
    <section class="page symbol-page" aria-labelledby="symbol-title">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href="/">Board</a>
        <span aria-hidden="true"> / </span>
        <span aria-current="page">{symbol}</span>
      </nav>
      <header class="sym-head">
        <h1 id="symbol-title" data-testid="symbol-title">
          {symbol}
        </h1>
        <Quote live={live} />
      </header>

      <Fatal live={live} barsError={barsState.error} />

      <div class="panel chart-panel">
        <div class="chart-toolbar">
          <div class="seg" role="group" aria-label="Bar interval">
            {INTERVALS.map((iv) => (
              <button
                type="button"
                aria-pressed={iv === interval}
                title={`${INTERVAL_LABELS[iv]} bars`}
                data-testid={`interval-${iv}`}
                onClick={() => setInterval_(iv)}
              >
                {iv}
              </button>
            ))}
          </div>
          <fieldset class="overlays">
            <legend class="sr-only">Overlays</legend>
            <label class="inline ov-sma">
              <input
                type="checkbox"
                checked={overlays.sma}
                onChange={(e) => setOverlays({ ...overlays, sma: (e.target as HTMLInputElement).checked })}
                data-testid="overlay-sma"
              />
              <span class="swatch" aria-hidden="true" />
              SMA {MA_WINDOW}
            </label>
            <label class="inline ov-ema">
              <input
                type="checkbox"
                checked={overlays.ema}
                onChange={(e) => setOverlays({ ...overlays, ema: (e.target as HTMLInputElement).checked })}
                data-testid="overlay-ema"
              />
              <span class="swatch" aria-hidden="true" />
              EMA {MA_WINDOW}
            </label>
            <label class="inline ov-vwap" title="Volume-weighted average price from the first bar shown, restarting at 00:00 UTC">
              <input
                type="checkbox"
                checked={overlays.vwap}
                onChange={(e) => setOverlays({ ...overlays, vwap: (e.target as HTMLInputElement).checked })}
                data-testid="overlay-vwap"
              />
              <span class="swatch" aria-hidden="true" />
              VWAP
            </label>
          </fieldset>
          <span class="bar-count muted">
            <span class="num" data-testid="bar-count">
              {barCount}
            </span>{" "}
            {barCount === 1 ? "bar" : "bars"} · UTC
          </span>
        </div>
        <div class="chart sym-chart" data-testid="chart" aria-busy={barsState.loading}>
          <Candles
            ref={chart}
            interval={interval}
            theme={theme}
            overlays={overlays}
            window={MA_WINDOW}
            onCount={setBarCount}
            label={`${symbol} candlestick chart, ${INTERVAL_LABELS[interval]} bars, with volume`}
          />
          {(barsState.loading || barsState.error || barCount === 0) && (
            <div class={`chart-msg ${barsState.error ? "is-error" : ""}`} role={barsState.error ? "alert" : "status"}>
              {barsState.loading
                ? "Loading bars…"
                : barsState.error
                  ? `Cannot load the ${interval} bars: ${barsState.error}`
                  : `No ${interval} bars for ${symbol} yet; they appear as trades arrive.`}
            </div>
          )}
        </div>
      </div>

      <TicksTable live={live} />
    </section>
  );
}

// Streaming topological signals per basket (docs/tda.md, "Streaming
// signals"): the history from GET /api/v1/tda/signals, then every window
// live from the realtime `tda-signals` channel, charted with the robust
// z-score, its alarm threshold and the windows that raised the alarm.
import { useEffect, useRef, useState } from "preact/hooks";
import {
  ColorType,
  createChart,
  createSeriesMarkers,
  LineSeries,
  LineStyle,
  TickMarkType,
  type IChartApi,
  type IPriceLine,
  type ISeriesApi,
  type ISeriesMarkersPluginApi,
  type LineData,
  type SeriesMarker,
  type Time,
  type UTCTimestamp,
  type WhitespaceData,
} from "lightweight-charts";
import { ApiError, get, query } from "../lib/api";
import { fmtAge } from "../lib/format";
import { realtime, type ConnState } from "../lib/realtime";
import { cssVar, useTheme } from "../lib/theme";
import "./signals.css";

interface TdaSignal {
  basket: string;
  window_start: number;
  window_end: number;
  points: number;
  h1_bars: number;
  landscape_l1: number;
  landscape_l2: number;
  entropy: number;
  wasserstein: number | null;
  volatility: number;
  zscore: number | null;
  alarm: boolean;
  alarm_raised: boolean;
  emitted_at: number;
}

interface Basket {
  name: string;
  symbols: string[];
  interval: string;
  window: number;
  step: number;
  points: number;
  dimension: number;
  embedding?: [number, number];
  threshold: number;
  hysteresis: number;
  cooldown: number;
  min_history: number;
  last_signal: TdaSignal | null;
}

type Metric = "landscape_l1" | "landscape_l2" | "entropy" | "wasserstein" | "volatility" | "h1_bars";
const METRICS: [Metric, string][] = [
  ["landscape_l1", "Landscape L1 norm"],
  ["landscape_l2", "Landscape L2 norm"],
  ["entropy", "Persistence entropy"],
  ["wasserstein", "Wasserstein to previous window"],
  ["volatility", "Realized volatility"],
  ["h1_bars", "H1 bars"],
];
const HISTORY = [200, 500, 1000, 2000];

/** A compact number: scientific below 1e-3 (landscape norms are tiny). */
function sci(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a < 1e-18) return "0";
  if (a < 1e-3 || a >= 1e6) return v.toExponential(2);
  return Number(v.toPrecision(4)).toString();
}

const toTime = (ns: number) => Math.floor(ns / 1e9) as UTCTimestamp;

function intervalMs(iv: string): number {
  const m = iv.match(/^(\d+)(ms|s|m|h|d)$/);
  if (!m) return 0;
  const n = Number(m[1]);
  return n * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as Record<string, number>)[m[2]];
}

function clock(ns: number): string {
  return new Date(ns / 1e6).toLocaleTimeString([], { hour12: false });
}

function errorText(e: unknown): string {
  return e instanceof ApiError ? `${e.detail} (${e.code})` : String(e);
}

function initialBasket(): string {
  return new URLSearchParams(location.search).get("basket") ?? "";
}

export function Signals() {
  const [baskets, setBaskets] = useState<Basket[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [name, setName] = useState(initialBasket);
  const [metric, setMetric] = useState<Metric>("landscape_l1");
  const [limit, setLimit] = useState(500);

  useEffect(() => {
    let live = true;
    get<{ baskets: Basket[] }>("/api/v1/tda/baskets").then(
      (r) => {
        if (!live) return;
        setBaskets(r.baskets);
        setName((n) => (r.baskets.some((b) => b.name === n) ? n : r.baskets[0]?.name ?? ""));
      },
      (e) => live && setError(errorText(e)),
    );
    return () => {
      live = false;
    };
  }, []);

  const choose = (n: string) => {
    setName(n);
    history.replaceState(null, "", `/signals${query({ basket: n })}`);
  };

  const basket = baskets?.find((b) => b.name === name) ?? null;

  return (
    <section class="page signals-page" aria-labelledby="sig-title">
      <h1 id="sig-title">Streaming signals</h1>
      {error && (
        <p class="error" role="alert">
          Baskets: {error}
        </p>
      )}
      {baskets === null && !error && <p class="muted" aria-busy="true">Loading the baskets…</p>}
      {baskets && baskets.length === 0 && <NoBasket />}
      {baskets && baskets.length > 0 && (
        <>
          <div class="toolbar sig-toolbar">
            <label class="inline" for="sig-basket">
              Basket
            </label>
            <select id="sig-basket" data-testid="signals-basket" value={name} onChange={(e) => choose((e.target as HTMLSelectElement).value)}>
              {baskets.map((b) => (
                <option value={b.name}>
                  {b.name} · {b.symbols.length} symbol{b.symbols.length > 1 ? "s" : ""} · {b.interval}
                </option>
              ))}
            </select>
            <label class="inline" for="sig-metric">
              Upper pane
            </label>
            <select id="sig-metric" value={metric} onChange={(e) => setMetric((e.target as HTMLSelectElement).value as Metric)}>
              {METRICS.map(([v, l]) => (
                <option value={v}>{l}</option>
              ))}
            </select>
            <label class="inline" for="sig-limit">
              History
            </label>
            <select id="sig-limit" value={String(limit)} onChange={(e) => setLimit(Number((e.target as HTMLSelectElement).value))}>
              {HISTORY.map((n) => (
                <option value={String(n)}>{n} windows</option>
              ))}
            </select>
          </div>
          {basket && <BasketView key={basket.name} basket={basket} metric={metric} limit={limit} />}
        </>
      )}
    </section>
  );
}

function NoBasket() {
  return (
    <div class="panel sig-empty" data-testid="signals-empty">
      <h2>No basket is configured</h2>
      <p>
        A basket is a set of symbols whose closed bars marketd turns into a topological signal: one point cloud of joint log
        returns per window, its H1 persistence landscape norms, and a robust z-score of the L1 norm that raises an alarm. None
        runs by default. Add one to the configuration file under <code>[tda.stream]</code> and restart marketd (every instance
        must share it):
      </p>
      <pre class="sig-toml">{`[[tda.stream.baskets]]
name = "crypto4"
symbols = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "BNB-USDT"]
interval = "1m"        # one of aggregator.intervals
window = 51            # bars per window: 50 returns = 50 points in R^4
step = 5               # a window every 5 bars
threshold = 3.0        # alarm at robust z >= 3`}</pre>
      <p class="muted">
        See <code>marketd.example.toml</code> and <code>docs/tda.md</code> (“Streaming signals”) for every key, and{" "}
        <code>[feeds.simulated.regime]</code> to make the simulated market change regime.
      </p>
    </div>
  );
}

interface Colors {
  bg: string;
  text: string;
  grid: string;
  border: string;
  metric: string;
  z: string;
  alarm: string;
  muted: string;
}

function colors(): Colors {
  return {
    bg: cssVar("--panel") || "#fff",
    text: cssVar("--muted") || "#566072",
    grid: cssVar("--chart-grid") || "#e6e9ee",
    border: cssVar("--border") || "#d5dae2",
    metric: cssVar("--sig-metric") || "#0b5cd5",
    z: cssVar("--sig-z") || "#8a5a00",
    alarm: cssVar("--down") || "#c2231b",
    muted: cssVar("--muted") || "#566072",
  };
}

function chartOptions(c: Colors) {
  return {
    layout: {
      attributionLogo: false, // see components/candles.tsx: credited in the footer
      background: { type: ColorType.Solid, color: c.bg },
      textColor: c.text,
      fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
      fontSize: 11,
      panes: { separatorColor: c.border, separatorHoverColor: c.grid, enableResize: true },
    },
    grid: { vertLines: { color: c.grid }, horzLines: { color: c.grid } },
    rightPriceScale: { borderColor: c.border },
    timeScale: { borderColor: c.border },
  };
}

interface Hover {
  time: number;
  metric: number | null;
  z: number | null;
}

function BasketView({ basket, metric, limit }: { basket: Basket; metric: Metric; limit: number }) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<IChartApi | null>(null);
  const metricSeries = useRef<ISeriesApi<"Line"> | null>(null);
  const zSeries = useRef<ISeriesApi<"Line"> | null>(null);
  const markers = useRef<ISeriesMarkersPluginApi<Time> | null>(null);
  const lines = useRef<IPriceLine[]>([]);
  const data = useRef<TdaSignal[]>([]);
  const metricRef = useRef(metric);
  const [latest, setLatest] = useState<TdaSignal | null>(basket.last_signal);
  const [count, setCount] = useState(0);
  const [alarms, setAlarms] = useState<TdaSignal[]>([]);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [hover, setHover] = useState<Hover | null>(null);
  const [conn, setConn] = useState<ConnState>(realtime.state);
  const theme = useTheme();

  const metricLabel = METRICS.find(([m]) => m === metric)![1];

  /** Everything drawn, from `data` (after a load or an out-of-order window). */
  const redraw = () => {
    const ms = metricSeries.current;
    const zs = zSeries.current;
    if (!ms || !zs) return;
    const m = metricRef.current;
    ms.setData(data.current.map((s) => point(s, s[m] as number | null)));
    zs.setData(data.current.map((s) => point(s, s.zscore)));
    markers.current?.setMarkers(markersOf(data.current));
    setCount(data.current.length);
    setAlarms(data.current.filter((s) => s.alarm_raised).slice(-6).reverse());
  };

  // The chart: two panes (the chosen metric; the z-score with its alarm lines).
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const c = colors();
    const ch = createChart(el, {
      autoSize: true,
      ...chartOptions(c),
      timeScale: {
        borderColor: c.border,
        timeVisible: true,
        secondsVisible: intervalMs(basket.interval) < 60_000,
        tickMarkFormatter: (t: Time, type: TickMarkType) => {
          const d = new Date((t as number) * 1000);
          if (type === TickMarkType.Year) return String(d.getFullYear());
          if (type === TickMarkType.Month) return d.toLocaleDateString([], { month: "short" });
          if (type === TickMarkType.DayOfMonth) return d.toLocaleDateString([], { day: "numeric", month: "short" });
          return d.toLocaleTimeString([], { hour12: false, hour: "2-digit", minute: "2-digit", second: type === TickMarkType.TimeWithSeconds ? "2-digit" : undefined });
        },
      },
      localization: {
        timeFormatter: (t: Time) => new Date((t as number) * 1000).toLocaleString([], { hour12: false }),
      },
      crosshair: { mode: 0 },
    });
    const ms = ch.addSeries(
      LineSeries,
      {
        color: c.metric,
        lineWidth: 2,
        priceFormat: { type: "custom", formatter: (v: number) => sci(v), minMove: 1e-15 },
        title: "",
        lastValueVisible: true,
        priceLineVisible: false,
      },
      0,
    );
    const zs = ch.addSeries(
      LineSeries,
      {
        color: c.z,
        lineWidth: 2,
        priceFormat: { type: "price", precision: 2, minMove: 0.01 },
        title: "z",
        priceLineVisible: false,
      },
      1,
    );
    const panes = ch.panes();
    panes[0]?.setStretchFactor(0.58);
    panes[1]?.setStretchFactor(0.42);
    lines.current = [
      zs.createPriceLine({ price: basket.threshold, color: c.alarm, lineWidth: 1, lineStyle: LineStyle.Dashed, axisLabelVisible: true, title: "alarm" }),
      zs.createPriceLine({ price: basket.hysteresis, color: c.muted, lineWidth: 1, lineStyle: LineStyle.Dotted, axisLabelVisible: false, title: "clear" }),
    ];
    markers.current = createSeriesMarkers(zs, []);
    ch.subscribeCrosshairMove((p) => {
      if (!p.time || !p.point) {
        setHover(null);
        return;
      }
      const a = p.seriesData.get(ms) as LineData | undefined;
      const b = p.seriesData.get(zs) as LineData | undefined;
      setHover({ time: p.time as number, metric: a?.value ?? null, z: b?.value ?? null });
    });
    chart.current = ch;
    metricSeries.current = ms;
    zSeries.current = zs;
    redraw();
    return () => {
      ch.remove();
      chart.current = null;
      metricSeries.current = null;
      zSeries.current = null;
      markers.current = null;
    };
  }, [basket]);

  // Colours follow the theme.
  useEffect(() => {
    const c = colors();
    chart.current?.applyOptions(chartOptions(c));
    metricSeries.current?.applyOptions({ color: c.metric });
    zSeries.current?.applyOptions({ color: c.z });
    lines.current[0]?.applyOptions({ color: c.alarm });
    lines.current[1]?.applyOptions({ color: c.muted });
    markers.current?.setMarkers(markersOf(data.current));
  }, [theme]);

  // Another metric: same windows, other values.
  useEffect(() => {
    metricRef.current = metric;
    metricSeries.current?.setData(data.current.map((s) => point(s, s[metric] as number | null)));
  }, [metric]);

  // History, then live windows; read again after a gap or a reconnect.
  useEffect(() => {
    let live = true;
    let ctrl: AbortController | null = null;
    let first = true;
    const load = async () => {
      ctrl?.abort();
      ctrl = new AbortController();
      try {
        const r = await get<{ signals: TdaSignal[] }>(`/api/v1/tda/signals${query({ basket: basket.name, limit })}`, ctrl.signal);
        if (!live) return;
        // Windows that arrived live while the history was loading are kept.
        const byEnd = new Map<number, TdaSignal>();
        for (const s of r.signals) byEnd.set(s.window_end, s);
        const newest = r.signals.length ? r.signals[r.signals.length - 1].window_end : -Infinity;
        for (const s of data.current) if (s.window_end > newest) byEnd.set(s.window_end, s);
        data.current = [...byEnd.values()].sort((a, b) => a.window_end - b.window_end);
        redraw();
        const last = data.current[data.current.length - 1];
        if (last) setLatest(last);
        setLoadError(null);
        setLoaded(true);
        if (first) chart.current?.timeScale().fitContent();
        else chart.current?.timeScale().scrollToRealTime();
        first = false;
      } catch (e) {
        if ((e as Error).name !== "AbortError" && live) setLoadError(errorText(e));
      }
    };
    const onWindow = (s: TdaSignal) => {
      if (!s || s.basket !== basket.name) return;
      const arr = data.current;
      const last = arr[arr.length - 1];
      if (!last || s.window_end > last.window_end) {
        arr.push(s);
        if (arr.length > limit * 2) arr.splice(0, arr.length - limit);
        metricSeries.current?.update(point(s, s[metricRef.current] as number | null));
        zSeries.current?.update(point(s, s.zscore));
        if (s.alarm_raised || (last && last.alarm && !s.alarm)) markers.current?.setMarkers(markersOf(arr));
        setCount(arr.length);
        if (s.alarm_raised) setAlarms(arr.filter((x) => x.alarm_raised).slice(-6).reverse());
      } else {
        // A replayed or recomputed window: replace it in place.
        const i = arr.findIndex((x) => x.window_end === s.window_end);
        if (i >= 0) arr[i] = s;
        else {
          arr.push(s);
          arr.sort((a, b) => a.window_end - b.window_end);
        }
        redraw();
      }
      setLatest((cur) => (!cur || s.window_end >= cur.window_end ? s : cur));
    };
    data.current = [];
    setLoaded(false);
    void load();
    const unsub = realtime.subscribe("tda-signals", [basket.name], (m) => onWindow(m.data as TdaSignal));
    const offGap = realtime.onGap((g) => {
      if (g.channel === "tda-signals" && (g.key === basket.name || g.key === "*")) void load();
    });
    let prev = realtime.state;
    const offState = realtime.onState((s) => {
      setConn(s);
      if (s === "open" && prev !== "open") void load();
      prev = s;
    });
    return () => {
      live = false;
      ctrl?.abort();
      unsub();
      offGap();
      offState();
    };
  }, [basket, limit]);

  const showAlarm = (s: TdaSignal) => {
    const t = toTime(s.window_end);
    const span = Math.max(30, basket.step) * (intervalMs(basket.interval) / 1000) * 1;
    chart.current?.timeScale().setVisibleRange({ from: (t - span) as UTCTimestamp, to: (t + span) as UTCTimestamp });
  };

  const status = !latest ? "none" : latest.alarm ? "alarm" : latest.zscore === null ? "warming" : "calm";
  const lag = latest ? (latest.emitted_at - latest.window_end) / 1e6 - intervalMs(basket.interval) : null;
  const shown = hover ?? (latest ? { time: toTime(latest.window_end), metric: latest[metric] as number | null, z: latest.zscore } : null);
  const expectFirst = basket.window * intervalMs(basket.interval);

  return (
    <div class="sig-layout">
      <div class="panel sig-chart-panel">
        <div class="sig-legend" aria-live="off">
          <span class="sig-key">
            <i class="sig-sw sig-sw-metric" aria-hidden="true" />
            {metricLabel} <span class="num">{sci(shown?.metric)}</span>
          </span>
          <span class="sig-key">
            <i class="sig-sw sig-sw-z" aria-hidden="true" />
            robust z <span class="num">{shown?.z === null || shown?.z === undefined ? "–" : shown.z.toFixed(2)}</span>
          </span>
          <span class="sig-key">
            <i class="sig-sw sig-sw-alarm" aria-hidden="true" />
            alarm z ≥ {basket.threshold}
          </span>
          <span class="sig-key">
            <i class="sig-sw sig-sw-clear" aria-hidden="true" />
            clear z &lt; {basket.hysteresis}
          </span>
          <span class="sig-key">
            <span class="sig-arrow" aria-hidden="true">
              ▼
            </span>
            alarm raised
          </span>
          <span class="muted sig-time num">{shown ? new Date(shown.time * 1000).toLocaleString([], { hour12: false }) : ""}</span>
        </div>
        <div
          class="chart sig-chart"
          ref={box}
          data-testid="signals-chart"
          role="img"
          aria-label={`${basket.name}: ${metricLabel} and its robust z-score per window, ${count} windows; latest z ${latest?.zscore?.toFixed(2) ?? "none"}, alarm ${latest?.alarm ? "on" : "off"}`}
        >
          {loaded && count === 0 && (
            <div class="sig-overlay">
              <p>
                <strong>No window yet.</strong> The first signal comes once {basket.window} closed {basket.interval} bars of every
                symbol are stored (about {fmtAge(expectFirst)} after the feed starts); the z-score needs {basket.min_history} windows
                before it.
              </p>
            </div>
          )}
        </div>
        {loadError && (
          <p class="error" role="alert">
            History: {loadError}
          </p>
        )}
      </div>
      <aside class="sig-side" aria-label={`Basket ${basket.name}`}>
        <div class="panel">
          <div class="sig-state">
            <span
              class={`badge sig-badge ${status === "alarm" ? "bad" : status === "calm" ? "ok" : "warn"}`}
              data-testid="signals-alarm"
              role="status"
            >
              {status === "alarm" ? "alarm" : status === "calm" ? "calm" : status === "warming" ? "warming up" : "no window"}
            </span>
            <span class={`badge conn-${conn}`} title="Realtime stream">
              {conn === "open" ? "live" : conn}
            </span>
          </div>
          <h2 class="sig-h">Latest window</h2>
          <dl class="sig-facts">
            <dt>Ends</dt>
            <dd class="num">{latest ? clock(latest.window_end) : "–"}</dd>
            <dt>Robust z</dt>
            <dd class={`num ${latest?.alarm ? "down" : ""}`}>{latest?.zscore === null || !latest ? "–" : latest.zscore.toFixed(2)}</dd>
            <dt>Landscape L1</dt>
            <dd class="num">{sci(latest?.landscape_l1)}</dd>
            <dt>Landscape L2</dt>
            <dd class="num">{sci(latest?.landscape_l2)}</dd>
            <dt>Entropy</dt>
            <dd class="num">{sci(latest?.entropy)}</dd>
            <dt>Wasserstein</dt>
            <dd class="num">{sci(latest?.wasserstein)}</dd>
            <dt>Volatility</dt>
            <dd class="num">{sci(latest?.volatility)}</dd>
            <dt>H1 bars</dt>
            <dd class="num">{latest?.h1_bars ?? "–"}</dd>
            <dt>Emit lag</dt>
            <dd class="num">{lag === null ? "–" : fmtAge(lag)}</dd>
          </dl>
        </div>
        <div class="panel">
          <h2 class="sig-h">Basket</h2>
          <dl class="sig-facts">
            <dt>Symbols</dt>
            <dd class="sig-symbols">{basket.symbols.join(", ")}</dd>
            <dt>Bars</dt>
            <dd>
              {basket.interval} · window {basket.window} · step {basket.step}
            </dd>
            <dt>Cloud</dt>
            <dd>
              {basket.points} points in R<sup>{basket.dimension}</sup>
              {basket.embedding ? ` (delay embedding d=${basket.embedding[0]}, τ=${basket.embedding[1]})` : ""}
            </dd>
            <dt>Alarm</dt>
            <dd>
              z ≥ {basket.threshold}, clear &lt; {basket.hysteresis}, cooldown {basket.cooldown}
            </dd>
            <dt>History</dt>
            <dd>
              {count} windows loaded · z after {basket.min_history}
            </dd>
          </dl>
        </div>
        <div class="panel">
          <h2 class="sig-h">Recent alarms</h2>
          {alarms.length === 0 ? (
            <p class="muted sig-none">None in the windows loaded.</p>
          ) : (
            <table class="sig-alarms">
              <thead>
                <tr>
                  <th scope="col">Window end</th>
                  <th scope="col" class="num">
                    z
                  </th>
                  <th scope="col">
                    <span class="sr-only">Show</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {alarms.map((s) => (
                  <tr>
                    <td class="num">{clock(s.window_end)}</td>
                    <td class="num down">{s.zscore?.toFixed(2) ?? "–"}</td>
                    <td>
                      <button type="button" class="link" onClick={() => showAlarm(s)} aria-label={`Show the alarm of ${clock(s.window_end)} on the chart`}>
                        Show
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      </aside>
    </div>
  );
}

function point(s: TdaSignal, v: number | null): LineData<Time> | WhitespaceData<Time> {
  const time = toTime(s.window_end);
  return v === null || v === undefined || !Number.isFinite(v) ? { time } : { time, value: v };
}

/** An arrow per window that raised the alarm; a dot where it cleared. */
function markersOf(arr: TdaSignal[]): SeriesMarker<Time>[] {
  const alarm = cssVar("--down") || "#c2231b";
  const muted = cssVar("--muted") || "#566072";
  const out: SeriesMarker<Time>[] = [];
  let prev = false;
  for (const s of arr) {
    if (s.alarm_raised)
      out.push({ time: toTime(s.window_end), position: "aboveBar", shape: "arrowDown", color: alarm, text: `z ${s.zscore?.toFixed(1) ?? ""}` });
    else if (prev && !s.alarm) out.push({ time: toTime(s.window_end), position: "belowBar", shape: "circle", color: muted, size: 0.6 });
    prev = s.alarm;
  }
  return out;
}

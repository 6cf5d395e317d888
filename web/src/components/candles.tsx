// A candlestick chart with volume and overlays (SMA, EMA, session VWAP),
// over lightweight-charts v5. The owner drives it imperatively through the
// instance (a Preact class component's ref): `setBars` for history, `upsert`
// for each live bar (the same bucket updates until it closes). Overlays are
// computed here from the bars' closes, incrementally for the last bar.
import { Component } from "preact";
import {
  CandlestickSeries,
  ColorType,
  CrosshairMode,
  HistogramSeries,
  LineSeries,
  LineStyle,
  createChart,
  type IChartApi,
  type ISeriesApi,
  type MouseEventParams,
  type Time,
  type UTCTimestamp,
} from "lightweight-charts";
import type { Theme } from "../lib/theme";
import { fmtCompact, fmtPrice } from "../lib/format";
import { chartColors, withAlpha, type ChartColors } from "./chart-colors";
import "./chart-candles.css";

/** A bar as `/api/v1/bars` and the `bars` channel carry it. */
export interface BarInput {
  start: number; // ns
  open: number;
  high: number;
  low: number;
  close: number;
  volume?: number | null;
  notional?: number | null;
  vwap?: number | null;
  source?: string;
  interval?: string;
  closed?: boolean;
}

interface CBar {
  time: number; // UTC seconds
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  /** price × volume of the bar (notional, else vwap × volume). */
  pv: number;
}

export interface Overlays {
  sma: boolean;
  ema: boolean;
  vwap: boolean;
}

export interface CandlesProps {
  interval: string;
  theme: Theme;
  overlays: Overlays;
  /** Bars averaged by the SMA and EMA. */
  window?: number;
  /** Called when the number of bars changes. */
  onCount?: (n: number) => void;
  /** Accessible description of the chart. */
  label: string;
}

const DAY = 86_400;

function toCBar(b: BarInput): CBar | null {
  const { open, high, low, close } = b;
  if (![open, high, low, close, b.start].every((x) => typeof x === "number" && Number.isFinite(x))) return null;
  const volume = typeof b.volume === "number" && Number.isFinite(b.volume) ? b.volume : 0;
  const pv =
    typeof b.notional === "number" && Number.isFinite(b.notional)
      ? b.notional
      : typeof b.vwap === "number" && Number.isFinite(b.vwap)
        ? b.vwap * volume
        : close * volume;
  return { time: Math.floor(b.start / 1e9), open, high, low, close, volume, pv };
}

function decimalsOf(x: number): number {
  const s = String(x);
  const i = s.indexOf(".");
  if (s.includes("e")) return 8;
  return i < 0 ? 0 : s.length - i - 1;
}

function fmtBarTime(sec: number, interval: string): string {
  const iso = new Date(sec * 1000).toISOString();
  if (interval === "1d") return iso.slice(0, 10);
  if (interval === "1s") return `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}

export class Candles extends Component<CandlesProps> {
  private host: HTMLDivElement | null = null;
  private legend: HTMLDivElement | null = null;
  private chart: IChartApi | null = null;
  private candles: ISeriesApi<"Candlestick"> | null = null;
  private volume: ISeriesApi<"Histogram"> | null = null;
  private smaS: ISeriesApi<"Line"> | null = null;
  private emaS: ISeriesApi<"Line"> | null = null;
  private vwapS: ISeriesApi<"Line"> | null = null;
  private bars: CBar[] = [];
  private sma: (number | null)[] = [];
  private ema: (number | null)[] = [];
  private vwap: number[] = [];
  private cumPV: number[] = [];
  private cumV: number[] = [];
  private precision = 2;
  private hoverIndex: number | null = null;
  private colors: ChartColors | null = null;

  /** Bars the chart holds. */
  get count(): number {
    return this.bars.length;
  }

  /** The newest bar's time (UTC seconds), or null. */
  get lastTime(): number | null {
    return this.bars.length ? this.bars[this.bars.length - 1].time : null;
  }

  shouldComponentUpdate(): boolean {
    // The DOM is the chart's; option changes are applied in componentWillReceiveProps.
    return false;
  }

  componentDidMount() {
    if (!this.host) return;
    const c = (this.colors = chartColors(this.props.theme));
    this.chart = createChart(this.host, {
      autoSize: true,
      layout: {
        // The logo is a link injected with an inline <style>, which the CSP
        // refuses; the attribution the licence asks for is in the footer.
        attributionLogo: false,
        background: { type: ColorType.Solid, color: c.panel },
        textColor: c.muted,
        fontFamily: getComputedStyle(document.documentElement).fontFamily || "system-ui, sans-serif",
        fontSize: 11,
      },
      grid: { vertLines: { color: c.grid }, horzLines: { color: c.grid } },
      crosshair: { mode: CrosshairMode.Normal },
      rightPriceScale: { borderColor: c.border, scaleMargins: { top: 0.1, bottom: 0.26 } },
      timeScale: { borderColor: c.border, rightOffset: 4, maxBarSpacing: 24, ...this.timeOptions(this.props.interval) },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, { priceLineVisible: true });
    this.volume = this.chart.addSeries(HistogramSeries, {
      priceScaleId: "vol",
      priceFormat: { type: "volume" },
      lastValueVisible: false,
      priceLineVisible: false,
    });
    this.chart.priceScale("vol").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    const line = { lineWidth: 2 as const, priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false };
    this.smaS = this.chart.addSeries(LineSeries, { ...line, title: "" });
    this.emaS = this.chart.addSeries(LineSeries, { ...line, title: "" });
    this.vwapS = this.chart.addSeries(LineSeries, { ...line, lineStyle: LineStyle.Dashed, title: "" });
    this.applyColors();
    this.applyOverlays(this.props.overlays);
    this.chart.subscribeCrosshairMove(this.onCrosshair);
    this.renderLegend();
  }

  componentWillReceiveProps(next: CandlesProps) {
    const p = this.props;
    if (!this.chart) return;
    if (next.theme !== p.theme) {
      this.colors = chartColors(next.theme);
      // The next props are not this.props yet: colours only depend on the theme.
      this.applyColors();
    }
    if (next.interval !== p.interval) this.chart.applyOptions({ timeScale: this.timeOptions(next.interval) });
    if (next.overlays.sma !== p.overlays.sma || next.overlays.ema !== p.overlays.ema || next.overlays.vwap !== p.overlays.vwap) {
      this.applyOverlays(next.overlays);
      this.renderLegend(next.overlays);
    }
    if (next.window !== p.window) {
      this.recomputeAll(next.window ?? 20);
      this.pushAll(false);
    }
    if (next.label !== p.label && this.host) this.host.setAttribute("aria-label", next.label);
  }

  componentWillUnmount() {
    this.chart?.unsubscribeCrosshairMove(this.onCrosshair);
    this.chart?.remove();
    this.chart = null;
    this.candles = this.volume = this.smaS = this.emaS = this.vwapS = null;
  }

  /** Replaces the data (history, oldest first; out of order and duplicates are mended). */
  setBars(input: BarInput[]) {
    const byTime = new Map<number, CBar>();
    for (const b of input) {
      const cb = toCBar(b);
      if (cb) byTime.set(cb.time, cb);
    }
    this.bars = [...byTime.values()].sort((a, b) => a.time - b.time);
    this.updatePrecision();
    this.recomputeAll(this.props.window ?? 20);
    this.pushAll(true);
    this.props.onCount?.(this.bars.length);
  }

  /** Adds or updates one bar; false when it is older than the newest (ignored). */
  upsert(input: BarInput): boolean {
    const b = toCBar(input);
    if (!b || !this.chart) return false;
    const n = this.bars.length;
    const last = n ? this.bars[n - 1] : null;
    if (last && b.time < last.time) return false;
    const appended = !last || b.time > last.time;
    if (appended) this.bars.push(b);
    else this.bars[n - 1] = b;
    const i = this.bars.length - 1;
    this.computeAt(i, this.props.window ?? 20);
    if (this.bars.length === 1) this.updatePrecision();
    const c = this.colors ?? chartColors(this.props.theme);
    const t = b.time as UTCTimestamp;
    this.candles?.update({ time: t, open: b.open, high: b.high, low: b.low, close: b.close });
    this.volume?.update({ time: t, value: b.volume, color: this.volColor(b, c) });
    this.smaS?.update(this.sma[i] === null ? { time: t } : { time: t, value: this.sma[i]! });
    this.emaS?.update(this.ema[i] === null ? { time: t } : { time: t, value: this.ema[i]! });
    this.vwapS?.update({ time: t, value: this.vwap[i] });
    if (this.hoverIndex === null) this.renderLegend();
    if (appended) this.props.onCount?.(this.bars.length);
    return true;
  }

  clear() {
    this.setBars([]);
  }

  // ---- internals ----

  private timeOptions(interval: string) {
    return { timeVisible: interval !== "1d", secondsVisible: interval === "1s" };
  }

  private volColor(b: CBar, c: ChartColors): string {
    return withAlpha(b.close >= b.open ? c.up : c.down, 0.4);
  }

  private updatePrecision() {
    let d = 2;
    for (let i = Math.max(0, this.bars.length - 50); i < this.bars.length; i++) {
      const b = this.bars[i];
      d = Math.max(d, decimalsOf(b.close), decimalsOf(b.open), decimalsOf(b.high), decimalsOf(b.low));
    }
    d = Math.min(d, 8);
    this.precision = d;
    const priceFormat = { type: "price" as const, precision: d, minMove: 1 / 10 ** d };
    this.candles?.applyOptions({ priceFormat });
    this.smaS?.applyOptions({ priceFormat });
    this.emaS?.applyOptions({ priceFormat });
    this.vwapS?.applyOptions({ priceFormat });
  }

  private recomputeAll(window: number) {
    const n = this.bars.length;
    this.sma = new Array(n);
    this.ema = new Array(n);
    this.vwap = new Array(n);
    this.cumPV = new Array(n);
    this.cumV = new Array(n);
    for (let i = 0; i < n; i++) this.computeAt(i, window);
  }

  /** Overlay values at bar i, from the values before it. */
  private computeAt(i: number, w: number) {
    const bars = this.bars;
    const b = bars[i];
    // SMA over the last w closes.
    if (i >= w - 1) {
      let s = 0;
      for (let j = i - w + 1; j <= i; j++) s += bars[j].close;
      this.sma[i] = s / w;
    } else this.sma[i] = null;
    // EMA seeded with the first SMA.
    if (i < w - 1) this.ema[i] = null;
    else if (i === w - 1 || this.ema[i - 1] === null || this.ema[i - 1] === undefined) this.ema[i] = this.sma[i];
    else {
      const a = 2 / (w + 1);
      this.ema[i] = a * b.close + (1 - a) * (this.ema[i - 1] as number);
    }
    // VWAP of the UTC day so far (resets at 00:00 UTC).
    const sameDay = i > 0 && Math.floor(bars[i - 1].time / DAY) === Math.floor(b.time / DAY);
    this.cumPV[i] = (sameDay ? this.cumPV[i - 1] : 0) + b.pv;
    this.cumV[i] = (sameDay ? this.cumV[i - 1] : 0) + b.volume;
    this.vwap[i] = this.cumV[i] > 0 ? this.cumPV[i] / this.cumV[i] : b.close;
  }

  private pushAll(fit: boolean) {
    if (!this.chart) return;
    const c = this.colors ?? chartColors(this.props.theme);
    const bars = this.bars;
    this.candles?.setData(bars.map((b) => ({ time: b.time as UTCTimestamp, open: b.open, high: b.high, low: b.low, close: b.close })));
    this.volume?.setData(bars.map((b) => ({ time: b.time as UTCTimestamp, value: b.volume, color: this.volColor(b, c) })));
    const line = (vals: (number | null)[]) =>
      bars.map((b, i) => (vals[i] === null ? { time: b.time as UTCTimestamp } : { time: b.time as UTCTimestamp, value: vals[i] as number }));
    this.smaS?.setData(line(this.sma));
    this.emaS?.setData(line(this.ema));
    this.vwapS?.setData(line(this.vwap));
    if (fit) {
      const n = bars.length;
      if (n > 160) this.chart.timeScale().setVisibleLogicalRange({ from: n - 160, to: n + 3 });
      else if (n > 0) this.chart.timeScale().fitContent();
    }
    this.hoverIndex = null;
    this.renderLegend();
  }

  private applyColors() {
    const c = this.colors;
    if (!this.chart || !c) return;
    this.chart.applyOptions({
      layout: { background: { type: ColorType.Solid, color: c.panel }, textColor: c.muted },
      grid: { vertLines: { color: c.grid }, horzLines: { color: c.grid } },
      rightPriceScale: { borderColor: c.border },
      timeScale: { borderColor: c.border },
      crosshair: {
        vertLine: { color: c.muted, labelBackgroundColor: c.muted },
        horzLine: { color: c.muted, labelBackgroundColor: c.muted },
      },
    });
    this.candles?.applyOptions({
      upColor: c.up,
      downColor: c.down,
      borderUpColor: c.up,
      borderDownColor: c.down,
      wickUpColor: c.up,
      wickDownColor: c.down,
    });
    this.smaS?.applyOptions({ color: c.sma });
    this.emaS?.applyOptions({ color: c.ema });
    this.vwapS?.applyOptions({ color: c.vwap });
    // Volume colours are per bar.
    this.volume?.setData(this.bars.map((b) => ({ time: b.time as UTCTimestamp, value: b.volume, color: this.volColor(b, c) })));
  }

  private applyOverlays(o: Overlays) {
    this.smaS?.applyOptions({ visible: o.sma });
    this.emaS?.applyOptions({ visible: o.ema });
    this.vwapS?.applyOptions({ visible: o.vwap });
  }

  private onCrosshair = (p: MouseEventParams<Time>) => {
    let idx: number | null = null;
    if (p.time !== undefined && p.point) {
      const t = p.time as number;
      // Binary search of the bar at t.
      let lo = 0;
      let hi = this.bars.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        const mt = this.bars[mid].time;
        if (mt === t) {
          idx = mid;
          break;
        }
        if (mt < t) lo = mid + 1;
        else hi = mid - 1;
      }
    }
    if (idx === this.hoverIndex) return;
    this.hoverIndex = idx;
    this.renderLegend();
  };

  /** OHLCV (and overlays) of the hovered bar, else the newest. */
  private renderLegend(overlays: Overlays = this.props.overlays) {
    const el = this.legend;
    if (!el) return;
    const n = this.bars.length;
    if (!n) {
      el.replaceChildren();
      el.hidden = true;
      return;
    }
    el.hidden = false;
    const i = this.hoverIndex ?? n - 1;
    const b = this.bars[i];
    const dir = b.close >= b.open ? "up" : "down";
    const f = (x: number) => (this.precision > 4 ? x.toFixed(this.precision) : fmtPrice(x));
    const item = (label: string, value: string, cls = "") => {
      const s = document.createElement("span");
      if (cls) s.className = cls;
      s.append(`${label} `);
      const v = document.createElement("b");
      v.textContent = value;
      s.append(v);
      return s;
    };
    const time = document.createElement("span");
    time.className = "lg-time";
    time.textContent = `${fmtBarTime(b.time, this.props.interval)} UTC`;
    const parts: HTMLElement[] = [
      time,
      item("O", f(b.open), dir),
      item("H", f(b.high), dir),
      item("L", f(b.low), dir),
      item("C", f(b.close), dir),
      item("Vol", fmtCompact(b.volume)),
    ];
    const w = this.props.window ?? 20;
    if (overlays.sma) parts.push(item(`SMA ${w}`, this.sma[i] === null ? "–" : f(this.sma[i] as number), "lg-sma"));
    if (overlays.ema) parts.push(item(`EMA ${w}`, this.ema[i] === null ? "–" : f(this.ema[i] as number), "lg-ema"));
    if (overlays.vwap) parts.push(item("VWAP", f(this.vwap[i]), "lg-vwap"));
    el.replaceChildren(...parts);
  }

  render() {
    return (
      <div class="candles">
        <div
          class="candles-canvas"
          ref={(el) => {
            this.host = el;
          }}
          role="img"
          aria-label={this.props.label}
        />
        <div
          class="candles-legend"
          aria-hidden="true"
          ref={(el) => {
            this.legend = el;
          }}
        />
      </div>
    );
  }
}

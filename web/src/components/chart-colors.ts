// Colours for canvases (sparklines, candlestick charts), read from the
// theme's CSS variables once per theme: getComputedStyle is not free and a
// board may hold hundreds of sparklines.
import { cssVar, type Theme } from "../lib/theme";
import "./chart-candles.css";

export interface ChartColors {
  bg: string;
  panel: string;
  fg: string;
  muted: string;
  border: string;
  grid: string;
  up: string;
  down: string;
  upBg: string;
  downBg: string;
  accent: string;
  sma: string;
  ema: string;
  vwap: string;
}

const cache = new Map<Theme, ChartColors>();

/** The colours of `theme` (which must be the theme applied to the document). */
export function chartColors(theme: Theme): ChartColors {
  let c = cache.get(theme);
  if (c && document.documentElement.dataset.theme === theme) return c;
  c = {
    bg: cssVar("--bg") || "#fff",
    panel: cssVar("--panel") || "#fff",
    fg: cssVar("--fg") || "#000",
    muted: cssVar("--muted") || "#666",
    border: cssVar("--border") || "#ccc",
    grid: cssVar("--chart-grid") || "#eee",
    up: cssVar("--up") || "#0a7a3d",
    down: cssVar("--down") || "#c2231b",
    upBg: cssVar("--up-bg") || "rgba(10,122,61,0.14)",
    downBg: cssVar("--down-bg") || "rgba(194,35,27,0.12)",
    accent: cssVar("--accent") || "#0b5cd5",
    sma: cssVar("--chart-sma") || cssVar("--accent") || "#0b5cd5",
    ema: cssVar("--chart-ema") || cssVar("--warn") || "#8a5a00",
    vwap: cssVar("--chart-vwap") || "#7a3db8",
  };
  cache.set(theme, c);
  return c;
}

/** `#rrggbb` (or `#rgb`) with an alpha, for volume bars; other forms as is. */
export function withAlpha(color: string, alpha: number): string {
  const m = color.match(/^#([0-9a-f]{3}|[0-9a-f]{6})$/i);
  if (!m) return color;
  let hex = m[1];
  if (hex.length === 3) hex = hex.replace(/./g, (ch) => ch + ch);
  const n = parseInt(hex, 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

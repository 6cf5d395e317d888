// Shared canvas plumbing of the TDA plots: a devicePixelRatio-aware
// context, colours read from the theme's CSS variables, "nice" axis ticks,
// axes with labels, per-dimension marker shapes and a nearest-target hover.
import { cssVar } from "../lib/theme";

/** A persistence diagram per homology dimension: `[birth, death]`, `null` = ∞. */
export type Diagrams = Record<string, [number, number | null][]>;

export interface Palette {
  fg: string;
  muted: string;
  border: string;
  grid: string;
  panel: string;
  /** Colour of dimension `d` (H0, H1, …). */
  dim(d: number): string;
}

// Fallbacks when the page's CSS (tda.css) is not loaded: Okabe–Ito hues.
const DIM_FALLBACK = ["#0b5cd5", "#c2231b", "#0a7a3d", "#8a5a00", "#7b3fa0"];

export function palette(): Palette {
  const dims = DIM_FALLBACK.map((f, i) => cssVar(`--plot-h${i}`) || f);
  return {
    fg: cssVar("--fg") || "#14181f",
    muted: cssVar("--muted") || "#566072",
    border: cssVar("--border") || "#d5dae2",
    grid: cssVar("--chart-grid") || "#e6e9ee",
    panel: cssVar("--panel") || "#ffffff",
    dim: (d) => dims[d % dims.length],
  };
}

/** Sizes the backing store to CSS size × devicePixelRatio; draws in CSS px. */
export function setupCanvas(canvas: HTMLCanvasElement, width: number, height: number): CanvasRenderingContext2D | null {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(width * dpr));
  const h = Math.max(1, Math.round(height * dpr));
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  const ctx = canvas.getContext("2d");
  if (!ctx) return null;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return ctx;
}

/** About `count` round tick values covering [min, max]. */
export function niceTicks(min: number, max: number, count = 5): { ticks: number[]; step: number } {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return { ticks: [], step: 1 };
  if (max === min) {
    const d = Math.abs(min) || 1;
    min -= d / 2;
    max += d / 2;
  }
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm >= 5 ? 10 : norm >= 2 ? 5 : norm >= 1 ? 2 : 1) * mag;
  const start = Math.ceil(min / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = start; v <= max + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return { ticks, step };
}

/** A tick label with the decimals its step needs. */
export function fmtTick(v: number, step: number): string {
  if (step >= 1 && Math.abs(v) < 1e6) return v.toFixed(0);
  const abs = Math.abs(v);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e6)) return v.toExponential(1);
  const decimals = Math.min(8, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

/** A value for tooltips and tables: 4 significant digits. */
export function fmtVal(v: number | null | undefined): string {
  if (v === null || v === undefined) return "∞";
  if (!Number.isFinite(v)) return "–";
  const abs = Math.abs(v);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e6)) return v.toExponential(3);
  return Number(v.toPrecision(4)).toString();
}

export interface Scale {
  (v: number): number;
  min: number;
  max: number;
}

/** Linear map of [d0, d1] onto [r0, r1]. */
export function linear(d0: number, d1: number, r0: number, r1: number): Scale {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  const f = ((v: number) => r0 + (v - d0) * k) as Scale;
  f.min = d0;
  f.max = d1;
  return f;
}

export interface Frame {
  left: number;
  top: number;
  right: number;
  bottom: number;
}

export const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
export const FONT_BOLD = '600 11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

/** Grid lines, tick labels and axis titles of a plot area. */
export function drawAxes(
  ctx: CanvasRenderingContext2D,
  pal: Palette,
  f: Frame,
  x: Scale | null,
  y: Scale | null,
  xLabel: string,
  yLabel: string,
  opts: { xTicks?: number; yTicks?: number } = {},
) {
  ctx.save();
  ctx.font = FONT;
  ctx.lineWidth = 1;
  if (x) {
    const { ticks, step } = niceTicks(x.min, x.max, opts.xTicks ?? 6);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const t of ticks) {
      const px = Math.round(x(t)) + 0.5;
      ctx.strokeStyle = pal.grid;
      ctx.beginPath();
      ctx.moveTo(px, f.top);
      ctx.lineTo(px, f.bottom);
      ctx.stroke();
      ctx.strokeStyle = pal.border;
      ctx.beginPath();
      ctx.moveTo(px, f.bottom);
      ctx.lineTo(px, f.bottom + 4);
      ctx.stroke();
      ctx.fillStyle = pal.muted;
      ctx.fillText(fmtTick(t, step), px, f.bottom + 6);
    }
    ctx.fillStyle = pal.fg;
    ctx.font = FONT_BOLD;
    ctx.fillText(xLabel, (f.left + f.right) / 2, f.bottom + 22);
    ctx.font = FONT;
  }
  if (y) {
    const { ticks, step } = niceTicks(y.min, y.max, opts.yTicks ?? 5);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const t of ticks) {
      const py = Math.round(y(t)) + 0.5;
      ctx.strokeStyle = pal.grid;
      ctx.beginPath();
      ctx.moveTo(f.left, py);
      ctx.lineTo(f.right, py);
      ctx.stroke();
      ctx.strokeStyle = pal.border;
      ctx.beginPath();
      ctx.moveTo(f.left - 4, py);
      ctx.lineTo(f.left, py);
      ctx.stroke();
      ctx.fillStyle = pal.muted;
      ctx.fillText(fmtTick(t, step), f.left - 6, py);
    }
    ctx.save();
    ctx.translate(12, (f.top + f.bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillStyle = pal.fg;
    ctx.font = FONT_BOLD;
    ctx.fillText(yLabel, 0, 0);
    ctx.restore();
  }
  // The frame's left and bottom edges.
  ctx.strokeStyle = pal.border;
  ctx.beginPath();
  ctx.moveTo(f.left + 0.5, f.top);
  ctx.lineTo(f.left + 0.5, f.bottom + 0.5);
  ctx.lineTo(f.right, f.bottom + 0.5);
  ctx.stroke();
  ctx.restore();
}

/**
 * A marker per dimension, so dimensions differ by shape as well as colour:
 * H0 circle, H1 triangle, H2 square, H3 diamond, H4 cross.
 */
export function marker(ctx: CanvasRenderingContext2D, dim: number, x: number, y: number, r: number) {
  ctx.beginPath();
  switch (dim % 5) {
    case 0:
      ctx.arc(x, y, r, 0, Math.PI * 2);
      break;
    case 1:
      ctx.moveTo(x, y - r * 1.2);
      ctx.lineTo(x + r * 1.1, y + r * 0.8);
      ctx.lineTo(x - r * 1.1, y + r * 0.8);
      ctx.closePath();
      break;
    case 2:
      ctx.rect(x - r * 0.9, y - r * 0.9, r * 1.8, r * 1.8);
      break;
    case 3:
      ctx.moveTo(x, y - r * 1.25);
      ctx.lineTo(x + r * 1.1, y);
      ctx.lineTo(x, y + r * 1.25);
      ctx.lineTo(x - r * 1.1, y);
      ctx.closePath();
      break;
    default:
      ctx.moveTo(x - r, y - r);
      ctx.lineTo(x + r, y + r);
      ctx.moveTo(x + r, y - r);
      ctx.lineTo(x - r, y + r);
  }
}

/** A colour with alpha (hex `#rrggbb` or `#rgb`; anything else unchanged). */
export function withAlpha(color: string, alpha: number): string {
  let m = color.match(/^#([0-9a-f]{6})$/i);
  if (!m) {
    const s = color.match(/^#([0-9a-f])([0-9a-f])([0-9a-f])$/i);
    if (s) m = ["", s[1] + s[1] + s[2] + s[2] + s[3] + s[3]] as unknown as RegExpMatchArray;
  }
  if (!m) return color;
  const n = parseInt(m[1], 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

/** Something under the pointer: a point (r) or a box (w, h), and its text. */
export interface Target {
  x: number;
  y: number;
  r?: number;
  w?: number;
  h?: number;
  text: string;
}

/** The target nearest to (px, py) within `slack` CSS px, if any. */
export function nearest(targets: Target[], px: number, py: number, slack = 6): Target | null {
  let best: Target | null = null;
  let bestD = Infinity;
  for (const t of targets) {
    let d: number;
    if (t.w !== undefined && t.h !== undefined) {
      const dx = Math.max(t.x - px, 0, px - (t.x + t.w));
      const dy = Math.max(t.y - py, 0, py - (t.y + t.h));
      d = Math.hypot(dx, dy);
    } else {
      d = Math.hypot(t.x - px, t.y - py) - (t.r ?? 0);
    }
    if (d < bestD) {
      bestD = d;
      best = t;
    }
  }
  return bestD <= slack ? best : null;
}

/** The dimensions of a diagram map, ascending. */
export function dimsOf(d: Diagrams | Record<string, unknown>): number[] {
  return Object.keys(d)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n >= 0)
    .sort((a, b) => a - b);
}

/** Smallest birth and largest finite value over the visible dimensions. */
export function finiteRange(diagrams: Diagrams, dims: number[]): { lo: number; hi: number } {
  let lo = Infinity;
  let hi = -Infinity;
  for (const d of dims) {
    for (const [b, e] of diagrams[String(d)] ?? []) {
      if (Number.isFinite(b)) {
        lo = Math.min(lo, b);
        hi = Math.max(hi, b);
      }
      if (e !== null && Number.isFinite(e)) hi = Math.max(hi, e);
    }
  }
  if (!Number.isFinite(lo)) return { lo: 0, hi: 1 };
  lo = Math.min(lo, 0);
  if (hi <= lo) hi = lo + 1;
  return { lo, hi };
}

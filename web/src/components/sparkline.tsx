// A small fixed-size canvas line of recent prices. It redraws only when
// `version` (bumped by the owner when the data changed) or the theme
// changes: a board re-rendering for one symbol's tick leaves every other
// sparkline alone.
import { Component } from "preact";
import type { Theme } from "../lib/theme";
import { chartColors, withAlpha } from "./chart-colors";

export interface SparklineProps {
  /** Oldest first. */
  data: ArrayLike<number>;
  /** Changes whenever `data` changed. */
  version: number;
  theme: Theme;
  width?: number;
  height?: number;
  /** Accessible name (the canvas is an image). */
  label: string;
  /** Colour by this reference (e.g. the day open) instead of the first point. */
  reference?: number | null;
  /** False while off screen: drawing waits until it is back. */
  visible?: boolean;
}

export class Sparkline extends Component<SparklineProps> {
  private canvas: HTMLCanvasElement | null = null;
  private setRef = (el: HTMLCanvasElement | null) => {
    this.canvas = el;
  };

  /** The version and theme last drawn. */
  private drawn: { version: number; theme: Theme } | null = null;

  shouldComponentUpdate(next: SparklineProps): boolean {
    const p = this.props;
    if (next.visible === false) return false;
    const d = this.drawn;
    return (
      !d ||
      d.version !== next.version ||
      d.theme !== next.theme ||
      next.version !== p.version ||
      next.theme !== p.theme ||
      next.width !== p.width ||
      next.height !== p.height ||
      next.label !== p.label ||
      next.reference !== p.reference
    );
  }

  componentDidMount() {
    this.draw();
  }

  componentDidUpdate() {
    this.draw();
  }

  private draw() {
    const cv = this.canvas;
    if (!cv || this.props.visible === false) return;
    const { data, theme, reference } = this.props;
    this.drawn = { version: this.props.version, theme };
    const w = this.props.width ?? 120;
    const h = this.props.height ?? 28;
    const dpr = Math.min(window.devicePixelRatio || 1, 3);
    const pw = Math.round(w * dpr);
    const ph = Math.round(h * dpr);
    if (cv.width !== pw) cv.width = pw;
    if (cv.height !== ph) cv.height = ph;
    const ctx = cv.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, pw, ph);
    const n = data.length;
    if (n === 0) return;
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = data[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!Number.isFinite(lo) || !Number.isFinite(hi)) return;
    const c = chartColors(theme);
    const base = reference ?? data[0];
    const color = data[n - 1] >= base ? c.up : c.down;
    ctx.scale(dpr, dpr);
    const pad = 2.5;
    const span = hi - lo || Math.abs(hi) * 1e-6 || 1;
    const x = (i: number) => (n === 1 ? w - pad : pad + ((w - 2 * pad) * i) / (n - 1));
    const y = (v: number) => (hi === lo ? h / 2 : h - pad - ((h - 2 * pad) * (v - lo)) / span);

    // Area under the line, fading down.
    ctx.beginPath();
    ctx.moveTo(x(0), y(data[0]));
    for (let i = 1; i < n; i++) ctx.lineTo(x(i), y(data[i]));
    ctx.lineTo(x(n - 1), h);
    ctx.lineTo(x(0), h);
    ctx.closePath();
    const grad = ctx.createLinearGradient(0, 0, 0, h);
    grad.addColorStop(0, withAlpha(color, 0.22));
    grad.addColorStop(1, withAlpha(color, 0));
    ctx.fillStyle = grad;
    ctx.fill();

    // The line.
    ctx.beginPath();
    ctx.moveTo(x(0), y(data[0]));
    for (let i = 1; i < n; i++) ctx.lineTo(x(i), y(data[i]));
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.25;
    ctx.lineJoin = "round";
    ctx.stroke();

    // The last price.
    ctx.beginPath();
    ctx.arc(x(n - 1), y(data[n - 1]), 1.8, 0, Math.PI * 2);
    ctx.fillStyle = color;
    ctx.fill();
  }

  render() {
    const w = this.props.width ?? 120;
    const h = this.props.height ?? 28;
    return (
      <canvas
        ref={this.setRef}
        class="spark"
        width={w}
        height={h}
        style={{ width: `${w}px`, height: `${h}px` }}
        role="img"
        aria-label={this.props.label}
      />
    );
  }
}

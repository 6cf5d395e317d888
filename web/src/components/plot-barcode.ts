// Barcode: one horizontal bar per (birth, death), grouped by dimension,
// infinite bars running off the right edge with an arrow.
import {
  drawAxes,
  finiteRange,
  fmtVal,
  FONT,
  FONT_BOLD,
  linear,
  type Diagrams,
  type Frame,
  type Palette,
  type Target,
} from "./plot-core";

/** Most bars drawn per dimension (the longest); the rest are counted. */
export const MAX_BARS_PER_DIM = 200;

type Bar = [number, number | null];

/** The bars of a dimension drawn: the longest `MAX_BARS_PER_DIM`, by birth. */
export function shownBars(bars: Bar[]): Bar[] {
  let list = bars;
  if (list.length > MAX_BARS_PER_DIM) {
    list = [...list]
      .sort((a, b) => (b[1] === null ? Infinity : b[1] - b[0]) - (a[1] === null ? Infinity : a[1] - a[0]))
      .slice(0, MAX_BARS_PER_DIM);
  }
  return [...list].sort((a, b) => a[0] - b[0] || (b[1] ?? Infinity) - (a[1] ?? Infinity));
}

export function drawBarcode(
  ctx: CanvasRenderingContext2D,
  width: number,
  height: number,
  pal: Palette,
  diagrams: Diagrams,
  dims: number[],
): Target[] {
  const { lo, hi } = finiteRange(diagrams, dims);
  const groups = dims.map((d) => ({ d, bars: shownBars(diagrams[String(d)] ?? []), total: (diagrams[String(d)] ?? []).length }));
  // The left margin fits the longest group label ("H1", "200/1168").
  ctx.font = FONT;
  const labelW = Math.max(20, ...groups.map((g) => (g.total > g.bars.length ? ctx.measureText(`${g.bars.length}/${g.total}`).width : 0)));
  const f: Frame = { left: Math.ceil(labelW) + 16, top: 20, right: width - 22, bottom: height - 38 };
  const x = linear(lo, hi + (hi - lo) * 0.04, f.left, f.right);
  drawAxes(ctx, pal, f, x, null, "filtration value", "");

  const rows = groups.reduce((n, g) => n + g.bars.length, 0);
  const groupGap = 12;
  const avail = f.bottom - f.top - 6 - groupGap * Math.max(0, groups.length - 1) - 10 * groups.filter((g) => !g.bars.length).length;
  // Each non-empty dimension gets at least a fifth of the height, so a few
  // H1 bars stay readable beside hundreds of H0 bars.
  const weights = groups.map((g) => (g.bars.length ? Math.max(g.bars.length, rows * 0.2) : 0));
  const wsum = weights.reduce((a, b) => a + b, 0) || 1;
  const pitches = groups.map((g, i) => (g.bars.length ? Math.min(9, (avail * weights[i]) / wsum / g.bars.length) : 0));

  ctx.save();
  ctx.font = FONT;
  ctx.fillStyle = pal.muted;
  ctx.textAlign = "right";
  ctx.textBaseline = "bottom";
  ctx.fillText("∞ →", width - 4, f.top - 4);

  const targets: Target[] = [];
  let yPos = f.top + 4;
  groups.forEach((g, gi) => {
    const color = pal.dim(g.d);
    const pitch = pitches[gi] || 9;
    const thick = Math.max(1, pitch * 0.7);
    const top = yPos;
    for (const [b, e] of g.bars) {
      const x0 = x(b);
      const x1 = e === null ? f.right + 10 : Math.max(x(e), x0 + 1);
      ctx.fillStyle = color;
      ctx.fillRect(x0, yPos, x1 - x0, thick);
      if (e === null) {
        // Arrow head: the bar never dies.
        const cy = yPos + thick / 2;
        const s = Math.max(3, Math.min(5, thick));
        ctx.beginPath();
        ctx.moveTo(x1 + s, cy);
        ctx.lineTo(x1, cy - s);
        ctx.lineTo(x1, cy + s);
        ctx.closePath();
        ctx.fill();
      }
      targets.push({
        x: x0,
        y: yPos,
        w: x1 - x0,
        h: Math.max(thick, 2),
        text: `H${g.d} · [${fmtVal(b)}, ${e === null ? "∞" : fmtVal(e)})\n${e === null ? "never dies" : `persistence ${fmtVal(e - b)}`}`,
      });
      yPos += pitch;
    }
    // The group's label on the left margin.
    const mid = (top + yPos) / 2;
    ctx.fillStyle = color;
    ctx.font = FONT_BOLD;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.fillText(`H${g.d}`, f.left - 8, g.bars.length ? mid : top + 5);
    if (g.total > g.bars.length) {
      ctx.font = FONT;
      ctx.fillStyle = pal.muted;
      ctx.fillText(`${g.bars.length}/${g.total}`, f.left - 8, mid + 13);
    }
    if (!g.bars.length) {
      ctx.font = FONT;
      ctx.fillStyle = pal.muted;
      ctx.textAlign = "left";
      ctx.fillText("no bars", f.left + 6, top + 5);
      yPos += 10;
    }
    if (gi < groups.length - 1) {
      yPos += groupGap / 2;
      ctx.strokeStyle = pal.grid;
      ctx.beginPath();
      ctx.moveTo(f.left, Math.round(yPos - pitch / 2) + 0.5);
      ctx.lineTo(f.right, Math.round(yPos - pitch / 2) + 0.5);
      ctx.stroke();
      yPos += groupGap / 2;
    }
  });
  ctx.restore();
  return targets;
}

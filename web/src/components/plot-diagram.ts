// Persistence diagram: birth (x) against death (y) per dimension, the
// diagonal, and the infinite deaths on a dashed "∞" line above the plot.
import {
  drawAxes,
  finiteRange,
  fmtVal,
  FONT_BOLD,
  linear,
  marker,
  withAlpha,
  type Diagrams,
  type Frame,
  type Palette,
  type Target,
} from "./plot-core";

export function drawDiagram(
  ctx: CanvasRenderingContext2D,
  width: number,
  height: number,
  pal: Palette,
  diagrams: Diagrams,
  dims: number[],
): Target[] {
  const { lo, hi } = finiteRange(diagrams, dims);
  const pad = (hi - lo) * 0.04;
  const hasInf = dims.some((d) => (diagrams[String(d)] ?? []).some(([, e]) => e === null));
  // Square plot area, centred, leaving room for the ∞ band on top.
  const infBand = 22;
  const margin = { left: 52, right: 14, top: 10 + infBand, bottom: 38 };
  const side = Math.max(40, Math.min(width - margin.left - margin.right, height - margin.top - margin.bottom));
  const left = margin.left + Math.max(0, (width - margin.left - margin.right - side) / 2);
  const f: Frame = { left, top: margin.top, right: left + side, bottom: margin.top + side };
  const x = linear(lo - pad, hi + pad, f.left, f.right);
  const y = linear(lo - pad, hi + pad, f.bottom, f.top);
  const infY = f.top - infBand / 2 - 2;

  drawAxes(ctx, pal, f, x, y, "birth", "death");

  ctx.save();
  // Below the diagonal nothing lives: shade it and draw the diagonal.
  ctx.fillStyle = withAlpha(pal.muted, 0.07);
  ctx.beginPath();
  ctx.moveTo(x(x.min), y(y.min));
  ctx.lineTo(x(x.max), y(y.max));
  ctx.lineTo(x(x.max), y(y.min));
  ctx.closePath();
  ctx.fill();
  ctx.strokeStyle = pal.muted;
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(x(x.min), y(y.min));
  ctx.lineTo(x(x.max), y(y.max));
  ctx.stroke();

  // The ∞ line.
  ctx.setLineDash([4, 4]);
  ctx.strokeStyle = hasInf ? pal.muted : pal.grid;
  ctx.beginPath();
  ctx.moveTo(f.left, Math.round(infY) + 0.5);
  ctx.lineTo(f.right, Math.round(infY) + 0.5);
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.fillStyle = pal.fg;
  ctx.font = FONT_BOLD;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  ctx.fillText("∞", f.left - 6, infY);

  const targets: Target[] = [];
  const r = 3.6;
  for (const d of dims) {
    const bars = diagrams[String(d)] ?? [];
    const color = pal.dim(d);
    ctx.fillStyle = withAlpha(color, 0.55);
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.2;
    for (const [b, e] of bars) {
      const px = x(b);
      const py = e === null ? infY : y(e);
      marker(ctx, d, px, py, r);
      if (d % 5 === 4) ctx.stroke();
      else {
        ctx.fill();
        ctx.stroke();
      }
      targets.push({
        x: px,
        y: py,
        r,
        text: `H${d} · birth ${fmtVal(b)} · death ${fmtVal(e)}\n${e === null ? "never dies" : `persistence ${fmtVal(e - b)}`}`,
      });
    }
  }
  ctx.restore();
  return targets;
}

// Persistence landscape λ_k(t) per dimension: the first layer solid and
// filled, the next ones thinner and lighter.
import { drawAxes, fmtVal, FONT, linear, withAlpha, type Frame, type Palette, type Target } from "./plot-core";

export interface Landscape {
  grid: number[];
  /** Layers λ1, λ2, … sampled on `grid`. */
  values: number[][];
  norms?: { l1: number; l2: number; linf: number };
}

export function drawLandscape(
  ctx: CanvasRenderingContext2D,
  width: number,
  height: number,
  pal: Palette,
  landscapes: Record<string, Landscape>,
  dims: number[],
): Target[] {
  let x0 = Infinity;
  let x1 = -Infinity;
  let ymax = 0;
  for (const d of dims) {
    const l = landscapes[String(d)];
    if (!l || !l.grid.length) continue;
    x0 = Math.min(x0, l.grid[0]);
    x1 = Math.max(x1, l.grid[l.grid.length - 1]);
    for (const layer of l.values) for (const v of layer) if (Number.isFinite(v)) ymax = Math.max(ymax, v);
  }
  if (!Number.isFinite(x0)) {
    x0 = 0;
    x1 = 1;
  }
  if (x1 <= x0) x1 = x0 + 1;
  if (ymax <= 0) ymax = 1;
  const f: Frame = { left: 56, top: 14, right: width - 16, bottom: height - 38 };
  const x = linear(x0, x1, f.left, f.right);
  const y = linear(0, ymax * 1.08, f.bottom, f.top);
  drawAxes(ctx, pal, f, x, y, "t (filtration value)", "λₖ(t)");

  const targets: Target[] = [];
  ctx.save();
  ctx.beginPath();
  ctx.rect(f.left, f.top - 2, f.right - f.left + 1, f.bottom - f.top + 3);
  ctx.clip();
  ctx.lineJoin = "round";
  for (const d of dims) {
    const l = landscapes[String(d)];
    if (!l) continue;
    const color = pal.dim(d);
    // Deeper layers first, so λ1 stays on top.
    for (let k = l.values.length - 1; k >= 0; k--) {
      const layer = l.values[k];
      if (!layer.some((v) => v > 0)) continue;
      ctx.beginPath();
      layer.forEach((v, i) => {
        const px = x(l.grid[i]);
        const py = y(v);
        if (i === 0) ctx.moveTo(px, py);
        else ctx.lineTo(px, py);
      });
      if (k === 0) {
        ctx.save();
        ctx.lineTo(x(l.grid[l.grid.length - 1]), y(0));
        ctx.lineTo(x(l.grid[0]), y(0));
        ctx.closePath();
        ctx.fillStyle = withAlpha(color, 0.12);
        ctx.fill();
        ctx.restore();
        ctx.beginPath();
        layer.forEach((v, i) => (i === 0 ? ctx.moveTo(x(l.grid[i]), y(v)) : ctx.lineTo(x(l.grid[i]), y(v))));
      }
      ctx.strokeStyle = k === 0 ? color : withAlpha(color, Math.max(0.3, 0.85 - k * 0.15));
      ctx.lineWidth = k === 0 ? 2 : 1.2;
      ctx.setLineDash(k === 0 ? [] : [5, 3]);
      ctx.stroke();
    }
    ctx.setLineDash([]);
    const first = l.values[0] ?? [];
    first.forEach((v, i) => {
      const layers = l.values
        .map((layer, k) => [k, layer[i]] as const)
        .filter(([, val]) => val > 0)
        .slice(0, 4)
        .map(([k, val]) => `λ${k + 1} ${fmtVal(val)}`)
        .join(", ");
      targets.push({ x: x(l.grid[i]), y: y(v), r: 0, text: `H${d} · t ${fmtVal(l.grid[i])} · ${layers || "0"}` });
    });
  }
  ctx.restore();

  if (!targets.length || dims.every((d) => !(landscapes[String(d)]?.values ?? []).some((layer) => layer.some((v) => v > 0)))) {
    ctx.save();
    ctx.font = FONT;
    ctx.fillStyle = pal.muted;
    ctx.textAlign = "center";
    ctx.fillText("no finite bars in the dimensions shown", (f.left + f.right) / 2, (f.top + f.bottom) / 2);
    ctx.restore();
  }
  return targets;
}

// A canvas that fills its box, redraws on resize, theme change and new data,
// and shows a tooltip for the target under the pointer (points, bars).
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { useTheme } from "../lib/theme";
import { nearest, palette, setupCanvas, type Palette, type Target } from "./plot-core";

export type DrawFn = (ctx: CanvasRenderingContext2D, width: number, height: number, pal: Palette) => Target[] | void;

export function PlotCanvas({
  draw,
  label,
  height,
  testid,
}: {
  draw: DrawFn;
  /** What the plot shows, for screen readers (role="img"). */
  label: string;
  /** CSS height in px (fixed, so nothing moves while data arrives). */
  height: number;
  testid?: string;
}) {
  const wrap = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const targets = useRef<Target[]>([]);
  const [width, setWidth] = useState(0);
  const [tip, setTip] = useState<{ x: number; y: number; text: string } | null>(null);
  const theme = useTheme();

  useLayoutEffect(() => {
    const el = wrap.current;
    if (!el) return;
    setWidth(Math.floor(el.clientWidth));
    const ro = new ResizeObserver(() => setWidth(Math.floor(el.clientWidth)));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  // Zooming the page changes devicePixelRatio without resizing the box.
  const [dprTick, setDprTick] = useState(0);
  useEffect(() => {
    const mq = matchMedia(`(resolution: ${window.devicePixelRatio || 1}dppx)`);
    const l = () => setDprTick((n) => n + 1);
    mq.addEventListener("change", l);
    return () => mq.removeEventListener("change", l);
  }, [dprTick]);

  useEffect(() => {
    const c = canvas.current;
    if (!c || width <= 0) return;
    const ctx = setupCanvas(c, width, height);
    if (!ctx) return;
    targets.current = draw(ctx, width, height, palette()) || [];
    c.dataset.drawn = "true";
    setTip(null);
  }, [draw, width, height, theme, dprTick]);

  const move = (e: PointerEvent) => {
    const r = (e.currentTarget as HTMLCanvasElement).getBoundingClientRect();
    const x = e.clientX - r.left;
    const y = e.clientY - r.top;
    const t = nearest(targets.current, x, y);
    setTip(t ? { x, y, text: t.text } : null);
  };

  return (
    <div class="plot" ref={wrap} style={{ height: `${height}px` }} data-testid={testid}>
      <canvas
        ref={canvas}
        role="img"
        aria-label={label}
        style={{ width: `${width}px`, height: `${height}px` }}
        onPointerMove={move}
        onPointerLeave={() => setTip(null)}
      />
      {tip && (
        <div
          class="plot-tip"
          role="tooltip"
          style={{
            ...(tip.x + 260 > width ? { right: `${width - tip.x + 12}px` } : { left: `${tip.x + 12}px` }),
            top: `${tip.y > height / 2 ? Math.max(0, tip.y - 52) : tip.y + 14}px`,
          }}
        >
          {tip.text}
        </div>
      )}
    </div>
  );
}

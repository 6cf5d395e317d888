// A small trend line (SVG, fixed size so streaming values never move the
// layout); gaps (null) break the line.
export function Sparkline({
  values,
  width = 120,
  height = 30,
  label,
}: {
  values: (number | null)[];
  width?: number;
  height?: number;
  label?: string;
}) {
  const finite = values.filter((v): v is number => v !== null && Number.isFinite(v));
  let min = finite.length ? Math.min(...finite) : 0;
  let max = finite.length ? Math.max(...finite) : 1;
  if (max === min) {
    max += Math.abs(max) * 0.1 || 1;
    min -= Math.abs(min) * 0.1 || 0;
  }
  const n = Math.max(2, values.length);
  const px = (i: number) => 1 + (i * (width - 2)) / (n - 1);
  const py = (v: number) => height - 2 - ((v - min) / (max - min)) * (height - 4);
  const segments: string[] = [];
  let cur: string[] = [];
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      if (cur.length) segments.push(cur.join(" "));
      cur = [];
    } else cur.push(`${px(i).toFixed(1)},${py(v).toFixed(1)}`);
  });
  if (cur.length) segments.push(cur.join(" "));
  let lastIdx = -1;
  for (let i = values.length - 1; i >= 0; i--) {
    const v = values[i];
    if (v !== null && Number.isFinite(v)) {
      lastIdx = i;
      break;
    }
  }
  const last = lastIdx >= 0 ? (values[lastIdx] as number) : undefined;
  return (
    <svg
      class="spark"
      width={width}
      height={height}
      viewBox={`0 0 ${width} ${height}`}
      role={label ? "img" : undefined}
      aria-label={label}
      aria-hidden={label ? undefined : "true"}
    >
      {segments.map((pts) =>
        pts.includes(" ") ? (
          <polyline points={pts} fill="none" stroke="var(--accent)" stroke-width="1.5" stroke-linejoin="round" />
        ) : (
          <circle cx={pts.split(",")[0]} cy={pts.split(",")[1]} r="1.5" fill="var(--accent)" />
        ),
      )}
      {last !== undefined && lastIdx >= 0 && <circle cx={px(lastIdx)} cy={py(last)} r="2.2" fill="var(--accent)" />}
    </svg>
  );
}

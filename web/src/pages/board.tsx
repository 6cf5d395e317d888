// The board: every symbol the platform has, live from the `ticks` channel.
// Ticks land in a mutable map (no render per tick); the table re-renders at
// most once per animation frame, and only the rows whose data changed (or
// whose age text is due) re-render; a sparkline redraws only when its prices
// changed.
import { Component } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, get, query } from "../lib/api";
import { fmtAge, fmtPct, fmtPrice } from "../lib/format";
import { realtime } from "../lib/realtime";
import { useTheme, type Theme } from "../lib/theme";
import { Sparkline } from "../components/sparkline";
import "./board.css";

/** Prices kept per symbol for its sparkline. */
const SPARK_POINTS = 120;
/** A price older than this is marked stale. */
const STALE_MS = 60_000;
/** Up to this many symbols every sparkline is seeded from 1m bars at once;
 *  beyond, a row is seeded when it first comes on screen. */
const SEED_MAX_SYMBOLS = 60;
/** Concurrent seed requests. */
const SEED_CONCURRENCY = 4;
/** Least time between two renders of the table (ms); renders also wait for a frame. */
const RENDER_EVERY_MS = 100;
/** … and on a board of more than LARGE_BOARD symbols. */
const RENDER_EVERY_MS_LARGE = 250;
const LARGE_BOARD = 60;

interface SymbolSummary {
  symbol: string;
  source?: string | null;
  price?: number | null;
  open?: number | null;
  change?: number | null;
  change_pct?: number | null;
  high?: number | null;
  low?: number | null;
  volume?: number | null;
  ts_event?: number | null;
  age_ms?: number | null;
  session_start?: number | null;
}

interface SymbolsResponse {
  count?: number;
  interval?: string;
  symbols?: SymbolSummary[];
}

interface TickData {
  symbol: string;
  source?: string;
  kind?: string;
  price: number;
  size?: number;
  ts_event?: number;
}

interface BarData {
  start: number;
  open: number;
  close: number;
  last_ts?: number;
  source?: string;
}

interface Row {
  symbol: string;
  source: string;
  price: number | null;
  open: number | null;
  /** Start (ns) of the session the open belongs to, when known. */
  sessionStart: number | null;
  /** Event time of the price, ms. */
  tsMs: number | null;
  spark: number[];
  sparkV: number;
  /** Direction of the last price change (1 up, -1 down, 0 none yet). */
  flash: number;
  /** Alternates on every change so the flash animation restarts. */
  flashN: number;
  /** Bumped on every change of the row. */
  v: number;
  /** On screen (or near it): off-screen rows refresh once a second and skip their sparkline. */
  visible: boolean;
  /** The sparkline seed was asked for. */
  seeded: boolean;
}

/** Without IntersectionObserver every row counts as on screen. */
const CAN_OBSERVE = typeof IntersectionObserver === "function";

const DAY_NS = 86_400e9;

function intervalNs(iv: string | undefined): number {
  const m = iv?.match(/^(\d+)([smhd])$/);
  if (!m) return DAY_NS;
  const unit = { s: 1e9, m: 60e9, h: 3600e9, d: DAY_NS }[m[2] as "s" | "m" | "h" | "d"];
  return Number(m[1]) * unit;
}

const num = (x: unknown): number | null => (typeof x === "number" && Number.isFinite(x) ? x : null);

class BoardStore {
  rows = new Map<string, Row>();
  /** Bumped when rows are added. */
  shape = 0;
  sessionNs = DAY_NS;
  private listeners = new Set<() => void>();
  private raf = 0;
  private timer: number | undefined;
  private lastFlush = 0;
  private queue: string[] = [];
  private queued = new Set<string>();
  private active = 0;
  private ac = new AbortController();

  private row(symbol: string): Row {
    let r = this.rows.get(symbol);
    if (!r) {
      r = { symbol, source: "", price: null, open: null, sessionStart: null, tsMs: null, spark: [], sparkV: 0, flash: 0, flashN: 0, v: 0, visible: !CAN_OBSERVE, seeded: false };
      this.rows.set(symbol, r);
      this.shape++;
    }
    return r;
  }

  load(res: SymbolsResponse) {
    this.sessionNs = intervalNs(res.interval);
    for (const s of res.symbols ?? []) {
      if (!s || typeof s.symbol !== "string") continue;
      const known = this.rows.has(s.symbol);
      const r = this.row(s.symbol);
      const price = num(s.price);
      const ts = num(s.ts_event);
      const tsMs = ts !== null ? ts / 1e6 : num(s.age_ms) !== null ? Date.now() - (s.age_ms as number) : null;
      // A tick that came first is newer than the summary.
      if (r.tsMs === null || (tsMs !== null && tsMs > r.tsMs)) {
        if (price !== null) r.price = price;
        if (tsMs !== null) r.tsMs = tsMs;
        if (s.source) r.source = s.source;
      }
      let open = num(s.open);
      if (open === null && price !== null && num(s.change) !== null) open = price - (s.change as number);
      if (open !== null) {
        r.open = open;
        r.sessionStart = num(s.session_start);
      }
      if (!r.source && s.source) r.source = s.source;
      if (!known && price !== null && r.spark.length === 0) {
        r.spark.push(price);
        r.sparkV++;
      }
      r.v++;
    }
    for (const r of this.rows.values()) this.enqueue(r.symbol);
    this.onChange();
  }

  tick(t: TickData) {
    if (!t || typeof t.symbol !== "string") return;
    const price = num(t.price);
    if (price === null) return;
    const isNew = !this.rows.has(t.symbol);
    const r = this.row(t.symbol);
    const tsNs = num(t.ts_event);
    const tsMs = tsNs !== null ? tsNs / 1e6 : Date.now();
    if (r.tsMs !== null && tsMs < r.tsMs - 1) return; // older than what we show
    // A new session: its first price is its open.
    if (r.sessionStart !== null && tsNs !== null && tsNs >= r.sessionStart + this.sessionNs) {
      r.sessionStart = Math.floor(tsNs / this.sessionNs) * this.sessionNs;
      r.open = price;
    }
    if (r.price !== null && price !== r.price) {
      r.flash = price > r.price ? 1 : -1;
      r.flashN ^= 1;
    }
    r.price = price;
    r.tsMs = tsMs;
    if (t.source) r.source = t.source;
    r.spark.push(price);
    if (r.spark.length > SPARK_POINTS) r.spark.splice(0, r.spark.length - SPARK_POINTS);
    r.sparkV++;
    r.v++;
    if (isNew) this.enqueue(t.symbol);
    this.onChange();
  }

  /** Fetches what a row lacks: the session open, and a sparkline seed. */
  enqueue(symbol: string) {
    if (this.queued.has(symbol)) return;
    this.queued.add(symbol);
    this.queue.push(symbol);
    this.pump();
  }

  private pump() {
    while (this.active < SEED_CONCURRENCY && this.queue.length && !this.ac.signal.aborted) {
      const sym = this.queue.shift()!;
      this.active++;
      this.enrich(sym)
        .catch(() => undefined)
        .finally(() => {
          this.active--;
          this.queued.delete(sym);
          this.pump();
        });
    }
  }

  private async enrich(symbol: string) {
    const r = this.rows.get(symbol);
    if (!r) return;
    const signal = this.ac.signal;
    if (r.open === null) {
      const res = await get<{ bars?: BarData[] }>(`/api/v1/bars${query({ symbol, interval: "1d", limit: 1 })}`, signal);
      const bar = res.bars?.[res.bars.length - 1];
      if (bar && r.open === null) {
        r.open = num(bar.open);
        r.sessionStart = num(bar.start);
        if (r.price === null && num(bar.close) !== null) {
          r.price = bar.close;
          r.tsMs = num(bar.last_ts) !== null ? (bar.last_ts as number) / 1e6 : null;
          if (bar.source && !r.source) r.source = bar.source;
        }
        r.v++;
        this.onChange();
      }
    }
    if (!r.seeded && (this.rows.size <= SEED_MAX_SYMBOLS || r.visible) && r.spark.length < SPARK_POINTS) {
      r.seeded = true;
      const res = await get<{ bars?: BarData[] }>(`/api/v1/bars${query({ symbol, interval: "1m", limit: 60 })}`, signal);
      const closes = (res.bars ?? []).map((b) => num(b.close)).filter((x): x is number => x !== null);
      if (closes.length) {
        // The newest close is the current price: the ticks seen meanwhile follow it.
        r.spark = closes.slice(0, -1).concat(r.spark.length ? r.spark : closes.slice(-1)).slice(-SPARK_POINTS);
        r.sparkV++;
        r.v++;
        this.onChange();
      }
    }
  }

  /** Called after changes, at most once per frame and per RENDER_EVERY_MS. */
  listen(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** Coalesces changes: one flush per frame, at most every RENDER_EVERY_MS. */
  onChange() {
    if (this.raf || this.timer !== undefined) return;
    const frame = () => {
      this.timer = undefined;
      this.raf = requestAnimationFrame(() => {
        this.raf = 0;
        this.lastFlush = performance.now();
        for (const l of this.listeners) l();
      });
    };
    const every = this.rows.size > LARGE_BOARD ? RENDER_EVERY_MS_LARGE : RENDER_EVERY_MS;
    const wait = this.lastFlush + every - performance.now();
    if (wait > 0) this.timer = window.setTimeout(frame, wait);
    else frame();
  }

  dispose() {
    this.ac.abort();
    this.queue = [];
    this.listeners.clear();
    cancelAnimationFrame(this.raf);
    window.clearTimeout(this.timer);
  }
}

type SortKey = "symbol" | "price" | "changePct" | "age";
interface Sort {
  key: SortKey;
  dir: 1 | -1;
}

function changeOf(r: Row): { change: number | null; pct: number | null } {
  if (r.price === null || r.open === null) return { change: null, pct: null };
  const change = r.price - r.open;
  return { change, pct: r.open !== 0 ? (change / r.open) * 100 : null };
}

function cmpNullable(a: number | null, b: number | null, dir: number): number {
  if (a === null && b === null) return 0;
  if (a === null) return 1; // nulls last whatever the direction
  if (b === null) return -1;
  return (a - b) * dir;
}

function sortRows(rows: Row[], sort: Sort): Row[] {
  const d = sort.dir;
  const bySym = (a: Row, b: Row) => (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0);
  let cmp: (a: Row, b: Row) => number;
  switch (sort.key) {
    case "symbol":
      cmp = (a, b) => bySym(a, b) * d;
      break;
    case "price":
      cmp = (a, b) => cmpNullable(a.price, b.price, d) || bySym(a, b);
      break;
    case "changePct":
      cmp = (a, b) => cmpNullable(changeOf(a).pct, changeOf(b).pct, d) || bySym(a, b);
      break;
    case "age":
      // Ascending age: the freshest first.
      cmp = (a, b) => cmpNullable(a.tsMs === null ? null : -a.tsMs, b.tsMs === null ? null : -b.tsMs, d) || bySym(a, b);
      break;
  }
  return rows.sort(cmp);
}

function fmtSigned(x: number | null): string {
  if (x === null) return "–";
  if (x === 0) return fmtPrice(0);
  return `${x > 0 ? "+" : "-"}${fmtPrice(Math.abs(x))}`;
}

function fmtBoardAge(ms: number | null): string {
  if (ms === null) return "–";
  return ms < 1000 ? "<1 s" : fmtAge(ms);
}

interface RowProps {
  row: Row;
  v: number;
  visible: boolean;
  /** The second the ages were last refreshed at. */
  now: number;
  theme: Theme;
  observe: (el: Element | null, row: Row) => void;
}

class BoardRow extends Component<RowProps> {
  private el: Element | null = null;
  private setEl = (el: Element | null) => {
    if (el === this.el) return;
    this.el = el;
    this.props.observe(el, this.props.row); // null: stop observing
  };

  shouldComponentUpdate(next: RowProps): boolean {
    const p = this.props;
    if (next.row !== p.row || next.theme !== p.theme || next.visible !== p.visible) return true;
    // Off screen: the text follows once a second, with the ages.
    if (!next.visible) return next.now !== p.now;
    return next.v !== p.v || next.now !== p.now;
  }

  componentWillUnmount() {
    if (this.el) this.props.observe(null, this.props.row);
  }

  render() {
    const { row: r, theme } = this.props;
    const age = r.tsMs === null ? null : Math.max(0, Date.now() - r.tsMs);
    const stale = age !== null && age > STALE_MS;
    const { change, pct } = changeOf(r);
    const dir = change === null || change === 0 ? "" : change > 0 ? "up" : "down";
    // Off screen, no flash (an animation nobody sees still costs frames).
    const flash = r.flash === 0 || !this.props.visible ? "" : `${r.flash > 0 ? "flash-up" : "flash-down"}${r.flashN ? " flash-alt" : ""}`;
    const href = `/symbols/${encodeURIComponent(r.symbol)}`;
    return (
      <tr data-testid={`row-${r.symbol}`} class={stale ? "is-stale" : undefined} ref={this.setEl}>
        <th scope="row" class="c-symbol">
          <a href={href}>{r.symbol}</a>
        </th>
        <td class="num c-price">
          <span class={`price ${flash}`} data-testid={`price-${r.symbol}`}>
            {fmtPrice(r.price)}
          </span>
        </td>
        <td class={`num c-change ${dir}`}>
          <span class="arrow" aria-hidden="true">
            {dir === "up" ? "▲" : dir === "down" ? "▼" : ""}
          </span>
          {fmtSigned(change)}
        </td>
        <td class={`num c-pct ${dir}`} data-testid={`change-${r.symbol}`}>
          {fmtPct(pct)}
        </td>
        <td class="c-spark">
          <Sparkline
            data={r.spark}
            version={r.sparkV}
            visible={this.props.visible}
            theme={theme}
            width={132}
            height={26}
            reference={r.open}
            label={`${r.symbol}: last ${r.spark.length} prices`}
          />
        </td>
        <td class="c-source">{r.source || "–"}</td>
        <td class="num c-age" data-testid={`age-${r.symbol}`}>
          {stale && <span class="badge stale-badge">stale</span>}
          <span>{fmtBoardAge(age)}</span>
        </td>
      </tr>
    );
  }
}

const SORT_LABELS: Record<SortKey, string> = { symbol: "Symbol", price: "Price", changePct: "Change %", age: "Age" };

function SortHeader({ k, sort, setSort, class: cls }: { k: SortKey; sort: Sort; setSort: (s: Sort) => void; class?: string }) {
  const active = sort.key === k;
  const ariaSort = active ? (sort.dir === 1 ? "ascending" : "descending") : "none";
  return (
    <th scope="col" class={cls} aria-sort={ariaSort}>
      <button
        type="button"
        class="sort"
        data-testid={`sort-${k}`}
        onClick={() => setSort(active ? { key: k, dir: sort.dir === 1 ? -1 : 1 } : { key: k, dir: k === "symbol" || k === "age" ? 1 : -1 })}
      >
        {SORT_LABELS[k]}
        <span class="sort-ind" aria-hidden="true">
          {active ? (sort.dir === 1 ? "▲" : "▼") : "↕"}
        </span>
      </button>
    </th>
  );
}

/** Re-renders the caller on every flush of the store. */
function useStore(store: BoardStore) {
  const [, set] = useState(0);
  useEffect(() => store.listen(() => set((n) => n + 1)), [store]);
}

function BoardSummary({ store }: { store: BoardStore }) {
  useStore(store);
  let up = 0;
  let down = 0;
  for (const r of store.rows.values()) {
    const { change } = changeOf(r);
    if (change !== null && change > 0) up++;
    else if (change !== null && change < 0) down++;
  }
  const n = store.rows.size;
  return (
    <p class="board-summary muted" data-testid="symbol-count">
      <span class="num">{n}</span> {n === 1 ? "symbol" : "symbols"}
      <span class="sep" aria-hidden="true">·</span>
      <span class="up">
        <span aria-hidden="true">▲ </span>
        {up} up
      </span>
      <span class="sep" aria-hidden="true">·</span>
      <span class="down">
        <span aria-hidden="true">▼ </span>
        {down} down
      </span>
      <span class="sep" aria-hidden="true">·</span>
      change vs the day open
    </p>
  );
}

interface TableProps {
  store: BoardStore;
  theme: Theme;
  filter: string;
  sort: Sort;
  setSort: (s: Sort) => void;
  loading: boolean;
}

function BoardTable({ store, theme, filter, sort, setSort, loading }: TableProps) {
  useStore(store);
  // Ages tick every second (rows re-render when their age text is due).
  const [now, setNow] = useState(() => Math.floor(Date.now() / 1000));
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Math.floor(Date.now() / 1000)), 1000);
    return () => window.clearInterval(timer);
  }, []);
  // Which rows are on screen (with a margin), so the others can idle.
  const observer = useMemo(() => {
    const rowOf = new WeakMap<Element, Row>();
    const io =
      typeof IntersectionObserver === "function"
        ? new IntersectionObserver(
            (entries) => {
              let changed = false;
              for (const e of entries) {
                const r = rowOf.get(e.target);
                if (r && r.visible !== e.isIntersecting) {
                  r.visible = e.isIntersecting;
                  changed = true;
                  if (r.visible && !r.seeded) store.enqueue(r.symbol);
                }
              }
              if (changed) store.onChange();
            },
            { rootMargin: "200px 0px" },
          )
        : null;
    const elOf = new Map<Row, Element>();
    return {
      observe(el: Element | null, row: Row) {
        const old = elOf.get(row);
        if (old && old !== el) {
          io?.unobserve(old);
          elOf.delete(row);
        }
        if (el && old !== el) {
          rowOf.set(el, row);
          elOf.set(row, el);
          io?.observe(el);
        }
      },
      disconnect() {
        io?.disconnect();
      },
    };
  }, [store]);
  useEffect(() => () => observer.disconnect(), [observer]);
  const all = [...store.rows.values()];
  const f = filter.trim().toLowerCase();
  const shown = sortRows(f ? all.filter((r) => r.symbol.toLowerCase().includes(f) || r.source.toLowerCase().includes(f)) : all, sort);
  return (
    <div class="panel board-panel">
      <div class="table-wrap">
        <table class="board-table" data-testid="board">
          <caption class="sr-only">Live prices of every symbol; change is against the day open</caption>
          <colgroup>
            <col class="w-symbol" />
            <col class="w-price" />
            <col class="w-change" />
            <col class="w-pct" />
            <col class="w-spark" />
            <col class="w-source" />
            <col class="w-age" />
          </colgroup>
          <thead>
            <tr>
              <SortHeader k="symbol" sort={sort} setSort={setSort} class="c-symbol" />
              <SortHeader k="price" sort={sort} setSort={setSort} class="num" />
              <th scope="col" class="num">
                Change
              </th>
              <SortHeader k="changePct" sort={sort} setSort={setSort} class="num" />
              <th scope="col" class="c-spark">
                Trend
              </th>
              <th scope="col">Source</th>
              <SortHeader k="age" sort={sort} setSort={setSort} class="num" />
            </tr>
          </thead>
          <tbody>
            {shown.map((r) => (
              <BoardRow key={r.symbol} row={r} v={r.v} visible={r.visible} now={now} theme={theme} observe={observer.observe} />
            ))}
          </tbody>
        </table>
      </div>
      {shown.length === 0 && (
        <p class="empty" role="status">
          {all.length === 0
            ? loading
              ? "Loading symbols…"
              : "No symbols yet: rows appear as ticks arrive."
            : `No symbol or source matches “${filter.trim()}”.`}
        </p>
      )}
    </div>
  );
}

export function Board() {
  const theme = useTheme();
  const store = useMemo(() => new BoardStore(), []);
  const [filter, setFilter] = useState("");
  const [sort, setSort] = useState<Sort>({ key: "symbol", dir: 1 });
  const [loading, setLoading] = useState(true);
  const [listError, setListError] = useState<string | null>(null);

  useEffect(() => {
    const unsubscribe = realtime.subscribe("ticks", ["*"], (m) => store.tick(m.data as TickData));
    const ac = new AbortController();
    get<SymbolsResponse>("/api/v1/symbols", ac.signal)
      .then((res) => {
        store.load(res ?? {});
        setListError(null);
      })
      .catch((e) => {
        if ((e as Error).name === "AbortError") return;
        // Without the list (an older server), rows appear as ticks arrive.
        setListError(e instanceof ApiError ? e.detail : String(e));
      })
      .finally(() => {
        if (!ac.signal.aborted) setLoading(false);
      });
    return () => {
      unsubscribe();
      ac.abort();
      store.dispose();
    };
  }, [store]);

  return (
    <section class="page board" aria-labelledby="board-title">
      <div class="board-head">
        <h1 id="board-title">Board</h1>
        <BoardSummary store={store} />
        <div class="board-filter">
          <label for="board-filter" class="inline-label">
            Filter
          </label>
          <input
            id="board-filter"
            type="search"
            placeholder="Symbol or source"
            value={filter}
            onInput={(e) => setFilter((e.target as HTMLInputElement).value)}
            data-testid="board-filter"
            autocomplete="off"
            spellcheck={false}
          />
        </div>
      </div>
      {listError && (
        <p class="board-note muted" role="status">
          The symbol list is unavailable ({listError}); symbols appear as their ticks arrive.
        </p>
      )}
      <BoardTable store={store} theme={theme} filter={filter} sort={sort} setSort={setSort} loading={loading} />
    </section>
  );
}

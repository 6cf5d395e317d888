// The connectors and their live status: seeded from the REST API (the list,
// then each status), then kept current by the realtime `connector-status`
// channel (every connector: `["*"]`). Rates are derived from the counters'
// movement between updates, since the status carries totals only.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { get } from "../../lib/api";
import { realtime, type ConnState } from "../../lib/realtime";
import type { ConnectorStatus, ConnectorView } from "./model";

interface Sample {
  /** Local receive time, ms. */
  t: number;
  msgs: number;
  ticks: number;
}

export interface Live {
  status: ConnectorStatus;
  samples: Sample[];
}

export interface ConnectorStore {
  connectors: ConnectorView[];
  live: Record<string, Live>;
  loaded: boolean;
  error: unknown;
  reload: () => Promise<void>;
  upsert: (c: ConnectorView) => void;
  remove: (id: string) => void;
  /** Fetches one connector's status now (after a start or stop). */
  refreshStatus: (id: string) => Promise<void>;
}

const WINDOW_MS = 10_000;

function withStatus(prev: Live | undefined, s: ConnectorStatus, now: number): Live | undefined {
  if (prev && s.updated_at < prev.status.updated_at) return undefined; // older than what we have
  let samples = prev?.samples ?? [];
  const last = samples[samples.length - 1];
  if (last && (s.messages_received < last.msgs || s.ticks < last.ticks)) samples = []; // counters reset
  samples = [...samples.filter((x) => now - x.t <= WINDOW_MS + 5_000), { t: now, msgs: s.messages_received, ticks: s.ticks }];
  return { status: s, samples };
}

/** Messages and ticks a second over the last ~10 s; `null`: not known yet. */
export function rates(l: Live | undefined, now: number): { msgs: number | null; ticks: number | null } {
  if (!l) return { msgs: null, ticks: null };
  const active = l.status.state !== "stopped" && l.status.state !== "failed";
  if (!active) return { msgs: null, ticks: null };
  const s = l.samples.filter((x) => now - x.t <= WINDOW_MS);
  const newest = l.samples[l.samples.length - 1];
  if (!newest) return { msgs: null, ticks: null };
  // No report for a while: the counters have not moved (the server reports
  // at most once a second while they move, and not at all otherwise).
  const quiet = now - newest.t > 2_500;
  if (s.length < 2) return quiet ? { msgs: 0, ticks: 0 } : { msgs: null, ticks: null };
  const oldest = s[0];
  const end = quiet ? now : newest.t;
  const dt = (end - oldest.t) / 1000;
  if (dt <= 0.2) return { msgs: null, ticks: null };
  return { msgs: (newest.msgs - oldest.msgs) / dt, ticks: (newest.ticks - oldest.ticks) / dt };
}

export function useConnectorStore(): ConnectorStore {
  const [connectors, setConnectors] = useState<ConnectorView[]>([]);
  const [live, setLive] = useState<Record<string, Live>>({});
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const known = useRef(new Set<string>());
  const reloadTimer = useRef<number | undefined>(undefined);
  const loading = useRef<Promise<void> | null>(null);

  const apply = useCallback((s: ConnectorStatus) => {
    const now = Date.now();
    setLive((m) => {
      const next = withStatus(m[s.connector_id], s, now);
      return next ? { ...m, [s.connector_id]: next } : m;
    });
  }, []);

  const refreshStatus = useCallback(
    async (id: string) => {
      try {
        apply(await get<ConnectorStatus>(`/api/v1/connectors/${id}/status`));
      } catch {
        /* the realtime channel will bring it */
      }
    },
    [apply],
  );

  const reload = useCallback(() => {
    loading.current ??= (async () => {
      try {
        const list = await get<{ connectors: ConnectorView[] }>("/api/v1/connectors");
        known.current = new Set(list.connectors.map((c) => c.id));
        setConnectors(list.connectors);
        setLive((m) => {
          const out: Record<string, Live> = {};
          for (const id of known.current) if (m[id]) out[id] = m[id];
          return out;
        });
        setError(null);
        setLoaded(true);
        await Promise.all(list.connectors.map((c) => refreshStatus(c.id)));
      } catch (e) {
        setError(e);
        setLoaded(true);
      } finally {
        loading.current = null;
      }
    })();
    return loading.current;
  }, [refreshStatus]);

  useEffect(() => {
    void reload();
    const unsub = realtime.subscribe("connector-status", ["*"], (m) => {
      const s = m.data as ConnectorStatus;
      if (!s || typeof s.connector_id !== "string") return;
      apply(s);
      if (!known.current.has(s.connector_id)) {
        // A connector made elsewhere (another tab, the CLI): fetch the list.
        window.clearTimeout(reloadTimer.current);
        reloadTimer.current = window.setTimeout(() => void reload(), 300);
      }
    });
    // After a reconnect, updates may have been missed: seed again.
    let last: ConnState = realtime.state;
    const unState = realtime.onState((s) => {
      if (s === "open" && last !== "open") void reload();
      last = s;
    });
    return () => {
      unsub();
      unState();
      window.clearTimeout(reloadTimer.current);
    };
  }, [apply, reload]);

  const upsert = useCallback((c: ConnectorView) => {
    known.current.add(c.id);
    setConnectors((list) => {
      const i = list.findIndex((x) => x.id === c.id);
      if (i < 0) return [...list, c];
      const copy = list.slice();
      copy[i] = c;
      return copy;
    });
  }, []);

  const remove = useCallback((id: string) => {
    known.current.delete(id);
    setConnectors((list) => list.filter((x) => x.id !== id));
    setLive((m) => {
      const { [id]: _gone, ...rest } = m;
      return rest;
    });
  }, []);

  return { connectors, live, loaded, error, reload, upsert, remove, refreshStatus };
}

/** Re-renders every `ms` (ages and rates move with the clock). */
export function useNow(ms = 1000): number {
  const [now, set] = useState(Date.now());
  useEffect(() => {
    const t = window.setInterval(() => set(Date.now()), ms);
    return () => window.clearInterval(t);
  }, [ms]);
  return now;
}

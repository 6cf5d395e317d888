// One WebSocket to /api/v1/realtime shared by every page: subscriptions are
// reference counted per (channel, symbol), resumed after a reconnect with
// the last `seq` seen per key (`since`), and reconnects back off with
// jitter. The key goes on the upgrade as a subprotocol beside `marketd.v1`.
import { session } from "./session";

export type Channel = "ticks" | "bars" | "indicators" | "connector-status" | "jobs" | "tda-signals";

export interface DataUpdate<T = any> {
  type: "data_update";
  channel: Channel;
  symbol?: string;
  key: string;
  seq: number;
  data: T;
}

export type ConnState = "connecting" | "open" | "closed";

type Handler = (m: DataUpdate) => void;

interface Sub {
  channel: Channel;
  symbols: string[];
  interval?: string;
  handler: Handler;
}

const PROTOCOL = "marketd.v1";

class Realtime {
  private ws: WebSocket | null = null;
  private subs = new Set<Sub>();
  /** Symbols sent to the server per channel (with `*` for all). */
  private sent = new Map<Channel, Set<string>>();
  private intervals = new Map<Channel, string>();
  private seqs = new Map<string, number>();
  private attempt = 0;
  private timer: number | undefined;
  private stateListeners = new Set<(s: ConnState) => void>();
  private gapListeners = new Set<(g: { channel: string; key: string; from: number; to: number; reason: string }) => void>();
  state: ConnState = "closed";
  lastError: string | null = null;

  subscribe(channel: Channel, symbols: string[], handler: Handler, interval?: string): () => void {
    const sub: Sub = { channel, symbols, interval, handler };
    this.subs.add(sub);
    this.ensure();
    this.sync(channel);
    return () => {
      this.subs.delete(sub);
      this.sync(channel);
    };
  }

  onState(l: (s: ConnState) => void): () => void {
    this.stateListeners.add(l);
    return () => this.stateListeners.delete(l);
  }

  onGap(l: (g: { channel: string; key: string; from: number; to: number; reason: string }) => void): () => void {
    this.gapListeners.add(l);
    return () => this.gapListeners.delete(l);
  }

  /** Connects (once) even before a page subscribes: the top bar shows the link's state. */
  start() {
    this.ensure();
  }

  /** Reconnects now (after a sign-in: the new key goes on the upgrade). */
  restart() {
    this.ws?.close(1000);
    this.ws = null;
    this.sent.clear();
    this.attempt = 0;
    this.connect();
  }

  private setState(s: ConnState) {
    this.state = s;
    for (const l of this.stateListeners) l(s);
  }

  private ensure() {
    if (!this.ws && this.timer === undefined) this.connect();
  }

  private connect() {
    window.clearTimeout(this.timer);
    this.timer = undefined;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/realtime`;
    const key = session.key();
    const ws = new WebSocket(url, key ? [PROTOCOL, key] : [PROTOCOL]);
    this.ws = ws;
    this.setState("connecting");
    ws.onopen = () => {
      this.attempt = 0;
    };
    ws.onmessage = (ev) => this.receive(ws, ev.data as string);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.sent.clear();
      this.setState("closed");
      // 4001: key revoked, 4002: credentials expired; both mean sign in again.
      if (ev.code === 4001 || ev.code === 4002) session.unauthorized();
      const delay = Math.min(10_000, 250 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
      this.attempt = Math.min(this.attempt + 1, 8);
      this.timer = window.setTimeout(() => this.connect(), delay);
    };
  }

  private receive(ws: WebSocket, text: string) {
    let m: any;
    try {
      m = JSON.parse(text);
    } catch {
      return;
    }
    switch (m.type) {
      case "connected":
        this.setState("open");
        for (const ch of new Set([...this.subs].map((s) => s.channel))) this.sync(ch);
        break;
      case "data_update": {
        // The server resumes after `since` with no gap and no duplicate.
        this.seqs.set(`${m.channel}|${m.key}`, m.seq);
        for (const s of this.subs) {
          if (s.channel !== m.channel) continue;
          if (s.interval && m.data?.interval && s.interval !== m.data.interval) continue;
          if (!s.symbols.includes("*") && m.symbol !== undefined && !s.symbols.includes(m.symbol)) continue;
          try {
            s.handler(m);
          } catch (e) {
            console.warn("realtime handler failed", e);
          }
        }
        break;
      }
      case "ping":
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "pong" }));
        break;
      case "gap":
        for (const l of this.gapListeners) l(m);
        break;
      case "error":
        this.lastError = `${m.error_code}: ${m.detail}`;
        console.warn("realtime error frame", m.error_code, m.detail);
        break;
    }
  }

  /** Brings what the server has for `channel` in line with the subscribers. */
  private sync(channel: Channel) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || this.state !== "open") return;
    const want = new Set<string>();
    let interval: string | undefined;
    for (const s of this.subs) {
      if (s.channel !== channel) continue;
      for (const sym of s.symbols) want.add(sym);
      interval = s.interval ?? interval;
    }
    const have = this.sent.get(channel) ?? new Set<string>();
    const all = want.has("*");
    const target = all ? new Set(["*"]) : want;
    const intervalChanged = interval !== undefined && this.intervals.get(channel) !== interval;
    const removed = [...have].filter((s) => !target.has(s));
    const added = intervalChanged ? [...target] : [...target].filter((s) => !have.has(s));
    if (removed.length) {
      ws.send(JSON.stringify({ type: "unsubscribe", channel, symbols: removed.includes("*") ? ["*"] : removed }));
      if (removed.includes("*")) {
        have.clear();
        for (const s of target) if (!added.includes(s)) added.push(s);
      }
    }
    if (added.length) {
      const since: Record<string, number> = {};
      for (const [k, seq] of this.seqs) {
        const [ch, key] = k.split("|", 2);
        if (ch !== channel) continue;
        const sym = key.split(":")[0];
        if (all || added.includes(sym)) since[key] = seq;
      }
      const msg: Record<string, unknown> = { type: "subscribe", channel, symbols: added };
      if (interval) msg.interval = interval;
      // Resume only within one connection's numbering: a fresh connection
      // may be another instance, whose seqs differ (it answers with a gap
      // and the latest value, which is what the pages need anyway).
      if (Object.keys(since).length && channel !== "bars" && channel !== "indicators") msg.since = since;
      ws.send(JSON.stringify(msg));
    }
    if (interval) this.intervals.set(channel, interval);
    this.sent.set(channel, new Set(target));
  }
}

export const realtime = new Realtime();

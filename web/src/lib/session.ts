// Who the dashboard acts as. The key lives in sessionStorage only (gone
// when the tab closes) and is sent with every REST call and on the
// WebSocket upgrade. `GET /api/v1/session` says whether reads need a key
// and which role the current key has, so writes can be hidden or disabled.
import { useEffect, useState } from "preact/hooks";

export type Role = "read" | "write" | "admin";

export interface SessionInfo {
  authenticated: boolean;
  role: Role | null;
  principal: string | null;
  read_requires_key: boolean;
  expires_at: string | null;
}

const STORAGE = "marketd.key";
type Listener = () => void;
const listeners = new Set<Listener>();
let info: SessionInfo | null = null;
let loading: Promise<void> | null = null;
let lastError: string | null = null;

function notify() {
  for (const l of listeners) l();
}

async function load(): Promise<void> {
  const key = session.key();
  try {
    const res = await fetch("/api/v1/session", {
      headers: key ? { "X-API-Key": key, Accept: "application/json" } : { Accept: "application/json" },
    });
    const body = await res.json();
    if (!res.ok) {
      lastError = body.detail ?? `HTTP ${res.status}`;
      if (key) sessionStorage.removeItem(STORAGE);
      info = null;
      loading = null;
      notify();
      if (key) await load();
      return;
    }
    info = body as SessionInfo;
  } catch {
    lastError = "the server cannot be reached";
  }
  loading = null;
  notify();
}

export const session = {
  key(): string | null {
    return sessionStorage.getItem(STORAGE);
  },
  info(): SessionInfo | null {
    return info;
  },
  error(): string | null {
    return lastError;
  },
  refresh(): Promise<void> {
    loading ??= load();
    return loading;
  },
  async signIn(key: string): Promise<boolean> {
    sessionStorage.setItem(STORAGE, key.trim());
    lastError = null;
    await this.refresh();
    return info?.authenticated ?? false;
  },
  signOut() {
    sessionStorage.removeItem(STORAGE);
    lastError = null;
    info = null;
    void this.refresh();
  },
  /** A REST call was answered 401: the key is gone or was never there. */
  unauthorized() {
    void this.refresh();
  },
  canWrite(): boolean {
    return info?.role === "write" || info?.role === "admin";
  },
  subscribe(l: Listener): () => void {
    listeners.add(l);
    return () => listeners.delete(l);
  },
};

/** Re-renders on every session change. */
export function useSession(): { info: SessionInfo | null; canWrite: boolean; error: string | null } {
  const [, set] = useState(0);
  useEffect(() => session.subscribe(() => set((n) => n + 1)), []);
  return { info: session.info(), canWrite: session.canWrite(), error: session.error() };
}

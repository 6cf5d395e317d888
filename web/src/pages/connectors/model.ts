// Connector definitions as the API takes them, the form's flat state, and
// the conversions between them (secrets: a stored one reads as `***`; a
// secret left empty on edit is sent back as `***`, which keeps it).

export const REDACTED = "***";

export type Kind = "websocket" | "rest";
export type Venue = "binance" | "binance_futures" | "okx" | "finnhub";
export type State = "connecting" | "running" | "reconnecting" | "cooling_down" | "stopped" | "failed";

export interface ConnectorView {
  id: string;
  desired: "running" | "stopped";
  created_at: string;
  updated_at: string;
  name: string;
  kind: Kind;
  [k: string]: unknown;
}

export interface ConnectorStatus {
  connector_id: string;
  state: State;
  reconnects: number;
  gaps: number;
  backfilled?: number;
  messages_received: number;
  ticks: number;
  errors: number;
  last_message_at: number | null;
  last_error: string | null;
  cooldown_until: number | null;
  updated_at: number;
}

export interface PreviewView {
  status: number;
  body: string;
  body_bytes: number;
  truncated: boolean;
  body_error: string | null;
  records: number;
  mapped: number;
  rejected: number;
  ticks: { index: number; symbol: string; price: number; size: number; ts_event: number; side: string | null; trade_id: string | null }[];
  errors: { index: number; field: string; message: string }[];
}

export const VENUES: { id: Venue; label: string; channels: string[]; symbolHint: string }[] = [
  { id: "binance", label: "Binance spot", channels: ["trades", "agg_trades", "quotes"], symbolHint: "BTC-USDT, ETH-USDT" },
  { id: "binance_futures", label: "Binance USD-M futures", channels: ["trades", "agg_trades", "quotes"], symbolHint: "BTC-USDT-PERP" },
  { id: "okx", label: "OKX", channels: ["trades", "quotes"], symbolHint: "BTC-USDT, BTC-USDT-PERP" },
  { id: "finnhub", label: "Finnhub", channels: ["trades"], symbolHint: "AAPL, MSFT" },
];

export const CHANNELS: Record<string, string> = {
  trades: "Trades",
  agg_trades: "Aggregate trades",
  quotes: "Best bid/ask (quotes)",
};

export const AUTH_TYPES: { id: string; label: string }[] = [
  { id: "none", label: "None" },
  { id: "api_key", label: "API key (header or query)" },
  { id: "bearer", label: "Bearer token" },
  { id: "basic", label: "Basic (username and password)" },
  { id: "hmac_binance", label: "HMAC, Binance style" },
  { id: "hmac_okx", label: "HMAC, OKX style" },
];

/** The auth fields each type takes; `secret` ones go in password inputs. */
export const AUTH_FIELDS: Record<string, { key: string; label: string; secret: boolean; optional?: boolean }[]> = {
  none: [],
  api_key: [
    { key: "name", label: "Parameter or header name", secret: false },
    { key: "value", label: "Key", secret: true },
  ],
  bearer: [{ key: "token", label: "Token", secret: true }],
  basic: [
    { key: "username", label: "Username", secret: false },
    { key: "password", label: "Password", secret: true },
  ],
  hmac_binance: [
    { key: "api_key", label: "API key", secret: true },
    { key: "secret", label: "Secret", secret: true },
    { key: "recv_window", label: "recvWindow (ms, optional)", secret: false, optional: true },
  ],
  hmac_okx: [
    { key: "api_key", label: "API key", secret: true },
    { key: "secret", label: "Secret", secret: true },
    { key: "passphrase", label: "Passphrase", secret: true },
  ],
};

export const TS_UNITS = ["ms", "s", "us", "ns", "rfc3339"];

export interface HeaderRow {
  name: string;
  value: string;
  /** The stored definition had this header: empty value keeps it. */
  stored: boolean;
}

/** The form's flat state. */
export interface FormState {
  name: string;
  kind: Kind;
  start: boolean;
  // websocket
  venue: Venue;
  channels: string[];
  symbols: string;
  wsUrl: string;
  restUrl: string;
  idleTimeoutMs: string;
  archiveHours: string;
  finnhubToken: string;
  // rest
  url: string;
  method: string;
  pollingMs: string;
  timeoutMs: string;
  fixedSymbol: string;
  query: string;
  body: string;
  headers: HeaderRow[];
  authType: string;
  auth: Record<string, string>;
  mapping: Record<string, string>;
  /** Secret paths (`auth.token`, `headers.X-Key`) stored on the server. */
  stored: string[];
}

export function emptyForm(kind: Kind = "websocket"): FormState {
  return {
    name: "",
    kind,
    start: true,
    venue: "binance",
    channels: ["trades"],
    symbols: "",
    wsUrl: "",
    restUrl: "",
    idleTimeoutMs: "",
    archiveHours: "",
    finnhubToken: "",
    url: "",
    method: "GET",
    pollingMs: "1000",
    timeoutMs: "",
    fixedSymbol: "",
    query: "",
    body: "",
    headers: [],
    authType: "none",
    auth: {},
    mapping: { records: "$", symbol: "", price: "", size: "", ts: "", ts_unit: "ms", trade_id: "", side: "" },
    stored: [],
  };
}

const str = (v: unknown) => (v === undefined || v === null ? "" : typeof v === "string" ? v : JSON.stringify(v));

/** A stored connector's definition as the form's state. */
export function formFromConnector(c: ConnectorView): FormState {
  const f = emptyForm(c.kind);
  f.name = c.name;
  f.start = false;
  const stored: string[] = [];
  const auth = (c.auth ?? null) as Record<string, unknown> | null;
  if (c.kind === "websocket") {
    f.venue = (c.venue as Venue) ?? "binance";
    f.channels = Array.isArray(c.channels) ? (c.channels as string[]) : [];
    f.symbols = Array.isArray(c.symbols) ? (c.symbols as string[]).join(", ") : "";
    f.wsUrl = str(c.url);
    f.restUrl = str(c.rest_url);
    f.idleTimeoutMs = str(c.idle_timeout_ms);
    f.archiveHours = str((c.archive as { retention_hours?: number } | undefined)?.retention_hours);
    if (auth && auth.value === REDACTED) stored.push("auth.value");
  } else {
    f.url = str(c.url);
    f.method = str(c.method) || "GET";
    f.pollingMs = str(c.polling_interval_ms);
    f.timeoutMs = str(c.timeout_ms);
    f.fixedSymbol = str(c.symbol);
    const q = (c.query ?? {}) as Record<string, unknown>;
    f.query = Object.entries(q)
      .map(([k, v]) => `${k}=${str(v)}`)
      .join("\n");
    f.body = c.body === undefined || c.body === null ? "" : JSON.stringify(c.body, null, 2);
    const h = (c.headers ?? {}) as Record<string, unknown>;
    f.headers = Object.entries(h).map(([name, v]) => {
      const isStored = v === REDACTED;
      if (isStored) stored.push(`headers.${name}`);
      return { name, value: isStored ? "" : str(v), stored: isStored };
    });
    if (auth) {
      f.authType = str(auth.type) || "none";
      for (const [k, v] of Object.entries(auth)) {
        if (k === "type") continue;
        if (v === REDACTED) {
          stored.push(`auth.${k}`);
          f.auth[k] = "";
        } else f.auth[k] = str(v);
      }
    }
    const m = (c.mapping ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(f.mapping)) f.mapping[k] = str(m[k]) || (k === "ts_unit" ? "ms" : "");
  }
  f.stored = stored;
  return f;
}

export const splitList = (s: string) =>
  s
    .split(/[\s,;]+/)
    .map((x) => x.trim())
    .filter(Boolean);

/** A secret input's value for the API: typed, else `***` when stored. */
function secret(f: FormState, path: string, typed: string): string | undefined {
  if (typed !== "") return typed;
  return f.stored.includes(path) ? REDACTED : undefined;
}

export class FormProblem extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** The form's state as the API's definition. Throws [`FormProblem`] on what
 * cannot be sent at all (a body that is not JSON). */
export function definitionFromForm(f: FormState): Record<string, unknown> {
  const def: Record<string, unknown> = { name: f.name.trim(), kind: f.kind };
  const num = (field: string, s: string) => {
    if (s.trim() === "") return undefined;
    const n = Number(s);
    if (!Number.isFinite(n)) throw new FormProblem(field, `${field} must be a number`);
    return n;
  };
  if (f.kind === "websocket") {
    def.venue = f.venue;
    def.symbols = splitList(f.symbols).map((s) => s.toUpperCase());
    const allowed = VENUES.find((v) => v.id === f.venue)?.channels ?? [];
    def.channels = f.channels.filter((c) => allowed.includes(c));
    if (f.wsUrl.trim()) def.url = f.wsUrl.trim();
    if (f.restUrl.trim()) def.rest_url = f.restUrl.trim();
    const idle = num("idle_timeout_ms", f.idleTimeoutMs);
    if (idle !== undefined) def.idle_timeout_ms = idle;
    const hours = num("archive.retention_hours", f.archiveHours);
    if (hours !== undefined) def.archive = { retention_hours: hours };
    if (f.venue === "finnhub") {
      const token = secret(f, "auth.value", f.finnhubToken);
      if (token !== undefined) def.auth = { type: "api_key", in: "query", name: "token", value: token };
    }
    return def;
  }
  def.url = f.url.trim();
  def.method = f.method;
  const polling = num("polling_interval_ms", f.pollingMs);
  if (polling !== undefined) def.polling_interval_ms = polling;
  const timeout = num("timeout_ms", f.timeoutMs);
  if (timeout !== undefined) def.timeout_ms = timeout;
  if (f.fixedSymbol.trim()) def.symbol = f.fixedSymbol.trim().toUpperCase();
  const query: Record<string, string> = {};
  for (const line of f.query.split("\n")) {
    const t = line.trim();
    if (!t) continue;
    const i = t.indexOf("=");
    if (i <= 0) throw new FormProblem("query", `query: "${t}" is not name=value`);
    query[t.slice(0, i).trim()] = t.slice(i + 1).trim();
  }
  if (Object.keys(query).length) def.query = query;
  if (f.body.trim()) {
    try {
      def.body = JSON.parse(f.body);
    } catch (e) {
      throw new FormProblem("body", `body is not JSON: ${(e as Error).message}`);
    }
  }
  const headers: Record<string, string> = {};
  for (const h of f.headers) {
    const name = h.name.trim();
    if (!name) continue;
    const v = secret(f, `headers.${name}`, h.value);
    if (v === undefined) throw new FormProblem("headers", `headers.${name} needs a value`);
    headers[name] = v;
  }
  if (Object.keys(headers).length) def.headers = headers;
  if (f.authType !== "none") {
    const auth: Record<string, unknown> = { type: f.authType };
    for (const fd of AUTH_FIELDS[f.authType] ?? []) {
      const typed = (f.auth[fd.key] ?? "").trim();
      if (fd.secret) {
        const v = secret(f, `auth.${fd.key}`, typed);
        if (v !== undefined) auth[fd.key] = v;
      } else if (typed !== "") {
        auth[fd.key] = fd.key === "recv_window" ? num("auth.recv_window", typed) : typed;
      }
    }
    if (f.authType === "api_key") auth.in = f.auth.in || "header";
    def.auth = auth;
  }
  const mapping: Record<string, string> = {};
  for (const [k, v] of Object.entries(f.mapping)) if (v.trim()) mapping[k] = v.trim();
  def.mapping = mapping;
  return def;
}

/** Stored secrets left empty (sent as `***`): a preview cannot use them. */
export function keptSecrets(f: FormState): string[] {
  const out: string[] = [];
  if (f.kind === "rest") {
    for (const h of f.headers) if (h.stored && !h.value && h.name.trim()) out.push(`headers.${h.name.trim()}`);
    for (const fd of AUTH_FIELDS[f.authType] ?? [])
      if (fd.secret && !(f.auth[fd.key] ?? "").trim() && f.stored.includes(`auth.${fd.key}`)) out.push(`auth.${fd.key}`);
  }
  return out;
}

/** The form fields an API error's detail names (`mapping.price: …`,
 * `polling_interval_ms must be …`), with the sentence for each; the
 * sentences that name no known field are returned under `""`. */
export function fieldErrors(code: string, detail: string, known: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  if (code === "CONNECTOR_NAME_TAKEN") {
    out.name = detail;
    return out;
  }
  const add = (field: string, text: string) => {
    out[field] = out[field] ? `${out[field]}; ${text}` : text;
  };
  for (const part of detail.split(/;\s+(?=[a-z_]+(?:\.[\w-]+)*(?::|\s+(?:must|is|are)\b))/)) {
    const m = part.match(/^([a-z_]+(?:\.[\w-]+)*)(?::|\s+(?:must|is|are)\b)/);
    let field = m ? m[1] : "";
    // headers.X-Key → headers; auth.token stays when the form has it.
    while (field && !known.includes(field)) {
      const i = field.lastIndexOf(".");
      field = i > 0 ? field.slice(0, i) : "";
    }
    add(field, part);
  }
  return out;
}

/** A short description of where the connector reads from. */
export function sourceOf(c: ConnectorView): string {
  if (c.kind === "websocket") {
    const v = VENUES.find((x) => x.id === c.venue)?.label ?? String(c.venue ?? "websocket");
    const syms = Array.isArray(c.symbols) ? (c.symbols as string[]) : [];
    const shown = syms.slice(0, 3).join(", ") + (syms.length > 3 ? ` +${syms.length - 3}` : "");
    const chans = Array.isArray(c.channels) ? (c.channels as string[]).join("/") : "";
    return `${v} · ${chans} · ${shown}`;
  }
  let host = String(c.url ?? "");
  try {
    const u = new URL(host);
    host = u.host + u.pathname;
  } catch {
    /* keep as is */
  }
  return `REST ${String(c.method ?? "GET")} ${host} · every ${fmtInterval(Number(c.polling_interval_ms))}`;
}

export function fmtInterval(ms: number): string {
  if (!Number.isFinite(ms)) return "–";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${+(ms / 1000).toFixed(1)} s`;
  return `${+(ms / 60_000).toFixed(1)} min`;
}

export function stateClass(s: State | undefined): string {
  switch (s) {
    case "running":
      return "ok";
    case "failed":
      return "bad";
    case "connecting":
    case "reconnecting":
    case "cooling_down":
      return "warn";
    default:
      return "";
  }
}

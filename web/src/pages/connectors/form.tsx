// The create/edit form of a connector: a venue stream (Binance spot, USD-M
// futures, OKX, Finnhub) or a generic REST API with a JSONPath mapping and
// its preview (`POST /api/v1/connectors/test`). Secrets go in password
// inputs; on edit an empty secret keeps the stored one (sent as `***`).
import type { JSX } from "preact";
import { useMemo, useRef, useState } from "preact/hooks";
import { ApiError, post, put } from "../../lib/api";
import { fmtPrice, fmtTime, nsToMs } from "../../lib/format";
import { ErrorBox, Field, WriteHint, fieldAria } from "../../components/form-field";
import {
  AUTH_FIELDS,
  AUTH_TYPES,
  CHANNELS,
  FormProblem,
  TS_UNITS,
  VENUES,
  definitionFromForm,
  emptyForm,
  fieldErrors,
  formFromConnector,
  keptSecrets,
  type ConnectorView,
  type FormState,
  type Kind,
  type PreviewView,
} from "./model";

const MAPPING_FIELDS: { key: string; label: string; help: string; required?: boolean; placeholder?: string }[] = [
  { key: "records", label: "Records", help: "Where the records are: $.data[*], or $ for one object", required: true, placeholder: "$.data[*]" },
  { key: "price", label: "Price", help: "Required; a string (exact) or a number", required: true, placeholder: "$.price" },
  { key: "symbol", label: "Symbol", help: "Else the fixed symbol above", placeholder: "$.symbol" },
  { key: "size", label: "Size", help: "0 when absent", placeholder: "$.qty" },
  { key: "ts", label: "Event time", help: "Else the receive time", placeholder: "$.time" },
  { key: "trade_id", label: "Trade id", help: "A record seen again is stored once", placeholder: "$.id" },
  { key: "side", label: "Side", help: "buy / sell", placeholder: "$.side" },
];

/** Form field names (the API's paths) an error may point at. */
function knownFields(f: FormState): string[] {
  const common = ["name", "kind", "auth"];
  if (f.kind === "websocket")
    return [...common, "venue", "symbols", "channels", "url", "rest_url", "idle_timeout_ms", "archive", "archive.retention_hours", "auth.value"];
  return [
    ...common,
    "url",
    "method",
    "polling_interval_ms",
    "timeout_ms",
    "symbol",
    "query",
    "body",
    "headers",
    "auth.type",
    ...(AUTH_FIELDS[f.authType] ?? []).map((x) => `auth.${x.key}`),
    "mapping",
    ...MAPPING_FIELDS.map((m) => `mapping.${m.key}`),
    "mapping.ts_unit",
  ];
}

const idOf = (name: string) => `cf-${name.replace(/[^\w-]/g, "-")}`;
const val = (e: Event) => (e.currentTarget as HTMLInputElement).value;

export function ConnectorForm(props: {
  initial?: ConnectorView;
  defaultKind?: Kind;
  canWrite: boolean;
  onSaved: (c: ConnectorView, startError?: unknown) => void;
  onCancel: () => void;
}) {
  const editing = !!props.initial;
  const [f, setF] = useState<FormState>(() => (props.initial ? formFromConnector(props.initial) : emptyForm(props.defaultKind)));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [apiError, setApiError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [preview, setPreview] = useState<PreviewView | null>(null);
  const [previewError, setPreviewError] = useState<unknown>(null);
  const [previewBusy, setPreviewBusy] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);
  const venue = useMemo(() => VENUES.find((v) => v.id === f.venue) ?? VENUES[0], [f.venue]);

  const set = (patch: Partial<FormState>) => setF((x) => ({ ...x, ...patch }));
  const clearError = (name: string) =>
    errors[name] &&
    setErrors((e) => {
      const { [name]: _x, ...rest } = e;
      return rest;
    });

  const showErrors = (e: unknown) => {
    if (e instanceof FormProblem) {
      setErrors({ [e.field]: e.message });
      setApiError(null);
      focusField(e.field);
      return;
    }
    setApiError(e);
    if (e instanceof ApiError) {
      const fe = fieldErrors(e.code, e.detail, knownFields(f));
      const { "": _general, ...byField } = fe;
      setErrors(byField);
      const first = Object.keys(byField)[0];
      if (first) focusField(first);
    } else setErrors({});
  };

  const focusField = (name: string) =>
    requestAnimationFrame(() => {
      const el = formRef.current?.querySelector<HTMLElement>(`[name="${CSS.escape(name)}"]`);
      el?.focus();
    });

  const submit = async (ev: Event) => {
    ev.preventDefault();
    if (!props.canWrite || busy) return;
    setBusy(true);
    setErrors({});
    setApiError(null);
    try {
      const def = definitionFromForm(f);
      const saved = editing
        ? await put<ConnectorView>(`/api/v1/connectors/${props.initial!.id}`, def)
        : await post<ConnectorView>("/api/v1/connectors", def);
      let startError: unknown = undefined;
      let result = saved;
      if (!editing && f.start) {
        try {
          result = await post<ConnectorView>(`/api/v1/connectors/${saved.id}/start`);
        } catch (e) {
          startError = e;
        }
      }
      props.onSaved(result, startError);
    } catch (e) {
      showErrors(e);
    } finally {
      setBusy(false);
    }
  };

  const runPreview = async () => {
    if (!props.canWrite) return;
    setPreviewBusy(true);
    setPreviewError(null);
    setPreview(null);
    try {
      const def = definitionFromForm(f);
      if (!def.name) def.name = "preview";
      setPreview(await post<PreviewView>("/api/v1/connectors/test", def));
    } catch (e) {
      if (e instanceof FormProblem) showErrors(e);
      else {
        setPreviewError(e);
        if (e instanceof ApiError) {
          const { "": _general, ...byField } = fieldErrors(e.code, e.detail, knownFields(f));
          setErrors(byField);
        }
      }
    } finally {
      setPreviewBusy(false);
    }
  };

  /** Props of a text-like input bound to a form-state key. */
  const input = (name: string, value: string, onValue: (v: string) => void, help = false): JSX.InputHTMLAttributes<HTMLInputElement> => ({
    id: idOf(name),
    name,
    value,
    onInput: (e: Event) => {
      onValue(val(e));
      clearError(name);
    },
    ...fieldAria(idOf(name), { help, error: errors[name] }),
  });

  const kept = keptSecrets(f);
  const secretPlaceholder = (path: string) => (f.stored.includes(path) ? "•••••• stored; leave empty to keep" : "");
  const disabledWrite = !props.canWrite;

  return (
    <div class={`cf-layout${f.kind === "rest" ? " cf-with-preview" : ""}`}>
      <form ref={formRef} class="panel cf-form" onSubmit={submit} noValidate aria-label={editing ? `Edit connector ${props.initial!.name}` : "New connector"}>
        <fieldset>
          <legend>Connector</legend>
          <div class="form-row">
            <Field id={idOf("name")} label="Name" error={errors.name} help="Unique; the source name of a REST connector's ticks">
              <input {...input("name", f.name, (v) => set({ name: v }), true)} required maxLength={64} autocomplete="off" placeholder="binance-btc" data-testid="connector-name" />
            </Field>
            <Field id={idOf("kind")} label="Type" error={errors.kind}>
              <select
                id={idOf("kind")}
                name="kind"
                value={f.kind}
                disabled={editing}
                onChange={(e) => {
                  set({ kind: val(e) as Kind });
                  setErrors({});
                  setApiError(null);
                }}
                data-testid="connector-kind"
              >
                <option value="websocket">Venue stream (WebSocket)</option>
                <option value="rest">Generic REST API (JSONPath mapping)</option>
              </select>
            </Field>
          </div>
          {editing && <p class="field-help">The type of a connector cannot change; create another one instead.</p>}
        </fieldset>

        {f.kind === "websocket" ? (
          <fieldset>
            <legend>Venue stream</legend>
            <div class="form-row">
              <Field id={idOf("venue")} label="Venue" error={errors.venue}>
                <select
                  id={idOf("venue")}
                  name="venue"
                  value={f.venue}
                  onChange={(e) => {
                    const v = VENUES.find((x) => x.id === val(e)) ?? VENUES[0];
                    const channels = f.channels.filter((c) => v.channels.includes(c));
                    set({ venue: v.id, channels: channels.length ? channels : [v.channels[0]] });
                    clearError("venue");
                  }}
                >
                  {VENUES.map((v) => (
                    <option value={v.id}>{v.label}</option>
                  ))}
                </select>
              </Field>
              <Field id={idOf("symbols")} label="Symbols" error={errors.symbols} help={`Canonical symbols, comma separated: ${venue.symbolHint}`}>
                <input {...input("symbols", f.symbols, (v) => set({ symbols: v }), true)} placeholder={venue.symbolHint} autocomplete="off" spellcheck={false} />
              </Field>
            </div>
            <fieldset class="cf-channels" aria-describedby={errors.channels ? `${idOf("channels")}-error` : undefined}>
              <legend>Channels</legend>
              {venue.channels.map((c) => (
                <label class="inline">
                  <input
                    type="checkbox"
                    name="channels"
                    value={c}
                    checked={f.channels.includes(c)}
                    onChange={(e) => {
                      const on = (e.currentTarget as HTMLInputElement).checked;
                      set({ channels: on ? [...f.channels, c] : f.channels.filter((x) => x !== c) });
                      clearError("channels");
                    }}
                  />
                  {CHANNELS[c] ?? c} <code class="muted">{c}</code>
                </label>
              ))}
              {errors.channels && (
                <div class="ff-error" id={`${idOf("channels")}-error`} role="alert">
                  {errors.channels}
                </div>
              )}
            </fieldset>
            {(f.venue === "binance" || f.venue === "binance_futures") && f.channels.includes("trades") && f.channels.includes("agg_trades") && (
              <p class="field-help">With both trades and aggregate trades, trade-id gaps are not checked (only with exactly one of them).</p>
            )}
            {f.venue === "finnhub" && (
              <Field
                id={idOf("auth.value")}
                label="Finnhub API token"
                error={errors["auth.value"] ?? errors.auth}
                help={f.stored.includes("auth.value") ? "Stored; leave empty to keep it" : "Sent as the token query parameter; stored encrypted, never shown again"}
              >
                <input
                  {...input("auth.value", f.finnhubToken, (v) => set({ finnhubToken: v }), true)}
                  type="password"
                  autocomplete="new-password"
                  placeholder={secretPlaceholder("auth.value")}
                />
              </Field>
            )}
            <details class="cf-advanced" open={!!(f.wsUrl || f.restUrl || f.idleTimeoutMs || f.archiveHours || errors.url || errors.rest_url || errors.idle_timeout_ms || errors["archive.retention_hours"])}>
              <summary>Advanced: endpoint, backfill, archive</summary>
              <div class="form-row">
                <Field id={idOf("url")} label="Stream URL" error={errors.url} help="Replaces the venue's public endpoint (a mock, proxy, testnet)">
                  <input {...input("url", f.wsUrl, (v) => set({ wsUrl: v }), true)} type="url" placeholder="wss://…" spellcheck={false} />
                </Field>
                <Field id={idOf("rest_url")} label="REST URL for gap backfill" error={errors.rest_url} help="Default: the venue's, unless the stream URL is changed">
                  <input {...input("rest_url", f.restUrl, (v) => set({ restUrl: v }), true)} type="url" placeholder="https://…" spellcheck={false} />
                </Field>
              </div>
              <div class="form-row">
                <Field id={idOf("idle_timeout_ms")} label="Idle timeout (ms)" error={errors.idle_timeout_ms} help="1000 to 600000; default 60000">
                  <input {...input("idle_timeout_ms", f.idleTimeoutMs, (v) => set({ idleTimeoutMs: v }), true)} type="number" min={1000} max={600000} step={1000} placeholder="60000" />
                </Field>
                <Field id={idOf("archive.retention_hours")} label="Raw archive (hours)" error={errors["archive.retention_hours"] ?? errors.archive} help="Keep every frame for N hours (1 to 8784); empty: no archive">
                  <input {...input("archive.retention_hours", f.archiveHours, (v) => set({ archiveHours: v }), true)} type="number" min={1} max={8784} />
                </Field>
              </div>
            </details>
          </fieldset>
        ) : (
          <>
            <fieldset>
              <legend>Request</legend>
              <div class="form-row">
                <Field id={idOf("method")} label="Method" error={errors.method} class="cf-narrow">
                  <select id={idOf("method")} name="method" value={f.method} onChange={(e) => set({ method: val(e) })}>
                    {["GET", "POST", "PUT", "DELETE"].map((m) => (
                      <option>{m}</option>
                    ))}
                  </select>
                </Field>
                <Field id={idOf("url")} label="URL" error={errors.url} class="cf-wide">
                  <input {...input("url", f.url, (v) => set({ url: v }))} type="url" required placeholder="https://api.example.com/v1/trades" spellcheck={false} />
                </Field>
              </div>
              <div class="form-row">
                <Field id={idOf("polling_interval_ms")} label="Poll every (ms)" error={errors.polling_interval_ms} help="100 to 60000">
                  <input {...input("polling_interval_ms", f.pollingMs, (v) => set({ pollingMs: v }), true)} type="number" min={100} max={60000} step={100} required />
                </Field>
                <Field id={idOf("symbol")} label="Fixed symbol" error={errors.symbol} help="Every record's symbol when the mapping has none">
                  <input {...input("symbol", f.fixedSymbol, (v) => set({ fixedSymbol: v }), true)} placeholder="BTC-USDT" autocomplete="off" spellcheck={false} />
                </Field>
                <Field id={idOf("timeout_ms")} label="Timeout (ms)" error={errors.timeout_ms} help="100 to 60000; default 10000">
                  <input {...input("timeout_ms", f.timeoutMs, (v) => set({ timeoutMs: v }), true)} type="number" min={100} max={60000} placeholder="10000" />
                </Field>
              </div>
              <details class="cf-advanced" open={!!(f.query || f.body || f.headers.length || errors.query || errors.body || errors.headers)}>
                <summary>Query, body and headers</summary>
                <div class="form-row">
                  <Field id={idOf("query")} label="Query parameters" error={errors.query} help="One name=value a line">
                    <textarea id={idOf("query")} name="query" rows={3} value={f.query} onInput={(e) => set({ query: val(e) })} spellcheck={false} {...fieldAria(idOf("query"), { help: true, error: errors.query })} />
                  </Field>
                  <Field id={idOf("body")} label="JSON body" error={errors.body} help="Sent as application/json">
                    <textarea id={idOf("body")} name="body" rows={3} value={f.body} onInput={(e) => set({ body: val(e) })} spellcheck={false} {...fieldAria(idOf("body"), { help: true, error: errors.body })} />
                  </Field>
                </div>
                <fieldset class="cf-headers">
                  <legend>Headers (values are secrets: stored encrypted, never shown again)</legend>
                  {f.headers.length === 0 && <p class="muted cf-none">No headers.</p>}
                  {f.headers.map((h, i) => (
                    <div class="cf-header-row">
                      <label class="sr-only" for={`cf-header-name-${i}`}>
                        Header {i + 1} name
                      </label>
                      <input
                        id={`cf-header-name-${i}`}
                        name={`headers.${i}.name`}
                        placeholder="X-Api-Key"
                        value={h.name}
                        spellcheck={false}
                        onInput={(e) => set({ headers: f.headers.map((x, j) => (j === i ? { ...x, name: val(e), stored: false } : x)) })}
                      />
                      <label class="sr-only" for={`cf-header-value-${i}`}>
                        Header {i + 1} value
                      </label>
                      <input
                        id={`cf-header-value-${i}`}
                        name={`headers.${i}.value`}
                        type="password"
                        autocomplete="new-password"
                        placeholder={h.stored ? "•••••• stored; leave empty to keep" : "value"}
                        value={h.value}
                        onInput={(e) => set({ headers: f.headers.map((x, j) => (j === i ? { ...x, value: val(e) } : x)) })}
                      />
                      <button type="button" class="link" onClick={() => set({ headers: f.headers.filter((_, j) => j !== i) })} aria-label={`Remove header ${h.name || i + 1}`}>
                        Remove
                      </button>
                    </div>
                  ))}
                  <button type="button" onClick={() => set({ headers: [...f.headers, { name: "", value: "", stored: false }] })}>
                    Add header
                  </button>
                  {errors.headers && (
                    <div class="ff-error" role="alert">
                      {errors.headers}
                    </div>
                  )}
                </fieldset>
              </details>
            </fieldset>

            <fieldset>
              <legend>Authentication</legend>
              <div class="form-row">
                <Field id={idOf("auth.type")} label="Type" error={errors["auth.type"] ?? errors.auth}>
                  <select
                    id={idOf("auth.type")}
                    name="auth.type"
                    value={f.authType}
                    onChange={(e) => {
                      set({ authType: val(e) });
                      clearError("auth");
                    }}
                  >
                    {AUTH_TYPES.map((a) => (
                      <option value={a.id}>{a.label}</option>
                    ))}
                  </select>
                </Field>
                {f.authType === "api_key" && (
                  <Field id={idOf("auth.in")} label="Sent in">
                    <select id={idOf("auth.in")} name="auth.in" value={f.auth.in || "header"} onChange={(e) => set({ auth: { ...f.auth, in: val(e) } })}>
                      <option value="header">a header</option>
                      <option value="query">the query</option>
                    </select>
                  </Field>
                )}
              </div>
              {(AUTH_FIELDS[f.authType] ?? []).length > 0 && (
                <div class="form-row">
                  {(AUTH_FIELDS[f.authType] ?? []).map((fd) => {
                    const name = `auth.${fd.key}`;
                    const stored = fd.secret && f.stored.includes(name);
                    return (
                      <Field
                        id={idOf(name)}
                        label={fd.label}
                        error={errors[name]}
                        help={fd.secret ? (stored ? "Stored; leave empty to keep it" : "Stored encrypted, never shown again") : undefined}
                      >
                        <input
                          {...input(name, f.auth[fd.key] ?? "", (v) => set({ auth: { ...f.auth, [fd.key]: v } }), !!fd.secret)}
                          type={fd.secret ? "password" : fd.key === "recv_window" ? "number" : "text"}
                          autocomplete={fd.secret ? "new-password" : "off"}
                          placeholder={fd.secret ? secretPlaceholder(name) : ""}
                          spellcheck={false}
                        />
                      </Field>
                    );
                  })}
                </div>
              )}
            </fieldset>

            <fieldset>
              <legend>Field mapping (JSONPath)</legend>
              <div class="cf-mapping">
                {MAPPING_FIELDS.map((m) => {
                  const name = `mapping.${m.key}`;
                  return (
                    <Field id={idOf(name)} label={`${m.label}${m.required ? " *" : ""}`} error={errors[name]} help={m.help}>
                      <input
                        {...input(name, f.mapping[m.key] ?? "", (v) => set({ mapping: { ...f.mapping, [m.key]: v } }), true)}
                        class="mono"
                        placeholder={m.placeholder}
                        spellcheck={false}
                        autocomplete="off"
                        required={m.required}
                      />
                    </Field>
                  );
                })}
                <Field id={idOf("mapping.ts_unit")} label="Time unit" error={errors["mapping.ts_unit"]} help="Of the event time">
                  <select id={idOf("mapping.ts_unit")} name="mapping.ts_unit" value={f.mapping.ts_unit || "ms"} onChange={(e) => set({ mapping: { ...f.mapping, ts_unit: val(e) } })}>
                    {TS_UNITS.map((u) => (
                      <option value={u}>{u}</option>
                    ))}
                  </select>
                </Field>
              </div>
              {errors.mapping && (
                <div class="ff-error" role="alert">
                  {errors.mapping}
                </div>
              )}
            </fieldset>
          </>
        )}

        <ErrorBox error={apiError} testid="connector-form-error" title={editing ? "Could not save the connector" : "Could not create the connector"} />

        {editing && props.initial!.desired === "running" && <p class="field-help">Saving restarts the running connector with the new definition.</p>}
        <div class="cf-actions">
          {!editing && (
            <label class="inline">
              <input type="checkbox" name="start" checked={f.start} onChange={(e) => set({ start: (e.currentTarget as HTMLInputElement).checked })} />
              Start collecting once created
            </label>
          )}
          <span class="cf-spacer" />
          <WriteHint canWrite={props.canWrite} id="cf-ff-write-hint" />
          <button type="button" onClick={props.onCancel}>
            Cancel
          </button>
          {f.kind === "rest" && (
            <button type="button" onClick={runPreview} disabled={disabledWrite || previewBusy} aria-describedby={disabledWrite ? "cf-ff-write-hint" : undefined} data-testid="connector-test">
              {previewBusy ? "Testing…" : "Test mapping"}
            </button>
          )}
          <button type="submit" class="primary" disabled={disabledWrite || busy} aria-describedby={disabledWrite ? "cf-ff-write-hint" : undefined} data-testid="connector-submit">
            {busy ? "Saving…" : editing ? "Save changes" : "Create connector"}
          </button>
        </div>
      </form>

      {f.kind === "rest" && (
        <aside class="panel cf-preview" aria-label="Mapping preview" aria-live="polite" aria-busy={previewBusy}>
          <h2>Mapping preview</h2>
          {kept.length > 0 && (
            <p class="ff-warn">
              Stored secrets ({kept.join(", ")}) cannot be used by a preview: they are sent as <code>***</code>. Type them again to test with them.
            </p>
          )}
          {!preview && !previewError && !previewBusy && (
            <p class="muted">
              <strong>Test mapping</strong> fetches the URL once and shows what the mapping extracts. Nothing is stored.
            </p>
          )}
          {previewBusy && <p class="muted">Fetching…</p>}
          <ErrorBox error={previewError} testid="connector-preview-error" title="The preview failed" />
          {preview && <PreviewResult p={preview} />}
        </aside>
      )}
    </div>
  );
}

function PreviewResult({ p }: { p: PreviewView }) {
  const ok = p.status >= 200 && p.status < 300;
  const SHOW = 50;
  const hasSide = p.ticks.some((t) => t.side);
  const hasId = p.ticks.some((t) => t.trade_id);
  return (
    <div data-testid="connector-preview">
      <p class="cf-preview-summary">
        <span class={`badge ${ok ? "ok" : "bad"}`}>HTTP {p.status}</span>
        <span>
          {p.records} record{p.records === 1 ? "" : "s"} · <strong class={p.mapped ? "up" : undefined}>{p.mapped} mapped</strong> ·{" "}
          <span class={p.rejected ? "down" : undefined}>{p.rejected} rejected</span>
        </span>
        <span class="muted">{p.body_bytes.toLocaleString("en-US")} bytes</span>
      </p>
      {p.body_error && (
        <p class="ff-warn" role="alert">
          Mapping not applied: {p.body_error}
        </p>
      )}
      {!p.body_error && p.records === 0 && (
        <p class="ff-warn">
          <code>mapping.records</code> selected nothing in this answer: compare the Records path with the response body below.
        </p>
      )}
      {p.ticks.length > 0 && (
        <div class="table-wrap">
          <table class="cf-preview-table">
            <caption class="sr-only">Mapped records</caption>
            <thead>
              <tr>
                <th scope="col" class="num">#</th>
                <th scope="col">Symbol</th>
                <th scope="col" class="num">Price</th>
                <th scope="col" class="num">Size</th>
                <th scope="col">Event time (UTC)</th>
                {hasSide && <th scope="col">Side</th>}
                {hasId && <th scope="col">Trade id</th>}
              </tr>
            </thead>
            <tbody>
              {p.ticks.slice(0, SHOW).map((t) => (
                <tr>
                  <td class="num">{t.index}</td>
                  <td>{t.symbol}</td>
                  <td class="num">{fmtPrice(t.price)}</td>
                  <td class="num">{t.size}</td>
                  <td class="mono">{fmtTime(nsToMs(t.ts_event))}</td>
                  {hasSide && <td>{t.side ?? "–"}</td>}
                  {hasId && <td class="mono">{t.trade_id ?? "–"}</td>}
                </tr>
              ))}
            </tbody>
          </table>
          {p.ticks.length > SHOW && <p class="muted">…and {p.ticks.length - SHOW} more.</p>}
        </div>
      )}
      {p.errors.length > 0 && (
        <>
          <h3>Records that did not map</h3>
          <ul class="cf-preview-errors">
            {p.errors.slice(0, SHOW).map((e) => (
              <li>
                <span class="mono">#{e.index}</span> <code>{e.field}</code>: {e.message}
              </li>
            ))}
          </ul>
        </>
      )}
      <details class="cf-body">
        <summary>
          Response body{p.truncated ? " (cut to 64 KiB)" : ""}
        </summary>
        <pre>{prettyBody(p.body)}</pre>
      </details>
    </div>
  );
}

function prettyBody(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

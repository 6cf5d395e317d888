// Connectors: the list with each connector's live status (the realtime
// `connector-status` channel, seeded from the REST API), and the create
// (`/connectors/new`) and detail/edit (`/connectors/ID`) views.
import { useState } from "preact/hooks";
import { del, post } from "../lib/api";
import { fmtAge, fmtCompact, fmtTime, nsToMs } from "../lib/format";
import { navigate, useLocation } from "../lib/router";
import { useSession } from "../lib/session";
import { ErrorBox, WriteHint } from "../components/form-field";
import { ConnectorForm } from "./connectors/form";
import { rates, useConnectorStore, useNow, type ConnectorStore, type Live } from "./connectors/live";
import { sourceOf, stateClass, type ConnectorView, type Kind } from "./connectors/model";
import "./connectors.css";

export function Connectors() {
  const { path, params } = useLocation();
  const { canWrite } = useSession();
  const store = useConnectorStore();
  const [notice, setNotice] = useState<{ text: string; error?: unknown } | null>(null);

  const sub = path.replace(/^\/connectors\/?/, "").split("/")[0];
  if (sub === "new") {
    const kind = params.get("kind") === "rest" ? "rest" : "websocket";
    return (
      <section class="page connectors">
        <Breadcrumb current="New connector" />
        <h1>New connector</h1>
        <ConnectorForm
          key={`new-${kind}`}
          defaultKind={kind as Kind}
          canWrite={canWrite}
          onCancel={() => navigate("/connectors")}
          onSaved={(c, startError) => {
            store.upsert(c);
            void store.refreshStatus(c.id);
            setNotice(
              startError
                ? { text: `Created ${c.name}, but it could not be started.`, error: startError }
                : { text: `Created ${c.name}${c.desired === "running" ? " and started it" : ""}.` },
            );
            navigate("/connectors");
          }}
        />
      </section>
    );
  }
  if (sub) {
    const id = decodeURIComponent(sub);
    const c = store.connectors.find((x) => x.id === id || x.name === id);
    return (
      <section class="page connectors">
        <Breadcrumb current={c?.name ?? "Connector"} />
        {!c ? (
          store.loaded ? (
            store.error ? (
              <ErrorBox error={store.error} title="Could not load the connectors" />
            ) : (
              <>
                <h1>Connector not found</h1>
                <p>
                  No connector <code>{id}</code>. <a href="/connectors">Back to the connectors</a>.
                </p>
              </>
            )
          ) : (
            <p class="muted" aria-busy="true">
              Loading…
            </p>
          )
        ) : (
          <Detail c={c} store={store} canWrite={canWrite} onNotice={setNotice} notice={notice} />
        )}
      </section>
    );
  }
  return <List store={store} canWrite={canWrite} notice={notice} onNotice={setNotice} />;
}

function Breadcrumb({ current }: { current: string }) {
  return (
    <nav class="crumbs" aria-label="Breadcrumb">
      <a href="/connectors">Connectors</a> <span aria-hidden="true">/</span> <span aria-current="page">{current}</span>
    </nav>
  );
}

function Notice({ notice, onClose }: { notice: { text: string; error?: unknown } | null; onClose: () => void }) {
  if (!notice) return null;
  return notice.error ? (
    <ErrorBox error={notice.error} title={notice.text} onDismiss={onClose} />
  ) : (
    <div class="ff-notice" role="status">
      <span>{notice.text}</span>
      <button type="button" class="link" onClick={onClose} aria-label="Dismiss">
        Dismiss
      </button>
    </div>
  );
}

const STATES = ["running", "connecting", "reconnecting", "cooling_down", "failed", "stopped"];

function List(props: { store: ConnectorStore; canWrite: boolean; notice: { text: string; error?: unknown } | null; onNotice: (n: { text: string; error?: unknown } | null) => void }) {
  const { store, canWrite } = props;
  const now = useNow(1000);
  const [filter, setFilter] = useState("");
  const q = filter.trim().toLowerCase();
  const shown = store.connectors.filter((c) => !q || c.name.toLowerCase().includes(q) || sourceOf(c).toLowerCase().includes(q));
  const counts: Record<string, number> = {};
  for (const c of store.connectors) {
    const s = store.live[c.id]?.status.state ?? "unknown";
    counts[s] = (counts[s] ?? 0) + 1;
  }
  return (
    <section class="page connectors">
      <div class="ff-head">
        <h1>Connectors</h1>
        <div class="ff-head-actions">
          <WriteHint canWrite={canWrite} id="connectors-ff-write-hint" />
          <a
            href="/connectors/new"
            class="ff-button primary"
            data-testid="connector-new"
          >
            New connector
          </a>
        </div>
      </div>
      <Notice notice={props.notice} onClose={() => props.onNotice(null)} />
      <div class="toolbar">
        <label for="connector-filter" class="sr-only">
          Filter connectors
        </label>
        <input id="connector-filter" type="search" placeholder="Filter by name or source" value={filter} onInput={(e) => setFilter((e.currentTarget as HTMLInputElement).value)} />
        <span class="muted" aria-live="polite">
          {store.connectors.length} connector{store.connectors.length === 1 ? "" : "s"}
          {STATES.filter((s) => counts[s]).map((s) => (
            <span class="state-count">
              {" · "}
              {counts[s]} {s}
            </span>
          ))}
        </span>
        <span class="cn-live muted">Status is live (pushed by the server); ages tick every second.</span>
      </div>
      <ErrorBox error={store.error} title="Could not load the connectors" />
      <div class="panel table-panel">
        <div class="table-wrap">
          <table class="cn-table">
            <caption class="sr-only">Connectors and their live status</caption>
            <thead>
              <tr>
                <th scope="col">Connector</th>
                <th scope="col">State</th>
                <th scope="col" class="num">Last message</th>
                <th scope="col" class="num" title="Messages (frames or answers) a second, last 10 s">
                  Msg/s
                </th>
                <th scope="col" class="num" title="Ticks a second, last 10 s">
                  Ticks/s
                </th>
                <th scope="col" class="num" title="Ticks produced in total">
                  Ticks
                </th>
                <th scope="col" class="num">Reconn.</th>
                <th scope="col" class="num" title="Trade-id gaps seen">
                  Gaps
                </th>
                <th scope="col" class="num" title="Frames, answers or records rejected (decode errors)">
                  Errors
                </th>
                <th scope="col">Last error</th>
                <th scope="col" class="cn-actions-h">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {shown.map((c) => (
                <Row key={c.id} c={c} live={store.live[c.id]} now={now} store={store} canWrite={canWrite} onNotice={props.onNotice} />
              ))}
            </tbody>
          </table>
        </div>
        {store.loaded && store.connectors.length === 0 && !store.error && (
          <div class="empty">
            <p>No connectors yet.</p>
            <p>
              A connector collects from a venue's stream (Binance, OKX, Finnhub) or polls a REST API and maps its JSON into ticks.{" "}
              {canWrite ? <a href="/connectors/new">Create one</a> : "Sign in with a write key to create one."}
            </p>
          </div>
        )}
        {store.loaded && store.connectors.length > 0 && shown.length === 0 && <p class="empty">No connector matches “{filter}”.</p>}
        {!store.loaded && (
          <p class="empty" aria-busy="true">
            Loading…
          </p>
        )}
      </div>
    </section>
  );
}

function fmtRate(x: number | null): string {
  if (x === null) return "–";
  if (x === 0) return "0";
  if (x < 10) return x.toFixed(1);
  return fmtCompact(Math.round(x));
}

function lastAge(l: Live | undefined, now: number): { text: string; stale: boolean; title?: string } {
  const at = l?.status.last_message_at;
  if (at === null || at === undefined) return { text: "never", stale: false };
  const age = now - nsToMs(at);
  const running = l!.status.state !== "stopped";
  return { text: fmtAge(age), stale: running && age > 15_000, title: fmtTime(nsToMs(at)) + " UTC" };
}

function Row(props: { c: ConnectorView; live: Live | undefined; now: number; store: ConnectorStore; canWrite: boolean; onNotice: (n: { text: string; error?: unknown } | null) => void }) {
  const { c, live, now, canWrite } = props;
  const s = live?.status;
  const r = rates(live, now);
  const age = lastAge(live, now);
  return (
    <tr data-testid={`connector-${c.name}`} class={s?.state === "failed" ? "row-failed" : undefined}>
      <td class="cn-name">
        <a href={`/connectors/${c.id}`}>{c.name}</a>
        <div class="cn-source muted" title={sourceOf(c)}>
          {sourceOf(c)}
        </div>
      </td>
      <td>
        <StateBadge c={c} live={live} now={now} />
      </td>
      <td class={`num${age.stale ? " stale" : ""}`} title={age.title}>
        {age.text}
      </td>
      <td class="num">{fmtRate(r.msgs)}</td>
      <td class="num">{fmtRate(r.ticks)}</td>
      <td class="num" data-testid={`connector-ticks-${c.name}`} title={s ? `${s.ticks} ticks, ${s.messages_received} messages` : undefined}>
        {s ? fmtCompact(s.ticks) : "–"}
      </td>
      <td class="num">{s ? s.reconnects : "–"}</td>
      <td class="num" title={s?.backfilled ? `${s.backfilled} trades backfilled` : undefined}>
        {s ? s.gaps : "–"}
      </td>
      <td class={`num${s?.errors ? " down" : ""}`}>{s ? s.errors : "–"}</td>
      <td class="cn-error">
        {s?.last_error ? (
          <span class="error" title={s.last_error}>
            {s.last_error}
          </span>
        ) : (
          <span class="muted">–</span>
        )}
      </td>
      <td class="cn-actions">
        <Actions c={c} store={props.store} canWrite={canWrite} onNotice={props.onNotice} compact />
      </td>
    </tr>
  );
}

function StateBadge({ c, live, now }: { c: ConnectorView; live: Live | undefined; now: number }) {
  const s = live?.status;
  const state = s?.state;
  const pending = s && c.desired === "running" && state === "stopped";
  const cooldown = state === "cooling_down" && s?.cooldown_until ? Math.max(0, nsToMs(s.cooldown_until) - now) : null;
  return (
    <span class="cn-state">
      <span class={`badge ${stateClass(state)}`} data-testid={`connector-status-${c.name}`}>
        {state ?? "unknown"}
      </span>
      {pending && <span class="muted cn-sub">starting…</span>}
      {!pending && c.desired === "stopped" && state && state !== "stopped" && <span class="muted cn-sub">stopping…</span>}
      {cooldown !== null && <span class="muted cn-sub">for {fmtAge(cooldown)}</span>}
    </span>
  );
}

function Actions(props: { c: ConnectorView; store: ConnectorStore; canWrite: boolean; onNotice: (n: { text: string; error?: unknown } | null) => void; compact?: boolean; onDeleted?: () => void }) {
  const { c, store, canWrite } = props;
  const [busy, setBusy] = useState<string | null>(null);
  const [confirm, setConfirm] = useState(false);
  const running = c.desired === "running";
  const act = async (what: "start" | "stop" | "delete") => {
    setBusy(what);
    props.onNotice(null);
    try {
      if (what === "delete") {
        await del(`/api/v1/connectors/${c.id}`);
        store.remove(c.id);
        props.onNotice({ text: `Deleted ${c.name}.` });
        props.onDeleted?.();
      } else {
        const updated = await post<ConnectorView>(`/api/v1/connectors/${c.id}/${what}`);
        store.upsert(updated);
        void store.refreshStatus(c.id);
      }
    } catch (e) {
      props.onNotice({ text: `Could not ${what} ${c.name}.`, error: e });
    } finally {
      setBusy(null);
      setConfirm(false);
    }
  };
  const hint = canWrite ? undefined : "Sign in with a write key to change connectors";
  if (confirm) {
    return (
      <div class="cn-confirm" role="group" aria-label={`Confirm deleting ${c.name}`}>
        <span>{props.compact ? "Delete?" : `Delete ${c.name} with its status, data and secrets?`}</span>
        <button type="button" class="danger" onClick={() => act("delete")} disabled={!!busy} data-testid={`connector-delete-confirm-${c.name}`} autoFocus>
          {busy === "delete" ? "Deleting…" : "Delete"}
        </button>
        <button type="button" onClick={() => setConfirm(false)} disabled={!!busy}>
          Cancel
        </button>
      </div>
    );
  }
  return (
    <div class="cn-buttons">
      {running ? (
        <button type="button" onClick={() => act("stop")} disabled={!canWrite || !!busy} title={hint} aria-label={`Stop ${c.name}`} data-testid={`connector-stop-${c.name}`}>
          {busy === "stop" ? "Stopping…" : "Stop"}
        </button>
      ) : (
        <button type="button" onClick={() => act("start")} disabled={!canWrite || !!busy} title={hint} aria-label={`Start ${c.name}`} data-testid={`connector-start-${c.name}`}>
          {busy === "start" ? "Starting…" : "Start"}
        </button>
      )}
      {props.compact && (
        <a href={`/connectors/${c.id}`} class="ff-button" aria-label={`Edit ${c.name}`} data-testid={`connector-edit-${c.name}`}>
          Edit
        </a>
      )}
      <button type="button" class="danger" onClick={() => setConfirm(true)} disabled={!canWrite || !!busy} title={hint} aria-label={`Delete ${c.name}`} data-testid={`connector-delete-${c.name}`}>
        Delete
      </button>
    </div>
  );
}

function Detail(props: { c: ConnectorView; store: ConnectorStore; canWrite: boolean; notice: { text: string; error?: unknown } | null; onNotice: (n: { text: string; error?: unknown } | null) => void }) {
  const { c, store, canWrite } = props;
  const now = useNow(1000);
  const live = store.live[c.id];
  const s = live?.status;
  const r = rates(live, now);
  const age = lastAge(live, now);
  const stats: [string, string, string?][] = [
    ["Last message", age.text, age.title],
    ["Messages/s", fmtRate(r.msgs)],
    ["Ticks/s", fmtRate(r.ticks)],
    ["Messages", s ? s.messages_received.toLocaleString("en-US") : "–"],
    ["Ticks", s ? s.ticks.toLocaleString("en-US") : "–"],
    ["Reconnects", s ? s.reconnects.toLocaleString("en-US") : "–"],
    ["Gaps", s ? s.gaps.toLocaleString("en-US") : "–"],
    ["Backfilled", s ? (s.backfilled ?? 0).toLocaleString("en-US") : "–"],
    ["Errors", s ? s.errors.toLocaleString("en-US") : "–"],
  ];
  return (
    <>
      <div class="ff-head">
        <h1>
          {c.name} <StateBadge c={c} live={live} now={now} />
        </h1>
        <div class="ff-head-actions">
          <WriteHint canWrite={canWrite} />
          <Actions c={c} store={store} canWrite={canWrite} onNotice={props.onNotice} onDeleted={() => navigate("/connectors")} />
        </div>
      </div>
      <Notice notice={props.notice} onClose={() => props.onNotice(null)} />
      <div class="panel cn-detail-status" aria-label="Live status">
        <p class="cn-source">
          {sourceOf(c)} · wanted <strong>{c.desired}</strong> · created {fmtTime(Date.parse(c.created_at))} UTC · id <code>{c.id}</code>
        </p>
        <dl class="cn-stats">
          {stats.map(([k, v, title]) => (
            <div>
              <dt>{k}</dt>
              <dd class="num" title={title}>
                {v}
              </dd>
            </div>
          ))}
        </dl>
        {s?.last_error && (
          <p class="cn-last-error">
            <strong>Last error:</strong> <span class="error">{s.last_error}</span>
          </p>
        )}
      </div>
      <h2>Definition</h2>
      <ConnectorForm
        key={c.id}
        initial={c}
        canWrite={canWrite}
        onCancel={() => navigate("/connectors")}
        onSaved={(saved) => {
          store.upsert(saved);
          props.onNotice({ text: `Saved ${saved.name}.` });
          navigate("/connectors");
        }}
      />
    </>
  );
}

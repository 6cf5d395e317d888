// Polling jobs: the list (`GET /api/v1/polling-jobs`, refreshed every few
// seconds: jobs have no realtime channel), created with `POST
// /api/v1/prices/poll` (one job per symbol) and deleted one by one.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError, del, get, post } from "../lib/api";
import { fmtAge, fmtTime } from "../lib/format";
import { useSession } from "../lib/session";
import { ErrorBox, Field, WriteHint, fieldAria } from "../components/form-field";
import "./jobs.css";

interface Job {
  id: string;
  symbol: string;
  provider: string;
  interval: number;
  interval_ms: number;
  status: "active" | "deleted";
  created_at: string;
  run_count: number;
  error_count: number;
  last_run_at: string | null;
  last_error: string | null;
}

const REFRESH_MS = 3000;
const PROVIDERS = ["simulated", "finnhub", "yahoo"];

type Notice = { text: string; error?: unknown } | null;

function useJobs() {
  const [jobs, setJobs] = useState<Job[]>([]);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [at, setAt] = useState<number | null>(null);
  const inflight = useRef(false);

  const reload = useCallback(async () => {
    if (inflight.current) return;
    inflight.current = true;
    try {
      const r = await get<{ jobs: Job[] }>("/api/v1/polling-jobs");
      setJobs(r.jobs);
      setError(null);
      setAt(Date.now());
    } catch (e) {
      setError(e);
    } finally {
      inflight.current = false;
      setLoaded(true);
    }
  }, []);

  useEffect(() => {
    void reload();
    const t = window.setInterval(() => {
      if (document.visibilityState === "visible") void reload();
    }, REFRESH_MS);
    const onVisible = () => document.visibilityState === "visible" && void reload();
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      window.clearInterval(t);
      document.removeEventListener("visibilitychange", onVisible);
    };
  }, [reload]);

  return { jobs, loaded, error, at, reload, setJobs };
}

function useNow(ms = 1000): number {
  const [now, set] = useState(Date.now());
  useEffect(() => {
    const t = window.setInterval(() => set(Date.now()), ms);
    return () => window.clearInterval(t);
  }, [ms]);
  return now;
}

export function Jobs() {
  const { canWrite } = useSession();
  const { jobs, loaded, error, at, reload, setJobs } = useJobs();
  const [notice, setNotice] = useState<Notice>(null);
  const [filter, setFilter] = useState("");
  const now = useNow(1000);
  const q = filter.trim().toLowerCase();
  const shown = jobs.filter((j) => !q || j.symbol.toLowerCase().includes(q) || j.provider.toLowerCase().includes(q));
  const failing = jobs.filter((j) => j.last_error).length;

  return (
    <section class="page jobs">
      <div class="ff-head">
        <h1>Polling jobs</h1>
        <WriteHint canWrite={canWrite} id="jobs-write-hint" />
      </div>
      <p class="muted jobs-intro">
        A polling job asks a provider for a symbol's latest price on a fixed interval; the prices go through the same pipeline as streamed ticks.
      </p>
      <NewJob
        canWrite={canWrite}
        onCreated={(created) => {
          setJobs((list) => [...list.filter((j) => !created.some((c) => c.id === j.id)), ...created]);
          setNotice({ text: `Created ${created.length} job${created.length === 1 ? "" : "s"}: ${created.map((j) => j.symbol).join(", ")}.` });
          void reload();
        }}
      />
      {notice &&
        (notice.error ? (
          <ErrorBox error={notice.error} title={notice.text} onDismiss={() => setNotice(null)} />
        ) : (
          <div class="ff-notice" role="status">
            <span>{notice.text}</span>
            <button type="button" class="link" onClick={() => setNotice(null)}>
              Dismiss
            </button>
          </div>
        ))}
      <div class="toolbar jobs-toolbar">
        <label for="jobs-filter" class="sr-only">
          Filter jobs
        </label>
        <input id="jobs-filter" type="search" placeholder="Filter by symbol or provider" value={filter} onInput={(e) => setFilter((e.currentTarget as HTMLInputElement).value)} />
        <span class="muted">
          {jobs.length} job{jobs.length === 1 ? "" : "s"}
          {failing > 0 && <span class="down"> · {failing} with errors</span>}
        </span>
        <span class="jobs-refresh muted" aria-live="off">
          {at ? `Refreshed ${now - at < 1500 ? "just now" : `${fmtAge(now - at)} ago`} · every ${REFRESH_MS / 1000} s` : "Loading…"}
          <button type="button" class="link" onClick={() => void reload()}>
            Refresh
          </button>
        </span>
      </div>
      <ErrorBox error={error} title="Could not load the polling jobs" />
      <div class="panel jobs-table-panel">
        <div class="table-wrap">
          <table class="jobs-table">
            <caption class="sr-only">Polling jobs</caption>
            <thead>
              <tr>
                <th scope="col">Symbol</th>
                <th scope="col">Provider</th>
                <th scope="col" class="num">Interval</th>
                <th scope="col">Status</th>
                <th scope="col" class="num">Runs</th>
                <th scope="col" class="num">Errors</th>
                <th scope="col" class="num">Last run</th>
                <th scope="col" class="num">Next run</th>
                <th scope="col">Last error</th>
                <th scope="col" class="num">Created</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {shown.map((j) => (
                <JobRow
                  key={j.id}
                  j={j}
                  now={now}
                  canWrite={canWrite}
                  onDeleted={() => {
                    setJobs((list) => list.filter((x) => x.id !== j.id));
                    setNotice({ text: `Deleted the ${j.symbol} job.` });
                    void reload();
                  }}
                  onError={(e) => setNotice({ text: `Could not delete the ${j.symbol} job.`, error: e })}
                />
              ))}
            </tbody>
          </table>
        </div>
        {loaded && jobs.length === 0 && !error && <p class="empty">No polling jobs. Create one above.</p>}
        {loaded && jobs.length > 0 && shown.length === 0 && <p class="empty">No job matches “{filter}”.</p>}
        {!loaded && (
          <p class="empty" aria-busy="true">
            Loading…
          </p>
        )}
      </div>
    </section>
  );
}

function fmtSeconds(s: number): string {
  if (s < 60) return `${+s.toFixed(3)} s`;
  if (s < 3600) return `${+(s / 60).toFixed(2)} min`;
  return `${+(s / 3600).toFixed(2)} h`;
}

function JobRow(props: { j: Job; now: number; canWrite: boolean; onDeleted: () => void; onError: (e: unknown) => void }) {
  const { j, now, canWrite } = props;
  const [confirm, setConfirm] = useState(false);
  const [busy, setBusy] = useState(false);
  const last = j.last_run_at ? Date.parse(j.last_run_at) : null;
  const created = Date.parse(j.created_at);
  const next = (last ?? created) + j.interval_ms;
  const late = now - next > Math.max(5_000, j.interval_ms * 2);
  const remove = async () => {
    setBusy(true);
    try {
      await del(`/api/v1/polling-jobs/${j.id}`);
      props.onDeleted();
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) props.onDeleted();
      else props.onError(e);
    } finally {
      setBusy(false);
      setConfirm(false);
    }
  };
  return (
    <tr data-testid={`polling-job-${j.id}`} class={j.last_error ? "job-failing" : undefined}>
      <td class="job-symbol">
        <a href={`/symbols/${encodeURIComponent(j.symbol)}`}>{j.symbol}</a>
      </td>
      <td>{j.provider}</td>
      <td class="num">{fmtSeconds(j.interval)}</td>
      <td>
        <span class={`badge ${j.status === "active" ? (j.last_error ? "warn" : "ok") : ""}`}>{j.status}</span>
      </td>
      <td class="num">{j.run_count.toLocaleString("en-US")}</td>
      <td class={`num${j.error_count ? " down" : ""}`}>{j.error_count.toLocaleString("en-US")}</td>
      <td class="num" title={last ? `${fmtTime(last)} UTC` : undefined}>
        {last ? `${fmtAge(now - last)} ago` : <span class="muted">not yet</span>}
      </td>
      <td class={`num${late ? " stale" : ""}`} title={`${fmtTime(next)} UTC (estimated: last run + interval)`}>
        {next - now < 1000 ? (late ? `late ${fmtAge(now - next)}` : "due") : `in ${fmtAge(next - now)}`}
      </td>
      <td class="job-error">
        {j.last_error ? (
          <span class="error" title={j.last_error}>
            {j.last_error}
          </span>
        ) : (
          <span class="muted">–</span>
        )}
      </td>
      <td class="num muted" title={`${fmtTime(created)} UTC`}>
        {fmtAge(now - created)} ago
      </td>
      <td class="job-actions">
        {confirm ? (
          <span class="job-confirm" role="group" aria-label={`Confirm deleting the ${j.symbol} job`}>
            <span>Delete?</span>
            <button type="button" class="danger" onClick={remove} disabled={busy} data-testid={`polling-job-delete-confirm-${j.id}`} autoFocus>
              {busy ? "Deleting…" : "Delete"}
            </button>
            <button type="button" onClick={() => setConfirm(false)} disabled={busy}>
              Cancel
            </button>
          </span>
        ) : (
          <button
            type="button"
            class="danger"
            onClick={() => setConfirm(true)}
            disabled={!canWrite}
            title={canWrite ? undefined : "Sign in with a write key to delete jobs"}
            aria-label={`Delete the ${j.symbol} job`}
            data-testid={`polling-job-delete-${j.id}`}
          >
            Delete
          </button>
        )}
      </td>
    </tr>
  );
}

function NewJob(props: { canWrite: boolean; onCreated: (jobs: Job[]) => void }) {
  const [symbols, setSymbols] = useState("");
  const [interval, setIntervalText] = useState("5");
  const [provider, setProvider] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [fieldErr, setFieldErr] = useState<Record<string, string>>({});
  const formRef = useRef<HTMLFormElement>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!props.canWrite || busy) return;
    setError(null);
    setFieldErr({});
    const list = symbols
      .split(/[\s,;]+/)
      .map((s) => s.trim())
      .filter(Boolean);
    const iv = Number(interval);
    const local: Record<string, string> = {};
    if (!list.length) local.symbols = "Enter at least one symbol.";
    if (!interval.trim() || !Number.isFinite(iv) || iv <= 0) local.interval = "The interval is a number of seconds.";
    if (Object.keys(local).length) {
      setFieldErr(local);
      focus(Object.keys(local)[0]);
      return;
    }
    setBusy(true);
    try {
      const body: Record<string, unknown> = { symbols: list, interval: iv };
      if (provider.trim()) body.provider = provider.trim();
      const r = await post<{ jobs: Job[] }>("/api/v1/prices/poll", body);
      setSymbols("");
      props.onCreated(r.jobs);
    } catch (err) {
      setError(err);
      if (err instanceof ApiError) {
        const d = err.detail;
        const f = /symbol/i.test(d) ? "symbols" : /^interval/i.test(d) ? "interval" : /provider/i.test(d) ? "provider" : null;
        if (f) {
          setFieldErr({ [f]: d });
          focus(f);
        }
      }
    } finally {
      setBusy(false);
    }
  };
  const focus = (name: string) => requestAnimationFrame(() => formRef.current?.querySelector<HTMLElement>(`[name="${name}"]`)?.focus());

  return (
    <form ref={formRef} class="panel jobs-form" onSubmit={submit} noValidate aria-labelledby="jobs-form-title">
      <h2 id="jobs-form-title">New polling job</h2>
      <div class="jobs-form-row">
        <Field id="job-symbols" label="Symbols" error={fieldErr.symbols} help="Comma separated; one job per symbol" class="jobs-symbols">
          <input
            id="job-symbols"
            name="symbols"
            value={symbols}
            onInput={(e) => setSymbols((e.currentTarget as HTMLInputElement).value)}
            placeholder="AAPL, MSFT, BTC-USDT"
            autocomplete="off"
            spellcheck={false}
            required
            data-testid="polling-job-symbols"
            {...fieldAria("job-symbols", { help: true, error: fieldErr.symbols })}
          />
        </Field>
        <Field id="job-interval" label="Every (seconds)" error={fieldErr.interval} help="1 to 86400" class="jobs-interval">
          <input
            id="job-interval"
            name="interval"
            type="number"
            min={1}
            step="any"
            value={interval}
            onInput={(e) => setIntervalText((e.currentTarget as HTMLInputElement).value)}
            required
            data-testid="polling-job-interval"
            {...fieldAria("job-interval", { help: true, error: fieldErr.interval })}
          />
        </Field>
        <Field id="job-provider" label="Provider" error={fieldErr.provider} help="Empty: the server's default" class="jobs-provider">
          <input
            id="job-provider"
            name="provider"
            list="job-providers"
            value={provider}
            onInput={(e) => setProvider((e.currentTarget as HTMLInputElement).value)}
            placeholder="default"
            autocomplete="off"
            spellcheck={false}
            data-testid="polling-job-provider"
            {...fieldAria("job-provider", { help: true, error: fieldErr.provider })}
          />
          <datalist id="job-providers">
            {PROVIDERS.map((p) => (
              <option value={p} />
            ))}
          </datalist>
        </Field>
        <div class="jobs-submit">
          <button type="submit" class="primary" disabled={!props.canWrite || busy} aria-describedby={props.canWrite ? undefined : "jobs-write-hint"} data-testid="polling-job-submit">
            {busy ? "Creating…" : "Create jobs"}
          </button>
        </div>
      </div>
      <ErrorBox error={error} testid="polling-job-error" title="Could not create the jobs" />
    </form>
  );
}

// Persistent homology: upload a point cloud or distance matrix, run a
// Vietoris–Rips job on it, follow the jobs live (realtime `jobs` channel),
// and draw a finished job's diagram, barcode and landscape.
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, del, get, post, query, request } from "../lib/api";
import { fmtAge } from "../lib/format";
import { realtime } from "../lib/realtime";
import { useSession } from "../lib/session";
import { PlotCanvas, type DrawFn } from "../components/plot-canvas";
import { dimsOf, fmtVal, type Diagrams } from "../components/plot-core";
import { drawDiagram } from "../components/plot-diagram";
import { drawBarcode, MAX_BARS_PER_DIM } from "../components/plot-barcode";
import { drawLandscape, type Landscape } from "../components/plot-landscape";
import "./tda.css";

// ---- API shapes (docs/tda.md) ----

type JobStatus = "queued" | "running" | "succeeded" | "failed" | "canceled";

export interface TdaJob {
  id: string;
  kind: string;
  status: JobStatus;
  progress: number;
  stage: string;
  attempts: number;
  max_attempts: number;
  upload_id?: string;
  submitted_at: number;
  started_at: number | null;
  finished_at: number | null;
  updated_at: number;
  expires_at: number | null;
  error: { error_code: string; detail: string } | null;
  cancel_requested: boolean;
}

interface Upload {
  id: string;
  format: string;
  name?: string;
  size: number;
  sha256: string;
  points: number;
  dimension: number;
  created_at: number;
}

interface VrResult {
  diagrams: Diagrams;
  points?: number;
  max_dim?: number;
  duration_ms?: number;
  cached?: boolean;
  landscape?: Record<string, Landscape>;
}

const FORMATS: [string, string][] = [
  ["point-cloud", "Point cloud (rows of coordinates)"],
  ["distance-matrix", "Distance matrix (full square)"],
  ["lower-distance", "Lower-triangular distance matrix"],
  ["upper-distance", "Upper-triangular distance matrix"],
  ["sparse", "Sparse matrix (i j d triples)"],
  ["dipha", "DIPHA binary"],
  ["binary", "Ripser binary (float32 lower triangle)"],
];
const BINARY_FORMATS = new Set(["dipha", "binary"]);
const WRITE_HINT = "sign in with a write key";
const FINAL = new Set<JobStatus>(["succeeded", "failed", "canceled"]);
const PLOT_H = 330;

/** A format guessed from a file name's extension, when it is telling. */
function guessFormat(name: string): string | null {
  const n = name.toLowerCase();
  if (n.endsWith(".dipha")) return "dipha";
  if (n.endsWith(".bin")) return "binary";
  if (n.includes("lower_distance") || n.includes("lower-distance")) return "lower-distance";
  if (n.includes("upper_distance") || n.includes("upper-distance")) return "upper-distance";
  if (n.includes("sparse")) return "sparse";
  return null;
}

const shortId = (id: string) => id.slice(-8);

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function fmtClock(ns: number | null | undefined): string {
  if (!ns) return "–";
  const d = new Date(ns / 1e6);
  const today = new Date().toDateString() === d.toDateString();
  const time = d.toLocaleTimeString([], { hour12: false });
  return today ? time : `${d.toLocaleDateString()} ${time}`;
}

function jobDuration(j: TdaJob): string {
  if (!j.started_at) return "–";
  const end = j.finished_at ?? (FINAL.has(j.status) ? j.updated_at : Date.now() * 1e6);
  return fmtAge((end - j.started_at) / 1e6);
}

/** Whether `b` is at least as new as `a` (a finished job never goes back). */
function replaces(a: TdaJob | undefined, b: TdaJob): boolean {
  if (!a) return true;
  if (FINAL.has(a.status) && !FINAL.has(b.status)) return false;
  return b.updated_at >= a.updated_at;
}

function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.status ? `${e.detail} (${e.code})` : e.detail;
  return String(e);
}

// ---- the page ----

export function Tda() {
  const { canWrite } = useSession();
  const [jobs, setJobs] = useState<Map<string, TdaJob>>(new Map());
  const [listError, setListError] = useState<string | null>(null);
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [inputId, setInputId] = useState("");
  const [currentId, setCurrentId] = useState<string | null>(null);
  const [selectedId, setSelectedId] = useState<string | null>(null);
  const seenLive = useRef(new Set<string>());

  const upsert = useCallback((list: TdaJob[]) => {
    setJobs((prev) => {
      let next: Map<string, TdaJob> | null = null;
      for (const j of list) {
        if (!j || !j.id) continue;
        if (!replaces((next ?? prev).get(j.id), j)) continue;
        next ??= new Map(prev);
        next.set(j.id, j);
      }
      return next ?? prev;
    });
  }, []);

  const loadJobs = useCallback(async () => {
    try {
      const r = await get<{ jobs: TdaJob[] }>(`/api/v1/jobs${query({ limit: 100 })}`);
      upsert(r.jobs);
      setListError(null);
    } catch (e) {
      setListError(errorText(e));
    }
  }, [upsert]);

  const loadUploads = useCallback(async () => {
    try {
      const r = await get<{ uploads: Upload[] }>(`/api/v1/uploads${query({ limit: 100 })}`);
      setUploads(r.uploads);
      setInputId((cur) => cur || r.uploads[0]?.id || "");
    } catch {
      /* the upload panel says what went wrong when it matters */
    }
  }, []);

  // Live jobs over the realtime channel; the list is read again whenever the
  // socket (re)opens, and polled only while it is down.
  useEffect(() => {
    void loadJobs();
    void loadUploads();
    const unsub = realtime.subscribe("jobs", ["*"], (m) => {
      const j = m.data as TdaJob;
      if (j?.id) seenLive.current.add(j.id);
      upsert([j]);
    });
    let timer: number | undefined;
    const onState = (s: string) => {
      window.clearInterval(timer);
      timer = undefined;
      if (s === "open") void loadJobs();
      else timer = window.setInterval(() => void loadJobs(), 3000);
    };
    const offState = realtime.onState(onState);
    if (realtime.state !== "open") onState(realtime.state);
    return () => {
      unsub();
      offState();
      window.clearInterval(timer);
    };
  }, [loadJobs, loadUploads, upsert]);

  const onUploaded = (u: Upload) => {
    setUploads((prev) => [u, ...prev.filter((x) => x.id !== u.id)]);
    setInputId(u.id);
  };

  const onSubmitted = (j: TdaJob) => {
    upsert([j]);
    setCurrentId(j.id);
    setSelectedId(j.id);
    // A safety net, not polling: if the socket says nothing of this job
    // (e.g. it was down at submit time), read it once.
    window.setTimeout(() => {
      if (!seenLive.current.has(j.id)) void get<TdaJob>(`/api/v1/jobs/${j.id}`).then((x) => upsert([x]), () => {});
    }, 2500);
  };

  const cancel = async (id: string) => {
    try {
      upsert([await del<TdaJob>(`/api/v1/jobs/${id}`)]);
    } catch (e) {
      setListError(`Cancel ${shortId(id)}: ${errorText(e)}`);
    }
  };

  const sorted = useMemo(() => [...jobs.values()].sort((a, b) => b.submitted_at - a.submitted_at), [jobs]);
  const uploadsById = useMemo(() => new Map(uploads.map((u) => [u.id, u])), [uploads]);
  const current = currentId ? jobs.get(currentId) ?? null : null;
  const selected = selectedId ? jobs.get(selectedId) ?? null : null;

  return (
    <section class="page tda-page" aria-labelledby="tda-title">
      <div class="tda-head">
        <h1 id="tda-title">Persistent homology</h1>
        {!canWrite && (
          <p class="tda-hint" id="tda-write-hint" role="note">
            Uploading, running and canceling jobs are writes: {WRITE_HINT}.
          </p>
        )}
      </div>
      <div class="tda-top">
        <UploadPanel canWrite={canWrite} onUploaded={onUploaded} />
        <RunPanel
          canWrite={canWrite}
          uploads={uploads}
          inputId={inputId}
          setInputId={setInputId}
          onSubmitted={onSubmitted}
          onRefreshUploads={loadUploads}
        />
        <CurrentPanel job={current} canWrite={canWrite} onCancel={cancel} onShow={() => current && setSelectedId(current.id)} />
      </div>
      <ResultPanel job={selected} />
      <JobsPanel
        jobs={sorted}
        error={listError}
        uploads={uploadsById}
        selectedId={selectedId}
        onSelect={setSelectedId}
        onCancel={cancel}
        canWrite={canWrite}
      />
    </section>
  );
}

// ---- 1. upload ----

interface UploadError {
  code: string;
  detail: string;
  where?: string;
  excerpt?: { line: string; column: number };
}

function UploadPanel({ canWrite, onUploaded }: { canWrite: boolean; onUploaded: (u: Upload) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [format, setFormat] = useState("point-cloud");
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<Upload | null>(null);
  const [err, setErr] = useState<UploadError | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!file || !canWrite) return;
    setBusy(true);
    setErr(null);
    setDone(null);
    try {
      const u = await request<Upload>(`/api/v1/uploads${query({ format, name: file.name })}`, {
        method: "POST",
        raw: file,
        headers: { "Content-Type": "application/octet-stream" },
      });
      setDone(u);
      onUploaded(u);
    } catch (ex) {
      if (ex instanceof ApiError) {
        const out: UploadError = { code: ex.code, detail: ex.detail };
        const lc = ex.detail.match(/line (\d+), column (\d+)/);
        const off = ex.detail.match(/(?:byte|offset) (\d+)/);
        if (lc) {
          const line = Number(lc[1]);
          const column = Number(lc[2]);
          out.where = `Line ${line}, column ${column}`;
          if (!BINARY_FORMATS.has(format) && file.size < 8 * 1024 * 1024) {
            try {
              const text = await file.text();
              const l = text.split(/\r?\n/)[line - 1];
              if (l !== undefined) out.excerpt = { line: l.length > 160 ? l.slice(0, 160) + "…" : l, column };
            } catch {
              /* no excerpt */
            }
          }
        } else if (off) out.where = `Byte offset ${off[1]}`;
        setErr(out);
      } else setErr({ code: "ERROR", detail: String(ex) });
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="panel tda-card" onSubmit={submit} aria-labelledby="tda-up-h">
      <h2 id="tda-up-h">
        <span class="step">1</span> Upload an input
      </h2>
      <label for="tda-file">File</label>
      <input
        id="tda-file"
        type="file"
        data-testid="tda-file"
        onChange={(e) => {
          const f = (e.target as HTMLInputElement).files?.[0] ?? null;
          setFile(f);
          setErr(null);
          setDone(null);
          const g = f ? guessFormat(f.name) : null;
          if (g) setFormat(g);
        }}
      />
      <div class="tda-row">
        <div class="grow">
          <label for="tda-format">Format</label>
          <select id="tda-format" data-testid="tda-format" value={format} onChange={(e) => setFormat((e.target as HTMLSelectElement).value)}>
            {FORMATS.map(([v, l]) => (
              <option value={v}>{l}</option>
            ))}
          </select>
        </div>
        <button
          type="submit"
          class="primary"
          data-testid="tda-upload"
          disabled={!canWrite || !file || busy}
          aria-describedby={!canWrite ? "tda-write-hint" : undefined}
          title={!canWrite ? WRITE_HINT : undefined}
        >
          {busy ? "Uploading…" : "Upload"}
        </button>
      </div>
      <div class="tda-outcome" aria-live="polite">
        {done && (
          <dl class="tda-facts" data-testid="tda-upload-result">
            <dt>Upload</dt>
            <dd class="mono" title={done.id}>
              {done.id}
            </dd>
            <dt>Size</dt>
            <dd>{fmtBytes(done.size)}</dd>
            <dt>Points</dt>
            <dd>
              {done.points.toLocaleString()}
              {done.dimension ? ` × ${done.dimension} coordinates` : " (matrix rows)"}
            </dd>
          </dl>
        )}
        {err && (
          <div class="tda-error" role="alert" data-testid="tda-upload-error">
            <strong>{err.where ?? "Upload refused"}</strong> <span class="muted">{err.code}</span>
            <div>{err.detail}</div>
            {err.excerpt && (
              <pre class="tda-excerpt" aria-label="The offending line">
                {err.excerpt.line}
                {"\n"}
                {" ".repeat(Math.max(0, err.excerpt.column - 1))}^
              </pre>
            )}
          </div>
        )}
        {!done && !err && (
          <p class="field-help">
            Text point clouds: one point per line, coordinates separated by commas or spaces. Parse errors name the line and
            column.
          </p>
        )}
      </div>
    </form>
  );
}

// ---- 2. run ----

function RunPanel({
  canWrite,
  uploads,
  inputId,
  setInputId,
  onSubmitted,
  onRefreshUploads,
}: {
  canWrite: boolean;
  uploads: Upload[];
  inputId: string;
  setInputId: (id: string) => void;
  onSubmitted: (j: TdaJob) => void;
  onRefreshUploads: () => void;
}) {
  const [maxDim, setMaxDim] = useState("1");
  const [threshold, setThreshold] = useState("");
  const [modulus, setModulus] = useState("2");
  const [landscape, setLandscape] = useState(true);
  const [layers, setLayers] = useState("5");
  const [samples, setSamples] = useState("200");
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<string | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!inputId || !canWrite) return;
    const body: Record<string, unknown> = { kind: "vietoris-rips", upload_id: inputId, max_dim: Number(maxDim) };
    if (threshold.trim() !== "") body.threshold = Number(threshold);
    if (modulus.trim() !== "" && modulus !== "2") body.modulus = Number(modulus);
    if (landscape) {
      body.summaries = ["landscape"];
      body.landscape = { layers: Number(layers) || 5, samples: Number(samples) || 200 };
    }
    setBusy(true);
    setErr(null);
    try {
      onSubmitted(await post<TdaJob>("/api/v1/jobs", body));
    } catch (ex) {
      setErr(errorText(ex));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="panel tda-card" onSubmit={submit} aria-labelledby="tda-run-h">
      <h2 id="tda-run-h">
        <span class="step">2</span> Run Vietoris–Rips
      </h2>
      <label for="tda-input">Input</label>
      <select
        id="tda-input"
        data-testid="tda-input"
        value={inputId}
        onChange={(e) => setInputId((e.target as HTMLSelectElement).value)}
        onFocus={onRefreshUploads}
      >
        {!uploads.length && <option value="">No upload yet</option>}
        {uploads.map((u) => (
          <option value={u.id}>
            {u.name ?? shortId(u.id)} · {u.points.toLocaleString()} pts{u.dimension ? ` × ${u.dimension}` : ""} · {u.format}
          </option>
        ))}
      </select>
      <div class="tda-params">
        <div>
          <label for="tda-maxdim">Max dimension</label>
          <select id="tda-maxdim" value={maxDim} onChange={(e) => setMaxDim((e.target as HTMLSelectElement).value)}>
            {[0, 1, 2, 3, 4].map((d) => (
              <option value={String(d)}>H{d}</option>
            ))}
          </select>
        </div>
        <div>
          <label for="tda-threshold">Threshold</label>
          <input
            id="tda-threshold"
            type="number"
            min="0"
            step="any"
            inputMode="decimal"
            placeholder="enclosing radius"
            value={threshold}
            onInput={(e) => setThreshold((e.target as HTMLInputElement).value)}
          />
        </div>
        <div>
          <label for="tda-modulus">Modulus</label>
          <input
            id="tda-modulus"
            type="number"
            min="2"
            step="1"
            value={modulus}
            onInput={(e) => setModulus((e.target as HTMLInputElement).value)}
          />
        </div>
      </div>
      <fieldset class="tda-fieldset">
        <legend class="sr-only">Summary computed with the job</legend>
        <label class="inline">
          <input type="checkbox" checked={landscape} onChange={(e) => setLandscape((e.target as HTMLInputElement).checked)} />
          Landscape
        </label>
        <label class="inline">
          Layers
          <input
            class="tda-narrow"
            type="number"
            min="1"
            max="100"
            value={layers}
            disabled={!landscape}
            onInput={(e) => setLayers((e.target as HTMLInputElement).value)}
          />
        </label>
        <label class="inline">
          Samples
          <input
            class="tda-narrow"
            type="number"
            min="1"
            max="10000"
            value={samples}
            disabled={!landscape}
            onInput={(e) => setSamples((e.target as HTMLInputElement).value)}
          />
        </label>
      </fieldset>
      <div class="tda-actions">
        <button
          type="submit"
          class="primary"
          data-testid="tda-run"
          disabled={!canWrite || !inputId || busy}
          aria-describedby={!canWrite ? "tda-write-hint" : undefined}
          title={!canWrite ? WRITE_HINT : !inputId ? "upload an input first" : undefined}
        >
          {busy ? "Submitting…" : "Run job"}
        </button>
      </div>
      <div class="tda-outcome-sm" aria-live="polite">
        {err && (
          <p class="error" role="alert">
            {err}
          </p>
        )}
      </div>
    </form>
  );
}

// ---- current job ----

function Progress({ job }: { job: TdaJob }) {
  const pct = Math.round((job.status === "succeeded" ? 1 : job.progress) * 100);
  return (
    <div class="tda-progress">
      <div
        class={`bar st-${job.status}`}
        role="progressbar"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct}
        aria-label={`Job ${shortId(job.id)} progress`}
      >
        <span style={{ width: `${pct}%` }} />
      </div>
      <span class="num pct">{pct}%</span>
      <span class="muted stage">{job.stage}</span>
    </div>
  );
}

function StatusBadge({ job, testid }: { job: TdaJob; testid: string }) {
  const cls = job.status === "succeeded" ? "ok" : job.status === "failed" ? "bad" : job.status === "canceled" ? "" : "warn";
  return (
    <span class={`badge tda-status ${cls}`} data-testid={testid}>
      {job.status}
    </span>
  );
}

function CurrentPanel({
  job,
  canWrite,
  onCancel,
  onShow,
}: {
  job: TdaJob | null;
  canWrite: boolean;
  onCancel: (id: string) => void;
  onShow: () => void;
}) {
  return (
    <div class="panel tda-card" aria-labelledby="tda-cur-h">
      <h2 id="tda-cur-h">
        <span class="step">3</span> Current job
      </h2>
      {!job ? (
        <p class="muted tda-none">No job submitted from this page yet. Upload an input, then run a job: its progress shows here live.</p>
      ) : (
        <div class="tda-current" aria-live="polite">
          <div class="tda-current-line">
            <StatusBadge job={job} testid="tda-current-status" />
            <span class="mono" title={job.id}>
              {shortId(job.id)}
            </span>
            <span class="muted">{job.kind}</span>
            {job.cancel_requested && !FINAL.has(job.status) && <span class="badge warn">canceling…</span>}
          </div>
          <Progress job={job} />
          <dl class="tda-facts">
            <dt>Submitted</dt>
            <dd>{fmtClock(job.submitted_at)}</dd>
            <dt>Run time</dt>
            <dd>{jobDuration(job)}</dd>
            <dt>Attempts</dt>
            <dd>
              {job.attempts} of {job.max_attempts}
            </dd>
          </dl>
          {job.error && (
            <p class="error" role="alert">
              {job.error.detail} ({job.error.error_code})
            </p>
          )}
          <div class="tda-actions">
            <button type="button" onClick={onShow} disabled={job.status !== "succeeded"}>
              Show result
            </button>
            <button
              type="button"
              class="danger"
              onClick={() => onCancel(job.id)}
              disabled={!canWrite || FINAL.has(job.status) || job.cancel_requested}
              aria-describedby={!canWrite ? "tda-write-hint" : undefined}
              title={!canWrite ? WRITE_HINT : undefined}
            >
              Cancel
            </button>
          </div>
        </div>
      )}
    </div>
  );
}

// ---- result: diagram, barcode, landscape ----

type ResultState =
  | { state: "loading" }
  | { state: "error"; message: string }
  | { state: "ok"; result: VrResult; landscape: Record<string, Landscape> | null; landscapeError?: string };

const resultCache = new Map<string, ResultState>();

function ResultPanel({ job }: { job: TdaJob | null }) {
  const id = job?.id ?? null;
  const ready = job?.status === "succeeded";
  const [res, setRes] = useState<ResultState | null>(id ? resultCache.get(id) ?? null : null);
  const [hidden, setHidden] = useState<Set<number>>(new Set());

  useEffect(() => {
    if (!id || !ready) {
      setRes(null);
      return;
    }
    const cached = resultCache.get(id);
    if (cached && cached.state !== "error") {
      setRes(cached);
      return;
    }
    let live = true;
    const set = (s: ResultState) => {
      resultCache.set(id, s);
      if (live) setRes(s);
    };
    set({ state: "loading" });
    (async () => {
      let result: VrResult;
      try {
        result = await get<VrResult>(`/api/v1/jobs/${id}/result`);
      } catch (e) {
        resultCache.delete(id);
        if (live) setRes({ state: "error", message: errorText(e) });
        return;
      }
      if (!result || typeof result.diagrams !== "object" || result.diagrams === null) {
        resultCache.delete(id);
        if (live) setRes({ state: "error", message: `This ${job?.kind ?? ""} job's result has no persistence diagrams to draw.` });
        return;
      }
      if (result.landscape) {
        set({ state: "ok", result, landscape: result.landscape });
        return;
      }
      // No landscape asked with the job: compute it from the diagrams.
      set({ state: "ok", result, landscape: null });
      try {
        const s = await post<{ landscape: Record<string, Landscape> }>("/api/v1/tda/summaries", {
          diagrams: result.diagrams,
          summaries: ["landscape"],
          landscape: { layers: 5, samples: 200 },
        });
        set({ state: "ok", result, landscape: s.landscape });
      } catch (e) {
        set({ state: "ok", result, landscape: null, landscapeError: errorText(e) });
      }
    })();
    return () => {
      live = false;
    };
  }, [id, ready]);

  const result = res?.state === "ok" ? res.result : null;
  const allDims = useMemo(() => (result ? dimsOf(result.diagrams) : []), [result]);
  const dims = useMemo(() => allDims.filter((d) => !hidden.has(d)), [allDims, hidden]);
  const landscape = res?.state === "ok" ? res.landscape : null;

  const drawD = useCallback<DrawFn>((ctx, w, h, pal) => (result ? drawDiagram(ctx, w, h, pal, result.diagrams, dims) : []), [result, dims]);
  const drawB = useCallback<DrawFn>((ctx, w, h, pal) => (result ? drawBarcode(ctx, w, h, pal, result.diagrams, dims) : []), [result, dims]);
  const drawL = useCallback<DrawFn>(
    (ctx, w, h, pal) => (landscape ? drawLandscape(ctx, w, h, pal, landscape, dims.filter((d) => landscape[String(d)])) : []),
    [landscape, dims],
  );

  const counts = result ? allDims.map((d) => `H${d} ${result.diagrams[String(d)].length}`).join(" · ") : "";
  const label = (what: string) =>
    result
      ? `${what} of job ${shortId(id!)}: ${allDims
          .filter((d) => !hidden.has(d))
          .map((d) => {
            const bars = result.diagrams[String(d)];
            const inf = bars.filter(([, e]) => e === null).length;
            return `H${d} ${bars.length} bars${inf ? `, ${inf} infinite` : ""}`;
          })
          .join("; ")}`
      : what;

  // One message for the three frames while there is nothing to draw; the
  // frames keep their size so nothing moves when the result arrives.
  let message: string | null = null;
  let failed = false;
  if (!job) message = "Run a job (or show a succeeded one) to draw it here.";
  else if (!ready)
    message = `Job ${shortId(job.id)} is ${job.status}${FINAL.has(job.status) ? ": it has no result." : "; drawn as soon as it succeeds."}`;
  else if (!res || res.state === "loading") message = "Loading the result…";
  else if (res.state === "error") {
    message = res.message;
    failed = true;
  }
  const placeholder = (text: string, error = false) => (
    <div class="plot plot-empty" style={{ height: `${PLOT_H}px` }}>
      <p class={error ? "error" : "muted"} role={error ? "alert" : undefined}>
        {text}
      </p>
    </div>
  );

  return (
    <section class="panel tda-result" aria-labelledby="tda-res-h" data-testid="tda-result">
      <div class="tda-result-head">
        <h2 id="tda-res-h">Result{job ? ` · job ${shortId(job.id)}` : ""}</h2>
        {result && (
          <p class="muted tda-result-facts">
            {result.points !== undefined && <span>{result.points.toLocaleString()} points</span>}
            <span>{counts}</span>
            {result.duration_ms !== undefined && <span>computed in {fmtVal(result.duration_ms)} ms</span>}
          </p>
        )}
        {result && (
          <div class="tda-legend" role="group" aria-label="Dimensions shown">
            {allDims.map((d) => (
              <button
                type="button"
                class="tda-legend-item"
                aria-pressed={!hidden.has(d)}
                onClick={() =>
                  setHidden((h) => {
                    const n = new Set(h);
                    if (n.has(d)) n.delete(d);
                    else n.add(d);
                    return n;
                  })
                }
              >
                <DimSwatch d={d} />H{d}
              </button>
            ))}
          </div>
        )}
      </div>
      <div class="tda-plots">
        <figure class="tda-fig">
          <figcaption>
            Persistence diagram <Legend dims={dims} />
          </figcaption>
          {result ? (
            <PlotCanvas draw={drawD} height={PLOT_H} label={label("Persistence diagram")} testid="tda-diagram" />
          ) : (
            placeholder(message ?? "", failed)
          )}
        </figure>
        <figure class="tda-fig">
          <figcaption>
            Barcode <Legend dims={dims} />
          </figcaption>
          {result ? <PlotCanvas draw={drawB} height={PLOT_H} label={label("Barcode")} testid="tda-barcode" /> : placeholder("")}
        </figure>
        <figure class="tda-fig">
          <figcaption>
            Persistence landscape <Legend dims={dims.filter((d) => !landscape || landscape[String(d)])} />
          </figcaption>
          {landscape ? (
            <PlotCanvas draw={drawL} height={PLOT_H} label={landscapeLabel(landscape, dims)} testid="tda-landscape" />
          ) : res?.state === "ok" ? (
            placeholder(res.landscapeError ? `Landscape: ${res.landscapeError}` : "Computing the landscape…", !!res.landscapeError)
          ) : (
            placeholder("")
          )}
        </figure>
      </div>
      <div class="tda-below">
        {landscape && <Norms landscape={landscape} dims={dims} />}
        {result && <BarsTable diagrams={result.diagrams} dims={dims} />}
      </div>
    </section>
  );
}

function landscapeLabel(l: Record<string, Landscape>, dims: number[]): string {
  const parts = dims
    .filter((d) => l[String(d)]?.norms)
    .map((d) => `H${d} L1 ${fmtVal(l[String(d)].norms!.l1)}, L2 ${fmtVal(l[String(d)].norms!.l2)}`);
  return `Persistence landscape${parts.length ? `: ${parts.join("; ")}` : ""}`;
}

/** The marker shape and colour of a dimension, as the plots draw it. */
function DimSwatch({ d }: { d: number }) {
  const c = `var(--plot-h${d % 5})`;
  const shapes = [
    <circle cx="6" cy="6" r="4.2" />,
    <path d="M6 1.5 L10.8 10 L1.2 10 Z" />,
    <rect x="2" y="2" width="8" height="8" />,
    <path d="M6 0.8 L11 6 L6 11.2 L1 6 Z" />,
    <path d="M2 2 L10 10 M10 2 L2 10" stroke-width="2" />,
  ];
  return (
    <svg class="swatch" width="12" height="12" viewBox="0 0 12 12" aria-hidden="true" fill={c} stroke={c}>
      {shapes[d % 5]}
    </svg>
  );
}

function Legend({ dims }: { dims: number[] }) {
  return (
    <span class="tda-fig-legend" aria-hidden="true">
      {dims.map((d) => (
        <span>
          <DimSwatch d={d} />H{d}
        </span>
      ))}
    </span>
  );
}

function Norms({ landscape, dims }: { landscape: Record<string, Landscape>; dims: number[] }) {
  const rows = dims.filter((d) => landscape[String(d)]?.norms);
  if (!rows.length) return null;
  return (
    <p class="tda-norms muted">
      Landscape norms:{" "}
      {rows.map((d) => {
        const n = landscape[String(d)].norms!;
        return (
          <span>
            <strong>H{d}</strong> L1 <span class="num">{fmtVal(n.l1)}</span> · L2 <span class="num">{fmtVal(n.l2)}</span> · L∞{" "}
            <span class="num">{fmtVal(n.linf)}</span>
          </span>
        );
      })}
    </p>
  );
}

/** The most persistent bars per dimension, as a table (the plots' text alternative). */
function BarsTable({ diagrams, dims }: { diagrams: Diagrams; dims: number[] }) {
  const TOP = 10;
  return (
    <details class="tda-bars">
      <summary>Most persistent bars (table)</summary>
      <div class="tda-bars-grid">
        {dims.map((d) => {
          const bars = [...(diagrams[String(d)] ?? [])].sort(
            (a, b) => (b[1] === null ? Infinity : b[1] - b[0]) - (a[1] === null ? Infinity : a[1] - a[0]),
          );
          return (
            <table>
              <caption>
                H{d}: {bars.length} bars{bars.length > MAX_BARS_PER_DIM ? ` (barcode shows the ${MAX_BARS_PER_DIM} longest)` : ""}
              </caption>
              <thead>
                <tr>
                  <th scope="col" class="num">
                    Birth
                  </th>
                  <th scope="col" class="num">
                    Death
                  </th>
                  <th scope="col" class="num">
                    Persistence
                  </th>
                </tr>
              </thead>
              <tbody>
                {bars.slice(0, TOP).map(([b, e]) => (
                  <tr>
                    <td class="num">{fmtVal(b)}</td>
                    <td class="num">{fmtVal(e)}</td>
                    <td class="num">{e === null ? "∞" : fmtVal(e - b)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          );
        })}
      </div>
    </details>
  );
}

// ---- jobs list ----

function JobsPanel({
  jobs,
  error,
  uploads,
  selectedId,
  onSelect,
  onCancel,
  canWrite,
}: {
  jobs: TdaJob[];
  error: string | null;
  uploads: Map<string, Upload>;
  selectedId: string | null;
  onSelect: (id: string) => void;
  onCancel: (id: string) => void;
  canWrite: boolean;
}) {
  return (
    <section class="panel tda-jobs" aria-labelledby="tda-jobs-h">
      <div class="tda-result-head">
        <h2 id="tda-jobs-h">Jobs</h2>
        <span class="muted">{jobs.length ? `${jobs.length} newest first · live` : ""}</span>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {!jobs.length ? (
        <p class="empty">No jobs yet.</p>
      ) : (
        <div class="table-wrap tda-jobs-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Job</th>
                <th scope="col">Kind</th>
                <th scope="col">Input</th>
                <th scope="col">Status</th>
                <th scope="col">Progress</th>
                <th scope="col">Submitted</th>
                <th scope="col" class="num">
                  Run time
                </th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {jobs.map((j) => {
                const up = j.upload_id ? uploads.get(j.upload_id) : undefined;
                return (
                  <tr data-testid={`job-${j.id}`} class={j.id === selectedId ? "selected" : undefined} aria-selected={j.id === selectedId}>
                    <td class="mono" title={j.id}>
                      {shortId(j.id)}
                    </td>
                    <td>{j.kind}</td>
                    <td class="tda-input-cell" title={j.upload_id}>
                      {up ? up.name ?? shortId(up.id) : j.upload_id ? shortId(j.upload_id) : "inline"}
                    </td>
                    <td>
                      <StatusBadge job={j} testid={`job-status-${j.id}`} />
                      {j.cancel_requested && !FINAL.has(j.status) && <span class="muted"> canceling…</span>}
                    </td>
                    <td>
                      <Progress job={j} />
                    </td>
                    <td class="num">{fmtClock(j.submitted_at)}</td>
                    <td class="num">{jobDuration(j)}</td>
                    <td class="tda-row-actions">
                      <button
                        type="button"
                        class="link"
                        onClick={() => onSelect(j.id)}
                        disabled={j.status !== "succeeded"}
                        aria-label={`Show the result of job ${shortId(j.id)}`}
                      >
                        Show
                      </button>
                      {!FINAL.has(j.status) && (
                        <button
                          type="button"
                          class="link danger"
                          onClick={() => onCancel(j.id)}
                          disabled={!canWrite || j.cancel_requested}
                          title={!canWrite ? WRITE_HINT : undefined}
                          aria-label={`Cancel job ${shortId(j.id)}`}
                        >
                          Cancel
                        </button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

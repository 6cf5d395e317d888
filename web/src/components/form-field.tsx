// Small form helpers shared by the pages that write: a labelled field with
// its help and error, the API error box, and the "sign in" hint shown
// beside disabled write buttons.
import type { ComponentChildren } from "preact";
import { ApiError } from "../lib/api";
import "./form-field.css";

/** A label, its control (the child, whose id must be `id`), help and error. */
export function Field(props: {
  id: string;
  label: ComponentChildren;
  help?: ComponentChildren;
  error?: string | null;
  class?: string;
  children: ComponentChildren;
}) {
  return (
    <div class={`ff-field${props.error ? " ff-invalid" : ""}${props.class ? ` ${props.class}` : ""}`}>
      <label for={props.id}>{props.label}</label>
      {props.children}
      {props.help && (
        <div class="field-help" id={`${props.id}-help`}>
          {props.help}
        </div>
      )}
      {props.error && (
        <div class="ff-error" id={`${props.id}-error`} role="alert">
          {props.error}
        </div>
      )}
    </div>
  );
}

/** The `aria-*` attributes of a control inside a [`Field`]. */
export function fieldAria(id: string, opts: { help?: boolean; error?: string | null }) {
  const by = [opts.help ? `${id}-help` : "", opts.error ? `${id}-error` : ""].filter(Boolean).join(" ");
  return {
    "aria-invalid": opts.error ? ("true" as const) : undefined,
    "aria-describedby": by || undefined,
  };
}

/** Any thrown value as a code and a readable sentence. */
export function describeError(e: unknown): { code: string; detail: string; status?: number; requestId?: string } {
  if (e instanceof ApiError) return { code: e.code, detail: e.detail, status: e.status, requestId: e.requestId };
  if (e instanceof Error) return { code: "ERROR", detail: e.message };
  return { code: "ERROR", detail: String(e) };
}

const HINTS: Record<string, string> = {
  UNAUTHORIZED: "Sign in with a write key (top bar) and try again.",
  FORBIDDEN: "This key cannot write: sign in with a write or admin key.",
  NETWORK_ERROR: "Check that marketd is running.",
};

/** An API error as the page shows it: the detail, the code, a hint. */
export function ErrorBox(props: { error: unknown; testid?: string; title?: string; onDismiss?: () => void }) {
  if (!props.error) return null;
  const e = describeError(props.error);
  const hint = HINTS[e.code] ?? (e.status === 403 ? HINTS.FORBIDDEN : undefined);
  return (
    <div class="ff-error-box" role="alert" data-testid={props.testid}>
      <div class="ff-error-box-main">
        <strong>{props.title ?? "The server refused this"}</strong>
        <span class="ff-error-box-detail">{e.detail}</span>
        <span class="ff-error-box-meta">
          <code>{e.code}</code>
          {e.status ? <span> · HTTP {e.status}</span> : null}
          {e.requestId ? <span> · request {e.requestId}</span> : null}
        </span>
        {hint && <span class="ff-error-box-hint">{hint}</span>}
      </div>
      {props.onDismiss && (
        <button type="button" class="link" onClick={props.onDismiss} aria-label="Dismiss the error">
          Dismiss
        </button>
      )}
    </div>
  );
}

/** Shown beside write buttons that are disabled for want of a write key. */
export function WriteHint(props: { canWrite: boolean; id?: string }) {
  if (props.canWrite) return null;
  return (
    <span class="ff-write-hint muted" id={props.id} data-testid="write-hint">
      Read-only: sign in with a write key to make changes.
    </span>
  );
}

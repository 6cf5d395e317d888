// The shell: navigation, connection state, theme switch, sign-in, and the
// page for the current path.
import { useEffect, useState } from "preact/hooks";
import { realtime, type ConnState } from "./lib/realtime";
import { useLocation } from "./lib/router";
import { session, useSession } from "./lib/session";
import { toggleTheme, useTheme } from "./lib/theme";
import { Board } from "./pages/board";
import { SymbolView } from "./pages/symbol";
import { Connectors } from "./pages/connectors";
import { Jobs } from "./pages/jobs";
import { Tda } from "./pages/tda";
import { Signals } from "./pages/signals";
import { Operations } from "./pages/operations";

const NAV: [string, string][] = [
  ["/", "Board"],
  ["/connectors", "Connectors"],
  ["/jobs", "Polling jobs"],
  ["/tda", "TDA"],
  ["/signals", "Signals"],
  ["/operations", "Operations"],
];

function Page({ path }: { path: string }) {
  const m = path.match(/^\/symbols\/([^/]+)\/?$/);
  if (m) return <SymbolView symbol={decodeURIComponent(m[1])} />;
  if (path.startsWith("/connectors")) return <Connectors />;
  if (path.startsWith("/jobs")) return <Jobs />;
  if (path.startsWith("/tda")) return <Tda />;
  if (path.startsWith("/signals")) return <Signals />;
  if (path.startsWith("/operations")) return <Operations />;
  if (path === "/") return <Board />;
  return (
    <section class="page">
      <h1>Not found</h1>
      <p>
        No page at <code>{path}</code>. <a href="/">Back to the board</a>.
      </p>
    </section>
  );
}

function ConnectionBadge() {
  const [state, set] = useState<ConnState>(realtime.state);
  useEffect(() => realtime.onState(set), []);
  const label = state === "open" ? "live" : state === "connecting" ? "connecting" : "offline";
  return (
    <span class={`badge conn-${state}`} data-testid="connection" role="status" aria-live="polite">
      {label}
    </span>
  );
}

function SignIn() {
  const { info, error } = useSession();
  const [open, setOpen] = useState(false);
  const [key, setKey] = useState("");
  const [busy, setBusy] = useState(false);
  if (info?.authenticated) {
    return (
      <div class="signin">
        <span class="muted" data-testid="role">
          {info.role} key
        </span>
        <button
          type="button"
          class="link"
          onClick={() => {
            session.signOut();
            realtime.restart();
          }}
        >
          Sign out
        </button>
      </div>
    );
  }
  const needed = info?.read_requires_key ?? false;
  if (!open && !needed) {
    return (
      <button type="button" class="link" onClick={() => setOpen(true)} data-testid="signin-open">
        Sign in
      </button>
    );
  }
  return (
    <form
      class="signin"
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        const ok = await session.signIn(key);
        setBusy(false);
        if (ok) {
          setKey("");
          setOpen(false);
          realtime.restart();
        }
      }}
    >
      <label for="api-key" class="sr-only">
        API key
      </label>
      <input
        id="api-key"
        type="password"
        autocomplete="off"
        placeholder="API key (mkd_…)"
        value={key}
        onInput={(e) => setKey((e.target as HTMLInputElement).value)}
        required
        data-testid="signin-key"
      />
      <button type="submit" disabled={busy} data-testid="signin-submit">
        Sign in
      </button>
      {error && <span class="error" role="alert">{error}</span>}
    </form>
  );
}

export function App() {
  const { path } = useLocation();
  const theme = useTheme();
  const { info } = useSession();
  useEffect(() => {
    void session.refresh();
  }, []);
  const ready = info !== null && (!info.read_requires_key || info.authenticated);
  useEffect(() => {
    if (ready) realtime.start();
  }, [ready]);
  const blocked = info?.read_requires_key && !info.authenticated;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <a href="/" class="brand" aria-label="marketd board">
          marketd
        </a>
        <nav aria-label="Main">
          {NAV.map(([href, label]) => (
            <a
              href={href}
              aria-current={(href === "/" ? path === "/" || path.startsWith("/symbols") : path.startsWith(href)) ? "page" : undefined}
            >
              {label}
            </a>
          ))}
        </nav>
        <div class="topbar-right">
          <ConnectionBadge />
          <button type="button" class="link" onClick={toggleTheme} aria-label={`Switch to ${theme === "dark" ? "light" : "dark"} theme`}>
            {theme === "dark" ? "Light" : "Dark"}
          </button>
          <SignIn />
        </div>
      </header>
      <main id="main">
        {blocked ? (
          <section class="page">
            <h1>Sign in</h1>
            <p>This server needs an API key for reads. Enter one above; it is kept for this tab only.</p>
          </section>
        ) : info === null && session.error() === null ? (
          <section class="page" aria-busy="true" />
        ) : (
          <Page path={path} />
        )}
      </main>
      <footer class="footer">
        <span>
          API: <a href="/docs" data-external>Swagger UI</a> · <a href="/redoc" data-external>ReDoc</a> ·{" "}
          <a href="/openapi.json" data-external>OpenAPI</a> · <a href="/metrics" data-external>metrics</a>
        </span>
        <span>
          Charts: TradingView Lightweight Charts™, Copyright © 2025 TradingView, Inc.,{" "}
          <a href="https://www.tradingview.com/" data-external rel="noreferrer">tradingview.com</a>
        </span>
      </footer>
    </>
  );
}

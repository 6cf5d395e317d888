// The dashboard's build: one HTML page, hashed assets under /assets/, no
// inline script or style (the server's CSP is `script-src 'self'`), no
// source maps (the output is committed and embedded in the binary).
import { defineConfig } from "vite";

const target = process.env.MARKETD_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev` against a running `marketd serve`.
    proxy: {
      "/api": { target, ws: true },
      "/health": target,
      "/metrics": target,
      "/openapi.json": target,
    },
  },
});

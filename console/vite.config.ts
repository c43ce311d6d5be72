/**
 * Builds the moderation console (docs/console.md) into dist/console/, which
 * mxcd serves at /_mxcd/console/. Everything is bundled: no CDN, no external
 * fonts or scripts, no inline script (the server's Content-Security-Policy
 * forbids them), so the console works on an air-gapped server.
 */
import { fileURLToPath } from "node:url";
import preact from "@preact/preset-vite";
import { defineConfig } from "vite";

const root = fileURLToPath(new URL(".", import.meta.url));

export default defineConfig({
  root,
  base: "/_mxcd/console/",
  plugins: [preact({ devtoolsInProd: false, prefreshEnabled: false })],
  build: {
    outDir: fileURLToPath(new URL("../dist/console", import.meta.url)),
    emptyOutDir: true,
    // Inlined assets would become data: URLs, which the CSP does not allow.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: false,
  },
});

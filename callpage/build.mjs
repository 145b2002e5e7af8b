// Builds the call page into dist/ (served by appservice/http/call_page.py), or, with --tests,
// the pure modules' tests into dist-tests/ (run by `node --test`). Nothing is fetched at run
// time: fonts and artwork referenced by the DSFR's CSS are copied next to the bundle.
import { build } from "esbuild";
import { readdirSync, rmSync } from "node:fs";

const tests = process.argv.includes("--tests");
const outdir = tests ? "dist-tests" : "dist";
rmSync(outdir, { recursive: true, force: true });

if (tests) {
  await build({
    entryPoints: readdirSync("test").filter((f) => f.endsWith(".test.ts")).map((f) => `test/${f}`),
    outdir,
    bundle: true,
    platform: "node",
    format: "esm",
    outExtension: { ".js": ".mjs" },
    logLevel: "warning",
  });
} else {
  await build({
    entryPoints: { app: "src/main.ts", "app-style": "src/styles.css" },
    outdir,
    bundle: true,
    minify: true,
    format: "esm",
    target: ["es2020", "chrome100", "firefox100", "safari15"],
    loader: { ".woff2": "file", ".woff": "file", ".svg": "file", ".png": "file" },
    assetNames: "[name]-[hash]",
    legalComments: "none",
    logLevel: "warning",
  });
  // One stylesheet, app.css (esbuild names a CSS entry's output after the entry).
  const { renameSync } = await import("node:fs");
  renameSync(`${outdir}/app-style.css`, `${outdir}/app.css`);
}

// Bundles src/app.js and src/app.css (with uPlot) into ../static/dist for the Python package.
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
await esbuild.build({
  entryPoints: { app: path.join(here, "src/app.js") },
  outdir: path.join(here, "../static/dist"),
  bundle: true,
  minify: true,
  sourcemap: true,
  target: ["es2020"],
  format: "iife",
  legalComments: "linked",
  logLevel: "info",
});

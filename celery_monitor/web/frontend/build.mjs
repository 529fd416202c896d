// Bundles src/app.js and src/app.css (with uPlot) into ../static/dist for the Python package,
// with THIRD-PARTY-LICENSES.txt: the licence of every npm package whose code is in the bundle
// (minifying drops their copyright headers, and their licences ask for the notice to travel along).
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.join(here, "../static/dist");
const LICENCES = "THIRD-PARTY-LICENSES.txt";

const result = await esbuild.build({
  entryPoints: { app: path.join(here, "src/app.js") },
  outdir,
  bundle: true,
  minify: true,
  sourcemap: true,
  target: ["es2020"],
  format: "iife",
  legalComments: "linked",
  banner: { js: `/*! Celery Monitor. Bundled third-party code and its licences: ${LICENCES} */`,
            css: `/*! Celery Monitor. Bundled third-party code and its licences: ${LICENCES} */` },
  metafile: true,
  logLevel: "info",
});

// The folder of each npm package the bundle took code from: node_modules/<name> or node_modules/@scope/<name>.
const packages = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const match = input.match(/(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (match) packages.add(match[1]);
}

const sections = [...packages].sort().map((name) => {
  const folder = path.join(here, "node_modules", name);
  const manifest = JSON.parse(readFileSync(path.join(folder, "package.json"), "utf8"));
  const licenceFile = readdirSync(folder).find((file) => /^(licen[cs]e|copying)(\.|$)/i.test(file));
  if (!licenceFile) throw new Error(`${name}: no licence file in its npm package, cannot ship its notice`);
  const text = readFileSync(path.join(folder, licenceFile), "utf8").trim();
  return `${manifest.name} ${manifest.version} (${manifest.license})\n${"-".repeat(60)}\n${text}\n`;
});
const header = "Third-party code bundled into app.js and app.css, with the licence of each package.\n\n";
writeFileSync(path.join(outdir, LICENCES), header + sections.join("\n"));

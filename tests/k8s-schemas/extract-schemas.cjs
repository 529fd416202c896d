"use strict";
// Write the upstream CRD schemas the tests validate against, as JSON, to the file named by argv[2].
//
// The pinned kubernetes-models packages are generated from the upstream CRDs and keep each kind's
// openAPIV3Schema as a plain object, which a model hands to @kubernetes-models/validate's
// register(id, schema) the first time it validates. Catching that call yields the schema itself, so
// the Python tests can tighten it (unknown fields become errors) instead of running a compiled
// validator. The generator drops the x-kubernetes-* keys (CEL rules among them) on the way.
//
// The output records a digest of package-lock.json and of this script, so the tests can tell a
// stale cache from a fresh one.

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

// [module, exported class]: every custom kind the project renders or documents.
const KINDS = [
  ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor", "ServiceMonitor"],
  ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule", "PrometheusRule"],
  ["@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute", "HTTPRoute"],
  ["@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject", "ScaledObject"],
  ["@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication", "TriggerAuthentication"],
];

function inputsDigest() {
  const digest = crypto.createHash("sha256");
  for (const file of ["package-lock.json", path.basename(__filename)]) {
    digest.update(fs.readFileSync(path.join(__dirname, file)));
  }
  return digest.digest("hex");
}

function packageVersion(module) {
  const name = module.split("/").slice(0, 2).join("/");
  // A direct dependency sits at the top of node_modules; its "exports" hide package.json from require.
  const manifest = path.join(__dirname, "node_modules", name, "package.json");
  return [name, JSON.parse(fs.readFileSync(manifest, "utf8")).version];
}

// The schema a model registers, caught on its way to the validation library the model itself uses.
function registeredSchema(module, className) {
  const file = require.resolve(module);
  const validate = require(require.resolve("@kubernetes-models/validate", { paths: [path.dirname(file)] }));
  const model = require(file)[className];
  if (typeof model !== "function") throw new Error(`${module} exports no ${className}`);
  const caught = {};
  const register = validate.register;
  validate.register = (id, schema) => {
    caught[id] = schema;
  };
  try {
    // The model keeps its schema-adding function under a private symbol of its prototype.
    for (const symbol of Object.getOwnPropertySymbols(model.prototype)) {
      if (typeof model.prototype[symbol] === "function") model.prototype[symbol]();
    }
  } finally {
    validate.register = register;
  }
  const ids = Object.keys(caught).filter((id) => !id.startsWith("io.k8s."));
  if (ids.length !== 1) throw new Error(`${module} registered ${ids.length} schemas of its own: ${ids}`);
  return { apiVersion: model.apiVersion, kind: model.kind, schemaId: ids[0], schema: caught[ids[0]] };
}

function main(target) {
  if (!target) throw new Error("usage: node extract-schemas.cjs OUTPUT.json");
  const result = {
    inputs: inputsDigest(),
    packages: Object.fromEntries(KINDS.map(([module]) => packageVersion(module))),
    kinds: KINDS.map(([module, className]) => registeredSchema(module, className)),
  };
  fs.mkdirSync(path.dirname(path.resolve(target)), { recursive: true });
  const partial = `${target}.partial`;
  fs.writeFileSync(partial, JSON.stringify(result, null, 1));
  fs.renameSync(partial, target);
}

main(process.argv[2]);

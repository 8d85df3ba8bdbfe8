// The API document against a real validator and the server against the document.
//
//   node check.mjs <openapi.json>                      validates the document (OpenAPI 3.0.3)
//   node check.mjs <openapi.json> <responses.jsonl>    ... and checks every recorded response
//
// responses.jsonl has one line per response an end-to-end test received ({"method", "path",
// "status", "content_type", "body"}; tests/support/testing.cpp writes it when
// PADDOCK_CONTRACT_LOG is set). Each must match a route of the document, a status documented
// for that route, a documented media type and, for JSON, the route's schema for that status.
import { readFileSync } from "node:fs";
import SwaggerParser from "@apidevtools/swagger-parser";
import Ajv from "ajv";
import addFormats from "ajv-formats";

const [docPath, logPath] = process.argv.slice(2);
if (!docPath) {
  console.error("usage: node check.mjs <openapi.json> [responses.jsonl]");
  process.exit(2);
}

const doc = JSON.parse(readFileSync(docPath, "utf8"));
try {
  // validate() dereferences its argument in place: give it a copy.
  await SwaggerParser.validate(structuredClone(doc));
} catch (e) {
  console.error(`${docPath} is not a valid OpenAPI document:\n${e.message}`);
  process.exit(1);
}
console.log(`${docPath}: valid OpenAPI ${doc.openapi}, ${Object.keys(doc.paths).length} paths`);
if (!logPath) process.exit(0);

// Routes, the most literal first: /api/sessions/{id}/sandbox/exec before anything with more
// parameters at the same depth.
const routes = Object.entries(doc.paths).map(([template, item]) => {
  const pattern = template.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{[^}/]+\}/g, "[^/]+");
  return { template, item, re: new RegExp(`^${pattern}$`), params: (template.match(/\{/g) || []).length };
});
routes.sort((a, b) => a.params - b.params);

// Drift both ways: a field the server sends that the document does not name fails too (object
// schemas with properties and no additionalProperties of their own are closed for the check).
function closeObjects(node) {
  if (Array.isArray(node)) return node.forEach(closeObjects);
  if (!node || typeof node !== "object") return;
  if (node.properties && node.additionalProperties === undefined && !node.allOf && !node.oneOf && !node.anyOf)
    node.additionalProperties = false;
  Object.values(node).forEach(closeObjects);
}
closeObjects(doc.components.schemas);
closeObjects(doc.paths);

const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
const compiled = new Map();
function validatorFor(key, schema) {
  if (!compiled.has(key)) compiled.set(key, ajv.compile({ components: doc.components, allOf: [schema] }));
  return compiled.get(key);
}
function resolve(obj) {
  while (obj && obj.$ref) {
    obj = obj.$ref.replace(/^#\//, "").split("/").reduce(
      (o, part) => o?.[part.replace(/~1/g, "/").replace(/~0/g, "~")], doc);
  }
  return obj;
}

const lines = readFileSync(logPath, "utf8").split("\n").filter((l) => l.trim());
if (lines.length === 0) {
  console.error(`${logPath}: no responses recorded (did the end-to-end tests run with PADDOCK_CONTRACT_LOG?)`);
  process.exit(1);
}

const failures = new Map();  // one line per distinct problem, with how often and one example
const covered = new Set();
function fail(key, message, example) {
  const f = failures.get(key) || { message, count: 0, example };
  f.count++;
  failures.set(key, f);
}

for (const line of lines) {
  const r = JSON.parse(line);
  if (r.status < 0) continue;  // the connection failed; no response to check
  const path = r.path.split("?")[0];
  const route = routes.find((x) => x.re.test(path));
  const method = r.method.toLowerCase();
  if (!route) {
    // A path the API does not have: 404 in the documented error envelope, nothing else.
    const error = resolve(doc.components.responses.Error).content["application/json"].schema;
    let body = null;
    try {
      body = JSON.parse(r.body);
    } catch {}
    if (r.status !== 404 || !body || !validatorFor("unrouted", error)(body))
      fail(`route ${r.method} ${path}`, `${r.method} ${path}: no path in the document matches, and the answer ` +
           `is not a 404 in the error envelope`, r);
    continue;
  }
  const op = route.item[method];
  if (!op) {
    // The server answers 405 for a method a path does not have; anything else is drift.
    if (r.status !== 405) fail(`method ${r.method} ${route.template}`,
                               `${r.method} ${route.template}: method not in the document (got ${r.status})`, r);
    continue;
  }
  const opKey = `${r.method} ${route.template}`;
  covered.add(opKey);
  const status = String(r.status);
  const responses = op.responses || {};
  const declared = responses[status] ?? responses[`${status[0]}XX`] ?? responses.default;
  if (!declared) {
    fail(`status ${opKey} ${status}`,
         `${opKey}: status ${status} is not documented (documented: ${Object.keys(responses).join(", ")})`, r);
    continue;
  }
  const response = resolve(declared);
  const content = response.content || {};
  const mediaTypes = Object.keys(content);
  const got = (r.content_type || "").split(";")[0].trim().toLowerCase();
  if (mediaTypes.length === 0) {
    if (r.body && r.body.length && status !== "204")
      fail(`nocontent ${opKey} ${status}`, `${opKey} ${status}: a body the document does not describe`, r);
    continue;
  }
  const media = mediaTypes.find((m) => m === got) ?? mediaTypes.find((m) => m === "*/*");
  if (!media) {
    fail(`media ${opKey} ${status} ${got}`,
         `${opKey} ${status}: Content-Type "${got}" is not one of ${mediaTypes.join(", ")}`, r);
    continue;
  }
  const schema = resolve(content[media].schema);
  if (!schema || !media.includes("json")) continue;
  let body;
  try {
    body = JSON.parse(r.body);
  } catch {
    fail(`json ${opKey} ${status}`, `${opKey} ${status}: body is not JSON`, r);
    continue;
  }
  const validate = validatorFor(`${opKey} ${status} ${media}`, schema);
  if (!validate(body)) {
    for (const e of validate.errors) {
      const extra = e.params?.additionalProperty ? ` ("${e.params.additionalProperty}")` : "";
      fail(`schema ${opKey} ${status} ${e.instancePath} ${e.message}${extra}`,
           `${opKey} ${status}: body${e.instancePath} ${e.message}${extra}`, r);
    }
  }
}

const all = routes.flatMap((x) => Object.keys(x.item).filter((m) => m !== "parameters")
                                      .map((m) => `${m.toUpperCase()} ${x.template}`));
const missing = all.filter((k) => !covered.has(k));
console.log(`${lines.length} responses checked; ${covered.size} of ${all.length} operations exercised`);
if (missing.length) console.log(`not exercised by the end-to-end tests: ${missing.join(", ")}`);
if (failures.size) {
  console.error(`\n${failures.size} contract violation(s):`);
  for (const f of failures.values()) {
    const body = (f.example.body || "").slice(0, 300);
    console.error(`- ${f.message} (${f.count}x)\n    e.g. ${f.example.method} ${f.example.path} -> ${f.example.status} ${body}`);
  }
  process.exit(1);
}
console.log("every response matches the document");

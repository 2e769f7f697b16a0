// The contract corpus judged by ajv, a JSON Schema validator independent of the pipeline's Python.
//
// Usage: node validate.mjs <schemas dir> <corpus.jsonl>
// Each corpus line is {"schema": "<EventType>", "instance": <any JSON>}; each output line is the verdict of
// the line of the same number: {"valid": true} or {"valid": false, "errors": ["<path> <message>", ...]}.
// Draft 2020-12 with ajv-formats asserting `format` (as a vendor would validate), every error reported, and
// strict mode on: a schema keyword ajv does not know, or a type it cannot check, fails the run.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const [schemaDir, corpusPath] = process.argv.slice(2);
if (!schemaDir || !corpusPath) {
  console.error("usage: node validate.mjs <schemas dir> <corpus.jsonl>");
  process.exit(2);
}

const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: true, strictTuples: true,
                          strictRequired: true, unicodeRegExp: true });
addFormats(ajv);

const validators = new Map();
for (const file of readdirSync(schemaDir).filter((f) => f.endsWith(".json")).sort()) {
  const schema = JSON.parse(readFileSync(join(schemaDir, file), "utf8"));
  validators.set(file.slice(0, -".json".length), ajv.compile(schema));
}

const out = [];
for (const line of readFileSync(corpusPath, "utf8").split("\n")) {
  if (!line) continue;
  const { schema, instance } = JSON.parse(line);
  const validate = validators.get(schema);
  if (!validate) {
    console.error(`no schema ${schema}.json in ${schemaDir}`);
    process.exit(2);
  }
  out.push(JSON.stringify(validate(instance) ? { valid: true }
    : { valid: false, errors: validate.errors.map((e) => `${e.instancePath || "/"} ${e.message}`) }));
}
process.stdout.write(out.join("\n") + (out.length ? "\n" : ""));

// Parse and validate an AsyncAPI document with the AsyncAPI project's own parser
// (and its Avro schema parser, so Avro payloads are checked too).
// Usage: NODE_PATH=$PWD/.tools/npm-asyncapi/node_modules node hack/asyncapi-validate.mjs FILE
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.NODE_PATH + "/");
const { Parser } = require("@asyncapi/parser");
const { AvroSchemaParser } = require("@asyncapi/avro-schema-parser");

const file = process.argv[2];
const parser = new Parser();
parser.registerSchemaParser(AvroSchemaParser());
const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"), { source: file });
// Severity 0 is an error; 1-3 are warnings, hints and information.
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  const where = d.path && d.path.length ? d.path.join(".") : "(document)";
  console.error(`${file}: ${d.severity === 0 ? "error" : "warning"} ${d.code} at ${where}: ${d.message}`);
}
if (!document || errors.length) {
  console.error(`${file}: not a valid AsyncAPI document (${errors.length} errors)`);
  process.exit(1);
}
console.log(`${file}: valid AsyncAPI ${document.version()}, ${document.channels().length} channels, ${document.allMessages().length} messages`);

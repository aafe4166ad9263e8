#!/usr/bin/env node
// Entry point for `npx mcp-bastion`. From a checkout it runs the TypeScript sources directly
// (Node 24 strips types); from the image it runs the compiled dist/ next to it.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// Node 24 is the supported runtime (npm install puts it in node_modules/.bin). Say so plainly
// instead of failing on TypeScript syntax an older Node cannot strip.
const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  process.stderr.write(`mcp-bastion needs Node 24 or newer (this is ${process.version}); run it through npx or make, which use node_modules/.bin/node\n`);
  process.exit(1);
}

const here = dirname(fileURLToPath(import.meta.url));
const compiled = join(here, "..", "..", "dist", "cli", "src", "main.js");
const source = join(here, "..", "src", "main.ts");
const entry = existsSync(source) ? source : compiled;
const { main } = await import(entry);
process.exitCode = await main(process.argv.slice(2));

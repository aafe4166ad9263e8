#!/usr/bin/env node
// Entry point for `npx mcp-bastion`. From a checkout it runs the TypeScript sources directly
// (Node 24 strips types); from the image it runs the compiled dist/ next to it.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const compiled = join(here, "..", "..", "dist", "operator", "src", "cli", "main.js");
const source = join(here, "..", "src", "cli", "main.ts");
const entry = existsSync(source) ? source : compiled;
const { main } = await import(entry);
process.exitCode = await main(process.argv.slice(2));

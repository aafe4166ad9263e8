// Argument overlays: JSON Schemas the platform team lays over a tool's own inputSchema. The operator
// compiles them at admission (an overlay that does not compile is refused there) with the same compiler
// and options the gateway enforces them with.
import { createRequire } from "node:module";
import type { ValidateFunction } from "ajv";

const require = createRequire(import.meta.url);
const { Ajv2020 } = require("ajv/dist/2020.js") as typeof import("ajv/dist/2020.js");
const addFormats = require("ajv-formats") as typeof import("ajv-formats").default;

let overlayAjv: InstanceType<typeof Ajv2020> | undefined;
/** Overlays are platform-team schemas: draft 2020-12, strict mode, so a misspelt keyword is an error, not a no-op. */
export function compileOverlay(schema: Record<string, unknown>): ValidateFunction {
  if (!overlayAjv) {
    overlayAjv = new Ajv2020({ strict: true, allErrors: false, validateFormats: true, coerceTypes: false, useDefaults: false });
    addFormats(overlayAjv);
  }
  const { $schema: _s, $id: _i, ...rest } = schema;
  return overlayAjv.compile(rest);
}

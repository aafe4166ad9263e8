// The one McpServer builder for tests: a small valid document that each test overrides with what it is
// about, so a change to the schema's required fields is made here once instead of in every test file.
import { API_VERSION, KIND, type McpServer } from "../../operator/src/api/v1alpha1.ts";
import { validateMcpServer } from "../../operator/src/api/validate.ts";

/** An image pinned by digest (the schema's default refuses an unpinned one); never pulled by these tests. */
export const TEST_IMAGE = `registry.example/mcp@sha256:${"a".repeat(64)}`;

export interface TestMetadata {
  name?: string;
  namespace?: string;
  uid?: string;
}

/**
 * A small valid McpServer document (streamable HTTP on port 3000, API keys from the Secret `keys`, the
 * image above): `spec` entries replace the defaults one key at a time, `metadata` names it (default s/ns).
 */
export function mcpServerDoc(
  spec: Record<string, unknown> = {},
  metadata: TestMetadata = {},
): { apiVersion: string; kind: string; metadata: TestMetadata & { name: string }; spec: Record<string, unknown> } {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: "s", namespace: "ns", ...metadata },
    spec: { image: TEST_IMAGE, transport: { type: "streamable-http", port: 3000 }, auth: { apiKeys: { secretRef: { name: "keys" } } }, ...spec },
  };
}

/** The same document validated and defaulted by the schema, as the renderer takes it; an invalid one throws naming why. */
export function mcpServer(spec: Record<string, unknown> = {}, metadata: TestMetadata = {}): McpServer {
  return validated(mcpServerDoc(spec, metadata));
}

/** Validates any McpServer document, throwing the schema's errors (a test's fixture that is invalid is a broken test). */
export function validated(doc: unknown, what = "McpServer"): McpServer {
  const r = validateMcpServer(doc);
  if (!r.ok) throw new Error(`${what} is invalid: ${r.errors.join("; ")}`);
  return r.value;
}

// spec.protocol.versions (issue 11): the allowlist of MCP protocol revisions reaches the gateway config the
// pod reads, its default follows what the gateway supports, and status/checklist say what clients may use.
import assert from "node:assert/strict";
import { test } from "node:test";
import { GatewayConfigSchema, SUPPORTED_PROTOCOL_VERSIONS } from "../../contract/gateway-config.ts";
import { validateMcpServer } from "../../operator/src/api/validate.ts";
import type { McpServer } from "../../operator/src/api/v1alpha1.ts";
import { renderMcpServer } from "../../operator/src/render/index.ts";
import { obj } from "../support/objects.ts";

const DIGEST = `registry.example/mcp@sha256:${"a".repeat(64)}`;
const manifest = (protocol?: unknown) => ({
  apiVersion: "mcp.bastion.dev/v1alpha1",
  kind: "McpServer",
  metadata: { name: "s", namespace: "ns" },
  spec: {
    image: DIGEST,
    transport: { type: "streamable-http", port: 3000 },
    auth: { apiKeys: { secretRef: { name: "keys" } } },
    ...(protocol === undefined ? {} : { protocol }),
  },
});
function server(protocol?: unknown): McpServer {
  const r = validateMcpServer(manifest(protocol));
  if (!r.ok) throw new Error(r.errors.join("; "));
  return r.value;
}
const render = (s: McpServer) => renderMcpServer(s, { gatewayImage: "gw:1" });
/** The gateway.json the pod reads, parsed by the gateway's own schema. */
function gatewayJson(s: McpServer) {
  const cm = render(s).objects.find((o) => o.kind === "ConfigMap" && typeof obj(o.data)["gateway.json"] === "string");
  assert.ok(cm, "no gateway ConfigMap");
  return GatewayConfigSchema.parse(JSON.parse(String(obj(cm.data)["gateway.json"])));
}
const checklistItem = (s: McpServer) => render(s).checklist.find((c) => c.id === "protocol-revisions");

test("the gateway supports both eras: the 2025 revisions and 2026-07-28", () => {
  assert.deepEqual([...SUPPORTED_PROTOCOL_VERSIONS].sort(), ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]);
});

test("without spec.protocol the gateway config allows every revision the gateway supports", () => {
  for (const s of [server(), server({})]) {
    assert.deepEqual(gatewayJson(s).protocol, { versions: [...SUPPORTED_PROTOCOL_VERSIONS] });
    assert.deepEqual(render(s).protocolVersions, [...SUPPORTED_PROTOCOL_VERSIONS]);
    const item = checklistItem(s);
    assert.equal(item?.satisfied, true);
    assert.match(item?.detail ?? "", /2025-11-25, 2025-06-18, 2025-03-26 \(sessions opened with initialize\) and 2026-07-28 \(stateless\)/);
  }
});

test("an allowlist is rendered as listed, in the gateway's order, whatever order the spec uses", () => {
  const s = server({ versions: ["2025-06-18", "2026-07-28", "2025-11-25"] });
  const inGatewayOrder = SUPPORTED_PROTOCOL_VERSIONS.filter((v) => v !== "2025-03-26");
  assert.deepEqual(gatewayJson(s).protocol, { versions: inGatewayOrder });
  assert.deepEqual(render(s).protocolVersions, inGatewayOrder);
});

test("allowing only 2026-07-28, or only the 2025 revisions, is a choice the checklist states, not a failure", () => {
  const only2026 = checklistItem(server({ versions: ["2026-07-28"] }));
  assert.equal(only2026?.satisfied, true);
  assert.match(only2026?.detail ?? "", /no 2025 revision \(2025-era clients are refused with -32022\) and 2026-07-28 \(stateless\)/);
  const only2025 = checklistItem(server({ versions: ["2025-06-18", "2025-11-25"] }));
  assert.equal(only2025?.satisfied, true);
  assert.match(only2025?.detail ?? "", /2025-11-25, 2025-06-18 \(sessions opened with initialize\) and no 2026 revision/);
  assert.equal(
    render(server({ versions: ["2026-07-28"] })).warnings.some((w) => /protocol/i.test(w)),
    false,
  );
});

test("the operator's validation refuses unknown, duplicate and empty allowlists, naming the field", () => {
  const refused = (protocol: unknown) => {
    const r = validateMcpServer(manifest(protocol));
    assert.equal(r.ok, false, `accepted ${JSON.stringify(protocol)}`);
    return r.ok ? "" : r.errors.join("; ");
  };
  assert.match(refused({ versions: ["2024-11-05"] }), /spec\.protocol\.versions\.0|spec\.protocol\.versions\[0\]/);
  assert.match(refused({ versions: ["2025-11-25", "2025-11-25"] }), /spec\.protocol\.versions.*duplicate protocol version "2025-11-25"/);
  assert.match(refused({ versions: [] }), /spec\.protocol\.versions/);
  assert.match(refused({ versions: "2026-07-28" }), /spec\.protocol\.versions/);
  assert.match(refused({ version: ["2026-07-28"] }), /spec\.protocol/);
});

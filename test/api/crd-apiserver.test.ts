// The generated CRD on a real kube-apiserver: it is accepted (structural, CEL within the cost
// budget), every example is admitted, and the cross-field rules refuse the same specs the zod
// schema refuses, with the same message (CEL and zod are written side by side in v1alpha1.ts).
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { stringify } from "yaml";
import { validateMcpServer } from "../../operator/src/api/validate.ts";
import { crdYaml } from "../../cli/src/commands/crd.ts";
import { type ControlPlane, startControlPlane } from "../../dev/controlplane/index.ts";
import { mcpServerArbitrary } from "../render/arbitrary.ts";
import { waitUntil } from "../support/index.ts";
import { mcpServerDoc } from "../support/mcpserver.ts";
import { NON_CANONICAL_FIELDS, RESERVED_MOUNT_PATH_SPELLINGS, withSpec as withPathSpec, withVolume } from "./path-cases.ts";
import { EXAMPLES_DIR, mcpServerExampleFiles } from "../support/examples.ts";

const EXAMPLES = EXAMPLES_DIR;
let cp: ControlPlane;

before(async () => {
  cp = await startControlPlane();
  const applied = await cp.kubectl(["apply", "--server-side", "-f", "-"], { input: crdYaml() });
  assert.equal(applied.code, 0, applied.stderr);
  // Not `kubectl wait --for=condition=Established`: it fails outright ("<nil> is of the type <nil>") when it
  // looks before the CRD has any condition, which a loaded machine makes likely. Poll for the condition.
  await waitUntil(
    "the McpServer CRD to be Established",
    async () => {
      const r = await cp.kubectl(["get", "crd", "mcpservers.mcp.bastion.dev", "-o", "jsonpath={.status.conditions}"]);
      if (r.code !== 0) throw new Error(r.stderr.trim());
      return r.stdout ? (JSON.parse(r.stdout) as { type: string; status: string }[]) : [];
    },
    (conditions) => conditions.some((c) => c.type === "Established" && c.status === "True"),
  );
  for (const ns of ["agents", "data", "cel"]) {
    const r = await cp.kubectl(["create", "namespace", ns]);
    assert.equal(r.code, 0, r.stderr);
  }
});
after(async () => {
  await cp?.stop();
});

/** Server-side dry run with strict field validation: what `kubectl apply` would get. */
async function dryRun(doc: unknown) {
  return cp.kubectl(["apply", "--server-side", "--dry-run=server", "--validate=strict", "--field-manager=test", "-f", "-"], {
    input: stringify(doc, { version: "1.1" }),
  });
}

test("every example is admitted by the API server", async () => {
  for (const { file, path } of mcpServerExampleFiles()) {
    const r = await cp.kubectl(["apply", "--server-side", "--dry-run=server", "--validate=strict", "--field-manager=test", "-f", path]);
    assert.equal(r.code, 0, `${file}: ${r.stderr}`);
  }
});

test("kubectl explain shows the descriptions and get shows the printer columns", async () => {
  // The OpenAPI document the API server publishes for a new CRD lags its Established condition.
  const explain = await waitUntil(
    "kubectl explain mcpservers.spec.auth to work (published OpenAPI)",
    () => cp.kubectl(["explain", "mcpservers.spec.auth"]),
    (r) => r.code === 0,
    60_000,
    500,
  );
  assert.match(explain.stdout, /no\s+anonymous mode/);
  const protocol = await cp.kubectl(["explain", "mcpservers.spec.protocol.versions"]);
  assert.equal(protocol.code, 0, protocol.stderr);
  for (const said of [/allowlist/, /2026-07-28\s+is\s+stateless/, /-32022/]) assert.match(protocol.stdout, said);
  const created = await cp.kubectl(["apply", "--server-side", "--field-manager=test", "-f", join(EXAMPLES, "everything.yaml")]);
  assert.equal(created.code, 0, created.stderr);
  const get = await waitUntil(
    "kubectl get mcps (the short name) to work",
    () => cp.kubectl(["get", "mcps", "-n", "agents"]),
    (r) => r.code === 0,
    60_000,
    500,
  );
  assert.match(get.stdout.split("\n")[0]!, /NAME\s+READY\s+TRANSPORT\s+AUTH\s+MTLS\s+URL\s+AGE/);
  assert.match(get.stdout, /everything\s+streamable-http/);
});

const withSpec = (patch: Record<string, unknown>) => mcpServerDoc(patch, { name: "cel", namespace: "cel" });
const BASE = withSpec({});

const REFUSED: [string, unknown, string][] = [
  ["no auth", withSpec({ auth: {} }), "spec.auth must set at least one of apiKeys, jwt, mtls"],
  ["stdio with port", withSpec({ transport: { type: "stdio", port: 3000 }, command: ["x"] }), "spec.transport.port must not be set when type is stdio"],
  ["stdio without command", withSpec({ transport: { type: "stdio" } }), "spec.command is required when spec.transport.type is stdio"],
  ["mtls without mesh", withSpec({ auth: { mtls: { spiffeIds: ["spiffe://cluster.local/ns/a/sa/b"] } } }), "spec.auth.mtls requires spec.mesh.istio.enabled"],
  [
    "hosts without mesh",
    withSpec({ network: { egress: [{ hosts: ["api.github.com"], ports: [{ port: 443 }] }] } }),
    "spec.network.egress[].hosts requires spec.mesh.istio.enabled",
  ],
  ["http issuer", withSpec({ auth: { jwt: { issuer: "http://id.example.com", audiences: ["a"] } } }), "spec.auth.jwt.issuer must use https"],
  [
    "duplicate pins",
    withSpec({
      tools: {
        pinned: [
          { name: "a", sha256: "a".repeat(64) },
          { name: "a", sha256: "b".repeat(64) },
        ],
      },
    }),
    '.spec.tools.pinned: duplicate entries for key [name="a"]',
  ],
  [
    "request over limit",
    withSpec({ resources: { requests: { memory: "1Gi" }, limits: { memory: "512Mi" } } }),
    "spec.resources.requests.memory must not exceed spec.resources.limits.memory",
  ],
  ["empty ingress peer", withSpec({ network: { ingress: [{}] } }), "spec.network.ingress[]: set namespaceSelector, podSelector or both"],
  // issue 14
  [
    "TLS from a Secret and an issuer",
    withSpec({ tls: { secretRef: { name: "cert" }, issuerRef: { name: "ca" } } }),
    "spec.tls: set exactly one of secretRef (a Secret you manage) and issuerRef (cert-manager issues it)",
  ],
  ["TLS 1.1", withSpec({ tls: { issuerRef: { name: "ca" }, minVersion: "1.1" } }), 'spec.tls.minVersion: Unsupported value: "1.1"'],
  ["name not a DNS label", { ...BASE, metadata: { name: "a.b", namespace: "cel" } }, "metadata.name must be a DNS label"],
  ["unknown field", withSpec({ privileged: true }), ".spec.privileged: field not declared in schema"],
  // issue 13's cross-field rules
  [
    "scopes without JWT",
    withSpec({ authorization: { requiredScopes: ["mcp:connect"] } }),
    "spec.authorization: OAuth scopes (scopes, requiredScopes, rules[].scopes) need spec.auth.jwt",
  ],
  [
    "empty time window",
    withSpec({
      authorization: { rules: [{ name: "r", clients: { apiKeys: ["a"] }, schedule: { windows: [{ start: "02:00", end: "02:00", timeZone: "UTC" }] } }] },
    }),
    "spec.authorization.rules[].schedule.windows[]: start and end must differ",
  ],
  [
    "notAfter before notBefore",
    withSpec({
      authorization: { rules: [{ name: "r", clients: { apiKeys: ["a"] }, schedule: { notBefore: "2026-12-02T00:00:00Z", notAfter: "2026-12-01T00:00:00Z" } }] },
    }),
    "spec.authorization.rules[].schedule: notBefore must be before notAfter",
  ],
  [
    "ipBlock with a selector",
    withSpec({ network: { ingress: [{ ipBlock: { cidr: "10.0.0.0/8" }, podSelector: { matchLabels: { a: "b" } } }] } }),
    "spec.network.ingress[]: ipBlock cannot be combined",
  ],
  // issue 11: the protocol revision allowlist holds only revisions the gateway speaks, each once, at least one
  [
    "unknown protocol version",
    withSpec({ protocol: { versions: ["2026-07-28", "2024-11-05"] } }),
    'spec.protocol.versions[1]: Unsupported value: "2024-11-05"',
  ],
  [
    "duplicate protocol version",
    withSpec({ protocol: { versions: ["2025-11-25", "2025-11-25"] } }),
    '.spec.protocol.versions: duplicate entries for key [="2025-11-25"]',
  ],
  [
    "empty protocol allowlist",
    withSpec({ protocol: { versions: [] } }),
    "spec.protocol.versions: Invalid value: 0: spec.protocol.versions in body should have at least 1 items",
  ],
  [
    "identity without headers or JWT",
    withSpec({ authorization: { identity: {} } }),
    "spec.authorization.identity: set headers, signedJwt, env or a combination",
  ],
  [
    "API keys from a Secret and a secret manager at once",
    withSpec({ auth: { apiKeys: { secretRef: { name: "k" }, externalSecret: { storeRef: { name: "vault" }, key: "mcp/keys" } } } }),
    "spec.auth.apiKeys: set exactly one of secretRef, externalSecret",
  ],
  ["API keys from nowhere", withSpec({ auth: { apiKeys: {} } }), "spec.auth.apiKeys: set exactly one of secretRef, externalSecret"],
  [
    "identity env on an HTTP server",
    withSpec({ authorization: { identity: { env: { subject: "MCP_SUBJECT" } } } }),
    "spec.authorization.identity.env is for stdio servers",
  ],
  [
    "identity env token without signedJwt",
    withSpec({ transport: { type: "stdio" }, command: ["x"], authorization: { identity: { env: { token: "MCP_TOKEN" } } } }),
    "spec.authorization.identity.env.token needs signedJwt",
  ],
  [
    "identity env name a program reads at start",
    withSpec({ transport: { type: "stdio" }, command: ["x"], authorization: { identity: { env: { subject: "LD_PRELOAD" } } } }),
    "spec.authorization.identity.env: the name is reserved",
  ],
  [
    "identity env name also set in spec.env",
    withSpec({
      transport: { type: "stdio" },
      command: ["x"],
      env: [{ name: "MCP_SUBJECT", value: "admin" }],
      authorization: { identity: { env: { subject: "MCP_SUBJECT" } } },
    }),
    "spec.env must not set a variable that spec.authorization.identity.env names",
  ],
];

test("the API server refuses what the zod schema refuses, naming the field", async () => {
  for (const [what, doc, message] of REFUSED) {
    const local = validateMcpServer(doc);
    assert.equal(local.ok, false, `${what}: zod accepted it`);
    const r = await dryRun(doc);
    assert.notEqual(r.code, 0, `${what}: the API server accepted it`);
    assert.ok(r.stderr.includes(message), `${what}: expected "${message}" in ${r.stderr}`);
  }
  const ok = await dryRun(withSpec({ resources: { requests: { memory: "512Mi", cpu: "0.5" }, limits: { memory: "1Gi", cpu: "500m" } } }));
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(validateMcpServer(withSpec({ resources: { requests: { cpu: "0.5" }, limits: { cpu: "500m" } } })).ok, "0.5 == 500m");
});

test("generated specs that zod accepts are admitted by the API server (CEL never refuses a valid spec)", async () => {
  const samples = fc.sample(mcpServerArbitrary, { numRuns: 40, seed: 20261123 });
  const docs = samples.map((input, i) => {
    assert.ok(validateMcpServer(input).ok);
    return stringify({ ...input, metadata: { name: `gen-${i}`, namespace: "cel" } }, { version: "1.1" });
  });
  const r = await cp.kubectl(["apply", "--server-side", "--dry-run=server", "--validate=strict", "--field-manager=test", "-f", "-"], {
    input: docs.join("---\n"),
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split("\n").length, samples.length);
});

/** Server-side dry run of several documents at once: the names the API server admitted, and its stderr. */
async function dryRunMany(docs: Record<string, unknown>[]): Promise<{ admitted: Set<string>; stderr: string }> {
  const r = await cp.kubectl(["apply", "--server-side", "--dry-run=server", "--validate=strict", "--field-manager=test", "-f", "-"], {
    input: docs.map((d) => stringify(d, { version: "1.1" })).join("---\n"),
  });
  const admitted = new Set([...r.stdout.matchAll(/mcpserver\.mcp\.bastion\.dev\/(\S+) serverside-applied/g)].map((m) => m[1]!));
  return { admitted, stderr: r.stderr };
}

test("the API server refuses every spelling of a reserved mount path and every non-canonical path, with zod's message", async () => {
  const named = (doc: { metadata: object }, i: number) => ({ ...doc, metadata: { ...doc.metadata, name: `path-${i}` } });
  const reserved = RESERVED_MOUNT_PATH_SPELLINGS.map((p, i) => named(withVolume(p), i));
  const { admitted, stderr } = await dryRunMany(reserved);
  assert.deepEqual(
    [...admitted].map((n) => RESERVED_MOUNT_PATH_SPELLINGS[Number(n.slice(5))]),
    [],
    "admitted mount paths that resolve onto the pod's own paths",
  );
  assert.ok(stderr.includes("spec.volumes[0].mountPath"), stderr);
  for (const [what, spec, message] of NON_CANONICAL_FIELDS) {
    assert.equal(validateMcpServer(withPathSpec(spec)).ok, false, `${what}: zod accepted it`);
    const r = await dryRun(withPathSpec(spec));
    assert.notEqual(r.code, 0, `${what}: the API server accepted it`);
    assert.ok(r.stderr.includes(message), `${what}: expected "${message}" in ${r.stderr}`);
  }
});

test("property: on generated mount paths the API server and zod agree, accepted or refused", async () => {
  const segment = fc.constantFrom("", ".", "..", "tmp", "var", "run", "secrets", "mcp", "opt", "mcp-bastion", "data", "x");
  const paths = fc.sample(
    fc.tuple(fc.array(segment, { minLength: 1, maxLength: 6 }), fc.boolean()).map(([segs, trailing]) => `/${segs.join("/")}${trailing ? "/" : ""}`),
    { numRuns: 60, seed: 20261130 },
  );
  const docs = paths.map((p, i) => ({ ...withVolume(p), metadata: { name: `gen-path-${i}`, namespace: "cel" } }));
  const { admitted } = await dryRunMany(docs);
  const disagree = docs.flatMap((d, i) => {
    const zod = validateMcpServer(d).ok;
    return zod === admitted.has(d.metadata.name) ? [] : [`${paths[i]} (zod ${zod ? "accepts" : "refuses"}, the API server ${zod ? "refuses" : "admits"})`];
  });
  assert.deepEqual(disagree, []);
  assert.ok(admitted.size > 0 && admitted.size < docs.length, `both outcomes occur (${admitted.size}/${docs.length} admitted)`);
});

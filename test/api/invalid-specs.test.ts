// Table-driven: each invalid McpServer is rejected by the zod schema (the same one the CRD is
// generated from) with a message that names the offending field.
import assert from "node:assert/strict";
import { test } from "node:test";
import { validateMcpServer } from "../../operator/src/api/validate.ts";
import { mcpServerDoc } from "../support/mcpserver.ts";

type Spec = Record<string, unknown>;
const withSpec = (patch: Spec) => mcpServerDoc(patch, { name: "srv", namespace: "ns" });
const BASE = withSpec({});
const ISTIO = { mesh: { istio: { enabled: true } } };
const JWT = { issuer: "https://id.example.com", audiences: ["mcp"] };

const CASES: [string, unknown, string][] = [
  ["no auth method", withSpec({ auth: {} }), "spec.auth must set at least one of apiKeys, jwt, mtls"],
  ["stdio with a port", withSpec({ transport: { type: "stdio", port: 3000 }, command: ["x"] }), "spec.transport.port must not be set when type is stdio"],
  ["stdio with a path", withSpec({ transport: { type: "stdio", path: "/mcp" }, command: ["x"] }), "spec.transport.path must not be set"],
  ["stdio without command", withSpec({ transport: { type: "stdio" } }), "spec.command is required"],
  ["HTTP without port", withSpec({ transport: { type: "sse" } }), "spec.transport.port is required"],
  ["unknown transport", withSpec({ transport: { type: "websocket", port: 3000 } }), "spec.transport.type"],
  ["privileged port", withSpec({ transport: { type: "streamable-http", port: 80 } }), "spec.transport.port"],
  ["relative path", withSpec({ transport: { type: "streamable-http", port: 3000, path: "mcp" } }), "spec.transport.path"],
  ["image with spaces", withSpec({ image: "bad image" }), "spec.image"],
  ["empty image", withSpec({ image: "" }), "spec.image"],
  ["zero replicas", withSpec({ replicas: 0 }), "spec.replicas"],
  ["fractional replicas", withSpec({ replicas: 1.5 }), "spec.replicas"],
  ["bad env name", withSpec({ env: [{ name: "1BAD", value: "x" }] }), "spec.env[0].name"],
  ["env from a secret ref", withSpec({ env: [{ name: "TOKEN", valueFrom: { secretKeyRef: { name: "s", key: "k" } } }] }), "spec.env[0]"],
  ["bad quantity", withSpec({ resources: { limits: { memory: "lots" } } }), "spec.resources.limits.memory"],
  ["malformed quantity", withSpec({ resources: { requests: { cpu: "1..5" } } }), "spec.resources.requests.cpu"],
  [
    "request over limit",
    withSpec({ resources: { requests: { memory: "1Gi" }, limits: { memory: "512Mi" } } }),
    "spec.resources.requests.memory must not exceed spec.resources.limits.memory",
  ],
  ["cpu request over limit", withSpec({ resources: { requests: { cpu: "1.5" }, limits: { cpu: "1200m" } } }), "spec.resources.requests.cpu must not exceed"],
  ["unknown resource", withSpec({ resources: { limits: { "nvidia.com/gpu": "1" } } }), "spec.resources.limits"],
  ["http issuer", withSpec({ auth: { jwt: { ...JWT, issuer: "http://id.example.com" } } }), "spec.auth.jwt.issuer must use https"],
  ["http JWKS", withSpec({ auth: { jwt: { ...JWT, jwksUri: "http://id.example.com/jwks" } } }), "spec.auth.jwt.jwksUri must use https"],
  [
    "both JWKS sources",
    withSpec({ auth: { jwt: { ...JWT, jwksUri: "https://x.example/jwks", jwksSecretRef: { name: "j" } } } }),
    "spec.auth.jwt: set at most one of jwksUri and jwksSecretRef",
  ],
  ["no audience", withSpec({ auth: { jwt: { ...JWT, audiences: [] } } }), "spec.auth.jwt.audiences"],
  ["HMAC algorithm", withSpec({ auth: { jwt: { ...JWT, algorithms: ["HS256"] } } }), "spec.auth.jwt.algorithms[0]"],
  ["none algorithm", withSpec({ auth: { jwt: { ...JWT, algorithms: ["none"] } } }), "spec.auth.jwt.algorithms[0]"],
  ["token age too long", withSpec({ auth: { jwt: { ...JWT, maxTokenAgeSeconds: 999999 } } }), "spec.auth.jwt.maxTokenAgeSeconds"],
  ["mTLS without mesh", withSpec({ auth: { mtls: { spiffeIds: ["spiffe://cluster.local/ns/a/sa/b"] } } }), "spec.auth.mtls requires spec.mesh.istio.enabled"],
  ["bad SPIFFE ID", withSpec({ ...ISTIO, auth: { mtls: { spiffeIds: ["cluster.local/ns/a/sa/b"] } } }), "spec.auth.mtls.spiffeIds[0]"],
  ["API key secret name", withSpec({ auth: { apiKeys: { secretRef: { name: "Bad_Name" } } } }), "spec.auth.apiKeys.secretRef.name"],
  ["rule without clients", withSpec({ authorization: { rules: [{ name: "r", clients: {} }] } }), "spec.authorization.rules[].clients must name at least one"],
  ["rule name", withSpec({ authorization: { rules: [{ name: "Rule One", clients: { apiKeys: ["a"] } }] } }), "spec.authorization.rules[0].name"],
  [
    "bad glob",
    withSpec({ authorization: { rules: [{ name: "r", clients: { apiKeys: ["a"] }, tools: { allow: ["rm -rf"] } }] } }),
    "spec.authorization.rules[0].tools.allow[0]",
  ],
  ["zero rate", withSpec({ limits: { perClient: { requestsPerMinute: 0 } } }), "spec.limits.perClient.requestsPerMinute"],
  ["huge body", withSpec({ limits: { maxRequestBytes: 1024 * 1024 * 1024 } }), "spec.limits.maxRequestBytes"],
  ["timeout too long", withSpec({ limits: { requestTimeoutSeconds: 7200 } }), "spec.limits.requestTimeoutSeconds"],
  ["redis with password", withSpec({ limits: { redis: { url: "redis://:hunter2@redis:6379" } } }), "spec.limits.redis.url: must not embed credentials"],
  ["redis scheme", withSpec({ limits: { redis: { url: "http://redis:6379" } } }), "spec.limits.redis.url"],
  [
    "OTLP endpoint scheme",
    withSpec({ audit: { otlp: { endpoint: "grpc://collector:4317" } } }),
    "spec.audit.otlp.endpoint: must be an http:// or https:// URL",
  ],
  [
    "OTLP endpoint credentials",
    withSpec({ audit: { otlp: { endpoint: "http://u:secret@collector:4318" } } }),
    "spec.audit.otlp.endpoint: must be an http:// or https:// URL without credentials",
  ],
  ["OTLP buffer too small", withSpec({ audit: { otlp: { endpoint: "http://collector:4318", bufferLines: 10 } } }), "spec.audit.otlp.bufferLines"],
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
    "spec.tools.pinned[].name must be unique",
  ],
  ["short hash", withSpec({ tools: { pinned: [{ name: "a", sha256: "abc" }] } }), "spec.tools.pinned[0].sha256"],
  ["onDrift value", withSpec({ tools: { onDrift: "Ignore" } }), "spec.tools.onDrift"],
  ["secret name", withSpec({ secrets: [{ name: "My Secret", storeRef: { name: "v" }, remoteRef: { key: "k" } }] }), "spec.secrets[0].name"],
  ["secret without key", withSpec({ secrets: [{ name: "s", storeRef: { name: "v" }, remoteRef: {} }] }), "spec.secrets[0].remoteRef.key"],
  [
    "secret file name",
    withSpec({ secrets: [{ name: "s", storeRef: { name: "v" }, remoteRef: { key: "k" }, fileName: "../etc/passwd" }] }),
    "spec.secrets[0].fileName",
  ],
  [
    "secret refresh",
    withSpec({ secrets: [{ name: "s", storeRef: { name: "v" }, remoteRef: { key: "k" }, refreshInterval: "soon" }] }),
    "spec.secrets[0].refreshInterval",
  ],
  [
    "volume with both sources",
    withSpec({ volumes: [{ name: "v", mountPath: "/data", configMap: { name: "c" }, persistentVolumeClaim: { claimName: "p" } }] }),
    "spec.volumes[]: set exactly one of configMap, persistentVolumeClaim",
  ],
  ["volume path traversal", withSpec({ volumes: [{ name: "v", mountPath: "/data/../etc", configMap: { name: "c" } }] }), "spec.volumes[0].mountPath"],
  [
    "volume over /tmp",
    withSpec({ volumes: [{ name: "v", mountPath: "/tmp", configMap: { name: "c" } }] }),
    "spec.volumes[0].mountPath: must not be, lie inside or contain /tmp",
  ],
  [
    "volume over the secrets",
    withSpec({ volumes: [{ name: "v", mountPath: "/var/run/secrets/mcp/token", configMap: { name: "c" } }] }),
    "spec.volumes[0].mountPath: must not be, lie inside or contain",
  ],
  [
    "two volumes, one path",
    withSpec({
      volumes: [
        { name: "a", mountPath: "/data", configMap: { name: "c" } },
        { name: "b", mountPath: "/data", configMap: { name: "d" } },
      ],
    }),
    "spec.volumes[].mountPath must be unique",
  ],
  ["hostPath volume", withSpec({ volumes: [{ name: "v", mountPath: "/data", hostPath: { path: "/" } }] }), "spec.volumes[0]"],
  [
    "egress hosts without mesh",
    withSpec({ network: { egress: [{ hosts: ["api.github.com"], ports: [{ port: 443 }] }] } }),
    "spec.network.egress[].hosts requires spec.mesh.istio.enabled",
  ],
  [
    "egress cidrs and hosts",
    withSpec({ ...ISTIO, network: { egress: [{ cidrs: ["10.0.0.0/8"], hosts: ["a.example.com"], ports: [{ port: 443 }] }] } }),
    "spec.network.egress[]: set exactly one of cidrs, hosts",
  ],
  ["bad CIDR", withSpec({ network: { egress: [{ cidrs: ["10.0.0.0"], ports: [{ port: 443 }] }] } }), "spec.network.egress[0].cidrs[0]"],
  ["egress without ports", withSpec({ network: { egress: [{ cidrs: ["10.0.0.0/8"], ports: [] }] } }), "spec.network.egress[0].ports"],
  ["empty ingress peer", withSpec({ network: { ingress: [{}] } }), "spec.network.ingress[]: set namespaceSelector, podSelector or both"],
  ["mtls mode", withSpec({ mesh: { istio: { enabled: true, mtlsMode: "DISABLE" } } }), "spec.mesh.istio.mtlsMode"],
  ["TLS with mesh", withSpec({ ...ISTIO, tls: { secretRef: { name: "cert" } } }), "spec.tls is for clusters without a mesh"],
  // issue 14: cert-manager issuance
  [
    "TLS from a Secret and an issuer",
    withSpec({ tls: { secretRef: { name: "cert" }, issuerRef: { name: "ca" } } }),
    "spec.tls: set exactly one of secretRef (a Secret you manage) and issuerRef (cert-manager issues it)",
  ],
  ["TLS from nowhere", withSpec({ tls: { minVersion: "1.2" } }), "spec.tls: set exactly one of secretRef"],
  ["TLS 1.1", withSpec({ tls: { issuerRef: { name: "ca" }, minVersion: "1.1" } }), 'spec.tls.minVersion: Invalid option: expected one of "1.2"|"1.3"'],
  [
    "issuer kind",
    withSpec({ tls: { issuerRef: { name: "ca", kind: "Vault" } } }),
    'spec.tls.issuerRef.kind: Invalid option: expected one of "Issuer"|"ClusterIssuer"',
  ],
  ["unknown spec field", withSpec({ privileged: true }), 'spec: unknown field(s) "privileged"'],
  ["unknown nested field", withSpec({ auth: { apiKeys: { secretRef: { name: "k" } }, anonymous: true } }), 'spec.auth: unknown field(s) "anonymous"'],
  ["name not a DNS label", { ...BASE, metadata: { name: "My_Server" } }, "metadata.name must be a DNS label"],
  ["wrong apiVersion", { ...BASE, apiVersion: "mcp.bastion.dev/v1" }, "apiVersion"],
  ["missing spec", { ...BASE, spec: undefined }, "spec"],
  // issue 13: the operator compiles CEL expressions and schema overlays and names the field and the error
  [
    "CEL syntax error in a constraint",
    withSpec({
      authorization: { constraints: [{ name: "c", tools: ["read_file"], conditions: [{ expression: "pathWithin(request.arguments.path, '/data'" }] }] },
    }),
    "spec.authorization.constraints[0].conditions[0].expression: invalid CEL expression \"pathWithin(request.arguments.path, '/data'\": at 1:",
  ],
  [
    "CEL unknown function in a rule",
    withSpec({ authorization: { rules: [{ name: "r", clients: { apiKeys: ["a"] }, conditions: [{ expression: "isAdmin(client.name)" }] }] } }),
    'spec.authorization.rules[0].conditions[0].expression: invalid CEL expression "isAdmin(client.name)": unknown function "isAdmin"',
  ],
  [
    "CEL unknown variable",
    withSpec({ authorization: { rules: [{ name: "r", clients: { apiKeys: ["a"] }, conditions: [{ expression: "args.path == '/'" }] }] } }),
    'undeclared reference to "args"',
  ],
  [
    "schema overlay with a misspelt keyword",
    withSpec({
      authorization: { constraints: [{ name: "c", tools: ["q"], arguments: { type: "object", properties: { limit: { type: "integer", maximun: 10 } } } }] },
    }),
    'spec.authorization.constraints[0].arguments: invalid JSON Schema: strict mode: unknown keyword: "maximun"',
  ],
  [
    "unknown time zone",
    withSpec({
      authorization: {
        rules: [{ name: "r", clients: { apiKeys: ["a"] }, schedule: { windows: [{ start: "02:00", end: "04:00", timeZone: "Europe/Atlantis" }] } }],
      },
    }),
    "spec.authorization.rules[0].schedule.windows[0].timeZone: must be an IANA time zone",
  ],
  [
    "bad window time",
    withSpec({
      authorization: { rules: [{ name: "r", clients: { apiKeys: ["a"] }, schedule: { windows: [{ start: "2am", end: "04:00", timeZone: "UTC" }] } }] },
    }),
    "spec.authorization.rules[0].schedule.windows[0].start: must be HH:MM",
  ],
  [
    "notAfter before notBefore",
    withSpec({
      authorization: { rules: [{ name: "r", clients: { apiKeys: ["a"] }, schedule: { notBefore: "2026-12-02T00:00:00Z", notAfter: "2026-12-01T00:00:00Z" } }] },
    }),
    "spec.authorization.rules[].schedule: notBefore must be before notAfter",
  ],
  [
    "bad source CIDR",
    withSpec({ authorization: { rules: [{ name: "r", clients: { apiKeys: ["a"] }, sources: ["10.0.0.0"] }] } }),
    "spec.authorization.rules[0].sources[0]: must be a CIDR",
  ],
  ["scopes without JWT", withSpec({ authorization: { requiredScopes: ["mcp:connect"] } }), "spec.authorization: OAuth scopes"],
  [
    "scope with a space",
    withSpec({ auth: { jwt: JWT }, authorization: { scopes: [{ name: "s", tools: ["q"], scopes: ["db read"] }] } }),
    "spec.authorization.scopes[0].scopes[0]: must be an OAuth scope token",
  ],
  [
    "identity header reserved name shape",
    withSpec({ authorization: { identity: { headers: { subject: "X Subject" } } } }),
    "spec.authorization.identity.headers.subject",
  ],
  [
    "identity header that the gateway strips",
    withSpec({ authorization: { identity: { headers: { subject: "Authorization" } } } }),
    'spec.authorization.identity: headers.subject: "Authorization" is reserved',
  ],
  [
    "ipBlock with a selector",
    withSpec({ network: { ingress: [{ ipBlock: { cidr: "10.0.0.0/8" }, podSelector: { matchLabels: { a: "b" } } }] } }),
    "spec.network.ingress[]: ipBlock cannot be combined",
  ],
  [
    "API keys from a Secret and a secret manager at once",
    withSpec({ auth: { apiKeys: { secretRef: { name: "k" }, externalSecret: { storeRef: { name: "vault" }, key: "mcp/keys" } } } }),
    "spec.auth.apiKeys: set exactly one of secretRef, externalSecret",
  ],
  [
    "API keys from a store with a bad refresh interval",
    withSpec({ auth: { apiKeys: { externalSecret: { storeRef: { name: "vault" }, key: "mcp/keys", refreshInterval: "daily" } } } }),
    "spec.auth.apiKeys.externalSecret.refreshInterval: must be a duration",
  ],
  ["unknown image policy", withSpec({ imagePolicy: "Digest" }), "spec.imagePolicy"],
  [
    "identity env on an HTTP server",
    withSpec({ authorization: { identity: { env: { subject: "MCP_SUBJECT" } } } }),
    "spec.authorization.identity.env is for stdio servers",
  ],
  [
    "identity env name a program reads at start",
    withSpec({ transport: { type: "stdio" }, command: ["x"], authorization: { identity: { env: { subject: "NODE_OPTIONS" } } } }),
    "spec.authorization.identity.env.subject: spec.authorization.identity.env: the name is reserved",
  ],
  [
    "identity env name used twice",
    withSpec({ transport: { type: "stdio" }, command: ["x"], authorization: { identity: { env: { subject: "MCP_WHO", client: "MCP_WHO" } } } }),
    'spec.authorization.identity: env.subject: "MCP_WHO" is used twice',
  ],
  [
    "identity env token without signedJwt",
    withSpec({ transport: { type: "stdio" }, command: ["x"], authorization: { identity: { env: { token: "MCP_TOKEN" } } } }),
    "spec.authorization.identity.env.token needs signedJwt",
  ],
];

test(`${CASES.length} invalid specs are each rejected with a message naming the field`, () => {
  assert.ok(CASES.length >= 25);
  const failures: string[] = [];
  for (const [what, input, expected] of CASES) {
    const r = validateMcpServer(input);
    if (r.ok) {
      failures.push(`${what}: accepted`);
      continue;
    }
    if (!r.errors.some((e) => e.startsWith(expected) || e.includes(expected))) failures.push(`${what}: expected "${expected}" in ${JSON.stringify(r.errors)}`);
    // the field is named at the start of the message (path or the rule's own message)
    for (const e of r.errors) if (!/^(spec|metadata|apiVersion|kind)\b/.test(e)) failures.push(`${what}: message does not start with a field: ${e}`);
  }
  assert.deepEqual(failures, []);
});

test("the base spec itself is valid (so each case fails for its own reason)", () => {
  const r = validateMcpServer(BASE);
  assert.ok(r.ok, r.ok ? "" : r.errors.join("; "));
});

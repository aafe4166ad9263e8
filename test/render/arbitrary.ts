// A fast-check generator of valid McpServer documents over the schema: every feature (each auth
// method, stdio and HTTP transports, Istio with host egress, TLS, secrets, volumes, pins, Redis,
// replicas) appears in a share of them, combined the ways the cross-field rules allow.
import fc from "fast-check";
import { SUPPORTED_PROTOCOL_VERSIONS } from "../../contract/gateway-config.ts";
import type { McpServerInput } from "../../operator/src/api/v1alpha1.ts";

const label = fc.stringMatching(/^[a-z]([a-z0-9-]{0,14}[a-z0-9])?$/);
const hex64 = fc.stringMatching(/^[a-f0-9]{64}$/);
const toolName = fc.stringMatching(/^[a-z][a-z0-9_-]{0,20}$/);
const glob = fc.oneof(
  toolName,
  fc.constant("*"),
  toolName.map((t) => `${t}*`),
);
const host = fc.tuple(label, fc.constantFrom("com", "io", "dev")).map(([a, b]) => `${a}.${b}`);
const cidr = fc.tuple(fc.nat(255), fc.nat(255), fc.constantFrom(8, 16, 24, 32)).map(([a, b, m]) => `10.${a}.${b}.0/${m}`);
const port = fc.integer({ min: 1, max: 65535 });
const quantity = fc.constantFrom("100m", "250m", "1", "2", "64Mi", "128Mi", "1Gi");
const uniq = <T>(arb: fc.Arbitrary<T>, key: (t: T) => string, max: number) => fc.uniqueArray(arb, { selector: key, maxLength: max });

export const mcpServerArbitrary: fc.Arbitrary<McpServerInput> = fc
  .record({
    name: label,
    namespace: label,
    uid: fc.option(fc.uuid(), { nil: undefined }),
    digest: fc.boolean(),
    imageHash: hex64,
    stdio: fc.boolean(),
    httpType: fc.constantFrom("streamable-http" as const, "sse" as const),
    httpPort: fc.integer({ min: 1024, max: 65535 }),
    command: fc.array(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 3 }),
    args: fc.option(fc.array(fc.string({ maxLength: 12 }), { maxLength: 3 }), { nil: undefined }),
    env: uniq(fc.record({ name: fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,10}$/), value: fc.string({ maxLength: 20 }) }), (e) => e.name, 3),
    replicas: fc.integer({ min: 1, max: 5 }),
    resources: fc.option(
      fc.record(
        {
          requests: fc.option(fc.record({ cpu: quantity }, { requiredKeys: [] }), { nil: undefined }),
          limits: fc.option(fc.record({ memory: quantity, "ephemeral-storage": quantity }, { requiredKeys: [] }), { nil: undefined }),
        },
        { requiredKeys: [] },
      ),
      { nil: undefined },
    ),
    apiKeys: fc.boolean(),
    apiKeysFromStore: fc.boolean(),
    jwt: fc.option(fc.record({ jwksSecret: fc.boolean(), algs: fc.subarray(["RS256", "ES256", "EdDSA"] as const, { minLength: 1 }) }), { nil: undefined }),
    mtls: fc.boolean(),
    istio: fc.boolean(),
    permissive: fc.boolean(),
    tls: fc.constantFrom(false as const, "secret" as const, "Issuer" as const, "ClusterIssuer" as const),
    tlsMinVersion: fc.constantFrom("1.2" as const, "1.3" as const),
    rules: uniq(
      fc.record({
        name: label,
        clients: fc.oneof(
          fc.record({ apiKeys: fc.array(label, { minLength: 1, maxLength: 2 }) }),
          fc.record({ subjects: fc.array(label, { minLength: 1, maxLength: 2 }) }),
          fc.record({ groups: fc.array(label, { minLength: 1, maxLength: 2 }) }),
        ),
        tools: fc.option(fc.record({ allow: fc.uniqueArray(glob, { maxLength: 3 }), deny: fc.uniqueArray(glob, { maxLength: 2 }) }), { nil: undefined }),
      }),
      (r) => r.name,
      3,
    ),
    rpm: fc.integer({ min: 1, max: 100_000 }),
    burst: fc.option(fc.integer({ min: 1, max: 1000 }), { nil: undefined }),
    perTool: uniq(fc.record({ tool: toolName, requestsPerMinute: fc.integer({ min: 1, max: 1000 }) }), (t) => t.tool, 3),
    redis: fc.boolean(),
    pinned: uniq(fc.record({ name: toolName, sha256: hex64 }), (p) => p.name, 4),
    onDrift: fc.constantFrom("Block" as const, "Warn" as const),
    scan: fc.boolean(),
    secrets: uniq(
      fc.record({
        name: label,
        storeRef: fc.record({ name: label, kind: fc.constantFrom("SecretStore" as const, "ClusterSecretStore" as const) }),
        remoteRef: fc.record({ key: fc.stringMatching(/^[a-z][a-z0-9/]{0,20}$/), property: fc.option(label, { nil: undefined }) }, { requiredKeys: ["key"] }),
        fileName: fc.option(fc.stringMatching(/^[a-z][a-z0-9_.-]{0,10}$/), { nil: undefined }),
      }),
      (s) => s.name,
      3,
    ),
    volumes: uniq(fc.record({ name: label, cm: fc.boolean(), ref: label, readOnly: fc.boolean(), dir: label }), (v) => v.name, 2),
    ingress: fc.array(fc.record({ ns: fc.option(label, { nil: undefined }), pod: label }), { maxLength: 2 }),
    cidrEgress: fc.array(fc.record({ cidrs: fc.array(cidr, { minLength: 1, maxLength: 2 }), ports: fc.array(port, { minLength: 1, maxLength: 2 }) }), {
      maxLength: 2,
    }),
    hostEgress: fc.array(
      fc.record({
        hosts: fc.uniqueArray(host, { minLength: 1, maxLength: 2 }),
        ports: fc.array(fc.constantFrom(443, 8443, 5432), { minLength: 1, maxLength: 2 }),
        wildcard: fc.boolean(),
      }),
      { maxLength: 2 },
    ),
    allowDNS: fc.boolean(),
    redactKeys: fc.uniqueArray(label, { maxLength: 3 }),
    protocolVersions: fc.option(fc.shuffledSubarray([...SUPPORTED_PROTOCOL_VERSIONS], { minLength: 1 }), { nil: undefined }),
  })
  .map((g) => {
    const istio = g.istio;
    const auth: Record<string, unknown> = {};
    if (g.apiKeys)
      auth.apiKeys = g.apiKeysFromStore
        ? { externalSecret: { storeRef: { name: "vault" }, key: `mcp/${g.name}/api-keys`, refreshInterval: "30m" } }
        : { secretRef: { name: `${g.name}-keys` } };
    if (g.jwt) {
      auth.jwt = {
        issuer: "https://issuer.example.com/realms/a",
        audiences: ["mcp"],
        ...(g.jwt.jwksSecret ? { jwksSecretRef: { name: "jwks" } } : { jwksUri: "https://issuer.example.com/jwks" }),
        algorithms: [...g.jwt.algs],
      };
    }
    if (g.mtls && istio) auth.mtls = { spiffeIds: [`spiffe://cluster.local/ns/${g.namespace}/sa/client`] };
    if (Object.keys(auth).length === 0) auth.apiKeys = { secretRef: { name: "keys" } };
    const spec: Record<string, unknown> = {
      image: g.digest ? `registry.example/mcp/server@sha256:${g.imageHash}` : "registry.example/mcp/server:1.2.3",
      transport: g.stdio ? { type: "stdio" } : { type: g.httpType, port: g.httpPort },
      replicas: g.replicas,
      env: g.env,
      auth,
      authorization: { rules: g.rules },
      limits: {
        perClient: { requestsPerMinute: g.rpm, ...(g.burst ? { burst: g.burst } : {}) },
        perTool: g.perTool,
        ...(g.redis ? { redis: { url: "redis://redis.shared.svc:6379/0" } } : {}),
      },
      tools: { pinned: g.pinned, onDrift: g.onDrift, scanDescriptions: g.scan },
      secrets: g.secrets.map((s) => ({
        ...s,
        remoteRef: { key: s.remoteRef.key, ...(s.remoteRef.property ? { property: s.remoteRef.property } : {}) },
        ...(s.fileName ? { fileName: s.fileName } : { fileName: undefined }),
      })),
      volumes: g.volumes.map((v) => ({
        name: v.name,
        mountPath: `/mnt/${v.dir}/${v.name}`,
        readOnly: v.readOnly,
        ...(v.cm ? { configMap: { name: v.ref } } : { persistentVolumeClaim: { claimName: v.ref } }),
      })),
      network: {
        ingress: g.ingress.map((p) => ({
          ...(p.ns ? { namespaceSelector: { matchLabels: { team: p.ns } } } : {}),
          podSelector: { matchLabels: { app: p.pod } },
        })),
        egress: [
          ...g.cidrEgress.map((e) => ({ cidrs: e.cidrs, ports: e.ports.map((p) => ({ port: p })) })),
          // Wildcard hosts only on 443 (the schema refuses them elsewhere: only SNI can match them).
          ...(istio
            ? g.hostEgress.map((e) =>
                e.wildcard
                  ? { hosts: [`*.${e.hosts[0]}`, ...e.hosts.slice(1)], ports: [{ port: 443 }] }
                  : { hosts: e.hosts, ports: e.ports.map((p) => ({ port: p })) },
              )
            : []),
        ],
        allowDNS: g.allowDNS,
      },
      mesh: { istio: { enabled: istio, mtlsMode: g.permissive ? "PERMISSIVE" : "STRICT" } },
      audit: { redactKeys: g.redactKeys },
    };
    if (g.stdio) spec.command = g.command;
    if (g.args) spec.args = g.args;
    if (g.resources) spec.resources = g.resources;
    if (g.protocolVersions) spec.protocol = { versions: g.protocolVersions };
    if (g.tls && !istio) {
      const source = g.tls === "secret" ? { secretRef: { name: `${g.name}-tls` } } : { issuerRef: { name: "ca", kind: g.tls } };
      spec.tls = { ...source, minVersion: g.tlsMinVersion };
    }
    return {
      apiVersion: "mcp.bastion.dev/v1alpha1" as const,
      kind: "McpServer" as const,
      metadata: { name: g.name, namespace: g.namespace, ...(g.uid ? { uid: g.uid } : {}) },
      spec: JSON.parse(JSON.stringify(spec)),
    } as McpServerInput;
  });

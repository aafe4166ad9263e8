// The checklist and the gateway config follow the spec: each opt-out shows up, each item reads the
// rendered objects, limits are divided across replicas unless Redis shares them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { GATEWAY_PATHS, GatewayConfigSchema } from "../../contract/gateway-config.ts";
import type { McpServer } from "../../operator/src/api/v1alpha1.ts";
import { computeChecklist } from "../../operator/src/render/checklist.ts";
import { renderMcpServer } from "../../operator/src/render/index.ts";
import { mcpServer } from "../support/mcpserver.ts";
import { list, obj } from "../support/objects.ts";
import { one, podOf } from "./properties.ts";

const server = (spec: Record<string, unknown>, name = "s"): McpServer => mcpServer(spec, { name });
const render = (s: McpServer) => renderMcpServer(s, { gatewayImage: "gw:1" });
const item = (s: McpServer, id: string) => render(s).checklist.find((c) => c.id === id)!;
const gatewayConfig = (s: McpServer) => {
  const cm = render(s).objects.find((o) => o.kind === "ConfigMap")!;
  return GatewayConfigSchema.parse(JSON.parse(String(obj(cm.data)["gateway.json"])));
};

test("the checklist has the 18 items of the issue, the 3 of issue 13 and the 1 of issue 11", () => {
  assert.deepEqual(
    render(server({})).checklist.map((c) => c.title),
    [
      "Transport encryption",
      "Authentication enforced",
      "Per-client credentials",
      "Tool-level authorization",
      "Least-privilege pod",
      "Secrets from a secret manager",
      "Rate limiting",
      "Input validation",
      "Timeouts",
      "Audit logging with redaction",
      "Network isolation",
      "Gateway in front",
      "Alerts on auth failures (metrics)",
      "Credential rotation (hot reload)",
      "Resource limits",
      "Tool description integrity",
      "Image pinned by digest",
      "Sanitized errors",
      "Scoped OAuth tokens",
      "Argument constraints",
      "Time-limited elevation",
      "Protocol revisions",
    ],
  );
});

test("a tag-only image is reported unsatisfied and listed as an opt-out; a digest is not", () => {
  const tagged = server({ image: "registry.example/mcp:1.0" });
  assert.equal(item(tagged, "image-pinned-by-digest").satisfied, false);
  assert.match(item(tagged, "image-pinned-by-digest").detail, /registry.example\/mcp:1.0/);
  assert.ok(render(tagged).optOuts.some((o) => o.includes("tag-only")));
  assert.equal(item(server({}), "image-pinned-by-digest").satisfied, true);
  assert.deepEqual(render(server({})).optOuts, []);
  // pulled once by digest, always by tag
  const c = (s: McpServer) => list(podOf(render(s)).spec.containers).find((x) => x.name === "server")!;
  assert.equal(c(server({})).imagePullPolicy, "IfNotPresent");
  assert.equal(c(tagged).imagePullPolicy, "Always");
});

test("transport encryption: STRICT mesh or gateway TLS satisfy it, PERMISSIVE is an opt-out", () => {
  assert.equal(item(server({}), "transport-encryption").satisfied, false);
  const strict = server({ mesh: { istio: { enabled: true } } });
  assert.equal(item(strict, "transport-encryption").satisfied, true);
  assert.equal(obj(obj(one(render(strict), "PeerAuthentication").spec).mtls).mode, "STRICT");
  const permissive = server({ mesh: { istio: { enabled: true, mtlsMode: "PERMISSIVE" } } });
  assert.equal(item(permissive, "transport-encryption").satisfied, false);
  assert.ok(render(permissive).optOuts.some((o) => o.includes("PERMISSIVE")));
  const tls = server({ tls: { secretRef: { name: "cert" } } });
  assert.equal(item(tls, "transport-encryption").satisfied, true);
  assert.deepEqual(gatewayConfig(tls).listen.tls, {
    certFile: `${GATEWAY_PATHS.tlsDir}/tls.crt`,
    keyFile: `${GATEWAY_PATHS.tlsDir}/tls.key`,
    minVersion: "1.3",
  });
  assert.match(render(tls).url, /^https:\/\/s\.ns\.svc\.cluster\.local:8443\/mcp$/);
});

test("tool integrity: onDrift Warn and scanDescriptions false are opt-outs and unsatisfy the item", () => {
  assert.equal(item(server({}), "tool-description-integrity").satisfied, true);
  const warn = server({ tools: { onDrift: "Warn" } });
  assert.equal(item(warn, "tool-description-integrity").satisfied, false);
  assert.ok(render(warn).optOuts.some((o) => o.startsWith("spec.tools.onDrift")));
  const noScan = server({ tools: { scanDescriptions: false } });
  assert.equal(item(noScan, "tool-description-integrity").satisfied, false);
  assert.ok(render(noScan).optOuts.some((o) => o.startsWith("spec.tools.scanDescriptions")));
});

test("a writable volume is an opt-out and is mounted writable", () => {
  const s = server({ volumes: [{ name: "work", mountPath: "/work", readOnly: false, persistentVolumeClaim: { claimName: "scratch" } }] });
  assert.ok(render(s).optOuts.some((o) => o.includes("writable volume at /work")));
  const mount = list(list(podOf(render(s)).spec.containers).find((c) => c.name === "server")!.volumeMounts).find((m) => m.mountPath === "/work")!;
  assert.equal(mount.readOnly, false);
});

test("rate limits are divided by replicas without Redis, shared with it, and never below 1", () => {
  const divided = server({ replicas: 3, limits: { perClient: { requestsPerMinute: 600 }, perTool: [{ tool: "q", requestsPerMinute: 2 }] } });
  const cfg = gatewayConfig(divided);
  assert.equal(cfg.limits.mode, "divided");
  assert.equal(cfg.limits.perClient.requestsPerMinute, 200);
  assert.equal(cfg.limits.perClient.burst, 33); // default burst 600/6 = 100, divided by 3
  assert.equal(cfg.limits.perTool[0]!.requestsPerMinute, 1);
  assert.equal(render(divided).rateLimitMode, "divided");
  assert.match(item(divided, "rate-limiting").detail, /divided by 3/);
  assert.ok(render(divided).warnings.some((w) => w.includes("divided by 3")));
  const shared = server({ replicas: 3, limits: { perClient: { requestsPerMinute: 600 }, redis: { url: "redis://redis:6379/0" } } });
  assert.equal(gatewayConfig(shared).limits.mode, "redis");
  assert.equal(gatewayConfig(shared).limits.perClient.requestsPerMinute, 600);
  assert.equal(gatewayConfig(shared).limits.redisUrl, "redis://redis:6379/0");
  assert.match(item(shared, "rate-limiting").detail, /Redis/);
});

test("tool authorization is unsatisfied without a rule granting tools (default deny)", () => {
  assert.equal(item(server({}), "tool-authorization").satisfied, false);
  const s = server({ authorization: { rules: [{ name: "a", clients: { apiKeys: ["ci"] }, tools: { allow: ["read_*"] } }] } });
  assert.equal(item(s, "tool-authorization").satisfied, true);
  assert.deepEqual(gatewayConfig(s).authorization.rules[0]!.tools, { allow: ["read_*"], deny: [] });
});

test("items read the rendered objects: a tampered pod or Service flips them", () => {
  const s = server({});
  const result = render(s);
  const tampered = structuredClone(result.objects);
  const dep = tampered.find((o) => o.kind === "Deployment")!;
  const pod = obj(obj(obj(dep.spec).template).spec);
  const srv = list(pod.containers).find((c) => c.name === "server")!;
  obj(srv.securityContext).privileged = true;
  srv.ports = [{ containerPort: 3000 }];
  delete obj(srv.resources).limits;
  const items = new Map(computeChecklist(s, tampered).map((c) => [c.id, c]));
  for (const id of ["least-privilege-pod", "gateway-in-front", "resource-limits", "sanitized-errors"]) {
    assert.equal(items.get(id)!.satisfied, false, id);
  }
  assert.match(items.get("least-privilege-pod")!.detail, /privileged/);
  const before = new Map(result.checklist.map((c) => [c.id, c.satisfied]));
  for (const id of ["least-privilege-pod", "gateway-in-front", "resource-limits"]) assert.equal(before.get(id), true, id);
});

test("gateway config: upstream, JWT from a Secret, resources defaults and user quantities", () => {
  const jwt = server({
    auth: { jwt: { issuer: "https://id.example.com", audiences: ["mcp"], jwksSecretRef: { name: "jwks", key: "keys.json" } } },
    resources: { requests: { memory: "300Mi" }, limits: { cpu: "2" } },
  });
  const cfg = gatewayConfig(jwt);
  assert.equal(cfg.auth.jwt?.jwksFile, `${GATEWAY_PATHS.jwksDir}/keys.json`);
  assert.equal(cfg.auth.apiKeys, undefined);
  assert.deepEqual(cfg.upstream, { transport: "streamable-http", url: "http://127.0.0.1:3000/mcp" });
  const pod = podOf(render(jwt)).spec;
  const jwksVol = list(pod.volumes).find((v) => obj(v.secret).secretName === "jwks")!;
  assert.deepEqual(obj(jwksVol.secret).items, [{ key: "keys.json", path: "keys.json" }]);
  const res = obj(list(pod.containers).find((c) => c.name === "server")!.resources);
  // a request without a limit gets the same limit; a limit without a request gets the same request
  assert.equal(obj(res.requests).memory, "300Mi");
  assert.equal(obj(res.limits).memory, "300Mi");
  assert.equal(obj(res.requests).cpu, "2");
  assert.equal(obj(res.limits).cpu, "2");
  assert.equal(typeof obj(res.limits)["ephemeral-storage"], "string");
  const sseServer = server({ transport: { type: "sse", port: 8000 } });
  const sse = gatewayConfig(sseServer);
  assert.deepEqual(sse.upstream, { transport: "sse", url: "http://127.0.0.1:8000/sse" });
  // clients reach every server over streamable HTTP at /mcp (the gateway keeps /sse for legacy clients)
  assert.equal(render(sseServer).url, "http://s.ns.svc.cluster.local:8443/mcp");
  assert.equal(sse.publicUrl, render(sseServer).url);
  const custom = server({ transport: { type: "streamable-http", port: 3000, path: "/v1/mcp" } });
  assert.equal(gatewayConfig(custom).publicUrl, "http://s.ns.svc.cluster.local:8443/v1/mcp");
  // a policy change rolls the pods (checksum annotation), an unrelated render does not
  const ann = (s: McpServer) => obj(podOf(render(s)).meta.annotations)["mcp.bastion.dev/config-sha256"];
  assert.equal(ann(jwt), ann(jwt));
  assert.notEqual(ann(jwt), ann(server({ ...jwt.spec, limits: { ...jwt.spec.limits, requestTimeoutSeconds: 5 } })));
});

test("the server container gets HOME=/tmp (writable) unless the spec sets HOME", () => {
  const envOf = (s: McpServer) => list(list(podOf(render(s)).spec.containers).find((c) => c.name === "server")!.env);
  assert.deepEqual(envOf(server({})), [{ name: "HOME", value: "/tmp" }]);
  assert.deepEqual(
    envOf(
      server({
        env: [
          { name: "HOME", value: "/data/home" },
          { name: "A", value: "1" },
        ],
      }),
    ),
    [
      { name: "HOME", value: "/data/home" },
      { name: "A", value: "1" },
    ],
  );
});

test("network policy: default peers, metrics namespaces, DNS, CIDR and mesh egress", () => {
  const plain = obj(one(render(server({})), "NetworkPolicy").spec);
  assert.deepEqual(list(plain.ingress)[0], {
    from: [{ podSelector: { matchLabels: { "mcp.bastion.dev/client": "true" } } }],
    ports: [{ port: 8443, protocol: "TCP" }],
  });
  assert.deepEqual(list(plain.ingress)[1], {
    from: [{ namespaceSelector: { matchLabels: { "mcp.bastion.dev/metrics": "true" } } }],
    ports: [{ port: 9090, protocol: "TCP" }],
  });
  assert.deepEqual(list(plain.egress), [
    {
      to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } }, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }],
      ports: [
        { port: 53, protocol: "UDP" },
        { port: 53, protocol: "TCP" },
      ],
    },
  ]);
  const noDns = obj(one(render(server({ network: { allowDNS: false } })), "NetworkPolicy").spec);
  assert.deepEqual(noDns.egress, []);
  const mesh = server({
    mesh: { istio: { enabled: true } },
    network: {
      egress: [
        { cidrs: ["10.1.0.0/16"], ports: [{ port: 5432 }] },
        { hosts: ["api.github.com"], ports: [{ port: 443 }] },
      ],
    },
  });
  const r = render(mesh);
  const egress = list(obj(one(r, "NetworkPolicy").spec).egress);
  assert.ok(
    egress.some((e) => list(e.ports).some((p) => p.port === 15012)),
    "istiod xDS allowed",
  );
  assert.ok(egress.some((e) => list(e.to).some((t) => obj(t.ipBlock).cidr === "10.1.0.0/16")));
  const se = obj(r.objects.find((o) => o.kind === "ServiceEntry" && o.metadata.name === "s-egress")?.spec);
  assert.deepEqual(se.hosts, ["api.github.com"]);
  assert.deepEqual(se.ports, [{ number: 443, name: "tls-443", protocol: "TLS" }]);
  assert.deepEqual(obj(one(r, "Sidecar").spec).egress, [{ hosts: ["istio-system/*", "./api.github.com", "./egress-cidr-0.s.mcp-bastion.internal"] }]);
  // CIDR destinations stay in the proxy (a ServiceEntry of their own), never excluded from it.
  assert.equal(obj(podOf(r).meta.annotations)["traffic.sidecar.istio.io/excludeOutboundIPRanges"], undefined);
});

test("AuthorizationPolicy: mTLS-only servers admit only their SPIFFE IDs", () => {
  const only = server({ mesh: { istio: { enabled: true } }, auth: { mtls: { spiffeIds: ["spiffe://cluster.local/ns/a/sa/b"] } } });
  const rules = list(obj(one(render(only), "AuthorizationPolicy").spec).rules);
  assert.deepEqual(rules[0], { to: [{ operation: { ports: ["8443"] } }], from: [{ source: { principals: ["cluster.local/ns/a/sa/b"] } }] });
  const mixed = server({
    mesh: { istio: { enabled: true } },
    auth: { apiKeys: { secretRef: { name: "k" } }, mtls: { spiffeIds: ["spiffe://cluster.local/ns/a/sa/b"] } },
  });
  assert.equal(list(obj(one(render(mixed), "AuthorizationPolicy").spec).rules)[0]!.from, undefined);
});

test("issue 14: the image policy shows in the image item: RequireDigest refuses a tag-only image, AllowTags reports it", () => {
  const enforced = item(server({ imagePolicy: "RequireDigest" }), "image-pinned-by-digest");
  assert.equal(enforced.satisfied, true);
  assert.match(enforced.detail, /pinned by sha256 digest; imagePolicy RequireDigest: a tag-only image is refused/);
  const tagged = item(server({ image: "registry.example/mcp:1.0", imagePolicy: "AllowTags" }), "image-pinned-by-digest");
  assert.equal(tagged.satisfied, false);
  assert.equal(
    tagged.detail,
    "tag-only image registry.example/mcp:1.0 (imagePolicy AllowTags: a tag-only image would be deployed; set RequireDigest to refuse it)",
  );
  // `mcp-bastion render` without a policy: the operator's default decides (it fills spec.imagePolicy in).
  assert.match(item(server({}), "image-pinned-by-digest").detail, /imagePolicy: the operator's default/);
});

test("issue 14: API keys from a secret manager: an ExternalSecret the gateway mounts, counted as rotated on its refresh schedule", () => {
  const s = server({ auth: { apiKeys: { externalSecret: { storeRef: { name: "vault" }, key: "mcp/s/api-keys", refreshInterval: "30m" } } } }, "orders");
  const r = render(s);
  const es = r.objects.filter((o) => o.kind === "ExternalSecret");
  assert.equal(es.length, 1);
  assert.equal(es[0]!.metadata.name, "orders-api-keys");
  assert.deepEqual(obj(es[0]!.spec), {
    refreshInterval: "30m",
    secretStoreRef: { name: "vault", kind: "SecretStore" },
    target: { name: "orders-api-keys", creationPolicy: "Owner", deletionPolicy: "Retain" },
    dataFrom: [{ extract: { key: "mcp/s/api-keys" } }],
  });
  const vol = list(podOf(r).spec.volumes).find((v) => v.name === "api-keys");
  assert.equal(obj(vol?.secret).secretName, "orders-api-keys");
  const rotation = item(s, "credential-rotation");
  assert.equal(rotation.satisfied, true);
  assert.match(
    rotation.detail,
    /API keys from the secret manager \(ExternalSecret orders-api-keys, SecretStore vault\): rotated on its refresh schedule, every 30m/,
  );
  assert.equal(item(s, "secrets-from-secret-manager").satisfied, true);
  // Keys in a Secret of the user's: rotation is by hand, and the gateway counts the keys without an expiry.
  assert.match(item(server({}), "credential-rotation").detail, /API keys \(keys without an expiry: gateway metric mcp_gateway_api_keys_without_expiry\)/);
  assert.ok(!item(server({}), "credential-rotation").detail.includes("refresh schedule"));
});

test("spec.audit.otlp: rendered into the gateway config, said in the audit item, and warned about without an egress rule", () => {
  const s = server({ audit: { otlp: { endpoint: "http://otel-collector.observability:4318" } } });
  assert.deepEqual(gatewayConfig(s).audit.otlp, { endpoint: "http://otel-collector.observability:4318", bufferLines: 10_000 });
  assert.match(item(s, "audit-logging").detail, /also sent to http:\/\/otel-collector\.observability:4318 over OTLP \(up to 10000 lines buffered/);
  assert.ok(render(s).warnings.some((w) => w.startsWith("spec.audit.otlp is set but spec.network.egress allows no destination")));
  const reachable = server({
    audit: { otlp: { endpoint: "http://10.0.0.9:4318", bufferLines: 500 } },
    network: { egress: [{ cidrs: ["10.0.0.9/32"], ports: [{ port: 4318 }] }] },
  });
  assert.equal(gatewayConfig(reachable).audit.otlp?.bufferLines, 500);
  assert.ok(!render(reachable).warnings.some((w) => w.startsWith("spec.audit.otlp")));
  assert.equal(gatewayConfig(server({})).audit.otlp, undefined, "no OTLP export unless asked for");
});

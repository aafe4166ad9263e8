// Invalid and malicious McpServer manifests. Each one either must be refused with a message that
// names `field` (by the zod schema, and by the API server through the CRD), or is legal and must
// render to something safe (`safe` lists what a reviewer would check by hand).
//
// The list is data: the test files apply it to the zod schema, to the real API server and to a
// running operator. Where the CRD cannot express a rule the zod schema has (a refinement), the API
// server stores the object and the operator must report a condition that names the field.
import type { McpServer } from "../../operator/src/api/v1alpha1.ts";
import type { RenderResult } from "../../operator/src/render/index.ts";
import { GATEWAY_NODE_OPTIONS } from "../../operator/src/render/workload.ts";
import { list, type Obj, obj } from "../support/objects.ts";

type Json = Record<string, unknown>;

export interface HostileSpec {
  /** Also the object's metadata.name, unless the case is about the name. */
  id: string;
  what: string;
  manifest: Json;
  /** Refused: the message must name this field (e.g. "spec.replicas"). */
  field?: string;
  /** Accepted: problems found in the render (empty = safe). */
  safe?: (r: RenderResult, s: McpServer) => string[];
}

export const NAMESPACE = "hostile";
const DIGEST = `sha256:${"a".repeat(64)}`;

/** A valid, minimal server (API keys, streamable HTTP). Cases start from a fresh copy of it. */
export function baseManifest(name: string): Json {
  return {
    apiVersion: "mcp.bastion.dev/v1alpha1",
    kind: "McpServer",
    metadata: { name, namespace: NAMESPACE },
    spec: {
      image: `ghcr.io/example/mcp@${DIGEST}`,
      transport: { type: "streamable-http", port: 3000 },
      auth: { apiKeys: { secretRef: { name: "keys" } } },
    },
  };
}

/** Copy of the base with `edit` applied to the spec (and optionally the whole object). */
function spec(id: string, edit: (s: Json, o: Json) => void): Json {
  const o = baseManifest(id);
  edit(o.spec as Json, o);
  return o;
}

const huge = (n: number) => "x".repeat(n);
const big = huge(100_000);

// ---- helpers for the "accepted and rendered safely" checks ----------------------------------------

export function podTemplates(r: RenderResult): { name: string; spec: Obj; annotations: Record<string, string>; labels: Record<string, string> }[] {
  return r.objects
    .filter((o) => o.kind === "Deployment")
    .map((d) => {
      const t = obj(obj(d.spec).template);
      const md = obj(t.metadata);
      return {
        name: d.metadata.name,
        spec: obj(t.spec),
        annotations: obj(md.annotations) as Record<string, string>,
        labels: obj(md.labels) as Record<string, string>,
      };
    });
}

function containers(r: RenderResult): Obj[] {
  return podTemplates(r).flatMap((p) => [...list(p.spec.initContainers), ...list(p.spec.containers)]);
}
function gateway(r: RenderResult): Obj | undefined {
  return containers(r).find((c) => list(c.ports).length > 0);
}

/** Only the gateway listens; every container has limits; user env never reaches the gateway. */
function baseline(r: RenderResult): string[] {
  const out: string[] = [];
  const listeners = containers(r).filter((c) => list(c.ports).length > 0);
  if (listeners.length !== 1) out.push(`expected exactly one listening container, got ${listeners.length}`);
  for (const c of containers(r)) {
    const lim = obj(obj(c.resources).limits);
    if (!lim.cpu || !lim.memory) out.push(`container ${String(c.name)} has no cpu/memory limit`);
  }
  for (const o of r.objects) {
    if (o.metadata.labels?.["app.kubernetes.io/managed-by"] !== "mcp-bastion") out.push(`${o.kind}/${o.metadata.name} lost managed-by=mcp-bastion`);
  }
  return out;
}

function gatewayEnvHasNo(r: RenderResult, names: string[]): string[] {
  const env = list(gateway(r)?.env).map((e) => String(e.name));
  return names.filter((n) => env.includes(n)).map((n) => `user env ${n} reached the gateway container`);
}

/** The gateway's NODE_OPTIONS is the renderer's own heap sizing, never a value from the spec. */
function gatewayNodeOptionsAreOurs(r: RenderResult): string[] {
  const values = list(gateway(r)?.env)
    .filter((e) => e.name === "NODE_OPTIONS")
    .map((e) => e.value);
  return values.length === 1 && values[0] === GATEWAY_NODE_OPTIONS
    ? []
    : [`gateway NODE_OPTIONS is ${JSON.stringify(values)}, not the renderer's ${GATEWAY_NODE_OPTIONS}`];
}

function sa(r: RenderResult): string[] {
  const out: string[] = [];
  for (const p of podTemplates(r)) if (p.spec.automountServiceAccountToken !== false) out.push(`pod ${p.name}: service account token mounted`);
  return out;
}

// ---- the list ------------------------------------------------------------------------------------

export const HOSTILE_SPECS: HostileSpec[] = [
  // wrong types
  {
    id: "image-number",
    what: "image is a number",
    field: "spec.image",
    manifest: spec("image-number", (s) => {
      s.image = 42;
    }),
  },
  {
    id: "image-empty",
    what: "empty image",
    field: "spec.image",
    manifest: spec("image-empty", (s) => {
      s.image = "";
    }),
  },
  {
    id: "image-shell",
    what: "shell command smuggled in the image",
    field: "spec.image",
    manifest: spec("image-shell", (s) => {
      s.image = "busybox; rm -rf /";
    }),
  },
  {
    id: "image-huge",
    what: "100 kB image reference",
    field: "spec.image",
    manifest: spec("image-huge", (s) => {
      s.image = big;
    }),
  },
  {
    id: "replicas-string",
    what: "replicas as a string",
    field: "spec.replicas",
    manifest: spec("replicas-string", (s) => {
      s.replicas = "3";
    }),
  },
  {
    id: "replicas-negative",
    what: "negative replicas",
    field: "spec.replicas",
    manifest: spec("replicas-negative", (s) => {
      s.replicas = -1;
    }),
  },
  {
    id: "replicas-absurd",
    what: "a million replicas",
    field: "spec.replicas",
    manifest: spec("replicas-absurd", (s) => {
      s.replicas = 1_000_000;
    }),
  },
  {
    id: "replicas-float",
    what: "fractional replicas",
    field: "spec.replicas",
    manifest: spec("replicas-float", (s) => {
      s.replicas = 1.5;
    }),
  },
  { id: "spec-string", what: "spec is a string", field: "spec", manifest: { ...baseManifest("spec-string"), spec: "privileged: true" } },
  {
    id: "command-string",
    what: "command as a string (shell form)",
    field: "spec.command",
    manifest: spec("command-string", (s) => {
      s.command = "sh -c 'id'";
    }),
  },
  {
    id: "args-too-many",
    what: "300 arguments",
    field: "spec.args",
    manifest: spec("args-too-many", (s) => {
      s.args = Array.from({ length: 300 }, (_, i) => `--a${i}`);
    }),
  },
  {
    id: "args-huge",
    what: "one 5000-character argument",
    field: "spec.args[0]",
    manifest: spec("args-huge", (s) => {
      s.args = [huge(5000)];
    }),
  },
  // transport
  {
    id: "transport-tcp",
    what: "transport type outside the enum",
    field: "spec.transport.type",
    manifest: spec("transport-tcp", (s) => {
      s.transport = { type: "tcp", port: 3000 };
    }),
  },
  {
    id: "transport-port-80",
    what: "privileged port 80",
    field: "spec.transport.port",
    manifest: spec("transport-port-80", (s) => {
      s.transport = { type: "streamable-http", port: 80 };
    }),
  },
  {
    id: "transport-port-big",
    what: "port 70000",
    field: "spec.transport.port",
    manifest: spec("transport-port-big", (s) => {
      s.transport = { type: "streamable-http", port: 70000 };
    }),
  },
  {
    id: "transport-stdio-port",
    what: "stdio with a port",
    field: "spec.transport.port",
    manifest: spec("transport-stdio-port", (s) => {
      s.transport = { type: "stdio", port: 3000 };
      s.command = ["mcp"];
    }),
  },
  {
    id: "transport-stdio-nocmd",
    what: "stdio without a command",
    field: "spec.command",
    manifest: spec("transport-stdio-nocmd", (s) => {
      s.transport = { type: "stdio" };
    }),
  },
  {
    id: "transport-path-url",
    what: "absolute URL as path (SSRF attempt)",
    field: "spec.transport.path",
    manifest: spec("transport-path-url", (s) => {
      s.transport = { type: "streamable-http", port: 3000, path: "http://169.254.169.254/latest" };
    }),
  },
  // authentication
  {
    id: "auth-empty",
    what: "no auth method (anonymous)",
    field: "spec.auth",
    manifest: spec("auth-empty", (s) => {
      s.auth = {};
    }),
  },
  {
    id: "auth-missing",
    what: "auth omitted",
    field: "spec.auth",
    manifest: spec("auth-missing", (s) => {
      delete s.auth;
    }),
  },
  {
    id: "jwt-http-issuer",
    what: "plain http issuer",
    field: "spec.auth.jwt.issuer",
    manifest: spec("jwt-http-issuer", (s) => {
      s.auth = { jwt: { issuer: "http://idp.example.com", audiences: ["mcp"] } };
    }),
  },
  {
    id: "jwt-alg-none",
    what: "alg none allowed",
    field: "spec.auth.jwt.algorithms[0]",
    manifest: spec("jwt-alg-none", (s) => {
      s.auth = { jwt: { issuer: "https://idp.example.com", audiences: ["mcp"], algorithms: ["none"] } };
    }),
  },
  {
    id: "jwt-alg-hs256",
    what: "HMAC allowed",
    field: "spec.auth.jwt.algorithms[0]",
    manifest: spec("jwt-alg-hs256", (s) => {
      s.auth = { jwt: { issuer: "https://idp.example.com", audiences: ["mcp"], algorithms: ["HS256"] } };
    }),
  },
  {
    id: "jwt-http-jwks",
    what: "plain http JWKS URL",
    field: "spec.auth.jwt.jwksUri",
    manifest: spec("jwt-http-jwks", (s) => {
      s.auth = { jwt: { issuer: "https://idp.example.com", audiences: ["mcp"], jwksUri: "http://idp.example.com/jwks" } };
    }),
  },
  {
    id: "jwt-no-audience",
    what: "empty audience list",
    field: "spec.auth.jwt.audiences",
    manifest: spec("jwt-no-audience", (s) => {
      s.auth = { jwt: { issuer: "https://idp.example.com", audiences: [] } };
    }),
  },
  {
    id: "jwt-max-age-absurd",
    what: "tokens valid for a year",
    field: "spec.auth.jwt.maxTokenAgeSeconds",
    manifest: spec("jwt-max-age-absurd", (s) => {
      s.auth = { jwt: { issuer: "https://idp.example.com", audiences: ["mcp"], maxTokenAgeSeconds: 31_536_000 } };
    }),
  },
  {
    id: "mtls-no-mesh",
    what: "mTLS identities without the mesh",
    field: "spec.auth.mtls",
    manifest: spec("mtls-no-mesh", (s) => {
      s.auth = { mtls: { spiffeIds: ["spiffe://cluster.local/ns/a/sa/b"] } };
    }),
  },
  // env and privileged settings smuggled through env
  {
    id: "env-bad-name",
    what: "env name with '=' and spaces",
    field: "spec.env[0].name",
    manifest: spec("env-bad-name", (s) => {
      s.env = [{ name: "A=B C", value: "1" }];
    }),
  },
  {
    id: "env-valuefrom",
    what: "env from a Secret key (secrets must be files)",
    field: "spec.env[0]",
    manifest: spec("env-valuefrom", (s) => {
      s.env = [{ name: "TOKEN", valueFrom: { secretKeyRef: { name: "db", key: "password" } } }];
    }),
  },
  {
    id: "env-huge-value",
    what: "100 kB env value",
    field: "spec.env[0].value",
    manifest: spec("env-huge-value", (s) => {
      s.env = [{ name: "BIG", value: big }];
    }),
  },
  {
    id: "env-duplicate",
    what: "the same env name twice",
    field: "spec.env[1]",
    manifest: spec("env-duplicate", (s) => {
      s.env = [
        { name: "MODE", value: "safe" },
        { name: "MODE", value: "unsafe" },
      ];
    }),
  },
  // pod-level settings smuggled as unknown fields
  {
    id: "unknown-securitycontext",
    what: "privileged securityContext in spec",
    field: "spec.securityContext",
    manifest: spec("unknown-securitycontext", (s) => {
      s.securityContext = { privileged: true, runAsUser: 0 };
    }),
  },
  {
    id: "unknown-hostnetwork",
    what: "hostNetwork in spec",
    field: "spec.hostNetwork",
    manifest: spec("unknown-hostnetwork", (s) => {
      s.hostNetwork = true;
    }),
  },
  {
    id: "unknown-serviceaccount",
    what: "a privileged service account name",
    field: "spec.serviceAccountName",
    manifest: spec("unknown-serviceaccount", (s) => {
      s.serviceAccountName = "cluster-admin";
    }),
  },
  {
    id: "unknown-in-transport",
    what: "hostPort inside transport",
    field: "spec.transport.hostPort",
    manifest: spec("unknown-in-transport", (s) => {
      s.transport = { type: "streamable-http", port: 3000, hostPort: 443 };
    }),
  },
  {
    id: "unknown-capabilities",
    what: "capabilities inside resources",
    field: "spec.resources.capabilities",
    manifest: spec("unknown-capabilities", (s) => {
      s.resources = { capabilities: { add: ["SYS_ADMIN"] } };
    }),
  },
  // volumes and host paths
  {
    id: "volume-hostpath",
    what: "hostPath volume",
    field: "spec.volumes[0].hostPath",
    manifest: spec("volume-hostpath", (s) => {
      s.volumes = [{ name: "root", mountPath: "/host", hostPath: { path: "/" } }];
    }),
  },
  {
    id: "volume-dotdot",
    what: "mount path escaping with ..",
    field: "spec.volumes[0].mountPath",
    manifest: spec("volume-dotdot", (s) => {
      s.volumes = [{ name: "data", mountPath: "/data/../../etc", configMap: { name: "cm" } }];
    }),
  },
  {
    id: "volume-relative",
    what: "relative mount path",
    field: "spec.volumes[0].mountPath",
    manifest: spec("volume-relative", (s) => {
      s.volumes = [{ name: "data", mountPath: "etc/shadow", configMap: { name: "cm" } }];
    }),
  },
  {
    id: "volume-both",
    what: "configMap and PVC at once",
    field: "spec.volumes",
    manifest: spec("volume-both", (s) => {
      s.volumes = [{ name: "data", mountPath: "/data", configMap: { name: "cm" }, persistentVolumeClaim: { claimName: "pvc" } }];
    }),
  },
  {
    id: "volume-duplicate",
    what: "two volumes with one name",
    field: "spec.volumes[1]",
    manifest: spec("volume-duplicate", (s) => {
      s.volumes = [
        { name: "data", mountPath: "/a", configMap: { name: "a" } },
        { name: "data", mountPath: "/b", configMap: { name: "b" } },
      ];
    }),
  },
  {
    id: "volume-too-many",
    what: "17 volumes",
    field: "spec.volumes",
    manifest: spec("volume-too-many", (s) => {
      s.volumes = Array.from({ length: 17 }, (_, i) => ({ name: `v${i}`, mountPath: `/v${i}`, configMap: { name: "cm" } }));
    }),
  },
  // resources and limits
  {
    id: "resources-negative",
    what: "negative memory limit",
    field: "spec.resources.limits.memory",
    manifest: spec("resources-negative", (s) => {
      s.resources = { limits: { memory: "-1Gi" } };
    }),
  },
  {
    id: "resources-word",
    what: "cpu limit 'unlimited'",
    field: "spec.resources.limits.cpu",
    manifest: spec("resources-word", (s) => {
      s.resources = { limits: { cpu: "unlimited" } };
    }),
  },
  {
    id: "resources-gpu",
    what: "an extended resource",
    field: "spec.resources.limits",
    manifest: spec("resources-gpu", (s) => {
      s.resources = { limits: { "nvidia.com/gpu": "8" } };
    }),
  },
  {
    id: "limits-body-zero",
    what: "zero-byte request limit",
    field: "spec.limits.maxRequestBytes",
    manifest: spec("limits-body-zero", (s) => {
      s.limits = { maxRequestBytes: 0 };
    }),
  },
  {
    id: "limits-body-absurd",
    what: "1 TB request limit",
    field: "spec.limits.maxRequestBytes",
    manifest: spec("limits-body-absurd", (s) => {
      s.limits = { maxRequestBytes: 1e12 };
    }),
  },
  {
    id: "limits-timeout-negative",
    what: "negative timeout",
    field: "spec.limits.requestTimeoutSeconds",
    manifest: spec("limits-timeout-negative", (s) => {
      s.limits = { requestTimeoutSeconds: -5 };
    }),
  },
  {
    id: "limits-rate-zero",
    what: "zero requests per minute",
    field: "spec.limits.perClient.requestsPerMinute",
    manifest: spec("limits-rate-zero", (s) => {
      s.limits = { perClient: { requestsPerMinute: 0 } };
    }),
  },
  {
    id: "limits-concurrency-absurd",
    what: "a billion concurrent requests",
    field: "spec.limits.maxConcurrentRequests",
    manifest: spec("limits-concurrency-absurd", (s) => {
      s.limits = { maxConcurrentRequests: 1e9 };
    }),
  },
  {
    id: "limits-redis-http",
    what: "rate-limit store over http",
    field: "spec.limits.redis.url",
    manifest: spec("limits-redis-http", (s) => {
      s.limits = { redis: { url: "http://evil.example.com" } };
    }),
  },
  {
    id: "limits-tooltimeout-dup",
    what: "one tool with two timeouts",
    field: "spec.limits.toolTimeouts[1]",
    manifest: spec("limits-tooltimeout-dup", (s) => {
      s.limits = {
        toolTimeouts: [
          { tool: "echo", timeoutSeconds: 1 },
          { tool: "echo", timeoutSeconds: 3600 },
        ],
      };
    }),
  },
  // tools and authorization
  {
    id: "pinned-duplicate",
    what: "one tool pinned twice",
    field: "spec.tools.pinned",
    manifest: spec("pinned-duplicate", (s) => {
      s.tools = {
        pinned: [
          { name: "echo", sha256: "a".repeat(64) },
          { name: "echo", sha256: "b".repeat(64) },
        ],
      };
    }),
  },
  {
    id: "pinned-bad-hash",
    what: "uppercase, short hash",
    field: "spec.tools.pinned[0].sha256",
    manifest: spec("pinned-bad-hash", (s) => {
      s.tools = { pinned: [{ name: "echo", sha256: "ABC" }] };
    }),
  },
  {
    id: "ondrift-ignore",
    what: "onDrift outside the enum",
    field: "spec.tools.onDrift",
    manifest: spec("ondrift-ignore", (s) => {
      s.tools = { onDrift: "Ignore" };
    }),
  },
  {
    id: "rule-bad-name",
    what: "rule name with '!'",
    field: "spec.authorization.rules[0].name",
    manifest: spec("rule-bad-name", (s) => {
      s.authorization = { rules: [{ name: "Admin!", clients: { apiKeys: ["a"] } }] };
    }),
  },
  {
    id: "rule-no-clients",
    what: "rule that matches nobody named (everyone?)",
    field: "spec.authorization.rules[0].clients",
    manifest: spec("rule-no-clients", (s) => {
      s.authorization = { rules: [{ name: "all", clients: {}, tools: { allow: ["*"] } }] };
    }),
  },
  {
    id: "rule-duplicate",
    what: "two rules with one name",
    field: "spec.authorization.rules[1]",
    manifest: spec("rule-duplicate", (s) => {
      s.authorization = {
        rules: [
          { name: "r", clients: { apiKeys: ["a"] } },
          { name: "r", clients: { apiKeys: ["b"] } },
        ],
      };
    }),
  },
  {
    id: "rule-regex-glob",
    what: "regex instead of a glob",
    field: "spec.authorization.rules[0].tools.allow[0]",
    manifest: spec("rule-regex-glob", (s) => {
      s.authorization = { rules: [{ name: "r", clients: { apiKeys: ["a"] }, tools: { allow: ["(.*)|rm -rf"] } }] };
    }),
  },
  // network, mesh, secrets, TLS
  {
    id: "egress-both",
    what: "egress with cidrs and hosts",
    field: "spec.network.egress[0]",
    manifest: spec("egress-both", (s, o) => {
      s.network = { egress: [{ cidrs: ["10.0.0.0/8"], hosts: ["api.github.com"], ports: [{ port: 443 }] }] };
      s.mesh = { istio: { enabled: true } };
      void o;
    }),
  },
  {
    id: "egress-hosts-nomesh",
    what: "hostname egress without the mesh",
    field: "spec.network.egress",
    manifest: spec("egress-hosts-nomesh", (s) => {
      s.network = { egress: [{ hosts: ["api.github.com"], ports: [{ port: 443 }] }] };
    }),
  },
  {
    id: "egress-bad-cidr",
    what: "CIDR with a shell suffix",
    field: "spec.network.egress[0].cidrs[0]",
    manifest: spec("egress-bad-cidr", (s) => {
      s.network = { egress: [{ cidrs: ["0.0.0.0/0; drop"], ports: [{ port: 443 }] }] };
    }),
  },
  {
    id: "egress-no-ports",
    what: "egress to every port",
    field: "spec.network.egress[0].ports",
    manifest: spec("egress-no-ports", (s) => {
      s.network = { egress: [{ cidrs: ["10.0.0.0/8"], ports: [] }] };
    }),
  },
  {
    id: "secret-traversal",
    what: "secret file name with ../",
    field: "spec.secrets[0].fileName",
    manifest: spec("secret-traversal", (s) => {
      s.secrets = [{ name: "db", storeRef: { name: "vault" }, remoteRef: { key: "db" }, fileName: "../../etc/passwd" }];
    }),
  },
  {
    id: "secret-kind",
    what: "secret store kind 'Secret'",
    field: "spec.secrets[0].storeRef.kind",
    manifest: spec("secret-kind", (s) => {
      s.secrets = [{ name: "db", storeRef: { name: "x", kind: "Secret" }, remoteRef: { key: "db" } }];
    }),
  },
  {
    id: "tls-with-mesh",
    what: "gateway TLS and the mesh at once",
    field: "spec.tls",
    manifest: spec("tls-with-mesh", (s) => {
      s.tls = { secretRef: { name: "tls" } };
      s.mesh = { istio: { enabled: true } };
    }),
  },
  {
    id: "mesh-disable",
    what: "mTLS mode DISABLE",
    field: "spec.mesh.istio.mtlsMode",
    manifest: spec("mesh-disable", (s) => {
      s.mesh = { istio: { enabled: true, mtlsMode: "DISABLE" } };
    }),
  },
  // metadata
  { id: "Name-Upper", what: "upper-case name", field: "metadata.name", manifest: baseManifest("Name-Upper") },
  {
    id: "name-64",
    what: "64-character name (too long for a Service)",
    field: "metadata.name",
    manifest: baseManifest(`n${"a".repeat(63)}`),
  },
  { id: "name-dotted", what: "dotted name (not a DNS label)", field: "metadata.name", manifest: baseManifest("evil.name") },

  // ---- legal but hostile: accepted, and the render must stay safe --------------------------------
  {
    id: "args-privileged",
    what: "docker-style privileged flags as arguments",
    manifest: spec("args-privileged", (s) => {
      s.args = ["--privileged", "--cap-add=SYS_ADMIN", "--net=host", "--pid=host", "-v", "/:/host"];
    }),
    safe: (r) => [...baseline(r), ...sa(r)],
  },
  {
    id: "env-ld-preload",
    what: "LD_PRELOAD, NODE_OPTIONS and the API server address as env",
    manifest: spec("env-ld-preload", (s) => {
      s.env = [
        { name: "LD_PRELOAD", value: "/tmp/evil.so" },
        { name: "NODE_OPTIONS", value: "--require /tmp/x.js" },
        { name: "KUBERNETES_SERVICE_HOST", value: "10.0.0.1" },
      ];
    }),
    safe: (r) => [...baseline(r), ...gatewayEnvHasNo(r, ["LD_PRELOAD", "KUBERNETES_SERVICE_HOST"]), ...gatewayNodeOptionsAreOurs(r)],
  },
  {
    id: "env-yaml-injection",
    what: "YAML/JSON with securityContext inside an env value",
    manifest: spec("env-yaml-injection", (s) => {
      s.env = [{ name: "X", value: 'x\nsecurityContext:\n  privileged: true\n"},{"privileged":true' }];
    }),
    safe: (r) => baseline(r),
  },
  {
    id: "command-mount-proc",
    what: "command that tries to mount /proc",
    manifest: spec("command-mount-proc", (s) => {
      s.command = ["/bin/sh", "-c", "mount -t proc proc /mnt && chroot /mnt"];
    }),
    safe: (r) => [...baseline(r), ...sa(r)],
  },
  {
    id: "labels-smuggled",
    what: "labels that claim another owner and client access",
    manifest: spec("labels-smuggled", (_s, o) => {
      (o.metadata as Json).labels = { "app.kubernetes.io/managed-by": "helm", "mcp.bastion.dev/server": "other", "mcp.bastion.dev/client": "true" };
    }),
    safe: (r) => {
      const out = baseline(r);
      for (const o of r.objects) if (o.metadata.labels?.["mcp.bastion.dev/server"] !== "labels-smuggled") out.push(`${o.kind} server label overridden`);
      for (const p of podTemplates(r)) if (p.labels["mcp.bastion.dev/client"] === "true") out.push("server pod became an MCP client");
      return out;
    },
  },
  {
    id: "annotations-apparmor",
    what: "AppArmor unconfined and seccomp annotations on the McpServer",
    manifest: spec("annotations-apparmor", (_s, o) => {
      (o.metadata as Json).annotations = {
        "container.apparmor.security.beta.kubernetes.io/server": "unconfined",
        "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
      };
    }),
    safe: (r) => baseline(r),
  },
  {
    id: "volume-writable-over-config",
    what: "writable PVC mounted where the gateway keeps its config",
    manifest: spec("volume-writable-over-config", (s) => {
      s.volumes = [{ name: "cfg", mountPath: "/etc/mcp-bastion", readOnly: false, persistentVolumeClaim: { claimName: "x" } }];
    }),
    safe: (r) => {
      const out = baseline(r);
      const gw = gateway(r);
      for (const m of list(gw?.volumeMounts))
        if (String(m.name).includes("cfg") && m.readOnly !== true) out.push("user volume mounted writable into the gateway");
      if (!r.optOuts.some((o) => /volume|writ/i.test(o))) out.push(`writable volume is not a visible opt-out: ${JSON.stringify(r.optOuts)}`);
      return out;
    },
  },
  {
    id: "optouts-all",
    what: "every loosening at once (Warn, no scan, PERMISSIVE)",
    manifest: spec("optouts-all", (s) => {
      s.tools = { onDrift: "Warn", scanDescriptions: false };
      s.mesh = { istio: { enabled: true, mtlsMode: "PERMISSIVE" } };
    }),
    safe: (r) => {
      const out = baseline(r);
      const o = r.optOuts.join(" | ");
      for (const needle of [/warn/i, /scan/i, /permissive/i]) if (!needle.test(o)) out.push(`opt-out ${needle} not listed: ${o}`);
      return out;
    },
  },
  {
    id: "image-tag-only",
    what: "tag-only image (mutable)",
    manifest: spec("image-tag-only", (s) => {
      s.image = "nginx:latest";
    }),
    safe: (r) => {
      const out = baseline(r);
      const flagged = [...r.checklist.filter((c) => !c.satisfied).map((c) => `${c.id} ${c.title} ${c.detail}`), ...r.optOuts].some((t) => /digest/i.test(t));
      if (!flagged) out.push("tag-only image not reported in the checklist or opt-outs");
      return out;
    },
  },
  {
    id: "replicas-max",
    what: "100 replicas without Redis",
    manifest: spec("replicas-max", (s) => {
      s.replicas = 100;
      s.limits = { perClient: { requestsPerMinute: 10 } };
    }),
    safe: (r) => {
      const out = baseline(r);
      if (r.rateLimitMode !== "divided") out.push(`rate limit mode ${r.rateLimitMode}`);
      if (!r.objects.some((o) => o.kind === "PodDisruptionBudget")) out.push("no PodDisruptionBudget for 100 replicas");
      return out;
    },
  },
  {
    id: "resources-absurd-valid",
    what: "absurd but well-formed quantities",
    manifest: spec("resources-absurd-valid", (s) => {
      s.resources = { requests: { cpu: "1m", memory: "1" }, limits: { cpu: "100000", memory: "1000Pi" } };
    }),
    safe: (r) => baseline(r),
  },
  {
    id: "unicode-tricks",
    what: "bidi override and zero-width characters in args, env and rule tools",
    manifest: spec("unicode-tricks", (s) => {
      s.args = ["\u202Egnp.exe", "e\u200Bcho"];
      s.env = [{ name: "GREETING", value: "\u202E\u0000\uFEFF" }];
      s.authorization = { rules: [{ name: "r", clients: { apiKeys: ["a"] }, tools: { allow: ["echo"] } }] };
    }),
    safe: (r) => baseline(r),
  },
  {
    id: "egress-everything",
    what: "egress to 0.0.0.0/0 on every TCP port the schema allows",
    manifest: spec("egress-everything", (s) => {
      s.network = { egress: [{ cidrs: ["0.0.0.0/0"], ports: [{ port: 1 }, { port: 443 }, { port: 65535 }] }] };
    }),
    safe: (r) => {
      const out = baseline(r);
      const np = r.objects.find((o) => o.kind === "NetworkPolicy");
      const types = obj(np?.spec).policyTypes;
      if (!Array.isArray(types) || !types.includes("Ingress") || !types.includes("Egress")) out.push("NetworkPolicy lost a policy type");
      // Legal, but it undoes egress isolation: a visible opt-out, never "network isolation satisfied".
      if (!r.optOuts.some((o) => o.includes("0.0.0.0/0"))) out.push(`0.0.0.0/0 egress is not a visible opt-out: ${JSON.stringify(r.optOuts)}`);
      if (r.checklist.find((c) => c.id === "network-isolation")?.satisfied !== false) out.push("0.0.0.0/0 egress reported as satisfied network isolation");
      return out;
    },
  },
  {
    id: "stdio-shell",
    what: "stdio server whose command is a shell one-liner",
    manifest: spec("stdio-shell", (s) => {
      s.transport = { type: "stdio" };
      s.command = ["/bin/sh", "-c", "nc -l -p 8443 -e /bin/sh"];
    }),
    safe: (r) => [...baseline(r), ...sa(r)],
  },
];

/**
 * Whether an error message names `field`: the full path (spec.auth.jwt.issuer: ...), or for an
 * unknown field its parent path and the field's own name quoted, the way both zod
 * (`spec: unknown field(s) "hostNetwork"`) and the API server (`unknown field "spec.hostNetwork"`) say it.
 */
export function namesField(message: string, field: string): boolean {
  if (message.includes(field)) return true;
  const m = /^(.*)\.([^.[\]]+)$/.exec(field);
  if (!m) return false;
  const [, parent, leaf] = m;
  return message.includes(`"${leaf}"`) && message.includes(parent!);
}

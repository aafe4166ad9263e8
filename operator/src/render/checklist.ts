// The security checklist for status.checklist: 21 items, each computed from the rendered objects
// (and the spec where the objects cannot tell), each with a one-line detail. Also the opt-outs: the
// security defaults this server explicitly loosens.
import { GATEWAY_PORTS, type GatewayConfig, GatewayConfigSchema } from "../../../gateway/src/config.ts";
import type { ChecklistItem, McpServer } from "../api/v1alpha1.ts";
import { isPublicAddressesPeer, isWideCidr, selectsAll, WIDE_PREFIX } from "./network.ts";
import { restrictedViolations } from "./restricted.ts";
import type { KubeObject } from "./types.ts";
import { isDigestPinned } from "./workload.ts";

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : {});
const list = (v: unknown): Obj[] => (Array.isArray(v) ? v.map(obj) : []);

export const CHECKLIST_IDS = [
  "transport-encryption",
  "authentication-enforced",
  "per-client-credentials",
  "tool-authorization",
  "least-privilege-pod",
  "secrets-from-secret-manager",
  "rate-limiting",
  "input-validation",
  "timeouts",
  "audit-logging",
  "network-isolation",
  "gateway-in-front",
  "auth-failure-alerts",
  "credential-rotation",
  "resource-limits",
  "tool-description-integrity",
  "image-pinned-by-digest",
  "sanitized-errors",
  // issue 13
  "scoped-tokens",
  "argument-constraints",
  "time-limited-elevation",
] as const;

/** What the checklist reads, pulled out of the rendered objects once. */
interface View {
  server: McpServer;
  objects: KubeObject[];
  deployment?: Obj;
  podSpec: Obj;
  podAnnotations: Record<string, string>;
  containers: Obj[];
  allContainers: Obj[];
  gateway?: Obj;
  service?: Obj;
  networkPolicy?: Obj;
  config?: GatewayConfig;
  serviceAccount?: Obj;
}

function find(objects: KubeObject[], kind: string): Obj | undefined {
  return objects.find((o) => o.kind === kind) as Obj | undefined;
}

function view(server: McpServer, objects: KubeObject[]): View {
  const deployment = find(objects, "Deployment");
  const template = obj(obj(deployment?.spec).template);
  const podSpec = obj(template.spec);
  const containers = list(podSpec.containers);
  const cm = objects.find((o) => o.kind === "ConfigMap" && typeof obj(o.data)["gateway.json"] === "string");
  let config: GatewayConfig | undefined;
  if (cm) {
    const parsed = GatewayConfigSchema.safeParse(JSON.parse(String(obj(cm.data)["gateway.json"])));
    if (parsed.success) config = parsed.data;
  }
  return {
    server,
    objects,
    deployment,
    podSpec,
    podAnnotations: obj(obj(template.metadata).annotations) as Record<string, string>,
    containers,
    allContainers: [...list(podSpec.initContainers), ...containers],
    gateway: containers.find((c) => c.name === "gateway"),
    service: find(objects, "Service"),
    networkPolicy: find(objects, "NetworkPolicy"),
    serviceAccount: find(objects, "ServiceAccount"),
    config,
  };
}

function item(id: (typeof CHECKLIST_IDS)[number], title: string, satisfied: boolean, detail: string): ChecklistItem {
  return { id, title, satisfied, detail };
}

const portsOf = (c: Obj | undefined) => list(c?.ports).map((p) => Number(p.containerPort));

/** The Service's target ports, resolved to numbers via the gateway's named ports. */
function serviceTargets(v: View): number[] {
  const named = new Map(list(v.gateway?.ports).map((p) => [String(p.name), Number(p.containerPort)]));
  return list(obj(v.service?.spec).ports).map((p) => {
    const t = p.targetPort ?? p.port;
    return typeof t === "string" ? (named.get(t) ?? Number.NaN) : Number(t);
  });
}

function gatewayInFront(v: View): { ok: boolean; detail: string } {
  const listening = v.allContainers.filter((c) => list(c.ports).length > 0).map((c) => String(c.name));
  const targets = serviceTargets(v);
  const ok =
    v.gateway !== undefined &&
    listening.length === 1 &&
    listening[0] === "gateway" &&
    targets.length === 1 &&
    targets[0] === GATEWAY_PORTS.mcp &&
    portsOf(v.gateway).includes(GATEWAY_PORTS.mcp);
  return ok
    ? { ok, detail: `only the gateway declares ports; the Service exposes only ${GATEWAY_PORTS.mcp}` }
    : { ok, detail: `containers with ports: ${listening.join(", ") || "none"}; Service targets: ${targets.join(", ") || "none"}` };
}

function secretMountsAre0400(v: View): { ok: boolean; bad: string[] } {
  const bad = list(v.podSpec.volumes)
    .filter((vol) => vol.secret !== undefined && obj(vol.secret).defaultMode !== 0o400)
    .map((vol) => String(vol.name));
  return { ok: bad.length === 0, bad };
}

function envSecretRefs(v: View): string[] {
  const out: string[] = [];
  for (const c of v.allContainers) {
    for (const e of list(c.env)) if (obj(e.valueFrom).secretKeyRef !== undefined) out.push(`${String(c.name)}:${String(e.name)}`);
    for (const f of list(c.envFrom)) if (f.secretRef !== undefined) out.push(`${String(c.name)}:envFrom`);
  }
  return out;
}

/**
 * NetworkPolicy rules that let more in or out than an allowlist should: ingress peers selecting every
 * namespace, ipBlocks wider than WIDE_PREFIX. The public-address peers of hostname rules count only
 * when no Sidecar with REGISTRY_ONLY narrows them to the allowlisted hosts.
 */
function wideNetworkRules(v: View): { wide: string[]; meshHosts: string[] } {
  const np = obj(v.networkPolicy?.spec);
  const sidecar = v.objects.find((o) => o.kind === "Sidecar");
  const registryOnly = obj(obj(sidecar?.spec).outboundTrafficPolicy).mode === "REGISTRY_ONLY";
  const wide: string[] = [];
  const meshHosts = new Set<string>();
  const portsOf = (r: Obj) => list(r.ports).map((p) => `${String(p.port)}/${String(p.protocol ?? "TCP")}`);
  for (const r of list(np.ingress)) {
    for (const peer of list(r.from)) {
      if (peer.namespaceSelector !== undefined && selectsAll(obj(peer.namespaceSelector))) wide.push(`ingress from every namespace (namespaceSelector {}) on ${portsOf(r).join(", ")}`);
      const block = obj(peer.ipBlock);
      if (typeof block.cidr === "string" && isWideCidr(block.cidr)) wide.push(`ingress from ${block.cidr}`);
    }
  }
  for (const r of list(np.egress)) {
    for (const peer of list(r.to)) {
      const block = obj(peer.ipBlock);
      if (typeof block.cidr !== "string" || !isWideCidr(block.cidr)) continue;
      if (registryOnly && isPublicAddressesPeer(peer)) for (const p of portsOf(r)) meshHosts.add(p);
      else wide.push(`egress to ${block.cidr} on ${portsOf(r).join(", ")}`);
    }
  }
  return { wide: [...new Set(wide)], meshHosts: [...meshHosts] };
}

export function computeChecklist(server: McpServer, objects: KubeObject[]): ChecklistItem[] {
  const v = view(server, objects);
  const cfg = v.config;
  const { spec } = server;
  const items: ChecklistItem[] = [];

  // 1. transport encryption
  const peer = objects.find((o) => o.kind === "PeerAuthentication");
  const peerMode = String(obj(obj(peer?.spec).mtls).mode ?? "");
  const tls = cfg?.listen.tls !== undefined;
  items.push(
    item(
      "transport-encryption",
      "Transport encryption",
      peerMode === "STRICT" || tls,
      peerMode === "STRICT"
        ? "Istio mTLS STRICT on the server's pods"
        : tls
          ? "the gateway terminates TLS (1.2 minimum)"
          : peerMode === "PERMISSIVE"
            ? "Istio mTLS PERMISSIVE: plaintext connections are accepted (opt-out)"
            : "no mesh and no spec.tls: traffic inside the cluster is plaintext",
    ),
  );

  // 2. authentication enforced
  const methods = cfg ? (["apiKeys", "jwt", "mtls"] as const).filter((m) => cfg.auth[m] !== undefined) : [];
  const front = gatewayInFront(v);
  items.push(
    item(
      "authentication-enforced",
      "Authentication enforced",
      methods.length > 0 && front.ok,
      methods.length > 0 ? `every request passes the gateway, which requires ${methods.join(" or ")}` : "the gateway has no auth method",
    ),
  );

  // 3. per-client credentials
  const perClient: string[] = [];
  if (cfg?.auth.apiKeys) perClient.push("one API key per client (Secret keys)");
  if (cfg?.auth.jwt) perClient.push(`JWT subject claim "${cfg.auth.jwt.subjectClaim}"`);
  if (cfg?.auth.mtls) perClient.push(`${cfg.auth.mtls.spiffeIds.length} SPIFFE identities`);
  items.push(item("per-client-credentials", "Per-client credentials", perClient.length > 0, perClient.join("; ") || "no client identity"));

  // 4. tool-level authorization
  const rules = cfg?.authorization.rules ?? [];
  const toolRules = rules.filter((r) => r.tools !== undefined && r.tools.allow.length > 0);
  items.push(
    item(
      "tool-authorization",
      "Tool-level authorization",
      toolRules.length > 0,
      toolRules.length > 0
        ? `${rules.length} rule(s), default deny; ${toolRules.length} grant tools`
        : "no rule grants any tool: every tool call is denied (default deny)",
    ),
  );

  // 5. least-privilege pod
  const violations = restrictedViolations(v.podSpec, v.podAnnotations);
  const tokenOff = v.podSpec.automountServiceAccountToken === false && v.serviceAccount?.automountServiceAccountToken === false;
  items.push(
    item(
      "least-privilege-pod",
      "Least-privilege pod",
      v.deployment !== undefined && violations.length === 0 && tokenOff,
      violations.length > 0
        ? `Pod Security restricted: ${violations[0]}${violations.length > 1 ? ` (+${violations.length - 1} more)` : ""}`
        : tokenOff
          ? "passes Pod Security restricted; no service account token; read-only root filesystem"
          : "service account token is mounted",
    ),
  );

  // 6. secrets from a secret manager
  const externalSecrets = objects.filter((o) => o.kind === "ExternalSecret").length;
  const modes = secretMountsAre0400(v);
  const envRefs = envSecretRefs(v);
  items.push(
    item(
      "secrets-from-secret-manager",
      "Secrets from a secret manager",
      externalSecrets === spec.secrets.length && modes.ok && envRefs.length === 0,
      envRefs.length > 0
        ? `secret values in environment variables: ${envRefs.join(", ")}`
        : !modes.ok
          ? `secret volumes not 0400: ${modes.bad.join(", ")}`
          : spec.secrets.length > 0
            ? `${externalSecrets} ExternalSecret(s), mounted as 0400 files, never env`
            : "no secrets requested; none in env",
    ),
  );

  // 7. rate limiting
  const limits = cfg?.limits;
  items.push(
    item(
      "rate-limiting",
      "Rate limiting",
      limits !== undefined && limits.perClient.requestsPerMinute > 0,
      limits === undefined
        ? "no limits"
        : limits.mode === "redis"
          ? `${limits.perClient.requestsPerMinute}/min per client, shared through Redis across ${limits.replicas} replica(s)`
          : `${limits.perClient.requestsPerMinute}/min per client per pod (limit divided by ${limits.replicas} replica(s), no shared store)`,
    ),
  );

  // 8. input validation
  items.push(
    item(
      "input-validation",
      "Input validation",
      limits !== undefined && limits.maxRequestBytes <= 16 * 1024 * 1024,
      limits ? `JSON-RPC validated at the gateway; bodies over ${limits.maxRequestBytes} bytes refused` : "no request size limit",
    ),
  );

  // 9. timeouts
  items.push(
    item(
      "timeouts",
      "Timeouts",
      limits !== undefined && limits.requestTimeoutSeconds > 0,
      limits
        ? `${limits.requestTimeoutSeconds}s per request${limits.toolTimeouts.length ? `, ${limits.toolTimeouts.length} per-tool override(s)` : ""}; ${limits.maxConcurrentRequests} concurrent`
        : "no timeouts",
    ),
  );

  // 10. audit logging with redaction
  items.push(
    item(
      "audit-logging",
      "Audit logging with redaction",
      cfg !== undefined,
      cfg ? `one JSON line per request; token-like keys${cfg.audit.redactKeys.length ? ` and ${cfg.audit.redactKeys.length} extra key(s)` : ""} redacted` : "no gateway config",
    ),
  );

  // 11. network isolation: default deny both ways, and no rule so wide that it undoes it.
  const np = obj(v.networkPolicy?.spec);
  const types = Array.isArray(np.policyTypes) ? np.policyTypes : [];
  const ingressPorts = list(np.ingress).flatMap((r) => list(r.ports).map((p) => Number(p.port)));
  const isolated =
    v.networkPolicy !== undefined && types.includes("Ingress") && types.includes("Egress") && ingressPorts.every((p) => p === GATEWAY_PORTS.mcp || p === GATEWAY_PORTS.admin);
  const wide = wideNetworkRules(v);
  const egressRules = list(np.egress).length;
  items.push(
    item(
      "network-isolation",
      "Network isolation",
      isolated && wide.wide.length === 0,
      !isolated
        ? "no default-deny NetworkPolicy for both directions"
        : wide.wide.length > 0
          ? `wide rules (opt-out): ${wide.wide.join("; ")}`
          : `default deny in and out; ingress only to ${GATEWAY_PORTS.mcp} (and ${GATEWAY_PORTS.admin} from metrics namespaces); ${egressRules} egress rule(s)${wide.meshHosts.length ? `; hostnames enforced by the Istio sidecar (public addresses on ports ${wide.meshHosts.join(", ")})` : ""}`,
    ),
  );

  // 12. gateway in front
  items.push(item("gateway-in-front", "Gateway in front", front.ok, front.detail));

  // 13. alerts on auth failures (metrics)
  const admin = list(v.gateway?.ports).some((p) => p.name === "admin" && Number(p.containerPort) === GATEWAY_PORTS.admin);
  items.push(
    item(
      "auth-failure-alerts",
      "Alerts on auth failures (metrics)",
      admin,
      admin ? `auth failure counters on :${GATEWAY_PORTS.admin}/metrics, scrapable from namespaces labelled mcp.bastion.dev/metrics=true` : "no metrics port",
    ),
  );

  // 14. credential rotation (hot reload): credentials mounted whole (no subPath) update in place.
  const secretVolumes = new Set(list(v.podSpec.volumes).filter((vol) => vol.secret !== undefined).map((vol) => String(vol.name)));
  const subPathSecrets = v.allContainers.flatMap((c) => list(c.volumeMounts).filter((m) => secretVolumes.has(String(m.name)) && m.subPath !== undefined));
  const rotating: string[] = [];
  // Which keys lack an expiry is in the Secret, which the renderer never reads: the gateway reports it.
  if (spec.auth.apiKeys) rotating.push("API keys (keys without an expiry: gateway metric mcp_gateway_api_keys_without_expiry)");
  if (spec.auth.jwt) rotating.push(spec.auth.jwt.jwksSecretRef ? "JWKS file" : "JWKS (refetched)");
  if (spec.secrets.length) rotating.push(`${spec.secrets.length} ExternalSecret(s) refreshed`);
  if (spec.tls) rotating.push("TLS certificate");
  items.push(
    item(
      "credential-rotation",
      "Credential rotation (hot reload)",
      subPathSecrets.length === 0,
      subPathSecrets.length === 0
        ? `mounted without subPath so updates land in place: ${rotating.join(", ") || "mesh certificates rotated by Istio"}`
        : "a secret is mounted with subPath and never updates",
    ),
  );

  // 15. resource limits
  const unlimited = v.allContainers.filter((c) => {
    const lim = obj(obj(c.resources).limits);
    const req = obj(obj(c.resources).requests);
    return ["cpu", "memory", "ephemeral-storage"].some((r) => lim[r] === undefined || req[r] === undefined);
  });
  items.push(
    item(
      "resource-limits",
      "Resource limits",
      v.allContainers.length > 0 && unlimited.length === 0,
      unlimited.length === 0
        ? `requests and limits for cpu, memory and ephemeral-storage on all ${v.allContainers.length} containers`
        : `missing on: ${unlimited.map((c) => String(c.name)).join(", ")}`,
    ),
  );

  // 16. tool description integrity
  const tools = cfg?.tools;
  const integrity = tools?.scanDescriptions === true && tools.onDrift === "Block";
  items.push(
    item(
      "tool-description-integrity",
      "Tool description integrity",
      integrity,
      tools === undefined
        ? "no tool policy"
        : `${tools.pinned.length} pinned tool(s), onDrift ${tools.onDrift}, description scanning ${tools.scanDescriptions ? "on" : "off"}`,
    ),
  );

  // 17. image pinned by digest (the rendered server container's image)
  const image = String(v.containers.find((c) => c.name === "server")?.image ?? "");
  const pinned = isDigestPinned(image);
  items.push(item("image-pinned-by-digest", "Image pinned by digest", pinned, pinned ? "server image pinned by sha256 digest" : `tag-only image ${image}`));

  // 18. sanitized errors: only the gateway answers clients, and it never forwards internals.
  items.push(
    item(
      "sanitized-errors",
      "Sanitized errors",
      front.ok,
      front.ok ? "clients only reach the gateway, which returns JSON-RPC errors without stack traces or upstream details" : "clients can reach the server directly",
    ),
  );
  items.push(...authorizationItems(cfg));
  return items;
}

/**
 * issue 13: what scopes, constraints and schedules make true, read from the gateway config the pod gets.
 * Each says "not used" when the server does not use it.
 */
function authorizationItems(cfg: GatewayConfig | undefined): ChecklistItem[] {
  const a = cfg?.authorization;
  const rules = a?.rules ?? [];
  const scoped = (a?.requiredScopes.length ?? 0) + (a?.scopes.length ?? 0) + rules.filter((r) => (r.scopes?.length ?? 0) > 0).length;
  const jwt = cfg?.auth.jwt !== undefined;
  const conditions = rules.filter((r) => (r.conditions?.length ?? 0) > 0).length;
  const constraints = a?.constraints.length ?? 0;
  const scheduled = rules.filter((r) => r.schedule !== undefined);
  const expiring = scheduled.filter((r) => r.schedule?.notAfter !== undefined).length;
  const windowed = scheduled.filter((r) => (r.schedule?.windows?.length ?? 0) > 0).length;
  return [
    item(
      "scoped-tokens",
      "Scoped OAuth tokens",
      !jwt || scoped > 0,
      !jwt
        ? "not used: no OAuth (JWT) clients; API keys and SPIFFE identities are per-client credentials named by rules"
        : scoped > 0
          ? `tokens need ${a!.requiredScopes.length ? `${a!.requiredScopes.join(" ")} to connect` : "no scope to connect"}; ${a!.scopes.length} scope requirement(s) on tools/resources/prompts, ${rules.filter((r) => (r.scopes?.length ?? 0) > 0).length} rule(s) with scopes; 403 insufficient_scope names every scope a call needs`
          : "not used: JWT clients are not checked for scopes (set spec.authorization.requiredScopes, scopes or rules[].scopes)",
    ),
    item(
      "argument-constraints",
      "Argument constraints",
      constraints + conditions > 0,
      constraints + conditions > 0
        ? `${constraints} per-tool constraint(s) (JSON Schema overlay and CEL), ${conditions} rule(s) with CEL conditions, compiled once by the gateway`
        : "not used: arguments are checked only against the server's own inputSchema (add spec.authorization.constraints)",
    ),
    item(
      "time-limited-elevation",
      "Time-limited elevation",
      scheduled.length > 0,
      scheduled.length > 0
        ? `${windowed} rule(s) active only in time windows, ${expiring} ending at notAfter by themselves; status.authorization lists the active rules and the next change`
        : "not used: every rule is active at all times (add rules[].schedule for maintenance windows or expiring elevation)",
    ),
  ];
}

/** Security defaults this server explicitly loosens (status.optOuts). */
export function computeOptOuts(server: McpServer): string[] {
  const { spec } = server;
  const out: string[] = [];
  if (spec.tools.onDrift === "Warn") out.push("spec.tools.onDrift: Warn (changed pinned tools are served)");
  if (!spec.tools.scanDescriptions) out.push("spec.tools.scanDescriptions: false (tool descriptions are not scanned)");
  if (spec.mesh.istio.enabled && spec.mesh.istio.mtlsMode === "PERMISSIVE") out.push("spec.mesh.istio.mtlsMode: PERMISSIVE (plaintext accepted)");
  if (!isDigestPinned(spec.image)) out.push(`spec.image: tag-only image ${spec.image}`);
  for (const v of spec.volumes) if (!v.readOnly) out.push(`spec.volumes[${v.name}]: writable volume at ${v.mountPath}`);
  spec.network.egress.forEach((e, i) => {
    const wide = (e.cidrs ?? []).filter(isWideCidr);
    if (wide.length) out.push(`spec.network.egress[${i}].cidrs: ${wide.join(", ")} wider than /${WIDE_PREFIX.ipv4} (IPv4) or /${WIDE_PREFIX.ipv6} (IPv6)`);
  });
  spec.network.ingress.forEach((p, i) => {
    if (p.namespaceSelector !== undefined && selectsAll(p.namespaceSelector)) out.push(`spec.network.ingress[${i}]: namespaceSelector {} admits pods of every namespace`);
  });
  return out;
}

// The security checklist for status.checklist: a table of 22 named checks (CHECKS, at the end), each
// a small function of the rendered objects (and the spec where the objects cannot tell) giving
// satisfied and a one-line detail. Where the schema or the renderer already guarantees an item, its
// detail says "by construction"; test/render/checklist-checks.test.ts tampers with the rendered objects to
// show each item can still go false. Also the opt-outs: the security defaults this server explicitly
// loosens.
import { GATEWAY_PORTS, type GatewayConfig, GatewayConfigSchema } from "../../../contract/gateway-config.ts";
import type { ChecklistItem, McpServer } from "../api/v1alpha1.ts";
import { list, type Obj, obj } from "./json.ts";
import { acceptedProtocolVersions } from "./gateway-config.ts";
import { isPublicAddressesPeer, isWideCidr, selectsAll, WIDE_PREFIX } from "./network.ts";
import { restrictedViolations } from "./restricted.ts";
import type { KubeObject } from "../../../contract/kube-object.ts";
import { isDigestPinned } from "./workload.ts";

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
      if (peer.namespaceSelector !== undefined && selectsAll(obj(peer.namespaceSelector)))
        wide.push(`ingress from every namespace (namespaceSelector {}) on ${portsOf(r).join(", ")}`);
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

/** One item's outcome. "By construction" in a detail marks what the schema or the renderer guarantees. */
interface Outcome {
  satisfied: boolean;
  detail: string;
}
type Check = (v: View) => Outcome;

function transportEncryption(v: View): Outcome {
  const peer = v.objects.find((o) => o.kind === "PeerAuthentication");
  const peerMode = String(obj(obj(peer?.spec).mtls).mode ?? "");
  const tls = v.config?.listen.tls;
  const cert = v.objects.find((o) => o.kind === "Certificate");
  const issuer = obj(obj(cert?.spec).issuerRef);
  const source = cert
    ? `certificate issued and renewed by cert-manager ${String(issuer.kind)} ${String(issuer.name)}, reloaded without a restart`
    : "certificate from a Secret you manage, reloaded without a restart when it changes";
  return {
    satisfied: peerMode === "STRICT" || tls !== undefined,
    detail:
      peerMode === "STRICT"
        ? "Istio mTLS STRICT on the server's pods"
        : tls
          ? tls.minVersion === "1.3"
            ? `the gateway terminates TLS 1.3 only; ${source}`
            : `the gateway terminates TLS 1.2 or higher (spec.tls.minVersion: "1.2", opt-out); ${source}`
          : peerMode === "PERMISSIVE"
            ? "Istio mTLS PERMISSIVE: plaintext connections are accepted (opt-out)"
            : "no mesh and no spec.tls: traffic inside the cluster is plaintext",
  };
}

function authenticationEnforced(v: View): Outcome {
  const cfg = v.config;
  const methods = cfg ? (["apiKeys", "jwt", "mtls"] as const).filter((m) => cfg.auth[m] !== undefined) : [];
  return {
    satisfied: methods.length > 0 && gatewayInFront(v).ok,
    detail: methods.length > 0 ? `every request passes the gateway, which requires ${methods.join(" or ")}` : "the gateway has no auth method",
  };
}

function perClientCredentials(v: View): Outcome {
  const auth = v.config?.auth;
  const perClient: string[] = [];
  if (auth?.apiKeys) perClient.push("one API key per client (Secret keys)");
  if (auth?.jwt) perClient.push(`JWT subject claim "${auth.jwt.subjectClaim}"`);
  if (auth?.mtls) perClient.push(`${auth.mtls.spiffeIds.length} SPIFFE identities`);
  return { satisfied: perClient.length > 0, detail: perClient.join("; ") || "no client identity" };
}

function toolAuthorization(v: View): Outcome {
  const rules = v.config?.authorization.rules ?? [];
  const toolRules = rules.filter((r) => r.tools !== undefined && r.tools.allow.length > 0);
  return {
    satisfied: toolRules.length > 0,
    detail:
      toolRules.length > 0
        ? `${rules.length} rule(s), default deny; ${toolRules.length} grant tools`
        : "no rule grants any tool: every tool call is denied (default deny)",
  };
}

function leastPrivilegePod(v: View): Outcome {
  const violations = restrictedViolations(v.podSpec, v.podAnnotations);
  const tokenOff = v.podSpec.automountServiceAccountToken === false && v.serviceAccount?.automountServiceAccountToken === false;
  return {
    satisfied: v.deployment !== undefined && violations.length === 0 && tokenOff,
    detail:
      violations.length > 0
        ? `Pod Security restricted: ${violations[0]}${violations.length > 1 ? ` (+${violations.length - 1} more)` : ""}`
        : tokenOff
          ? "passes Pod Security restricted; no service account token; read-only root filesystem"
          : "service account token is mounted",
  };
}

function secretsFromSecretManager(v: View): Outcome {
  // spec.secrets, plus the API keys when they come from the store (issue 14).
  const requested = v.server.spec.secrets.length + (v.server.spec.auth.apiKeys?.externalSecret ? 1 : 0);
  const externalSecrets = v.objects.filter((o) => o.kind === "ExternalSecret").length;
  const modes = secretMountsAre0400(v);
  const envRefs = envSecretRefs(v);
  return {
    satisfied: externalSecrets === requested && modes.ok && envRefs.length === 0,
    detail:
      envRefs.length > 0
        ? `secret values in environment variables: ${envRefs.join(", ")}`
        : !modes.ok
          ? `secret volumes not 0400: ${modes.bad.join(", ")}`
          : requested > 0
            ? `${externalSecrets} ExternalSecret(s), mounted as 0400 files, never env`
            : "no secrets requested; none in env",
  };
}

function rateLimiting(v: View): Outcome {
  const limits = v.config?.limits;
  if (!limits) return { satisfied: false, detail: "no limits" };
  const rpm = limits.perClient.requestsPerMinute;
  if (rpm <= 0) return { satisfied: false, detail: `${rpm}/min per client: no request passes` };
  // The spec's minimum is 1 and the renderer never divides below 1: a positive rate is by construction.
  return {
    satisfied: true,
    detail:
      limits.mode === "redis"
        ? `${rpm}/min per client, shared through Redis across ${limits.replicas} replica(s) (a limit is always set, by construction)`
        : `${rpm}/min per client per pod (limit divided by ${limits.replicas} replica(s), no shared store; a limit is always set, by construction)`,
  };
}

const MAX_REQUEST_BYTES = 16 * 1024 * 1024;

function inputValidation(v: View): Outcome {
  const limits = v.config?.limits;
  if (!limits) return { satisfied: false, detail: "no request size limit" };
  if (limits.maxRequestBytes > MAX_REQUEST_BYTES)
    return { satisfied: false, detail: `bodies up to ${limits.maxRequestBytes} bytes accepted (over ${MAX_REQUEST_BYTES})` };
  // The spec bounds maxRequestBytes to 1 KiB..16 MiB: the size limit holds by construction.
  return { satisfied: true, detail: `JSON-RPC validated at the gateway; bodies over ${limits.maxRequestBytes} bytes refused (at most 16 MiB by construction)` };
}

function timeouts(v: View): Outcome {
  const limits = v.config?.limits;
  if (!limits) return { satisfied: false, detail: "no timeouts" };
  if (limits.requestTimeoutSeconds <= 0) return { satisfied: false, detail: `request timeout ${limits.requestTimeoutSeconds}s: requests never time out` };
  // The spec bounds requestTimeoutSeconds to 1..3600: a deadline exists by construction.
  return {
    satisfied: true,
    detail: `${limits.requestTimeoutSeconds}s per request${limits.toolTimeouts.length ? `, ${limits.toolTimeouts.length} per-tool override(s)` : ""}; ${limits.maxConcurrentRequests} concurrent (a deadline is always set, by construction)`,
  };
}

function auditLogging(v: View): Outcome {
  const cfg = v.config;
  // The gateway always audits and always redacts token-like keys: what can be missing is the gateway's config.
  return {
    satisfied: cfg !== undefined,
    detail: cfg
      ? `one JSON line per request; token-like keys${cfg.audit.redactKeys.length ? ` and ${cfg.audit.redactKeys.length} extra key(s)` : ""} redacted (the gateway always audits, by construction)${cfg.audit.otlp ? `; also sent to ${cfg.audit.otlp.endpoint} over OTLP (up to ${cfg.audit.otlp.bufferLines} lines buffered while it is unreachable)` : ""}`
      : "no gateway config",
  };
}

/** Default deny both ways, and no rule so wide that it undoes it. */
function networkIsolation(v: View): Outcome {
  const np = obj(v.networkPolicy?.spec);
  const types = Array.isArray(np.policyTypes) ? np.policyTypes : [];
  const ingressPorts = list(np.ingress).flatMap((r) => list(r.ports).map((p) => Number(p.port)));
  const isolated =
    v.networkPolicy !== undefined &&
    types.includes("Ingress") &&
    types.includes("Egress") &&
    ingressPorts.every((p) => p === GATEWAY_PORTS.mcp || p === GATEWAY_PORTS.admin);
  const wide = wideNetworkRules(v);
  const egressRules = list(np.egress).length;
  return {
    satisfied: isolated && wide.wide.length === 0,
    detail: !isolated
      ? "no default-deny NetworkPolicy for both directions"
      : wide.wide.length > 0
        ? `wide rules (opt-out): ${wide.wide.join("; ")}`
        : `default deny in and out; ingress only to ${GATEWAY_PORTS.mcp} (and ${GATEWAY_PORTS.admin} from metrics namespaces); ${egressRules} egress rule(s)${wide.meshHosts.length ? `; hostnames enforced by the Istio sidecar (public addresses on ports ${wide.meshHosts.join(", ")})` : ""}`,
  };
}

function gatewayInFrontItem(v: View): Outcome {
  const front = gatewayInFront(v);
  return { satisfied: front.ok, detail: front.detail };
}

function authFailureAlerts(v: View): Outcome {
  const admin = list(v.gateway?.ports).some((p) => p.name === "admin" && Number(p.containerPort) === GATEWAY_PORTS.admin);
  return {
    satisfied: admin,
    detail: admin
      ? `auth failure counters on :${GATEWAY_PORTS.admin}/metrics, scrapable from namespaces labelled mcp.bastion.dev/metrics=true`
      : "no metrics port",
  };
}

/** How the API keys rotate: on an ExternalSecret's refresh schedule, or by hand (with per-key expiry). */
function apiKeysRotation(v: View): string {
  const keysVolume = list(v.podSpec.volumes).find((vol) => vol.name === "api-keys");
  const secretName = String(obj(keysVolume?.secret).secretName ?? "");
  const es = v.objects.find((o) => o.kind === "ExternalSecret" && obj(obj(o.spec).target).name === secretName);
  if (es) {
    const spec = obj(es.spec);
    const store = obj(spec.secretStoreRef);
    const every = String(spec.refreshInterval ?? "1h");
    return `API keys from the secret manager (ExternalSecret ${String(es.metadata.name)}, ${String(store.kind ?? "SecretStore")} ${String(store.name)}): rotated on its refresh schedule, every ${every}`;
  }
  return "API keys (keys without an expiry: gateway metric mcp_gateway_api_keys_without_expiry)";
}

/** Credentials mounted whole (no subPath) update in place. */
function credentialRotation(v: View): Outcome {
  const { spec } = v.server;
  const secretVolumes = new Set(
    list(v.podSpec.volumes)
      .filter((vol) => vol.secret !== undefined)
      .map((vol) => String(vol.name)),
  );
  const subPathSecrets = v.allContainers.flatMap((c) => list(c.volumeMounts).filter((m) => secretVolumes.has(String(m.name)) && m.subPath !== undefined));
  const rotating: string[] = [];
  // Which keys lack an expiry is in the Secret, which the renderer never reads: the gateway reports it.
  // Keys synced from a secret manager count as rotated on the ExternalSecret's refresh schedule, read
  // from the rendered ExternalSecret whose target is the Secret the gateway mounts (issue 14).
  if (spec.auth.apiKeys) rotating.push(apiKeysRotation(v));
  if (spec.auth.jwt) rotating.push(spec.auth.jwt.jwksSecretRef ? "JWKS file" : "JWKS (refetched)");
  if (spec.secrets.length) rotating.push(`${spec.secrets.length} ExternalSecret(s) refreshed`);
  if (spec.tls) rotating.push(spec.tls.issuerRef ? "TLS certificate renewed by cert-manager" : "TLS certificate");
  return {
    satisfied: subPathSecrets.length === 0,
    detail:
      subPathSecrets.length === 0
        ? `mounted without subPath so updates land in place: ${rotating.join(", ") || "mesh certificates rotated by Istio"}`
        : "a secret is mounted with subPath and never updates",
  };
}

function resourceLimits(v: View): Outcome {
  const unlimited = v.allContainers.filter((c) => {
    const lim = obj(obj(c.resources).limits);
    const req = obj(obj(c.resources).requests);
    return ["cpu", "memory", "ephemeral-storage"].some((r) => lim[r] === undefined || req[r] === undefined);
  });
  return {
    satisfied: v.allContainers.length > 0 && unlimited.length === 0,
    detail:
      unlimited.length === 0
        ? `requests and limits for cpu, memory and ephemeral-storage on all ${v.allContainers.length} containers`
        : `missing on: ${unlimited.map((c) => String(c.name)).join(", ")}`,
  };
}

function toolDescriptionIntegrity(v: View): Outcome {
  const tools = v.config?.tools;
  return {
    satisfied: tools?.scanDescriptions === true && tools.onDrift === "Block",
    detail:
      tools === undefined
        ? "no tool policy"
        : `${tools.pinned.length} pinned tool(s), onDrift ${tools.onDrift}, description scanning ${tools.scanDescriptions ? "on" : "off"}`,
  };
}

/**
 * The rendered server container's image, and the image policy (issue 14). Under RequireDigest a
 * tag-only image never gets here: the operator refuses the server (Reconciled=False, ImageNotPinned)
 * and the status keeps no checklist for it. The operator puts its default into spec.imagePolicy;
 * `mcp-bastion render` without one says the operator decides.
 */
function imagePinnedByDigest(v: View): Outcome {
  const image = String(v.containers.find((c) => c.name === "server")?.image ?? "");
  const pinned = isDigestPinned(image);
  const policy = v.server.spec.imagePolicy;
  const enforced =
    policy === "RequireDigest"
      ? "imagePolicy RequireDigest: a tag-only image is refused"
      : policy === "AllowTags"
        ? "imagePolicy AllowTags: a tag-only image would be deployed"
        : "imagePolicy: the operator's default";
  return {
    satisfied: pinned,
    detail: pinned ? `server image pinned by sha256 digest; ${enforced}` : `tag-only image ${image} (${enforced}; set RequireDigest to refuse it)`,
  };
}

/** Only the gateway answers clients, and it never forwards internals. */
function sanitizedErrors(v: View): Outcome {
  const ok = gatewayInFront(v).ok;
  return {
    satisfied: ok,
    detail: ok
      ? "clients only reach the gateway, which returns JSON-RPC errors without stack traces or upstream details"
      : "clients can reach the server directly",
  };
}

// issue 13: what scopes, constraints and schedules make true, read from the gateway config the pod
// gets. Each says "not used" when the server does not use it.

function scopedTokens(v: View): Outcome {
  const a = v.config?.authorization;
  const rules = a?.rules ?? [];
  const scopedRules = rules.filter((r) => (r.scopes?.length ?? 0) > 0).length;
  const scoped = (a?.requiredScopes.length ?? 0) + (a?.scopes.length ?? 0) + scopedRules;
  if (v.config?.auth.jwt === undefined) {
    return { satisfied: true, detail: "not used: no OAuth (JWT) clients; API keys and SPIFFE identities are per-client credentials named by rules" };
  }
  if (!a || scoped === 0) {
    return { satisfied: false, detail: "not used: JWT clients are not checked for scopes (set spec.authorization.requiredScopes, scopes or rules[].scopes)" };
  }
  return {
    satisfied: true,
    detail: `tokens need ${a.requiredScopes.length ? `${a.requiredScopes.join(" ")} to connect` : "no scope to connect"}; ${a.scopes.length} scope requirement(s) on tools/resources/prompts, ${scopedRules} rule(s) with scopes; 403 insufficient_scope names every scope a call needs`,
  };
}

function argumentConstraints(v: View): Outcome {
  const a = v.config?.authorization;
  const conditions = (a?.rules ?? []).filter((r) => (r.conditions?.length ?? 0) > 0).length;
  const constraints = a?.constraints.length ?? 0;
  return {
    satisfied: constraints + conditions > 0,
    detail:
      constraints + conditions > 0
        ? `${constraints} per-tool constraint(s) (JSON Schema overlay and CEL), ${conditions} rule(s) with CEL conditions, compiled once by the gateway`
        : "not used: arguments are checked only against the server's own inputSchema (add spec.authorization.constraints)",
  };
}

function timeLimitedElevation(v: View): Outcome {
  const scheduled = (v.config?.authorization.rules ?? []).filter((r) => r.schedule !== undefined);
  const expiring = scheduled.filter((r) => r.schedule?.notAfter !== undefined).length;
  const windowed = scheduled.filter((r) => (r.schedule?.windows?.length ?? 0) > 0).length;
  return {
    satisfied: scheduled.length > 0,
    detail:
      scheduled.length > 0
        ? `${windowed} rule(s) active only in time windows, ${expiring} ending at notAfter by themselves; status.authorization lists the active rules and the next change`
        : "not used: every rule is active at all times (add rules[].schedule for maintenance windows or expiring elevation)",
  };
}

// issue 11: which protocol revisions clients may use. Allowing only the 2025 revisions or only 2026-07-28
// is a platform team's choice, not a weakness: the item says what is accepted, and it is false only when
// the gateway config the pod gets would not enforce the allowlist the spec asks for.
function protocolRevisions(v: View): Outcome {
  const asked = acceptedProtocolVersions(v.server);
  const enforced = v.config?.protocol?.versions;
  if (enforced === undefined || [...enforced].sort().join() !== [...asked].sort().join()) {
    return {
      satisfied: false,
      detail: `the gateway config allows ${enforced ? enforced.join(", ") : "every revision it supports"}, not the ${asked.join(", ")} the spec asks for`,
    };
  }
  const legacy = enforced.filter((r) => r < "2026");
  const stateless = enforced.filter((r) => r >= "2026");
  const parts = [
    legacy.length ? `${legacy.join(", ")} (sessions opened with initialize)` : "no 2025 revision (2025-era clients are refused with -32022)",
    stateless.length
      ? `${stateless.join(", ")} (stateless)`
      : "no 2026 revision (2026-era clients are refused with -32022, and fall back to initialize where they can)",
  ];
  return { satisfied: true, detail: `clients may use ${parts.join(" and ")}; any other revision gets the unsupported-version error listing these` };
}

/** The checklist, in the order status.checklist lists it: id, title, and the check that decides it. */
const CHECKS = [
  { id: "transport-encryption", title: "Transport encryption", check: transportEncryption },
  { id: "authentication-enforced", title: "Authentication enforced", check: authenticationEnforced },
  { id: "per-client-credentials", title: "Per-client credentials", check: perClientCredentials },
  { id: "tool-authorization", title: "Tool-level authorization", check: toolAuthorization },
  { id: "least-privilege-pod", title: "Least-privilege pod", check: leastPrivilegePod },
  { id: "secrets-from-secret-manager", title: "Secrets from a secret manager", check: secretsFromSecretManager },
  { id: "rate-limiting", title: "Rate limiting", check: rateLimiting },
  { id: "input-validation", title: "Input validation", check: inputValidation },
  { id: "timeouts", title: "Timeouts", check: timeouts },
  { id: "audit-logging", title: "Audit logging with redaction", check: auditLogging },
  { id: "network-isolation", title: "Network isolation", check: networkIsolation },
  { id: "gateway-in-front", title: "Gateway in front", check: gatewayInFrontItem },
  { id: "auth-failure-alerts", title: "Alerts on auth failures (metrics)", check: authFailureAlerts },
  { id: "credential-rotation", title: "Credential rotation (hot reload)", check: credentialRotation },
  { id: "resource-limits", title: "Resource limits", check: resourceLimits },
  { id: "tool-description-integrity", title: "Tool description integrity", check: toolDescriptionIntegrity },
  { id: "image-pinned-by-digest", title: "Image pinned by digest", check: imagePinnedByDigest },
  { id: "sanitized-errors", title: "Sanitized errors", check: sanitizedErrors },
  // issue 13
  { id: "scoped-tokens", title: "Scoped OAuth tokens", check: scopedTokens },
  { id: "argument-constraints", title: "Argument constraints", check: argumentConstraints },
  { id: "time-limited-elevation", title: "Time-limited elevation", check: timeLimitedElevation },
  // issue 11
  { id: "protocol-revisions", title: "Protocol revisions", check: protocolRevisions },
] as const satisfies readonly { id: string; title: string; check: Check }[];

export const CHECKLIST_IDS = CHECKS.map((c) => c.id);
export type ChecklistId = (typeof CHECKS)[number]["id"];

/** The checklist for status.checklist: every item decided from the rendered objects (and the spec where they cannot tell). */
export function computeChecklist(server: McpServer, objects: KubeObject[]): ChecklistItem[] {
  const v = view(server, objects);
  return CHECKS.map(({ id, title, check }) => ({ id, title, ...check(v) }));
}

/** Security defaults this server explicitly loosens (status.optOuts). */
export function computeOptOuts(server: McpServer): string[] {
  const { spec } = server;
  const out: string[] = [];
  if (spec.tools.onDrift === "Warn") out.push("spec.tools.onDrift: Warn (changed pinned tools are served)");
  if (!spec.tools.scanDescriptions) out.push("spec.tools.scanDescriptions: false (tool descriptions are not scanned)");
  if (spec.mesh.istio.enabled && spec.mesh.istio.mtlsMode === "PERMISSIVE") out.push("spec.mesh.istio.mtlsMode: PERMISSIVE (plaintext accepted)");
  if (spec.tls?.minVersion === "1.2") out.push('spec.tls.minVersion: "1.2" (TLS 1.2 clients accepted)');
  if (!isDigestPinned(spec.image)) out.push(`spec.image: tag-only image ${spec.image}`);
  if (spec.vulnerabilities.onCritical === "Report")
    out.push("spec.vulnerabilities.onCritical: Report (critical vulnerabilities in the image do not degrade the server)");
  for (const v of spec.volumes) if (!v.readOnly) out.push(`spec.volumes[${v.name}]: writable volume at ${v.mountPath}`);
  spec.network.egress.forEach((e, i) => {
    const wide = (e.cidrs ?? []).filter(isWideCidr);
    if (wide.length) out.push(`spec.network.egress[${i}].cidrs: ${wide.join(", ")} wider than /${WIDE_PREFIX.ipv4} (IPv4) or /${WIDE_PREFIX.ipv6} (IPv6)`);
  });
  spec.network.ingress.forEach((p, i) => {
    if (p.namespaceSelector !== undefined && selectsAll(p.namespaceSelector))
      out.push(`spec.network.ingress[${i}]: namespaceSelector {} admits pods of every namespace`);
  });
  return out;
}

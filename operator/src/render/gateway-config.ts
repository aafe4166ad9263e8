// The gateway's policy file (ConfigMap key gateway.json). It holds no secret values: API keys, the
// JWKS and TLS keys are files mounted beside it, named here by path only.
import { GATEWAY_PATHS, GATEWAY_PORTS, type GatewayConfig, type ProtocolVersion, SUPPORTED_PROTOCOL_VERSIONS } from "../../../contract/gateway-config.ts";
import type { AuthorizationRule, McpServer } from "../api/v1alpha1.ts";
import { childNames } from "./labels.ts";

/**
 * Replicas keep sessions (issue 16): with more than one replica, a session lives in one pod and the
 * Service spreads its requests over all of them; each gateway relays a request for another pod's session
 * to that pod (gateway/src/affinity.ts), found through a headless Service of the ready replicas. Not with
 * spec.tls yet: the relay speaks plain HTTP.
 */
export function relaysSessions(server: McpServer): boolean {
  return server.spec.replicas > 1 && !server.spec.tls;
}

// ---- issue 13: scopes, conditions, schedules, sources, read-only tools, identity for the server ----
type GwAuthz = GatewayConfig["authorization"];

function ruleExtensions(r: AuthorizationRule): Partial<GwAuthz["rules"][number]> {
  return {
    ...(r.scopes && r.scopes.length > 0 ? { scopes: [...r.scopes] } : {}),
    ...(r.schedule ? { schedule: structuredClone(r.schedule) } : {}),
    ...(r.sources && r.sources.length > 0 ? { sources: [...r.sources] } : {}),
    ...(r.readOnlyTools ? { readOnlyTools: true } : {}),
    ...(r.conditions && r.conditions.length > 0 ? { conditions: r.conditions.map((c) => ({ ...c })) } : {}),
  };
}

function authorizationExtensions(a: McpServer["spec"]["authorization"]): Omit<GwAuthz, "rules"> {
  const id = a.identity;
  return {
    scopes: a.scopes.map((s) => ({
      ...(s.tools ? { tools: [...s.tools] } : {}),
      ...(s.resources ? { resources: [...s.resources] } : {}),
      ...(s.prompts ? { prompts: [...s.prompts] } : {}),
      scopes: [...s.scopes],
    })),
    constraints: a.constraints.map((c) => ({
      name: c.name,
      tools: [...c.tools],
      ...(c.arguments ? { arguments: structuredClone(c.arguments) } : {}),
      ...(c.conditions ? { conditions: c.conditions.map((x) => ({ ...x })) } : {}),
    })),
    requiredScopes: [...(a.requiredScopes ?? [])],
    scopesSupported: [],
    trustedProxies: [...(a.trustedProxies ?? [])],
    identity: { headers: { ...(id?.headers ?? {}) }, ...(id?.signedJwt ? { signedJwt: { ...id.signedJwt } } : {}), ...(id?.env ? { env: { ...id.env } } : {}) },
  };
}

/**
 * The protocol revisions clients may use with this server: spec.protocol.versions, or (unset) every
 * revision the gateway supports. Always written out in gateway.json, so the policy file alone says
 * what the gateway accepts; in the gateway's own order (newest first), whatever order the spec lists.
 */
export function acceptedProtocolVersions(server: McpServer): ProtocolVersion[] {
  const allowed = server.spec.protocol.versions;
  return SUPPORTED_PROTOCOL_VERSIONS.filter((v) => allowed === undefined || allowed.includes(v));
}

export type RateLimitMode = "redis" | "divided";

/** Where the gateway reaches the MCP server inside the pod. */
export function upstreamOf(server: McpServer): GatewayConfig["upstream"] {
  const t = server.spec.transport;
  if (t.type === "stdio") return { transport: "stdio", bridge: { host: "127.0.0.1", port: GATEWAY_PORTS.stdioBridge } };
  const path = t.path ?? (t.type === "sse" ? "/sse" : "/mcp");
  return { transport: t.type, url: `http://127.0.0.1:${t.port}${path}` };
}

/**
 * Path of the gateway's streamable HTTP endpoint: the server's own path for streamable-http servers,
 * /mcp otherwise (the gateway serves stdio and SSE servers over streamable HTTP there, and keeps
 * /sse for legacy SSE clients).
 */
export function publicPath(server: McpServer): string {
  const t = server.spec.transport;
  return t.type === "streamable-http" ? (t.path ?? "/mcp") : "/mcp";
}

/** The in-cluster URL of the MCP endpoint (the Service, gateway port). */
export function serviceUrl(server: McpServer, clusterDomain = "cluster.local"): string {
  const scheme = server.spec.tls ? "https" : "http";
  const { name, namespace } = server.metadata;
  return `${scheme}://${name}.${namespace}.svc.${clusterDomain}:${GATEWAY_PORTS.mcp}${publicPath(server)}`;
}

/** The Service's names shorter than publicUrl's FQDN, which the gateway also answers to. */
export function serviceHostAliases(server: McpServer): string[] {
  const { name, namespace } = server.metadata;
  return [name, `${name}.${namespace}`, `${name}.${namespace}.svc`];
}

export function rateLimitMode(server: McpServer): RateLimitMode {
  return server.spec.limits.redis ? "redis" : "divided";
}

/**
 * Without a shared store every replica enforces its share of the limit, so N replicas together
 * never allow more than the configured rate. Never below 1, so a limit never turns into "deny all".
 */
function share(value: number, replicas: number, mode: RateLimitMode): number {
  return mode === "redis" ? value : Math.max(1, Math.floor(value / replicas));
}

function burstOf(requestsPerMinute: number, burst: number | undefined): number {
  return burst ?? Math.max(1, Math.floor(requestsPerMinute / 6));
}

/** Mount path of the JWKS file when the JWKS comes from a Secret. */
export function jwksFile(key: string): string {
  return `${GATEWAY_PATHS.jwksDir}/${key}`;
}

export function gatewayConfig(server: McpServer, clusterDomain?: string): GatewayConfig {
  const { spec } = server;
  const mode = rateLimitMode(server);
  const replicas = spec.replicas;
  const l = spec.limits;
  const jwt = spec.auth.jwt;
  const config: GatewayConfig = {
    version: 1,
    server: { namespace: server.metadata.namespace, name: server.metadata.name },
    listen: {
      host: "0.0.0.0",
      port: GATEWAY_PORTS.mcp,
      adminPort: GATEWAY_PORTS.admin,
      ...(spec.tls
        ? { tls: { certFile: `${GATEWAY_PATHS.tlsDir}/tls.crt`, keyFile: `${GATEWAY_PATHS.tlsDir}/tls.key`, minVersion: spec.tls.minVersion } }
        : {}),
    },
    publicUrl: serviceUrl(server, clusterDomain),
    // In-cluster clients reach the Service by its shorter names too; the gateway checks Host (DNS rebinding).
    hostAliases: serviceHostAliases(server),
    upstream: upstreamOf(server),
    auth: {
      ...(spec.auth.apiKeys ? { apiKeys: { dir: GATEWAY_PATHS.apiKeysDir } } : {}),
      ...(jwt
        ? {
            jwt: {
              issuer: jwt.issuer,
              audiences: [...jwt.audiences],
              ...(jwt.jwksUri ? { jwksUri: jwt.jwksUri } : {}),
              ...(jwt.jwksSecretRef ? { jwksFile: jwksFile(jwt.jwksSecretRef.key) } : {}),
              algorithms: [...jwt.algorithms],
              maxTokenAgeSeconds: jwt.maxTokenAgeSeconds,
              subjectClaim: jwt.subjectClaim,
              groupsClaim: jwt.groupsClaim,
            },
          }
        : {}),
      ...(spec.auth.mtls ? { mtls: { spiffeIds: [...spec.auth.mtls.spiffeIds] } } : {}),
    },
    authorization: {
      rules: spec.authorization.rules.map((r) => ({
        name: r.name,
        clients: { ...r.clients },
        ...(r.tools ? { tools: { allow: [...r.tools.allow], deny: [...r.tools.deny] } } : {}),
        ...(r.resources ? { resources: { allow: [...r.resources.allow], deny: [...r.resources.deny] } } : {}),
        ...(r.prompts ? { prompts: { allow: [...r.prompts.allow], deny: [...r.prompts.deny] } } : {}),
        ...ruleExtensions(r),
      })),
      ...authorizationExtensions(spec.authorization),
    },
    limits: {
      perClient: {
        requestsPerMinute: share(l.perClient.requestsPerMinute, replicas, mode),
        burst: share(burstOf(l.perClient.requestsPerMinute, l.perClient.burst), replicas, mode),
      },
      perTool: l.perTool.map((t) => ({
        tool: t.tool,
        requestsPerMinute: share(t.requestsPerMinute, replicas, mode),
        burst: share(burstOf(t.requestsPerMinute, t.burst), replicas, mode),
      })),
      maxConcurrentRequests: l.maxConcurrentRequests,
      maxRequestBytes: l.maxRequestBytes,
      requestTimeoutSeconds: l.requestTimeoutSeconds,
      toolTimeouts: l.toolTimeouts.map((t) => ({ tool: t.tool, timeoutSeconds: t.timeoutSeconds })),
      mode,
      replicas,
      ...(l.redis ? { redisUrl: l.redis.url } : {}),
    },
    tools: {
      pinned: spec.tools.pinned.map((p) => ({ name: p.name, sha256: p.sha256 })),
      onDrift: spec.tools.onDrift,
      allowUnpinned: spec.tools.allowUnpinned,
      scanDescriptions: spec.tools.scanDescriptions,
    },
    audit: {
      redactKeys: [...spec.audit.redactKeys],
      ...(spec.audit.checkpoint
        ? {
            checkpoint: { keyFile: GATEWAY_PATHS.auditKeyFile, everyLines: spec.audit.checkpoint.everyLines, everySeconds: spec.audit.checkpoint.everySeconds },
          }
        : {}),
      ...(spec.audit.otlp ? { otlp: { endpoint: spec.audit.otlp.endpoint, bufferLines: spec.audit.otlp.bufferLines } } : {}),
    },
    protocol: { versions: acceptedProtocolVersions(server) },
    telemetry: {},
    // issue 16: session ids name their pod; requests for another replica's session are relayed to it.
    ...(relaysSessions(server)
      ? { replicaSessions: { peersHost: `${childNames(server).peers}.${server.metadata.namespace}.svc.${clusterDomain ?? "cluster.local"}` } }
      : {}),
  };
  return config;
}

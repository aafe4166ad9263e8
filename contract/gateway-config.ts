// The gateway's configuration file: the contract between the renderer (which writes it into a
// ConfigMap, key `gateway.json`) and the gateway (which reads it from the mounted file).
// It holds no secret values: secrets are files mounted beside it, named by path here.
import { z } from "zod";

/** Where the renderer mounts things in the gateway container; the gateway reads the same paths. */
export const GATEWAY_PATHS = {
  configDir: "/etc/mcp-bastion",
  configFile: "/etc/mcp-bastion/gateway.json",
  apiKeysDir: "/etc/mcp-bastion/api-keys",
  jwksDir: "/etc/mcp-bastion/jwks",
  tlsDir: "/etc/mcp-bastion/tls",
  auditKeyDir: "/etc/mcp-bastion/audit-key",
  auditKeyFile: "/etc/mcp-bastion/audit-key/checkpoint.key",
} as const;

export const GATEWAY_PORTS = {
  /** The only port any client reaches: MCP traffic. */
  mcp: 8443,
  /** /metrics, /healthz, /readyz: kept off the MCP port. */
  admin: 9090,
  /** stdio bridge inside the pod (loopback only). */
  stdioBridge: 8099,
} as const;

/**
 * issue 11: the MCP revisions the gateway speaks on its one endpoint, newest first. 2026-07-28 is the
 * stateless revision (per-request `_meta`, server/discover, MRTR); the others use `initialize` and
 * sessions. The operator's schema for `spec.protocol.versions` is built from this list.
 */
export const SUPPORTED_PROTOCOL_VERSIONS = ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"] as const;
export type ProtocolVersion = (typeof SUPPORTED_PROTOCOL_VERSIONS)[number];

const AllowDeny = z.object({ allow: z.array(z.string()).default([]), deny: z.array(z.string()).default([]) });

// ---- issue 13: scopes, conditions, time windows, sources, read-only tools, identity for the server ----
const Condition = z.object({ expression: z.string(), message: z.string().optional() });
const Schedule = z.object({
  windows: z
    .array(
      z.object({
        days: z.array(z.enum(["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"])).optional(),
        start: z.string(),
        end: z.string(),
        timeZone: z.string(),
      }),
    )
    .optional(),
  notBefore: z.string().optional(),
  notAfter: z.string().optional(),
});
/** Fields a rule may add to clients + allow/deny (all optional: old configs mean what they meant). */
const RuleExtensions = {
  scopes: z.array(z.string()).optional(),
  schedule: Schedule.optional(),
  sources: z.array(z.string()).optional(),
  readOnlyTools: z.boolean().optional(),
  conditions: z.array(Condition).optional(),
};
const AuthorizationExtensions = {
  /** Scopes each tool/resource/prompt needs (JWT clients). */
  scopes: z
    .array(
      z.object({
        tools: z.array(z.string()).optional(),
        resources: z.array(z.string()).optional(),
        prompts: z.array(z.string()).optional(),
        scopes: z.array(z.string()),
      }),
    )
    .default([]),
  /** Per-tool constraints: JSON Schema overlay on the arguments and CEL conditions. */
  constraints: z
    .array(
      z.object({
        name: z.string(),
        tools: z.array(z.string()),
        arguments: z.record(z.string(), z.unknown()).optional(),
        conditions: z.array(Condition).optional(),
      }),
    )
    .default([]),
  /** Scopes every token must carry; announced in the 401 challenge. */
  requiredScopes: z.array(z.string()).default([]),
  scopesSupported: z.array(z.string()).default([]),
  /** Peers whose X-Forwarded-For is believed (CIDRs). Empty: the connection's address is the source. */
  trustedProxies: z.array(z.string()).default([]),
  /** The caller's identity for the server: header names, optionally a signed JWT (key generated at start, JWKS on the admin port). */
  identity: z
    .object({
      headers: z
        .object({
          client: z.string().optional(),
          subject: z.string().optional(),
          groups: z.string().optional(),
          scopes: z.string().optional(),
          source: z.string().optional(),
        })
        .default({}),
      signedJwt: z.object({ header: z.string().optional(), audience: z.string(), ttlSeconds: z.int().min(10).max(3600) }).optional(),
      /** stdio servers: environment variable names per fact, set by the bridge for each session's process (token: the signed JWT). */
      env: z
        .object({
          client: z.string().optional(),
          subject: z.string().optional(),
          groups: z.string().optional(),
          scopes: z.string().optional(),
          source: z.string().optional(),
          token: z.string().optional(),
        })
        .optional(),
    })
    .default({ headers: {} }),
};

export const GatewayConfigSchema = z
  .object({
    version: z.literal(1),
    /** Namespace/name of the McpServer, for logs, metrics and the resource metadata document. */
    server: z.object({ namespace: z.string(), name: z.string() }),
    listen: z.object({
      host: z.string().default("0.0.0.0"),
      port: z.int().default(GATEWAY_PORTS.mcp),
      adminPort: z.int().default(GATEWAY_PORTS.admin),
      /**
       * TLS termination; files are a kubernetes.io/tls Secret mounted at GATEWAY_PATHS.tlsDir. The gateway
       * watches their directory and loads a renewed pair without a restart. minVersion: lowest TLS version.
       */
      tls: z.object({ certFile: z.string(), keyFile: z.string(), minVersion: z.enum(["1.2", "1.3"]).default("1.3") }).optional(),
    }),
    /** Public URL of the MCP endpoint, used as `resource` in RFC 9728 metadata. */
    publicUrl: z.string(),
    /**
     * Other host names clients may reach the gateway by (e.g. the Service's short names). The Host
     * header of every request must name publicUrl's host, one of these, or a loopback name.
     */
    hostAliases: z.array(z.string()).optional(),
    upstream: z.discriminatedUnion("transport", [
      z.object({ transport: z.literal("streamable-http"), url: z.string() }),
      z.object({ transport: z.literal("sse"), url: z.string() }),
      /** stdio server reached through the bridge running in the server container (one process per session). */
      z.object({ transport: z.literal("stdio"), bridge: z.object({ host: z.string(), port: z.int() }) }),
    ]),
    auth: z.object({
      /** Directory of files named after the client, each holding that client's key. Watched for rotation. */
      apiKeys: z.object({ dir: z.string() }).optional(),
      jwt: z
        .object({
          issuer: z.string(),
          audiences: z.array(z.string()).min(1),
          jwksUri: z.string().optional(),
          jwksFile: z.string().optional(),
          algorithms: z.array(z.string()).min(1),
          maxTokenAgeSeconds: z.int(),
          subjectClaim: z.string(),
          groupsClaim: z.string(),
        })
        .optional(),
      /** Istio peer identities; read from the x-forwarded-client-cert header the sidecar sets. */
      mtls: z.object({ spiffeIds: z.array(z.string()).min(1) }).optional(),
    }),
    authorization: z.object({
      rules: z.array(
        z.object({
          name: z.string(),
          clients: z.object({
            apiKeys: z.array(z.string()).optional(),
            subjects: z.array(z.string()).optional(),
            groups: z.array(z.string()).optional(),
            spiffeIds: z.array(z.string()).optional(),
          }),
          tools: AllowDeny.optional(),
          resources: AllowDeny.optional(),
          prompts: AllowDeny.optional(),
          ...RuleExtensions,
        }),
      ),
      ...AuthorizationExtensions,
    }),
    limits: z.object({
      perClient: z.object({ requestsPerMinute: z.int(), burst: z.int() }),
      perTool: z.array(z.object({ tool: z.string(), requestsPerMinute: z.int(), burst: z.int() })),
      maxConcurrentRequests: z.int(),
      maxRequestBytes: z.int(),
      requestTimeoutSeconds: z.int(),
      toolTimeouts: z.array(z.object({ tool: z.string(), timeoutSeconds: z.int() })),
      /**
       * How limits hold across replicas: `redis` shares buckets; `divided` enforces
       * limit / replicas in each pod (the rates above are already divided by the renderer).
       */
      mode: z.enum(["redis", "divided"]),
      replicas: z.int().min(1),
      redisUrl: z.string().optional(),
      /** Notifications and the client's answers to server requests: their own budget per client (default: perClient's). */
      notifications: z.object({ requestsPerMinute: z.int(), burst: z.int() }).optional(),
      /** Concurrency slots one client may hold (default: a quarter of maxConcurrentRequests, at least 1). */
      maxConcurrentPerClient: z.int().optional(),
      /** Seconds a request body may take to arrive (default 10); a slower client gets 408. */
      bodyTimeoutSeconds: z.int().optional(),
      /** Upstream-held sessions bound to one client (default 1000 of 10000). */
      maxSessionsPerClient: z.int().optional(),
      /**
       * Gateway-held sessions (stdio processes, SSE upstream streams), all clients together (default:
       * 15 for stdio, one less than the bridge's default of 16 children, which leaves one for the
       * gateway's own tool listing; 256 otherwise). One client holds at most a quarter, and at most 8.
       */
      maxHostedSessions: z.int().optional(),
    }),
    tools: z.object({
      pinned: z.array(z.object({ name: z.string(), sha256: z.string() })),
      onDrift: z.enum(["Block", "Warn"]),
      allowUnpinned: z.boolean(),
      scanDescriptions: z.boolean(),
    }),
    audit: z.object({
      redactKeys: z.array(z.string()),
      /**
       * Signed audit checkpoints: the key file (a mounted Secret: an HMAC secret of 32+ bytes, or an
       * Ed25519 private key in PEM), and how often to sign (every N lines or S seconds, whichever first).
       */
      checkpoint: z.object({ keyFile: z.string(), everyLines: z.int().min(1).default(1000), everySeconds: z.int().min(1).default(10) }).optional(),
      /**
       * Audit lines also to an OpenTelemetry logs endpoint (OTLP/HTTP JSON; auditotlp.ts): the base URL
       * (or the full /v1/logs URL), and how many lines wait at most while it is unreachable.
       */
      otlp: z
        .object({
          endpoint: z.url({ protocol: /^https?$/ }),
          bufferLines: z.int().min(1).max(1_000_000).default(10_000),
        })
        .strict()
        .optional(),
    }),
    telemetry: z.object({ otlpEndpoint: z.string().optional() }).default({}),
    /**
     * issue 11: the protocol versions clients may use (default: every one the gateway supports). A
     * request naming another version gets the spec's error listing these.
     */
    protocol: z.object({ versions: z.array(z.enum(SUPPORTED_PROTOCOL_VERSIONS)).min(1) }).optional(),
    /**
     * issue 16: replicas keep sessions (affinity.ts). Session ids name the pod that holds the session;
     * a request for another replica's session is relayed to that replica's gateway. The peers are the
     * A records of `peersHost` (a headless Service of the server's ready pods) or the fixed `peers`;
     * this pod's address is `self` or $MCP_BASTION_POD_IP (the downward API's status.podIP).
     */
    replicaSessions: z
      .object({ peersHost: z.string().optional(), peers: z.array(z.string()).optional(), self: z.string().optional() })
      .strict()
      .optional(),
  })
  .strict();

export type GatewayConfig = z.output<typeof GatewayConfigSchema>;
export type GatewayConfigInput = z.input<typeof GatewayConfigSchema>;

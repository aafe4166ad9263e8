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

const AllowDeny = z.object({ allow: z.array(z.string()).default([]), deny: z.array(z.string()).default([]) });

export const GatewayConfigSchema = z
  .object({
    version: z.literal(1),
    /** Namespace/name of the McpServer, for logs, metrics and the resource metadata document. */
    server: z.object({ namespace: z.string(), name: z.string() }),
    listen: z.object({
      host: z.string().default("0.0.0.0"),
      port: z.int().default(GATEWAY_PORTS.mcp),
      adminPort: z.int().default(GATEWAY_PORTS.admin),
      /** TLS termination; files are a kubernetes.io/tls Secret mounted at GATEWAY_PATHS.tlsDir. */
      tls: z.object({ certFile: z.string(), keyFile: z.string() }).optional(),
    }),
    /** Public URL of the MCP endpoint, used as `resource` in RFC 9728 metadata. */
    publicUrl: z.string(),
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
        }),
      ),
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
      checkpoint: z
        .object({ keyFile: z.string(), everyLines: z.int().min(1).default(1000), everySeconds: z.int().min(1).default(10) })
        .optional(),
    }),
    telemetry: z.object({ otlpEndpoint: z.string().optional() }).default({}),
  })
  .strict();

export type GatewayConfig = z.output<typeof GatewayConfigSchema>;
export type GatewayConfigInput = z.input<typeof GatewayConfigSchema>;

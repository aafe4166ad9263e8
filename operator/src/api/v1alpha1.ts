// The McpServer API, defined once. Everything else is derived from these zod schemas:
// the TypeScript types (below), the CRD's structural OpenAPI schema and CEL rules (crd.ts),
// and the operator's own validation of objects it reads from the API server (validate.ts).
//
// Conventions (Kubernetes API conventions): camelCase fields, durations as integer
// `...Seconds`, lists of named things as list-maps keyed by `name`, enums in PascalCase
// where they are Kubernetes-style values, optional fields that default to the locked-down choice.
import { isIP } from "node:net";
import { z } from "zod";
import { conditionError } from "../../../contract/authz/conditions.ts";
import { identityEnvProblems, PROCESS_IDENTITY_ROLES, RESERVED_ENV } from "../../../contract/authz/identity-env.ts";
import { identityHeaderProblems } from "../../../contract/authz/identity-headers.ts";
import { compileOverlay } from "../../../contract/authz/overlay.ts";
import { checkTimeZone } from "../../../contract/authz/windows.ts";
import { SUPPORTED_PROTOCOL_VERSIONS } from "../../../contract/gateway-config.ts";

export const GROUP = "mcp.bastion.dev";
export const VERSION = "v1alpha1";
export const KIND = "McpServer";
export const PLURAL = "mcpservers";
export const API_VERSION = `${GROUP}/${VERSION}`;

/**
 * Attach a description (shown by `kubectl explain`) and cross-field rules to a schema. Each rule is
 * written twice side by side, as CEL for the API server and as a predicate for the operator's own
 * validation, so the two can never be defined in different places.
 */
function doc<T extends z.ZodType>(schema: T, description: string, rules?: Rule<z.output<T>>[]): T {
  if (!rules) return schema.meta({ description });
  let checked = schema;
  for (const r of rules) checked = checked.refine((v) => r.check(v), { message: r.message });
  const cel: CelRule[] = rules.map(({ rule, message, fieldPath }) => (fieldPath ? { rule, message, fieldPath } : { rule, message }));
  return checked.meta({ description, "x-kubernetes-validations": cel });
}
export interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
}
interface Rule<V> extends CelRule {
  check(value: V): boolean;
}
/**
 * Marks an array as a list-map keyed by the given fields (server-side apply merges by key). The API
 * server refuses duplicate keys in such a list ("Duplicate value"); the same check here keeps
 * `mcp-bastion render` and the operator from accepting what the API server would refuse (two env
 * vars or volumes with one name make a Deployment that cannot be applied).
 */
function listMap<T extends z.ZodType>(schema: T, keys: string[], description: string): T {
  const unique = schema.superRefine((items, ctx) => {
    if (!Array.isArray(items)) return;
    const seen = new Set<string>();
    items.forEach((item: unknown, i) => {
      const values = keys.map((k) => (item !== null && typeof item === "object" ? (item as Record<string, unknown>)[k] : undefined));
      const key = JSON.stringify(values);
      if (seen.has(key)) {
        const what = keys.map((k, j) => `${k} ${JSON.stringify(values[j])}`).join(", ");
        ctx.addIssue({ code: "custom", path: [i], message: `duplicate ${what}: each entry must have its own ${keys.join(" and ")}` });
      }
      seen.add(key);
    });
  });
  return unique.meta({
    description,
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": keys,
  });
}
function setList<T extends z.ZodType>(schema: T, description: string): T {
  return schema.meta({ description, "x-kubernetes-list-type": "set" });
}

// ---- small reusable pieces -------------------------------------------------------------

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Kubernetes resource quantity, e.g. 100m, 128Mi, 1Gi. */
/** Non-negative Kubernetes resource quantity (apimachinery's grammar), e.g. 100m, 0.5, 128Mi, 1G, 1e3. */
const QUANTITY = /^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$/;
const QUANTITY_SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
/** The value of a quantity as a number (precise enough to compare requests with limits). */
export function quantityValue(q: string): number {
  const m = QUANTITY.exec(q);
  if (!m) return Number.NaN;
  const suffix = m[3] ?? "";
  if (/^[eE]/.test(suffix)) return Number(m[1]) * 10 ** Number(suffix.slice(1));
  return Number(m[1]) * (QUANTITY_SUFFIX[suffix] ?? Number.NaN);
}
/** A glob over MCP names: letters, digits, `_ - . / :` and `*` as wildcard. */
const NAME_GLOB = /^[A-Za-z0-9_\-./:*]+$/;
const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$/;
const CIDR = /^(([0-9]{1,3}\.){3}[0-9]{1,3}\/[0-9]{1,2}|[0-9a-fA-F:]+\/[0-9]{1,3})$/;
const SPIFFE_ID = /^spiffe:\/\/[a-z0-9.-]+(\/[A-Za-z0-9._\-*]+)*$/;
const DURATION = /^([0-9]+(s|m|h))+$/;

// ---- paths: compared in canonical form only -----------------------------------------------
//
// A path is checked as the kubelet and the container runtime will resolve it: `//tmp`, `/./tmp`,
// `/opt//mcp-bastion/`, `/data/../tmp` all name /tmp. CEL has no path normalizer, so instead of
// normalizing, both the CRD and zod refuse every non-canonical spelling (empty or dot segments,
// trailing '/'); on the canonical form a string comparison at '/' boundaries is then a path comparison.
// zod also normalizes before comparing, so its verdict never depends on the canonical rules alone.

/** Paths the pod itself uses in the MCP server container (the renderer mounts them; see render/). */
export const SERVER_PATHS = { tmp: "/tmp", secrets: "/var/run/secrets/mcp", bridge: "/opt/mcp-bastion" } as const;
export const RESERVED_MOUNT_PATHS: readonly string[] = [SERVER_PATHS.tmp, SERVER_PATHS.secrets, SERVER_PATHS.bridge];

/** What `filepath.Clean` makes of an absolute path: no empty or '.' segments, '..' resolved, no trailing '/'. */
export function normalizeAbsolutePath(path: string): string {
  const out: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") out.pop();
    else out.push(segment);
  }
  return `/${out.join("/")}`;
}

/** True when one path is the other or lies inside it (compared segment by segment, after normalizing). */
export function pathsOverlap(a: string, b: string): boolean {
  const x = normalizeAbsolutePath(a);
  const y = normalizeAbsolutePath(b);
  const inside = (inner: string, outer: string) => inner === outer || inner.startsWith(outer === "/" ? "/" : `${outer}/`);
  return inside(x, y) || inside(y, x);
}

const DOT_SEGMENT = /(^|\/)\.\.?(\/|$)/;
/** CEL's RE2 has no lookaround: '.' and '..' segments are found by this and refused. */
const CEL_DOT_SEGMENT = "(^|/)[.][.]?(/|$)";
const celString = (s: string) => `'${s}'`;

const noEmptySegment: Rule<string> = {
  rule: "!self.contains('//')",
  message: "must not contain '//': write the path in canonical form",
  check: (p) => !p.includes("//"),
};
const noDotSegment: Rule<string> = {
  rule: `!self.matches('${CEL_DOT_SEGMENT}')`,
  message: "must not contain '.' or '..' segments: write the path in canonical form",
  check: (p) => !DOT_SEGMENT.test(p),
};

/** An absolute path inside a container, in canonical form. */
const mountPath = doc(
  z
    .string()
    .min(2)
    .max(256)
    .regex(/^\/[A-Za-z0-9_.\-/]+$/, "must be an absolute path of letters, digits and _ . - /"),
  `Where the volume appears in the MCP server container: an absolute path in canonical form (no '//', '.' or '..' segments, no trailing '/'), not ${RESERVED_MOUNT_PATHS.join(", ")} and neither inside nor above them.`,
  [
    noEmptySegment,
    noDotSegment,
    { rule: "!self.endsWith('/')", message: "must not end with '/': write the path in canonical form", check: (p) => !p.endsWith("/") },
    {
      // Inside a reserved path the volume would shadow the pod's own files; above it, it would hide them.
      rule: `![${RESERVED_MOUNT_PATHS.map(celString).join(", ")}].exists(r, self == r || self.startsWith(r + '/') || r.startsWith(self + '/'))`,
      message: `must not be, lie inside or contain ${RESERVED_MOUNT_PATHS.join(", ")} (paths the pod itself uses)`,
      check: (p) => !RESERVED_MOUNT_PATHS.some((r) => pathsOverlap(p, r)),
    },
  ],
);

/** A key of a Secret, used as a file name in a secret volume (apimachinery's IsConfigMapKey). */
const secretKey = (description: string, max: number) =>
  doc(
    z
      .string()
      .min(1)
      .max(max)
      .regex(/^[A-Za-z0-9_.-]+$/, "must be a plain file name of letters, digits and _ . -"),
    description,
    [
      {
        // '.' and '..' would name a directory; the kubelet reserves '..'-prefixed names in secret volumes.
        rule: "self != '.' && !self.startsWith('..')",
        message: "must be a plain file name: not '.', not starting with '..'",
        check: (k) => k !== "." && !k.startsWith(".."),
      },
    ],
  );

const dnsLabel = (what: string) => z.string().min(1).max(63).regex(DNS_LABEL, `${what} must be a DNS label (lowercase letters, digits and '-')`);
const secretName = (what: string) => z.string().min(1).max(253).regex(DNS_SUBDOMAIN, `${what} must be a DNS subdomain name`);
const glob = z.string().min(1).max(256).regex(NAME_GLOB, "must be a name or a glob of letters, digits, _-./: and *");
const quantity = z.string().max(32).regex(QUANTITY, "must be a Kubernetes quantity such as 250m or 256Mi");

export const LocalObjectReference = z.object({ name: doc(secretName("name"), "Name of an object in the McpServer's own namespace.") }).strict();

const ResourceList = z
  .object({
    cpu: quantity.optional(),
    memory: quantity.optional(),
    "ephemeral-storage": quantity.optional(),
  })
  .strict();

type ResourceName = "cpu" | "memory" | "ephemeral-storage";
const requestWithinLimit = (r: ResourceName): Rule<{ requests?: Partial<Record<ResourceName, string>>; limits?: Partial<Record<ResourceName, string>> }> => {
  // CEL sees a property name with '-' escaped as __dash__.
  const prop = r.replaceAll("-", "__dash__");
  const field = `self.requests.${prop}`;
  const limit = `self.limits.${prop}`;
  const present = `has(self.requests) && has(self.limits) && has(${field}) && has(${limit})`;
  return {
    rule: `!(${present}) || quantity(${field}).compareTo(quantity(${limit})) <= 0`,
    message: `spec.resources.requests.${r} must not exceed spec.resources.limits.${r}`,
    check: (v) => {
      const q = v.requests?.[r];
      const l = v.limits?.[r];
      return q === undefined || l === undefined || quantityValue(q) <= quantityValue(l);
    },
  };
};

export const Resources = doc(
  z.object({ requests: ResourceList.optional(), limits: ResourceList.optional() }).strict(),
  "Compute resources of the MCP server container. Absent values get safe defaults; limits are always set.",
  [requestWithinLimit("cpu"), requestWithinLimit("memory"), requestWithinLimit("ephemeral-storage")],
);

const EnvVar = z
  .object({
    name: z.string().min(1).max(128).regex(ENV_NAME, "must be a C identifier (letters, digits, _)"),
    value: doc(z.string().max(4096), "Literal, non-secret value. Secrets come from spec.secrets, as files."),
  })
  .strict();

// ---- transport ----------------------------------------------------------------------------

export const TransportType = z.enum(["streamable-http", "sse", "stdio"]);
export const Transport = doc(
  z
    .object({
      type: doc(TransportType, "How the MCP server speaks. stdio servers are served to clients over streamable HTTP by the gateway."),
      port: doc(
        z.int().min(1024).max(65535).optional(),
        "Port the MCP server listens on inside the pod (HTTP transports only; never exposed outside the pod).",
      ),
      path: doc(
        z
          .string()
          .max(256)
          .regex(/^\/[A-Za-z0-9_\-./]*$/, "must be an absolute URL path"),
        "URL path of the MCP endpoint (HTTP transports only), in canonical form (no '//', '.' or '..' segments: URL parsers resolve them, so the path clients use would differ). Default /mcp, or /sse for sse.",
        [noEmptySegment, noDotSegment],
      ).optional(),
    })
    .strict(),
  "Transport of the MCP server behind the gateway.",
  [
    {
      rule: "self.type != 'stdio' || !has(self.port)",
      message: "spec.transport.port must not be set when type is stdio",
      check: (t) => t.type !== "stdio" || t.port === undefined,
    },
    {
      rule: "self.type != 'stdio' || !has(self.path)",
      message: "spec.transport.path must not be set when type is stdio",
      check: (t) => t.type !== "stdio" || t.path === undefined,
    },
    {
      rule: "self.type == 'stdio' || has(self.port)",
      message: "spec.transport.port is required for HTTP transports",
      check: (t) => t.type === "stdio" || t.port !== undefined,
    },
  ],
);

// ---- authentication -----------------------------------------------------------------------

export const JwtAlgorithm = z.enum(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]);

/** issue 14: API keys kept in a secret manager, synced by External Secrets into the keys Secret. */
export const ApiKeysExternalSecret = z
  .object({
    storeRef: doc(
      z
        .object({
          name: z
            .string()
            .min(1)
            .max(253)
            .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, "must be a DNS subdomain"),
          kind: z.enum(["SecretStore", "ClusterSecretStore"]).default("SecretStore"),
        })
        .strict(),
      "External Secrets store. ClusterSecretStores must be allowed for the namespace by the operator's configuration.",
    ),
    key: doc(
      z.string().min(1).max(1024),
      "Remote secret whose properties are client names and whose values are their keys (or sha256: digests), extracted whole.",
    ),
    refreshInterval: doc(
      z
        .string()
        .regex(/^([0-9]+(s|m|h))+$/, "must be a duration such as 1h or 15m")
        .default("1h"),
      "How often External Secrets syncs the keys; the checklist counts the keys as rotated on this schedule and the gateway reloads them in place.",
    ),
  })
  .strict();

export const ApiKeyAuth = doc(
  z
    .object({
      secretRef: doc(
        LocalObjectReference.optional(),
        "Secret whose keys are client names and whose values are that client's API key (one credential per client).",
      ),
      externalSecret: doc(
        ApiKeysExternalSecret.optional(),
        "The same keys from a secret manager: the operator renders an ExternalSecret whose target Secret (<server>-api-keys) the gateway mounts.",
      ),
    })
    .strict(),
  "Per-client API keys, sent as `Authorization: Bearer <key>` or `X-API-Key`. Rotated without restart.",
  [
    {
      rule: "has(self.secretRef) != has(self.externalSecret)",
      message: "spec.auth.apiKeys: set exactly one of secretRef, externalSecret",
      check: (a) => (a.secretRef === undefined) !== (a.externalSecret === undefined),
    },
  ],
);

export const JwtAuth = doc(
  z
    .object({
      issuer: doc(z.url().max(2048), "Expected `iss`. Keys are found through its OIDC discovery document unless jwksUri or jwksSecretRef is set."),
      audiences: setList(z.array(z.string().min(1).max(512)).min(1).max(16), "Accepted `aud` values (at least one)."),
      jwksUri: doc(z.url().max(2048).optional(), "JWKS URL (https)."),
      jwksSecretRef: doc(
        z
          .object({
            name: secretName("name"),
            key: secretKey("Key of the Secret holding the JWKS; also its file name in the gateway.", 253).default("jwks.json"),
          })
          .strict()
          .optional(),
        "Secret holding the JWKS document, for issuers the pod cannot reach.",
      ),
      algorithms: setList(
        z.array(JwtAlgorithm).min(1).max(9).default(["RS256", "ES256"]),
        "Accepted asymmetric signature algorithms. `none` and HMAC are never accepted.",
      ),
      maxTokenAgeSeconds: doc(z.int().min(60).max(86400).default(3600), "Tokens whose `iat` is older than this are refused."),
      subjectClaim: doc(z.string().min(1).max(64).default("sub"), "Claim that names the client."),
      groupsClaim: doc(z.string().min(1).max(64).default("groups"), "Claim that lists the client's groups."),
    })
    .strict(),
  "JWT bearer tokens (OAuth 2.1 access tokens as the MCP authorization spec describes).",
  [
    {
      rule: "!has(self.jwksUri) || self.jwksUri.startsWith('https://')",
      message: "spec.auth.jwt.jwksUri must use https",
      check: (j) => j.jwksUri === undefined || j.jwksUri.startsWith("https://"),
    },
    {
      rule: "self.issuer.startsWith('https://')",
      message: "spec.auth.jwt.issuer must use https",
      check: (j) => j.issuer.startsWith("https://"),
    },
    {
      rule: "!(has(self.jwksUri) && has(self.jwksSecretRef))",
      message: "spec.auth.jwt: set at most one of jwksUri and jwksSecretRef",
      check: (j) => !(j.jwksUri !== undefined && j.jwksSecretRef !== undefined),
    },
  ],
);

export const MtlsAuth = doc(
  z
    .object({
      spiffeIds: setList(
        z.array(z.string().max(512).regex(SPIFFE_ID, "must be a SPIFFE ID such as spiffe://cluster.local/ns/agents/sa/client")).min(1).max(64),
        "Istio peer identities allowed to connect.",
      ),
    })
    .strict(),
  "Istio mTLS peer identities (requires spec.mesh.istio.enabled).",
);

export const Auth = doc(
  z.object({ apiKeys: ApiKeyAuth.optional(), jwt: JwtAuth.optional(), mtls: MtlsAuth.optional() }).strict(),
  "How clients authenticate. At least one method is required: there is no anonymous mode.",
  [
    {
      rule: "has(self.apiKeys) || has(self.jwt) || has(self.mtls)",
      message: "spec.auth must set at least one of apiKeys, jwt, mtls (there is no anonymous mode)",
      check: (a) => a.apiKeys !== undefined || a.jwt !== undefined || a.mtls !== undefined,
    },
  ],
);

// ---- authorization: scopes, conditions, time, sources, read-only tools, identity (issue 13) -------
// Checks a CRD rule cannot make (CEL expressions and JSON Schemas that must compile, time zones the
// runtime knows) are zod refinements calling the gateway's own compilers, so the operator reports an
// invalid one as InvalidSpec naming the field and the compiler's error, exactly as the gateway would.

const SCOPE = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const HEADER_NAME = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
const HHMM = /^([01][0-9]|2[0-3]):[0-5][0-9]$/;
const scopeList = (description: string) =>
  setList(z.array(z.string().min(1).max(256).regex(SCOPE, "must be an OAuth scope token (no spaces, quotes or backslashes)")).max(64).optional(), description);
const cidrList = (description: string) =>
  setList(z.array(z.string().max(64).regex(CIDR, "must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32")).max(64).optional(), description);

export const CelCondition = doc(
  z
    .object({
      expression: doc(
        z
          .string()
          .min(1)
          .max(4096)
          .superRefine((e, ctx) => {
            const err = conditionError(e);
            if (err) ctx.addIssue({ code: "custom", message: `invalid CEL expression ${JSON.stringify(e.slice(0, 200))}: ${err}` });
          }),
        "CEL expression that must evaluate to true. Variables: request {method, tool, arguments, uri, prompt}, client {name, kind, subject, groups, scopes, claims, spiffeId, source}, now (timestamp). Functions besides CEL's standard ones: cleanPath(p), pathWithin(p, dir), urlHost(u), urlScheme(u).",
      ),
      message: doc(z.string().min(1).max(512).optional(), "Told to the client (and audited) when the condition is false."),
    })
    .strict(),
  "A condition on the call, compiled once by the gateway.",
);

export const TimeWindow = doc(
  z
    .object({
      days: setList(
        z
          .array(z.enum(["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]))
          .max(7)
          .optional(),
        "Days of the week (local to timeZone); all days when absent.",
      ),
      // maxLength keeps the CEL rule below within the API server's cost budget (rules x windows).
      start: doc(z.string().max(5).regex(HHMM, "must be HH:MM (00:00-23:59)"), "Start, local time, inclusive."),
      end: doc(z.string().max(5).regex(HHMM, "must be HH:MM (00:00-23:59)"), "End, local time, exclusive. An end at or before start runs past midnight."),
      timeZone: doc(
        z
          .string()
          .min(1)
          .max(64)
          .refine((tz) => {
            try {
              checkTimeZone(tz);
              return true;
            } catch {
              return false;
            }
          }, "must be an IANA time zone such as Europe/Berlin or UTC"),
        "IANA time zone of start and end.",
      ),
    })
    .strict(),
  "A recurring window.",
  [{ rule: "self.start != self.end", message: "spec.authorization.rules[].schedule.windows[]: start and end must differ", check: (w) => w.start !== w.end }],
);

export const RuleSchedule = doc(
  z
    .object({
      windows: doc(z.array(TimeWindow).max(16).optional(), "The rule is active only inside one of these windows."),
      notBefore: doc(z.iso.datetime({ offset: true }).max(64).optional(), "The rule is inactive before this time (RFC 3339)."),
      notAfter: doc(
        z.iso.datetime({ offset: true }).max(64).optional(),
        "The rule is inactive from this time on (RFC 3339): a temporary elevation ends by itself, without anyone editing the object.",
      ),
    })
    .strict(),
  "When the rule is active, evaluated with the gateway's clock. status.authorization lists the active rules and the next change.",
  [
    {
      rule: "!has(self.notBefore) || !has(self.notAfter) || timestamp(self.notBefore) < timestamp(self.notAfter)",
      message: "spec.authorization.rules[].schedule: notBefore must be before notAfter",
      check: (s) => s.notBefore === undefined || s.notAfter === undefined || Date.parse(s.notBefore) < Date.parse(s.notAfter),
    },
  ],
);

/** Fields added to an authorization rule. */
const RuleExtensions = {
  scopes: scopeList(
    "OAuth scopes a JWT client's token must carry for this rule to allow anything (403 insufficient_scope otherwise). A rule with scopes never applies to API key or SPIFFE clients.",
  ),
  schedule: RuleSchedule.optional(),
  sources: cidrList("The rule applies only to clients from these CIDRs (the connection's address, or X-Forwarded-For from spec.authorization.trustedProxies)."),
  readOnlyTools: doc(
    z.boolean().optional(),
    "Allow only tools whose annotations say readOnlyHint: true and not destructiveHint: true. Annotations come from the server, so they count only for tools pinned in spec.tools.pinned with a fingerprint that includes them.",
  ),
  conditions: doc(z.array(CelCondition).max(16).optional(), "CEL conditions that must all hold for this rule to allow a call."),
};

export const ScopeRequirement = z
  .object({
    name: dnsLabel("spec.authorization.scopes[].name"),
    tools: setList(z.array(glob).max(256).optional(), "Tools (globs) that need the scopes."),
    resources: setList(z.array(glob).max(256).optional(), "Resource URIs (globs) that need the scopes."),
    prompts: setList(z.array(glob).max(256).optional(), "Prompts (globs) that need the scopes."),
    scopes: setList(
      z.array(z.string().min(1).max(256).regex(SCOPE, "must be an OAuth scope token (no spaces, quotes or backslashes)")).min(1).max(64),
      'Scopes a JWT client\'s token must carry to use them; a token without them gets 403 with error="insufficient_scope" naming every scope the call needs.',
    ),
  })
  .strict();

export const ToolConstraint = z
  .object({
    name: dnsLabel("spec.authorization.constraints[].name"),
    tools: setList(z.array(glob).min(1).max(256), "Tools (globs) the constraint applies to, for every client."),
    arguments: doc(
      z
        .record(z.string(), z.unknown())
        .superRefine((schema, ctx) => {
          try {
            compileOverlay(schema);
          } catch (e) {
            ctx.addIssue({ code: "custom", message: `invalid JSON Schema: ${(e as Error).message}` });
          }
        })
        .optional(),
      "JSON Schema (2020-12, strict) the call's arguments must also satisfy, on top of the server's own inputSchema (which the server wrote, so it is not trusted): types, ranges, patterns, lengths.",
    ).meta({ "x-kubernetes-preserve-unknown-fields": true }),
    conditions: doc(
      z.array(CelCondition).max(16).optional(),
      "CEL conditions the call must satisfy (what a schema cannot say: normalized paths, URL hosts, read-only SQL).",
    ),
  })
  .strict();

/** An environment variable name for an identity fact; names that change how programs start are refused (a client chooses the value). */
const identityEnvName = (description: string) =>
  doc(z.string().min(1).max(128).regex(ENV_NAME, "must be a C identifier (letters, digits, _)"), description, [
    {
      rule: `!self.matches('(?i)${RESERVED_ENV.source.replaceAll("\\", "\\\\")}')`,
      message: "spec.authorization.identity.env: the name is reserved (it changes how programs start or run: PATH, LD_*, NODE_*, PYTHON*, ...)",
      check: (n) => !RESERVED_ENV.test(n),
    },
  ]);

export const IdentityForServer = doc(
  z
    .object({
      headers: doc(
        z
          .object({
            client: z.string().max(64).regex(HEADER_NAME).optional(),
            subject: z.string().max(64).regex(HEADER_NAME).optional(),
            groups: z.string().max(64).regex(HEADER_NAME).optional(),
            scopes: z.string().max(64).regex(HEADER_NAME).optional(),
            source: z.string().max(64).regex(HEADER_NAME).optional(),
          })
          .strict()
          .optional(),
        "Header names the gateway sets on requests to the server (client key, subject, comma-separated groups, space-separated scopes, source address). The same headers from a client are never forwarded.",
      ),
      signedJwt: doc(
        z
          .object({
            header: doc(z.string().max(64).regex(HEADER_NAME).optional(), "Header carrying the token to HTTP servers (a stdio server gets it in env.token)."),
            audience: doc(z.string().min(1).max(256), "`aud` of the token, what the server checks."),
            ttlSeconds: z.int().min(10).max(3600).default(60),
          })
          .strict()
          .optional(),
        "Also send a short-lived JWT (ES256, issuer mcp-bastion-gateway) signed with a key the gateway generates at start; the server verifies it with the JWKS at http://<pod>:9090/.well-known/jwks.json.",
      ),
      env: doc(
        z
          .object({
            client: identityEnvName("The client's key (apikey:NAME, jwt:SUBJECT, spiffe:ID).").optional(),
            subject: identityEnvName("The subject (API key name, JWT sub, SPIFFE ID).").optional(),
            groups: identityEnvName("Comma-separated groups (JWT clients).").optional(),
            scopes: identityEnvName("Space-separated scopes the token carried when the session started.").optional(),
            source: identityEnvName("The client's source address.").optional(),
            token: identityEnvName("The signed JWT (needs signedJwt); minted when the process starts, so verify it then.").optional(),
          })
          .strict()
          .optional(),
        "stdio servers: environment variable names the bridge sets for each session's process (one process per session, and a session belongs to one client). Variables of these names in the container's own environment are removed first; names that change how programs start (PATH, LD_*, NODE_*, PYTHON*, ...) are refused.",
      ),
    })
    .strict()
    .superRefine((i, ctx) => {
      for (const p of identityHeaderProblems({ headers: i.headers ?? {}, ...(i.signedJwt ? { signedJwt: i.signedJwt } : {}) }))
        ctx.addIssue({ code: "custom", message: p });
      for (const p of identityEnvProblems(i.env, i.signedJwt !== undefined)) ctx.addIssue({ code: "custom", message: p });
    }),
  "The verified caller's identity for the MCP server (never the client's own token).",
  [
    {
      rule: "has(self.headers) || has(self.signedJwt) || has(self.env)",
      message: "spec.authorization.identity: set headers, signedJwt, env or a combination",
      check: (i) => i.headers !== undefined || i.signedJwt !== undefined || i.env !== undefined,
    },
    {
      rule: "!has(self.env) || !has(self.env.token) || has(self.signedJwt)",
      message: "spec.authorization.identity.env.token needs signedJwt (audience, ttlSeconds) for the token it carries",
      check: (i) => i.env?.token === undefined || i.signedJwt !== undefined,
    },
  ],
);

const AuthorizationExtensions = {
  scopes: listMap(z.array(ScopeRequirement).max(64).default([]), ["name"], "OAuth scopes each tool, resource or prompt needs (JWT clients)."),
  constraints: listMap(z.array(ToolConstraint).max(64).default([]), ["name"], "Per-tool constraints on arguments, for every client."),
  requiredScopes: scopeList("Scopes every token must carry; announced in the 401 challenge so clients ask for no more than these first."),
  trustedProxies: cidrList("Proxies whose X-Forwarded-For names the client's source address. Empty: the connection's address is the source."),
  identity: IdentityForServer.optional(),
};

// ---- authorization ------------------------------------------------------------------------

const AllowDeny = z
  .object({
    allow: setList(z.array(glob).max(256).default([]), "Globs of names this rule allows."),
    deny: setList(z.array(glob).max(256).default([]), "Globs of names this rule denies; deny wins over allow."),
  })
  .strict();

export const ClientSelector = doc(
  z
    .object({
      apiKeys: setList(z.array(z.string().min(1).max(253)).max(256).optional(), "API key client names (keys of the API key Secret)."),
      subjects: setList(z.array(z.string().min(1).max(512)).max(256).optional(), "JWT subjects."),
      groups: setList(z.array(z.string().min(1).max(512)).max(256).optional(), "JWT groups."),
      spiffeIds: setList(z.array(z.string().min(1).max(512)).max(256).optional(), "SPIFFE IDs of mesh peers."),
    })
    .strict(),
  "Which clients a rule applies to; a client matches if any listed identity matches.",
  [
    {
      rule: "has(self.apiKeys) || has(self.subjects) || has(self.groups) || has(self.spiffeIds)",
      message: "spec.authorization.rules[].clients must name at least one of apiKeys, subjects, groups, spiffeIds",
      check: (c) => [c.apiKeys, c.subjects, c.groups, c.spiffeIds].some((l) => l !== undefined),
    },
  ],
);

export const AuthorizationRule = z
  .object({
    name: dnsLabel("spec.authorization.rules[].name"),
    clients: ClientSelector,
    tools: doc(AllowDeny.optional(), "Tools the clients may list and call."),
    resources: doc(AllowDeny.optional(), "Resource URIs the clients may list and read."),
    prompts: doc(AllowDeny.optional(), "Prompts the clients may list and get."),
    ...RuleExtensions,
  })
  .strict();

export const Authorization = doc(
  z
    .object({
      rules: listMap(
        z.array(AuthorizationRule).max(128).default([]),
        ["name"],
        "Rules mapping clients to what they may use. Anything no rule allows is denied.",
      ),
      ...AuthorizationExtensions,
    })
    .strict(),
  "Tool-, resource- and prompt-level authorization. Default deny: a client with no rule sees nothing.",
);

// ---- limits -------------------------------------------------------------------------------

const RateLimit = z
  .object({
    requestsPerMinute: doc(z.int().min(1).max(1_000_000), "Sustained rate."),
    burst: doc(z.int().min(1).max(100_000).optional(), "Bucket size; defaults to requestsPerMinute/6, at least 1."),
  })
  .strict();

export const Limits = doc(
  z
    .object({
      perClient: doc(RateLimit.default({ requestsPerMinute: 600 }), "Token bucket per authenticated client."),
      perTool: listMap(
        z
          .array(RateLimit.extend({ tool: z.string().min(1).max(256).regex(NAME_GLOB) }).strict())
          .max(256)
          .default([]),
        ["tool"],
        "Token buckets per client and tool.",
      ),
      maxConcurrentRequests: doc(z.int().min(1).max(10_000).default(64), "Requests in flight at once, all clients together."),
      maxRequestBytes: doc(
        z
          .int()
          .min(1024)
          .max(16 * 1024 * 1024)
          .default(1024 * 1024),
        "Largest accepted request body.",
      ),
      requestTimeoutSeconds: doc(z.int().min(1).max(3600).default(30), "Deadline of one MCP request."),
      toolTimeouts: listMap(
        z
          .array(z.object({ tool: z.string().min(1).max(256), timeoutSeconds: z.int().min(1).max(3600) }).strict())
          .max(256)
          .default([]),
        ["tool"],
        "Per-tool deadlines that override requestTimeoutSeconds.",
      ),
      redis: doc(
        z
          .object({
            url: doc(
              z
                .string()
                .max(1024)
                .regex(/^rediss?:\/\/[^\s]+$/, "must be a redis:// or rediss:// URL")
                // The URL lands in the gateway's ConfigMap, which must hold no secret values.
                .regex(/^rediss?:\/\/[^\s@/]+(\/[^\s]*)?$/, "must not embed credentials (user:password@): the URL is stored in a ConfigMap"),
              "Shared rate-limit store, so limits hold across replicas. Without it each replica enforces limit/replicas.",
            ),
          })
          .strict()
          .optional(),
        "Optional shared limiter.",
      ),
    })
    .strict(),
  "Rate limits, concurrency, size and time limits enforced by the gateway. Always on; these only tune them.",
);

// ---- tools --------------------------------------------------------------------------------

export const PinnedTool = z
  .object({
    // 128: the MCP limit on tool names; it also keeps the CEL uniqueness rule within the API server's cost budget.
    name: z.string().min(1).max(128),
    sha256: doc(
      z.string().regex(/^[a-f0-9]{64}$/, "must be 64 lowercase hex digits"),
      "sha256 of the canonical JSON of {name, description, inputSchema, annotations (when the tool has any)} (`mcp-bastion fingerprint` prints it). A pin made before annotations were included still matches, but does not vouch for the annotations (rules[].readOnlyTools).",
    ),
  })
  .strict();

export const Tools = doc(
  z
    .object({
      pinned: listMap(z.array(PinnedTool).max(256).default([]), ["name"], "Tools pinned to a fingerprint."),
      onDrift: doc(z.enum(["Block", "Warn"]).default("Block"), "What happens when a pinned tool changes. Warn is a visible opt-out."),
      allowUnpinned: doc(z.boolean().default(true), "Whether tools that have no pin are served when some tools are pinned. false blocks every unpinned tool."),
      scanDescriptions: doc(
        z.boolean().default(true),
        "Scan tool descriptions for injected instructions and hide tools with findings. false is a visible opt-out.",
      ),
    })
    .strict(),
  "Tool description integrity.",
);

// ---- secrets, volumes -----------------------------------------------------------------------

export const SecretSpec = z
  .object({
    name: dnsLabel("spec.secrets[].name"),
    storeRef: doc(
      z
        .object({
          name: secretName("storeRef.name"),
          kind: z.enum(["SecretStore", "ClusterSecretStore"]).default("SecretStore"),
        })
        .strict(),
      "External Secrets store. ClusterSecretStores must be allowed for the namespace by the operator's configuration.",
    ),
    remoteRef: z
      .object({
        key: z.string().min(1).max(1024),
        property: z.string().min(1).max(256).optional(),
        version: z.string().min(1).max(256).optional(),
      })
      .strict(),
    fileName: secretKey("File name under /var/run/secrets/mcp/<name>/ (the key of the target Secret).", 128).default("value"),
    refreshInterval: doc(z.string().regex(DURATION, "must be a duration such as 1h or 15m").default("1h"), "How often External Secrets refreshes the value."),
  })
  .strict();

export const VolumeSpec = z
  .object({
    name: dnsLabel("spec.volumes[].name"),
    mountPath,
    readOnly: doc(z.boolean().default(true), "Mounted read-only unless set to false."),
    configMap: LocalObjectReference.optional(),
    persistentVolumeClaim: z
      .object({ claimName: secretName("claimName") })
      .strict()
      .optional(),
  })
  .strict();

// ---- network, mesh, audit, gateway TLS ----------------------------------------------------------

const LabelSelector = z
  .object({
    matchLabels: z.record(z.string().max(317), z.string().max(63)).optional(),
  })
  .strict();

export const IngressPeer = doc(
  z
    .object({
      namespaceSelector: doc(LabelSelector.optional(), "Namespaces whose pods may connect (combined with podSelector)."),
      podSelector: doc(LabelSelector.optional(), "Pods that may connect (in this namespace unless namespaceSelector is set)."),
      ipBlock: doc(
        z
          .object({
            cidr: z.string().max(64).regex(CIDR, "must be a CIDR such as 10.0.0.0/8"),
            except: setList(
              z.array(z.string().max(64).regex(CIDR, "must be a CIDR such as 10.0.0.0/8")).max(32).optional(),
              "CIDRs inside cidr that stay denied.",
            ),
          })
          .strict()
          .optional(),
        "Clients by address range (issue 13: the same ranges as spec.authorization.rules[].sources), rendered as a NetworkPolicy ipBlock peer.",
      ),
    })
    .strict(),
  "One allowed client peer.",
  [
    {
      rule: "has(self.namespaceSelector) || has(self.podSelector) || has(self.ipBlock)",
      message: "spec.network.ingress[]: set namespaceSelector, podSelector or both, or an ipBlock (an empty peer would match nothing useful)",
      check: (p) => p.namespaceSelector !== undefined || p.podSelector !== undefined || p.ipBlock !== undefined,
    },
    {
      rule: "!has(self.ipBlock) || !(has(self.namespaceSelector) || has(self.podSelector))",
      message: "spec.network.ingress[]: ipBlock cannot be combined with namespaceSelector or podSelector (a NetworkPolicy peer is one or the other)",
      check: (p) => p.ipBlock === undefined || (p.namespaceSelector === undefined && p.podSelector === undefined),
    },
  ],
);

const Port = z.object({ port: z.int().min(1).max(65535), protocol: z.enum(["TCP", "UDP"]).default("TCP") }).strict();

export const EgressRule = doc(
  z
    .object({
      cidrs: setList(
        z
          .array(
            doc(z.string().max(64).regex(CIDR, "must be a CIDR such as 10.0.0.0/8"), "An IPv4 or IPv6 CIDR.", [
              {
                // The pattern only shapes it; 999.1.1.1/8 or 10.0.0.0/40 would reach the NetworkPolicy and fail there.
                rule: "isCIDR(self)",
                message: "must be a valid CIDR (address and prefix length within range)",
                check: (c) => {
                  const [base, len] = c.split("/") as [string, string];
                  const family = isIP(base);
                  return family !== 0 && Number(len) <= (family === 4 ? 32 : 128);
                },
              },
            ]),
          )
          .max(64)
          .optional(),
        "Destination CIDRs. With Istio they stay in the proxy (a ServiceEntry per rule, TCP ports only). Wider than /16 (IPv4) or /48 (IPv6) is reported as an opt-out.",
      ),
      hosts: setList(
        z.array(z.string().max(253).regex(HOSTNAME, "must be a DNS name such as api.github.com")).max(64).optional(),
        "Destination hostnames (needs spec.mesh.istio.enabled: enforced by the Istio sidecar; TCP ports only; wildcards on 443 only). They must resolve to public addresses: private ones need a cidrs rule.",
      ),
      ports: z.array(Port).min(1).max(16),
    })
    .strict(),
  "One allowed outbound destination.",
  [
    {
      rule: "has(self.cidrs) != has(self.hosts)",
      message: "spec.network.egress[]: set exactly one of cidrs, hosts",
      check: (e) => (e.cidrs === undefined) !== (e.hosts === undefined),
    },
    {
      // The Istio sidecar intercepts TCP only: a UDP "hostname" rule would be an open UDP port.
      rule: "!has(self.hosts) || self.ports.all(p, !has(p.protocol) || p.protocol == 'TCP')",
      message:
        "spec.network.egress[].hosts: ports must be TCP (the Istio sidecar does not intercept UDP, so a hostname cannot be enforced); use cidrs for UDP destinations",
      check: (e) => e.hosts === undefined || e.ports.every((p) => p.protocol === "TCP"),
    },
    {
      // A wildcard cannot be resolved: the proxy can only match it on the TLS SNI (port 443). On a
      // plain TCP port it would forward to whatever address the application dialled.
      rule: "!has(self.hosts) || !self.hosts.exists(h, h.startsWith('*.')) || self.ports.all(p, p.port == 443)",
      message:
        "spec.network.egress[].hosts: a wildcard host (*.example.com) can only be enforced by TLS SNI on port 443; list the hosts by name for other ports",
      check: (e) => e.hosts === undefined || !e.hosts.some((h) => h.startsWith("*.")) || e.ports.every((p) => p.port === 443),
    },
  ],
);

export const Network = doc(
  z
    .object({
      ingress: doc(
        z.array(IngressPeer).max(32).default([]),
        "Who may connect to the gateway port. Empty: only pods in the same namespace with label mcp.bastion.dev/client=true.",
      ),
      egress: doc(z.array(EgressRule).max(32).default([]), "Allowed outbound destinations. Everything else is denied."),
      allowDNS: doc(z.boolean().default(true), "Allow DNS to kube-dns in kube-system."),
    })
    .strict(),
  "Default-deny network policy for the server's pods; this only adds allowed peers.",
);

export const Mesh = doc(
  z
    .object({
      istio: z
        .object({
          enabled: z.boolean().default(false),
          mtlsMode: doc(z.enum(["STRICT", "PERMISSIVE"]).default("STRICT"), "PERMISSIVE is a visible opt-out."),
        })
        .strict()
        .prefault({}),
    })
    .strict(),
  "Service mesh integration.",
);

export const Audit = doc(
  z
    .object({
      redactKeys: setList(
        z.array(z.string().min(1).max(128)).max(128).default([]),
        "Extra argument keys whose values are replaced by [REDACTED] in audit lines (token-like keys are always redacted).",
      ),
      checkpoint: doc(
        z
          .object({
            secretRef: doc(
              z.object({ name: secretName("name"), key: z.string().min(1).max(253).default("checkpoint.key") }).strict(),
              "Secret key holding the signing key: an HMAC secret of at least 32 bytes, or an Ed25519 private key in PEM.",
            ),
            everyLines: doc(z.int().min(1).max(1_000_000).default(1000), "A signed checkpoint after this many lines at most."),
            everySeconds: doc(z.int().min(1).max(3600).default(10), "A signed checkpoint this long after an unsigned line at most."),
          })
          .strict()
          .optional(),
        "Signed checkpoints in the audit trail: with them `mcp-bastion audit verify FILE --key KEY` finds a line removed, edited, reordered or appended without the key. Lines are hash-chained either way.",
      ),
      otlp: doc(
        z
          .object({
            endpoint: doc(
              z
                .string()
                .max(2048)
                .regex(
                  /^https?:\/\/[^\s/?#@]+(\/[^\s?#]*)?$/,
                  "must be an http:// or https:// URL without credentials, such as http://otel-collector.observability:4318",
                ),
              "OTLP/HTTP base URL of the collector (/v1/logs is appended unless the URL ends with it). The gateway must be allowed to reach it: add its address to spec.network.egress.",
            ),
            bufferLines: doc(
              z.int().min(100).max(1_000_000).default(10_000),
              "Audit lines kept in the gateway's memory while the collector is unreachable (retried with backoff); lines beyond it are dropped and counted in mcp_gateway_audit_otlp_dropped_total.",
            ),
          })
          .strict()
          .optional(),
        "Also send every audit line, byte for byte (hash chain and checkpoints included), to an OpenTelemetry logs endpoint (OTLP/HTTP JSON), for a central append-only store. Stdout keeps every line either way.",
      ),
    })
    .strict(),
  "Audit log (one JSON line per request on the gateway's stdout, and optionally to an OTLP logs endpoint).",
);

/** The TLS versions the gateway can require (Node's "TLSv1.2"/"TLSv1.3"). */
export const TLS_MIN_VERSIONS = ["1.2", "1.3"] as const;

export const CertManagerIssuerRef = doc(
  z
    .object({
      name: doc(secretName("issuerRef.name"), "Name of the Issuer (in the McpServer's namespace) or ClusterIssuer."),
      kind: doc(
        z.enum(["Issuer", "ClusterIssuer"]).default("Issuer"),
        "Issuer (namespaced) or ClusterIssuer. ClusterIssuers must be allowed for the namespace by the operator's configuration (--allow-cluster-issuer).",
      ),
    })
    .strict(),
  "cert-manager issuer (cert-manager.io/v1) that signs the gateway's certificate.",
);

export const ProtocolVersion = doc(
  z.enum(SUPPORTED_PROTOCOL_VERSIONS),
  `An MCP protocol revision the gateway speaks: ${SUPPORTED_PROTOCOL_VERSIONS.join(", ")}.`,
);
export const Protocol = doc(
  z
    .object({
      versions: setList(
        z
          .array(ProtocolVersion)
          .min(1)
          .max(SUPPORTED_PROTOCOL_VERSIONS.length)
          .superRefine((vs, ctx) => {
            vs.forEach((v, i) => {
              if (vs.indexOf(v) !== i) ctx.addIssue({ code: "custom", path: [i], message: `duplicate protocol version "${v}"` });
            });
          })
          .optional(),
        `Protocol revisions clients may use (an allowlist). Unset: every revision the gateway supports ` +
          `(${SUPPORTED_PROTOCOL_VERSIONS.join(", ")}), and the revisions a later gateway adds. ` +
          `2025-03-26, 2025-06-18 and 2025-11-25 open a session with initialize; 2026-07-28 is stateless ` +
          `(no session, the version travels with every request). A request of another revision is refused ` +
          `with the spec's unsupported-version error (-32022) listing the allowed ones.`,
      ),
    })
    .strict(),
  "MCP protocol revisions the gateway accepts from clients for this server. The upstream server's own revision is discovered by the gateway (a 2025-era server is bridged for 2026 clients).",
);

export const Vulnerabilities = doc(
  z
    .object({
      onCritical: doc(
        z.enum(["Degrade", "Report"]).default("Degrade"),
        "What a VulnerabilityReport (Trivy Operator) with critical vulnerabilities in the server's image does: Degrade sets Degraded=True with reason CriticalVulnerabilities; Report only counts them in status.vulnerabilities and the checklist (a visible opt-out, listed in status.optOuts).",
      ),
    })
    .strict(),
  "Vulnerability scan results of the server's image, read from Trivy Operator's VulnerabilityReports when the cluster runs it.",
);

export const GatewayTls = doc(
  z
    .object({
      secretRef: doc(LocalObjectReference.optional(), "kubernetes.io/tls Secret with tls.crt and tls.key, managed by you."),
      issuerRef: doc(
        CertManagerIssuerRef.optional(),
        "Let cert-manager issue and renew the certificate: the operator creates a Certificate for the Service's DNS names and mounts its Secret; the gateway reloads a renewed certificate without a restart.",
      ),
      minVersion: doc(
        z.enum(TLS_MIN_VERSIONS).default("1.3"),
        'Lowest TLS version the gateway accepts. "1.2" is a visible opt-out for clients without TLS 1.3.',
      ),
    })
    .strict(),
  "TLS termination at the gateway, for clusters without a mesh. Set exactly one of secretRef, issuerRef.",
  [
    {
      rule: "has(self.secretRef) != has(self.issuerRef)",
      message: "spec.tls: set exactly one of secretRef (a Secret you manage) and issuerRef (cert-manager issues it)",
      check: (t) => (t.secretRef === undefined) !== (t.issuerRef === undefined),
    },
  ],
);

// ---- the spec -----------------------------------------------------------------------------------

/** issue 14: whether a tag-only image is refused or only reported. */
export const ImagePolicy = z.enum(["RequireDigest", "AllowTags"]);
export type ImagePolicy = z.infer<typeof ImagePolicy>;

export const McpServerSpec = doc(
  z
    .object({
      image: doc(
        z
          .string()
          .min(1)
          .max(512)
          .regex(/^[^\s]+$/, "must not contain spaces"),
        "Container image of the MCP server. Pin it by digest (image@sha256:...); a tag-only image is reported in status, or refused under imagePolicy RequireDigest.",
      ),
      imagePolicy: doc(
        ImagePolicy.optional(),
        "RequireDigest: a tag-only spec.image is refused (Reconciled=False, reason ImageNotPinned, naming the image) and nothing is deployed. AllowTags: it is deployed and reported in status.optOuts. Unset: the operator's default (chart value defaultImagePolicy).",
      ),
      command: doc(z.array(z.string().max(4096)).max(64).optional(), "Entrypoint override."),
      args: doc(z.array(z.string().max(4096)).max(256).optional(), "Arguments."),
      env: listMap(z.array(EnvVar).max(128).default([]), ["name"], "Non-secret environment variables (literal values only)."),
      replicas: doc(z.int().min(1).max(100).default(1), "Number of pods. More than one adds a PodDisruptionBudget."),
      resources: Resources.optional(),
      transport: Transport,
      auth: Auth,
      authorization: Authorization.prefault({}),
      limits: Limits.prefault({}),
      tools: Tools.prefault({}),
      secrets: listMap(z.array(SecretSpec).max(32).default([]), ["name"], "Secrets from a secret manager, mounted as read-only files."),
      volumes: listMap(z.array(VolumeSpec).max(16).default([]), ["name"], "Extra volumes (ConfigMap or PVC), read-only unless readOnly is false."),
      network: Network.prefault({}),
      mesh: Mesh.prefault({}),
      audit: Audit.prefault({}),
      vulnerabilities: Vulnerabilities.prefault({}),
      tls: GatewayTls.optional(),
      protocol: Protocol.prefault({}),
    })
    .strict(),
  "Desired state of a hardened MCP server.",
  [
    {
      rule: "!has(self.auth.mtls) || (has(self.mesh) && has(self.mesh.istio) && self.mesh.istio.enabled)",
      message: "spec.auth.mtls requires spec.mesh.istio.enabled: true",
      fieldPath: ".auth.mtls",
      check: (s) => s.auth.mtls === undefined || s.mesh.istio.enabled,
    },
    {
      rule: "!has(self.network) || !has(self.network.egress) || self.network.egress.all(e, !has(e.hosts)) || (has(self.mesh) && has(self.mesh.istio) && self.mesh.istio.enabled)",
      message: "spec.network.egress[].hosts requires spec.mesh.istio.enabled: true (hostnames are enforced by the mesh)",
      fieldPath: ".network.egress",
      check: (s) => s.network.egress.every((e) => e.hosts === undefined) || s.mesh.istio.enabled,
    },
    {
      rule: "!has(self.tools) || !has(self.tools.pinned) || self.tools.pinned.all(a, self.tools.pinned.exists_one(b, b.name == a.name))",
      message: "spec.tools.pinned[].name must be unique",
      fieldPath: ".tools.pinned",
      check: (s) => new Set(s.tools.pinned.map((p) => p.name)).size === s.tools.pinned.length,
    },
    {
      rule: "self.transport.type != 'stdio' || (has(self.command) && size(self.command) > 0)",
      message: "spec.command is required when spec.transport.type is stdio (the bridge must know what to run)",
      fieldPath: ".command",
      check: (s) => s.transport.type !== "stdio" || (s.command?.length ?? 0) > 0,
    },
    {
      rule: "!has(self.authorization) || ((!has(self.authorization.scopes) || size(self.authorization.scopes) == 0) && (!has(self.authorization.requiredScopes) || size(self.authorization.requiredScopes) == 0) && (!has(self.authorization.rules) || self.authorization.rules.all(r, !has(r.scopes) || size(r.scopes) == 0))) || has(self.auth.jwt)",
      message: "spec.authorization: OAuth scopes (scopes, requiredScopes, rules[].scopes) need spec.auth.jwt (only JWT clients carry scopes)",
      fieldPath: ".authorization",
      check: (s) =>
        s.auth.jwt !== undefined ||
        (s.authorization.scopes.length === 0 &&
          (s.authorization.requiredScopes?.length ?? 0) === 0 &&
          s.authorization.rules.every((r) => (r.scopes?.length ?? 0) === 0)),
    },
    {
      rule: "!has(self.authorization) || !has(self.authorization.identity) || !has(self.authorization.identity.env) || self.transport.type == 'stdio'",
      message: "spec.authorization.identity.env is for stdio servers (HTTP servers get the identity as headers)",
      fieldPath: ".authorization.identity.env",
      check: (s) => s.authorization.identity?.env === undefined || s.transport.type === "stdio",
    },
    {
      rule: `!has(self.authorization) || !has(self.authorization.identity) || !has(self.authorization.identity.env) || !has(self.env) || !self.env.exists(e, ${PROCESS_IDENTITY_ROLES.map((r) => `(has(self.authorization.identity.env.${r}) && e.name == self.authorization.identity.env.${r})`).join(" || ")})`,
      message: "spec.env must not set a variable that spec.authorization.identity.env names (the bridge replaces it with the verified identity)",
      fieldPath: ".env",
      check: (s) => {
        const names = new Set(Object.values(s.authorization.identity?.env ?? {}));
        return !s.env.some((e) => names.has(e.name));
      },
    },
    {
      rule: "!has(self.tls) || !(has(self.mesh) && has(self.mesh.istio) && self.mesh.istio.enabled)",
      message: "spec.tls is for clusters without a mesh; with spec.mesh.istio.enabled the mesh encrypts traffic",
      fieldPath: ".tls",
      check: (s) => s.tls === undefined || !s.mesh.istio.enabled,
    },
    {
      // Paths are canonical here (the field's own rules), so string equality is path equality.
      rule: "!has(self.volumes) || self.volumes.all(a, self.volumes.exists_one(b, b.mountPath == a.mountPath))",
      message: "spec.volumes[].mountPath must be unique",
      fieldPath: ".volumes",
      check: (s) => new Set(s.volumes.map((v) => normalizeAbsolutePath(v.mountPath))).size === s.volumes.length,
    },
    {
      rule: "!has(self.volumes) || self.volumes.all(v, has(v.configMap) != has(v.persistentVolumeClaim))",
      message: "spec.volumes[]: set exactly one of configMap, persistentVolumeClaim",
      fieldPath: ".volumes",
      check: (s) => s.volumes.every((v) => (v.configMap === undefined) !== (v.persistentVolumeClaim === undefined)),
    },
  ],
);

// ---- status -------------------------------------------------------------------------------------

export const Condition = z.object({
  type: z.string().max(316),
  status: z.enum(["True", "False", "Unknown"]),
  observedGeneration: z.int().min(0).optional(),
  lastTransitionTime: z.string(),
  reason: z.string().max(1024),
  message: z.string().max(32768),
});

export const ChecklistItem = z.object({
  id: z.string(),
  title: z.string(),
  satisfied: z.boolean(),
  detail: z.string(),
});

export const McpServerStatus = z.object({
  observedGeneration: z.int().min(0).optional(),
  conditions: listMap(z.array(Condition).optional(), ["type"], "Ready, Reconciled, Degraded."),
  url: doc(z.string().optional(), "In-cluster URL of the MCP endpoint."),
  checklist: listMap(z.array(ChecklistItem).optional(), ["id"], "One entry per item of the MCP security checklist."),
  optOuts: setList(z.array(z.string()).optional(), "Security defaults this server explicitly loosens."),
  rateLimitMode: doc(z.string().optional(), "How limits hold across replicas: redis (shared) or divided (limit/replicas per pod)."),
  protocolVersions: setList(
    z.array(z.string()).optional(),
    "MCP protocol revisions the gateway accepts from clients (spec.protocol.versions, or every revision it supports). 2025-* open sessions with initialize; 2026-07-28 is stateless.",
  ),
  auth: doc(z.string().optional(), "Accepted auth methods, e.g. apiKeys+jwt (the Auth printer column)."),
  mtls: doc(z.string().optional(), "Transport encryption: STRICT, PERMISSIVE, gateway-tls or none (the mTLS printer column)."),
  vulnerabilities: doc(
    z
      .object({
        report: doc(z.string(), "The VulnerabilityReport read (same namespace)."),
        image: doc(z.string(), "The image it describes, as the scanner recorded it (registry/repository:tag@digest)."),
        scanner: doc(z.string().optional(), "Scanner name and version."),
        updateTimestamp: doc(z.string().optional(), "When the scanner last updated the report."),
        critical: doc(
          z.int().min(0),
          "Critical vulnerabilities (report.summary.criticalCount); any sets Degraded unless spec.vulnerabilities.onCritical is Report.",
        ),
        high: doc(z.int().min(0), "High-severity vulnerabilities (report.summary.highCount)."),
        medium: doc(z.int().min(0), "Medium-severity vulnerabilities (report.summary.mediumCount)."),
        low: doc(z.int().min(0), "Low-severity vulnerabilities (report.summary.lowCount)."),
        unknown: doc(z.int().min(0), "Vulnerabilities of unknown severity (report.summary.unknownCount)."),
      })
      .optional(),
    "Vulnerabilities in the server's image by severity, from Trivy Operator's VulnerabilityReport for the server's current ReplicaSet and image (issue 14).",
  ),
  authorization: doc(
    z
      .object({
        activeRules: setList(z.array(z.string()).optional(), "Rules whose schedule is active now (rules without a schedule are always active)."),
        inactiveRules: setList(z.array(z.string()).optional(), "Rules outside their windows or past notAfter (an expired elevation)."),
        nextChange: doc(z.string().optional(), "When the set of active rules changes next (RFC 3339); the operator updates this status then."),
      })
      .optional(),
    "Time-based authorization as of the last reconcile (issue 13).",
  ),
});

export const ObjectMeta = z
  .object({
    name: z.string().min(1).max(63).regex(DNS_LABEL, "metadata.name must be a DNS label (lowercase letters, digits and '-', at most 63)"),
    namespace: z.string().min(1).max(63).regex(DNS_LABEL).default("default"),
    uid: z.string().optional(),
    generation: z.int().optional(),
    resourceVersion: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  })
  .loose();

export const McpServerSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(KIND),
  metadata: ObjectMeta,
  spec: McpServerSpec,
  status: McpServerStatus.optional(),
});

export type McpServer = z.output<typeof McpServerSchema>;
export type McpServerInput = z.input<typeof McpServerSchema>;
export type McpServerSpec = z.output<typeof McpServerSpec>;
export type McpServerStatus = z.output<typeof McpServerStatus>;
export type AuthorizationRule = z.output<typeof AuthorizationRule>;
export type Condition = z.output<typeof Condition>;
export type ChecklistItem = z.output<typeof ChecklistItem>;

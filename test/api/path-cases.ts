// Cases shared by paths.test.ts (zod) and crd-apiserver.test.ts (the CRD's CEL on a real API server):
// both must refuse every one of them.
import { mcpServerDoc } from "../support/mcpserver.ts";

export const withSpec = (patch: Record<string, unknown>) => mcpServerDoc(patch, { name: "paths", namespace: "cel" });
export const withVolume = (mountPath: string) => withSpec({ volumes: [{ name: "v", mountPath, configMap: { name: "c" } }] });

/** Each of these resolves to, into, or above a path the pod itself uses. */
export const RESERVED_MOUNT_PATH_SPELLINGS = [
  "/tmp",
  "//tmp",
  "/tmp/",
  "/./tmp",
  "/tmp/.",
  "/tmp/x",
  "/data/../tmp",
  "/var/run/secrets/mcp",
  "/./var/run/secrets/mcp",
  "/var/run/secrets//mcp",
  "/var/run/secrets/mcp/token",
  "/var/run/secrets/mcp/../mcp/token",
  "/var/run/secrets",
  "/var",
  "/opt/mcp-bastion",
  "/opt//mcp-bastion",
  "/opt/mcp-bastion/",
  "/opt/./mcp-bastion/bin",
  "/opt",
  "/..",
];

/** [what, spec patch, message expected from both zod and the API server]. */
export const NON_CANONICAL_FIELDS: [string, Record<string, unknown>, string][] = [
  ["mountPath with //", { volumes: [{ name: "v", mountPath: "/data//x", configMap: { name: "c" } }] }, "must not contain '//'"],
  ["mountPath with a . segment", { volumes: [{ name: "v", mountPath: "/data/./x", configMap: { name: "c" } }] }, "must not contain '.' or '..' segments"],
  ["mountPath with a .. segment", { volumes: [{ name: "v", mountPath: "/data/x/../y", configMap: { name: "c" } }] }, "must not contain '.' or '..' segments"],
  ["mountPath with a trailing /", { volumes: [{ name: "v", mountPath: "/data/", configMap: { name: "c" } }] }, "must not end with '/'"],
  ["relative mountPath", { volumes: [{ name: "v", mountPath: "data/x", configMap: { name: "c" } }] }, "spec.volumes[0].mountPath"],
  [
    "mountPath over the secrets",
    { volumes: [{ name: "v", mountPath: "/var/run/secrets/mcp/token", configMap: { name: "c" } }] },
    "must not be, lie inside or contain /tmp",
  ],
  ["mountPath above the bridge", { volumes: [{ name: "v", mountPath: "/opt", configMap: { name: "c" } }] }, "must not be, lie inside or contain /tmp"],
  ["transport.path starting with //", { transport: { type: "streamable-http", port: 3000, path: "//evil.example/mcp" } }, "must not contain '//'"],
  ["transport.path with ..", { transport: { type: "streamable-http", port: 3000, path: "/admin/../mcp" } }, "must not contain '.' or '..' segments"],
  ["transport.path with .", { transport: { type: "sse", port: 3000, path: "/./sse" } }, "must not contain '.' or '..' segments"],
  [
    "secret fileName ..",
    { secrets: [{ name: "s", storeRef: { name: "v" }, remoteRef: { key: "k" }, fileName: ".." }] },
    "must be a plain file name: not '.', not starting with '..'",
  ],
  [
    "secret fileName .",
    { secrets: [{ name: "s", storeRef: { name: "v" }, remoteRef: { key: "k" }, fileName: "." }] },
    "must be a plain file name: not '.', not starting with '..'",
  ],
  [
    "secret fileName ..data",
    { secrets: [{ name: "s", storeRef: { name: "v" }, remoteRef: { key: "k" }, fileName: "..data" }] },
    "must be a plain file name: not '.', not starting with '..'",
  ],
  [
    "secret fileName with /",
    { secrets: [{ name: "s", storeRef: { name: "v" }, remoteRef: { key: "k" }, fileName: "../etc/passwd" }] },
    "spec.secrets[0].fileName",
  ],
  [
    "JWKS key with /",
    { auth: { jwt: { issuer: "https://id.example.com", audiences: ["a"], jwksSecretRef: { name: "j", key: "../../api-keys/ci" } } } },
    "spec.auth.jwt.jwksSecretRef.key",
  ],
  ["CIDR with an octet out of range", { network: { egress: [{ cidrs: ["999.1.1.1/8"], ports: [{ port: 443 }] }] } }, "must be a valid CIDR"],
  ["CIDR with a prefix out of range", { network: { egress: [{ cidrs: ["10.0.0.0/40"], ports: [{ port: 443 }] }] } }, "must be a valid CIDR"],
  [
    "JWKS key ..data",
    { auth: { jwt: { issuer: "https://id.example.com", audiences: ["a"], jwksSecretRef: { name: "j", key: "..data" } } } },
    "must be a plain file name: not '.', not starting with '..'",
  ],
];

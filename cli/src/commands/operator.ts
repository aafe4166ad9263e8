// `mcp-bastion operator`: runs the controller against the current kubeconfig (KUBECONFIG,
// ~/.kube/config) or, inside a pod, the in-cluster service account. Flags match the Helm chart's.
import { parseArgs } from "node:util";
import { parseClusterStorePolicy } from "../../../operator/src/controller/plan.ts";
import { defaultConfig, type Logger, type LogLevel, Operator, type OperatorConfig } from "../../../operator/src/controller/operator.ts";

const USAGE = `usage: mcp-bastion operator [flags]
  --kubeconfig FILE                     kubeconfig (default: $KUBECONFIG, ~/.kube/config, or in-cluster)
  --namespaces a,b                      watch only these namespaces (default: all)
  --gateway-image IMAGE                 gateway sidecar image ($MCP_BASTION_GATEWAY_IMAGE; default ghcr.io/mcp-bastion/mcp-bastion:0.1.0)
  --cluster-domain DOMAIN               cluster DNS domain for status URLs (default cluster.local)
  --allow-cluster-secret-store NS=S1,S2 let namespace NS use these ClusterSecretStores (repeatable; NS or S may be *;
                                        $MCP_BASTION_ALLOW_CLUSTER_SECRET_STORE="ns1=a,b;ns2=c"). Default: none
  --allow-cluster-issuer NS=I1,I2       let namespace NS name these cert-manager ClusterIssuers in spec.tls.issuerRef
                                        (repeatable; NS or I may be *; $MCP_BASTION_ALLOW_CLUSTER_ISSUER). Default: none
  --default-image-policy POLICY         RequireDigest (refuse tag-only images) or AllowTags (report them), for McpServers
                                        that do not set spec.imagePolicy ($MCP_BASTION_DEFAULT_IMAGE_POLICY; default AllowTags)
  --concurrency N                       McpServers reconciled at once (default 16)
  --leader-elect true|false             leader election with a Lease (default true)
  --leader-election-namespace NS        namespace of the Lease (default $POD_NAMESPACE or default)
  --leader-election-id NAME             name of the Lease (default mcp-bastion-operator)
  --lease-duration SECONDS              default 15 (renew deadline 2/3 of it, retry period 2/15 of it)
  --metrics-bind-address HOST:PORT      /metrics (default :8080; 0 turns it off)
  --health-port PORT                    /healthz and /readyz (default 8081; 0 turns it off)
  --resync-period SECONDS               reconcile every server at least this often (default 600)
  --log-level debug|info|warn|error     default info
signals: SIGTERM/SIGINT finish the reconciles in flight, release the Lease and exit; SIGHUP resyncs every server`;

const LEVELS: LogLevel[] = ["debug", "info", "warn", "error"];

export function makeLogger(level: LogLevel, write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const min = LEVELS.indexOf(level);
  return (lvl, msg, fields) => {
    if (LEVELS.indexOf(lvl) < min) return;
    write(`${JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields })}\n`);
  };
}

function positiveInt(name: string, value: string | undefined, def: number): number {
  if (value === undefined) return def;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: "${value}" must be a whole number`);
  return n;
}

function address(name: string, value: string | undefined, def: string): { host: string; port: number } | undefined {
  const v = value ?? def;
  if (v === "0") return undefined;
  const i = v.lastIndexOf(":");
  const host = i > 0 ? v.slice(0, i) : "0.0.0.0";
  const port = Number(i >= 0 ? v.slice(i + 1) : v);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--${name}: "${v}" must be HOST:PORT or :PORT`);
  return { host, port };
}

/** Builds the operator configuration from flags and environment; throws with the flag's name on bad input. */
export function configFromArgs(args: string[], env: NodeJS.ProcessEnv = process.env): OperatorConfig {
  const { values } = parseArgs({
    args,
    options: {
      kubeconfig: { type: "string" },
      namespaces: { type: "string" },
      "gateway-image": { type: "string" },
      "cluster-domain": { type: "string" },
      "allow-cluster-secret-store": { type: "string", multiple: true },
      "allow-cluster-issuer": { type: "string", multiple: true },
      "default-image-policy": { type: "string" },
      concurrency: { type: "string" },
      "leader-elect": { type: "string" },
      "leader-election-namespace": { type: "string" },
      "leader-election-id": { type: "string" },
      "lease-duration": { type: "string" },
      "metrics-bind-address": { type: "string" },
      "health-port": { type: "string" },
      "resync-period": { type: "string" },
      "log-level": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) throw new HelpRequested();
  const level = (values["log-level"] ?? env.MCP_BASTION_LOG_LEVEL ?? "info") as LogLevel;
  if (!LEVELS.includes(level)) throw new Error(`--log-level: "${level}" must be one of ${LEVELS.join(", ")}`);
  const leaderElect = values["leader-elect"] ?? "true";
  if (leaderElect !== "true" && leaderElect !== "false") throw new Error(`--leader-elect: "${leaderElect}" must be true or false`);
  const leaseSeconds = positiveInt("lease-duration", values["lease-duration"], 15);
  if (leaseSeconds < 2) throw new Error("--lease-duration: must be at least 2 seconds");
  const namespaces = (values.namespaces ?? env.MCP_BASTION_NAMESPACES ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const ns of namespaces) if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns)) throw new Error(`--namespaces: "${ns}" is not a namespace name`);
  const stores = [
    ...(values["allow-cluster-secret-store"] ?? []),
    ...(env.MCP_BASTION_ALLOW_CLUSTER_SECRET_STORE ? [env.MCP_BASTION_ALLOW_CLUSTER_SECRET_STORE] : []),
  ];
  const issuers = [...(values["allow-cluster-issuer"] ?? []), ...(env.MCP_BASTION_ALLOW_CLUSTER_ISSUER ? [env.MCP_BASTION_ALLOW_CLUSTER_ISSUER] : [])];
  const gatewayImage = values["gateway-image"] ?? env.MCP_BASTION_GATEWAY_IMAGE ?? "ghcr.io/mcp-bastion/mcp-bastion:0.1.0";
  if (!gatewayImage || /\s/.test(gatewayImage)) throw new Error(`--gateway-image: "${gatewayImage}" is not an image reference`);
  const imagePolicy = values["default-image-policy"] ?? env.MCP_BASTION_DEFAULT_IMAGE_POLICY ?? "AllowTags";
  if (imagePolicy !== "RequireDigest" && imagePolicy !== "AllowTags")
    throw new Error(`--default-image-policy: "${imagePolicy}" must be RequireDigest or AllowTags`);
  const base = defaultConfig();
  const healthPort = positiveInt("health-port", values["health-port"], 8081);
  const metrics = address("metrics-bind-address", values["metrics-bind-address"], ":8080");
  const cfg: OperatorConfig = {
    ...base,
    namespaces,
    gatewayImage,
    ...(values["cluster-domain"] ? { clusterDomain: values["cluster-domain"] } : {}),
    clusterStores: parseClusterStorePolicy(stores),
    clusterIssuers: parseClusterStorePolicy(issuers, "--allow-cluster-issuer", "issuerA,issuerB"),
    defaultImagePolicy: imagePolicy,
    concurrency: Math.max(1, positiveInt("concurrency", values.concurrency, 16)),
    leaderElection: {
      ...base.leaderElection,
      enabled: leaderElect === "true",
      ...(values["leader-election-namespace"] ? { namespace: values["leader-election-namespace"] } : {}),
      ...(values["leader-election-id"] ? { name: values["leader-election-id"] } : {}),
      leaseDurationMs: leaseSeconds * 1000,
      renewDeadlineMs: Math.round((leaseSeconds * 1000 * 2) / 3),
      retryPeriodMs: Math.max(500, Math.round((leaseSeconds * 1000 * 2) / 15)),
    },
    ...(metrics ? { metrics } : {}),
    ...(healthPort > 0 ? { health: { host: metrics?.host ?? "0.0.0.0", port: healthPort } } : {}),
    resyncIntervalMs: Math.max(10, positiveInt("resync-period", values["resync-period"], 600)) * 1000,
    log: makeLogger(level),
    ...(values.kubeconfig ? { kubeconfigPath: values.kubeconfig } : {}),
  };
  return cfg;
}

class HelpRequested extends Error {}

export async function run(args: string[]): Promise<number> {
  let cfg: ReturnType<typeof configFromArgs>;
  try {
    cfg = configFromArgs(args);
  } catch (err) {
    if (err instanceof HelpRequested) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    process.stderr.write(`mcp-bastion operator: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    return 2;
  }
  const op = new Operator(cfg);
  let signalled = false;
  const onSignal = (sig: string) => {
    if (signalled) return;
    signalled = true;
    cfg.log("info", `${sig}: shutting down (finishing reconciles in flight)`);
    void op.stop();
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
  // SIGHUP: reconcile every McpServer now, as the periodic resync does (nothing is written when
  // nothing changed; the benchmark uses it to count the writes of a full resync).
  process.on("SIGHUP", () => {
    cfg.log("info", "SIGHUP: full resync");
    op.resyncAll();
  });
  await op.start();
  cfg.log("info", "operator started", {
    namespaces: cfg.namespaces.length ? cfg.namespaces : "all",
    leaderElection: cfg.leaderElection.enabled,
    identity: cfg.leaderElection.identity,
    endpoints: op.endpointPorts(),
  });
  const result = await op.done;
  if (result === "lost") {
    // Exit now, as controller-runtime does: another replica may hold the Lease from here on, so no
    // reconcile in flight, request queued in the client or retry may reach the API server after this
    // (a graceful stop would wait for them, and for an API server that may be hanging). The pod
    // restarts and stands by again.
    process.exit(1);
  }
  return 0;
}

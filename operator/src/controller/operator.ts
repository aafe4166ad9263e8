// The McpServer controller set up on the manager: what to watch (McpServers, and every kind they
// own, by the managed-by label), the reconciler that makes it so (reconciler.ts), and the defaults.
// The generic machinery (caches, queue, leader election, discovery, endpoints) is ../runtime/.
import { hostname } from "node:os";
import { KIND, API_VERSION, type ImagePolicy, type McpServerStatus, PLURAL } from "../api/v1alpha1.ts";
import { OWNED_KINDS } from "../render/index.ts";
import type { KubeObject } from "../../../contract/kube-object.ts";
import { Manager, type ManagerConfig, type Watches } from "../runtime/manager.ts";
import { SharedValues } from "../runtime/share.ts";
import { type ClusterIssuerPolicy, type ClusterStorePolicy, forgetRender } from "./plan.ts";
import { McpServerReconciler, SERVER_LABEL } from "./reconciler.ts";
import { REPORT_SELECTOR, reportServerKey, slimReport, VULNERABILITY_REPORT } from "./vulnerabilities.ts";

export type { Logger, LogLevel } from "../runtime/manager.ts";
export { FIELD_MANAGER, STATUS_FIELD_MANAGER } from "./reconciler.ts";

const MANAGED_SELECTOR = "app.kubernetes.io/managed-by=mcp-bastion";

export interface OperatorConfig extends ManagerConfig {
  gatewayImage: string;
  clusterDomain?: string;
  clusterStores: ClusterStorePolicy;
  /** Which cert-manager ClusterIssuers each namespace's McpServers may name in spec.tls.issuerRef. */
  clusterIssuers: ClusterIssuerPolicy;
  /** issue 14: image policy of servers that do not set spec.imagePolicy (default AllowTags). */
  defaultImagePolicy?: ImagePolicy;
  /** How often a server blocked by an ownership conflict checks again whether the object is gone. */
  conflictRecheckMs: number;
}

export function defaultConfig(overrides: Partial<OperatorConfig> = {}): OperatorConfig {
  const identity = `${process.env.POD_NAME ?? hostname()}-${process.pid}`;
  return {
    namespaces: [],
    gatewayImage: "ghcr.io/mcp-bastion/mcp-bastion:0.1.0",
    clusterStores: new Map(),
    clusterIssuers: new Map(),
    concurrency: 16,
    leaderElection: {
      enabled: true,
      namespace: process.env.POD_NAMESPACE ?? "default",
      name: "mcp-bastion-operator",
      identity,
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
    },
    resyncIntervalMs: 10 * 60_000,
    discoveryIntervalMs: 30_000,
    conflictRecheckMs: 15_000,
    log: () => {},
    ...overrides,
  };
}

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

/** Status parts that repeat from server to server (checklist items, protocol lists, opt-outs): one frozen copy each. */
const sharedStatus = new SharedValues();

/** An McpServer's status with its repeating parts shared: the checklist alone is ~4 KB of JSON per server, mostly the same items. */
function shareStatus(status: McpServerStatus): McpServerStatus {
  const out: McpServerStatus = { ...status };
  if (status.checklist) out.checklist = sharedStatus.shareEach(status.checklist);
  if (status.optOuts) out.optOuts = sharedStatus.share(status.optOuts);
  if (status.protocolVersions) out.protocolVersions = sharedStatus.share(status.protocolVersions);
  return out;
}

/** Drops what the controller never reads, so 10,000 servers and their children fit in little memory. */
function slim(obj: KubeObject): KubeObject {
  const { managedFields: _m, ...metadata } = obj.metadata;
  // `kubectl apply` keeps a copy of the whole object in an annotation; nothing here reads it.
  if (metadata.annotations?.[LAST_APPLIED] !== undefined) {
    const { [LAST_APPLIED]: _l, ...annotations } = metadata.annotations;
    if (Object.keys(annotations).length) metadata.annotations = annotations;
    else delete metadata.annotations;
  }
  if (obj.kind === KIND && obj.status) return { ...obj, metadata, status: shareStatus(obj.status as McpServerStatus) } as KubeObject;
  // Status is read for these only: Ready (Deployment), the primary, CertificateReady (cert-manager's Certificate).
  if (obj.kind === "Deployment" || obj.kind === KIND || obj.kind === "Certificate") return { ...obj, metadata } as KubeObject;
  const { status: _s, ...rest } = obj;
  return { ...rest, metadata } as KubeObject;
}

const WATCHES: Watches = {
  primary: { apiVersion: API_VERSION, kind: KIND, plural: PLURAL },
  owned: OWNED_KINDS,
  ownedSelector: MANAGED_SELECTOR,
  ownerKey: (child) => {
    const owner = child.metadata.labels?.[SERVER_LABEL];
    return owner && child.metadata.namespace ? `${child.metadata.namespace}/${owner}` : undefined;
  },
  onPrimaryDeleted: (obj) => forgetRender(obj.metadata.namespace ?? "", obj.metadata.name),
  transform: slim,
  // issue 14: Trivy Operator's VulnerabilityReports, read only, while its CRD is installed; a new or
  // updated report re-runs the server it concerns (vulnerabilities.ts says how it is matched).
  related: [{ kind: VULNERABILITY_REPORT, labelSelector: REPORT_SELECTOR, ownerKey: reportServerKey, transform: slimReport }],
};

export class Operator extends Manager {
  declare readonly config: OperatorConfig;

  /** `now`: the reconciler's clock (ms since the epoch). */
  constructor(config: OperatorConfig, now: () => number = Date.now) {
    super(
      config,
      WATCHES,
      (ctx) =>
        new McpServerReconciler(
          ctx,
          {
            gatewayImage: config.gatewayImage,
            ...(config.clusterDomain ? { clusterDomain: config.clusterDomain } : {}),
            clusterStores: config.clusterStores,
            clusterIssuers: config.clusterIssuers,
            ...(config.defaultImagePolicy ? { defaultImagePolicy: config.defaultImagePolicy } : {}),
            conflictRecheckMs: config.conflictRecheckMs,
            identity: config.leaderElection.identity,
            log: config.log,
          },
          now,
        ),
    );
    this.metrics.serverSource = () => {
      const counts: Record<string, number> = { Reconciled: 0, Ready: 0, Degraded: 0 };
      for (const s of this.servers()) {
        for (const c of (s.status as McpServerStatus | undefined)?.conditions ?? [])
          if (c.status === "True" && c.type in counts) counts[c.type] = (counts[c.type] ?? 0) + 1;
      }
      return counts;
    };
  }
}

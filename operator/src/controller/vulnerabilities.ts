// Trivy Operator's VulnerabilityReports (aquasecurity.github.io/v1alpha1) for the server's image, as
// pure functions: which McpServer a report concerns, whether it describes the image the server runs, and
// what the status and checklist say about it. The reconciler feeds them from a watch (operator.ts).
//
// How the scanner names what it scanned (trivy-operator v0.29.0, pkg/kube ObjectToObjectMeta and
// pkg/vulnerabilityreport ReportBuilder): a Deployment's pods are scanned through the Deployment's current
// ReplicaSet, and the report carries the labels trivy-operator.resource.kind=ReplicaSet,
// trivy-operator.resource.name=<ReplicaSet> (or, for a name longer than a label value, a name-hash label
// and the name in the annotation of the same key), trivy-operator.resource.namespace and
// trivy-operator.container.name=<container>; report.registry.server, report.artifact.repository/tag/digest
// say which image was scanned, report.summary counts by severity.
//
// Matching, and why: the ReplicaSet's name is "<Deployment>-<pod-template-hash>" and the Deployment is
// named after the McpServer, so the name before the last "-" is the server (no read access to ReplicaSets
// is needed). Old ReplicaSets keep their old reports until they are deleted, so a report counts only when
// the image it scanned is the image the server runs now (spec.image, what the kubelet pulls): same
// registry and repository, and the same digest when spec.image has one, else the same tag. Among several
// reports for that image (a rollout that changed only the gateway config makes a new ReplicaSet with the
// same server image) the most recently updated wins.
import type { ChecklistItem, McpServer, McpServerStatus } from "../api/v1alpha1.ts";
import type { KubeObject } from "../../../contract/kube-object.ts";

export const VULNERABILITY_REPORT = {
  apiVersion: "aquasecurity.github.io/v1alpha1",
  kind: "VulnerabilityReport",
  plural: "vulnerabilityreports",
  requires: "trivy-operator",
} as const;

export const TRIVY_LABELS = {
  kind: "trivy-operator.resource.kind",
  name: "trivy-operator.resource.name",
  namespace: "trivy-operator.resource.namespace",
  container: "trivy-operator.container.name",
} as const;

/** The container of the rendered pod that runs spec.image (render/workload.ts). */
export const SERVER_CONTAINER = "server";

/** The watch narrows to reports of ReplicaSets' server containers (Deployments are scanned through their ReplicaSet). */
export const REPORT_SELECTOR = `${TRIVY_LABELS.kind}=ReplicaSet,${TRIVY_LABELS.container}=${SERVER_CONTAINER}`;

export type Finding = NonNullable<McpServerStatus["vulnerabilities"]>;

/** What the reconciler found: whether the CRD is served at all, and the report for the current image if any. */
export interface VulnerabilityScan {
  served: boolean;
  finding?: Finding;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : {});
const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
const count = (v: unknown): number => (Number.isInteger(v) && (v as number) >= 0 ? (v as number) : 0);

/** The McpServer key ("namespace/name") a report concerns, from the ReplicaSet the scanner labelled it with. */
export function reportServerKey(report: KubeObject): string | undefined {
  const labels = report.metadata.labels ?? {};
  if (labels[TRIVY_LABELS.kind] !== "ReplicaSet" || labels[TRIVY_LABELS.container] !== SERVER_CONTAINER) return undefined;
  const ns = report.metadata.namespace;
  if (!ns || (labels[TRIVY_LABELS.namespace] !== undefined && labels[TRIVY_LABELS.namespace] !== ns)) return undefined;
  const rs = labels[TRIVY_LABELS.name] ?? report.metadata.annotations?.[TRIVY_LABELS.name];
  const dash = rs?.lastIndexOf("-") ?? -1;
  if (!rs || dash <= 0) return undefined;
  return `${ns}/${rs.slice(0, dash)}`;
}

/** What the cache keeps of a report: metadata and the summary (the vulnerability list can be megabytes). */
export function slimReport(report: KubeObject): KubeObject {
  const { managedFields: _m, ...metadata } = report.metadata;
  const { vulnerabilities: _v, ...rest } = obj(report.report);
  return { apiVersion: report.apiVersion, kind: report.kind, metadata, report: rest } as KubeObject;
}

export interface ImageRef {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const DOCKER_HUB = "index.docker.io";

/** Docker Hub has three names; the scanner (go-containerregistry) writes index.docker.io. */
function normalizeRegistry(r: string): string {
  const lower = r.toLowerCase();
  return lower === "docker.io" || lower === "registry-1.docker.io" ? DOCKER_HUB : lower;
}

/**
 * An image reference as a registry would resolve it (the rules of docker and go-containerregistry): the
 * first path component is a registry when it has a "." or ":" or is "localhost", else Docker Hub, where
 * single-component names live under "library/"; a reference without tag or digest means ":latest".
 */
export function parseImageRef(image: string): ImageRef | undefined {
  const at = image.indexOf("@");
  const digest = at >= 0 ? image.slice(at + 1) : undefined;
  const named = at >= 0 ? image.slice(0, at) : image;
  const slash = named.lastIndexOf("/");
  const colon = named.lastIndexOf(":");
  const tag = colon > slash ? named.slice(colon + 1) : undefined;
  const path = colon > slash ? named.slice(0, colon) : named;
  if (!path) return undefined;
  const parts = path.split("/");
  const first = parts[0]!;
  const hasRegistry = parts.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost");
  const registry = normalizeRegistry(hasRegistry ? first : DOCKER_HUB);
  let repository = (hasRegistry ? parts.slice(1) : parts).join("/");
  if (registry === DOCKER_HUB && !repository.includes("/")) repository = `library/${repository}`;
  return { registry, repository, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** The image a report says it scanned. */
export function reportImage(report: KubeObject): ImageRef | undefined {
  const r = obj(report.report);
  const server = str(obj(r.registry).server);
  const artifact = obj(r.artifact);
  const repository = str(artifact.repository);
  if (!server || !repository) return undefined;
  const tag = str(artifact.tag);
  const digest = str(artifact.digest);
  return { registry: normalizeRegistry(server), repository, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** Whether a report describes `image`: by digest when the image names one, else by tag. */
export function reportMatchesImage(report: KubeObject, image: string): boolean {
  const want = parseImageRef(image);
  const got = reportImage(report);
  if (!want || !got || want.registry !== got.registry || want.repository !== got.repository) return false;
  if (want.digest) return got.digest === want.digest;
  return (got.tag ?? "latest") === (want.tag ?? "latest");
}

function shown(i: ImageRef): string {
  return `${i.registry}/${i.repository}${i.tag ? `:${i.tag}` : ""}${i.digest ? `@${i.digest}` : ""}`;
}

/** The finding for the server's image among the reports that concern the server (undefined: none describes it). */
export function findingFor(image: string, reports: readonly KubeObject[]): Finding | undefined {
  const matching = reports.filter((r) => reportMatchesImage(r, image));
  if (matching.length === 0) return undefined;
  const updated = (r: KubeObject) => str(obj(r.report).updateTimestamp) ?? "";
  const best = matching.sort((a, b) => updated(b).localeCompare(updated(a)) || a.metadata.name.localeCompare(b.metadata.name))[0]!;
  const r = obj(best.report);
  const summary = obj(r.summary);
  const scanner = obj(r.scanner);
  const scannerName = [str(scanner.name), str(scanner.version)].filter(Boolean).join(" ");
  return {
    report: best.metadata.name,
    image: shown(reportImage(best)!),
    ...(scannerName ? { scanner: scannerName } : {}),
    ...(str(r.updateTimestamp) ? { updateTimestamp: str(r.updateTimestamp) } : {}),
    critical: count(summary.criticalCount),
    high: count(summary.highCount),
    medium: count(summary.mediumCount),
    low: count(summary.lowCount),
    unknown: count(summary.unknownCount),
  };
}

export const VULNERABILITY_ITEM = { id: "image-vulnerabilities", title: "Image scanned for vulnerabilities" } as const;

const counts = (f: Finding) => `${f.critical} critical, ${f.high} high, ${f.medium} medium, ${f.low} low, ${f.unknown} unknown`;

/** The checklist item, from what the reconciler found. */
export function vulnerabilityItem(server: McpServer, scan: VulnerabilityScan): ChecklistItem {
  const f = scan.finding;
  const base = { id: VULNERABILITY_ITEM.id, title: VULNERABILITY_ITEM.title };
  if (!scan.served) {
    return { ...base, satisfied: false, detail: "not scanned: Trivy Operator's VulnerabilityReport CRD (aquasecurity.github.io/v1alpha1) is not installed" };
  }
  if (!f) {
    return {
      ...base,
      satisfied: false,
      detail: `no VulnerabilityReport for ${server.spec.image} yet (Trivy Operator scans the server's ReplicaSet after each rollout)`,
    };
  }
  const where = `in ${f.image} (VulnerabilityReport ${f.report}${f.updateTimestamp ? `, updated ${f.updateTimestamp}` : ""})`;
  if (f.critical > 0) {
    const accepted = server.spec.vulnerabilities.onCritical === "Report" ? "; accepted by spec.vulnerabilities.onCritical: Report" : "";
    return { ...base, satisfied: false, detail: `${counts(f)} ${where}${accepted}` };
  }
  return { ...base, satisfied: true, detail: `${counts(f)} ${where}` };
}

/** Degraded's reason and message when critical vulnerabilities degrade the server; undefined otherwise. */
export function criticalDegradation(server: McpServer, scan: VulnerabilityScan): { reason: string; message: string } | undefined {
  const f = scan.finding;
  if (!f || f.critical === 0 || server.spec.vulnerabilities.onCritical !== "Degrade") return undefined;
  return {
    reason: "CriticalVulnerabilities",
    message: `${f.critical} critical vulnerabilit${f.critical === 1 ? "y" : "ies"} in ${f.image} (VulnerabilityReport ${f.report}: ${counts(f)}): update the image, or accept them with spec.vulnerabilities.onCritical: Report`,
  };
}

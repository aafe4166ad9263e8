// spec.tls.issuerRef, "what does it mean for the status", as pure functions: the facts the reconciler
// gathered (does the Issuer exist and is it Ready, what does the live Certificate say) in, the
// CertificateReady condition and what it does to Ready and Degraded out.
import type { McpServer } from "../api/v1alpha1.ts";
import type { ConditionInput } from "./conditions.ts";
import type { KubeObject } from "../../../contract/kube-object.ts";

/** What the reconciler found about the issuer named by spec.tls.issuerRef. */
export type IssuerFacts =
  | { state: "found"; object: KubeObject }
  | { state: "missing" }
  /** The lookup itself failed (forbidden, API server unavailable): said as it is. */
  | { state: "unknown"; error: string };

export interface TlsFacts {
  issuer: IssuerFacts;
  /** The live Certificate (with cert-manager's status), when it exists. */
  certificate?: KubeObject;
}

interface Cond {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

function conditionOf(obj: KubeObject | undefined, type: string): Cond | undefined {
  const list = (obj?.status as { conditions?: Cond[] } | undefined)?.conditions;
  return Array.isArray(list) ? list.find((c) => c.type === type) : undefined;
}

/** How the issuer is named in messages: `Issuer "ca" in namespace "ns"` or `ClusterIssuer "ca"`. */
export function issuerName(server: McpServer): string {
  const ref = server.spec.tls?.issuerRef;
  if (!ref) return "";
  return ref.kind === "Issuer" ? `cert-manager Issuer "${ref.name}" in namespace "${server.metadata.namespace}"` : `cert-manager ClusterIssuer "${ref.name}"`;
}

/**
 * The CertificateReady condition. Reasons:
 *   IssuerNotFound       the Issuer/ClusterIssuer does not exist (cert-manager would wait forever)
 *   IssuerNotReady       it exists but cert-manager has not marked it Ready (e.g. its CA Secret is missing)
 *   IssuerUnknown        the operator could not look it up (the error is in the message)
 *   CertificatePending   the Certificate is not created or has no status yet
 *   Issuing              cert-manager is issuing (first issuance or renewal)
 *   CertificateFailed    cert-manager's last issuance attempt failed (its message)
 *   CertificateNotReady  any other Ready=False from cert-manager (its reason and message)
 *   Issued               Ready: the Secret holds a valid certificate
 */
export function certificateCondition(server: McpServer, facts: TlsFacts, observedGeneration?: number): ConditionInput {
  const og = observedGeneration !== undefined ? { observedGeneration } : {};
  const base = { type: "CertificateReady", ...og };
  const issuer = issuerName(server);
  const f = facts.issuer;
  if (f.state === "missing") {
    return {
      ...base,
      status: "False",
      reason: "IssuerNotFound",
      message: `${issuer} does not exist: create it, or point spec.tls.issuerRef at an existing one (kubectl get issuers,clusterissuers)`,
    };
  }
  if (f.state === "unknown") return { ...base, status: "False", reason: "IssuerUnknown", message: `could not read ${issuer}: ${f.error}` };
  const issuerReady = conditionOf(f.object, "Ready");
  if (issuerReady?.status !== "True") {
    const why = issuerReady ? `${issuerReady.reason ?? ""}: ${issuerReady.message ?? ""}` : "cert-manager has not reported on it yet";
    return { ...base, status: "False", reason: "IssuerNotReady", message: `${issuer} is not Ready (${why})` };
  }
  const cert = facts.certificate;
  const certName = cert?.metadata.name ?? "";
  const ready = conditionOf(cert, "Ready");
  if (!cert || !ready)
    return {
      ...base,
      status: "False",
      reason: "CertificatePending",
      message: `waiting for cert-manager to pick up Certificate ${certName || "(not created yet)"}`,
    };
  const status = (cert.status ?? {}) as { notAfter?: string; renewalTime?: string; lastFailureTime?: string };
  if (ready.status === "True") {
    const when = [status.notAfter ? `valid until ${status.notAfter}` : "", status.renewalTime ? `renewal at ${status.renewalTime}` : ""]
      .filter(Boolean)
      .join(", ");
    return { ...base, status: "True", reason: "Issued", message: `Certificate ${certName} issued by ${issuer}${when ? `, ${when}` : ""}` };
  }
  const issuing = conditionOf(cert, "Issuing");
  if (status.lastFailureTime || issuing?.reason === "Failed") {
    const m = issuing?.status === "False" ? issuing.message : ready.message;
    return {
      ...base,
      status: "False",
      reason: "CertificateFailed",
      message: `cert-manager could not issue Certificate ${certName}: ${m ?? ready.reason ?? "see kubectl describe certificate"}`,
    };
  }
  if (issuing?.status === "True")
    return { ...base, status: "False", reason: "Issuing", message: `cert-manager is issuing Certificate ${certName}: ${issuing.message ?? ""}`.trim() };
  return {
    ...base,
    status: "False",
    reason: "CertificateNotReady",
    message: `Certificate ${certName} is not Ready (${ready.reason ?? ""}: ${ready.message ?? ""})`,
  };
}

/** Reasons that are a problem to act on (Degraded), not a normal step on the way to Ready. */
export const CERTIFICATE_PROBLEMS: ReadonlySet<string> = new Set([
  "IssuerNotFound",
  "IssuerNotReady",
  "IssuerUnknown",
  "CertificateFailed",
  "CertificateNotReady",
]);

/**
 * How often to look at the issuer again while it is missing or not Ready: the operator does not watch
 * Issuers (its RBAC is get only), so a new or repaired Issuer is noticed by this recheck.
 */
export const ISSUER_RECHECK_MS = 30_000;

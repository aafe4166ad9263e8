// What the real-node tests do with the cluster's API, once: kubectl that must succeed, objects as JSON,
// server-side apply, a pod described for failure messages, and the operator installed from our image with
// the Helm chart (as a user would) into a namespace enforcing Pod Security "restricted".
import assert from "node:assert/strict";
import { join } from "node:path";
import { type Cluster, helmInstallOperator, waitUntil } from "../../dev/cluster/index.ts";

// biome-ignore lint/suspicious/noExplicitAny: API objects are navigated loosely in assertions
export type Any = any;

export const ROOT = join(import.meta.dirname, "..", "..");
export const RESTRICTED = { "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted" };
/** The pod security context Pod Security "restricted" accepts, for the tests' own pods. */
export const RESTRICTED_POD = { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: "RuntimeDefault" } };
export const RESTRICTED_CONTAINER = { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } };

export interface Kube {
  /** kubectl that must succeed (the assertion names the command and its stderr); returns stdout. */
  kubectl(args: string[], input?: string): Promise<string>;
  /** An object (or list) as JSON; undefined when kubectl fails (absent, not yet created). */
  getJson(args: string[]): Promise<Any>;
  apply(objects: Any[]): Promise<void>;
  /** What a pod looks like right now, for failure messages: phase, container states, last events. */
  describePod(ns: string, name: string): Promise<string>;
}

export function kube(cluster: Cluster): Kube {
  const kubectl = async (args: string[], input?: string) => {
    const r = await cluster.kubectl(args, input === undefined ? {} : { input });
    assert.equal(r.code, 0, `kubectl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const getJson = async (args: string[]) => {
    const r = await cluster.kubectl([...args, "-o", "json"]);
    return r.code === 0 ? JSON.parse(r.stdout) : undefined;
  };
  const apply = async (objects: Any[]) => {
    await kubectl(["apply", "--server-side", "--force-conflicts", "-f", "-"], objects.map((o) => JSON.stringify(o)).join("\n"));
  };
  const describePod = async (ns: string, name: string) => {
    const pod = await getJson(["-n", ns, "get", "pod", name]);
    const states = [...(pod?.status?.initContainerStatuses ?? []), ...(pod?.status?.containerStatuses ?? [])].map(
      (c: Any) => `${c.name}: ${JSON.stringify(c.state)} restarts=${c.restartCount}`,
    );
    const events = (
      await cluster.kubectl([
        "-n",
        ns,
        "get",
        "events",
        "--field-selector",
        `involvedObject.name=${name}`,
        "-o",
        "custom-columns=R:.reason,M:.message",
        "--no-headers",
      ])
    ).stdout
      .trim()
      .split("\n")
      .slice(-4);
    return `pod ${ns}/${name} phase=${pod?.status?.phase} ${states.join("; ")} events: ${events.join(" | ")}`;
  };
  return { kubectl, getJson, apply, describePod };
}

export function condition(obj: Any, type: string): Any {
  return obj?.status?.conditions?.find((c: Any) => c.type === type);
}

/**
 * Installs the operator with the Helm chart from `image` (a digest-pinned reference imported into the node)
 * as release `bastion` in `namespace` (created with Pod Security restricted), and waits until `replicas`
 * operator pods are available and one holds the leader Lease. Returns the operator pods' names.
 */
export async function installOperator(cluster: Cluster, helm: string, image: string, namespace: string, replicas = 2): Promise<string[]> {
  const k = kube(cluster);
  await k.apply([{ apiVersion: "v1", kind: "Namespace", metadata: { name: namespace, labels: RESTRICTED } }]);
  const r = await helmInstallOperator(cluster, helm, image, namespace, [`replicaCount=${replicas}`]);
  assert.equal(r.code, 0, `helm install: ${r.stderr}`);
  const deploy = "bastion-mcp-bastion";
  await waitUntil(`the operator Deployment to be available (${replicas} replicas)`, 600_000, async () => {
    const d = await k.getJson(["-n", namespace, "get", "deploy", deploy]);
    if ((d?.status?.availableReplicas ?? 0) >= replicas) return true;
    const pods = await k.getJson(["-n", namespace, "get", "pods"]);
    const seen = await Promise.all((pods?.items ?? []).map((p: Any) => k.describePod(namespace, p.metadata.name)));
    return `available=${d?.status?.availableReplicas ?? 0}; ${seen.join("; ") || "no pods"}; ${JSON.stringify(d?.status?.conditions ?? [])}`;
  });
  const pods = (await k.getJson(["-n", namespace, "get", "pods", "-l", "app.kubernetes.io/name=mcp-bastion"])).items as Any[];
  const names = pods.map((p) => p.metadata.name as string);
  assert.equal(names.length, replicas);
  await waitUntil("one operator pod to hold the Lease", 120_000, async () => {
    const lease = await k.getJson(["-n", namespace, "get", "lease", "mcp-bastion-operator"]);
    const holder: string = lease?.spec?.holderIdentity ?? "";
    return names.some((n) => holder.startsWith(n)) ? true : `lease holder ${JSON.stringify(holder)}, pods ${names.join(", ")}`;
  });
  return names;
}

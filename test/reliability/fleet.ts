// "Has the fleet converged?" for the fault scenarios: every McpServer Reconciled=True for its
// current generation, every child the renderer says it should have exists exactly once, owned by
// it, and nothing else managed by mcp-bastion lives in the namespace (no duplicate, no orphan).
// Reads everything with a few list calls, so it can be polled to time convergence.
import { validateMcpServer } from "../../operator/src/api/validate.ts";
import { OWNED_KINDS, renderMcpServer } from "../../operator/src/render/index.ts";
import { waitUntil } from "../support/index.ts";
import { type Kube, MCP_PATH } from "./kube.ts";

interface Item {
  metadata: {
    name: string;
    uid: string;
    generation?: number;
    creationTimestamp?: string;
    labels?: Record<string, string>;
    ownerReferences?: { uid: string; controller?: boolean }[];
    deletionTimestamp?: string;
  };
  spec?: Record<string, unknown>;
  status?: { conditions?: { type: string; status: string; observedGeneration?: number; reason?: string; message?: string }[] };
}

/** Children the operator always creates (the Istio and External Secrets kinds need CRDs this suite does not install). */
const CORE_KINDS = OWNED_KINDS.filter((k) => !k.requires);

function basePath(apiVersion: string): string {
  return apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
}

async function list(kube: Kube, path: string): Promise<Item[]> {
  const r = await kube.req("GET", path);
  if (r.status !== 200) throw new Error(`GET ${path}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
  return (r.body as { items: Item[] }).items;
}

/** Problems that keep the namespace from being converged; empty when it is. */
export async function fleetProblems(kube: Kube, ns: string, names?: Set<string>): Promise<string[]> {
  const problems: string[] = [];
  const servers = await list(kube, `${MCP_PATH}/namespaces/${ns}/mcpservers`);
  const byUid = new Map(servers.map((s) => [s.metadata.uid, s]));
  const expected = new Set<string>();
  for (const s of servers) {
    if (names && !names.has(s.metadata.name)) continue;
    const rec = s.status?.conditions?.find((c) => c.type === "Reconciled");
    if (rec?.status !== "True" || rec.observedGeneration !== s.metadata.generation) {
      problems.push(
        `${s.metadata.name}: Reconciled=${rec?.status ?? "-"} for generation ${rec?.observedGeneration ?? "-"} of ${s.metadata.generation} (${rec?.reason ?? ""}: ${rec?.message?.slice(0, 200) ?? ""})`,
      );
    }
    const v = validateMcpServer({ apiVersion: "mcp.bastion.dev/v1alpha1", kind: "McpServer", ...s });
    if (!v.ok) continue;
    for (const o of renderMcpServer(v.value, { gatewayImage: "unused" }).objects) {
      if (CORE_KINDS.some((k) => k.kind === o.kind)) expected.add(`${o.kind}/${o.metadata.name}`);
    }
  }
  for (const k of CORE_KINDS) {
    const items = await list(
      kube,
      `${basePath(k.apiVersion)}/namespaces/${ns}/${k.plural}?labelSelector=${encodeURIComponent("app.kubernetes.io/managed-by=mcp-bastion")}`,
    );
    for (const it of items) {
      const key = `${k.kind}/${it.metadata.name}`;
      const owners = (it.metadata.ownerReferences ?? []).filter((o) => o.controller);
      const owner = owners.length === 1 ? byUid.get(owners[0]!.uid) : undefined;
      if (!owner) problems.push(`${key}: orphan (${owners.length} controller owner references, owner exists: false, created ${it.metadata.creationTimestamp})`);
      else if (names && !names.has(owner.metadata.name)) continue;
      if (!expected.delete(key) && owner && !it.metadata.deletionTimestamp) problems.push(`${key}: not rendered for its owner (duplicate or stale)`);
      if (k.kind === "Deployment" && owner) {
        const want = (owner.spec?.replicas as number | undefined) ?? 1;
        const have = (it.spec as { replicas?: number } | undefined)?.replicas;
        if (have !== want) problems.push(`${key}: replicas ${have}, spec says ${want}`);
      }
    }
  }
  for (const missing of expected) problems.push(`${missing}: missing`);
  return problems;
}

/** Polls until the namespace is converged; returns the elapsed ms, or throws with what is left. */
export async function waitConverged(kube: Kube, ns: string, timeoutMs: number, names?: Set<string>): Promise<number> {
  const start = performance.now();
  await waitUntil(
    `namespace ${ns} to converge (last seen: how many problems, and the first ones)`,
    async () => {
      const problems = await fleetProblems(kube, ns, names);
      return { problems: problems.length, first: problems.slice(0, 5) };
    },
    (p) => p.problems === 0,
    timeoutMs,
    250,
  );
  return performance.now() - start;
}

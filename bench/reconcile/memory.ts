// Where the operator's heap goes per McpServer (not a timed test): runs the operator in this process
// against the local control plane, creates N McpServers, waits until all are Reconciled and idle, then
// measures the live heap (after a full GC) while dropping one cache at a time: the McpServer cache,
// each child kind's cache, the render cache. Prints KB per server for each.
//
//   node --expose-gc bench/reconcile/memory.ts [--servers N]
import { parseArgs } from "node:util";
import { KubeClient } from "../../operator/src/runtime/kube.ts";
import { startControlPlane } from "../../dev/controlplane/index.ts";
import { OWNED_KINDS } from "../../operator/src/render/index.ts";
import { waitFor } from "../../test/support/index.ts";
import { grantOperatorRbac, installCrd, mcpServer, must, startInProcessOperator } from "../../test/controller/helpers.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write("bench/reconcile/memory: run with node --expose-gc\n");
  process.exit(2);
}
const { values } = parseArgs({ options: { servers: { type: "string", default: "1000" } } });
const N = Number(values.servers);
const NS = "bench";

function liveHeapMb(): number {
  for (let i = 0; i < 3; i++) gc!();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}

const cp = await startControlPlane();
try {
  await installCrd(cp);
  await must(cp, ["create", "namespace", NS]);
  await must(cp, ["create", "namespace", "mcp-system"]);
  await grantOperatorRbac(cp, "mcp-bastion-operator", "mcp-system");
  const client = await KubeClient.create({ kubeconfigPath: cp.kubeconfigPath, userAgent: "bench", maxSockets: 32 });
  const empty = liveHeapMb();
  const op = await startInProcessOperator(cp, { concurrency: 32, resyncIntervalMs: 3_600_000 });
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < N) {
        const i = next++;
        await client.create({ apiVersion: "mcp.bastion.dev/v1alpha1", plural: "mcpservers", namespace: NS }, mcpServer(`s-${String(i).padStart(5, "0")}`, NS));
      }
    }),
  );
  const reconciled = () =>
    op
      .servers()
      .filter((s) =>
        (s.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions?.some((c) => c.type === "Reconciled" && c.status === "True"),
      ).length;
  await waitFor(`${N} Reconciled`, async () => reconciled() >= N, Math.max(600_000, N * 600), 1000);
  await op.idle();
  // A full resync with nothing changed, as the periodic one: the caches hold what they hold in steady state.
  op.resyncAll();
  await op.idle();
  const all = liveHeapMb();
  const rows: [string, number][] = [];
  let before = all;
  for (const kind of OWNED_KINDS) {
    const inf = op.childInformer(kind.apiVersion, kind.kind, NS);
    if (!inf) continue;
    const count = inf.cache.size;
    inf.cache.clear();
    const after = liveHeapMb();
    rows.push([`${kind.kind} cache (${count} objects)`, before - after]);
    before = after;
  }
  const primary = op.primaryInformer(NS);
  const count = primary?.cache.size ?? 0;
  primary?.cache.clear();
  const afterPrimary = liveHeapMb();
  rows.push([`McpServer cache (${count} objects)`, before - afterPrimary]);
  const kb = (mb: number) => ((mb * 1024) / N).toFixed(2);
  process.stdout.write(`operator heap for ${N} McpServers (in process, live heap after GC)\n`);
  process.stdout.write(`  total above an empty process: ${(all - empty).toFixed(1)} MB = ${kb(all - empty)} KB per server\n`);
  for (const [what, mb] of rows) process.stdout.write(`  ${what.padEnd(40)} ${mb.toFixed(1).padStart(6)} MB  ${kb(mb).padStart(6)} KB/server\n`);
  process.stdout.write(`  rest (render cache, queue, indexes, code) ${(afterPrimary - empty).toFixed(1).padStart(6)} MB\n`);
  await op.stop();
  client.close();
} finally {
  await cp.stop();
}

// Hostile McpServer specs (test/reliability/hostile-specs.ts), three ways:
// 1. the zod schema (what `mcp-bastion render` and the operator use) refuses each invalid one with a
//    message naming the field, and every accepted one renders to pods that pass `restricted`;
// 2. the real API server with the generated CRD does the same (the user's first line of defence);
// 3. the objects the API server stored are reconciled by the real operator, which stays up and
//    reports a condition for each (objects a CRD cannot refuse: one that names the field).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { validateMcpServer } from "../../operator/src/api/validate.ts";
import { renderMcpServer } from "../../operator/src/render/index.ts";
import { restrictedViolations } from "../../operator/src/render/restricted.ts";
import { type ControlPlane, startControlPlane } from "../../dev/controlplane/index.ts";
import { Figures } from "./figures.ts";
import { HOSTILE_SPECS, type HostileSpec, NAMESPACE, namesField, podTemplates } from "./hostile-specs.ts";
import { waitUntil } from "../support/index.ts";
import { crdManifest, ensureNamespace, installCrd, type Kube, kubeClient, MCP_PATH, statusMessage } from "./kube.ts";
import { type OperatorProcess, spawnOperator } from "../controller/helpers.ts";

const figures = new Figures(import.meta.url);
after(() => figures.flush());

const BYPASS_NAMESPACE = "hostile-bypass";
const RENDER = { gatewayImage: "ghcr.io/mcp-bastion/mcp-bastion:0.1.0" };

describe("zod schema and renderer", () => {
  for (const h of HOSTILE_SPECS) {
    test(`${h.id}: ${h.what}`, () => {
      const v = validateMcpServer(h.manifest);
      let ok = false;
      try {
        if (h.field) {
          assert.equal(v.ok, false, `accepted, but ${h.field} should be refused`);
          if (!v.ok)
            assert.ok(
              v.errors.some((e) => namesField(e, h.field!)),
              `no message names ${h.field}: ${v.errors.join(" | ")}`,
            );
          for (const e of v.ok ? [] : v.errors) assert.ok(e.length < 1000, `message too long (${e.length} chars): echoes the input?`);
        } else {
          assert.equal(v.ok, true, v.ok ? "" : v.errors.join(" | "));
          if (v.ok) {
            const r = renderMcpServer(v.value, RENDER);
            const pods = podTemplates(r);
            assert.ok(pods.length > 0, "no pod rendered");
            for (const p of pods) assert.deepEqual(restrictedViolations(p.spec, p.annotations), [], `pod ${p.name} fails restricted`);
            assert.deepEqual(h.safe?.(r, v.value) ?? [], []);
          }
        }
        ok = true;
      } finally {
        figures.scenario(`zod ${h.id}`, ok);
      }
    });
  }
  test("the list is big enough to mean something", () => {
    const refused = HOSTILE_SPECS.filter((h) => h.field).length;
    figures.figure("hostile specs", `${HOSTILE_SPECS.length} (${refused} to refuse, ${HOSTILE_SPECS.length - refused} legal but hostile)`);
    assert.ok(HOSTILE_SPECS.length >= 40);
    assert.equal(new Set(HOSTILE_SPECS.map((h) => h.id)).size, HOSTILE_SPECS.length, "duplicate ids");
  });
});

describe("real API server and operator", () => {
  let cp: ControlPlane | undefined;
  let kube: Kube | undefined;
  /** Objects stored in spite of a rule (the CRD is laxer than zod there): name -> case. */
  const storedInvalid = new Map<string, HostileSpec>();
  /** Legal objects stored: name -> case. */
  const storedValid = new Map<string, HostileSpec>();
  /** Invalid objects stored before the CRD had a schema (the "CRD not yet updated" path). */
  const bypassed = new Map<string, HostileSpec>();

  before(async () => {
    const crd = await crdManifest();
    // kube-controller-manager: the legal-but-hostile servers' Deployments get real Pods, admitted
    // (or not) by Pod Security admission in a namespace that enforces `restricted`.
    cp = await startControlPlane({ controllerManager: true });
    kube = kubeClient(cp.kubeconfigPath);
    await ensureNamespace(kube, NAMESPACE, { "pod-security.kubernetes.io/enforce": "restricted" });
    await ensureNamespace(kube, BYPASS_NAMESPACE);
    // First a CRD without a schema, as if an older CRD were installed: every invalid spec gets
    // stored, so the operator meets them all. Then the real CRD for the refusal tests.
    await installCrd(kube, looseCrd(crd));
    for (const h of HOSTILE_SPECS.filter((x) => x.field)) {
      const md = h.manifest.metadata as { name: string };
      const m = { ...h.manifest, metadata: { ...md, namespace: BYPASS_NAMESPACE } };
      const r = await kube.req("POST", `${MCP_PATH}/namespaces/${BYPASS_NAMESPACE}/mcpservers`, m);
      if (r.status === 201) bypassed.set(md.name, h);
    }
    await installCrd(kube, crd);
    // A CRD update reaches the API server's handlers asynchronously: wait until the schema bites.
    await waitUntil(
      "the real CRD schema to be enforced (a hostile spec refused with 400/422)",
      async () => (await kube!.req("POST", `${MCP_PATH}/namespaces/${NAMESPACE}/mcpservers?dryRun=All`, HOSTILE_SPECS[0]!.manifest)).status,
      (status) => status === 422 || status === 400,
      60_000,
      100,
    );
  });
  after(async () => {
    kube?.close();
    await cp?.stop();
  });

  for (const h of HOSTILE_SPECS) {
    test(`API server: ${h.id}`, async () => {
      assert.ok(kube, "the control plane did not start (see the before hook's error)");
      let ok = false;
      let figure: string | undefined;
      try {
        const r = await kube.req("POST", `${MCP_PATH}/namespaces/${NAMESPACE}/mcpservers?fieldValidation=Strict`, h.manifest);
        const msg = statusMessage(r);
        const name = (h.manifest.metadata as { name: string }).name;
        if (h.field) {
          if (r.status === 201) {
            // The CRD cannot say everything zod says; then the operator must (checked below).
            storedInvalid.set(name, h);
            figure = "stored by the API server: the operator must refuse it";
          } else {
            assert.ok(r.status >= 400 && r.status < 500, `HTTP ${r.status}: ${msg.slice(0, 300)}`);
            assert.ok(namesField(msg, h.field), `HTTP ${r.status} does not name ${h.field}: ${msg.slice(0, 600)}`);
            assert.doesNotMatch(msg, /panic|goroutine|\.go:\d+/, "internal error text in the answer");
          }
        } else {
          assert.equal(r.status, 201, `HTTP ${r.status}: ${msg.slice(0, 600)}`);
          storedValid.set(name, h);
        }
        ok = true;
      } finally {
        figures.scenario(`api ${h.id}`, ok, figure);
      }
    });
  }

  describe("operator", () => {
    let op: OperatorProcess | undefined;
    after(async () => {
      await op?.stop("SIGTERM");
    });
    test("reconciles every stored hostile object, stays up, reports a condition on each", async () => {
      assert.ok(cp && kube, "the control plane did not start (see the before hook's error)");
      let ok = false;
      try {
        figures.figure("API server stored despite a rule", `${storedInvalid.size}: ${[...storedInvalid.keys()].join(", ") || "none"}`);
        figures.figure("stored before the CRD had a schema", `${bypassed.size} invalid objects`);
        op = await spawnOperator(cp.kubeconfigPath, [`--namespaces=${NAMESPACE},${BYPASS_NAMESPACE}`, "--leader-elect=false"]);
        const o = op;
        const log = () => o.logs.map((l) => JSON.stringify(l)).join("\n");
        const alive = () => o.child.exitCode === null && o.child.signalCode === null;
        const start = performance.now();
        const k = kube;
        const pending = new Map<string, { ns: string; h: HostileSpec; mustName: boolean }>();
        for (const [n, h] of storedValid) pending.set(`${NAMESPACE}/${n}`, { ns: NAMESPACE, h, mustName: false });
        for (const [n, h] of storedInvalid) pending.set(`${NAMESPACE}/${n}`, { ns: NAMESPACE, h, mustName: true });
        for (const [n, h] of bypassed) pending.set(`${BYPASS_NAMESPACE}/${n}`, { ns: BYPASS_NAMESPACE, h, mustName: true });
        const total = pending.size;
        const eventOnly: string[] = [];
        const problems: string[] = [];
        // Only bounds a broken run: a loaded machine reconciles these slowly, a hung operator never does.
        const deadline = start + 300_000;
        while (pending.size > 0 && performance.now() < deadline) {
          assert.ok(alive(), `the operator exited: ${log().slice(-2000)}`);
          for (const [key, { ns, h, mustName }] of [...pending]) {
            const name = key.slice(ns.length + 1);
            const r = await k.req("GET", `${MCP_PATH}/namespaces/${ns}/mcpservers/${name}`);
            const o = r.body as { spec?: unknown; status?: { conditions?: Cond[] } };
            const conds = o.status?.conditions ?? [];
            if (conds.length === 0) {
              // Some stored objects break the schema so badly that the API server refuses any status
              // write to them (SSA cannot type the live object; root CEL rules fail). Then a Warning
              // Event (what `kubectl describe` shows) must name the field, and the log must too.
              if (mustName) {
                const ev = await k.req("GET", `/api/v1/namespaces/${ns}/events?fieldSelector=${encodeURIComponent(`involvedObject.name=${name}`)}`);
                const msgs = ((ev.body as { items?: { message?: string }[] }).items ?? []).map((e) => e.message ?? "");
                if (msgs.some((m) => namesField(m, h.field!)) && logNames(log(), key, h.field!)) {
                  pending.delete(key);
                  eventOnly.push(key);
                }
              }
              continue;
            }
            pending.delete(key);
            const text = conds.map((c) => `${c.type}=${c.status} ${c.reason}: ${c.message}`).join(" | ");
            for (const c of conds) if (/\n\s+at |node:internal|\.ts:\d+/.test(c.message)) problems.push(`${key}: stack trace in condition ${c.type}`);
            if (mustName && !namesField(text, h.field!)) {
              // The API server prunes unknown fields when it reads a stored object: what is left is
              // either valid (and reconciled: fine) or invalid in the enclosing field, which the
              // condition must then name (spec.volumes[] for a volume that lost its hostPath).
              const valid = validateMcpServer(r.body).ok;
              const enclosing = ancestors(h.field!).some((a) => text.includes(a.replace(/\[\d+\]$/, "")));
              if (!valid && !enclosing) problems.push(`${key}: conditions do not name ${h.field}: ${text.slice(0, 300)}`);
            }
          }
          if (pending.size > 0) await new Promise((r) => setTimeout(r, 250));
        }
        assert.deepEqual([...pending.keys()], [], `objects without any condition after 300 s; operator log:\n${log().slice(-3000)}`);
        assert.deepEqual(problems, []);
        assert.ok(alive(), `the operator exited: ${log().slice(-2000)}`);
        assert.doesNotMatch(log(), /\\n\s+at .+:\d+:\d+|\n\s+at .+:\d+:\d+/, "stack trace in the operator's log");
        figures.figure("reported by an Event only (the API server refuses their status)", `${eventOnly.length}: ${eventOnly.join(", ") || "none"}`);
        figures.figure("operator: every stored hostile object reported", `${((performance.now() - start) / 1000).toFixed(2)} s for ${total} objects`);
        ok = true;
      } finally {
        figures.scenario("operator survives hostile objects", ok);
      }
    });

    test("the legal-but-hostile servers' Pods are admitted under Pod Security `restricted`", async () => {
      assert.ok(kube && op, "the operator did not run (see the previous test)");
      const k = kube;
      let ok = false;
      try {
        const start = performance.now();
        const missing = new Set(storedValid.keys());
        await waitUntil(
          "a Pod for every legal-but-hostile server (last seen: the servers without one)",
          async () => {
            for (const name of [...missing]) {
              const r = await k.req(
                "GET",
                `/api/v1/namespaces/${NAMESPACE}/pods?limit=1&labelSelector=${encodeURIComponent(`mcp.bastion.dev/server=${name}`)}`,
              );
              if (((r.body as { items?: unknown[] }).items ?? []).length > 0) missing.delete(name);
            }
            return [...missing];
          },
          (left) => left.length === 0,
          300_000,
          500,
        );
        // Control: admission really enforces here (a privileged Pod is refused).
        const control = await k.req("POST", `/api/v1/namespaces/${NAMESPACE}/pods`, {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "psa-control" },
          spec: { containers: [{ name: "c", image: "busybox", securityContext: { privileged: true } }] },
        });
        assert.equal(control.status, 403, `a privileged Pod was not refused: HTTP ${control.status}`);
        const ev = await k.req("GET", `/api/v1/namespaces/${NAMESPACE}/events?fieldSelector=reason%3DFailedCreate`);
        const refused = ((ev.body as { items?: { involvedObject: { name: string }; message: string }[] }).items ?? []).filter((e) =>
          /PodSecurity|forbidden/.test(e.message),
        );
        assert.deepEqual(
          refused.map((e) => `${e.involvedObject.name}: ${e.message.slice(0, 200)}`),
          [],
          "Pods refused by Pod Security admission",
        );
        figures.figure(
          "Pods admitted under restricted",
          `${storedValid.size} legal-but-hostile servers, all admitted (${((performance.now() - start) / 1000).toFixed(1)} s)`,
        );
        ok = true;
      } finally {
        figures.scenario("hostile-but-legal Pods admitted by PSA restricted", ok);
      }
    });
  });
});

interface Cond {
  type: string;
  status: string;
  reason: string;
  message: string;
}

/** spec.volumes[0].hostPath -> [spec.volumes[0], spec.volumes] (never the bare "spec"). */
function ancestors(field: string): string[] {
  const out: string[] = [];
  let f = field;
  for (;;) {
    const m = /^(.*)(\.[^.[\]]+|\[\d+\])$/.exec(f);
    if (!m?.[1]?.includes(".")) return out;
    f = m[1];
    out.push(f);
  }
}

/** Whether a log line about `key` names `field` (JSON lines with a "key" field). */
function logNames(log: string, key: string, field: string): boolean {
  return log.split("\n").some((l) => l.includes(`"key":"${key}"`) && namesField(l, field));
}

/** The same CRD without a schema (what an outdated or hand-edited CRD would let through). */
function looseCrd(crd: unknown): unknown {
  const c = structuredClone(crd) as { spec: { versions: { schema?: unknown; additionalPrinterColumns?: unknown }[] } };
  for (const v of c.spec.versions) {
    v.schema = { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } };
    delete v.additionalPrinterColumns;
  }
  return c;
}

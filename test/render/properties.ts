// Golden-free properties every rendered McpServer must have, whatever its spec. Used over every
// example and over generated specs.
import assert from "node:assert/strict";
import { GATEWAY_PATHS, GATEWAY_PORTS, GatewayConfigSchema, SUPPORTED_PROTOCOL_VERSIONS } from "../../contract/gateway-config.ts";
import type { McpServer } from "../../operator/src/api/v1alpha1.ts";
import { tlsSecretName } from "../../operator/src/render/certificate.ts";
import type { KubeObject, RenderResult } from "../../operator/src/render/index.ts";
import { restrictedViolations } from "../../operator/src/render/restricted.ts";
import { GATEWAY_NODE_OPTIONS } from "../../operator/src/render/workload.ts";
import { list, type Obj, obj } from "../support/objects.ts";

export function byKind(result: RenderResult, kind: string): KubeObject[] {
  return result.objects.filter((o) => o.kind === kind);
}
export function one(result: RenderResult, kind: string): Obj {
  const found = byKind(result, kind);
  assert.equal(found.length, 1, `expected one ${kind}, got ${found.length}`);
  return found[0] as Obj;
}
export function podOf(result: RenderResult): { meta: Obj; spec: Obj } {
  const template = obj(obj(one(result, "Deployment").spec).template);
  return { meta: obj(template.metadata), spec: obj(template.spec) };
}
export function allContainers(pod: Obj): Obj[] {
  return [...list(pod.initContainers), ...list(pod.containers)];
}

/** Strings that look like a credential value (not a reference to one). */
const CREDENTIAL = [
  /:\/\/[^/\s:@]*:[^/\s@]+@/,
  /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
  /\bgh[pousr]_[A-Za-z0-9]{20,}/,
  /\bAKIA[0-9A-Z]{16}\b/,
  /\bsk-[A-Za-z0-9]{20,}/,
];

function strings(v: unknown, out: string[] = []): string[] {
  if (typeof v === "string") out.push(v);
  else if (Array.isArray(v)) for (const x of v) strings(x, out);
  else if (v && typeof v === "object") for (const x of Object.values(v)) strings(x, out);
  return out;
}

export function assertHardened(server: McpServer, result: RenderResult): void {
  const name = server.metadata.name;
  const ns = server.metadata.namespace;

  // Labels, namespace, owner references on everything; no Secret objects with data.
  for (const o of result.objects) {
    const m = o.metadata;
    assert.equal(m.namespace, ns, `${o.kind}/${m.name}: namespace`);
    for (const [k, v] of Object.entries({
      "app.kubernetes.io/managed-by": "mcp-bastion",
      "app.kubernetes.io/instance": name,
      "app.kubernetes.io/part-of": "mcp-bastion",
      "mcp.bastion.dev/server": name,
    })) {
      assert.equal(m.labels?.[k], v, `${o.kind}/${m.name}: label ${k}`);
    }
    if (server.metadata.uid) {
      assert.deepEqual(
        m.ownerReferences,
        [{ apiVersion: "mcp.bastion.dev/v1alpha1", kind: "McpServer", name, uid: server.metadata.uid, controller: true, blockOwnerDeletion: true }],
        `${o.kind}/${m.name}: ownerReferences`,
      );
    } else {
      assert.equal(m.ownerReferences, undefined);
    }
    assert.notEqual(o.kind, "Secret", "the renderer never writes Secret values");
    assert.doesNotMatch(m.name, /[A-Z]/, `${o.kind}/${m.name}: lowercase name`);
  }

  // Every pod passes restricted; no token; no host anything.
  const pod = podOf(result);
  assert.deepEqual(restrictedViolations(pod.spec, obj(pod.meta.annotations) as Record<string, string>), [], "Pod Security restricted");
  assert.equal(pod.spec.automountServiceAccountToken, false);
  assert.equal(one(result, "ServiceAccount").automountServiceAccountToken, false);
  for (const c of allContainers(pod.spec)) {
    const sc = obj(c.securityContext);
    assert.equal(sc.readOnlyRootFilesystem, true, `${String(c.name)}: readOnlyRootFilesystem`);
    assert.notEqual(sc.runAsUser, 0);
  }

  // Nothing listens except the gateway: only it declares ports, the Service exposes only 8443.
  const containers = list(pod.spec.containers);
  const withPorts = allContainers(pod.spec).filter((c) => list(c.ports).length > 0);
  assert.deepEqual(
    withPorts.map((c) => c.name),
    ["gateway"],
  );
  assert.deepEqual(
    list(containers.find((c) => c.name === "gateway")?.ports).map((p) => [p.name, p.containerPort]),
    [
      ["mcp", GATEWAY_PORTS.mcp],
      ["admin", GATEWAY_PORTS.admin],
    ],
  );
  // The Service, and with several replicas (no TLS) the headless Service of the replicas through which a
  // gateway relays another replica's session (issue 16): both expose the gateway's MCP port only.
  const services = byKind(result, "Service");
  const relays = server.spec.replicas > 1 && !server.spec.tls;
  assert.deepEqual(
    services.map((s) => s.metadata.name),
    relays ? [server.metadata.name, `${server.metadata.name}-peers`] : [server.metadata.name],
  );
  for (const svc of services) {
    assert.deepEqual(
      list(obj((svc as Obj).spec).ports).map((p) => [p.port, p.targetPort]),
      [[GATEWAY_PORTS.mcp, GATEWAY_PORTS.mcp]],
    );
  }
  if (relays) assert.equal(obj((services[1] as Obj).spec).clusterIP, "None");
  // The gateway knows its pod's address and where its peers are, and the replicas' gateways may reach
  // each other on the MCP port (in and out), exactly when sessions are relayed.
  const gatewayEnv = list(containers.find((c) => c.name === "gateway")?.env);
  // V8's heap is capped for the gateway container's memory limit.
  assert.deepEqual(
    gatewayEnv.filter((e) => e.name === "NODE_OPTIONS").map((e) => e.value),
    [GATEWAY_NODE_OPTIONS],
  );
  assert.deepEqual(
    gatewayEnv.filter((e) => e.name === "MCP_BASTION_POD_IP").map((e) => obj(obj(e.valueFrom).fieldRef).fieldPath),
    relays ? ["status.podIP"] : [],
  );
  const gwConfigMap = byKind(result, "ConfigMap").find((o) => o.metadata.name === `${server.metadata.name}-gateway`) as Obj;
  const gwConfig = JSON.parse(String(obj(gwConfigMap.data)["gateway.json"]));
  assert.deepEqual(
    gwConfig.replicaSessions,
    relays ? { peersHost: `${server.metadata.name}-peers.${server.metadata.namespace}.svc.cluster.local` } : undefined,
  );
  const np0 = obj(one(result, "NetworkPolicy").spec);
  const ownPods = (peers: Obj[]) =>
    peers.some(
      (p) =>
        p.namespaceSelector === undefined &&
        JSON.stringify(obj(p.podSelector).matchLabels) ===
          JSON.stringify({ "app.kubernetes.io/instance": server.metadata.name, "mcp.bastion.dev/server": server.metadata.name }),
    );
  assert.equal(
    list(np0.ingress).some((r) => ownPods(list(r.from))),
    relays,
    "ingress from the other replicas",
  );
  assert.equal(
    list(np0.egress).some((r) => ownPods(list(r.to)) && list(r.ports).every((p) => p.port === GATEWAY_PORTS.mcp)),
    relays,
    "egress to the other replicas' gateways",
  );
  for (const c of allContainers(pod.spec))
    assert.equal(
      list(c.ports).some((p) => p.hostPort !== undefined),
      false,
    );

  // Every container has requests and limits for cpu, memory, ephemeral-storage; /tmp is a bounded emptyDir.
  for (const c of allContainers(pod.spec)) {
    for (const side of ["requests", "limits"]) {
      for (const r of ["cpu", "memory", "ephemeral-storage"]) {
        assert.equal(typeof obj(obj(c.resources)[side])[r], "string", `${String(c.name)}: resources.${side}.${r}`);
      }
    }
  }
  const volumes = list(pod.spec.volumes);
  for (const c of containers) {
    const tmp = list(c.volumeMounts).find((m) => m.mountPath === "/tmp");
    assert.ok(tmp, `${String(c.name)}: /tmp mount`);
    const vol = volumes.find((v) => v.name === tmp.name);
    assert.ok(obj(vol?.emptyDir).sizeLimit, `${String(c.name)}: /tmp emptyDir has a sizeLimit`);
  }

  // Secrets: never env; every secret volume 0400; API keys only in the gateway; spec.secrets only in the server.
  for (const c of allContainers(pod.spec)) {
    for (const e of list(c.env)) assert.equal(obj(e.valueFrom).secretKeyRef, undefined, `${String(c.name)}: env ${String(e.name)} from a Secret`);
    assert.equal(list(c.envFrom).length, 0);
  }
  const secretVolumes = volumes.filter((v) => v.secret !== undefined);
  for (const v of secretVolumes) assert.equal(obj(v.secret).defaultMode, 0o400, `volume ${String(v.name)} mode`);
  const mountsOf = (cname: string) => list(containers.find((c) => c.name === cname)?.volumeMounts);
  const secretNamesMountedIn = (cname: string) =>
    mountsOf(cname)
      .map((m) => volumes.find((v) => v.name === m.name))
      .filter((v) => v?.secret !== undefined)
      .map((v) => String(obj(v!.secret).secretName));
  if (server.spec.auth.apiKeys) {
    const keys = server.spec.auth.apiKeys.secretRef?.name ?? `${name}-api-keys`;
    assert.ok(secretNamesMountedIn("gateway").includes(keys));
    assert.equal(mountsOf("gateway").find((m) => m.mountPath === GATEWAY_PATHS.apiKeysDir)?.readOnly, true);
  }
  for (const s of server.spec.secrets) {
    const mount = mountsOf("server").find((m) => m.mountPath === `/var/run/secrets/mcp/${s.name}`);
    assert.ok(mount, `secret ${s.name} mounted in the server`);
    assert.equal(mount.readOnly, true);
    assert.ok(!secretNamesMountedIn("gateway").includes(`${name}.${s.name}`), `secret ${s.name} must not reach the gateway`);
  }
  assert.equal(byKind(result, "ExternalSecret").length, server.spec.secrets.length + (server.spec.auth.apiKeys?.externalSecret ? 1 : 0));
  const gatewaySecrets = new Set(secretNamesMountedIn("gateway"));
  for (const s of secretNamesMountedIn("server")) assert.ok(!gatewaySecrets.has(s), `secret ${s} mounted in both containers`);
  for (const a of [
    server.spec.auth.apiKeys?.secretRef?.name ?? (server.spec.auth.apiKeys ? `${name}-api-keys` : undefined),
    server.spec.auth.jwt?.jwksSecretRef?.name,
    tlsSecretName(server),
  ]) {
    if (a) assert.ok(!secretNamesMountedIn("server").includes(a), `gateway credential ${a} must not reach the server container`);
  }

  // The gateway config is valid and holds no credential values; no ConfigMap or env does.
  const cm = byKind(result, "ConfigMap").find((o) => o.metadata.name === `${name}-gateway`);
  assert.ok(cm, "gateway ConfigMap");
  const parsed = GatewayConfigSchema.safeParse(JSON.parse(String(obj(cm.data)["gateway.json"])));
  assert.ok(parsed.success, parsed.success ? "" : JSON.stringify(parsed.error.issues));
  const exposed = [
    ...byKind(result, "ConfigMap").flatMap((o) => strings(o.data)),
    ...allContainers(pod.spec).flatMap((c) => list(c.env).map((e) => String(e.value ?? ""))),
  ];
  for (const s of exposed) for (const re of CREDENTIAL) assert.doesNotMatch(s, re, "credential-looking value in a ConfigMap or env");

  // NetworkPolicy: default deny both ways, ingress only to the gateway ports.
  const np = obj(one(result, "NetworkPolicy").spec);
  assert.deepEqual(np.policyTypes, ["Ingress", "Egress"]);
  assert.deepEqual(obj(np.podSelector).matchLabels, { "app.kubernetes.io/instance": name, "mcp.bastion.dev/server": name });
  for (const r of list(np.ingress)) {
    assert.ok(list(r.from).length > 0, "ingress rule without peers would allow everyone");
    for (const p of list(r.ports)) assert.ok(p.port === GATEWAY_PORTS.mcp || p.port === GATEWAY_PORTS.admin, `ingress port ${String(p.port)}`);
  }
  for (const r of list(np.egress)) assert.ok(list(r.to).length > 0 && list(r.ports).length > 0, "egress rule must name peers and ports");

  // Selectors match the pod template.
  const podLabels = obj(pod.meta.labels);
  for (const [k, v] of Object.entries(obj(obj(obj(one(result, "Deployment").spec).selector).matchLabels))) assert.equal(podLabels[k], v);
  for (const svc of byKind(result, "Service")) for (const [k, v] of Object.entries(obj(obj((svc as Obj).spec).selector))) assert.equal(podLabels[k], v);

  // The protocol allowlist reaches the gateway as asked (unset: every revision the gateway speaks).
  assert.deepEqual([...(parsed.data?.protocol?.versions ?? [])].sort(), [...(server.spec.protocol.versions ?? SUPPORTED_PROTOCOL_VERSIONS)].sort());

  // Checklist: 22 distinct items (18, plus 3 of issue 13 and 1 of issue 11) with a detail each.
  assert.equal(result.checklist.length, 22);
  assert.equal(new Set(result.checklist.map((c) => c.id)).size, 22);
  for (const c of result.checklist) assert.ok(c.detail.length > 0 && !c.detail.includes("\n"), `${c.id}: one-line detail`);

  // Mesh objects exactly when the mesh is on; a PDB exactly when there is more than one pod.
  const istio = server.spec.mesh.istio.enabled;
  for (const kind of ["PeerAuthentication", "AuthorizationPolicy", "Sidecar"]) assert.equal(byKind(result, kind).length, istio ? 1 : 0, kind);
  assert.equal(byKind(result, "PodDisruptionBudget").length, server.spec.replicas > 1 ? 1 : 0);
  const spread = list(obj(obj(pod.spec.affinity).podAntiAffinity).preferredDuringSchedulingIgnoredDuringExecution);
  assert.equal(spread.length, server.spec.replicas > 1 ? 1 : 0, "replicas prefer different nodes");
  if (spread[0])
    assert.deepEqual(obj(obj(spread[0].podAffinityTerm).labelSelector).matchLabels, { "app.kubernetes.io/instance": name, "mcp.bastion.dev/server": name });
  assert.equal(podLabels["sidecar.istio.io/inject"], istio ? "true" : undefined);
}

// The Pod Security `restricted` checker catches each rule when a rendered pod is tampered with,
// and the hardening properties catch a render that breaks them (so passing them means something).
import assert from "node:assert/strict";
import { test } from "node:test";
import { type RenderResult, renderMcpServer } from "../../operator/src/render/index.ts";
import { restrictedViolations } from "../../operator/src/render/restricted.ts";
import { mcpServer } from "../support/mcpserver.ts";
import { list, type Obj, obj } from "../support/objects.ts";
import { assertHardened, podOf } from "./properties.ts";

function render(): { server: Parameters<typeof renderMcpServer>[0]; result: RenderResult } {
  const server = mcpServer(
    {
      image: "mcp/fs:1",
      command: ["node", "index.js"],
      transport: { type: "stdio" },
      secrets: [{ name: "token", storeRef: { name: "vault" }, remoteRef: { key: "k" } }],
    },
    { name: "fs", namespace: "agents", uid: "u-1" },
  );
  return { server, result: renderMcpServer(server, { gatewayImage: "gw:1" }) };
}

const container = (pod: Obj, name: string) => list(pod.containers).find((c) => c.name === name)! as Obj;
const sc = (c: Obj) => c.securityContext as Obj;

const MUTATIONS: [string, (pod: Obj) => void, RegExp][] = [
  ["hostNetwork", (p) => (p.hostNetwork = true), /hostNetwork/],
  ["hostPID", (p) => (p.hostPID = true), /hostPID/],
  ["hostIPC", (p) => (p.hostIPC = true), /hostIPC/],
  ["privileged", (p) => (sc(container(p, "server")).privileged = true), /container server: privileged/],
  ["allowPrivilegeEscalation", (p) => delete sc(container(p, "gateway")).allowPrivilegeEscalation, /container gateway: allowPrivilegeEscalation/],
  [
    "runAsNonRoot",
    (p) => {
      delete (p.securityContext as Obj).runAsNonRoot;
      delete sc(container(p, "server")).runAsNonRoot;
    },
    /container server: runAsNonRoot/,
  ],
  ["runAsUser 0", (p) => (sc(container(p, "server")).runAsUser = 0), /runAsUser must not be 0/],
  ["seccomp missing", (p) => delete (p.securityContext as Obj).seccompProfile, /seccompProfile/],
  ["seccomp Unconfined", (p) => (sc(container(p, "server")).seccompProfile = { type: "Unconfined" }), /container server: seccompProfile/],
  ["capabilities not dropped", (p) => delete sc(container(p, "server")).capabilities, /capabilities.drop must include ALL/],
  ["capability added", (p) => (sc(container(p, "server")).capabilities = { drop: ["ALL"], add: ["NET_ADMIN"] }), /NET_ADMIN/],
  ["hostPath volume", (p) => (p.volumes as Obj[]).push({ name: "host", hostPath: { path: "/" } }), /volume host: type hostPath/],
  ["hostPort", (p) => (list(container(p, "gateway").ports)[0]!.hostPort = 8443), /hostPort/],
  ["unsafe sysctl", (p) => ((p.securityContext as Obj).sysctls = [{ name: "kernel.msgmax", value: "1" }]), /sysctl kernel.msgmax/],
  ["procMount", (p) => (sc(container(p, "server")).procMount = "Unmasked"), /procMount/],
  ["init container", (p) => (sc(list(p.initContainers)[0]!).allowPrivilegeEscalation = true), /initContainer stdio-bridge: allowPrivilegeEscalation/],
  ["SELinux user", (p) => ((p.securityContext as Obj).seLinuxOptions = { user: "root" }), /seLinuxOptions/],
  ["AppArmor Unconfined", (p) => (sc(container(p, "server")).appArmorProfile = { type: "Unconfined" }), /appArmorProfile/],
];

test("a rendered pod passes restricted, and each tampering is reported with its field", () => {
  const pod = podOf(render().result).spec;
  assert.deepEqual(restrictedViolations(pod), []);
  for (const [what, mutate, expected] of MUTATIONS) {
    const copy = structuredClone(pod);
    mutate(copy);
    const v = restrictedViolations(copy);
    assert.ok(
      v.some((m) => expected.test(m)),
      `${what}: expected a violation matching ${expected}, got ${JSON.stringify(v)}`,
    );
  }
});

const BREAKS: [string, (r: RenderResult) => void][] = [
  ["server declares a port", (r) => (container(podOf(r).spec, "server").ports = [{ containerPort: 3000, name: "http" }])],
  ["Service exposes the admin port", (r) => ((r.objects.find((o) => o.kind === "Service")!.spec as Obj).ports as Obj[]).push({ port: 9090, targetPort: 9090 })],
  ["container without limits", (r) => delete obj(container(podOf(r).spec, "gateway").resources).limits],
  ["secret as env", (r) => (container(podOf(r).spec, "server").env = [{ name: "T", valueFrom: { secretKeyRef: { name: "fs-token", key: "value" } } }])],
  [
    "credential in the ConfigMap",
    (r) => {
      const cm = r.objects.find((o) => o.kind === "ConfigMap")!;
      const data = cm.data as Record<string, string>;
      const cfg = JSON.parse(data["gateway.json"]!);
      cfg.limits.redisUrl = "redis://:hunter2@redis:6379";
      data["gateway.json"] = JSON.stringify(cfg);
    },
  ],
  ["NetworkPolicy with one direction", (r) => ((r.objects.find((o) => o.kind === "NetworkPolicy")!.spec as Obj).policyTypes = ["Ingress"])],
  ["secret file mode 0444", (r) => (obj((podOf(r).spec.volumes as Obj[]).find((v) => v.secret !== undefined)!.secret).defaultMode = 0o444)],
  ["missing owner reference", (r) => delete r.objects[0]!.metadata.ownerReferences],
  [
    "API keys mounted into the server",
    (r) => {
      const pod = podOf(r).spec;
      const vol = list(pod.volumes).find((v) => obj(v.secret).secretName === "keys")!;
      (container(pod, "server").volumeMounts as Obj[]).push({ name: vol.name, mountPath: "/keys", readOnly: true });
    },
  ],
];

test("the hardening properties fail on a render that breaks them", () => {
  const { server, result } = render();
  assertHardened(server, result);
  for (const [what, breakIt] of BREAKS) {
    const copy = structuredClone(result);
    breakIt(copy);
    assert.throws(() => assertHardened(server, copy), assert.AssertionError, `${what} was not caught`);
  }
});

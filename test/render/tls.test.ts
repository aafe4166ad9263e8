// issue 14, spec.tls in the renderer: issuerRef makes a cert-manager Certificate for the Service's DNS names
// (the cluster domain of the operator included) whose Secret the gateway mounts whole; minVersion goes to the
// gateway config, 1.3 by default, and "1.2" is a visible opt-out in status.optOuts and the checklist.
import assert from "node:assert/strict";
import { test } from "node:test";
import { GATEWAY_PATHS, GatewayConfigSchema } from "../../contract/gateway-config.ts";
import { validateMcpServer } from "../../operator/src/api/validate.ts";
import type { McpServer } from "../../operator/src/api/v1alpha1.ts";
import { renderMcpServer } from "../../operator/src/render/index.ts";
import { list, obj } from "../support/objects.ts";
import { podOf } from "./properties.ts";

const DIGEST = `registry.example/mcp@sha256:${"a".repeat(64)}`;
function server(tls: Record<string, unknown>): McpServer {
  const r = validateMcpServer({
    apiVersion: "mcp.bastion.dev/v1alpha1",
    kind: "McpServer",
    metadata: { name: "files", namespace: "team", uid: "u-1" },
    spec: { image: DIGEST, transport: { type: "streamable-http", port: 3000 }, auth: { apiKeys: { secretRef: { name: "keys" } } }, tls },
  });
  if (!r.ok) throw new Error(r.errors.join("; "));
  return r.value;
}
const render = (s: McpServer, clusterDomain?: string) => renderMcpServer(s, { gatewayImage: "gw:1", ...(clusterDomain ? { clusterDomain } : {}) });
const gatewayConfig = (objects: ReturnType<typeof render>["objects"]) =>
  GatewayConfigSchema.parse(JSON.parse(String(obj(objects.find((o) => o.kind === "ConfigMap")?.data)["gateway.json"])));
const tlsVolume = (out: ReturnType<typeof render>) => {
  const pod = podOf(out).spec;
  const gw = list(pod.containers).find((c) => c.name === "gateway")!;
  const mount = list(gw.volumeMounts).find((m) => m.mountPath === GATEWAY_PATHS.tlsDir)!;
  return { mount, volume: list(pod.volumes).find((v) => v.name === mount.name)! };
};

test("issuerRef: a Certificate for every name of the Service, its Secret mounted whole in the gateway only", () => {
  const out = render(server({ issuerRef: { name: "internal-ca", kind: "ClusterIssuer" } }), "corp.example");
  const cert = out.objects.find((o) => o.kind === "Certificate");
  assert.ok(cert);
  assert.equal(cert.apiVersion, "cert-manager.io/v1");
  assert.equal(cert.metadata.name, "files");
  assert.equal(cert.metadata.labels?.["mcp.bastion.dev/server"], "files");
  assert.equal(obj(cert.metadata.ownerReferences?.[0]).kind, "McpServer");
  const spec = obj(cert.spec);
  assert.deepEqual(spec.dnsNames, ["files", "files.team", "files.team.svc", "files.team.svc.corp.example"]);
  assert.deepEqual(spec.issuerRef, { group: "cert-manager.io", kind: "ClusterIssuer", name: "internal-ca" });
  assert.equal(spec.secretName, "files-gateway-tls");
  assert.equal(obj(spec.privateKey).rotationPolicy, "Always");
  const { mount, volume } = tlsVolume(out);
  assert.equal(obj(volume.secret).secretName, "files-gateway-tls");
  assert.equal(mount.subPath, undefined, "a subPath mount would never see the renewal");
  const server_ = list(podOf(out).spec.containers).find((c) => c.name === "server")!;
  assert.ok(!list(server_.volumeMounts).some((m) => m.name === mount.name), "the key never reaches the MCP server container");
  assert.match(out.url, /^https:\/\/files\.team\.svc\.corp\.example:8443\//);
});

test("secretRef: no Certificate, the user's Secret mounted; both paths default to TLS 1.3", () => {
  const out = render(server({ secretRef: { name: "my-cert" } }));
  assert.equal(out.objects.filter((o) => o.kind === "Certificate").length, 0);
  assert.equal(obj(tlsVolume(out).volume.secret).secretName, "my-cert");
  assert.equal(gatewayConfig(out.objects).listen.tls?.minVersion, "1.3");
  assert.equal(gatewayConfig(render(server({ issuerRef: { name: "ca" } })).objects).listen.tls?.minVersion, "1.3");
  assert.deepEqual(out.optOuts, []);
  assert.match(out.checklist.find((c) => c.id === "transport-encryption")?.detail ?? "", /TLS 1\.3 only; certificate from a Secret you manage/);
});

test('minVersion "1.2" is an opt-out the status shows', () => {
  const out = render(server({ issuerRef: { name: "ca" }, minVersion: "1.2" }));
  assert.equal(gatewayConfig(out.objects).listen.tls?.minVersion, "1.2");
  assert.ok(out.optOuts.includes('spec.tls.minVersion: "1.2" (TLS 1.2 clients accepted)'), out.optOuts.join("; "));
  const item = out.checklist.find((c) => c.id === "transport-encryption");
  assert.equal(item?.satisfied, true, 'TLS 1.2 still meets "TLS 1.2 or higher"');
  assert.match(item?.detail ?? "", /TLS 1\.2 or higher \(spec\.tls\.minVersion: "1\.2", opt-out\); certificate issued and renewed by cert-manager Issuer ca/);
});

// issue 14, TLS without a mesh: the real cert-manager controller (built from its Go module, a local
// process against the local control plane) issues the Certificate the operator rendered for an McpServer
// with spec.tls.issuerRef, from a CA Issuer. The gateway, run as a process on the operator's own
// ConfigMap with the Secret's files laid out the way the kubelet mounts them, serves that certificate
// for the Service's DNS names; a renewal reaches the running gateway while an open connection stays up;
// a TLS 1.2-only client is refused; an Issuer that does not exist is a condition, not a crash.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import https from "node:https";
import type { Socket } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import tls from "node:tls";
import { stringify } from "yaml";
import type { Operator } from "../../operator/src/controller/operator.ts";
import { parseClusterStorePolicy } from "../../operator/src/controller/plan.ts";
import { type ControlPlane, startControlPlane } from "../../dev/controlplane/index.ts";
import {
  conditionsOf,
  getJson,
  grantOperatorRbac,
  installCrd,
  mcpServer,
  must,
  startInProcessOperator,
  waitCondition,
  waitEstablished,
} from "../controller/helpers.ts";
import { startToy, type Toy, tempDir } from "../gateway/helpers.ts";
import { describe, waitFor, waitUntil } from "../support/index.ts";
import { type CertManager, certManagerCrds, certManagerDir, ROOT, startCertManager } from "./support.ts";
import { KubeletSecretVolume } from "./volume.ts";

// biome-ignore lint/suspicious/noExplicitAny: API objects are navigated loosely in assertions
type Any = any;
const NS = "tls";
const KEY = `ci-${randomBytes(16).toString("hex")}`;
/** Issuance goes through several cert-manager loops and the operator; a loaded machine needs the room. */
const ISSUE_MS = 180_000;

let cp: ControlPlane;
let cm: CertManager;
let op: Operator;
let toy: Toy;
let gw: ChildProcess | undefined;
let gwLog = "";

const apply = (...objs: unknown[]) => must(cp, ["apply", "--server-side", "--field-manager=test-user", "-f", "-"], objs.map((o) => stringify(o)).join("---\n"));

before(async () => {
  const dir = await certManagerDir();
  cp = await startControlPlane();
  await must(cp, ["apply", "--server-side", "-f", "-"], certManagerCrds(dir));
  await waitEstablished(cp, [
    "certificates.cert-manager.io",
    "certificaterequests.cert-manager.io",
    "issuers.cert-manager.io",
    "clusterissuers.cert-manager.io",
  ]);
  await installCrd(cp);
  for (const ns of [NS, "mcp-system", "cert-manager"]) await must(cp, ["create", "namespace", ns]);
  await grantOperatorRbac(cp, "mcp-bastion-operator", "mcp-system");
  cm = startCertManager(cp, dir);
  op = await startInProcessOperator(cp, { clusterIssuers: parseClusterStorePolicy([`${NS}=shared-ca`], "--allow-cluster-issuer") });
  toy = await startToy();

  // A CA the way cert-manager's docs bootstrap one: a self-signed Issuer signs a CA Certificate, whose
  // Secret backs the CA Issuer the McpServer names.
  await apply(
    { apiVersion: "cert-manager.io/v1", kind: "Issuer", metadata: { name: "selfsigned", namespace: NS }, spec: { selfSigned: {} } },
    {
      apiVersion: "cert-manager.io/v1",
      kind: "Certificate",
      metadata: { name: "root-ca", namespace: NS },
      spec: {
        isCA: true,
        commonName: "mcp-bastion test CA",
        secretName: "root-ca",
        privateKey: { algorithm: "ECDSA", size: 256 },
        issuerRef: { name: "selfsigned", kind: "Issuer" },
      },
    },
    { apiVersion: "cert-manager.io/v1", kind: "Issuer", metadata: { name: "ca", namespace: NS }, spec: { ca: { secretName: "root-ca" } } },
  );
  await waitUntil(
    "the CA Issuer Ready",
    async () => (await getJson(cp, ["issuer", "-n", NS, "ca"]))?.status?.conditions,
    (c) => Array.isArray(c) && c.some((x: { type: string; status: string }) => x.type === "Ready" && x.status === "True"),
    ISSUE_MS,
    500,
  ).catch((e: Error) => {
    throw new Error(`${e.message}\ncert-manager log (tail): ${cm.log().slice(-3000)}`);
  });
});

after(async () => {
  if (gw && gw.exitCode === null) {
    const exited = new Promise((r) => gw?.once("exit", r));
    gw.kill("SIGTERM");
    await exited;
  }
  await op?.stop();
  await cm?.stop();
  await toy?.close();
  await cp?.stop();
});

/** What the kubelet would mount for a Secret: its data, base64-decoded. */
async function secretData(name: string): Promise<Record<string, Buffer>> {
  const s = await getJson(cp, ["secret", "-n", NS, name]);
  return Object.fromEntries(Object.entries((s?.data ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, "base64")]));
}

/** Starts `mcp-bastion gateway` on the operator's rendered config, with the pod's paths pointed at local files. */
async function startGateway(rendered: Any, tlsDir: string, keysDir: string): Promise<number> {
  const cfg = structuredClone(rendered);
  cfg.listen = {
    ...cfg.listen,
    host: "127.0.0.1",
    port: 0,
    adminPort: 0,
    tls: { ...cfg.listen.tls, certFile: join(tlsDir, "tls.crt"), keyFile: join(tlsDir, "tls.key") },
  };
  cfg.upstream = { transport: "streamable-http", url: toy.url };
  cfg.auth.apiKeys.dir = keysDir;
  const file = join(tempDir("tls-cfg"), "gateway.json");
  writeFileSync(file, JSON.stringify(cfg));
  gw = spawn(process.execPath, [join(ROOT, "cli/bin/mcp-bastion.js"), "gateway", "--config", file], { stdio: ["ignore", "ignore", "pipe"] });
  return new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`gateway did not start within 60 s: ${gwLog}`)), 60_000);
    gw!.stderr!.on("data", (d: Buffer) => {
      gwLog += d.toString();
      const m = /"msg":"gateway listening","port":(\d+)/.exec(gwLog);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
    gw!.on("exit", (c) => reject(new Error(`gateway exited ${c}: ${gwLog}`)));
  });
}

/** A fresh TLS connection that verifies the gateway as a client in the cluster would (CA, Service name). */
function handshake(
  port: number,
  ca: Buffer,
  servername: string,
  opts: tls.ConnectionOptions = {},
): Promise<{ protocol: string; cert: tls.DetailedPeerCertificate }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, ca, servername, ...opts }, () => {
      const out = { protocol: s.getProtocol() ?? "", cert: s.getPeerCertificate(true) };
      s.end();
      resolve(out);
    });
    s.on("error", reject);
  });
}

test("cert-manager issues the operator's Certificate from a CA Issuer; the gateway serves it, picks up a renewal with a connection open, and refuses TLS 1.2", async () => {
  const name = "secure";
  await apply(mcpServer(name, NS, { tls: { issuerRef: { name: "ca" } } }));

  // The operator's Certificate, as cert-manager's CRD schema accepted it.
  const cert: Any = await waitFor("the operator's Certificate", () => getJson(cp, ["certificate", "-n", NS, name]));
  assert.deepEqual(cert.spec.dnsNames, [name, `${name}.${NS}`, `${name}.${NS}.svc`, `${name}.${NS}.svc.cluster.local`]);
  assert.deepEqual(cert.spec.issuerRef, { group: "cert-manager.io", kind: "Issuer", name: "ca" });
  assert.equal(cert.spec.secretName, `${name}-gateway-tls`);
  assert.equal(cert.metadata.ownerReferences?.[0]?.kind, "McpServer");

  const issued = await waitCondition(cp, NS, name, "CertificateReady", "True", "Issued", ISSUE_MS).catch((e: Error) => {
    throw new Error(`${e.message}\ncert-manager log (tail): ${cm.log().slice(-3000)}`);
  });
  assert.match(
    conditionsOf(issued).CertificateReady?.message ?? "",
    /Certificate secure issued by cert-manager Issuer "ca" in namespace "tls", valid until .*renewal at/,
  );
  const transport = issued.status.checklist.find((i: { id: string }) => i.id === "transport-encryption");
  assert.equal(transport.satisfied, true);
  assert.match(transport.detail, /TLS 1\.3 only; certificate issued and renewed by cert-manager Issuer ca/);

  // The Deployment mounts the Secret cert-manager writes, whole (no subPath: updates land in place).
  const dep: Any = await waitFor("the Deployment", () => getJson(cp, ["deployment", "-n", NS, name]));
  const vol = dep.spec.template.spec.volumes.find((v: { secret?: { secretName: string } }) => v.secret?.secretName === `${name}-gateway-tls`);
  assert.ok(vol, "the gateway's TLS volume is the Certificate's Secret");
  const gwc = dep.spec.template.spec.containers.find((c: { name: string }) => c.name === "gateway");
  assert.ok(gwc.volumeMounts.some((m: { name: string; subPath?: string }) => m.name === vol.name && m.subPath === undefined));

  // The gateway as in the pod: the operator's ConfigMap, the Secret as the kubelet lays it out.
  const rendered = JSON.parse((await getJson(cp, ["configmap", "-n", NS, `${name}-gateway`]))?.data["gateway.json"]);
  assert.equal(rendered.listen.tls.minVersion, "1.3");
  const tlsDir = tempDir("tls-volume");
  const volume = new KubeletSecretVolume(tlsDir);
  const first = await secretData(`${name}-gateway-tls`);
  volume.write(first);
  const keysDir = tempDir("tls-keys");
  mkdirSync(keysDir, { recursive: true });
  writeFileSync(join(keysDir, "ci"), KEY);
  const port = await startGateway(rendered, tlsDir, keysDir);

  const ca = first["ca.crt"];
  assert.ok(ca, "cert-manager's CA issuer puts ca.crt in the Secret");
  const host = `${name}.${NS}.svc`;
  const hello = await handshake(port, ca, host);
  assert.equal(hello.protocol, "TLSv1.3");
  const firstSerial = new X509Certificate(first["tls.crt"]!).serialNumber;
  assert.equal(hello.cert.serialNumber.toUpperCase(), firstSerial.toUpperCase(), "the gateway serves cert-manager's certificate");
  for (const n of [name, `${name}.${NS}`, host, `${host}.cluster.local`])
    assert.ok((hello.cert.subjectaltname ?? "").includes(`DNS:${n}`), `SAN ${n}: ${hello.cert.subjectaltname}`);
  await assert.rejects(handshake(port, ca, "other.tls.svc"), /altnames|Hostname/, "a name outside the Service's is not covered");

  // A client keeps one connection open through the renewal (keep-alive, one socket, a ping now and then).
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca, servername: host });
  const sockets = new Set<Socket>();
  let dropped = false;
  const mcp = (body: unknown, session?: string) =>
    new Promise<{ status: number; session?: string; serial: string }>((resolve, reject) => {
      const req = https.request(`https://127.0.0.1:${port}/mcp`, {
        agent,
        method: "POST",
        headers: {
          authorization: `Bearer ${KEY}`,
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          ...(session ? { "mcp-session-id": session, "mcp-protocol-version": "2025-06-18" } : {}),
        },
      });
      req.on("socket", (s) => {
        if (!sockets.has(s as Socket)) s.once("close", () => (dropped = true));
        sockets.add(s as Socket);
      });
      req.on("response", (res) => {
        res.resume();
        const serial = (res.socket as tls.TLSSocket).getPeerCertificate().serialNumber;
        res.on("end", () => resolve({ status: res.statusCode ?? 0, session: res.headers["mcp-session-id"] as string | undefined, serial }));
      });
      req.on("error", reject);
      req.end(JSON.stringify(body));
    });
  const init = await mcp({
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } },
  });
  assert.equal(init.status, 200);
  assert.ok(init.session);

  // Renewal as `cmctl renew` asks for it: an Issuing=True condition on the Certificate's status.
  const revision = (await getJson(cp, ["certificate", "-n", NS, name]))?.status?.revision as number;
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
  await must(cp, [
    "patch",
    "certificate",
    name,
    "-n",
    NS,
    "--subresource=status",
    "--type=json",
    "-p",
    JSON.stringify([
      {
        op: "add",
        path: "/status/conditions/-",
        value: { type: "Issuing", status: "True", reason: "ManuallyTriggered", message: "Certificate re-issuance manually triggered", lastTransitionTime: now },
      },
    ]),
  ]);
  let ping = 2;
  const renewed = await waitUntil(
    "cert-manager to renew the Certificate (revision up, new Secret)",
    async () => {
      // Keep the connection busy, as a client in a session would (and well inside the keep-alive timeout).
      const r = await mcp({ jsonrpc: "2.0", id: ping++, method: "ping" }, init.session);
      assert.equal(r.status, 200);
      const c = await getJson(cp, ["certificate", "-n", NS, name]);
      const crt = (await secretData(`${name}-gateway-tls`))["tls.crt"];
      return { revision: c?.status?.revision as number, serial: crt ? new X509Certificate(crt).serialNumber : "", issuing: conditionsOf(c).Issuing };
    },
    (s) => s.revision > revision && s.serial !== firstSerial,
    ISSUE_MS,
    1000,
  );
  const second = await secretData(`${name}-gateway-tls`);
  const secondSerial = new X509Certificate(second["tls.crt"]!).serialNumber;
  assert.equal(secondSerial, renewed.serial);
  // The kubelet's atomic swap of ..data; the gateway watches the directory, no signal, no restart.
  volume.write(second);
  const pid = gw?.pid;
  await waitUntil(
    "a new connection to get the renewed certificate",
    async () => (await handshake(port, ca, host)).cert.serialNumber.toUpperCase(),
    (serial) => serial === secondSerial.toUpperCase(),
    60_000,
    200,
  );
  assert.equal(gw?.pid, pid);
  assert.equal(gw?.exitCode, null, "the gateway was not restarted");
  assert.match(gwLog, /"msg":"tls: certificate reloaded"/);

  // The connection opened before the renewal is still the same one, still served, on the old certificate.
  const later = await mcp({ jsonrpc: "2.0", id: ping++, method: "ping" }, init.session);
  assert.equal(later.status, 200);
  assert.equal(sockets.size, 1, "every request went over the one connection opened before the renewal");
  assert.equal(dropped, false, "the open connection was not dropped");
  assert.equal(later.serial.toUpperCase(), firstSerial.toUpperCase(), "the open connection keeps the session it negotiated");
  agent.destroy();

  // TLS 1.3 required: a client that speaks at most 1.2 is refused, before and after the reload alike.
  await assert.rejects(handshake(port, ca, host, { maxVersion: "TLSv1.2" }), (e: Error & { code?: string }) => {
    assert.match(`${e.code} ${e.message}`, /PROTOCOL_VERSION|protocol version/i, describe(e));
    return true;
  });
});

test("an Issuer that does not exist is CertificateReady=False IssuerNotFound (and Degraded), until it appears", async () => {
  await apply(mcpServer("orphan", NS, { tls: { issuerRef: { name: "nowhere" } } }));
  const live = await waitCondition(cp, NS, "orphan", "CertificateReady", "False", "IssuerNotFound");
  const c = conditionsOf(live);
  assert.match(c.CertificateReady?.message ?? "", /cert-manager Issuer "nowhere" in namespace "tls" does not exist/);
  assert.equal(c.Degraded?.status, "True");
  assert.equal(c.Degraded?.reason, "IssuerNotFound");
  assert.equal(c.Ready?.reason, "CertificateNotReady");
  assert.equal(c.Reconciled?.status, "True", "everything else is applied");
  assert.ok(await getJson(cp, ["certificate", "-n", NS, "orphan"]), "the Certificate waits for its issuer");

  // The operator does not watch Issuers: it looks again on an interval and converges once it exists.
  await apply({ apiVersion: "cert-manager.io/v1", kind: "Issuer", metadata: { name: "nowhere", namespace: NS }, spec: { ca: { secretName: "root-ca" } } });
  await waitCondition(cp, NS, "orphan", "CertificateReady", "True", "Issued", ISSUE_MS);
  await waitCondition(cp, NS, "orphan", "Degraded", "False");
});

test("a ClusterIssuer the namespace is not allowed to use is refused with a reason; an allowed one is checked like an Issuer", async () => {
  await apply(mcpServer("borrower", NS, { tls: { issuerRef: { name: "corp-ca", kind: "ClusterIssuer" } } }));
  const refused = await waitCondition(cp, NS, "borrower", "Reconciled", "False", "ClusterIssuerNotAllowed");
  assert.match(conditionsOf(refused).Reconciled?.message ?? "", /ClusterIssuer "corp-ca".*--allow-cluster-issuer=tls=corp-ca/);
  assert.equal(await getJson(cp, ["certificate", "-n", NS, "borrower"]), undefined, "nothing is rendered for it");

  // shared-ca is allowed for this namespace but does not exist (yet): the operator can read ClusterIssuers.
  await apply(mcpServer("sharer", NS, { tls: { issuerRef: { name: "shared-ca", kind: "ClusterIssuer" } } }));
  const missing = await waitCondition(cp, NS, "sharer", "CertificateReady", "False", "IssuerNotFound");
  assert.match(conditionsOf(missing).CertificateReady?.message ?? "", /cert-manager ClusterIssuer "shared-ca" does not exist/);
});

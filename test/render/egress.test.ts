// Egress is what the rules say and no more (issue 10, class 9): a hostname rule opens only public
// addresses on its ports (the Istio sidecar narrows them to the hosts), UDP and wildcard hostname
// rules that the sidecar cannot enforce are refused, CIDR rules stay in the proxy and are limited to
// their ports, one wildcard host does not turn the named hosts into pass-through, and the checklist
// reports wide rules as an opt-out instead of satisfied network isolation.
import assert from "node:assert/strict";
import { test } from "node:test";
import { validateMcpServer } from "../../operator/src/api/validate.ts";
import { computeChecklist } from "../../operator/src/render/checklist.ts";
import { renderMcpServer } from "../../operator/src/render/index.ts";
import { mcpServer, mcpServerDoc } from "../support/mcpserver.ts";
import { list, obj } from "../support/objects.ts";
import { byKind, one, podOf } from "./properties.ts";

const ISTIO = { mesh: { istio: { enabled: true } } };

const render = (spec: Record<string, unknown>) => renderMcpServer(mcpServer(spec), { gatewayImage: "gw:1" });
const networkIsolation = (spec: Record<string, unknown>) => render(spec).checklist.find((c) => c.id === "network-isolation")!;
const egressOf = (spec: Record<string, unknown>) => list(obj(one(render(spec), "NetworkPolicy").spec).egress);
const serviceEntry = (spec: Record<string, unknown>, name: string) => obj(byKind(render(spec), "ServiceEntry").find((o) => o.metadata.name === name)?.spec);

/** Is this IPv4 address inside the ipBlock (cidr minus except)? */
function v4InBlock(ip: string, block: { cidr: string; except?: string[] }): boolean {
  const toInt = (a: string) => a.split(".").reduce((n, o) => n * 256 + Number(o), 0);
  const inCidr = (c: string) => {
    const [base, len] = c.split("/") as [string, string];
    if (base.includes(":")) return false;
    const bits = Number(len);
    const mask = bits === 0 ? 0 : 2 ** 32 - 2 ** (32 - bits);
    return (toInt(ip) & mask) >>> 0 === (toInt(base) & mask) >>> 0;
  };
  return inCidr(block.cidr) && !(block.except ?? []).some(inCidr);
}

test("a hostname rule opens public addresses on its ports, never pods, the node or cloud metadata", () => {
  const rule = egressOf({ ...ISTIO, network: { egress: [{ hosts: ["api.github.com"], ports: [{ port: 443 }] }] } }).find((r) =>
    list(r.ports).some((p) => p.port === 443),
  )!;
  const blocks = list(rule.to).map((p) => obj(p.ipBlock) as { cidr: string; except?: string[] });
  assert.deepEqual(blocks.map((b) => b.cidr).sort(), ["0.0.0.0/0", "::/0"]);
  const allowed = (ip: string) => blocks.some((b) => v4InBlock(ip, b));
  for (const ip of ["10.0.0.7", "10.96.0.1", "172.20.1.1", "192.168.1.10", "169.254.169.254", "127.0.0.1", "100.64.3.4", "0.0.0.0"])
    assert.equal(allowed(ip), false, `${ip} reachable by a hostname rule`);
  for (const ip of ["140.82.112.6", "1.1.1.1"]) assert.equal(allowed(ip), true, `${ip} (public) must stay reachable for the sidecar`);
  const v6 = blocks.find((b) => b.cidr === "::/0")!;
  for (const c of ["fc00::/7", "fe80::/10", "::1/128"]) assert.ok(v6.except?.includes(c), `IPv6 ${c} closed`);
});

test("a hostname that looks in-cluster or private gets a warning: hostname rules reach public addresses only", () => {
  const warned = render({
    ...ISTIO,
    network: { egress: [{ hosts: ["redis.shared.svc.cluster.local", "db.corp.internal", "api.github.com"], ports: [{ port: 443 }] }] },
  }).warnings;
  const w = warned.find((x) => x.includes("look in-cluster or private"));
  assert.ok(w, warned.join("; "));
  assert.match(w, /redis\.shared\.svc\.cluster\.local, db\.corp\.internal look in-cluster/);
  assert.doesNotMatch(w, /api\.github\.com/);
  assert.equal(
    render({ ...ISTIO, network: { egress: [{ hosts: ["api.github.com"], ports: [{ port: 443 }] }] } }).warnings.some((x) => x.includes("in-cluster")),
    false,
  );
});

test("hostname rules the sidecar cannot enforce are refused: UDP ports, wildcards off port 443, hosts without the mesh", () => {
  const cases: [string, Record<string, unknown>, string][] = [
    [
      "UDP host rule",
      { ...ISTIO, network: { egress: [{ hosts: ["time.example.com"], ports: [{ port: 123, protocol: "UDP" }] }] } },
      "spec.network.egress[].hosts: ports must be TCP",
    ],
    [
      "UDP next to TCP",
      { ...ISTIO, network: { egress: [{ hosts: ["dns.example.com"], ports: [{ port: 443 }, { port: 853, protocol: "UDP" }] }] } },
      "spec.network.egress[].hosts: ports must be TCP",
    ],
    [
      "wildcard on 5432",
      { ...ISTIO, network: { egress: [{ hosts: ["*.db.example.com"], ports: [{ port: 5432 }] }] } },
      "a wildcard host (*.example.com) can only be enforced by TLS SNI on port 443",
    ],
    [
      "hosts without Istio",
      { network: { egress: [{ hosts: ["api.github.com"], ports: [{ port: 443 }] }] } },
      "spec.network.egress[].hosts requires spec.mesh.istio.enabled",
    ],
  ];
  for (const [what, spec, message] of cases) {
    const r = validateMcpServer(mcpServerDoc(spec));
    assert.equal(r.ok, false, `${what}: accepted`);
    if (!r.ok)
      assert.ok(
        r.errors.some((e) => e.includes(message)),
        `${what}: ${r.errors.join("; ")}`,
      );
  }
  // UDP to a CIDR stays possible: the NetworkPolicy enforces addresses and ports for it.
  assert.ok(validateMcpServer(mcpServerDoc({ ...ISTIO, network: { egress: [{ cidrs: ["10.9.0.0/24"], ports: [{ port: 123, protocol: "UDP" }] }] } })).ok);
});

test("CIDR rules stay in the proxy: one ServiceEntry per rule with its addresses and TCP ports, no excludeOutboundIPRanges", () => {
  const spec = {
    ...ISTIO,
    network: {
      egress: [
        { cidrs: ["10.40.0.0/16"], ports: [{ port: 5432 }] },
        { hosts: ["api.github.com"], ports: [{ port: 443 }] },
        { cidrs: ["10.50.1.0/24", "fd00:1::/64"], ports: [{ port: 6379 }, { port: 6379, protocol: "UDP" }] },
        { cidrs: ["10.60.0.0/24"], ports: [{ port: 514, protocol: "UDP" }] },
      ],
    },
  };
  const r = render(spec);
  assert.equal(obj(podOf(r).meta.annotations)["traffic.sidecar.istio.io/excludeOutboundIPRanges"], undefined);
  assert.deepEqual(serviceEntry(spec, "s-egress-cidr-0"), {
    hosts: ["egress-cidr-0.s.mcp-bastion.internal"],
    addresses: ["10.40.0.0/16"],
    exportTo: ["."],
    location: "MESH_EXTERNAL",
    resolution: "NONE",
    ports: [{ number: 5432, name: "tcp-5432", protocol: "TCP" }],
  });
  const second = serviceEntry(spec, "s-egress-cidr-2");
  assert.deepEqual(second.addresses, ["10.50.1.0/24", "fd00:1::/64"]);
  assert.deepEqual(second.ports, [{ number: 6379, name: "tcp-6379", protocol: "TCP" }], "5432 of rule 0 does not leak into rule 2");
  assert.equal(
    byKind(r, "ServiceEntry").some((o) => o.metadata.name === "s-egress-cidr-3"),
    false,
    "a UDP-only CIDR rule has no entry (UDP is not proxied)",
  );
  const sidecarHosts = list(obj(one(r, "Sidecar").spec).egress)[0]!.hosts as string[];
  for (const se of byKind(r, "ServiceEntry")) for (const h of obj(se.spec).hosts as string[]) assert.ok(sidecarHosts.includes(`./${h}`), `Sidecar knows ${h}`);
});

test("a wildcard host gets its own ServiceEntry (resolution NONE); named hosts keep DNS resolution", () => {
  const spec = {
    ...ISTIO,
    network: {
      egress: [
        { hosts: ["api.github.com", "*.googleapis.com"], ports: [{ port: 443 }] },
        { hosts: ["db.example.com"], ports: [{ port: 5432 }] },
      ],
    },
  };
  const named = serviceEntry(spec, "s-egress");
  assert.deepEqual(named.hosts, ["api.github.com", "db.example.com"]);
  assert.equal(named.resolution, "DNS");
  const wild = serviceEntry(spec, "s-egress-wildcard");
  assert.deepEqual(wild.hosts, ["*.googleapis.com"]);
  assert.equal(wild.resolution, "NONE");
  assert.deepEqual(wild.ports, [{ number: 443, name: "tls-443", protocol: "TLS" }], "wildcards only on TLS, matched by SNI");
  assert.equal(
    byKind(render({ ...ISTIO, network: { egress: [{ hosts: ["api.github.com"], ports: [{ port: 443 }] }] } }), "ServiceEntry").length,
    1,
    "no wildcard: one entry",
  );
});

test("checklist: wide egress CIDRs and ingress from every namespace are opt-outs, not satisfied isolation", () => {
  const wideCases: [string, Record<string, unknown>, RegExp][] = [
    ["egress 0.0.0.0/0", { network: { egress: [{ cidrs: ["0.0.0.0/0"], ports: [{ port: 443 }] }] } }, /egress to 0\.0\.0\.0\/0 on 443\/TCP/],
    ["egress ::/0", { network: { egress: [{ cidrs: ["::/0"], ports: [{ port: 443 }] }] } }, /egress to ::\/0/],
    ["egress 10.0.0.0/8", { network: { egress: [{ cidrs: ["10.0.0.0/8"], ports: [{ port: 5432 }] }] } }, /egress to 10\.0\.0\.0\/8/],
    [
      "egress ::ffff:0:0/96 (every IPv4 address, written in IPv6)",
      { network: { egress: [{ cidrs: ["::ffff:0:0/96"], ports: [{ port: 443 }] }] } },
      /egress to ::ffff:0:0\/96/,
    ],
    ["egress 2001:db8::/32", { network: { egress: [{ cidrs: ["2001:db8::/32"], ports: [{ port: 5432 }] }] } }, /egress to 2001:db8::\/32/],
    ["ingress namespaceSelector {}", { network: { ingress: [{ namespaceSelector: {} }] } }, /ingress from every namespace/],
    [
      "ingress namespaceSelector {} with a podSelector",
      { network: { ingress: [{ namespaceSelector: { matchLabels: {} }, podSelector: { matchLabels: { app: "agent" } } }] } },
      /ingress from every namespace/,
    ],
    ["wide CIDR with the mesh", { ...ISTIO, network: { egress: [{ cidrs: ["0.0.0.0/0"], ports: [{ port: 443 }] }] } }, /egress to 0\.0\.0\.0\/0/],
  ];
  for (const [what, spec, detail] of wideCases) {
    const it = networkIsolation(spec);
    assert.equal(it.satisfied, false, `${what}: reported as satisfied`);
    assert.match(it.detail, /wide rules \(opt-out\)/, what);
    assert.match(it.detail, detail, what);
    assert.ok(
      render(spec).optOuts.some((o) => /^spec\.network\.(egress|ingress)\[0\]/.test(o)),
      `${what}: not listed in optOuts (${render(spec).optOuts.join("; ")})`,
    );
  }
  const narrow: [string, Record<string, unknown>][] = [
    ["default", {}],
    ["a /16 and a /64", { network: { egress: [{ cidrs: ["10.40.0.0/16", "fd00:1::/64"], ports: [{ port: 5432 }] }] } }],
    ["one team's namespaces", { network: { ingress: [{ namespaceSelector: { matchLabels: { team: "a" } }, podSelector: {} }] } }],
    ["hostnames through the mesh", { ...ISTIO, network: { egress: [{ hosts: ["api.github.com"], ports: [{ port: 443 }] }] } }],
  ];
  for (const [what, spec] of narrow) {
    const it = networkIsolation(spec);
    assert.equal(it.satisfied, true, `${what}: ${it.detail}`);
    assert.deepEqual(
      render(spec).optOuts.filter((o) => o.startsWith("spec.network")),
      [],
      what,
    );
  }
  assert.match(networkIsolation(narrow[3]![1]).detail, /hostnames enforced by the Istio sidecar \(public addresses on ports 443\/TCP\)/);
});

test("checklist reads the objects: a hostname-style public peer without a REGISTRY_ONLY Sidecar is wide", () => {
  const r = render({ ...ISTIO, network: { egress: [{ hosts: ["api.github.com"], ports: [{ port: 443 }] }] } });
  const sidecar = one(r, "Sidecar");
  obj(sidecar.spec).outboundTrafficPolicy = { mode: "ALLOW_ANY" };
  const it = computeChecklist(mcpServer({ ...ISTIO, network: { egress: [{ hosts: ["api.github.com"], ports: [{ port: 443 }] }] } }), r.objects).find(
    (c) => c.id === "network-isolation",
  )!;
  assert.equal(it.satisfied, false);
  assert.match(it.detail, /egress to 0\.0\.0\.0\/0 on 443\/TCP/);
});

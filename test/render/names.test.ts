// Child names never collide across McpServers of one namespace (issue 10, class 7): names were
// `<server>-<suffix>`, so server `a` with secret `b-c` and server `a-b` with secret `c` both rendered
// ExternalSecret/Secret `a-b-c`, and one team member could read or replace another server's secret.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import type { McpServer } from "../../operator/src/api/v1alpha1.ts";
import { renderMcpServer } from "../../operator/src/render/index.ts";
import { mcpServer } from "../support/mcpserver.ts";
import { list, obj } from "../support/objects.ts";
import { podOf } from "./properties.ts";

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Kinds whose names must be DNS labels (Services are also DNS names); the rest DNS subdomains. */
const LABEL_KINDS = new Set(["Service"]);

function server(name: string, secrets: string[], egress: { cidr: boolean; wildcard: boolean }[] = []): McpServer {
  return mcpServer(
    {
      secrets: secrets.map((s) => ({ name: s, storeRef: { name: "vault" }, remoteRef: { key: `k/${s}` } })),
      mesh: { istio: { enabled: true } },
      network: {
        egress: egress.map((e, i) =>
          e.cidr
            ? { cidrs: [`10.${i}.0.0/24`], ports: [{ port: 5432 }] }
            : { hosts: [e.wildcard ? "*.example.com" : `h${i}.example.com`], ports: [{ port: 443 }] },
        ),
      },
    },
    { name, namespace: "team", uid: `uid-${name}` },
  );
}
const render = (s: McpServer) => renderMcpServer(s, { gatewayImage: "gw:1" });

test("the issue's pair: server a + secret b-c and server a-b + secret c render different ExternalSecrets and Secrets", () => {
  const a = render(server("a", ["b-c"]));
  const ab = render(server("a-b", ["c"]));
  const esA = a.objects.find((o) => o.kind === "ExternalSecret")!;
  const esAB = ab.objects.find((o) => o.kind === "ExternalSecret")!;
  assert.equal(esA.metadata.name, "a.b-c");
  assert.equal(esAB.metadata.name, "a-b.c");
  assert.notEqual(obj(obj(esA.spec).target).name, obj(obj(esAB.spec).target).name);
  const mounted = (r: ReturnType<typeof render>) => list(podOf(r).spec.volumes).flatMap((v) => (v.secret ? [String(obj(v.secret).secretName)] : []));
  assert.ok(mounted(a).includes("a.b-c") && !mounted(a).includes("a-b.c"));
});

// Names from small pools that overlap at '-' boundaries, so that under any scheme joining the parts
// with '-' collisions are frequent (a + b-a and a-b + a, b + a-b and b-a + b, ...).
const serverName = fc.constantFrom("a", "b", "a-b", "b-a", "a-b-a", "a-a");
const secretName = fc.constantFrom("a", "b", "a-b", "b-a", "b-b", "gateway", "egress");
const namespaceOfServers = fc.uniqueArray(
  fc.record({
    name: serverName,
    secrets: fc.uniqueArray(secretName, { maxLength: 3 }),
    egress: fc.array(fc.record({ cidr: fc.boolean(), wildcard: fc.boolean() }), { maxLength: 2 }),
  }),
  { selector: (s) => s.name, minLength: 2, maxLength: 6 },
);

test("property: across the servers of one namespace, no two children of one kind share a name; names are valid and stable", () => {
  fc.assert(
    fc.property(namespaceOfServers, (servers) => {
      const owner = new Map<string, string>();
      for (const s of servers) {
        const rendered = render(server(s.name, s.secrets, s.egress));
        for (const o of rendered.objects) {
          const key = `${o.kind}/${o.metadata.name}`;
          const prev = owner.get(key);
          assert.ok(prev === undefined || prev === s.name, `${key} rendered by both ${prev} and ${s.name}`);
          owner.set(key, s.name);
          assert.ok(o.metadata.name.length <= (LABEL_KINDS.has(o.kind) ? 63 : 253), `${key}: too long`);
          assert.match(o.metadata.name, LABEL_KINDS.has(o.kind) ? DNS_LABEL : DNS_SUBDOMAIN, `${key}: not a valid name`);
        }
        // The same server renders the same names again (prune relies on it).
        assert.deepEqual(
          render(server(s.name, s.secrets, s.egress)).objects.map((o) => `${o.kind}/${o.metadata.name}`),
          rendered.objects.map((o) => `${o.kind}/${o.metadata.name}`),
        );
      }
    }),
    { numRuns: 50, seed: 20261130 },
  );
});

test("longest names stay valid: a 63-character server with a 63-character secret", () => {
  const long = `s${"x".repeat(61)}s`;
  const r = render(
    server(
      long,
      [`t${"y".repeat(61)}t`],
      [
        { cidr: true, wildcard: false },
        { cidr: false, wildcard: true },
      ],
    ),
  );
  for (const o of r.objects) {
    assert.ok(o.metadata.name.length <= (LABEL_KINDS.has(o.kind) ? 63 : 253), `${o.kind}/${o.metadata.name}`);
    assert.match(o.metadata.name, DNS_SUBDOMAIN);
  }
  for (const v of list(podOf(r).spec.volumes)) assert.ok(String(v.name).length <= 63 && DNS_LABEL.test(String(v.name)), `volume ${String(v.name)}`);
});

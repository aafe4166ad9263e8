// Property-based hostile input over the zod schema: start from valid McpServers (the render
// engineer's generator, test/render/arbitrary.ts) and corrupt them at random places with random
// JSON and with the values an attacker would try (privileged flags, host paths, huge and negative
// numbers, unknown fields). Whatever comes out, the schema either refuses it with messages that
// name a field, or accepts it and it renders to pods that pass `restricted`, where only the
// gateway listens and every container has limits. RELIABILITY_LONG=1 runs ten times as many.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import fc from "fast-check";
import { validateMcpServer } from "../../operator/src/api/validate.ts";
import { renderMcpServer } from "../../operator/src/render/index.ts";
import { restrictedViolations } from "../../operator/src/render/restricted.ts";
import { mcpServerArbitrary } from "../render/arbitrary.ts";
import { Figures } from "./figures.ts";
import { podTemplates } from "./hostile-specs.ts";
import { list, type Obj, obj } from "../support/objects.ts";

const figures = new Figures(import.meta.url);
after(() => figures.flush());

const LONG = process.env.RELIABILITY_LONG === "1";
const RUNS = LONG ? 5_000 : 500;

type Json = unknown;

/** Keys an attacker would add next to real ones. */
const SMUGGLED_KEYS = [
  "securityContext",
  "privileged",
  "hostNetwork",
  "hostPID",
  "hostPath",
  "serviceAccountName",
  "capabilities",
  "runAsUser",
  "volumes",
  "initContainers",
  "__proto__",
  "constructor",
  "valueFrom",
  "hostPort",
  "env",
  "command",
];
const HOSTILE_VALUES: Json[] = [
  true,
  0,
  -1,
  65536,
  1e308,
  Number.MAX_SAFE_INTEGER + 2,
  1.5,
  "",
  " ",
  "x".repeat(5000),
  "../../etc/passwd",
  "/var/run/docker.sock",
  "--privileged",
  "SYS_ADMIN",
  "0.0.0.0/0",
  "http://169.254.169.254/latest/meta-data",
  "\u202E\u200B\u0000",
  // A log4shell lookup, as a literal string.
  "$" + "{jndi:ldap://x}",
  "$(id)",
  null,
  [],
  {},
  { privileged: true },
  { path: "/", type: "Directory" },
  ["ALL"],
];

/** Every object/array inside a value with its path (the root included). */
function containers(v: Json, path: (string | number)[] = [], out: { path: (string | number)[]; node: Obj | Json[] }[] = []) {
  if (v !== null && typeof v === "object") {
    out.push({ path, node: v as Obj | Json[] });
    if (Array.isArray(v)) {
      for (const [i, c] of v.entries()) containers(c, [...path, i], out);
    } else for (const [k, c] of Object.entries(v)) containers(c, [...path, k], out);
  }
  return out;
}

interface Corruption {
  kind: "corrupt";
  at: number;
  key: number;
  smuggled: boolean;
  value: Json;
}
/** Legal but hostile: what passes the schema and must still render safely. */
interface Legal {
  kind: "env" | "arg" | "label" | "annotation";
  name: string;
  value: string;
}
type Mutation = Corruption | Legal;

const hostileString = fc.oneof(
  fc.constantFrom(
    "--privileged",
    "--cap-add=ALL",
    "-v=/:/host",
    "/proc/self/root",
    "LD_PRELOAD=/tmp/x.so",
    "unconfined",
    "runtime/default",
    "true",
    "\u202E",
    "\n  privileged: true",
  ),
  fc.string({ maxLength: 40 }),
);
const annotationKey = fc.constantFrom(
  "container.apparmor.security.beta.kubernetes.io/server",
  "container.apparmor.security.beta.kubernetes.io/gateway",
  "seccomp.security.alpha.kubernetes.io/pod",
  "kubectl.kubernetes.io/default-container",
  "sidecar.istio.io/inject",
  "mcp.bastion.dev/anything",
);
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant("corrupt" as const),
    at: fc.nat(),
    key: fc.nat(),
    smuggled: fc.boolean(),
    value: fc.oneof(fc.constantFrom(...HOSTILE_VALUES), fc.jsonValue({ maxDepth: 3 })),
  }),
  fc.record({ kind: fc.constant("env" as const), name: fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,12}$/), value: hostileString }),
  fc.record({ kind: fc.constant("arg" as const), name: fc.constant(""), value: hostileString }),
  fc.record({
    kind: fc.constant("label" as const),
    name: fc.constantFrom("app.kubernetes.io/managed-by", "mcp.bastion.dev/server", "mcp.bastion.dev/client", "app"),
    value: fc.stringMatching(/^[a-z0-9]{0,10}$/),
  }),
  fc.record({ kind: fc.constant("annotation" as const), name: annotationKey, value: hostileString }),
);

/** Applies mutations to a deep copy: replace an existing key/element, add a smuggled key, or a legal hostile value. */
function mutate(input: Json, ms: Mutation[]): Json {
  const root = structuredClone(input) as Obj;
  for (const m of ms) {
    if (m.kind !== "corrupt") {
      const spec = obj(root.spec);
      const md = obj(root.metadata);
      if (m.kind === "env") spec.env = [...list(spec.env).filter((e) => e.name !== m.name), { name: m.name, value: m.value }];
      if (m.kind === "arg") spec.args = [...(Array.isArray(spec.args) ? spec.args : []), m.value];
      if (m.kind === "label") md.labels = { ...obj(md.labels), [m.name]: m.value };
      if (m.kind === "annotation") md.annotations = { ...obj(md.annotations), [m.name]: m.value };
      continue;
    }
    const all = containers(root);
    const target = all[m.at % all.length]!;
    if (Array.isArray(target.node)) {
      if (target.node.length === 0) target.node.push(m.value);
      else target.node[m.key % target.node.length] = m.value;
      continue;
    }
    const keys = Object.keys(target.node);
    const key = m.smuggled || keys.length === 0 ? SMUGGLED_KEYS[m.key % SMUGGLED_KEYS.length]! : keys[m.key % keys.length]!;
    // defineProperty: a "__proto__" key becomes an own property, as JSON.parse makes it.
    Object.defineProperty(target.node, key, { value: m.value, enumerable: true, writable: true, configurable: true });
  }
  return root;
}

test(`${RUNS} corrupted McpServers: refused naming a field, or rendered to restricted pods`, () => {
  let accepted = 0;
  let refused = 0;
  let ok = false;
  const t0 = performance.now();
  try {
    fc.assert(
      fc.property(mcpServerArbitrary, fc.array(mutation, { minLength: 1, maxLength: 4 }), (input, ms) => {
        const doc = mutate(input, ms);
        const v = validateMcpServer(doc);
        if (!v.ok) {
          refused++;
          assert.ok(v.errors.length > 0);
          for (const e of v.errors) {
            // Every message starts with the field at fault (or is a cross-field rule that names it).
            assert.match(e, /^(spec|metadata|apiVersion|kind|status)\b/, `message does not name a field: ${e}`);
            assert.ok(e.length < 2000, `message of ${e.length} chars`);
          }
          return;
        }
        accepted++;
        const r = renderMcpServer(v.value, { gatewayImage: "ghcr.io/mcp-bastion/mcp-bastion:0.1.0" });
        const pods = podTemplates(r);
        assert.equal(pods.length, 1);
        for (const p of pods) {
          assert.deepEqual(restrictedViolations(p.spec, p.annotations), []);
          assert.notEqual(p.spec.automountServiceAccountToken, true);
          const cs = [...list(p.spec.initContainers), ...list(p.spec.containers)];
          assert.equal(cs.filter((c) => list(c.ports).length > 0).length, 1, "only the gateway listens");
          for (const c of cs) {
            const lim = obj(obj(c.resources).limits);
            assert.ok(lim.cpu && lim.memory, `container ${String(c.name)} without limits`);
          }
        }
        const text = JSON.stringify(r.objects);
        assert.doesNotMatch(text, /"(hostPath|hostNetwork|hostPID|hostIPC)"\s*:\s*(true|\{)/);
        assert.doesNotMatch(text, /"privileged"\s*:\s*true/);
      }),
      { numRuns: RUNS },
    );
    ok = true;
  } finally {
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    figures.scenario(`${RUNS} corrupted specs`, ok, `${accepted} accepted and restricted, ${refused} refused naming a field`);
    figures.figure("corrupted specs", `${RUNS} in ${s} s: ${accepted} accepted (all render to restricted pods), ${refused} refused naming a field`);
  }
  assert.ok(accepted > 0 && refused > 0, `both branches taken (${accepted} accepted, ${refused} refused)`);
});

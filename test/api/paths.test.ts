// Paths and file names in the spec are checked as the kubelet and URL parsers will resolve them, not
// as strings: every spelling of a reserved path (//tmp, /./var/run/secrets/mcp, /opt//mcp-bastion,
// trailing '/', '..' segments) is refused, and an accepted path is always already canonical. The
// same cases against the real API server (the CRD's CEL) are in crd-apiserver.test.ts.
import assert from "node:assert/strict";
import { posix } from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import { RESERVED_MOUNT_PATHS } from "../../operator/src/api/v1alpha1.ts";
import { validateMcpServer } from "../../operator/src/api/validate.ts";
import { NON_CANONICAL_FIELDS, RESERVED_MOUNT_PATH_SPELLINGS, withSpec, withVolume } from "./path-cases.ts";

/** Independent of the schema's own normalizer: Node's posix.normalize, then no trailing '/'. */
function resolved(path: string): string {
  const n = posix.normalize(path);
  return n.length > 1 ? n.replace(/\/+$/, "") : n;
}
const within = (inner: string, outer: string) => inner === outer || inner.startsWith(`${outer}/`) || outer === "/";

test("every spelling of a reserved mount path is refused, naming spec.volumes[0].mountPath", () => {
  for (const path of RESERVED_MOUNT_PATH_SPELLINGS) {
    const r = validateMcpServer(withVolume(path));
    assert.equal(r.ok, false, `${path} was accepted`);
    if (!r.ok)
      assert.ok(
        r.errors.some((e) => e.startsWith("spec.volumes[0].mountPath: ")),
        `${path}: ${r.errors.join("; ")}`,
      );
  }
});

test("non-canonical paths and file names are refused with a message that says what is wrong", () => {
  for (const [what, spec, expected] of NON_CANONICAL_FIELDS) {
    const r = validateMcpServer(withSpec(spec));
    assert.equal(r.ok, false, `${what}: accepted`);
    if (!r.ok)
      assert.ok(
        r.errors.some((e) => e.includes(expected)),
        `${what}: expected "${expected}" in ${JSON.stringify(r.errors)}`,
      );
  }
});

test("canonical paths next to the reserved ones are accepted (boundaries are '/' segments, not string prefixes)", () => {
  for (const path of [
    "/tmpdata",
    "/var/run/secrets/mcpdata",
    "/var/run/secrets/other",
    "/opt/mcp-bastion2",
    "/opt/data",
    "/data",
    "/srv/.config",
    "/srv/...",
    "/srv/..hidden",
  ]) {
    const r = validateMcpServer(withVolume(path));
    assert.ok(r.ok, `${path}: ${r.ok ? "" : r.errors.join("; ")}`);
  }
  for (const fileName of ["value", ".env", "token.json", "a..b"]) {
    const r = validateMcpServer(withSpec({ secrets: [{ name: "s", storeRef: { name: "v" }, remoteRef: { key: "k" }, fileName }] }));
    assert.ok(r.ok, `${fileName}: ${r.ok ? "" : r.errors.join("; ")}`);
  }
});

// Paths built from segments an attacker would try: reserved names, '.', '..', empty segments, trailing '/'.
const segment = fc.constantFrom("", ".", "..", "tmp", "var", "run", "secrets", "mcp", "opt", "mcp-bastion", "data", "x", "tmpx", "...");
const anyPath = fc.tuple(fc.array(segment, { minLength: 1, maxLength: 7 }), fc.boolean()).map(([segs, trailing]) => `/${segs.join("/")}${trailing ? "/" : ""}`);

test("property: an accepted mount path is canonical and resolves outside every reserved path", () => {
  fc.assert(
    fc.property(anyPath, (path) => {
      if (!validateMcpServer(withVolume(path)).ok) return;
      const r = resolved(path);
      assert.equal(r, path, `accepted ${path}, which is not canonical (resolves to ${r})`);
      for (const reserved of RESERVED_MOUNT_PATHS) {
        assert.ok(!within(r, reserved) && !within(reserved, r), `accepted ${path}, which overlaps ${reserved}`);
      }
    }),
    { numRuns: 3000, seed: 20261130 },
  );
});

test("property: a canonical path that overlaps no reserved path is accepted", () => {
  fc.assert(
    fc.property(anyPath, (path) => {
      const r = resolved(path);
      if (r !== path || r === "/" || RESERVED_MOUNT_PATHS.some((reserved) => within(r, reserved) || within(reserved, r))) return;
      const v = validateMcpServer(withVolume(path));
      assert.ok(v.ok, `${path}: ${v.ok ? "" : v.errors.join("; ")}`);
    }),
    { numRuns: 3000, seed: 20261131 },
  );
});

test("two spellings of one path are one path: uniqueness compares resolved paths", () => {
  const r = validateMcpServer(
    withSpec({
      volumes: [
        { name: "a", mountPath: "/data", configMap: { name: "c" } },
        { name: "b", mountPath: "/data/.", configMap: { name: "d" } },
      ],
    }),
  );
  assert.equal(r.ok, false);
  if (!r.ok)
    assert.ok(
      r.errors.some((e) => e.includes("spec.volumes[].mountPath must be unique")),
      r.errors.join("; "),
    );
});

// `make unit` must stay the fast inner loop: test/unit.ts picks the test files that need nothing but Node
// and npm packages, from what they import; and under `make unit` (MCP_BASTION_UNIT=1) the control plane
// and hack's installers refuse to run, so a test the selection misjudges fails loudly instead of building the world.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { controlPlaneBinDir } from "../../dev/controlplane/index.ts";
import { upstreamCrdDir } from "../../dev/crds.ts";
import { needs, unitTestFiles } from "../unit.ts";

const ROOT = resolve(import.meta.dirname, "..", "..");

test("the unit selection keeps the pure tests and leaves out what needs the control plane, tools or daemons", () => {
  const unit = unitTestFiles();
  for (const f of [
    "test/render/render.test.ts",
    "test/api/crd.test.ts",
    "test/controller/units.test.ts",
    "test/gateway/units.test.ts",
    "test/repo/hygiene.test.ts",
  ]) {
    assert.ok(unit.includes(f), `${f} is a unit test (${needs(join(ROOT, f))})`);
  }
  const expectOut: Record<string, RegExp> = {
    "test/api/crd-apiserver.test.ts": /control plane/,
    "test/controller/lifecycle.test.ts": /control plane/,
    "test/gateway/redis.test.ts": /deps-gateway/,
    "test/ship/chart.test.ts": /tools built by hack/,
    "test/ship/image.test.ts": /build-bridge/,
    "test/reliability/property.test.ts": /reliability suite/,
    "test/render/schemas.test.ts": /upstream CRDs/,
  };
  for (const [f, why] of Object.entries(expectOut)) {
    assert.ok(!unit.includes(f), `${f} must not be a unit test`);
    assert.match(needs(join(ROOT, f)) ?? "unit", why, f);
  }
});

test("under make unit, the control plane and hack's installers refuse to run, naming the reason", async () => {
  process.env.MCP_BASTION_UNIT = "1";
  try {
    await assert.rejects(controlPlaneBinDir(), /`make unit` runs only tests that need nothing outside npm/);
    assert.throws(() => upstreamCrdDir(), /`make unit` runs only tests that need nothing outside npm/);
  } finally {
    delete process.env.MCP_BASTION_UNIT;
  }
  for (const script of ["hack/tools/install.sh", "hack/deps-gateway.sh", "hack/certmanager/build.sh", "hack/crds/install.sh"]) {
    const r = spawnSync("bash", [join(ROOT, script)], { env: { ...process.env, MCP_BASTION_UNIT: "1" }, encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 3, `${script}: exit ${r.status} ${r.stderr}`);
    assert.match(r.stderr, /called under `make unit`/, script);
  }
});

// The cel-spec conformance cases (as @bufbuild/cel-spec ships them) through the CEL environment the
// gateway's conditions use: its extra functions and its replacements of standard overloads (size) must
// not change the result of any case. Each case without bindings runs in bufbuild's own environment and
// in ours; every value and every error message must be the same. Also counts how many cases each gets
// right against the expected values, printed for the record (bufbuild's own gaps are not ours to fix).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type CelEnv, type CelValue, celEnv, isCelError, isCelList, isCelMap, isCelType, isCelUint, parse, plan } from "@bufbuild/cel";
import type { Value } from "@bufbuild/cel-spec/cel/expr/value_pb.js";
import type { IncrementalTestSuite } from "@bufbuild/cel-spec/testdata/tests.js";
import { getConformanceSuite } from "@bufbuild/cel-spec/testdata/tests.js";
import { getTestRegistry } from "@bufbuild/cel-spec/testdata/registry.js";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { isReflectMessage } from "@bufbuild/protobuf/reflect";
import { toJsonString } from "@bufbuild/protobuf";
import { CONDITION_FUNCS } from "../../contract/authz/conditions.ts";
import { TIME_ZONE_FUNCS } from "../../contract/authz/celtime.ts";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";

const registry = getTestRegistry();

/** A value as a string that two equal CEL values share (map entries sorted, -0 and NaN kept apart). */
function canon(v: unknown): string {
  switch (typeof v) {
    case "bigint":
      return `int:${v}`;
    case "number":
      return `double:${Object.is(v, -0) ? "-0" : String(v)}`;
    case "string":
      return `string:${JSON.stringify(v)}`;
    case "boolean":
      return `bool:${v}`;
  }
  if (v === null) return "null";
  if (v instanceof Uint8Array) return `bytes:${Buffer.from(v).toString("hex")}`;
  if (isCelError(v)) return `error:${v.message}`;
  if (isCelUint(v)) return `uint:${v.value}`;
  if (isCelList(v)) return `[${[...v].map(canon).join(",")}]`;
  if (isCelMap(v))
    return `{${[...v.entries()]
      .map(([k, x]) => `${canon(k)}=>${canon(x)}`)
      .sort()
      .join(",")}}`;
  if (isCelType(v)) return `type:${v.name}`;
  if (isReflectMessage(v)) return `message:${v.desc.typeName}:${toJsonString(v.desc, v.message, { registry })}`;
  return `unknown:${String(v)}`;
}

/** The expected value of a case in the same form (enums are ints in bufbuild; Any is unpacked). */
function canonExpected(v: Value): string {
  const k = v.kind;
  switch (k.case) {
    case "nullValue":
      return "null";
    case "boolValue":
      return `bool:${k.value}`;
    case "int64Value":
      return `int:${k.value}`;
    case "uint64Value":
      return `uint:${k.value}`;
    case "doubleValue":
      return canon(k.value);
    case "stringValue":
      return canon(k.value);
    case "bytesValue":
      return canon(k.value);
    case "enumValue":
      return `int:${k.value.value}`;
    case "typeValue":
      return `type:${k.value}`;
    case "listValue":
      return `[${k.value.values.map(canonExpected).join(",")}]`;
    case "mapValue":
      return `{${k.value.entries
        .map((e) => `${canonExpected(e.key!)}=>${canonExpected(e.value!)}`)
        .sort()
        .join(",")}}`;
    case "objectValue": {
      const m = anyUnpack(k.value, registry);
      if (!m) return "unknown";
      const desc = registry.getMessage(m.$typeName)!;
      return `message:${desc.typeName}:${toJsonString(desc, m, { registry })}`;
    }
    default:
      return "unknown";
  }
}

interface Case {
  name: string;
  expr: string;
  container: string;
  expected: string | "error";
}

function cases(s: IncrementalTestSuite, path: string, out: Case[]): Case[] {
  for (const t of s.tests) {
    const o = t.original;
    if (o.checkOnly || o.disableMacros || Object.keys(o.bindings).length > 0) continue;
    const m = o.resultMatcher;
    const expected = m.case === "value" ? canonExpected(m.value) : m.case === "evalError" || m.case === "anyEvalErrors" ? "error" : undefined;
    if (expected === undefined) continue;
    out.push({ name: `${path}/${t.name}`, expr: o.expr, container: o.container, expected });
  }
  for (const x of s.suites) cases(x, `${path}/${x.name}`, out);
  return out;
}

function evaluate(env: CelEnv, expr: string): string {
  try {
    return canon(plan(env, parse(expr))() as CelValue);
  } catch (e) {
    return `throws:${e instanceof Error ? e.message : String(e)}`;
  }
}

describe("cel-spec conformance through the conditions' CEL environment", () => {
  it("gives the same result as bufbuild's own environment on every case without bindings", () => {
    const all = cases(getConformanceSuite(), "conformance", []);
    const envs = new Map<string, { plain: CelEnv; ours: CelEnv }>();
    const env = (container: string) => {
      let e = envs.get(container);
      if (!e) {
        e = { plain: celEnv({ registry, namespace: container }), ours: celEnv({ registry, namespace: container, funcs: CONDITION_FUNCS }) };
        envs.set(container, e);
      }
      return e;
    };
    const differ: string[] = [];
    let right = { plain: 0, ours: 0 };
    let sizeCases = 0;
    let zoneCases = 0;
    for (const c of all) {
      const e = env(c.container);
      const plain = evaluate(e.plain, c.expr);
      const ours = evaluate(e.ours, c.expr);
      if (ours !== plain) differ.push(`${c.name}: ${c.expr} -> ${ours} (bufbuild: ${plain})`);
      const ok = (r: string) => (c.expected === "error" ? r.startsWith("error:") || r.startsWith("throws:") : r === c.expected);
      right = { plain: right.plain + (ok(plain) ? 1 : 0), ours: right.ours + (ok(ours) ? 1 : 0) };
      if (/\bsize\b/.test(c.expr)) sizeCases++;
      if (/\.get\w+\(\s*['"]/.test(c.expr)) zoneCases++;
    }
    process.stdout.write(
      `# ${all.length} conformance cases without bindings: bufbuild's environment ${right.plain} right, the conditions' ${right.ours} right; ${sizeCases} call size, ${zoneCases} a timestamp accessor with a time zone\n`,
    );
    assert.ok(all.length > 1000, `only ${all.length} cases found: did @bufbuild/cel-spec's test data move?`);
    assert.ok(sizeCases > 10, `only ${sizeCases} cases call size: the replaced overloads are not exercised`);
    assert.ok(zoneCases > 5, `only ${zoneCases} cases use a time zone: the replaced accessors are not exercised`);
    assert.deepEqual(differ, []);
    assert.equal(right.ours, right.plain);
  });
});

describe("timestamp accessors with a time zone (one formatter per zone instead of one per call)", () => {
  it("give bufbuild's results and errors for every accessor, on instants around DST changes, year ends and leap days", () => {
    const plain = celEnv();
    const ours = celEnv({ funcs: TIME_ZONE_FUNCS });
    const accessors = [
      "getFullYear",
      "getMonth",
      "getDate",
      "getDayOfMonth",
      "getDayOfWeek",
      "getDayOfYear",
      "getHours",
      "getMinutes",
      "getSeconds",
      "getMilliseconds",
    ];
    const zones = [
      "UTC",
      "Europe/Berlin",
      "America/Los_Angeles",
      "Asia/Kolkata",
      "Australia/Lord_Howe",
      "Pacific/Chatham",
      "+05:30",
      "-08:00",
      "00:00",
      "Mars/Olympus",
      "",
    ];
    const instants = [
      "1970-01-01T00:00:00.000Z",
      "1969-12-31T23:59:59.999Z",
      "2024-02-29T23:30:00.123Z",
      "2024-02-29T23:30:00.900Z", // the same second: the zone's cached wall clock, other milliseconds
      "2026-03-29T00:59:59.999Z", // Berlin: the hour before summer time
      "2026-03-29T01:00:00.000Z",
      "2026-10-25T00:30:00.000Z", // Berlin: the repeated hour
      "2026-10-25T01:30:00.000Z",
      "2026-11-01T09:30:00.000Z", // Los Angeles: back to standard time
      "2026-12-31T23:59:59.500Z",
      "2027-04-04T14:45:00.000Z", // Lord Howe: half-hour DST change
      "0001-01-01T00:00:00.000Z",
      "9999-12-31T23:59:59.999Z",
    ];
    const programs = accessors.map((a) => ({ a, plain: plan(plain, parse(`t.${a}(z)`)), ours: plan(ours, parse(`t.${a}(z)`)) }));
    let compared = 0;
    let errors = 0;
    for (const iso of instants)
      for (const z of zones)
        for (const p of programs) {
          const ctx = { t: timestampFromMs(Date.parse(iso)), z };
          const want = canon(p.plain(ctx) as CelValue);
          assert.equal(canon(p.ours(ctx) as CelValue), want, `${iso} ${p.a}(${JSON.stringify(z)})`);
          compared++;
          if (want.startsWith("error:")) errors++;
        }
    assert.ok(errors > 0 && errors < compared, `${errors} of ${compared} are errors: both kinds must be compared`);
  });
});

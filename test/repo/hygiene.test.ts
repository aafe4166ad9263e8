// A fresh clone must work at any path: no tracked file may import or name a location outside the
// repository, and nothing tracked may be a leftover scratch file (issue: a scratch script importing the
// SDK by an absolute path of a development machine broke `make test` for every new user). The rules are
// in hygiene.ts; here they run on every tracked file, and first on a fixture, so each rule is seen to fire.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { type Finding, fileFindings, importFindings, pathFindings } from "./hygiene.ts";

const ROOT = resolve(import.meta.dirname, "..", "..");
const FIXTURES = join(import.meta.dirname, "fixtures");
/** Where the fixture's lines pretend to be: a test file, like the scratch script of the issue. */
const AS_FILE = "test/gateway/example.test.ts";
/** Development-machine locations the fixture's `<host>` stands for, and the clone's own absolute path. */
const HOSTS = [...["work/main", "root/mcp-bastion", "home/alice/src/mcp-bastion", "Users/bob/mcp-bastion"].map((p) => `/${p}`), ROOT];

const fixtureLines = (name: string) =>
  readFileSync(join(FIXTURES, name), "utf8")
    .split("\n")
    .filter((l) => l.trim() && !l.startsWith("#"));
const scan = (line: string): Finding[] => [...importFindings(AS_FILE, line), ...pathFindings(AS_FILE, line, ROOT)];
const show = (fs: Finding[]) => fs.map((f) => `${f.file}:${f.line} [${f.rule}] ${f.text}`).join("\n");

test("the scanner flags every bad line of the fixture, for every development-machine location", () => {
  const bad = fixtureLines("hygiene-bad.txt");
  assert.ok(bad.length >= 10, `fixture has ${bad.length} bad lines`);
  const missed: string[] = [];
  for (const line of bad) {
    for (const host of line.includes("<host>") ? HOSTS : [""]) {
      const l = line.replaceAll("<host>", host);
      if (scan(l).length === 0) missed.push(l);
    }
  }
  assert.deepEqual(missed, [], "lines the scanner let through");
});

test("the scanner leaves good lines alone: package and in-repo imports, paths inside a pod, URLs, regexes", () => {
  const good = fixtureLines("hygiene-good.txt");
  assert.ok(good.length >= 10, `fixture has ${good.length} good lines`);
  assert.equal(show(good.flatMap(scan)), "");
});

test("the file rules flag scratch names, stray files and scripts nothing uses", () => {
  const texts = new Map([
    ["Makefile", "test:\n\tnode test/reliability/summary.ts\n"],
    ["test/gateway/helpers.ts", "export const x = 1;\n"],
    ["test/gateway/gateway.test.ts", 'import { x } from "./helpers.ts";\n'],
    ["test/reliability/summary.ts", "console.log(1);\n"],
    ["test/gateway/smoke.ts", "console.log(2);\n"],
  ]);
  const files = [
    ...texts.keys(),
    "test/gateway/zz-smoke2.ts",
    "scratch.md",
    "operator/src/render/tmp-notes.ts",
    "gateway/src/server.ts.orig",
    "notes.txt",
    "test/render/fixtures/a.json",
  ];
  const got = fileFindings(files, texts).map((f) => `${f.file} ${f.rule}`);
  assert.deepEqual(got.sort(), [
    "gateway/src/server.ts.orig scratch-file",
    "notes.txt stray-file",
    "operator/src/render/tmp-notes.ts scratch-file",
    "scratch.md scratch-file",
    "test/gateway/smoke.ts unreferenced-script",
    "test/gateway/zz-smoke2.ts scratch-file",
  ]);
});

test("no tracked file imports or names a path outside the repository, and nothing tracked is a scratch file", () => {
  const files = execFileSync("git", ["ls-files", "-z"], { cwd: ROOT, encoding: "utf8" }).split("\0").filter(Boolean);
  assert.ok(files.includes("package.json") && files.includes("Makefile"), `git ls-files does not list this repository: ${files.slice(0, 5).join(", ")}`);
  const texts = new Map<string, string>();
  for (const f of files) {
    let buf: Buffer;
    try {
      buf = readFileSync(join(ROOT, f));
    } catch {
      continue; // deleted in the work tree, not yet committed
    }
    if (!buf.includes(0)) texts.set(f, buf.toString("utf8"));
  }
  const findings = [...texts].flatMap(([f, text]) => [...importFindings(f, text), ...pathFindings(f, text, ROOT)]);
  findings.push(...fileFindings(files, texts));
  assert.equal(show(findings), "", "tracked files that point outside the repository or are scratch");
});

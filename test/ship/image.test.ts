// The image, without a Docker engine: the Dockerfile is read instruction by instruction and each
// stage is laid out in its own directory (an image path /app/x becomes <stage>/app/x), from a build
// context made by .dockerignore. COPY is done as Docker does it; each RUN has a known emulation here
// and an unknown RUN fails the test, so the Dockerfile cannot drift from what is tested. Then the
// entrypoint runs exactly as the image runs it: node + /app/cli/bin/mcp-bastion.js from
// /app/dist, without the TypeScript sources, as uid 65532, over a read-only tree.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from "node:fs";
import { connect } from "node:net";
import { basename, dirname, join } from "node:path";
import { spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { freePort, scratchDir } from "../support/index.ts";
import { mcpServerExamples } from "./manifests.ts";
import { ROOT, run, type RunResult } from "./tools.ts";

interface Instr {
  op: string;
  args: string;
}
interface Stage {
  name: string;
  base: string;
  instrs: Instr[];
}

/** Stages of a Dockerfile: line continuations joined, comments and parser directives dropped. */
export function parseDockerfile(text: string): Stage[] {
  const lines = text.replace(/\\\n/g, " ").split("\n");
  const stages: Stage[] = [];
  for (const raw of lines) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const [, op = "", args = ""] = line.match(/^(\w+)\s+(.*)$/) ?? [];
    if (op.toUpperCase() === "FROM") {
      const [, base = "", name] = args.match(/^(\S+)(?:\s+AS\s+(\S+))?$/i) ?? [];
      stages.push({ name: name ?? `stage${stages.length}`, base, instrs: [] });
    } else {
      assert.ok(stages.length, `instruction before FROM: ${line}`);
      stages.at(-1)!.instrs.push({ op: op.toUpperCase(), args: args.replace(/\s+/g, " ").trim() });
    }
  }
  return stages;
}

const dockerfile = parseDockerfile(readFileSync(join(ROOT, "Dockerfile"), "utf8"));
const finalStage = dockerfile.at(-1)!;
/** Our build and test tools: never in the runtime image. */
const DEV_ONLY = ["typescript", "@biomejs/biome", "esbuild", "postject", "fast-check", "node"];

let work: string;
const roots = new Map<string, string>();
const finalEnv: Record<string, string> = {};
let finalWorkdir = "/";
let finalUser = "";

/** Runs the image's entrypoint with ARGS, as its user, from its WORKDIR. */
async function image(args: string[], input?: string): Promise<RunResult> {
  const entry = JSON.parse(finalStage.instrs.find((i) => i.op === "ENTRYPOINT")!.args) as string[];
  const root = roots.get(finalStage.name)!;
  // `node` is the base image's; here, the Node 24 running this test.
  const argv = [process.execPath, ...entry.slice(1).map((a) => (a.startsWith("/") ? join(root, a) : a)), ...args];
  const env = { PATH: dirname(process.execPath) + ":/usr/bin:/bin", HOME: "/nonexistent", ...finalEnv };
  const [uid, gid] = finalUser.split(":");
  const asUser = process.getuid?.() === 0 && existsSync("/usr/bin/setpriv") && uid;
  const [cmd, ...rest] = asUser ? ["/usr/bin/setpriv", `--reuid=${uid}`, `--regid=${gid ?? uid}`, "--clear-groups", ...argv] : argv;
  return run(cmd!, rest, { cwd: join(root, finalWorkdir), env, ...(input === undefined ? {} : { input }) });
}

/** The CLI from the TypeScript sources copied into the build stage (the image's own snapshot). */
function sourceCli(args: string[]): Promise<RunResult> {
  const main = join(roots.get(dockerfile[0]!.name)!, "src", "cli", "src", "main.ts");
  assert.ok(existsSync(main), `no sources at ${main}`);
  const code = "const { main } = await import(process.argv[1]); process.exitCode = await main(process.argv.slice(2));";
  return run(process.execPath, ["--input-type=module", "-e", code, main, ...args]);
}

function listTree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

describe("the image, built and run without a Docker engine", { timeout: 10 * 60_000 }, () => {
  before(async () => {
    work = scratchDir("mcp-bastion-image-");
    chmodSync(work, 0o755);
    // Build context: only what .dockerignore lets through (it ignores "*" and re-includes paths).
    const context = join(work, "context");
    mkdirSync(context);
    for (const line of readFileSync(join(ROOT, ".dockerignore"), "utf8").split("\n")) {
      const m = line.trim().match(/^!(.+?)(\/\*\*)?$/);
      if (!m || !existsSync(join(ROOT, m[1]!))) continue;
      cpSync(join(ROOT, m[1]!), join(context, m[1]!), { recursive: true });
    }
    for (const stage of dockerfile) {
      const root = join(work, "stages", stage.name);
      mkdirSync(root, { recursive: true });
      roots.set(stage.name, root);
      let workdir = "/";
      for (const { op, args } of stage.instrs) {
        const here = join(root, workdir);
        if (op === "WORKDIR") {
          workdir = args;
          mkdirSync(join(root, workdir), { recursive: true });
        } else if (op === "COPY") {
          const parts = args.split(" ");
          const from = parts[0]!.startsWith("--from=") ? parts.shift()!.slice("--from=".length) : undefined;
          const dest = parts.pop()!;
          const srcRoot = from ? roots.get(from) : context;
          assert.ok(srcRoot, `COPY --from=${from}: no such stage`);
          const target = dest.startsWith("/") ? join(root, dest) : join(here, dest);
          for (const src of parts) {
            const from_ = from ? join(srcRoot!, src) : join(srcRoot!, src);
            assert.ok(existsSync(from_), `COPY ${src}: not in the ${from ? `stage ${from}` : "build context (.dockerignore)"}`);
            const isDir = statSync(from_).isDirectory();
            const to = isDir || !(dest.endsWith("/") || parts.length > 1) ? target : join(target, basename(src));
            mkdirSync(isDir ? to : dirname(to), { recursive: true });
            cpSync(from_, to, { recursive: true });
          }
        } else if (op === "RUN") {
          await emulateRun(stage.name, args, root, here);
        } else if (op === "ENV" && stage === finalStage) {
          for (const m of args.matchAll(/(\w+)=(\S+)/g)) finalEnv[m[1]!] = m[2]!;
        } else if (op === "USER" && stage === finalStage) {
          finalUser = args;
        }
      }
      if (stage === finalStage) finalWorkdir = workdir;
    }
  });
  after(() => {
    if (work) execFileSync("rm", ["-rf", work]);
  });

  test("Dockerfile: node:24 bases, multi-stage, production deps, numeric non-root user, the contract's ENTRYPOINT", () => {
    assert.ok(dockerfile.length >= 2, "not multi-stage");
    for (const s of dockerfile) assert.match(s.base, /^node:24(-|$)/, `stage ${s.name} is not on a node:24 image`);
    const runs = dockerfile.flatMap((s) => s.instrs.filter((i) => i.op === "RUN").map((i) => i.args));
    assert.ok(
      runs.some((r) => /npm ci .*--omit=dev/.test(r)),
      "production dependencies are not installed with npm ci --omit=dev",
    );
    assert.ok(runs.includes("make build"), "dist/ is not built by make build");
    assert.equal(finalUser, "65532:65532");
    assert.deepEqual(JSON.parse(finalStage.instrs.find((i) => i.op === "ENTRYPOINT")!.args), ["node", "/app/cli/bin/mcp-bastion.js"]);
  });

  test("the runtime stage holds dist/, production dependencies only, no TypeScript sources", () => {
    const app = join(roots.get(finalStage.name)!, "app");
    assert.ok(existsSync(join(app, "dist", "cli", "src", "main.js")), "no compiled CLI");
    assert.ok(
      existsSync(join(app, "dist", "gateway", "src", "index.js")) || existsSync(join(app, "dist", "gateway", "src", "server.js")),
      "no compiled gateway",
    );
    for (const src of ["contract", "operator/src", "gateway/src", "cli/src"])
      assert.equal(existsSync(join(app, src)), false, `TypeScript sources (${src}) in the image`);
    // Packages the lock file marks dev-only (devDependencies and what only they need).
    const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages)
      .filter(([k, v]) => k.startsWith("node_modules/") && v.dev)
      .map(([k]) => k);
    assert.ok(devOnly.length > 50 && DEV_ONLY.every((d) => devOnly.includes(`node_modules/${d}`)));
    const present = devOnly.filter((k) => existsSync(join(app, k)));
    assert.deepEqual(present, [], "development dependencies in the image");
    for (const p of ["@kubernetes/client-node", "zod", "yaml", "prom-client"]) assert.ok(existsSync(join(app, "node_modules", p)), `${p} missing`);
    assert.ok(statSync(join(app, "bin", "mcp-bastion-bridge")).mode & 0o111, "bridge not executable");
  });

  test("the entrypoint runs from dist/ as the image runs it: as uid 65532, writing nothing", async (t) => {
    const root = roots.get(finalStage.name)!;
    execFileSync("chmod", ["-R", "a-w", root]);
    const before_ = listTree(root);
    const help = await image(["--help"]);
    assert.equal(help.code, 0, help.stderr);
    for (const c of ["operator", "gateway", "render", "crd", "stdio-bridge"]) assert.match(help.stdout, new RegExp(`\\b${c}\\b`));

    // The same CRD as the TypeScript sources the image was built from generate (not the live tree,
    // which others may be editing while this runs).
    const crd = await image(["crd"]);
    assert.equal(crd.code, 0, crd.stderr);
    assert.match(crd.stdout, /kind: CustomResourceDefinition/);
    assert.equal(crd.stdout, (await sourceCli(["crd"])).stdout);

    // The same objects as the source tree renders, for every example.
    const examples = mcpServerExamples().map((e) => e.file);
    const input = scratchDir("mcp-bastion-ex-");
    chmodSync(input, 0o755);
    for (const f of examples) {
      cpSync(join(ROOT, "examples", f), join(input, f));
      const fromImage = await image(["render", "-f", join(input, f)]);
      const fromSource = await sourceCli(["render", "-f", join(input, f)]);
      assert.equal(fromImage.code, 0, `${f}: ${fromImage.stderr}`);
      assert.equal(fromImage.stdout, fromSource.stdout, `${f}: the image renders differently from the sources`);
    }
    t.diagnostic(`${examples.length} examples render identically from dist/`);

    for (const cmd of ["gateway", "operator", "stdio-bridge"]) {
      const r = await image([cmd, "--help"]);
      assert.equal(r.code, 0, `${cmd} --help: ${r.stderr}`);
      assert.match(r.stdout + r.stderr, /usage/i);
    }
    // A bad invocation is a short message, never a stack trace.
    const bad = await image(["render", "-f", "/nonexistent.yaml"]);
    assert.notEqual(bad.code, 0);
    assert.doesNotMatch(bad.stderr, /\n\s+at /);

    assert.deepEqual(listTree(root), before_, "the image wrote into its own filesystem");
    if (process.getuid?.() !== 0 || !existsSync("/usr/bin/setpriv")) t.diagnostic("not root or no setpriv: ran as the current user, not uid 65532");
  });

  test("stdio-bridge --install copies the single executable, which serves a stdio MCP server", async () => {
    const shared = scratchDir("mcp-bastion-bridge-");
    chmodSync(shared, 0o777); // the emptyDir shared by the init container and the server container
    const r = await image(["stdio-bridge", "--install", shared]);
    assert.equal(r.code, 0, r.stderr);
    const installed = join(shared, "mcp-bastion-bridge");
    const shipped = join(roots.get(finalStage.name)!, "app", "bin", "mcp-bastion-bridge");
    assert.ok(readFileSync(installed).equals(readFileSync(shipped)), "--install did not copy the image's single executable");

    // The server container runs it with no Node of ours: only the bridge binary and the server's program.
    const port = await freePort();
    const server = join(ROOT, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js");
    const bridge = spawn(installed, ["--port", String(port), "--", process.execPath, server, "stdio"], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { PATH: "/usr/bin:/bin" },
    });
    let log = "";
    bridge.stderr?.on("data", (b: Buffer) => (log += b));
    try {
      const reply = await initialize(port);
      assert.equal(reply.jsonrpc, "2.0");
      assert.ok(reply.result?.serverInfo?.name, `no serverInfo in ${JSON.stringify(reply)}\n${log}`);
    } finally {
      bridge.kill("SIGTERM");
    }
  });
});

/** Connects to the bridge (retrying while it starts) and sends an MCP initialize request. */
async function initialize(port: number): Promise<{ jsonrpc?: string; result?: { serverInfo?: { name?: string } } }> {
  const request = {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "ship-test", version: "1" } },
  };
  // Deadlines, not attempt counts: a loaded machine may take a while to start the single executable.
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return await new Promise((resolve, reject) => {
        const sock = connect(port, "127.0.0.1");
        let buf = "";
        const timer = setTimeout(() => sock.destroy(new Error(`no reply within 60 s (received so far: ${JSON.stringify(buf.slice(0, 300))})`)), 60_000);
        sock.on("connect", () => sock.write(`${JSON.stringify(request)}\n`));
        sock.on("data", (b) => {
          buf += b;
          const line = buf.split("\n").find((l) => l.includes('"id":1'));
          if (line) {
            clearTimeout(timer);
            sock.end();
            resolve(JSON.parse(line));
          }
        });
        sock.on("error", (e) => {
          clearTimeout(timer);
          reject(e);
        });
      });
    } catch (err) {
      if (!(err instanceof Error && /ECONNREFUSED/.test(err.message))) throw err;
      if (Date.now() > deadline) throw new Error(`the bridge on port ${port} refused connections for 60 s (last: ${err.message})`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Each RUN of the Dockerfile, done here the way Docker would (or the test fails on an unknown one). */
async function emulateRun(stage: string, cmd: string, root: string, cwd: string): Promise<void> {
  const sh = async (c: string, args: string[]) => {
    const r = await run(c, args, { cwd, env: { ...process.env, PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}` } });
    assert.equal(r.code, 0, `${stage}: RUN ${cmd}\n${r.stdout}\n${r.stderr}`);
  };
  if (cmd === "npm ci --no-audit --no-fund && touch node_modules/.installed") {
    // All dependencies from the same lock file: the ones installed in this checkout.
    symlinkSync(join(ROOT, "node_modules"), join(cwd, "node_modules"));
  } else if (cmd === "make build") {
    // -o: node_modules is the checkout's (above); never let make reinstall it from here.
    await sh("make", ["-o", "install", "-o", "node_modules/.installed", "build"]);
  } else if (cmd === 'hack/tools/build-bridge.sh /out/mcp-bastion-bridge "$(command -v node)"') {
    await sh(join(cwd, "hack", "tools", "build-bridge.sh"), [join(root, "out", "mcp-bastion-bridge"), process.execPath]);
  } else if (cmd === "npm ci --omit=dev --ignore-scripts --no-audit --no-fund") {
    await sh("npm", ["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"]);
  } else if (cmd.startsWith("rm -rf /usr/local/lib/node_modules/npm ")) {
    // Removes the base image's package managers: nothing of ours to emulate.
  } else {
    assert.fail(`Dockerfile stage ${stage}: RUN ${cmd} has no emulation in test/ship/image.test.ts`);
  }
}

// `mcp-bastion stdio-bridge --port 8099 [--max-sessions N] -- CMD ARGS...`: serves a stdio MCP server on
// 127.0.0.1, one child process per connection (= per gateway MCP session).
// `mcp-bastion stdio-bridge --install DIR`: copies the self-contained `mcp-bastion-bridge` executable into
// DIR (an emptyDir shared with the server container, whose command becomes DIR/mcp-bastion-bridge ...).
// Only Node built-ins here: this module is bundled into that single executable (hack/tools/build-bridge.sh).
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { identityEnvProblems, PROCESS_IDENTITY_ROLES, type ProcessIdentityRole } from "../../../contract/authz/identity-env.ts";
import { startBridge } from "../../../gateway/src/bridge.ts";

const USAGE =
  "usage: mcp-bastion stdio-bridge --port N [--host 127.0.0.1] [--max-sessions 16] [--identity-env FACT=NAME ...] -- CMD [ARGS...]\n       mcp-bastion stdio-bridge --install DIR";
const EXE = "mcp-bastion-bridge";

function log(msg: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: "info", component: "stdio-bridge", msg, ...fields })}\n`);
}

/** Where the prebuilt single executable is: the running one, or the image's /app/bin next to the CLI. */
function findExecutable(): string | undefined {
  if (basename(process.execPath) === EXE) return process.execPath;
  if (process.env.MCP_BASTION_BRIDGE_BIN && existsSync(process.env.MCP_BASTION_BRIDGE_BIN)) return process.env.MCP_BASTION_BRIDGE_BIN;
  let here: string;
  try {
    here = dirname(fileURLToPath(import.meta.url));
  } catch {
    return undefined; // bundled as CommonJS: only the execPath case applies
  }
  // source: <root>/cli/src/commands; compiled: <root>/dist/cli/src/commands
  for (const up of ["../../..", "../../../.."]) {
    const p = resolve(here, up, "bin", EXE);
    if (existsSync(p)) return p;
  }
  return undefined;
}

function install(dir: string): number {
  mkdirSync(dir, { recursive: true });
  const target = join(dir, EXE);
  const tmp = `${target}.tmp-${process.pid}`;
  const exe = findExecutable();
  if (exe) copyFileSync(exe, tmp);
  else {
    // A checkout without the built executable: a launcher that needs this Node and this tree.
    // The image ships the real single executable (hack/tools/build-bridge.sh).
    const cli = resolve(dirname(fileURLToPath(import.meta.url)), "../../bin/mcp-bastion.js");
    writeFileSync(tmp, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(cli)} stdio-bridge "$@"\n`);
  }
  chmodSync(tmp, 0o755);
  renameSync(tmp, target);
  log("installed", { path: target, kind: exe ? "single-executable" : "launcher" });
  return 0;
}

export async function run(args: string[]): Promise<number> {
  const dash = args.indexOf("--");
  const own = dash >= 0 ? args.slice(0, dash) : args;
  const cmd = dash >= 0 ? args.slice(dash + 1) : [];
  let values: { port?: string; host?: string; "max-sessions"?: string; "identity-env"?: string[]; install?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: own,
      options: {
        port: { type: "string" },
        host: { type: "string" },
        "max-sessions": { type: "string" },
        // issue 13: FACT=NAME (FACT one of client, subject, groups, scopes, source, token): the caller's
        // identity in each process's environment, from the gateway's preamble on the connection.
        "identity-env": { type: "string", multiple: true },
        install: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    process.stderr.write(`mcp-bastion stdio-bridge: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.install !== undefined) return install(values.install);
  const port = Number(values.port ?? "8099");
  const max = Number(values["max-sessions"] ?? "16");
  const host = values.host ?? "127.0.0.1";
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`mcp-bastion stdio-bridge: --port: not a port number\n${USAGE}\n`);
    return 2;
  }
  if (!Number.isInteger(max) || max < 1) {
    process.stderr.write(`mcp-bastion stdio-bridge: --max-sessions: must be a positive integer\n${USAGE}\n`);
    return 2;
  }
  if (cmd.length === 0 || !cmd[0]) {
    process.stderr.write(`mcp-bastion stdio-bridge: the server command is missing after --\n${USAGE}\n`);
    return 2;
  }
  const identityEnv: Partial<Record<ProcessIdentityRole, string>> = {};
  for (const pair of values["identity-env"] ?? []) {
    const eq = pair.indexOf("=");
    const role = pair.slice(0, eq) as ProcessIdentityRole;
    if (eq <= 0 || !PROCESS_IDENTITY_ROLES.includes(role)) {
      process.stderr.write(
        `mcp-bastion stdio-bridge: --identity-env ${pair}: must be FACT=NAME with FACT one of ${PROCESS_IDENTITY_ROLES.join(", ")}\n${USAGE}\n`,
      );
      return 2;
    }
    identityEnv[role] = pair.slice(eq + 1);
  }
  // The token's signing is the gateway's business; here a name for it is just a name.
  const problems = identityEnvProblems(identityEnv, true);
  if (problems.length > 0) {
    process.stderr.write(`mcp-bastion stdio-bridge: --identity-env: ${problems.join("; ")}\n`);
    return 2;
  }
  const bridge = await startBridge({ host, port, command: cmd[0], args: cmd.slice(1), maxChildren: max, identityEnv, log });
  log("listening", { host, port: bridge.port, maxSessions: max, identityEnv });
  return await new Promise<number>((done) => {
    const stop = () => void bridge.close().then(() => done(0));
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
}

// The stdio bridge: serves a stdio MCP server to the gateway over TCP on loopback, one child process
// per connection. The gateway opens one connection per MCP session it creates, so every client session
// gets its own server process: no state shared between clients, a crash ends one session only, and
// nothing needs `pods/attach` or `pods/exec` RBAC (the bridge runs inside the server container).
// Imports only Node built-ins: it is bundled into the single-executable `mcp-bastion-bridge`.
import { type ChildProcess, spawn } from "node:child_process";
import net from "node:net";
import { PROCESS_IDENTITY_ROLES, type ProcessIdentityRole } from "../../contract/authz/identity-env.ts";

export { identityEnvProblems, PROCESS_IDENTITY_ROLES, type ProcessIdentityRole, RESERVED_ENV } from "../../contract/authz/identity-env.ts";

// ---- issue 13: the caller's identity in a stdio process's environment ------------------------------
// The gateway knows who the session belongs to; the bridge spawns the process. When the bridge is told
// to set identity variables (--identity-env FACT=NAME), every connection must begin with one preamble
// line from the gateway naming the facts; the bridge removes every configured name from the environment
// it passes on (a variable of that name in the container's own environment never reaches the child as if
// it were verified) and sets the ones the preamble carries. Only configured names can be set, and only to
// printable ASCII (the gateway percent-encodes the rest), so a caller cannot choose a variable or smuggle
// a NUL. Per process is per session, and a session belongs to one client: the gateway never lets another
// client use it (sessions.ts, resolve).

/** First line on a bridge connection when the bridge sets identity variables. */
export function identityPreamble(values: Partial<Record<ProcessIdentityRole, string>>): string {
  return `${JSON.stringify({ mcpBastionIdentity: values })}\n`;
}

const PREAMBLE_MAX_BYTES = 32 * 1024;
const PREAMBLE_VALUE_MAX = 8192;

/** The preamble's facts, or why the connection is refused. */
export function parsePreamble(line: string): Partial<Record<ProcessIdentityRole, string>> | { refused: string } {
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch {
    return { refused: "the first line is not the identity preamble" };
  }
  const facts = (doc as { mcpBastionIdentity?: unknown } | null)?.mcpBastionIdentity;
  if (facts === null || typeof facts !== "object" || Array.isArray(facts)) return { refused: "the first line is not the identity preamble" };
  const out: Partial<Record<ProcessIdentityRole, string>> = {};
  for (const [k, v] of Object.entries(facts)) {
    if (!(PROCESS_IDENTITY_ROLES as readonly string[]).includes(k)) return { refused: `unknown identity fact ${JSON.stringify(k.slice(0, 32))}` };
    if (typeof v !== "string" || v.length > PREAMBLE_VALUE_MAX || !/^[\x20-\x7e]*$/.test(v))
      return { refused: `identity fact ${k} is not a printable ASCII string of at most ${PREAMBLE_VALUE_MAX} characters` };
    out[k as ProcessIdentityRole] = v;
  }
  return out;
}

/** The child's environment: the bridge's own, without any identity name, plus the facts the preamble carries. */
export function childEnvironment(
  base: NodeJS.ProcessEnv,
  names: Partial<Record<ProcessIdentityRole, string>>,
  facts: Partial<Record<ProcessIdentityRole, string>>,
): NodeJS.ProcessEnv {
  const env = { ...base };
  for (const n of Object.values(names)) if (n !== undefined) delete env[n];
  for (const [role, value] of Object.entries(facts)) {
    const n = names[role as ProcessIdentityRole];
    if (n !== undefined && value !== undefined) env[n] = value;
  }
  return env;
}

export interface BridgeOptions {
  host: string;
  port: number;
  command: string;
  args: string[];
  maxChildren: number;
  /** Identity facts -> variable names; when set, each connection starts with the gateway's preamble. */
  identityEnv?: Partial<Record<ProcessIdentityRole, string>>;
  /** How long a connection may take to send its preamble. */
  preambleTimeoutMs?: number;
  /** Grace period between SIGTERM and SIGKILL when a connection closes. */
  killAfterMs?: number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface Bridge {
  port: number;
  children(): number;
  close(): Promise<void>;
}

function stop(child: ChildProcess, graceMs: number): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const t = setTimeout(() => child.kill("SIGKILL"), graceMs);
  t.unref();
  child.once("exit", () => clearTimeout(t));
}

export function startBridge(o: BridgeOptions): Promise<Bridge> {
  const log = o.log ?? (() => undefined);
  const grace = o.killAfterMs ?? 2000;
  const live = new Set<ChildProcess>();
  const server = net.createServer((sock) => {
    if (live.size >= o.maxChildren) {
      log("refusing connection: child limit reached", { maxChildren: o.maxChildren });
      sock.destroy();
      return;
    }
    sock.setNoDelay(true);
    const names = o.identityEnv ?? {};
    if (!Object.values(names).some((n) => n !== undefined)) return serve(sock, process.env, Buffer.alloc(0));
    // The preamble first: nothing reaches a process before its identity is known.
    let buf = Buffer.alloc(0);
    const refuse = (why: string) => {
      log("refusing connection: no valid identity preamble", { reason: why });
      sock.destroy();
    };
    const timer = setTimeout(() => refuse("no preamble in time"), o.preambleTimeoutMs ?? 10_000);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const nl = buf.indexOf(10);
      if (nl < 0) {
        if (buf.length > PREAMBLE_MAX_BYTES) {
          clearTimeout(timer);
          sock.off("data", onData);
          refuse("preamble too long");
        }
        return;
      }
      clearTimeout(timer);
      sock.off("data", onData);
      const facts = parsePreamble(buf.subarray(0, nl).toString("utf8"));
      if ("refused" in facts) return refuse(String(facts.refused));
      serve(sock, childEnvironment(process.env, names, facts), buf.subarray(nl + 1));
    };
    sock.on("data", onData);
    sock.on("error", () => undefined);
    sock.on("close", () => clearTimeout(timer));
  });
  /** Spawns the session's process and joins it to the connection (`rest`: bytes that came with the preamble). */
  const serve = (sock: net.Socket, env: NodeJS.ProcessEnv, rest: Buffer): void => {
    if (live.size >= o.maxChildren) {
      log("refusing connection: child limit reached", { maxChildren: o.maxChildren });
      sock.destroy();
      return;
    }
    let child: ChildProcess;
    try {
      child = spawn(o.command, o.args, { stdio: ["pipe", "pipe", "inherit"], env });
    } catch {
      sock.destroy();
      return;
    }
    live.add(child);
    log("session started", { pid: child.pid, children: live.size });
    child.stdout!.pipe(sock);
    if (rest.length > 0) child.stdin!.write(rest);
    sock.pipe(child.stdin!);
    child.stdin!.on("error", () => undefined);
    child.on("error", (e) => {
      log("cannot start the server command", { error: (e as NodeJS.ErrnoException).code ?? "error" });
      sock.destroy();
    });
    child.on("exit", (code, signal) => {
      live.delete(child);
      log("session ended", { pid: child.pid, code, signal, children: live.size });
      sock.end();
    });
    sock.on("error", () => undefined);
    sock.on("close", () => stop(child, grace));
  };
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port,
        children: () => live.size,
        close: () =>
          new Promise<void>((r) => {
            for (const c of live) stop(c, grace);
            server.close(() => r());
          }),
      });
    });
  });
}

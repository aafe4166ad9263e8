// The stdio bridge: serves a stdio MCP server to the gateway over TCP on loopback, one child process
// per connection. The gateway opens one connection per MCP session it creates, so every client session
// gets its own server process: no state shared between clients, a crash ends one session only, and
// nothing needs `pods/attach` or `pods/exec` RBAC (the bridge runs inside the server container).
// Imports only Node built-ins: it is bundled into the single-executable `mcp-bastion-bridge`.
import { type ChildProcess, spawn } from "node:child_process";
import net from "node:net";

export interface BridgeOptions {
  host: string;
  port: number;
  command: string;
  args: string[];
  maxChildren: number;
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
    let child: ChildProcess;
    try {
      child = spawn(o.command, o.args, { stdio: ["pipe", "pipe", "inherit"] });
    } catch {
      sock.destroy();
      return;
    }
    live.add(child);
    log("session started", { pid: child.pid, children: live.size });
    child.stdout!.pipe(sock);
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
  });
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

// Inside-the-namespace half of the API server relay of dev/controlplane/index.ts: listens on a unix
// socket (reachable from the host namespace through the file system) and pipes each connection to
// 127.0.0.1:<port> of this process's own network namespace, where kube-apiserver listens.
// Usage (started by index.ts with nsenter): node netns-relay.ts SOCKET_PATH PORT
import { rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { splice } from "./splice.ts";

const [socketPath, port] = process.argv.slice(2);
if (!socketPath || !port) {
  console.error("usage: netns-relay.ts SOCKET_PATH PORT");
  process.exit(2);
}
rmSync(socketPath, { force: true });
const server = createServer((client) => {
  splice(client, connect(Number(port), "127.0.0.1"));
});
server.listen(socketPath);
for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => process.exit(0));

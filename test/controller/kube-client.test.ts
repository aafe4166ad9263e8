// The operator's Kubernetes client over a kept-alive socket that the peer has closed by the time the next
// request goes out: what an operator sees when the API server restarted while it was paused (a stopped
// container, a long GC pause) and it has not yet read the close. The peer here is a plain node:http
// server that, on the second request of a connection, closes it without answering: the same bytes on
// the wire as a restarted API server, made deterministic. A request that can safely go out twice is sent
// again on a new socket; one that cannot (a create) fails as before, and so does a request whose
// fresh socket fails (the server itself failed: sending again could repeat what it did).
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { KubeClient } from "../../operator/src/runtime/kube.ts";
import { scratchDir } from "../support/index.ts";

let server: Server;
let client: KubeClient;
/** Requests the server received, as "METHOD path #n on connection c". */
const seen: string[] = [];
/** When true, the first request of a connection is dropped too (the server failing, not a stale socket). */
let dropFirst = false;

before(async () => {
  let connections = 0;
  const perSocket = new WeakMap<Socket, { id: number; requests: number }>();
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let s = perSocket.get(req.socket);
    if (!s) {
      s = { id: ++connections, requests: 0 };
      perSocket.set(req.socket, s);
    }
    s.requests++;
    seen.push(`${req.method} ${req.url} #${s.requests} on connection ${s.id}`);
    req.resume();
    req.on("end", () => {
      // The second request of a kept-alive connection finds it closed: no answer, the socket goes.
      if (s.requests >= 2 || dropFirst) {
        req.socket.destroy();
        return;
      }
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x", namespace: "default", resourceVersion: "1" } }));
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const dir = scratchDir("mcp-bastion-kube-client-");
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      // client-node refuses plain HTTP unless TLS verification is off (there is no TLS to verify).
      clusters: [{ name: "c", cluster: { server: `http://127.0.0.1:${port}`, "insecure-skip-tls-verify": true } }],
      users: [{ name: "u", user: { token: "t" } }],
      contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
      "current-context": "x",
    }),
  );
  client = await KubeClient.create({ kubeconfigPath: kubeconfig, maxSockets: 1 });
});

after(() => {
  client?.close();
  server?.close();
  server?.closeAllConnections();
});

const ref = { apiVersion: "v1", plural: "configmaps", namespace: "default", name: "x" };
const cm = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x", namespace: "default", resourceVersion: "1" } };

/** One request that opens a connection and leaves it in the pool, then the one under test on it. */
async function onStaleSocket<T>(call: () => Promise<T>): Promise<{ result: T | Error; requests: string[] }> {
  dropFirst = false;
  client.close(); // a new pool: the warm-up request opens the one connection the next request reuses
  await client.get(ref);
  seen.length = 0;
  const result = await call().catch((e: unknown) => e as Error);
  return { result, requests: [...seen] };
}

test("a GET on a socket the server had closed is sent again on a new socket and answered", async () => {
  const { result, requests } = await onStaleSocket(() => client.get(ref));
  assert.ok(!(result instanceof Error), `the GET failed: ${result}`);
  assert.equal((result as { metadata: { name: string } }).metadata.name, "x");
  assert.deepEqual(
    requests.map((r) => r.replace(/ on connection \d+/, "")),
    ["GET /api/v1/namespaces/default/configmaps/x #2", "GET /api/v1/namespaces/default/configmaps/x #1"],
  );
});

test("PUT, apply and DELETE are sent again too (a second copy cannot do more than the first)", async () => {
  for (const [what, call] of [
    ["PUT", () => client.replace(ref, cm)],
    ["apply", () => client.apply(ref, cm, "test")],
    ["DELETE", () => client.delete(ref)],
  ] as const) {
    const { result, requests } = await onStaleSocket(call);
    assert.ok(!(result instanceof Error), `${what} failed: ${result}`);
    assert.equal(requests.length, 2, `${what}: ${requests.join(", ")}`);
  }
});

test("a POST (create) is not sent again: the caller sees the failure, the server saw it once", async () => {
  const { result, requests } = await onStaleSocket(() => client.create({ apiVersion: "v1", plural: "configmaps", namespace: "default" }, cm));
  assert.ok(result instanceof Error, "the create should have failed");
  assert.match(result.message, /socket hang up|ECONNRESET/);
  assert.equal(requests.length, 1, requests.join(", "));
});

test("a JSON patch (not idempotent) is not sent again", async () => {
  const { result, requests } = await onStaleSocket(() =>
    client.request("PATCH", "/api/v1/namespaces/default/configmaps/x", {
      body: [{ op: "add", path: "/metadata/labels", value: {} }],
      contentType: "application/json-patch+json",
    }),
  );
  assert.ok(result instanceof Error, "the JSON patch should have failed");
  assert.equal(requests.length, 1, requests.join(", "));
});

test("a GET whose new socket fails (the server failing, not a stale socket) is not sent again", async () => {
  client.close();
  dropFirst = true;
  seen.length = 0;
  const result = await client.get(ref).catch((e: unknown) => e as Error);
  dropFirst = false;
  assert.ok(result instanceof Error, "the GET should have failed");
  assert.match(result.message, /socket hang up|ECONNRESET/);
  assert.equal(seen.length, 1, seen.join(", "));
});

import { Client } from "/work/main/node_modules/@modelcontextprotocol/sdk/dist/esm/client/index.js";
import { StreamableHTTPClientTransport } from "/work/main/node_modules/@modelcontextprotocol/sdk/dist/esm/client/streamableHttp.js";
import { SSEClientTransport } from "/work/main/node_modules/@modelcontextprotocol/sdk/dist/esm/client/sse.js";
import { Gateway, parseConfig } from "../../gateway/src/index.ts";
import { startBridge } from "../../gateway/src/bridge.ts";
import { baseConfig, EVERYTHING, tempDir, writeKeys, MemorySink } from "./helpers.ts";
const br = await startBridge({ host: "127.0.0.1", port: 0, command: process.execPath, args: [EVERYTHING, "stdio"], maxChildren: 4 });
const dir = tempDir("keys"); writeKeys(dir, { alice: "alice-key-0123456789", bob: "bob-key-0123456789" });
const sink = new MemorySink();
const gw = new Gateway({ config: parseConfig(baseConfig({ upstream: { transport: "stdio", bridge: { host: "127.0.0.1", port: br.port } }, auth: { apiKeys: { dir } } })), auditSink: sink });
const { port } = await gw.start();
const c = new Client({ name: "t", version: "1" });
await c.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`), { requestInit: { headers: { authorization: "Bearer alice-key-0123456789" } } }));
console.log((await c.listTools()).tools.map((t) => t.name), br.children());
console.log(JSON.stringify(await c.callTool({ name: "echo", arguments: { message: "hi" } })));
try { await c.callTool({ name: "get-env", arguments: {} }); } catch (e) { console.log("denied:", (e as Error).message); }
await c.close();
const c2 = new Client({ name: "t", version: "1" });
const hdr = { authorization: "Bearer bob-key-0123456789" };
await c2.connect(new SSEClientTransport(new URL(`http://127.0.0.1:${port}/sse`), { requestInit: { headers: hdr }, eventSourceInit: { fetch: (u, i) => fetch(u, { ...i, headers: { ...(i?.headers as Record<string,string>), ...hdr } }) } }));
console.log("legacy", (await c2.listTools()).tools.map((t) => t.name).length, br.children());
console.log(JSON.stringify(await c2.callTool({ name: "echo", arguments: { message: "hi2" } })));
try { await c2.callTool({ name: "get-env", arguments: {} }); } catch (e) { console.log("denied:", (e as Error).message); }
await c2.close();
await new Promise((r) => setTimeout(r, 300));
console.log("children after close", br.children());
await gw.close(); await br.close();
console.log(sink.lines.length);

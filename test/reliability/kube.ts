// A tiny HTTPS client for the test control plane (admin client certificate from its kubeconfig),
// so the suite can send hundreds of requests without spawning kubectl each time and can see the
// API server's exact answers (status codes, messages). Also: CRD installation and small waits
// shared by the reliability tests.
import { readFileSync } from "node:fs";
import { Agent, request } from "node:https";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { waitUntil } from "../support/index.ts";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface KubeResponse {
  status: number;
  body: unknown;
  text: string;
}

export interface Kube {
  server: string;
  req(method: string, path: string, body?: unknown, contentType?: string): Promise<KubeResponse>;
  close(): void;
}

interface KubeconfigYaml {
  clusters: { cluster: { server: string; "certificate-authority-data": string } }[];
  users: { user: { "client-certificate-data": string; "client-key-data": string } }[];
}

export function kubeClient(kubeconfigPath: string): Kube {
  const kc = parse(readFileSync(kubeconfigPath, "utf8")) as KubeconfigYaml;
  const cluster = kc.clusters[0]!.cluster;
  const user = kc.users[0]!.user;
  const b64 = (s: string) => Buffer.from(s, "base64");
  const agent = new Agent({
    keepAlive: true,
    maxSockets: 16,
    ca: b64(cluster["certificate-authority-data"]),
    cert: b64(user["client-certificate-data"]),
    key: b64(user["client-key-data"]),
  });
  const server = cluster.server;
  return {
    server,
    req(method, path, body, contentType = "application/json") {
      return new Promise((resolvePromise) => {
        const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
        const r = request(
          `${server}${path}`,
          {
            method,
            agent,
            timeout: 30_000,
            headers: {
              accept: "application/json",
              ...(payload !== undefined ? { "content-type": contentType, "content-length": Buffer.byteLength(payload) } : {}),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              const text = Buffer.concat(chunks).toString("utf8");
              let parsed: unknown = text;
              try {
                parsed = JSON.parse(text);
              } catch {
                // not JSON (rare: proxies, panics); keep the text
              }
              resolvePromise({ status: res.statusCode ?? 0, body: parsed, text });
            });
            res.on("error", (e) => resolvePromise({ status: 0, body: undefined, text: e.message }));
          },
        );
        r.on("timeout", () => r.destroy(new Error("timeout")));
        // Connection errors (API server restarting) are answers with status 0, not exceptions.
        r.on("error", (e) => resolvePromise({ status: 0, body: undefined, text: e.message }));
        if (payload !== undefined) r.end(payload);
        else r.end();
      });
    },
    close() {
      agent.destroy();
    },
  };
}

export const CRD_FILE = join(REPO, "crds", "mcp.bastion.dev_mcpservers.yaml");
export const MCP_PATH = "/apis/mcp.bastion.dev/v1alpha1";

/** The McpServer CRD as users install it: the generated file in crds/ (an empty or missing one is an error: make crds). */
export async function crdManifest(): Promise<unknown> {
  const text = readFileSync(CRD_FILE, "utf8");
  if (text.trim() === "") throw new Error(`${CRD_FILE} is empty: run make crds`);
  return parse(text);
}

/** Creates the CRD (server-side apply) and waits until the API serves it. */
export async function installCrd(kube: Kube, crd: unknown): Promise<void> {
  const name = (crd as { metadata: { name: string } }).metadata.name;
  const r = await kube.req(
    "PATCH",
    `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}?fieldManager=reliability&force=true`,
    crd,
    "application/apply-patch+yaml",
  );
  if (r.status >= 300) throw new Error(`CRD apply failed: HTTP ${r.status} ${r.text.slice(0, 500)}`);
  await waitUntil(
    "the McpServer CRD to be served",
    async () => (await kube.req("GET", `${MCP_PATH}/mcpservers`)).status,
    (s) => s === 200,
    60_000,
    100,
  );
}

export async function ensureNamespace(kube: Kube, name: string, labels: Record<string, string> = {}): Promise<void> {
  const r = await kube.req("POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name, labels } });
  if (r.status >= 300 && r.status !== 409) throw new Error(`namespace ${name}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
}

/** The message of a Kubernetes Status answer (or the raw text). */
export function statusMessage(r: KubeResponse): string {
  const b = r.body as { message?: unknown } | undefined;
  return typeof b === "object" && b && typeof b.message === "string" ? b.message : r.text;
}

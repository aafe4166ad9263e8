// Credentials for the API server, read by @kubernetes/client-node's KubeConfig (kubeconfig files,
// KUBECONFIG, in-cluster service account, exec plugins, OIDC...) in a short-lived child process.
// Why a child process: importing @kubernetes/client-node costs ~90 MB of resident memory (its
// generated API models), which would blow the operator's memory budget for a job done once at start
// (and again only when a token may have rotated). The child prints the credentials as JSON on a
// pipe; nothing is written to disk or logged.
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export interface Credentials {
  server: string;
  ca?: string;
  cert?: string;
  key?: string;
  /** Authorization and other headers (bearer tokens, basic auth). */
  headers: Record<string, string>;
  insecureSkipTlsVerify?: boolean;
  /** True when the credentials include a token that may rotate (re-read them from time to time). */
  rotates: boolean;
  /** In a pod: the projected service account token file, re-read as the kubelet rotates it. */
  tokenFile?: string;
}

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * In a pod (no kubeconfig anywhere): the service account token, CA and the API server address from
 * the environment, read directly, as KubeConfig.loadFromCluster does. No child process, so a token
 * rotation never costs a second Node process inside the pod's memory limit.
 */
export function inClusterCredentials(env: NodeJS.ProcessEnv = process.env, dir = SA_DIR): Credentials | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? "443";
  const tokenFile = join(dir, "token");
  if (!host || !existsSync(tokenFile)) return undefined;
  const server = `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
  const creds: Credentials = { server, headers: bearer(tokenFile), rotates: true, tokenFile };
  const caFile = join(dir, "ca.crt");
  if (existsSync(caFile)) creds.ca = readFileSync(caFile, "utf8");
  return creds;
}

export function bearer(tokenFile: string): Record<string, string> {
  return { Authorization: `Bearer ${readFileSync(tokenFile, "utf8").trim()}` };
}

/** Loads the credentials of the current context of `kubeconfigPath` (or the default chain). */
export function loadCredentials(kubeconfigPath?: string, timeoutMs = 60_000): Promise<Credentials> {
  // The same order as KubeConfig.loadFromDefault: KUBECONFIG, ~/.kube/config, then in-cluster.
  if (!kubeconfigPath && !process.env.KUBECONFIG && !existsSync(join(homedir(), ".kube", "config"))) {
    const inCluster = inClusterCredentials();
    if (inCluster) return Promise.resolve(inCluster);
  }
  const self = fileURLToPath(import.meta.url);
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [self, ...(kubeconfigPath ? [kubeconfigPath] : [])],
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, env: process.env },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`could not load Kubernetes credentials: ${String(stderr).trim().split("\n")[0] || err.message}`));
          return;
        }
        try {
          resolve(JSON.parse(stdout) as Credentials);
        } catch {
          reject(new Error("could not load Kubernetes credentials: unreadable answer from the credentials helper"));
        }
      },
    );
  });
}

const text = (v: unknown): string | undefined => (v === undefined || v === null ? undefined : Buffer.isBuffer(v) ? v.toString("utf8") : String(v));

async function main(path: string | undefined): Promise<void> {
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("no current cluster in the kubeconfig (set KUBECONFIG, pass --kubeconfig, or run in a pod)");
  const opts: { ca?: unknown; cert?: unknown; key?: unknown; headers?: Record<string, unknown>; auth?: string; rejectUnauthorized?: boolean } = {};
  await kc.applyToHTTPSOptions(opts as never);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.headers ?? {})) if (typeof v === "string") headers[k] = v;
  if (opts.auth) headers.Authorization = `Basic ${Buffer.from(opts.auth).toString("base64")}`;
  const user = kc.getCurrentUser();
  const creds: Credentials = {
    server: cluster.server,
    headers,
    rotates: Boolean(headers.Authorization && !opts.auth) || Boolean(user?.exec || user?.authProvider),
  };
  const ca = text(opts.ca);
  const cert = text(opts.cert);
  const key = text(opts.key);
  if (ca) creds.ca = ca;
  if (cert) creds.cert = cert;
  if (key) creds.key = key;
  if (opts.rejectUnauthorized === false || cluster.skipTLSVerify) creds.insecureSkipTlsVerify = true;
  process.stdout.write(JSON.stringify(creds));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main(process.argv[2]).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}

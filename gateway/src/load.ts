// Reads and validates the gateway's config file. Errors name the field at fault; the file's content
// is never echoed (it names secret paths, not secrets, but there is no reason to print it).
import { readFile } from "node:fs/promises";
import { checkFetchUrl } from "./auth/jwt.ts";
import { type GatewayConfig, GatewayConfigSchema } from "../../contract/gateway-config.ts";

export class ConfigError extends Error {}

/** Pure: validates a parsed config object, with semantic checks zod cannot express. */
export function parseConfig(raw: unknown): GatewayConfig {
  const r = GatewayConfigSchema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 5).map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new ConfigError(`invalid gateway config: ${issues.join("; ")}`);
  }
  const c = r.data;
  try {
    new URL(c.publicUrl);
  } catch {
    throw new ConfigError("invalid gateway config: publicUrl: not a URL");
  }
  if (c.upstream.transport !== "stdio") {
    try {
      new URL(c.upstream.url);
    } catch {
      throw new ConfigError("invalid gateway config: upstream.url: not a URL");
    }
  }
  if (!c.auth.apiKeys && !c.auth.jwt && !c.auth.mtls)
    throw new ConfigError("invalid gateway config: auth: configure at least one of apiKeys, jwt, mtls (no anonymous mode)");
  if (c.limits.mode === "redis" && !c.limits.redisUrl) throw new ConfigError('invalid gateway config: limits.redisUrl: required when limits.mode is "redis"');
  const positive: [string, number][] = [
    ["limits.perClient.requestsPerMinute", c.limits.perClient.requestsPerMinute],
    ["limits.perClient.burst", c.limits.perClient.burst],
    ["limits.maxConcurrentRequests", c.limits.maxConcurrentRequests],
    ["limits.maxRequestBytes", c.limits.maxRequestBytes],
    ["limits.requestTimeoutSeconds", c.limits.requestTimeoutSeconds],
  ];
  const optional: [string, number | undefined][] = [
    ["limits.notifications.requestsPerMinute", c.limits.notifications?.requestsPerMinute],
    ["limits.notifications.burst", c.limits.notifications?.burst],
    ["limits.maxConcurrentPerClient", c.limits.maxConcurrentPerClient],
    ["limits.bodyTimeoutSeconds", c.limits.bodyTimeoutSeconds],
    ["limits.maxSessionsPerClient", c.limits.maxSessionsPerClient],
    ["limits.maxHostedSessions", c.limits.maxHostedSessions],
  ];
  for (const [field, v] of optional) if (v !== undefined) positive.push([field, v]);
  for (const [field, v] of positive) if (!(v > 0)) throw new ConfigError(`invalid gateway config: ${field}: must be > 0`);
  if (c.auth.jwt) {
    try {
      if (c.auth.jwt.jwksUri) checkFetchUrl(c.auth.jwt.jwksUri, "auth.jwt.jwksUri");
      else if (!c.auth.jwt.jwksFile) checkFetchUrl(c.auth.jwt.issuer, "auth.jwt.issuer");
    } catch (e) {
      throw new ConfigError(`invalid gateway config: ${(e as Error).message}`);
    }
  }
  return c;
}

export async function loadConfig(file: string): Promise<GatewayConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read gateway config ${file}: ${(e as { code?: string }).code ?? "error"}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ConfigError(`gateway config ${file} is not valid JSON`);
  }
  return parseConfig(raw);
}

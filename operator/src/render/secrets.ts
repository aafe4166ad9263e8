// spec.secrets: one External Secrets `ExternalSecret` per secret (external-secrets.io/v1, the only
// version current External Secrets serves), whose target Secret is mounted as read-only 0400 files
// into the MCP server container. Secret values never become environment variables.
import { ApiObject, type Chart } from "cdk8s";
import { type McpServer, SERVER_PATHS } from "../api/v1alpha1.ts";
import { childNames, volumeName } from "./labels.ts";

/** Reserved in the API (spec.volumes[].mountPath may not touch it). */
export const SECRET_MOUNT_ROOT = SERVER_PATHS.secrets;
/** Owner read-only; readable by the pod's non-root UID through the pod-level fsGroup. */
export const SECRET_FILE_MODE = 0o400;

export interface SecretMount {
  volume: string;
  secretName: string;
  mountPath: string;
}

/** Where each spec.secrets entry appears in the MCP server container. */
export function secretMounts(server: McpServer): SecretMount[] {
  const names = childNames(server);
  return server.spec.secrets.map((s) => ({
    volume: volumeName("secret-", s.name),
    secretName: names.secret(s.name),
    mountPath: `${SECRET_MOUNT_ROOT}/${s.name}`,
  }));
}

/** The Secret the gateway reads API keys from: the user's, or the target of the keys' ExternalSecret. */
export function apiKeysSecretName(server: McpServer): string | undefined {
  const a = server.spec.auth.apiKeys;
  if (!a) return undefined;
  return a.secretRef?.name ?? childNames(server).apiKeys;
}

/** The ExternalSecret objects (plain ApiObjects: cdk8s-plus has no construct for this CRD). */
export function externalSecrets(chart: Chart, server: McpServer): void {
  const names = childNames(server);
  // issue 14: API keys from a secret manager. The remote secret's properties (client names) become the
  // Secret's keys; the refresh interval is how often a key changed in the store reaches the gateway.
  const ak = server.spec.auth.apiKeys?.externalSecret;
  if (ak) {
    new ApiObject(chart, "externalsecret-api-keys", {
      apiVersion: "external-secrets.io/v1",
      kind: "ExternalSecret",
      metadata: { name: names.apiKeys },
      spec: {
        refreshInterval: ak.refreshInterval,
        secretStoreRef: { name: ak.storeRef.name, kind: ak.storeRef.kind },
        target: { name: names.apiKeys, creationPolicy: "Owner", deletionPolicy: "Retain" },
        dataFrom: [{ extract: { key: ak.key } }],
      },
    });
  }
  for (const s of server.spec.secrets) {
    const name = names.secret(s.name);
    new ApiObject(chart, `externalsecret-${s.name}`, {
      apiVersion: "external-secrets.io/v1",
      kind: "ExternalSecret",
      metadata: { name },
      spec: {
        refreshInterval: s.refreshInterval,
        secretStoreRef: { name: s.storeRef.name, kind: s.storeRef.kind },
        // creationPolicy Owner: the Secret is garbage-collected with its ExternalSecret.
        target: { name, creationPolicy: "Owner", deletionPolicy: "Retain" },
        data: [
          {
            secretKey: s.fileName,
            remoteRef: {
              key: s.remoteRef.key,
              ...(s.remoteRef.property ? { property: s.remoteRef.property } : {}),
              ...(s.remoteRef.version ? { version: s.remoteRef.version } : {}),
            },
          },
        ],
      },
    });
  }
}

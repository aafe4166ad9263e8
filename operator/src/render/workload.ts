// The workload: ServiceAccount (no token), Deployment (MCP server + gateway sidecar, pods that pass
// the Pod Security `restricted` profile) and a PodDisruptionBudget when there is more than one pod.
import { ApiObject, type Chart, Duration, JsonPatch, Size } from "cdk8s";
import * as kplus from "cdk8s-plus-27";
import { GATEWAY_PATHS, GATEWAY_PORTS } from "../../../contract/gateway-config.ts";
import { type McpServer, SERVER_PATHS } from "../api/v1alpha1.ts";
import { childNames, selectorLabels, volumeName } from "./labels.ts";
import { tlsSecretName } from "./certificate.ts";
import { jwksFile, relaysSessions } from "./gateway-config.ts";
import { apiKeysSecretName, SECRET_FILE_MODE, secretMounts } from "./secrets.ts";

/** Non-root UID/GID of every container; also the fsGroup that makes 0400 secret files readable. */
export const POD_UID = 65532;
/** Where the stdio bridge executable is installed (shared emptyDir, written by the init container); reserved in the API. */
export const BRIDGE_DIR = SERVER_PATHS.bridge;
export const BRIDGE_BIN = `${BRIDGE_DIR}/mcp-bastion-bridge`;
/** Size limit of the bridge's emptyDir: the executable is a copy of the node binary plus the bundle. */
export const BRIDGE_VOLUME_MEBIBYTES = 256;

export interface ResourceRequirements {
  requests: Record<string, string>;
  limits: Record<string, string>;
}

export const DEFAULT_SERVER_RESOURCES: ResourceRequirements = {
  requests: { cpu: "100m", memory: "128Mi", "ephemeral-storage": "64Mi" },
  limits: { cpu: "1", memory: "512Mi", "ephemeral-storage": "256Mi" },
};
/**
 * V8's heap sized for the gateway container's 256Mi limit (as the chart sizes the operator's): without a
 * cap V8 lets garbage grow toward the machine's memory before collecting (a minute of soak traffic took an
 * uncapped gateway from 141 to 295 MB of RSS, past the limit; with these flags it stayed at 125-133 MB).
 */
export const GATEWAY_NODE_OPTIONS = "--max-old-space-size=160 --max-semi-space-size=4";

export const GATEWAY_RESOURCES: ResourceRequirements = {
  requests: { cpu: "50m", memory: "64Mi", "ephemeral-storage": "32Mi" },
  limits: { cpu: "500m", memory: "256Mi", "ephemeral-storage": "128Mi" },
};
const INIT_RESOURCES: ResourceRequirements = {
  requests: { cpu: "10m", memory: "32Mi", "ephemeral-storage": "32Mi" },
  limits: { cpu: "200m", memory: "128Mi", "ephemeral-storage": "128Mi" },
};

const RESOURCE_NAMES = ["cpu", "memory", "ephemeral-storage"] as const;

/**
 * Resources of the MCP server container. Every request and limit is always set. Where the user
 * gives only one side of a pair, the other side takes the same value (what Kubernetes does for a
 * missing request) instead of a default that could contradict it (request > limit is invalid).
 */
export function serverResources(server: McpServer): ResourceRequirements {
  const req = server.spec.resources?.requests ?? {};
  const lim = server.spec.resources?.limits ?? {};
  const out: ResourceRequirements = { requests: {}, limits: {} };
  for (const r of RESOURCE_NAMES) {
    const q = req[r];
    const l = lim[r];
    out.requests[r] = q ?? l ?? DEFAULT_SERVER_RESOURCES.requests[r]!;
    out.limits[r] = l ?? q ?? DEFAULT_SERVER_RESOURCES.limits[r]!;
  }
  return out;
}

export function isDigestPinned(image: string): boolean {
  return /@sha256:[a-f0-9]{64}$/.test(image);
}

/** The server container's command: stdio programs run under the bridge, which serves them on loopback. */
export function serverCommand(server: McpServer): { command?: string[]; args?: string[] } {
  const { spec } = server;
  if (spec.transport.type === "stdio") {
    // issue 13: the caller's identity in each session process's environment (names from the spec, values from the gateway).
    const identityEnv = Object.entries(spec.authorization.identity?.env ?? {}).flatMap(([fact, name]) => ["--identity-env", `${fact}=${name}`]);
    return { command: [BRIDGE_BIN, "--port", String(GATEWAY_PORTS.stdioBridge), ...identityEnv, "--", ...(spec.command ?? []), ...(spec.args ?? [])] };
  }
  return { ...(spec.command ? { command: [...spec.command] } : {}), ...(spec.args ? { args: [...spec.args] } : {}) };
}

// cdk8s-plus-27 has no `ALL` member in its Capability enum: the literal is what the API expects.
const DROP_ALL = { drop: ["ALL" as kplus.Capability] };
const containerSecurity: kplus.ContainerSecurityContextProps = {
  user: POD_UID,
  group: POD_UID,
  ensureNonRoot: true,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  privileged: false,
  capabilities: DROP_ALL,
};

export interface WorkloadInput {
  server: McpServer;
  gatewayImage: string;
  /** sha256 of gateway.json, as a pod annotation: a policy change rolls the pods. */
  configChecksum: string;
  istio: boolean;
}

export function workload(chart: Chart, input: WorkloadInput): void {
  const { server, gatewayImage } = input;
  const { spec } = server;
  const names = childNames(server);
  const selector = selectorLabels(server);

  new kplus.ServiceAccount(chart, "serviceaccount", { metadata: { name: names.serviceAccount }, automountToken: false });

  const podAnnotations: Record<string, string> = { "mcp.bastion.dev/config-sha256": input.configChecksum };
  const podLabels: Record<string, string> = { ...selector };
  if (input.istio) {
    podLabels["sidecar.istio.io/inject"] = "true";
    // The MCP server's first outbound call must not race the proxy start (REGISTRY_ONLY egress).
    podAnnotations["proxy.istio.io/config"] = '{"holdApplicationUntilProxyStarts":true}';
    // CIDR destinations are ServiceEntries of their own (mesh.ts), never excludeOutboundIPRanges:
    // an excluded range bypasses the proxy on every port.
  }

  const deployment = new kplus.Deployment(chart, "deployment", {
    metadata: { name: names.deployment },
    replicas: spec.replicas,
    // Our own stable selector instead of cdk8s-plus's generated (hashed) one.
    select: false,
    podMetadata: { labels: podLabels, annotations: podAnnotations },
    serviceAccount: kplus.ServiceAccount.fromServiceAccountName(chart, "sa-ref", names.serviceAccount),
    automountServiceAccountToken: false,
    // OnRootMismatch: a large data volume is not re-chowned on every pod start.
    securityContext: { ensureNonRoot: true, user: POD_UID, group: POD_UID, fsGroup: POD_UID, fsGroupChangePolicy: kplus.FsGroupChangePolicy.ON_ROOT_MISMATCH },
    isolate: false,
    spread: false,
  });
  deployment.select(kplus.LabelSelector.of({ labels: selector }));

  const emptyDir = (id: string, name: string, mebibytes = 64) => kplus.Volume.fromEmptyDir(chart, id, name, { sizeLimit: Size.mebibytes(mebibytes) });
  const readOnlySecret = (id: string, name: string, secretName: string, items?: Record<string, { path: string }>) =>
    kplus.Volume.fromSecret(chart, id, kplus.Secret.fromSecretName(chart, `${id}-ref`, secretName), {
      name,
      defaultMode: SECRET_FILE_MODE,
      ...(items ? { items } : {}),
    });

  // ---- gateway sidecar: the only container with ports -------------------------------------------
  const gatewayMounts: kplus.VolumeMount[] = [
    { path: "/tmp", volume: emptyDir("gateway-tmp", "gateway-tmp") },
    {
      path: GATEWAY_PATHS.configDir,
      readOnly: true,
      volume: kplus.Volume.fromConfigMap(chart, "gateway-config", kplus.ConfigMap.fromConfigMapName(chart, "gateway-config-ref", names.gatewayConfig), {
        name: "gateway-config",
        items: { "gateway.json": { path: "gateway.json" } },
      }),
    },
  ];
  if (spec.auth.apiKeys) {
    // Mounted whole (no subPath) so a rotated key appears in place and the gateway reloads it.
    gatewayMounts.push({ path: GATEWAY_PATHS.apiKeysDir, readOnly: true, volume: readOnlySecret("api-keys", "api-keys", apiKeysSecretName(server)!) });
  }
  const jwksRef = spec.auth.jwt?.jwksSecretRef;
  if (jwksRef) {
    const file = jwksFile(jwksRef.key).slice(GATEWAY_PATHS.jwksDir.length + 1);
    gatewayMounts.push({
      path: GATEWAY_PATHS.jwksDir,
      readOnly: true,
      volume: readOnlySecret("jwks", "jwks", jwksRef.name, { [jwksRef.key]: { path: file } }),
    });
  }
  const tlsSecret = tlsSecretName(server);
  if (tlsSecret) {
    // Mounted whole (no subPath): the kubelet swaps a renewed certificate in place and the gateway reloads it.
    gatewayMounts.push({ path: GATEWAY_PATHS.tlsDir, readOnly: true, volume: readOnlySecret("tls", "gateway-tls", tlsSecret) });
  }
  const auditKey = spec.audit.checkpoint?.secretRef;
  if (auditKey) {
    // Only the gateway mounts the signing key: a compromised server container cannot sign a rewritten trail.
    const file = GATEWAY_PATHS.auditKeyFile.slice(GATEWAY_PATHS.auditKeyDir.length + 1);
    gatewayMounts.push({
      path: GATEWAY_PATHS.auditKeyDir,
      readOnly: true,
      volume: readOnlySecret("audit-key", "audit-key", auditKey.name, { [auditKey.key]: { path: file } }),
    });
  }
  deployment.addContainer({
    name: "gateway",
    image: gatewayImage,
    imagePullPolicy: isDigestPinned(gatewayImage) ? kplus.ImagePullPolicy.IF_NOT_PRESENT : kplus.ImagePullPolicy.ALWAYS,
    args: ["gateway", "--config", GATEWAY_PATHS.configFile],
    ports: [
      { name: "mcp", number: GATEWAY_PORTS.mcp, protocol: kplus.Protocol.TCP },
      { name: "admin", number: GATEWAY_PORTS.admin, protocol: kplus.Protocol.TCP },
    ],
    readiness: kplus.Probe.fromHttpGet("/readyz", { port: GATEWAY_PORTS.admin, periodSeconds: Duration.seconds(5) }),
    liveness: kplus.Probe.fromHttpGet("/healthz", { port: GATEWAY_PORTS.admin, periodSeconds: Duration.seconds(10) }),
    securityContext: containerSecurity,
    volumeMounts: gatewayMounts,
    envVariables: {
      NODE_OPTIONS: kplus.EnvValue.fromValue(GATEWAY_NODE_OPTIONS),
      // issue 16: the gateway puts its pod's address into the session ids it hands out.
      ...(relaysSessions(server) ? { MCP_BASTION_POD_IP: kplus.EnvValue.fromFieldRef(kplus.EnvFieldPaths.POD_IP) } : {}),
    },
  });

  // ---- MCP server: listens on loopback/pod port only, never declared as a containerPort ----------
  const serverMounts: kplus.VolumeMount[] = [{ path: SERVER_PATHS.tmp, volume: emptyDir("server-tmp", "tmp") }];
  for (const m of secretMounts(server)) {
    serverMounts.push({ path: m.mountPath, readOnly: true, volume: readOnlySecret(m.volume, m.volume, m.secretName) });
  }
  for (const v of spec.volumes) {
    const vname = volumeName("vol-", v.name);
    const volume = v.configMap
      ? kplus.Volume.fromConfigMap(chart, vname, kplus.ConfigMap.fromConfigMapName(chart, `${vname}-ref`, v.configMap.name), { name: vname })
      : kplus.Volume.fromPersistentVolumeClaim(
          chart,
          vname,
          kplus.PersistentVolumeClaim.fromClaimName(chart, `${vname}-ref`, v.persistentVolumeClaim!.claimName),
          {
            name: vname,
            readOnly: v.readOnly,
          },
        );
    serverMounts.push({ path: v.mountPath, readOnly: v.readOnly, volume });
  }
  const stdio = spec.transport.type === "stdio";
  // The bridge is a Node single executable (~125 MB with Node 24): a 64Mi volume got the pod evicted on a
  // real kubelet ("Usage of EmptyDir volume bridge exceeds the limit"), found by test/cluster/e2e.test.ts.
  const bridge = stdio ? emptyDir("bridge", "bridge", BRIDGE_VOLUME_MEBIBYTES) : undefined;
  if (bridge) serverMounts.push({ path: BRIDGE_DIR, readOnly: true, volume: bridge });
  // UID 65532 has no home directory in most images and the root filesystem is read-only: point HOME
  // at the writable /tmp (npm, uv and pip caches live there) unless the user chose another.
  const env: Record<string, kplus.EnvValue> = { HOME: kplus.EnvValue.fromValue("/tmp") };
  for (const e of spec.env) env[e.name] = kplus.EnvValue.fromValue(e.value);
  deployment.addContainer({
    name: "server",
    image: spec.image,
    imagePullPolicy: isDigestPinned(spec.image) ? kplus.ImagePullPolicy.IF_NOT_PRESENT : kplus.ImagePullPolicy.ALWAYS,
    ...serverCommand(server),
    envVariables: env,
    securityContext: containerSecurity,
    volumeMounts: serverMounts,
  });

  if (bridge) {
    deployment.addInitContainer({
      name: "stdio-bridge",
      image: gatewayImage,
      imagePullPolicy: isDigestPinned(gatewayImage) ? kplus.ImagePullPolicy.IF_NOT_PRESENT : kplus.ImagePullPolicy.ALWAYS,
      args: ["stdio-bridge", "--install", BRIDGE_DIR],
      securityContext: containerSecurity,
      volumeMounts: [{ path: BRIDGE_DIR, volume: bridge }],
    });
  }

  // Escape hatch: cdk8s-plus-27 cannot express a pod-level seccompProfile.
  ApiObject.of(deployment).addJsonPatch(JsonPatch.add("/spec/template/spec/securityContext/seccompProfile", { type: "RuntimeDefault" }));
  ApiObject.of(deployment).addJsonPatch(JsonPatch.add("/spec/template/spec/enableServiceLinks", false));

  if (spec.replicas > 1) {
    // Replicas on different nodes where the scheduler can, so one node going away never takes the
    // whole server down (preferred, not required: a one-node cluster still schedules them all).
    ApiObject.of(deployment).addJsonPatch(
      JsonPatch.add("/spec/template/spec/affinity", {
        podAntiAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            { weight: 100, podAffinityTerm: { topologyKey: "kubernetes.io/hostname", labelSelector: { matchLabels: selector } } },
          ],
        },
      }),
    );
    // cdk8s-plus-27 has no PodDisruptionBudget construct.
    new ApiObject(chart, "pdb", {
      apiVersion: "policy/v1",
      kind: "PodDisruptionBudget",
      metadata: { name: names.pdb },
      spec: { maxUnavailable: 1, selector: { matchLabels: selector } },
    });
  }
}

type Json = Record<string, unknown>;

/**
 * Finishes the synthesized Deployment as plain JSON, where cdk8s-plus-27 gets in the way:
 * - resources: it only takes typed Cpu/Size values (ephemeral-storage in whole GiB) and its L1
 *   serializer drops plain quantity strings, so the user's own quantities are set here;
 * - the `cdk8s.io/metadata.addr` pod label it always adds (a hash of the construct path) is
 *   removed: our selector is the stable server label set.
 */
export function finishDeployment(deployment: Json, server: McpServer): void {
  const template = deployment.spec as { template: { metadata: { labels?: Record<string, string> }; spec: Json } };
  const labels = template.template.metadata.labels;
  if (labels) delete labels["cdk8s.io/metadata.addr"];
  const pod = template.template.spec;
  const byName: Record<string, ResourceRequirements> = { gateway: GATEWAY_RESOURCES, server: serverResources(server), "stdio-bridge": INIT_RESOURCES };
  for (const key of ["initContainers", "containers"]) {
    for (const c of (pod[key] as Json[] | undefined) ?? []) {
      const r = byName[String(c.name)];
      if (r) c.resources = { requests: { ...r.requests }, limits: { ...r.limits } };
    }
  }
}

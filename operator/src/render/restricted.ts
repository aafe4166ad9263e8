// A pure checker of the Pod Security Standards `restricted` profile (which includes `baseline`), as
// the PodSecurity admission plugin applies it. Used by the checklist ("least-privilege pod") and by
// tests over every rendered pod; a real admission test on the API server backs it up.
// Rules: https://kubernetes.io/docs/concepts/security/pod-security-standards/

import { list, type Obj, obj } from "./json.ts";

const ALLOWED_VOLUME_TYPES = new Set(["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"]);
const SAFE_SYSCTLS = new Set([
  "kernel.shm_rmid_forced",
  "net.ipv4.ip_local_port_range",
  "net.ipv4.ip_unprivileged_port_start",
  "net.ipv4.tcp_syncookies",
  "net.ipv4.ping_group_range",
  "net.ipv4.ip_local_reserved_ports",
  "net.ipv4.tcp_keepalive_time",
  "net.ipv4.tcp_fin_timeout",
  "net.ipv4.tcp_keepalive_intvl",
  "net.ipv4.tcp_keepalive_probes",
]);
const SELINUX_TYPES = new Set(["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"]);

function seccompOk(p: Obj): boolean | undefined {
  const type = obj(p.seccompProfile).type;
  if (type === undefined) return undefined;
  return type === "RuntimeDefault" || type === "Localhost";
}

/**
 * Violations of `restricted` in a pod spec, each naming the container or field. Empty means it passes.
 * `annotations` are the pod's (AppArmor may be set there).
 */
export function restrictedViolations(podSpec: Obj, annotations: Record<string, string> = {}): string[] {
  const out: string[] = [];
  const pod = obj(podSpec);
  const psc = obj(pod.securityContext);
  for (const f of ["hostNetwork", "hostPID", "hostIPC"]) if (pod[f] === true) out.push(`${f} must not be true`);

  for (const v of list(pod.volumes)) {
    const types = Object.keys(v).filter((k) => k !== "name");
    for (const t of types) if (!ALLOWED_VOLUME_TYPES.has(t)) out.push(`volume ${String(v.name)}: type ${t} is not allowed`);
  }
  for (const s of list(psc.sysctls)) if (!SAFE_SYSCTLS.has(String(s.name))) out.push(`sysctl ${String(s.name)} is not allowed`);
  if (obj(psc.windowsOptions).hostProcess === true) out.push("securityContext.windowsOptions.hostProcess must not be true");
  if (psc.runAsUser === 0) out.push("securityContext.runAsUser must not be 0");
  const podSeccomp = seccompOk(psc);
  if (podSeccomp === false) out.push("securityContext.seccompProfile.type must be RuntimeDefault or Localhost");
  if (obj(psc.appArmorProfile).type === "Unconfined") out.push("securityContext.appArmorProfile.type must not be Unconfined");
  const podSe = obj(psc.seLinuxOptions);
  if (!SELINUX_TYPES.has(String(podSe.type ?? ""))) out.push("securityContext.seLinuxOptions.type is not allowed");
  if (podSe.user !== undefined || podSe.role !== undefined) out.push("securityContext.seLinuxOptions user/role must not be set");

  const containers = [
    ...list(pod.initContainers).map((c) => ["initContainer", c] as const),
    ...list(pod.containers).map((c) => ["container", c] as const),
    ...list(pod.ephemeralContainers).map((c) => ["ephemeralContainer", c] as const),
  ];
  if (list(pod.containers).length === 0) out.push("pod has no containers");
  for (const [kind, c] of containers) {
    const where = `${kind} ${String(c.name)}`;
    const sc = obj(c.securityContext);
    if (sc.privileged === true) out.push(`${where}: privileged must not be true`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${where}: allowPrivilegeEscalation must be false`);
    const nonRoot = sc.runAsNonRoot ?? psc.runAsNonRoot;
    if (nonRoot !== true) out.push(`${where}: runAsNonRoot must be true (pod or container)`);
    if (sc.runAsUser === 0) out.push(`${where}: runAsUser must not be 0`);
    const cSeccomp = seccompOk(sc);
    if (cSeccomp === false || (cSeccomp === undefined && podSeccomp !== true)) {
      out.push(`${where}: seccompProfile must be RuntimeDefault or Localhost (pod or container)`);
    }
    const caps = obj(sc.capabilities);
    const drop = Array.isArray(caps.drop) ? caps.drop : [];
    if (!drop.includes("ALL")) out.push(`${where}: capabilities.drop must include ALL`);
    const add = Array.isArray(caps.add) ? caps.add : [];
    for (const a of add) if (a !== "NET_BIND_SERVICE") out.push(`${where}: capability ${String(a)} must not be added`);
    for (const p of list(c.ports)) if (p.hostPort !== undefined && p.hostPort !== 0) out.push(`${where}: hostPort must not be set`);
    if (sc.procMount !== undefined && sc.procMount !== "Default") out.push(`${where}: procMount must be Default`);
    if (obj(sc.windowsOptions).hostProcess === true) out.push(`${where}: windowsOptions.hostProcess must not be true`);
    if (obj(sc.appArmorProfile).type === "Unconfined") out.push(`${where}: appArmorProfile.type must not be Unconfined`);
    const se = obj(sc.seLinuxOptions);
    if (!SELINUX_TYPES.has(String(se.type ?? ""))) out.push(`${where}: seLinuxOptions.type is not allowed`);
    if (se.user !== undefined || se.role !== undefined) out.push(`${where}: seLinuxOptions user/role must not be set`);
  }
  for (const [k, v] of Object.entries(annotations)) {
    if (k.startsWith("container.apparmor.security.beta.kubernetes.io/") && v !== "runtime/default" && !v.startsWith("localhost/")) {
      out.push(`annotation ${k}: AppArmor profile ${v} is not allowed`);
    }
  }
  return out;
}

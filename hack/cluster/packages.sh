#!/usr/bin/env bash
# Installs the Debian packages a real single-node cluster needs (test/cluster): the container runtime
# (containerd, runc), the CNI plugins, the netfilter tools kube-proxy and kube-router call (iptables,
# conntrack, ipset), dockerd to build images from the unmodified Dockerfile, debootstrap for the Debian
# base rootfs and busybox-static for tiny probe images. Needs root (apt-get). Idempotent: a second run
# only checks that the commands are there. Prints "system" when everything was already there, "built" after
# installing (the set-up report's words).
#
# No daemon is started: a policy-rc.d refuses service starts while apt-get runs, so dockerd does not come up
# with a docker0 bridge in the host's network namespace. test/cluster starts containerd inside the cluster's
# own namespaces, and hack/cluster/images.sh starts a private dockerd (no bridge, no iptables) only to build.
set -euo pipefail
PKGS=(containerd runc containernetworking-plugins iptables conntrack ipset docker.io busybox-static debootstrap)
have_all() {
  for c in containerd containerd-shim-runc-v2 runc iptables iptables-restore conntrack ipset dockerd debootstrap; do
    command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || return 1
  done
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] && [ -x /bin/busybox ]
}
if have_all; then echo system; exit 0; fi
if [ "$(id -u)" != 0 ]; then echo "hack/cluster/packages.sh: needs root to apt-get install ${PKGS[*]}" >&2; exit 1; fi
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# mcp-bastion hack/cluster/packages.sh: no service starts during this install\nexit 101\n' > "$policy"
  chmod +x "$policy"
  made_policy=1
fi
trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
# apt's lock is shared with anyone else installing: wait for it rather than fail.
apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }
apt_get update -qq >&2
apt_get install -y -qq --no-install-recommends "${PKGS[@]}" >&2
have_all || { echo "hack/cluster/packages.sh: packages installed but a command is still missing" >&2; exit 1; }
echo built

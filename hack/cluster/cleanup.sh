#!/usr/bin/env bash
# Removes everything a test/cluster node made on this machine, whatever state it is in (called by its
# stop(), and by its watchdog when the Node process that started it died without stopping it):
#   1. every process in the node's cgroups (/mcpb-ID in each cgroup hierarchy: node components,
#      containerd's shims, every container) or in its network namespace, killed until none is left;
#   2. the cgroups, bottom-up;
#   3. the network namespace (its iptables rules, ipsets, bridge and conntrack entries go with it; the pods'
#      namespaces and every container mount lived in the node's private mount namespace, gone with step 1);
#   4. its directory.
# Usage: cleanup.sh ID [DIR]
set -uo pipefail
id=${1:?usage: cleanup.sh ID [DIR]}
dir=${2:-}
name=mcpb-$id
netns_file=/run/netns/$name

hierarchies() { for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do [ -d "$h$name" ] && echo "$h$name"; done; }
netns_ino=$( [ -e "$netns_file" ] && stat -L -c %i "$netns_file" 2>/dev/null || true)
members() {
  for h in $(hierarchies); do find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null; done
  if [ -n "$netns_ino" ]; then
    for p in /proc/[0-9]*; do
      [ "$(stat -L -c %i "$p/ns/net" 2>/dev/null)" = "$netns_ino" ] && echo "${p#/proc/}"
    done
  fi
}
for _ in $(seq 1 150); do
  pids=$(members | grep -v "^$$\$" | sort -u)
  [ -z "$pids" ] && break
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null
  sleep 0.2
done
[ -n "${pids:-}" ] && echo "cleanup.sh: processes still alive in $name: $pids" >&2

for h in $(hierarchies); do
  for _ in $(seq 1 25); do
    find "$h" -depth -type d -exec rmdir {} + 2>/dev/null
    [ -d "$h" ] || break
    sleep 0.2
  done
  [ -d "$h" ] && echo "cleanup.sh: cgroup $h could not be removed" >&2
done

if [ -e "$netns_file" ]; then
  ip netns delete "$name" 2>/dev/null || { umount -l "$netns_file" 2>/dev/null; rm -f "$netns_file"; }
fi

if [ -n "$dir" ] && [ -d "$dir" ]; then
  # Nothing should be mounted there (all mounts were in the node's private mount namespace); if a mount
  # leaked to this namespace anyway, detach it rather than delete through it.
  grep -F " $dir/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
  for _ in $(seq 1 10); do rm -rf "$dir" 2>/dev/null && break; sleep 0.5; done
  [ -d "$dir" ] && echo "cleanup.sh: could not remove $dir" >&2
fi
exit 0

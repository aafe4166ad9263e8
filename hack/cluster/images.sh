#!/usr/bin/env bash
# Builds the container images test/cluster runs, all locally (no registry is reachable, and none is needed),
# and caches each as an image archive in ~/.cache/mcp-bastion/images keyed by everything it is made from.
# A warm run only checks the keys. Prints NAME=ARCHIVE lines; `ctr images import` loads the archives.
#
#   pause     the pod sandbox process (hack/cluster/pause.c, built by hack/cluster/build.sh)
#   busybox   Debian's busybox-static: probes (nc, nslookup) and tiny test pods
#   coredns   CoreDNS built by hack/cluster/build.sh, the cluster's kube-dns
#   node-base Debian bookworm (debootstrap, from Debian's packages) + Node 24 from the npm `node` package and
#             npm from the npm registry, imported into a private dockerd as node:24-bookworm and
#             node:24-bookworm-slim, the base images the project's Dockerfile names
#   operator  the project's unmodified Dockerfile, built by that dockerd (mcp-bastion.local/mcp-bastion:dev)
#   everything  @modelcontextprotocol/server-everything on the Node base (test/cluster/images/everything)
#   filesystem  @modelcontextprotocol/server-filesystem on the Node base (test/cluster/images/filesystem)
#   redis     Debian's redis-server (the package hack/deps-gateway.sh unpacks) and the libraries it links,
#             nothing else: the shared rate limiter of test/cluster/replicas.test.ts, run as 65532
#
# The private dockerd runs only while something is built: its own socket and configuration, data root in the
# cache (layer cache for warm builds), no bridge, no iptables rules, its own mount namespace and cgroup parent
# (so builds with different caches, e.g. two HOMEs, can run at the same time); build
# steps use the host network (they fetch npm packages from the registry, as the host does).
#
# Usage: images.sh NAME...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${MCP_BASTION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-bastion}
images="$cache/images"
mkdir -p "$images"
# One build at a time (they share the dockerd data root), but an archive already in the cache is found without
# waiting for another image's build: archives appear whole (written to .tmp, then renamed), so `missing` is
# checked once without the lock and again under it.
exec 8>"$images/.lock"
locked=
missing() {
  [ -f "$1" ] && return 1
  [ -n "$locked" ] || { flock 8; locked=1; }
  [ ! -f "$1" ]
}

# archive REF OUT ROOTFS ENTRYPOINT_JSON USER: a one-layer image in the `docker save` format, which
# `ctr images import` and `docker load` both read.
archive() {
  local ref=$1 out=$2 rootfs=$3 entrypoint=$4 user=$5 work
  work=$(mktemp -d)
  tar -C "$rootfs" --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -cf "$work/layer.tar" .
  local diffid cfg cfgid
  diffid=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  mkdir "$work/$diffid" && mv "$work/layer.tar" "$work/$diffid/layer.tar"
  cfg=$(printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":%s,"User":"%s","Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$entrypoint" "$user" "$diffid")
  cfgid=$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)
  printf '%s' "$cfg" > "$work/$cfgid.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cfgid" "$ref" "$diffid" > "$work/manifest.json"
  tar -C "$work" -cf "$out.tmp" manifest.json "$cfgid.json" "$diffid"
  mv "$out.tmp" "$out"
  rm -rf "$work"
}

key() { cat "$@" | sha256sum | cut -c1-16; }
# Bump when a change of this script changes what the node base or a docker-built image contains (their keys
# do not include the script itself, so unrelated edits do not rebuild them).
FORMAT=1

build_pause() {
  local bin; bin=$("$here/build.sh")
  local out="$images/pause-$(key "$bin/pause" "$0").tar"
  if missing "$out"; then
    local root; root=$(mktemp -d); cp "$bin/pause" "$root/pause"
    archive mcp-bastion.local/pause:1 "$out" "$root" '["/pause"]' "65535:65535"
    rm -rf "$root"
  fi
  echo "pause=$out"
}

build_busybox() {
  local out="$images/busybox-$(key /bin/busybox "$0").tar"
  if missing "$out"; then
    local root; root=$(mktemp -d); mkdir -p "$root/bin" "$root/tmp" "$root/etc"
    cp /bin/busybox "$root/bin/busybox"
    for a in sh cat echo env id ls nc nslookup ps sleep sort test true false wc grep head tail printf stat timeout kill; do ln -s busybox "$root/bin/$a"; done
    printf 'root:x:0:0:root:/:/bin/sh\nnonroot:x:65532:65532:nonroot:/:/bin/sh\n' > "$root/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
    archive mcp-bastion.local/busybox:1 "$out" "$root" '["/bin/sh"]' ""
    rm -rf "$root"
  fi
  echo "busybox=$out"
}

build_coredns() {
  local bin; bin=$("$here/build.sh")
  local out="$images/coredns-$(key "$bin/coredns" "$0").tar"
  if missing "$out"; then
    local root; root=$(mktemp -d); cp "$bin/coredns" "$root/coredns"
    archive mcp-bastion.local/coredns:1 "$out" "$root" '["/coredns"]' ""
    rm -rf "$root"
  fi
  echo "coredns=$out"
}

root=$(cd "$here/../.." && pwd)

# Debian's redis-server as hack/deps-gateway.sh provides it (unpacked from the .deb into the cache, or the
# system's own when one is installed), with exactly the shared libraries it links (ldd): no shell, no package
# manager. Checked by running it in the image's root before the archive is written.
build_redis() {
  local printed bin libpath=
  printed=$(MCP_BASTION_SETUP_LOG= "$root/hack/deps-gateway.sh" redis-server | sed -n 's/^redis-server=//p')
  [ -n "$printed" ] || { echo "images.sh: hack/deps-gateway.sh printed no redis-server" >&2; exit 1; }
  bin=$printed
  # deps-gateway's wrapper points at the unpacked package; the image takes the binary itself.
  if [ "$printed" = "$cache/bin-gateway/redis-server" ]; then
    bin="$cache/debroot/usr/bin/redis-server"
    libpath="$cache/debroot/usr/lib/x86_64-linux-gnu:$cache/debroot/usr/lib/aarch64-linux-gnu"
  fi
  local libs
  libs=$(LD_LIBRARY_PATH=$libpath ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
  [ -n "$libs" ] || { echo "images.sh: ldd found no libraries for $bin" >&2; exit 1; }
  # shellcheck disable=SC2086
  local out="$images/redis-$(key "$bin" $libs "$0").tar"
  if missing "$out"; then
    local r; r=$(mktemp -d)
    chmod 0755 "$r"
    mkdir -p "$r/usr/bin" "$r/etc" "$r/tmp"
    chmod 1777 "$r/tmp"
    cp "$bin" "$r/usr/bin/redis-server"
    # Each library at the path the loader looks in (the dynamic loader at its absolute path, the rest in the
    # multiarch directory, named by the name the binary asks for), symlinks resolved.
    local lib multi
    multi=$(dirname "$(echo "$libs" | grep -m1 'libc\.so')")
    for lib in $libs; do
      case $lib in
        */ld-linux*) mkdir -p "$r$(dirname "$lib")" && cp -L "$lib" "$r$lib" ;;
        *) mkdir -p "$r$multi" && cp -L "$lib" "$r$multi/$(basename "$lib")" ;;
      esac
    done
    printf 'root:x:0:0:root:/:/usr/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/usr/sbin/nologin\n' > "$r/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' > "$r/etc/group"
    chroot --userspec=65532:65532 "$r" /usr/bin/redis-server --version >/dev/null ||
      { echo "images.sh: redis-server does not run in its image root" >&2; rm -rf "$r"; exit 1; }
    archive mcp-bastion.local/redis:1 "$out" "$r" '["/usr/bin/redis-server"]' "65532:65532"
    rm -rf "$r"
  fi
  echo "redis=$out"
}

NPM_VERSION=11.19.1
# The Node binary of the npm `node` package the project installs (package-lock.json pins its version).
node_bin() {
  local b="$root/node_modules/node/bin/node"
  [ -x "$b" ] || { echo "images.sh: $b missing: run make install (npm ci) first" >&2; exit 1; }
  echo "$b"
}

build_node_base() {
  local node; node=$(node_bin)
  local k; k=$(key "$node" /etc/ssl/certs/ca-certificates.crt <(echo "$FORMAT $NPM_VERSION bookworm minbase ca-certificates make"))
  local out="$images/node-base-$k.tar"
  if missing "$out"; then
    local work; work=$(mktemp -d)
    echo "images.sh: debootstrap bookworm (Debian's packages) for the Node base image" >&2
    local mirror
    mirror=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | grep -v security | head -1 | awk "{print \$2}" || true)
    debootstrap --variant=minbase --include=ca-certificates,make bookworm "$work/rootfs" "${mirror:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1 ||
      { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    local r="$work/rootfs"
    rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*
    install -m 0755 "$node" "$r/usr/local/bin/node"
    # npm from the npm registry (the official images ship it the same way: /usr/local/lib/node_modules/npm).
    (cd "$work" && npm pack --silent "npm@$NPM_VERSION" >/dev/null)
    mkdir -p "$r/usr/local/lib/node_modules/npm"
    tar -xzf "$work"/npm-*.tgz -C "$r/usr/local/lib/node_modules/npm" --strip-components=1
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$r/usr/local/bin/npm"
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$r/usr/local/bin/npx"
    # Trust what this machine trusts (a TLS-inspecting proxy's CA, if any), for npm inside builds.
    cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
    mkdir -p "$r/usr/local/etc" && echo "cafile=/etc/ssl/certs/ca-certificates.crt" > "$r/usr/local/etc/npmrc"
    tar -C "$r" --numeric-owner -cf "$out.tmp" . && mv "$out.tmp" "$out"
    rm -rf "$work"
  fi
  echo "node-base=$out"
}

# ---- the private dockerd -------------------------------------------------------------------------------
dockerd_pid=
docker_dir=
start_dockerd() {
  [ -n "$dockerd_pid" ] && return
  docker_dir=$(mktemp -d)
  mkdir -p "$cache/docker"
  # Its own configuration file, so nothing machine-wide is read or written: not /etc/docker/daemon.json (whose
  # settings could conflict with these flags), not the identity key Debian's dockerd 20.10 would otherwise
  # create at /etc/docker/key.json (two builds with different caches starting at once on a fresh machine
  # would race on it). Everything else is keyed already: the data root and the lock by the cache, socket,
  # exec root and pidfile by this run's directory, the cgroup parent by this script's pid; the shims'
  # sockets in /run/containerd/s are named by a hash that includes the socket of this dockerd's containerd.
  # (Later dockerds have no such key and refuse the setting: it is given only to one that knows it.)
  if grep -qa 'deprecated-key-path' "$(command -v dockerd)"; then
    printf '{"deprecated-key-path": "%s"}\n' "$cache/docker/key.json" >"$docker_dir/daemon.json"
  else
    echo '{}' >"$docker_dir/daemon.json"
  fi
  unshare --mount --propagation private dockerd --config-file "$docker_dir/daemon.json" --data-root "$cache/docker" --exec-root "$docker_dir/exec" \
    --host "unix://$docker_dir/docker.sock" --pidfile "$docker_dir/docker.pid" --bridge=none --iptables=false \
    --ip6tables=false --ip-masq=false --storage-driver=overlay2 --cgroup-parent="/mcpb-imagebuild-$$" \
    >"$docker_dir/dockerd.log" 2>&1 &
  dockerd_pid=$!
  # A signal ends the script through its EXIT trap too, so an interrupted build leaves no dockerd behind.
  trap stop_dockerd EXIT
  trap 'exit 130' INT TERM
  for _ in $(seq 1 120); do
    docker_cmd version >/dev/null 2>&1 && return
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.5
  done
  echo "images.sh: dockerd did not start:" >&2; tail -20 "$docker_dir/dockerd.log" >&2; exit 1
}
# Runs from the EXIT trap: nothing in it may fail the script (set -e is still on).
stop_dockerd() {
  [ -n "$dockerd_pid" ] || return 0
  kill "$dockerd_pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$dockerd_pid" 2>/dev/null || true
  # Its build containers' cgroups (dockerd removes the containers, not their parent); this script's own
  # (another images.sh with another cache may be building at the same time).
  for h in /sys/fs/cgroup/*/mcpb-imagebuild-$$ /sys/fs/cgroup/mcpb-imagebuild-$$; do
    for _ in $(seq 1 20); do
      [ -d "$h" ] || break
      { find "$h" -name cgroup.procs -exec cat {} + | xargs -r kill -KILL; } 2>/dev/null || true
      find "$h" -depth -type d -exec rmdir {} + 2>/dev/null || sleep 0.5
    done
  done
  rm -rf "$docker_dir" || true
  dockerd_pid=
}
# Debian's client matches Debian's dockerd (a newer client elsewhere on PATH may not speak its API).
docker_cmd() { DOCKER_HOST="unix://$docker_dir/docker.sock" DOCKER_BUILDKIT=0 /usr/bin/docker "$@"; }

load_node_base() {
  local base; base=$(build_node_base | cut -d= -f2-)
  local id; id=$(basename "$base" .tar)
  if [ "$(docker_cmd image inspect -f '{{index .Config.Labels "mcp-bastion.base"}}' node:24-bookworm 2>/dev/null)" != "$id" ]; then
    docker_cmd import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["node"]' --change "LABEL mcp-bastion.base=$id" "$base" node:24-bookworm >&2
    docker_cmd tag node:24-bookworm node:24-bookworm-slim
  fi
}

# docker_image NAME REF CONTEXT DOCKERFILE KEYFILES...: builds REF with the private dockerd and saves it.
docker_image() {
  local name=$1 ref=$2 context=$3 dockerfile=$4; shift 4
  local base; base=$(build_node_base | cut -d= -f2-)
  local k; k=$(key "$dockerfile" "$@" <(echo "$FORMAT $base $ref"))
  local out="$images/$name-$k.tar"
  if missing "$out"; then
    start_dockerd
    load_node_base
    echo "images.sh: docker build $ref" >&2
    # DOCKER_BUILDKIT=0: the classic builder ignores the `# syntax=` line, which would make BuildKit fetch a
    # frontend image from a registry this machine cannot reach.
    docker_cmd build --network host -t "$ref" -f "$dockerfile" "$context" >"$images/$name.build.log" 2>&1 ||
      { tail -30 "$images/$name.build.log" >&2; exit 1; }
    docker_cmd save -o "$out.tmp" "$ref" && mv "$out.tmp" "$out"
    # Older archives: keep the five used most recently (a used archive is touched below, so the order is
    # least recently used): other checkouts on this machine, at other commits, may still use them, and
    # deleting theirs would make each rebuild the other's.
    ls -t "$images/$name"-*.tar | tail -n +7 | xargs -r rm -f
    docker_cmd image prune -f >/dev/null || true
  fi
  touch "$out"
  echo "$name=$out"
}

# The files the Dockerfile copies (its .dockerignore lists them): the image's cache key.
operator_inputs() {
  (cd "$root" && git ls-files -co --exclude-standard -- package.json package-lock.json tsconfig.json tsconfig.build.json \
    Makefile contract operator/src gateway/src cli/bin cli/src hack/tools/build-bridge.sh hack/tools/bridge-entry.ts .dockerignore |
    sort | while read -r f; do [ -f "$f" ] && echo "$root/$f"; done)
}

for name in "$@"; do
  case $name in
    pause) build_pause ;;
    redis) build_redis ;;
    busybox) build_busybox ;;
    coredns) build_coredns ;;
    node-base) build_node_base ;;
    # shellcheck disable=SC2046
    operator) docker_image operator mcp-bastion.local/mcp-bastion:dev "$root" "$root/Dockerfile" $(operator_inputs) ;;
    everything | filesystem)
      d="$root/test/cluster/images/$name"
      # shellcheck disable=SC2046
      docker_image "$name" "mcp-bastion.local/$name:dev" "$d" "$d/Dockerfile" $(find "$d" -type f | sort) ;;
    *) echo "images.sh: unknown image $name" >&2; exit 2 ;;
  esac
done

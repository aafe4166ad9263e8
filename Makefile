# Two entry points do everything on a fresh machine: `make demo` and `make test`.
# Node 24 comes from the npm registry's `node` package (node_modules/.bin is put first on PATH);
# the control plane is built from Go modules into ~/.cache/mcp-bastion by hack/controlplane/build.sh.
SHELL := /bin/bash
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
# test/cluster (a real node, root only) runs with `make test-cluster` until it is wired into `make test`.
TEST_FILES ?= $(shell find test -name '*.test.ts' -not -path 'test/cluster/*' | sort)
CLUSTER_TEST_FILES ?= $(shell find test/cluster -name '*.test.ts' | sort)
TEST_CONCURRENCY ?= 2

.PHONY: install controlplane cluster-deps test-cluster tools deps-gateway chart typecheck lint crds test unit reliability reliability-long demo bench bench-render bench-gateway bench-reconcile build clean

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.installed

controlplane:
	@hack/controlplane/build.sh

# A real single-node cluster (test/cluster): Debian packages (containerd, runc, CNI plugins, iptables, dockerd,
# debootstrap...), kubelet/kube-proxy/kube-scheduler/kube-router/CoreDNS from Go modules, and the images
# (Node base from debootstrap + npm `node`, the operator from the Dockerfile, MCP servers), the External Secrets
# Operator (Go module), all cached in
# ~/.cache/mcp-bastion. Needs root.
cluster-deps: install controlplane tools
	@hack/cluster/packages.sh
	@hack/cluster/build.sh >/dev/null
	@hack/cluster/build-eso.sh >/dev/null
	@hack/cluster/images.sh pause busybox coredns operator everything filesystem >/dev/null

# The real-cluster tests alone: the cluster's own lifecycle and the end-to-end proofs on it.
test-cluster: cluster-deps
	@test/run-tests.sh 1 $(CLUSTER_TEST_FILES)

# helm, kube-score, checkov and Argo CD's Lua engine for test/ship (cached in ~/.cache/mcp-bastion/tools).
tools:
	@hack/tools/install.sh >/dev/null

# redis-server (shared rate limiter test) and nginx (gateway benchmark) from Debian's packages, unpacked
# into ~/.cache/mcp-bastion (no root, no daemons).
deps-gateway:
	@hack/deps-gateway.sh >/dev/null

# Regenerate the chart's copies: CRDs from crds/, RBAC from the controller, Argo CD snippets.
chart: install
	node hack/tools/sync-chart.ts

typecheck: install
	tsc -p tsconfig.json

lint: install
	biome lint .

crds: install
	node operator/bin/mcp-bastion.js crd > crds/mcp.bastion.dev_mcpservers.yaml
	node hack/tools/sync-chart.ts

build: install
	rm -rf dist && tsc -p tsconfig.build.json

# Every test: typecheck, lint, then all node:test files (some start a real control plane).
# RELIABILITY_FIGURES_DIR: where test/reliability files leave their figures for the summary table.
test: install controlplane tools deps-gateway typecheck lint
	@export RELIABILITY_FIGURES_DIR=$$(mktemp -d); test/run-tests.sh $(TEST_CONCURRENCY) $(TEST_FILES); s=$$?; rm -rf "$$RELIABILITY_FIGURES_DIR"; exit $$s

unit: install
	@export RELIABILITY_FIGURES_DIR=$$(mktemp -d); test/run-tests.sh $(TEST_CONCURRENCY) $(TEST_FILES); s=$$?; rm -rf "$$RELIABILITY_FIGURES_DIR"; exit $$s

# The reliability suite alone (hostile input, faults, soak of 1 minute) and its long variant (soak 10 minutes).
reliability: install controlplane
	@hack/reliability.sh

reliability-long: install controlplane
	@hack/reliability.sh --long

demo: install controlplane
	node operator/bin/mcp-bastion.js demo $(DEMO_ARGS)

bench: install controlplane
	node bench/render/main.ts
	node bench/reconcile/main.ts

# Renderer benchmark alone (no control plane needed): 1,000 McpServers, median/p99/total/RSS.
bench-render: install
	node bench/render/main.ts

# Gateway benchmark: server-everything direct vs through the gateway vs through nginx, 1 and 8 connections.
bench-gateway: install deps-gateway
	node bench/gateway/main.ts

# Controller benchmark against the local control plane: 1,000 McpServers until Reconciled, reconciles/s,
# API requests per reconcile, writes of a full resync with nothing changed, peak RSS, CPU shares.
bench-reconcile: install controlplane
	node bench/reconcile/main.ts $(BENCH_ARGS)

clean:
	rm -rf dist node_modules .cache

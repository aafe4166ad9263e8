# Two entry points do everything on a fresh machine: `make demo` and `make test`.
# Node 24 comes from the npm registry's `node` package (node_modules/.bin is put first on PATH);
# the control plane is built from Go modules into ~/.cache/mcp-bastion by hack/controlplane/build.sh.
# `make help` lists the targets: the `## ` comment after a target is its line there.
SHELL := /bin/bash
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
# Every test file, test/cluster's real node included (it needs root, as `make test` does for its Debian packages).
TEST_FILES ?= $(shell find test -name '*.test.ts' | sort)
CLUSTER_TEST_FILES ?= $(shell find test/cluster -name '*.test.ts' | sort)
TEST_CONCURRENCY ?= 2
# The set-up steps of `make test`, run by a second make with this many jobs: the network- and disk-bound steps
# (npm, apt, debootstrap, image builds) overlap the CPU-bound Go builds. Their order is in the prerequisites.
SETUP_JOBS ?= 3
.DEFAULT_GOAL := help

# The set-up report of `make test`: each set-up step (npm ci, control plane, tools, deps-gateway) appends
# what it did and how long it took to this file, test/run-tests.sh prints it before the summary line and
# removes it. Only for a `make test` run, and passed to the set-up steps only (never to the tests, which call
# the same scripts again).
ifneq ($(filter test,$(MAKECMDGOALS)),)
SETUP_LOG := $(shell mktemp -t mcp-bastion-setup.XXXXXX)
endif
SETUP_ENV = $(if $(SETUP_LOG),MCP_BASTION_SETUP_LOG=$(SETUP_LOG))

.PHONY: help install setup controlplane certmanager cluster-packages cluster-binaries cluster-images cluster-deps test-cluster tools peers deps-gateway otelcol trivy-crd chart typecheck lint crds crds-upstream test unit reliability reliability-long demo demo-controlplane bench bench-render bench-gateway bench-reconcile bench-reconcile-scale build clean

help: ## list the targets, one line each
	@awk -F':.*## ' '/^[a-z][a-z-]*:.*## / { printf "  make %-17s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

node_modules/.installed: package.json package-lock.json
	@t0=$$SECONDS; npm ci --no-audit --no-fund && \
	  { [ -z "$(SETUP_LOG)" ] || printf 'npm packages (npm ci)\tbuilt\t%s\n' $$((SECONDS - t0)) >>"$(SETUP_LOG)"; }
	@touch $@

install: node_modules/.installed ## npm packages, Node 24 included (npm ci when package-lock.json changed)

# build.sh is timed here, not inside: its own text is part of its cache key (an edit there rebuilds).
controlplane: ## build etcd, kube-apiserver, kube-controller-manager, kubectl into ~/.cache/mcp-bastion (once)
	@t0=$$(date +%s); dir=$$(hack/controlplane/build.sh) || exit $$?; echo "$$dir"; \
	if [ -n "$(SETUP_LOG)" ]; then how=cache; [ "$$(stat -c %Y "$$dir/.stamp")" -lt "$$t0" ] || how=built; \
	  printf 'control plane (%s)\t%s\t%s\n' "$${dir##*/}" $$how $$(( $$(date +%s) - t0 )) >>"$(SETUP_LOG)"; fi

# cert-manager's controller from its Go module (hack/certmanager) for test/tls: it issues certificates to
# McpServers against the local control plane as a local process (no pods needed for issuance).
certmanager: ## build the cert-manager controller (Go module) and copy its CRDs into ~/.cache/mcp-bastion (once)
	@$(SETUP_ENV) hack/certmanager/build.sh >/dev/null

# A real single-node cluster (test/cluster): Debian packages (containerd, runc, CNI plugins, iptables, dockerd,
# debootstrap...), kubelet/kube-proxy/kube-scheduler/kube-router/CoreDNS and the External Secrets Operator from
# Go modules, and the images (Node base from debootstrap + npm `node`, the operator from the Dockerfile, MCP
# servers), all cached in ~/.cache/mcp-bastion by hack/cluster/setup.sh. Needs root. Three targets so that a
# parallel make overlaps them: the node binaries wait for the control plane (they reuse its compiled packages),
# the images only for npm (the Node base takes node_modules' Node), the packages (dockerd, debootstrap) and
# deps-gateway (the redis image is Debian's redis-server as that unpacks it; two unpacks at once would race).
cluster-packages:
	@$(SETUP_ENV) hack/cluster/setup.sh packages
cluster-binaries: controlplane cluster-packages
	@$(SETUP_ENV) hack/cluster/setup.sh binaries
cluster-images: install cluster-packages deps-gateway
	@$(SETUP_ENV) hack/cluster/setup.sh images

cluster-deps: ## the real node: Debian packages, node binaries, External Secrets, images (root, cached)
	@$(MAKE) --no-print-directory -j$(SETUP_JOBS) cluster-binaries cluster-images

# The real-cluster tests alone: the cluster's own lifecycle and the end-to-end proofs on it.
test-cluster: cluster-deps ## the real single-node cluster tests: its lifecycle and the end-to-end proofs on it
	@test/run-tests.sh 1 $(CLUSTER_TEST_FILES)

# helm, kube-score, checkov and Argo CD's Lua engine for test/ship (cached in ~/.cache/mcp-bastion/tools).
tools: ## build/install helm, kube-score, checkov, luahealth into ~/.cache/mcp-bastion/tools (once)
	@$(SETUP_ENV) hack/tools/install.sh >/dev/null

# MCP peers that are not npm packages (the Python SDK `mcp` 2.x in a virtualenv), for the protocol-era
# tests of the gateway (cached in ~/.cache/mcp-bastion/peers).
peers: ## install the Python MCP SDK (PyPI `mcp` 2.x) into a virtualenv in ~/.cache/mcp-bastion/peers (once)
	@$(SETUP_ENV) hack/peers/install.sh >/dev/null

# redis-server (shared rate limiter test) and nginx (gateway benchmark) from Debian's packages, unpacked
# into ~/.cache/mcp-bastion (no root, no daemons).
deps-gateway: ## unpack redis-server and nginx from Debian's packages into ~/.cache/mcp-bastion (once)
	@$(SETUP_ENV) hack/deps-gateway.sh >/dev/null

# The real Istio, External Secrets and cert-manager CRDs (Go modules, versions in hack/crds/versions), cached in
# ~/.cache/mcp-bastion: tests and the demo install them into the control plane so the API server validates
# the third-party objects the renderer emits (dev/crds.ts finds them, and names this target when they are absent).
crds-upstream: ## download the real Istio, External Secrets, cert-manager CRDs into ~/.cache/mcp-bastion (once)
	@$(SETUP_ENV) hack/crds/install.sh >/dev/null

# The OpenTelemetry Collector (OTLP receiver + file exporter) the audit-export test sends to, built from its
# Go modules (hack/otelcol) into ~/.cache/mcp-bastion.
otelcol: ## build the OpenTelemetry Collector for the audit-export test into ~/.cache/mcp-bastion (once)
	@$(SETUP_ENV) hack/otelcol/build.sh >/dev/null

# Trivy Operator's VulnerabilityReport CRD from its Go module (hack/trivy), installed by the tests that
# write scanner-shaped reports into the local control plane.
trivy-crd: ## fetch Trivy Operator's VulnerabilityReport CRD from its Go module into ~/.cache/mcp-bastion (once)
	@$(SETUP_ENV) hack/trivy/crd.sh >/dev/null

# Regenerate the chart's copies: CRDs from crds/, RBAC from the controller, Argo CD snippets.
chart: install ## regenerate the chart's copies (CRDs, RBAC, Argo CD snippets)
	node hack/tools/sync-chart.ts

typecheck: install ## tsc over sources, tests and benchmarks
	tsc -p tsconfig.json

lint: install ## biome lint, and the formatter as a check (a file not as `biome format --write .` leaves it fails)
	biome lint . && biome format .

crds: install ## regenerate crds/ from the zod schema (and the chart's copy)
	node cli/bin/mcp-bastion.js crd > crds/mcp.bastion.dev_mcpservers.yaml
	node hack/tools/sync-chart.ts

build: install ## compile contract, operator, gateway and CLI into dist/ (what the image runs)
	rm -rf dist && tsc -p tsconfig.build.json

# Every set-up step of `make test` (each cached; the first run on a machine builds them).
setup: install controlplane tools peers deps-gateway certmanager crds-upstream otelcol trivy-crd cluster-binaries cluster-images

# Every test: set-up, typecheck and lint (in parallel), then all node:test files (some start a real control
# plane, test/cluster a real node).
# RELIABILITY_FIGURES_DIR: where test/reliability files leave their figures for the summary table.
test: ## everything: set-up, typecheck, lint, every test (ends with "N passed, N failed")
	@$(MAKE) --no-print-directory -j$(SETUP_JOBS) $(if $(SETUP_LOG),SETUP_LOG=$(SETUP_LOG)) setup typecheck lint
	@export RELIABILITY_FIGURES_DIR=$$(mktemp -d) MCP_BASTION_SETUP_REPORT=$(SETUP_LOG); test/run-tests.sh $(TEST_CONCURRENCY) $(TEST_FILES); s=$$?; rm -rf "$$RELIABILITY_FIGURES_DIR"; exit $$s

# The inner loop: only the tests that need nothing but Node and npm packages (test/unit.ts chooses them
# from what each test imports; MCP_BASTION_UNIT=1 makes the control plane and hack's installers refuse).
unit: install ## fast inner loop: renderer, schema, policy and gateway tests that need no control plane or built tool
	@export MCP_BASTION_UNIT=1; files=$$(node test/unit.ts) && test/run-tests.sh $(TEST_CONCURRENCY) $$files

# The reliability suite alone (hostile input, faults, soak of 1 minute) and its long variant (soak 10 minutes).
reliability: install controlplane ## the reliability suite (hostile input, faults, 1-minute soak) with its figures
	@hack/reliability.sh

reliability-long: install controlplane ## the same with a 10-minute soak and bigger batches
	@hack/reliability.sh --long

# The demo on a real single-node cluster (dev/cluster, root): the operator from our image installed with the
# Helm chart, the examples whose images we build Ready, one MCP tool call that succeeds and one refused, and
# how to look around. DEMO_ARGS: --once or --exit-after-seconds N (default: until Ctrl-C).
demo: cluster-deps ## a real single-node cluster: operator (Helm), examples Ready, an MCP call allowed and one refused (root)
	@node dev/cluster/demo.ts $(DEMO_ARGS)

# Without root: the operator and the examples on a bare control plane (no kubelet: pods stay Pending).
demo-controlplane: install controlplane crds-upstream ## no root needed: operator + examples on a bare control plane (pods stay Pending)
	node cli/bin/mcp-bastion.js demo $(DEMO_ARGS)

bench: install controlplane ## renderer and controller benchmarks
	node bench/render/main.ts
	node bench/reconcile/main.ts

# Renderer benchmark alone (no control plane needed): 1,000 McpServers, median/p99/total/RSS.
bench-render: install ## renderer benchmark: 1,000 McpServers (no control plane)
	node bench/render/main.ts

# Gateway benchmark: direct vs through the gateway (every check on) vs a bare Node proxy vs nginx, at 1 and
# 8 connections, in interleaved rounds; against a canned MCP server (the proxy is the bottleneck) and
# server-everything (the realistic case). BENCH_ARGS="--rounds N --requests N --seconds S --everything-rounds N".
bench-gateway: install deps-gateway ## gateway benchmark: direct vs gateway vs bare Node proxy vs nginx
	node bench/gateway/main.ts $(BENCH_ARGS)

# Controller benchmark against the local control plane: 1,000 McpServers until Reconciled, reconciles/s,
# API requests per reconcile, writes of a full resync with nothing changed, peak RSS, CPU shares.
bench-reconcile: install controlplane ## controller benchmark: 1,000 McpServers until Reconciled
	node bench/reconcile/main.ts $(BENCH_ARGS)

# The scale curve (opt-in: an hour or more on a busy 2-core machine): 1,000, 3,000 and 10,000 McpServers, each
# on a fresh control plane, with the chart's V8 flags; prints each size's figures and the curve.
bench-reconcile-scale: install controlplane ## controller benchmark at 1,000, 3,000 and 10,000 McpServers (long)
	node bench/reconcile/main.ts --servers 1000,3000,10000 $(BENCH_ARGS)

clean: ## remove dist/ and node_modules/ (the ~/.cache/mcp-bastion builds stay)
	rm -rf dist node_modules .cache

# syntax=docker/dockerfile:1
# One image, both commands: `mcp-bastion operator` (the controller) and `mcp-bastion gateway` (the
# sidecar the operator puts into every MCP pod), plus /app/bin/mcp-bastion-bridge, the stdio bridge
# as a single executable that `mcp-bastion stdio-bridge --install DIR` copies into stdio server pods.
#
# Runs as the numeric non-root user 65532 and writes nothing to its root filesystem, so the operator
# Deployment and the rendered gateway sidecars run it with readOnlyRootFilesystem: true.
# test/ship/image.test.ts runs the same steps without a Docker engine (the layout below, then the
# entrypoints with the source tree absent).
# ---- build: TypeScript -> dist/, and the bridge executable ---------------------------------------
FROM node:24-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
# The marker tells the Makefile that dependencies are installed (make build depends on them).
RUN npm ci --no-audit --no-fund && touch node_modules/.installed
COPY tsconfig.json tsconfig.build.json Makefile ./
COPY contract ./contract
COPY operator/src ./operator/src
COPY gateway/src ./gateway/src
COPY cli/src ./cli/src
RUN make build
COPY hack/tools/build-bridge.sh hack/tools/bridge-entry.ts ./hack/tools/
RUN hack/tools/build-bridge.sh /out/mcp-bastion-bridge "$(command -v node)"

# ---- production dependencies only, no install scripts ------------------------------------------
FROM node:24-bookworm AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime -------------------------------------------------------------------------------------
FROM node:24-bookworm-slim
# The package managers are not needed at run time: less to patch, less to abuse.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /opt/yarn-* /usr/local/bin/yarn /usr/local/bin/yarnpkg
ENV NODE_ENV=production
WORKDIR /app
# Everything owned by root and read-only for the runtime user.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY cli/bin ./cli/bin
COPY --from=build /out/mcp-bastion-bridge ./bin/mcp-bastion-bridge
USER 65532:65532
HEALTHCHECK NONE
ENTRYPOINT ["node", "/app/cli/bin/mcp-bastion.js"]
CMD ["--help"]

# syntax=docker/dockerfile:1
# drp-server: a drop-in replacement for rpardini/docker-registry-proxy.
#
#   docker build -t drp .
#   docker run -d --name drp -p 3128:3128 \
#     -v drp_cache:/docker_mirror_cache -v drp_ca:/ca \
#     -e REGISTRIES="ghcr.io quay.io registry.k8s.io" drp
#
# Same port (3128), volumes (/docker_mirror_cache, /ca) and environment variables as the
# original; see docs/configuration.md. The container starts as root only so that
# image/entrypoint.sh can hand root-owned volumes (the original's, or host directories dockerd
# created) to the unprivileged `node` user (uid 1000); drp-server itself runs as that user.
# `docker stop` sends SIGTERM; SHUTDOWN_TIMEOUT=8s fits docker's default 10 s stop timeout
# (raise both together: `-e SHUTDOWN_TIMEOUT=60s --stop-timeout 70`).
#
# NODE_IMAGE: any Debian-based image with Node.js 24 on PATH, npm, and util-linux (setpriv);
# e.g. a base bootstrapped locally where no registry can be reached (scripts/image-smoke.sh
# does that, builds this file on it and runs the image with podman).

ARG NODE_IMAGE=node:24-bookworm-slim
ARG PNPM_VERSION=12.4.2

# ---- build: install everything, compile the three packages ------------------------------
FROM ${NODE_IMAGE} AS build
ARG PNPM_VERSION
WORKDIR /src
RUN npm install --global --no-fund --no-audit "pnpm@${PNPM_VERSION}"
# Manifests first, so the dependency layer is reused while only sources change.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc tsconfig.base.json ./
COPY packages/core/package.json packages/core/
COPY packages/ca/package.json packages/ca/
COPY packages/server/package.json packages/server/
RUN pnpm install --frozen-lockfile
COPY packages/core/tsconfig.json packages/core/
COPY packages/core/src packages/core/src
COPY packages/ca/tsconfig.json packages/ca/
COPY packages/ca/src packages/ca/src
COPY packages/server/tsconfig.json packages/server/
COPY packages/server/src packages/server/src
COPY packages/server/bin packages/server/bin
RUN pnpm run build

# ---- runtime deps: production dependencies only, workspace packages linked ---------------
FROM ${NODE_IMAGE} AS deps
ARG PNPM_VERSION
WORKDIR /app
RUN npm install --global --no-fund --no-audit "pnpm@${PNPM_VERSION}"
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
COPY packages/core/package.json packages/core/
COPY packages/ca/package.json packages/ca/
COPY packages/server/package.json packages/server/
RUN pnpm install --frozen-lockfile --prod --ignore-scripts
COPY --from=build /src/packages/core/dist packages/core/dist
COPY --from=build /src/packages/ca/dist packages/ca/dist
COPY --from=build /src/packages/server/dist packages/server/dist
COPY --from=build /src/packages/server/bin packages/server/bin

# ---- runtime: node, the app, nothing else ------------------------------------------------
FROM ${NODE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="drp" \
      org.opencontainers.image.description="A caching proxy for container registries; drop-in replacement for rpardini/docker-registry-proxy" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/drp-proxy/drp" \
      org.opencontainers.image.url="https://github.com/drp-proxy/drp" \
      org.opencontainers.image.documentation="https://github.com/drp-proxy/drp/blob/main/docs/operations.md"
# MALLOC_ARENA_MAX=2: glibc's per-thread arenas cost drp 10-15 MB of RSS under 16 concurrent
# downloads for no measurable speed (docs/performance.md).
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    PORT=3128 \
    CACHE_DIR=/docker_mirror_cache \
    CA_DIR=/ca \
    SHUTDOWN_TIMEOUT=8s
WORKDIR /app
COPY --from=deps --chown=root:root /app /app
COPY --chown=root:root --chmod=0755 image/entrypoint.sh /app/image/entrypoint.sh
RUN mkdir -p /docker_mirror_cache /ca \
 && chown 1000:1000 /docker_mirror_cache /ca \
 && chmod 0700 /ca
VOLUME ["/docker_mirror_cache", "/ca"]
EXPOSE 3128
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3128)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/app/image/entrypoint.sh"]

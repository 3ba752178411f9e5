# syntax=docker/dockerfile:1

# ---- build: compile TypeScript and the dashboard to dist/ -------------------
FROM node:24-bookworm-slim AS build
# node-gyp builds the vfio-user native addon (src/vfio-user/native).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY src/vfio-user/native ./src/vfio-user/native
# Scripts off: `prepare` would build sources not copied yet; the addon is built explicitly.
RUN npm ci --ignore-scripts --no-audit --no-fund && npm run build:native
COPY tsconfig.json tsconfig.build.json ./
COPY spec-tables ./spec-tables
COPY src ./src
COPY ui ./ui
# The TypeScript and the dashboard (ui/ -> dist/ui/, vite). The runtime reads the compiled
# JavaScript, the JSON it imports and the dashboard's assets; not maps, not declarations.
RUN npm run build && find dist -name '*.map' -delete -o -name '*.d.ts' -delete

# ---- runtime: production dependencies + compiled output only ---------------
FROM node:24-bookworm-slim AS runtime
# tini reaps zombies and forwards SIGTERM/SIGINT to node (graceful shutdown).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    LOG_LEVEL=info
COPY package.json package-lock.json ./
# No compiler here: the addon built in the build stage is copied instead of rebuilt.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
# Only what the service reads: dist/src (the code), dist/spec-tables (the tables it imports),
# dist/ui (the dashboard), the native addon, package.json (type and version) and the
# production dependencies.
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/spec-tables ./dist/spec-tables
COPY --from=build /app/dist/ui ./dist/ui
COPY --from=build /app/src/vfio-user/native/build/Release/vmmr_vfio_user.node ./src/vfio-user/native/build/Release/
# A writable state directory for the unprivileged user: VMMR_STATE_FILE=/var/lib/vmmr/state.json.
RUN mkdir -p /var/lib/vmmr && chown node:node /var/lib/vmmr
VOLUME ["/var/lib/vmmr"]
USER node
EXPOSE 8080
# No curl in the slim image: probe with node's built-in fetch.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/cli.js", "serve"]

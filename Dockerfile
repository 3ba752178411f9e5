# syntax=docker/dockerfile:1

# ---- build: compile TypeScript and the dashboard to dist/ -------------------
FROM node:24-bookworm-slim AS build
# npm ci builds the vfio-user native addon (src/vfio-user/native) with node-gyp.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY tsconfig.json tsconfig.build.json ./
COPY spec-tables ./spec-tables
COPY src ./src
# npm ci's prepare script builds the dashboard (ui/ -> dist/ui/, vite), which imports from
# spec-tables/ and src/: all three are in place before it runs.
COPY ui ./ui
RUN npm ci --no-audit --no-fund
RUN npm run build

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
COPY --from=build /app/dist ./dist
COPY --from=build /app/src/vfio-user/native/build/Release/vmmr_vfio_user.node ./src/vfio-user/native/build/Release/
COPY spec-tables ./spec-tables
USER node
EXPOSE 8080
# No curl in the slim image: probe with node's built-in fetch.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/cli.js", "serve"]

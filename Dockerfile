# wa serve in a container (README "Deploying"). Two stages: the build stage has the compiler toolchain
# better-sqlite3 needs (no prebuilt binary for every Node: it compiles) and TypeScript; the runtime stage
# has neither, runs as a non-root user under tini, and keeps everything that matters on the /data volume.
# test/e2e/container-recipe.test.ts runs this file's build steps (scripts/container-build.sh) and its
# runtime settings (ENV, USER, the /data volume, ENTRYPOINT, CMD, HEALTHCHECK) without a container engine.

FROM node:20-bookworm-slim AS build
RUN apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
COPY scripts/container-build.sh ./scripts/container-build.sh
RUN sh scripts/container-build.sh /src /app

FROM node:20-bookworm-slim
# tini as PID 1: it forwards SIGTERM/SIGINT to wa and reaps zombies (node as PID 1 ignores signals it has
# no handler for, https://github.com/krallin/tini#why-tini).
RUN apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*
# A fixed uid, so a volume prepared elsewhere (chown 10001) matches; /data 0700 like every wa directory.
RUN groupadd --system --gid 10001 wa \
  && useradd --system --uid 10001 --gid wa --home-dir /data --no-create-home --shell /usr/sbin/nologin wa \
  && mkdir -p /data && chown wa:wa /data && chmod 0700 /data
COPY --from=build /app /app
ENV NODE_ENV=production WA_DB=/data/wa.db PORT=8080
USER wa
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# /healthz only, never /readyz: a platform that waits for the check before stopping the old deployment
# (Railway, a Kubernetes rolling update) would otherwise wait for sessions the old one still holds.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["tini", "--", "node", "/app/bin/wa.js"]
CMD ["serve"]

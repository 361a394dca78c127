# One image for the mysqlmq operator and the broker.
#
#   docker build -t ghcr.io/mysqlmq/mysqlmq:0.1.0 .
#
#   operator: node /app/dist/operator/main.js [--leader-elect]   (the default command; see helm/)
#   broker:   node /app/dist/broker/main.js --routing FILE --host 0.0.0.0 --port 8080
#             (the operator's broker Deployment sets this command)
#   MariaDB pod sidecars: the agent (node /app/dist/agent/main.js) and, when enabled,
#             /usr/bin/prometheus-mysqld-exporter (Debian's package)
#
# Runs as the non-root user 1000:1000 (numeric, so runAsNonRoot can verify it) and needs no
# writable root filesystem (the chart mounts an emptyDir at /tmp). Tests never build this image:
# the test kubelet runs dist/operator/main.js and dist/broker/main.js from the repository.

ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: all dependencies, TypeScript compile, then drop the dev dependencies -------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json \
 && npm prune --omit=dev --ignore-scripts \
 && find dist -name "*.map" -delete

# --- runtime ----------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
LABEL org.opencontainers.image.title="mysqlmq" \
      org.opencontainers.image.description="mysqlmq operator and broker: a sharded message queue on MariaDB primary/standby shards" \
      org.opencontainers.image.source="https://github.com/mysqlmq/mysqlmq" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
# The agent of a MariaDB pod (dist/agent/main.js) streams and seeds physical copies: mariadb-backup
# and mbstream, and mariadbd for the seed's offline step, from Debian 12 (MariaDB 10.11, the version
# of the default mariadb:10.11 server image; a copy needs the server's major version). The opt-in
# metrics sidecar of a MariaDB pod (spec.monitoring.mysqldExporter) runs Debian 12's
# mysqld_exporter 0.14, /usr/bin/prometheus-mysqld-exporter, from this image too. A point-in-time
# restore (mq-agent restore --point-in-time) replays archived binlogs with mariadb-binlog piped
# into the mariadb client, both from mariadb-client.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mariadb-backup mariadb-client mariadb-server-core prometheus-mysqld-exporter \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build --chown=0:0 /app/package.json ./package.json
COPY --from=build --chown=0:0 /app/node_modules ./node_modules
COPY --from=build --chown=0:0 /app/dist ./dist
COPY --chown=0:0 crds ./crds
# Files owned by root and read-only for the runtime user: the process cannot modify its own code.
USER 1000:1000
EXPOSE 8080 8081
CMD ["node", "/app/dist/operator/main.js"]

#!/usr/bin/env bash
# The project's entry points on a fresh Debian machine with Node 20, as root:
#   bash hack/dev.sh run [--embedded] [--once]
#       the operator on a cluster: with a reachable one ($KUBECONFIG or ~/.kube/config answering
#       /readyz) it installs the CRD there and runs the operator in the foreground; without one it
#       starts an embedded Kubernetes (built once, about 5 minutes the first time), runs the
#       operator, applies examples/basic.yaml, waits until Ready and prints how to use it
#   bash hack/dev.sh test         install what is needed, then lint, type-check and run every test
#   bash hack/dev.sh demo-local   the data plane alone (mariadbd + brokers, no Kubernetes), in seconds
set -euo pipefail
cd "$(dirname "$0")/.."

install_deps() {
  if ! command -v mariadbd >/dev/null 2>&1; then
    echo "==> installing mariadb-server (tests start their own mariadbd; the default instance is not used)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mariadb-server
  fi
  if ! command -v kubectl >/dev/null 2>&1; then
    echo "==> installing kubectl (Debian's kubernetes-client)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends kubernetes-client
  fi
  if ! command -v faketime >/dev/null 2>&1; then
    echo "==> installing faketime (a test runs a broker whose clock is 60 s behind)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends faketime
  fi
  if ! command -v mariadb-backup >/dev/null 2>&1; then
    echo "==> installing mariadb-backup (rebuilds and backups: physical copies of an instance)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mariadb-backup
  fi
  if ! command -v mariadb-binlog >/dev/null 2>&1; then
    echo "==> installing mariadb-client (point-in-time restore replays archived binlogs with mariadb-binlog)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mariadb-client
  fi
  if ! command -v prometheus-mysqld-exporter >/dev/null 2>&1; then
    echo "==> installing prometheus-mysqld-exporter (the MariaDB pods' metrics sidecar)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus-mysqld-exporter
  fi
  # npm ci wipes node_modules: only when package-lock.json changed since the last one.
  local sum stamp=node_modules/.dev-sh-lock.sha256
  sum="$(sha256sum package-lock.json | cut -d' ' -f1)"
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]]; then
    echo "==> installing npm packages"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$sum" >"$stamp"
  fi
}

cmd="${1:-}"
shift || true
case "$cmd" in
  run)
    install_deps
    npm run build --silent
    # install.sh (the cached kube-apiserver build) runs from kube-run only when no cluster answers.
    exec npx tsx tools/demo/kube-run.ts "$@"
    ;;
  demo-local)
    install_deps
    npm run build --silent
    exec npx tsx tools/demo/local.ts "$@"
    ;;
  test)
    install_deps
    # The end-to-end tests run on an embedded kube-apiserver built from Debian's source package:
    # about 5 minutes the first time on 2 cores, cached outside the repository afterwards.
    bash hack/kube/install.sh
    npm run build --silent
    npm run typecheck --silent
    npm run lint --silent
    npm test
    ;;
  *)
    echo "usage: bash hack/dev.sh run [--embedded] [--once] | test | demo-local" >&2
    exit 2
    ;;
esac

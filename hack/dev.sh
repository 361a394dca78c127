#!/usr/bin/env bash
# The project's two entry points on a fresh Debian machine with Node 20, as root:
#   bash hack/dev.sh run    install what is needed, then start the demo
#   bash hack/dev.sh test   install what is needed, then lint, type-check and run every test
set -euo pipefail
cd "$(dirname "$0")/.."

install_deps() {
  if ! command -v mariadbd >/dev/null 2>&1; then
    echo "==> installing mariadb-server (tests start their own mariadbd; the default instance is not used)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mariadb-server
  fi
  echo "==> installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
}

case "${1:-}" in
  run)
    install_deps
    npm run build --silent
    exec node dist/demo/main.js
    ;;
  test)
    install_deps
    # The end-to-end tests run on an embedded kube-apiserver built from Debian's source package:
    # about 5 minutes the first time on 2 cores, cached outside the repository afterwards.
    bash hack/kube/install.sh
    npm run build --silent
    npm run lint --silent
    npm test
    ;;
  *)
    echo "usage: bash hack/dev.sh run|test" >&2
    exit 2
    ;;
esac

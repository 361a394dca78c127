#!/usr/bin/env bash
# Starts a throw-away Kubernetes control plane on loopback for tests:
# etcd + kube-apiserver (RBAC on) + kube-controller-manager. There is no
# kubelet and no kube-proxy: Pods are created by the controllers but stay
# Pending, and nothing is ever sent to the service range.
#
# Usage: hack/kube/start.sh [STATE_DIR]        (default: a new mktemp dir)
# Env:   MQ_KUBE_ETCD_PORT, MQ_KUBE_API_PORT   fixed ports (default: free ones)
#        MQ_KUBE_CACHE                         where install.sh put the binaries
# Out:   $STATE/kubeconfig (admin, group system:masters), $STATE/pids,
#        $STATE/*.log; the last line on stdout is KUBECONFIG=$STATE/kubeconfig
# Stop:  hack/kube/stop.sh STATE_DIR
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="${MQ_KUBE_CACHE:-/var/cache/mq-operator/kube}/bin"
for b in kube-apiserver kube-controller-manager; do
  [[ -x "$BIN/$b" ]] || { echo "missing $BIN/$b: run hack/kube/install.sh first" >&2; exit 1; }
done
command -v etcd >/dev/null || { echo "missing etcd: run hack/kube/install.sh first" >&2; exit 1; }

STATE="${1:-$(mktemp -d /tmp/mq-kube.XXXXXX)}"
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"
if [[ -s "$STATE/pids" ]]; then
  echo "$STATE/pids exists: already running? run hack/kube/stop.sh $STATE first" >&2
  exit 1
fi

log() { echo "[kube/start] $*" >&2; }

# A port nobody listens on, below the kernel's ephemeral range: a port in that
# range can be taken between this check and the bind by any outgoing
# connection's local end or any listen(0) (CI saw the apiserver fail with
# "address already in use" on 34898). Racy only against another cluster
# picking the same port out of ~12,000 at the same moment.
EPHEMERAL_LOW="$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
free_port() {
  local p span=$((EPHEMERAL_LOW - 20000))
  ((span > 1000)) || span=12000
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % span))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "no free port found" >&2; return 1
}
ETCD_PORT="${MQ_KUBE_ETCD_PORT:-$(free_port)}"
ETCD_PEER_PORT="$(free_port)"   # etcd always listens for peers; keep it off 2380
API_PORT="${MQ_KUBE_API_PORT:-$(free_port)}"

# --- keys and certificates (kept if the state dir is reused) ----------------
cd "$STATE"
if [[ ! -f ca.crt ]]; then
  log "generating keys and certificates in $STATE"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=mq-kube-ca" \
    -keyout ca.key -out ca.crt 2>/dev/null
  # kubectl/Go clients check the SAN only (no CN fallback), so 127.0.0.1 must
  # be an IP SAN. The in-cluster names are there for completeness.
  cat >apiserver.ext <<'EOF'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout apiserver.key -out apiserver.csr 2>/dev/null
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -days 3650 -extfile apiserver.ext -out apiserver.crt 2>/dev/null
  # Service-account tokens: the controller-manager signs with the private key,
  # the apiserver verifies with the public one.
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  # Static token for the test harness: user admin in system:masters (RBAC
  # grants that group everything). Tests create their own least-privilege
  # ServiceAccounts/Roles to check the operator's RBAC.
  echo "$(openssl rand -hex 24),admin,admin,system:masters" >tokens.csv
  chmod 600 ./*.key tokens.csv
fi
TOKEN="$(cut -d, -f1 tokens.csv)"

cat >kubeconfig <<EOF
apiVersion: v1
kind: Config
clusters:
- name: mq-kube
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 ca.crt)
users:
- name: admin
  user:
    token: $TOKEN
contexts:
- name: mq-kube
  context: {cluster: mq-kube, user: admin, namespace: default}
current-context: mq-kube
EOF
chmod 600 kubeconfig
KC=(kubectl --kubeconfig "$STATE/kubeconfig")

# --- processes ---------------------------------------------------------------
: >pids
started() { echo "$1 $2" >>pids; }   # "PID NAME", read by stop.sh
fail() {
  log "FAILED: $*"
  for f in etcd kube-apiserver kube-controller-manager; do
    [[ -f "$f.log" ]] && { echo "--- tail $STATE/$f.log" >&2; tail -n 15 "$f.log" >&2; }
  done
  "$HERE/stop.sh" "$STATE" >&2 || true
  exit 1
}
alive() { while read -r pid name; do kill -0 "$pid" 2>/dev/null || fail "$name (pid $pid) exited"; done <pids; }

# Processes start in the background with stdin/stdout detached so that a
# caller capturing start.sh's output (child_process, $(...)) is not kept
# waiting after this script exits.
log "etcd on 127.0.0.1:$ETCD_PORT"
etcd --name mq-kube --data-dir "$STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "mq-kube=http://127.0.0.1:$ETCD_PEER_PORT" \
  </dev/null >etcd.log 2>&1 &
started $! etcd

log "kube-apiserver on https://127.0.0.1:$API_PORT"
# --endpoint-reconciler-type none: the apiserver would otherwise retry every
# 10s to publish 127.0.0.1 as the `kubernetes` Service endpoint, which the API
# rejects (loopback). --allow-privileged as on kubeadm clusters.
# Admission plugins: the defaults are kept. ServiceAccount admission needs the
# token controller (in the controller-manager) to have made the default
# ServiceAccount's token Secret, which is why we wait for it below.
"$BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
  --tls-cert-file apiserver.crt --tls-private-key-file apiserver.key \
  --client-ca-file ca.crt \
  --token-auth-file tokens.csv \
  --authorization-mode Node,RBAC \
  --service-account-key-file sa.pub \
  --service-account-signing-key-file sa.key \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range 10.96.0.0/16 \
  --endpoint-reconciler-type none \
  --allow-privileged=true \
  </dev/null >kube-apiserver.log 2>&1 &
started $! kube-apiserver

deadline=$((SECONDS + 90))
until [[ "$("${KC[@]}" get --raw /readyz 2>/dev/null)" == ok ]]; do
  alive
  ((SECONDS < deadline)) || fail "apiserver not ready after 90s"
  sleep 0.5
done
log "apiserver ready"

log "kube-controller-manager"
# --secure-port 0 / --port 0: it serves nothing, so clusters never fight over
# ports 10257/10252. The CA doubles as the CSR signer so the csrsigning
# controller runs too.
"$BIN/kube-controller-manager" \
  --kubeconfig kubeconfig \
  --controllers '*' \
  --leader-elect=false \
  --use-service-account-credentials=false \
  --service-account-private-key-file sa.key \
  --root-ca-file ca.crt \
  --cluster-signing-cert-file ca.crt --cluster-signing-key-file ca.key \
  --service-cluster-ip-range 10.96.0.0/16 \
  --secure-port 0 --port 0 \
  </dev/null >kube-controller-manager.log 2>&1 &
started $! kube-controller-manager

# Pods can be admitted only after the default ServiceAccount has its token
# Secret (1.20 still uses Secret-based tokens).
deadline=$((SECONDS + 60))
until [[ -n "$("${KC[@]}" -n default get serviceaccount default -o jsonpath='{.secrets[0].name}' 2>/dev/null)" ]]; do
  alive
  ((SECONDS < deadline)) || fail "default ServiceAccount/token not created after 60s"
  sleep 0.5
done
log "controller-manager ready (default ServiceAccount exists)"

echo "KUBECONFIG=$STATE/kubeconfig"

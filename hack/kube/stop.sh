#!/usr/bin/env bash
# Stops what hack/kube/start.sh started in STATE: TERM, then KILL after 5s.
# The state dir itself (certs, etcd data, logs) is kept; rm -rf it if unwanted.
# Usage: hack/kube/stop.sh STATE_DIR
set -euo pipefail

STATE="${1:?usage: $0 STATE_DIR}"
PIDS="$STATE/pids"
[[ -f "$PIDS" ]] || { echo "[kube/stop] no $PIDS: nothing to stop" >&2; exit 0; }

# Only pids that still run the program start.sh recorded (a stale pids file
# must never make us kill an unrelated process that reused the pid).
# /proc/PID/comm is cut to 15 characters, hence the prefix match.
ours() { [[ -r "/proc/$1/comm" && "$2" == "$(cat "/proc/$1/comm" 2>/dev/null)"* ]]; }

# Reverse order: controller-manager, apiserver, then etcd.
pids=() names=()
while read -r pid name; do
  ours "$pid" "$name" && { pids+=("$pid"); names+=("$name"); }
done < <(tac "$PIDS")

for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for _ in $(seq 50); do   # up to 5 seconds
  running=0
  for i in "${!pids[@]}"; do ours "${pids[$i]}" "${names[$i]}" && running=1; done
  ((running)) || break
  sleep 0.1
done
for i in "${!pids[@]}"; do
  if ours "${pids[$i]}" "${names[$i]}"; then
    echo "[kube/stop] ${names[$i]} (pid ${pids[$i]}) ignored TERM, sending KILL" >&2
    kill -KILL "${pids[$i]}" 2>/dev/null || true
  fi
done

rm -f "$PIDS"
echo "[kube/stop] stopped ${#pids[@]} processes from $STATE" >&2

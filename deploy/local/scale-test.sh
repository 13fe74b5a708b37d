#!/usr/bin/env bash
# Three hearken replicas behind a real proxy on 127.0.0.1, loaded through the proxy by
# `hearken loadgen`, with one replica sent SIGTERM mid-run. Prints one summary line:
#
#   scale-test haproxy: 18 sessions: 18 completed with a correct final, 0 misheard by the model,
#   0 refused (retryable), 0 lost; per replica: hearken1=6 hearken2=6 (drained: 2 open at
#   SIGTERM, exit 0 in 7.1 s) ...
#
# and exits non-zero when a session was lost (failed, or completed with a missing final or one
# cut short), when more than a tenth were misheard, when the drained replica did not exit
# cleanly, or when the balance left a replica without sessions before the SIGTERM.
#
# Usage: deploy/local/scale-test.sh [haproxy|envoy]
# Environment: HEARKEN_BIN (default: the newer of target/release/hearken and target/debug/hearken),
#   SESSIONS (6), DURATION (24s: how long new sessions are opened), SIGTERM_AFTER (8: seconds
#   into the run), HEARKEN_CORPUS_DIR (the corpus), KEEP (1: keep the work directory).
set -euo pipefail
cd "$(dirname "$0")/../.."

proxy=${1:-haproxy}
bin=${HEARKEN_BIN:-}
if [ -z "$bin" ]; then
  # The newer of the release and debug builds.
  bin=$(ls -t target/release/hearken target/debug/hearken 2>/dev/null | head -n 1 || true)
fi
[ -x "$bin" ] || { echo "scale-test: no hearken binary at $bin (cargo build first)" >&2; exit 2; }
command -v "$proxy" >/dev/null || { echo "scale-test: $proxy is not installed" >&2; exit 2; }
sessions=${SESSIONS:-6}
duration=${DURATION:-24s}
sigterm_after=${SIGTERM_AFTER:-8}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "${KEEP:-0}" = 1 ] && echo "scale-test: kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ok() { # URL SECONDS PID (which must stay alive meanwhile) LOG
  for _ in $(seq 1 $(($2 * 5))); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    if ! kill -0 "$3" 2>/dev/null; then
      echo "scale-test: the process behind $1 exited:" >&2
      tail -n 20 "$4" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "scale-test: $1 did not answer 200 within $2 s" >&2
  return 1
}

# Replicas: 1 engine worker each (3 share the machine), every cache off so each session runs.
export LB_HOST=127.0.0.1
for i in 1 2 3; do
  grpc_port=$(free_port); http_port=$(free_port)
  export "HEARKEN_${i}_HOST=127.0.0.1" "HEARKEN_${i}_GRPC_PORT=$grpc_port" "HEARKEN_${i}_HTTP_PORT=$http_port"
  export "HEARKEN_${i}_GRPC=127.0.0.1:$grpc_port" "HEARKEN_${i}_HTTP=127.0.0.1:$http_port"
  "$bin" serve --grpc-addr "127.0.0.1:$grpc_port" --http-addr "127.0.0.1:$http_port" \
    --model-workers 1 --result-cache-entries 0 --shutdown-grace-seconds 30 \
    --shutdown-finalize-seconds 10 >"$work/replica$i.log" 2>&1 &
  pids+=($!)
  eval "replica_pid_$i=$!"
done
for i in 1 2 3; do
  port_var="HEARKEN_${i}_HTTP_PORT"
  pid_var="replica_pid_$i"
  wait_ok "http://127.0.0.1:${!port_var}/healthz" 120 "${!pid_var}" "$work/replica$i.log"
done

export LB_GRPC_PORT=$(free_port) LB_HTTP_PORT=$(free_port)
export LB_GRPC_ADDR="127.0.0.1:$LB_GRPC_PORT" LB_HTTP_ADDR="127.0.0.1:$LB_HTTP_PORT"
case "$proxy" in
  haproxy) haproxy -db -f deploy/haproxy/haproxy.cfg >"$work/proxy.log" 2>&1 & ;;
  envoy)
    envsubst <deploy/envoy/envoy.yaml >"$work/envoy.yaml"
    envoy -c "$work/envoy.yaml" --log-level warn --base-id "$LB_GRPC_PORT" >"$work/proxy.log" 2>&1 & ;;
  *) echo "scale-test: unknown proxy $proxy (haproxy or envoy)" >&2; exit 2 ;;
esac
pids+=($!)
wait_ok "http://$LB_HTTP_ADDR/healthz" 30 $! "$work/proxy.log"
sleep 2 # every replica passes its proxy health checks (rise 2, 1 s apart)

# Each replica's /metrics, scraped every 250 ms while it answers: its last scrape counts
# the streams it admitted (finished + open).
scrape() {
  while :; do
    for i in 1 2 3; do
      port_var="HEARKEN_${i}_HTTP_PORT"
      curl -fsS "http://127.0.0.1:${!port_var}/metrics" -o "$work/metrics$i.tmp" 2>/dev/null \
        && mv "$work/metrics$i.tmp" "$work/metrics$i"
    done
    sleep 0.25
  done
}
scrape & pids+=($!)

"$bin" loadgen "grpc://$LB_GRPC_ADDR" --sessions "$sessions" --duration "$duration" \
  --max-clip-seconds 12 --json "$work/loadgen.json" >"$work/loadgen.log" 2>&1 &
loadgen=$!
pids+=($loadgen)
sleep "$sigterm_after"

# Drain the replica with the most open streams.
victim=$(python3 deploy/local/summary.py pick "$work")
victim_pid_var="replica_pid_$victim"
victim_pid=${!victim_pid_var}
cp "$work/metrics$victim" "$work/metrics$victim.at-sigterm"
kill -TERM "$victim_pid"
term_at=$(date +%s.%N)
set +e
wait "$victim_pid"; victim_rc=$?
drained_in=$(python3 -c "import time; print(f'{time.time() - $term_at:.1f}')")
wait "$loadgen"; loadgen_rc=$?
set -e
[ "$loadgen_rc" = 0 ] || { cat "$work/loadgen.log" >&2; echo "scale-test: loadgen failed" >&2; exit 1; }
# Peak memory of the replicas still running (Kubernetes requests are sized from it).
for i in 1 2 3; do
  pid_var="replica_pid_$i"
  [ "$i" = "$victim" ] && continue
  awk '/VmHWM/ {printf "%d ", $2 / 1024}' "/proc/${!pid_var}/status" >>"$work/peak-rss" || true
done
python3 deploy/local/summary.py summary "$work" "$proxy" "$victim" "$victim_rc" "$drained_in"

#!/usr/bin/env bash
# deploy_multihost_netns: a federated run across three "hosts" made of Linux network
# namespaces — the server in one, two client hosts in two others — wired by veth pairs
# to a bridge in a fourth namespace, on a private subnet (10.77.0.0/24) that exists only
# inside them. Checks, over real TCP between namespaces:
#   - a mutual-TLS run with per-host credential bundles (gen-certs.sh HOSTS=2, gen-tokens.sh
#     4 2: the server holds only token hashes bound to each host's certificate) finishes
#     (every round recorded, clients exit 0);
#   - a client with a wrong token is refused, so is a plaintext client, and so is host 1's
#     tokens presented with host 2's certificate;
#   - the server's /metrics endpoint answers from another host;
#   - when one client host's link goes down mid-run, its clients are dropped from a round,
#     then rejoin after the link comes back and take part again, and finish.
# Exit 77 (ctest SKIP) when network namespaces cannot be created here.
# Binaries from $LFL_BINARY_DIR/bin (default: <source>/build/bin).
set -euo pipefail
src=${LFL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${LFL_BINARY_DIR:-$src/build}/bin
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
log() { echo "[$(date +%T)] $*"; }

command -v ip >/dev/null || skip "iproute2 ('ip') is not installed"
for b in lotteryfl-server lotteryfl-client; do
  [ -x "$bin/$b" ] || fail "$bin/$b is missing (build the lotteryfl-server and lotteryfl-client targets)"
done
data=/usr/share/datasets/fashion-mnist
[ -f "$data/train-images-idx3-ubyte.gz" ] || skip "Fashion-MNIST is not installed (dataset-fashion-mnist)"

tag=lfl$$
BR=$tag-br SRV=$tag-srv H1=$tag-h1 H2=$tag-h2
SERVER_IP=10.77.0.1
work=$(mktemp -d)
pids=()
made=()

cleanup() {
  local rc=$?
  set +e
  trap '' PIPE  # a closed stdout must not stop the cleanup
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in 1 2 3 4 5; do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for ns in "${made[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  if [ $rc != 0 ] && [ $rc != 77 ]; then
    for f in "$work"/*.log "$work"/run/metrics.jsonl; do
      [ -f "$f" ] && { echo "----- $f (tail)"; tail -n 25 "$f"; }
    done >&2
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- network: three hosts on one bridge --------------------------------------------------
ip netns add "$BR" 2>/dev/null || skip "cannot create network namespaces here (needs root / CAP_SYS_ADMIN)"
made+=("$BR")
ip -n "$BR" link set lo up
ip -n "$BR" link add br0 type bridge
ip -n "$BR" link set br0 up
add_host() {  # add_host NAMESPACE IP PORT_NAME
  ip netns add "$1"
  made+=("$1")
  ip -n "$1" link set lo up
  ip -n "$BR" link add "$3" type veth peer name eth0 netns "$1"
  ip -n "$BR" link set "$3" master br0 up
  ip -n "$1" addr add "$2/24" dev eth0
  ip -n "$1" link set eth0 up
}
add_host "$SRV" "$SERVER_IP" p-srv
add_host "$H1" 10.77.0.11 p-h1
add_host "$H2" 10.77.0.12 p-h2
ip -n "$SRV" route | grep -q 10.77.0.0/24 || fail "no route in the server namespace"
ip route | grep -q '10\.77\.0\.' && fail "the test subnet leaked into the root namespace"
log "namespaces $SRV $H1 $H2 on bridge $BR"

# --- credentials --------------------------------------------------------------------------
HOSTS=2 "$src/scripts/gen-certs.sh" "$work/certs" "$SERVER_IP" 2>/dev/null
"$src/scripts/gen-tokens.sh" 4 2 "$work/certs" 2>/dev/null
printf '0 %064d\n' 0 >"$work/wrong-tokens.txt"
c=$work/certs
# Each client host holds only its own bundle (host-<h>/: certificate, tokens, id range); the
# server holds the tokens' hashes, each bound to its host's certificate.
tls_client=(--tls-ca "$c/host-0/ca.crt" --tls-cert "$c/host-0/client.crt" --tls-key "$c/host-0/client.key")
tls_client2=(--tls-ca "$c/host-1/ca.crt" --tls-cert "$c/host-1/client.crt" --tls-key "$c/host-1/client.key")

# on NS CMD...: run CMD inside namespace NS.
on() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# wait_until SECONDS DESCRIPTION CMD...: poll CMD about once a second, fail after SECONDS.
wait_until() {
  local limit=$1 what=$2
  local deadline=$((SECONDS + limit))
  shift 2
  while ((SECONDS < deadline)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  fail "timed out after $limit s waiting for $what"
}

# tcp_open NS HOST PORT: a TCP connection from namespace NS to HOST:PORT succeeds.
tcp_open() { on "$1" timeout 3 bash -c "exec 3<>/dev/tcp/$2/$3"; }

# wait_exit PID SECONDS: sets $rc to the exit status of background process PID, or to 124
# after stopping it when it is still running after SECONDS.
wait_exit() {
  local pid=$1 deadline=$((SECONDS + $2))
  local killed=0
  while ((SECONDS < deadline)) && kill -0 "$pid" 2>/dev/null; do sleep 1; done
  if kill -0 "$pid" 2>/dev/null; then
    killed=1
    kill -TERM "$pid"  # `timeout` passes it on to the binary
    sleep 3
    kill -KILL "$pid" 2>/dev/null
  fi
  rc=0
  wait "$pid" || rc=$?
  if [ $killed = 1 ]; then rc=124; fi
}

rounds_recorded() {
  [ -f "$work/run/metrics.jsonl" ] || { echo 0; return; }
  grep -c '"round"' "$work/run/metrics.jsonl" || true
}
rounds_at_least() { [ "$(rounds_recorded)" -ge "$1" ]; }

# --- server -----------------------------------------------------------------------------
on "$SRV" timeout 300 "$bin/lotteryfl-server" \
  --dataset fashion-mnist --clients 4 --fraction 1 --min-clients 2 --rounds 8 \
  --local-epochs 1 --samples-per-class 10 --test-per-client 20 --round-timeout 6 \
  --join-timeout 120 --algorithm lotteryfl --quant bsq --seed 7 \
  --listen "$SERVER_IP:50051" --metrics-listen "$SERVER_IP:9090" --out "$work/run" \
  --tls-cert "$c/server.crt" --tls-key "$c/server.key" --tls-client-ca "$c/ca.crt" \
  --tokens "$c/server-tokens.txt" >"$work/server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
wait_until 90 "the server to listen on $SERVER_IP:50051" tcp_open "$H1" "$SERVER_IP" 50051
on "$H1" timeout 20 "$bin/lotteryfl-client" --probe "$SERVER_IP:50051" "${tls_client[@]}" \
  >"$work/probe-tls.log" 2>&1 || fail "the gRPC health probe over mutual TLS from host 1 failed"
log "server is SERVING on $SERVER_IP:50051 (mutual TLS)"

# --- refusals ---------------------------------------------------------------------------
if on "$H2" timeout 20 "$bin/lotteryfl-client" --probe "$SERVER_IP:50051" >"$work/probe-plain.log" 2>&1; then
  fail "a plaintext probe got a SERVING answer from the TLS server"
fi
if on "$H2" timeout 20 "$bin/lotteryfl-client" --probe "$SERVER_IP:50051" --tls-ca "$c/ca.crt" \
  >"$work/probe-nocert.log" 2>&1; then
  fail "a client without a certificate passed mutual TLS"
fi

on "$H2" timeout 60 "$bin/lotteryfl-client" --server "$SERVER_IP:50051" --client-ids 0 \
  "${tls_client[@]}" --tokens "$work/wrong-tokens.txt" >"$work/wrong-token.log" 2>&1 &
wrong_pid=$!
pids+=("$wrong_pid")
on "$H2" timeout 60 "$bin/lotteryfl-client" --server "$SERVER_IP:50051" --client-ids 1 \
  --give-up 8 --tokens "$c/host-0/tokens.txt" >"$work/plaintext.log" 2>&1 &
plain_pid=$!
pids+=("$plain_pid")
# Host 1's ids and tokens, but host 2's certificate: the id is bound to host 1's.
on "$H2" timeout 60 "$bin/lotteryfl-client" --server "$SERVER_IP:50051" --client-ids 0-1 \
  "${tls_client2[@]}" --tokens "$c/host-0/tokens.txt" >"$work/foreign-cert.log" 2>&1 &
foreign_pid=$!
pids+=("$foreign_pid")

wait_exit "$wrong_pid" 70
[ "$rc" != 0 ] || fail "a client with a wrong token exited 0"
[ "$rc" != 124 ] || fail "a client with a wrong token was not refused (still running after 60 s)"
grep -qiE 'token|unauthenticated' "$work/wrong-token.log" ||
  fail "the wrong-token client's log does not say why it was refused"
log "wrong token refused (exit $rc)"
wait_exit "$plain_pid" 70
[ "$rc" != 0 ] || fail "a plaintext client exited 0 against a TLS server"
[ "$rc" != 124 ] || fail "a plaintext client did not give up after --give-up 8"
log "plaintext client refused (exit $rc)"
wait_exit "$foreign_pid" 70
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "host 1's tokens were accepted with host 2's certificate (exit $rc)"
grep -qiE 'bound to host' "$work/foreign-cert.log" ||
  fail "the foreign-certificate client's log does not say why it was refused"
log "host 1's tokens with host 2's certificate refused (exit $rc)"
[ "$(rounds_recorded)" = 0 ] || fail "a round ran before the legitimate clients joined"

# --- the run, with an outage on host 2 ------------------------------------------------------
on "$H1" timeout 300 "$bin/lotteryfl-client" --server "$SERVER_IP:50051" --client-ids "$(cat "$c/host-0/client-ids")" \
  --parallel 2 "${tls_client[@]}" --tokens "$c/host-0/tokens.txt" >"$work/host1.log" 2>&1 &
h1_pid=$!
pids+=("$h1_pid")
on "$H2" timeout 300 "$bin/lotteryfl-client" --server "$SERVER_IP:50051" --client-ids "$(cat "$c/host-1/client-ids")" \
  --parallel 2 "${tls_client2[@]}" --tokens "$c/host-1/tokens.txt" >"$work/host2.log" 2>&1 &
h2_pid=$!
pids+=("$h2_pid")

wait_until 180 "round 1 to be recorded" rounds_at_least 1
log "round 1 done; scraping /metrics from host 1"
scrape_start=$(date +%s%N)
on "$H1" timeout 20 bash -c "exec 3<>/dev/tcp/$SERVER_IP/9090 && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3" \
  >"$work/metrics.txt" 2>&1 || fail "cannot reach the /metrics endpoint"
head -n1 "$work/metrics.txt" | grep -q ' 200 ' || fail "/metrics did not answer 200"
grep -q '^lotteryfl_[a-z_]* [0-9]' "$work/metrics.txt" || fail "/metrics has no lotteryfl samples"
log "/metrics answered in $((($(date +%s%N) - scrape_start) / 1000000)) ms"

outage_from=$(rounds_recorded)
log "link of host 2 DOWN"
ip -n "$BR" link set p-h2 down
sleep 10
ip -n "$BR" link set p-h2 up
log "link of host 2 UP (rounds recorded before the outage: $outage_from)"

wait_exit "$server_pid" 240
[ "$rc" = 0 ] || fail "the server exited $rc"
wait_exit "$h1_pid" 60
[ "$rc" = 0 ] || fail "client host 1 exited $rc"
wait_exit "$h2_pid" 60
[ "$rc" = 0 ] || fail "client host 2 exited $rc after its link came back"
log "server and both client hosts finished"

# --- what the run recorded ------------------------------------------------------------------
[ -s "$work/run/summary.json" ] || fail "no summary.json"
/usr/bin/python3 - "$work/run/metrics.jsonl" "$outage_from" <<'PY' || fail "metrics.jsonl does not show the outage and the rejoin"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
outage_from = int(sys.argv[2])
rounds = [r["round"] for r in rows]
assert rounds[-1] == 8, f"last recorded round {rounds[-1]}, expected 8 ({rounds})"
after = rows[outage_from:]
hit = [i for i, r in enumerate(after) if r["dropped"] > 0 or r["completed"] < r["sampled"]]
assert hit, f"no round after the link went down lost host 2's clients: {after}"
rejoined = [r for r in after[hit[0] + 1:] if r["completed"] == 4]
assert rejoined, f"host 2's clients never took part again after the outage: {after}"
print("rounds:", [(r["round"], r["completed"], r["sampled"], r["dropped"]) for r in rows])
PY
echo "PASS: multi-host run over network namespaces"

#!/usr/bin/env bash
# deploy_compose_run (label slow): the Compose deployment, actually run.
#   - starts dockerd (--storage-driver=vfs, log in $LFL_DOCKER_STATE) when no daemon answers,
#     makes a local debian:bookworm base image with deploy/docker/base-image.sh (debootstrap from
#     the host's Debian mirror) when there is none (no image is ever pulled), and builds the
#     runtime image from the binaries in $LFL_BINARY_DIR/bin (deploy/docker/build-image.sh
#     --prebuilt);
#   - run A: deploy/compose/docker-compose.yml with three client services from
#     scripts/compose-clients.sh 3, each holding only its own credential bundle (certificates
#     from gen-certs.sh, hashed server tokens from gen-tokens.sh 6 3), on a network declared
#     internal; the server's health check turns healthy, every process runs as uid 10001,
#     every round completes and model.bin equals an uninterrupted lotteryfl-sim run;
#   - run B: two client services; the server container is killed (SIGKILL to its init from
#     the host, as the kernel's OOM killer would) once round 3 is recorded: the restart policy
#     brings it back, it turns healthy again, the entrypoint adds --resume, the server resumes
#     from its checkpoint (the snapshot checkpoint.bin of round 1 plus the records of the later
#     rounds in checkpoint.bin.log) at the round after the last one checkpointed, the clients
#     rejoin by themselves, the rounds before that are kept as they were, and model.bin again
#     equals the simulator's.
# Prints the image size and the time each step took. Exit 0 pass, 77 skip (no Docker daemon
# can be started, or a tool is missing), else fail.
#
# Why not `docker kill -s KILL`: Docker records a kill through its API as a manual stop and the
# restart policy then leaves the container down (Docker 20.10 here: exited 137, RestartCount 0).
set -euo pipefail
src=${LFL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${LFL_BINARY_DIR:-$src/build}
bin=$build/bin
state=${LFL_DOCKER_STATE:-/var/tmp/lotteryfl-docker}
image=${LFL_TEST_IMAGE:-lotteryfl:compose-test}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 DOCKER_BUILDKIT=0
PY=/usr/bin/python3
# Rounds must last long enough that the kill lands mid-run and that the restarted server lives
# through its first health check (interval 10 s, then the probe loads LibTorch): with 20 images
# per client and 2 epochs a round took 0.1 s, the kill came after round 6 and the restarted
# server finished the run 7 s after it started, before Docker had probed it once. 2,000 images
# per client and 5 epochs: ~3 s a round on the 2-core VM.
ROUNDS=12
CLIENTS=6
KILL_AFTER=3
begin=$SECONDS

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
log() { echo "[$(date +%T) +$((SECONDS - begin))s] $*"; }

for b in lotteryfl-server lotteryfl-client lotteryfl-sim; do
  [ -x "$bin/$b" ] || fail "$bin/$b is missing (scripts/setup.sh builds it)"
done
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] ||
  skip "Fashion-MNIST is not installed (dataset-fashion-mnist)"
command -v docker >/dev/null || skip "no docker CLI (apt-get install docker.io)"
command -v docker-compose >/dev/null || skip "no docker-compose (apt-get install docker-compose)"

work=$(mktemp -d "${TMPDIR:-/tmp}/lfl-compose.XXXXXX")
chmod 0755 "$work"
projects=()
dockerd_pid=

cleanup() {
  local rc=$?
  set +e
  for p in "${projects[@]}"; do
    if [ $rc != 0 ] && [ $rc != 77 ]; then
      echo "----- $p: docker-compose logs (tail)" >&2
      dc "$p" logs --no-color --tail 25 >&2
    fi
    dc "$p" down -v --remove-orphans >/dev/null 2>&1
  done
  if [ -n "$dockerd_pid" ]; then
    kill -TERM "$dockerd_pid" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 1; done
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- a Docker daemon ---------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || skip "no Docker daemon answers and only root can start one here"
  command -v dockerd >/dev/null || skip "no Docker daemon and no dockerd (apt-get install docker.io)"
  mkdir -p "$state"
  log "starting dockerd --storage-driver=vfs (log: $state/dockerd.log)"
  setsid dockerd --storage-driver=vfs >>"$state/dockerd.log" 2>&1 </dev/null &
  dockerd_pid=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 ||
    skip "dockerd could not be started: $(tail -n 3 "$state/dockerd.log" | tr '\n' ' ')"
fi
log "Docker daemon $(docker info -f '{{.ServerVersion}}, storage driver {{.Driver}}')"

# --- the base image: debootstrap from the mirror apt already uses -----------------------------
# deploy/docker/base-image.sh, the same script docs/deploy.md gives ("Base image").
if ! docker image inspect debian:bookworm >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || skip "no debian:bookworm image and no debootstrap to make one"
  [ "$(id -u)" = 0 ] || skip "no debian:bookworm image and only root can debootstrap one"
  "$src/deploy/docker/base-image.sh" --print-mirror >/dev/null ||
    skip "no bookworm source in /etc/apt/sources.list* for debootstrap"
  t=$SECONDS
  log "making debian:bookworm with deploy/docker/base-image.sh"
  mkdir -p "$state"
  "$src/deploy/docker/base-image.sh" >"$state/base-image.log" 2>&1 ||
    fail "deploy/docker/base-image.sh failed: $(tail -n 5 "$state/base-image.log")"
  log "debian:bookworm imported in $((SECONDS - t)) s"
fi

# --- the image -----------------------------------------------------------------------------------
# A snapshot of the binaries: the image and the reference simulation run the same build even
# if the build tree is relinked meanwhile.
mkdir -p "$work/snapshot/bin"
cp "$bin"/lotteryfl-server "$bin"/lotteryfl-client "$bin"/lotteryfl-sim "$work/snapshot/bin/"
bin=$work/snapshot/bin
t=$SECONDS
old_image=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
"$src/deploy/docker/build-image.sh" --prebuilt "$work/snapshot" -t "$image" >"$work/build.log" 2>&1 ||
  fail "image build failed: $(tail -n 15 "$work/build.log")"
# The previous build of this tag, now untagged: with vfs every one keeps ~2 GB of layers.
if [ -n "$old_image" ] && [ "$old_image" != "$(docker image inspect -f '{{.Id}}' "$image")" ]; then
  docker rmi "$old_image" >/dev/null 2>&1 || true
fi
size=$(docker image inspect -f '{{.Size}}' "$image")
log "image $image built in $((SECONDS - t)) s ($(grep -c '^ ---> Using cache' "$work/build.log") cached steps):" \
  "$((size / 1000000)) MB ($(docker image inspect -f '{{.Size}}' debian:bookworm | awk '{printf "%d", $1 / 1e6}') MB of it the base)"

# --- the run configuration and its reference ---------------------------------------------------
cat >"$work/run.toml" <<EOF
dataset = "fashion-mnist"
partition = "shards"
classes-per-client = 2
samples-per-class = 1000
test-per-client = 50
fraction = 0.5
min-clients = 2
rounds = $ROUNDS
round-timeout = 60
join-timeout = 120
local-epochs = 5
algorithm = "lotteryfl"
seed = 7
EOF
t=$SECONDS
"$bin/lotteryfl-sim" --config "$work/run.toml" --clients "$CLIENTS" --parallel 2 --out "$work/ref" \
  >"$work/sim.log" 2>&1 || fail "lotteryfl-sim failed: $(tail -n 5 "$work/sim.log")"
log "reference: lotteryfl-sim, $CLIENTS clients, $ROUNDS rounds, in $((SECONDS - t)) s"

cat >"$work/internal.yml" <<'EOF'
version: "3.8"
# Containers talk only to each other: no route off the machine.
networks:
  default:
    internal: true
EOF

# project NAME HOSTS: credential bundles for HOSTS client hosts and the clients file.
project() {
  local name=$1 hosts=$2 dir=$work/$1
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    HOSTS=$hosts "$src/scripts/gen-certs.sh" "$dir/certs" 2>/dev/null
    "$src/scripts/gen-tokens.sh" "$CLIENTS" "$hosts" "$dir/certs" 2>/dev/null
    # Keys stay 0600; bind-mounted secrets keep the host's owner, so give them to uid 10001.
    chown -R 10001:10001 "$dir/certs"
  else
    KEY_MODE=0644 HOSTS=$hosts "$src/scripts/gen-certs.sh" "$dir/certs" 2>/dev/null
    KEY_MODE=0644 "$src/scripts/gen-tokens.sh" "$CLIENTS" "$hosts" "$dir/certs" 2>/dev/null
  fi
  chmod 0755 "$dir/certs" "$dir"/certs/host-*
  "$src/scripts/compose-clients.sh" "$hosts" >"$dir/clients.yml"
  projects+=("$name")
}

# dc NAME ARGS...: docker-compose for project NAME (server file + its clients file + internal.yml).
dc() {
  local name=$1
  shift
  env LFL_IMAGE="$image" LFL_CLIENTS="$CLIENTS" LFL_SECRETS_DIR="$work/$name/certs" \
    LFL_RUN_CONFIG="$work/run.toml" LFL_PUBLISH_ADDRESS=127.0.0.1 LFL_GRPC_PORT=0 LFL_METRICS_PORT=0 \
    LFL_CLIENT_PARALLEL=2 \
    docker-compose --project-directory "$src/deploy/compose" -p "lfltest$$$name" \
    -f "$src/deploy/compose/docker-compose.yml" -f "$work/$name/clients.yml" -f "$work/internal.yml" "$@"
}

out_dir=/var/lib/lotteryfl/runs/compose
# run_file CONTAINER FILE: prints FILE of the run directory (also from a stopped container).
run_file() { docker cp "$1:$out_dir/$2" - 2>/dev/null | tar -xO; }
rounds_in() { run_file "$1" metrics.jsonl | grep -c '"round"' || true; }

# up NAME: start the project; sets $server (container id) and $clients (ids).
up() {
  local name=$1 t=$SECONDS
  dc "$name" up -d --no-build >"$work/$name/up.log" 2>&1 ||
    fail "$name: docker-compose up failed: $(tail -n 10 "$work/$name/up.log")"
  server=$(dc "$name" ps -q server)
  clients=$(for s in $(dc "$name" config --services); do [ "$s" = server ] || dc "$name" ps -q "$s"; done)
  [ -n "$server" ] || fail "$name: no server container"
  # `up` created the clients only once the server was healthy (depends_on: service_healthy).
  docker inspect -f '{{range .State.Health.Log}}{{.ExitCode}} {{end}}' "$server" | grep -qw 0 ||
    fail "$name: the server's health check never passed"
  log "$name: up in $((SECONDS - t)) s: server healthy, $(wc -w <<<"$clients") client containers started" \
    "(health now: $(docker inspect -f '{{.State.Health.Status}}' "$server"))"
  local net
  net=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$server")
  for n in $net; do
    [ "$(docker network inspect -f '{{.Internal}}' "$n")" = true ] || fail "$name: network $n is not internal"
  done
  local ports
  ports=$(docker port "$server" || true)
  grep -v '^$' <<<"$ports" | grep -vqE -- '-> 127\.0\.0\.1:' &&
    fail "$name: a port is published beyond 127.0.0.1: $ports"
  log "$name: network $net internal; published ports: $(tr '\n' ' ' <<<"${ports:-none}")"
}

# uids_are_10001 CONTAINER...: every process in the containers runs as uid 10001.
uids_are_10001() {
  local c uids
  for c in "$@"; do
    uids=$(docker top "$c" -eo pid,uid,args | awk 'NR > 1 {print $2}' | sort -u | tr '\n' ' ')
    [ "$uids" = "10001 " ] || fail "$(docker inspect -f '{{.Name}}' "$c"): processes run as uid(s) $uids"
  done
}

# wait_all_exited NAME SECONDS: every container of the project has exited (and stays down).
wait_all_exited() {
  local name=$1 deadline=$((SECONDS + $2)) c running
  while ((SECONDS < deadline)); do
    running=0
    for c in $server $clients; do
      [ "$(docker inspect -f '{{.State.Status}}' "$c")" = exited ] || running=1
    done
    [ $running = 0 ] && return 0
    sleep 2
  done
  fail "$name: containers still running after $2 s"
}

# check_finished NAME RESTARTS: exit codes 0, the server restarted RESTARTS times, the clients
# never; every round recorded once and complete; model.bin equals the reference.
check_finished() {
  local name=$1 restarts=$2 c dir=$work/$1/out
  for c in $server $clients; do
    [ "$(docker inspect -f '{{.State.ExitCode}}' "$c")" = 0 ] ||
      fail "$name: $(docker inspect -f '{{.Name}} exited {{.State.ExitCode}}' "$c")"
  done
  [ "$(docker inspect -f '{{.RestartCount}}' "$server")" = "$restarts" ] ||
    fail "$name: server restarted $(docker inspect -f '{{.RestartCount}}' "$server") times, expected $restarts"
  for c in $clients; do
    [ "$(docker inspect -f '{{.RestartCount}}' "$c")" = 0 ] || fail "$name: a client container was restarted"
  done
  mkdir -p "$dir"
  docker cp "$server:$out_dir/." "$dir"
  [ -s "$dir/summary.json" ] || fail "$name: no summary.json"
  $PY - "$dir/metrics.jsonl" "$ROUNDS" "$name" <<'PY' || fail "$name: rounds incomplete"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rounds = [r["round"] for r in rows]
assert rounds == list(range(1, int(sys.argv[2]) + 1)), rounds
for r in rows:
    assert r["completed"] == r["sampled"] and r["dropped"] == 0, r
print(f"[{sys.argv[3]}] rounds {rounds[0]}-{rounds[-1]} each complete: "
      + ", ".join(f'{r["completed"]}/{r["sampled"]}' for r in rows)
      + f'; last round personalized {rows[-1]["personalized_accuracy"]:.3f}'
      + f', global-masked {rows[-1]["global_masked_accuracy"]:.3f}')
PY
  cmp "$dir/model.bin" "$work/ref/model.bin" ||
    fail "$name: model.bin differs from the uninterrupted lotteryfl-sim run"
  log "$name: model.bin ($(stat -c %s "$dir/model.bin") bytes) equals the lotteryfl-sim run's (cmp)"
}

# --- run A: three client hosts, uninterrupted ---------------------------------------------------
project a 3
t=$SECONDS
up a
uids_are_10001 $server $clients
log "a: every process in the server and the 3 client containers runs as uid 10001"
for s in client-0 client-1 client-2; do
  c=$(dc a ps -q "$s")
  ids=$(docker top "$c" -eo pid,args | grep -oE -- '--client-ids [0-9,-]+' || true)
  log "a: $s runs lotteryfl-client $ids (from its bundle)"
done
wait_all_exited a 600
check_finished a 0
log "a: run finished in $((SECONDS - t)) s"
dc a down -v >/dev/null 2>&1

# --- run B: two client hosts, the server killed mid-run ------------------------------------------
project b 2
t=$SECONDS
up b
uids_are_10001 $server $clients
deadline=$((SECONDS + 300))
until [ "$(rounds_in "$server")" -ge $KILL_AFTER ]; do
  ((SECONDS < deadline)) || fail "b: round $KILL_AFTER was not recorded within 300 s"
  sleep 0.5
done
pid=$(docker inspect -f '{{.State.Pid}}' "$server")
kill -KILL "$pid"
# Read what the killed server left before the restarted one (which first waits for the clients
# to rejoin) can add to it.
for _ in $(seq 20); do
  run_file "$server" metrics.jsonl >"$work/b/metrics-at-kill.jsonl" 2>/dev/null && break
  sleep 0.5
done
killed_after=$(grep -c '"round"' "$work/b/metrics-at-kill.jsonl" || true)
[ "$killed_after" -ge $KILL_AFTER ] || fail "b: cannot read the rounds the killed server recorded"
ckpt=
for f in checkpoint.bin checkpoint.bin.log; do
  n=$(run_file "$server" "$f" | wc -c)
  ckpt+="$f $n bytes, "
  [ "$n" -gt 0 ] || fail "b: the killed server left no $f (a run past round 1 has the snapshot and a log)"
done
log "b: server container's init (host pid $pid) killed with SIGKILL; $killed_after rounds recorded;" \
  "${ckpt%, } on the volume"
[ "$killed_after" -lt "$ROUNDS" ] || fail "b: the run finished before the kill"
deadline=$((SECONDS + 60))
until [ "$(docker inspect -f '{{.RestartCount}}' "$server")" -ge 1 ]; do
  ((SECONDS < deadline)) || fail "b: the restart policy did not restart the server"
  sleep 0.5
done
log "b: restarted by the restart policy"
deadline=$((SECONDS + 120))
until [ "$(docker inspect -f '{{.State.Health.Status}}' "$server")" = healthy ]; do
  [ "$(docker inspect -f '{{.State.Status}}' "$server")" != exited ] ||
    fail "b: the restarted server exited ($(docker inspect -f '{{.State.ExitCode}}' "$server")) before" \
      "its first health check passed (a run that short cannot show it; see ROUNDS)"
  ((SECONDS < deadline)) || fail "b: the restarted server did not become healthy"
  sleep 1
done
log "b: restarted server healthy again"

wait_all_exited b 600
docker logs "$server" >"$work/b/server.log" 2>&1
grep -q '(resumed)' "$work/b/server.log" || fail "b: the restarted server did not resume from its checkpoint"
log "b: $(grep -m1 '(resumed)' "$work/b/server.log" | sed 's/^\[[^]]*\] //')"
# The first round the restarted server ran. Its row of round k is written just before round k's
# checkpoint, so a kill in between resumes at k (redone, its row rewritten); otherwise at k + 1.
resumed_at=$(awk '/\(resumed\)/ { r = 1; next }
                  r && match($0, /round +[0-9]+\/[0-9]+ +clients/) {
                    s = substr($0, RSTART, RLENGTH); sub(/^round +/, "", s); sub(/\/.*/, "", s)
                    print s; exit }' "$work/b/server.log")
[ -n "$resumed_at" ] || fail "b: the restarted server ran no round"
{ [ "$resumed_at" -eq "$killed_after" ] || [ "$resumed_at" -eq $((killed_after + 1)) ]; } ||
  fail "b: resumed at round $resumed_at, but $killed_after rounds were recorded before the kill"
# Past round 2: the state came from the snapshot (round 1) and the log's records.
[ "$resumed_at" -gt 2 ] || fail "b: resumed at round $resumed_at: the checkpoint log was not read"
log "b: the restarted server resumed at round $resumed_at (checkpoint.bin + checkpoint.bin.log)"
for c in $clients; do
  line=$(docker logs "$c" 2>&1 | grep -E 'reconnected' | head -n 1) ||
    fail "b: $(docker inspect -f '{{.Name}}' "$c") never reconnected to the restarted server"
  log "b: $(docker inspect -f '{{.Name}}' "$c" | tr -d /): $line"
done
check_finished b 1
kept=$((resumed_at - 1))
cmp -s <(head -n "$kept" "$work/b/out/metrics.jsonl") <(head -n "$kept" "$work/b/metrics-at-kill.jsonl") ||
  fail "b: the rounds checkpointed before the kill were rewritten (the run started over)"
log "b: rounds 1-$kept kept as recorded before the kill; the clients rejoined and finished" \
  "(exit 0, never restarted); run in $((SECONDS - t)) s"
echo "PASS: Compose run: 3 hosts uninterrupted and 2 hosts with a killed server, both equal to" \
  "lotteryfl-sim; image $((size / 1000000)) MB; $((SECONDS - begin)) s in all"

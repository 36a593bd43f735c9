#!/usr/bin/env bash
# integration_thousand_clients: 1,000 registered clients on one lotteryfl-server, carried by two
# lotteryfl-client processes (ids 0-499 and 500-999) on loopback. Every round completes with all
# of its sampled clients, and no update is lost or counted twice: for every round, the updates
# the server accepted (metrics.jsonl `completed`) equal the updates the two hosts had
# acknowledged (their --report `sent_per_round`), and no host reports a round the server did not
# record. Tiny settings so it stays an `integration` test: the `shared` partition (10 images per
# client, clients share images), 1 local epoch, 50 clients sampled per round, 6 rounds.
source "$(dirname "$0")/lib.sh" "$@"

rounds=6
with_flags --partition shared --clients 1000 --fraction 0.05 --min-samples 10 --test-per-client 10 \
  --local-epochs 1 --rounds "$rounds" --eval-every 1000 --eval-clients 20 --join-timeout 60
RUN_FLAGS=("${FLAGS[@]}")

port=$(free_port)
start_server "$work/run" "$port"
server=$spawned
start_client host-a.log "$port" 0-499 --host-name host-a --report "$work/host-a.json"
host_a=$spawned
start_client host-b.log "$port" 500-999 --host-name host-b --report "$work/host-b.json"
host_b=$spawned
log "server on 127.0.0.1:$port; hosts a (0-499) and b (500-999)"

wait_exit "$server" 180
[ "$rc" = 0 ] || fail "the server exited $rc"
for h in a b; do
  pid_var=host_$h
  wait_exit "${!pid_var}" 30
  [ "$rc" = 0 ] || fail "client host $h exited $rc"
  [ -s "$work/host-$h.json" ] || fail "client host $h wrote no --report"
done
log "server and both client hosts exited 0"

$PY - "$work/run/metrics.jsonl" "$work/host-a.json" "$work/host-b.json" "$rounds" <<'PY' ||
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
hosts = [json.load(open(p)) for p in sys.argv[2:4]]
rounds = int(sys.argv[4])
errors = []
if [r["round"] for r in rows] != list(range(1, rounds + 1)):
    errors.append(f"rounds recorded {[r['round'] for r in rows]}, expected 1..{rounds}")
recorded = {r["round"] for r in rows}
for r in rows:
    sent = {h["host"]: h["sent_per_round"].get(str(r["round"]), 0) for h in hosts}
    total = sum(sent.values())
    line = (f"round {r['round']}: sampled {r['sampled']}, server accepted {r['completed']}, "
            f"hosts sent {total} {sent}, dropped {r['dropped']}, attempts {r['attempts']}")
    print(line)
    if r["completed"] != total:
        errors.append(f"{line}: accepted != sent ({'lost' if r['completed'] < total else 'counted twice'})")
    if r["completed"] != r["sampled"] or r["dropped"] != 0:
        errors.append(f"{line}: not every sampled client's update was accepted")
for h in hosts:
    extra = sorted(int(k) for k in h["sent_per_round"] if int(k) not in recorded)
    if extra:
        errors.append(f"host {h['host']} sent updates for rounds {extra} the server never recorded")
total_tasks = sum(h["tasks"] for h in hosts)
if total_tasks != sum(r["completed"] for r in rows):
    errors.append(f"hosts trained {total_tasks} tasks, the server accepted {sum(r['completed'] for r in rows)}")
for e in errors:
    print("MISMATCH:", e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
  fail "the server's accepted updates and the hosts' sent updates disagree (MISMATCH lines above)"
echo "PASS: 1,000 clients on two hosts: every round complete, accepted == sent in every round"

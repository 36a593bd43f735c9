#!/usr/bin/env bash
# integration_server_two_clients: one lotteryfl-server and two lotteryfl-client processes
# (5 virtual clients each) finish a 6-round run, and the final model is bit-identical to
# the in-process simulator's with the same config and seed — the same code paths.
source "$(dirname "$0")/lib.sh" "$@"

port=$(free_port)
start_server "$work/run" "$port"
server=$spawned
start_client client1.log "$port" 0-4
c1=$spawned
start_client client2.log "$port" 5-9
c2=$spawned
log "server on 127.0.0.1:$port, clients 0-4 and 5-9; reference sim meanwhile"
run_sim "$work/ref"

wait_exit "$server" 150
[ "$rc" = 0 ] || fail "the server exited $rc"
wait_exit "$c1" 30
[ "$rc" = 0 ] || fail "client host 0-4 exited $rc"
wait_exit "$c2" 30
[ "$rc" = 0 ] || fail "client host 5-9 exited $rc"
log "server and both client hosts exited 0"

[ "$(rounds_recorded "$work/run")" = 6 ] || fail "metrics.jsonl has $(rounds_recorded "$work/run") rows, expected 6"
[ -s "$work/run/summary.json" ] || fail "no summary.json"
metrics_check "$work/run" '
assert [r["round"] for r in rows] == list(range(1, 7)), rows
assert all(r["completed"] == r["sampled"] == 5 and r["dropped"] == 0 for r in rows), rows
' || fail "not every round had all 5 sampled clients"
same_rounds "$work/run" "$work/ref"
same_model "$work/run" "$work/ref"
echo "PASS: server + two client processes finish and match the simulator bit for bit"

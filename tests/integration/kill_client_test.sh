#!/usr/bin/env bash
# integration_kill_client: kill -9 one of two client hosts after round 2. The rounds go on
# without it (its sampled clients are dropped at the deadline, later rounds sample only the
# live ones), the server completes all 6 rounds and exits 0, and the surviving host exits 0.
source "$(dirname "$0")/lib.sh" "$@"

port=$(free_port)
# 40 local epochs (~0.3 s a round here): with the default 2 a round takes ~0.05 s, and by the time
# round 2 is seen and the host killed the run may be past round 4, leaving nothing to test.
start_server "$work/run" "$port" --round-timeout 6 --local-epochs 40
server=$spawned
start_client client1.log "$port" 0-4
c1=$spawned
start_client client2.log "$port" 5-9
c2=$spawned

wait_until 90 "round 2 to be recorded" at_least_rounds "$work/run" 2
killed_after=$(rounds_recorded "$work/run")
crash "$c2"
log "client host 5-9 killed (-9) after $killed_after rounds"

wait_exit "$server" 150
[ "$rc" = 0 ] || fail "the server exited $rc"
wait_exit "$c1" 30
[ "$rc" = 0 ] || fail "client host 0-4 exited $rc"

metrics_check "$work/run" "
killed_after = $killed_after
assert [r['round'] for r in rows] == list(range(1, 7)), [r['round'] for r in rows]
after = rows[killed_after:]
assert len(after) >= 3, f'the kill came too late ({killed_after} rounds done) to test anything'
print('round, sampled, completed, dropped after the kill:',
      [(r['round'], r['sampled'], r['completed'], r['dropped']) for r in after])
assert all(r['completed'] >= 1 for r in after), 'a round completed with no update'
assert any(r['dropped'] > 0 for r in after), 'no round dropped the dead clients'
# All 5 live clients (0-4) cannot fill a sample of 5 that includes a dead one, so a round
# where nobody was dropped must have sampled only live clients: completed == sampled.
assert all(r['dropped'] > 0 or r['completed'] == r['sampled'] for r in after), after
" || fail "metrics.jsonl does not show the dead host's clients being dropped"
echo "PASS: the run survives a client host killed with -9"

#!/usr/bin/env bash
# integration_kill_server_resume: kill -9 the server after round 3 and restart it with
# --resume on the same address. The client hosts, still running, reconnect and re-join by
# themselves, the run finishes, and the final model is bit-identical to an uninterrupted
# run with the same config and seed (the in-process simulator).
source "$(dirname "$0")/lib.sh" "$@"

port=$(free_port)
# 20 local epochs (~0.2 s a round): with the default 2 rounds take ~0.05 s and the run can be
# past its last round before the kill lands. The reference simulation uses the same flags.
SLOW=(--local-epochs 20)
start_server "$work/run" "$port" "${SLOW[@]}"
server=$spawned
start_client client1.log "$port" 0-4
c1=$spawned
start_client client2.log "$port" 5-9
c2=$spawned

wait_until 120 "round 3 to be recorded" at_least_rounds "$work/run" 3
crash "$server"
killed_after=$(rounds_recorded "$work/run")
log "server killed (-9) after $killed_after recorded rounds"
[ "$killed_after" -lt 6 ] || fail "the run finished before the kill ($killed_after rounds)"
[ -s "$work/run/checkpoint.bin" ] || fail "no checkpoint.bin after $killed_after rounds"
cp "$work/run/metrics.jsonl" "$work/metrics-at-kill.jsonl"
[ ! -e "$work/run/model.bin" ] || fail "model.bin exists although the run did not finish"
for c in "$c1" "$c2"; do kill -0 "$c" 2>/dev/null || fail "a client host exited when the server died"; done

start_server "$work/run" "$port" "${SLOW[@]}" --resume
server=$spawned
log "server restarted with --resume; reference sim meanwhile"
run_sim "$work/ref" "${SLOW[@]}"

wait_exit "$server" 150
[ "$rc" = 0 ] || fail "the resumed server exited $rc"
wait_exit "$c1" 30
[ "$rc" = 0 ] || fail "client host 0-4 exited $rc"
wait_exit "$c2" 30
[ "$rc" = 0 ] || fail "client host 5-9 exited $rc"

metrics_check "$work/run" '
assert [r["round"] for r in rows] == list(range(1, 7)), [r["round"] for r in rows]
' || fail "metrics.jsonl of the resumed run does not hold rounds 1-6 exactly once"
# It resumed rather than started over: the new server ran only the rounds after its checkpoint.
# The checkpoint is written right after a round's row, so a kill in between re-runs that one
# round (never more); every row before the resumed round is kept byte for byte (a rerun would
# record other timings).
first=$(grep -oE 'round +[0-9]+/6' "$work/server-run-2.log" | head -n1 | grep -oE '[0-9]+/' | tr -d /)
[ "${first:-0}" -ge "$killed_after" ] && [ "${first:-0}" -le $((killed_after + 1)) ] ||
  fail "the resumed server's first round is '${first}', expected $killed_after or $((killed_after + 1))"
kept=$((first - 1))
head -n "$kept" "$work/run/metrics.jsonl" | cmp -s - <(head -n "$kept" "$work/metrics-at-kill.jsonl") ||
  fail "the rows of rounds 1-$kept were rewritten after the restart"
log "resumed at round $first (rows 1-$kept kept as recorded)"
same_rounds "$work/run" "$work/ref"
same_model "$work/run" "$work/ref"
echo "PASS: a server killed with -9 resumes from its checkpoint and finishes bit-identically"

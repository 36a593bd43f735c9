#!/usr/bin/env bash
# integration_crash_after_checkpoint: the process dies at the worst moment — right after round 3's
# checkpoint is on disk, before anything else happens. gdb stops lotteryfl-sim when its third
# lfl::RoundCoordinator::WriteCheckpointWithRetry call returns (a snapshot or a log record) and kills it there (SIGKILL), which a kill -9 from outside
# can only hit by luck. After `--resume` the run must still record every round exactly once in
# metrics.jsonl and end with the model of an uninterrupted run.
# Exit 77 (skip) without gdb.
source "$(dirname "$0")/lib.sh" "$@"
command -v gdb >/dev/null || skip "gdb is not installed"

with_flags
timeout -k 5 180 gdb -batch -nx -ex 'set pagination off' -ex 'set disable-randomization off' \
  -ex 'break lfl::RoundCoordinator::WriteCheckpointWithRetry' -ex run -ex continue -ex continue -ex finish -ex kill \
  --args "$bin/lotteryfl-sim" "${FLAGS[@]}" --parallel 2 --out "$work/run" >"$work/gdb.log" 2>&1 ||
  fail "gdb exited $?"
grep -q 'Breakpoint 1 at' "$work/gdb.log" || fail "gdb could not break in lfl::RoundCoordinator::WriteCheckpointWithRetry (renamed?)"
[ "$(grep -c 'hit Breakpoint 1' "$work/gdb.log")" = 3 ] || fail "the run did not reach its third checkpoint under gdb"
[ ! -e "$work/run/model.bin" ] || fail "the run finished although it was killed in round 3"
[ -s "$work/run/checkpoint.bin" ] || fail "no checkpoint.bin after the kill"
log "killed right after the third checkpoint; $(rounds_recorded "$work/run") rows recorded by then"

start_sim "$work/ref"
ref=$spawned
run_sim "$work/run" --resume
finish_sim "$ref" "$work/ref"
metrics_check "$work/run" '
assert [r["round"] for r in rows] == list(range(1, 7)), [r["round"] for r in rows]
' || fail "metrics.jsonl does not hold rounds 1-6 exactly once after a crash right after a checkpoint"
same_rounds "$work/run" "$work/ref"
same_model "$work/run" "$work/ref"
echo "PASS: a crash right after a checkpoint loses no round"

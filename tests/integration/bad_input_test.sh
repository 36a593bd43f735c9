#!/usr/bin/env bash
# integration_bad_input: the binaries refuse bad input with a non-zero exit and a message
# that says what is wrong (bad checkpoints: bad_checkpoint_test.sh):
#   - a client with a wrong or without a token (server started with --tokens);
#   - a client hosting ids the run does not have (50-51 of a 10-client run);
#   - out-of-range flag values (--fraction 2, --parallel 0, ...) exit 2, the usage-error code,
#     naming the flag.
source "$(dirname "$0")/lib.sh" "$@"

# --- flags -------------------------------------------------------------------------------
# usage_error CODE BINARY PATTERN ARGS...: BINARY ARGS exits CODE and its output matches PATTERN.
usage_error() {
  local want=$1 b=$2 pattern=$3
  shift 3
  local logfile=$work/flags.log
  rc=0
  timeout 30 "$bin/$b" "$@" >"$logfile" 2>&1 || rc=$?
  [ "$rc" = "$want" ] || fail "$b $* exited $rc, expected $want: $(tail -n 2 "$logfile")"
  grep -qiE -- "$pattern" "$logfile" || fail "$b $*: the message does not match /$pattern/: $(tail -n 2 "$logfile")"
}
for b in lotteryfl-server lotteryfl-sim; do
  usage_error 2 "$b" '--fraction' --fraction 2 --out "$work/flags"
  usage_error 2 "$b" '--algorithm' --algorithm fedsgd --out "$work/flags"
done
usage_error 2 lotteryfl-client '--parallel' --parallel 0
usage_error 2 lotteryfl-client '--client-ids' --client-ids 5-x
[ ! -e "$work/flags" ] || fail "a run refused for its flags still created its --out directory"
log "bad flags: exit 2 with the flag named"

# --- credentials and ids -----------------------------------------------------------------
for id in 0 1 2 3 4 5 6 7 8 9; do printf '%d token-%d-%s\n' "$id" "$id" "$RANDOM$RANDOM"; done >"$work/tokens.txt"
printf '0 not-the-token\n' >"$work/wrong-tokens.txt"
port=$(free_port)
start_server "$work/run" "$port" --tokens "$work/tokens.txt"
server=$spawned

start_client wrong-token.log "$port" 0 --tokens "$work/wrong-tokens.txt" --give-up 20
wrong=$spawned
start_client no-token.log "$port" 1 --give-up 20
none=$spawned
start_client unknown-ids.log "$port" 50-51 --tokens "$work/tokens.txt" --give-up 20
unknown=$spawned
wait_exit "$wrong" 40
expect_refusal wrong-token.log "$rc" 'token' "a client with a wrong token"
wait_exit "$none" 40
expect_refusal no-token.log "$rc" 'token' "a client without a token"
wait_exit "$unknown" 40
expect_refusal unknown-ids.log "$rc" 'unknown client|client id 50' "a client for ids 50-51"
[ "$(rounds_recorded "$work/run")" = 0 ] || fail "a round ran although no legitimate client joined"
kill -0 "$server" 2>/dev/null || fail "the server died after refusing bad clients"
timeout 30 "$bin/lotteryfl-client" --probe "127.0.0.1:$port" >"$work/probe.log" 2>&1 ||
  fail "the server is not SERVING after refusing bad clients"

echo "PASS: bad flags, wrong or missing tokens and unknown client ids are refused"

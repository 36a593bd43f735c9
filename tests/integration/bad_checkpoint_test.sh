#!/usr/bin/env bash
# integration_bad_checkpoint: `lotteryfl-server --resume` refuses a checkpoint it cannot trust —
# missing, random bytes, truncated, one flipped bit in the global model, or written with another
# seed — with an error exit and a message naming the problem, and leaves the file as it was.
source "$(dirname "$0")/lib.sh" "$@"

log "a real checkpoint from a one-round run"
run_sim "$work/one" --rounds 1
good=$work/one/checkpoint.bin
[ -s "$good" ] || fail "the one-round run wrote no checkpoint.bin"
size=$(stat -c %s "$good")

# bad_copy NAME: an empty run directory $work/NAME for a doctored checkpoint.
bad_copy() { mkdir -p "$work/$1"; }
bad_copy missing
bad_copy garbage && head -c 4096 /dev/urandom >"$work/garbage/checkpoint.bin"
bad_copy truncated && head -c $((size / 2)) "$good" >"$work/truncated/checkpoint.bin"
bad_copy bitflip && $PY - "$good" "$work/bitflip/checkpoint.bin" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[len(data) // 3] ^= 0x01  # inside the global model's weights
open(sys.argv[2], "wb").write(data)
PY
bad_copy seed && cp "$good" "$work/seed/checkpoint.bin"

# resume_refused NAME PATTERN WHAT [FLAGS...]: the server resuming from $work/NAME refuses it.
resume_refused() {
  local name=$1 pattern=$2 what=$3
  shift 3
  with_flags "$@"
  local before=
  [ -f "$work/$name/checkpoint.bin" ] && before=$(md5sum <"$work/$name/checkpoint.bin")
  rc=0
  timeout 60 "$bin/lotteryfl-server" "${FLAGS[@]}" --listen "127.0.0.1:$(free_port)" --insecure \
    --out "$work/$name" --resume >"$work/resume-$name.log" 2>&1 || rc=$?
  expect_refusal "resume-$name.log" "$rc" "$pattern" "$what"
  if [ -n "$before" ]; then
    [ "$(md5sum <"$work/$name/checkpoint.bin")" = "$before" ] || fail "$what: the refused checkpoint was modified"
  fi
}

resume_refused missing 'checkpoint' "--resume without a checkpoint"
resume_refused garbage 'corrupt checkpoint' "--resume from random bytes"
resume_refused truncated 'corrupt checkpoint' "--resume from a truncated checkpoint"
resume_refused bitflip 'corrupt|checksum' "--resume from a checkpoint with one flipped bit"
resume_refused seed 'seed' "--resume with another seed" --seed 8
echo "PASS: missing, corrupt and foreign checkpoints are refused"

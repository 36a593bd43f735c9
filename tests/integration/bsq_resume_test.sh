#!/usr/bin/env bash
# integration_bsq_resume: LotteryFL + BSQ through real server and client processes.
#   - every client's precision is carried across rounds by the server: the fc1 bits fall round
#     after round (they would restart at 8 every round otherwise) and never exceed 8;
#   - kill -9 of the server after round 3 and a restart with --resume finish bit-identically to
#     an uninterrupted in-process run: masks derived by the server, and the per-client bits, come
#     back from the checkpoint (a resumed client restarting at 8 bits would change the model);
#   - --bsq-min-bits 3 keeps every layer at 3 bits or more.
source "$(dirname "$0")/lib.sh" "$@"

BSQ=(--quant bsq --local-epochs 20 --lr 0.05 --bsq-fraction 0.5 --bsq-alpha 30)
port=$(free_port)
start_server "$work/run" "$port" "${BSQ[@]}"
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

start_server "$work/run" "$port" "${BSQ[@]}" --resume
server=$spawned
log "server restarted with --resume; reference sim meanwhile"
run_sim "$work/ref" "${BSQ[@]}"
run_sim "$work/floor" "${BSQ[@]}" --bsq-min-bits 3 --rounds 4

wait_exit "$server" 150
[ "$rc" = 0 ] || fail "the resumed server exited $rc"
wait_exit "$c1" 30
[ "$rc" = 0 ] || fail "client host 0-4 exited $rc"
wait_exit "$c2" 30
[ "$rc" = 0 ] || fail "client host 5-9 exited $rc"

same_rounds "$work/run" "$work/ref"
same_model "$work/run" "$work/ref"
$PY - "$work/run/metrics.jsonl" "$work/ref/metrics.jsonl" "$work/run/summary.json" <<'PY' || fail "BSQ precision was not carried"
import json, sys
run, ref = ([json.loads(l) for l in open(p) if l.strip()] for p in sys.argv[1:3])
summary = json.load(open(sys.argv[3]))
assert [r["layer_bits"] for r in run] == [r["layer_bits"] for r in ref], "bits differ from the reference"
fc1 = summary["layer_names"].index("fc1.weight")
bits = [r["layer_bits"][fc1] for r in run]
print("fc1 bits per round (mean over the round's clients):", bits)
assert all(0 <= b <= 8 for r in run for b in r["layer_bits"]), [r["layer_bits"] for r in run]
assert bits[-1] <= bits[0] - 2, f"fc1 precision did not fall across rounds: {bits}"
ratio = [r["dense_fp32_bytes"] / r["uplink_bytes"] for r in run]
print("uplink: dense fp32 / sent per round:", [round(x, 1) for x in ratio])
assert ratio[-1] > ratio[0], ratio
PY
metrics_check "$work/floor" '
bits = [b for r in rows for b in r["layer_bits"]]
print("--bsq-min-bits 3: bits per layer and round", [r["layer_bits"] for r in rows])
assert len(rows) == 4 and min(bits) >= 3, bits
' || fail "--bsq-min-bits 3 sent a layer below 3 bits"
echo "PASS: BSQ precision is carried across rounds and survives a server crash bit-identically"

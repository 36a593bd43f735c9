#!/usr/bin/env bash
# integration_abandon: a client whose own training or encoding fails (here client 0's update goes
# non-finite: the benchmark attack adds noise of sigma 1e300, and the codec refuses to encode
# it) gives its task up with AbandonTask, and the round closes without it instead of waiting
# for its deadline. With --round-timeout 600 a round that waited would outlast finish_sim's
# 180 s bound; every row that counts an abandoned task must have closed in well under 600 s,
# and the run must still aggregate every round from the other clients.
source "$(dirname "$0")/lib.sh" "$@"

log "lotteryfl-sim, client 0 fails its own encoding every time it trains, round deadline 600 s"
run_sim "$work/abandon" --round-timeout 600 --bench-attack noise:1e300 --bench-attack-clients 0
grep -q "not finite" "$work/sim-abandon.log" || fail "client 0's encoding did not fail as the test expects"
metrics_check "$work/abandon" '
abandoned = [r["abandoned"] for r in rows]
print("abandoned per round:", abandoned, "wall seconds:", [round(r["wall_seconds"], 1) for r in rows])
assert len(rows) == 6, len(rows)
assert sum(abandoned) >= 1, "client 0 was never sampled, or its failure was not reported"
for r in rows:
    assert r["completed"] + r["abandoned"] <= r["sampled"], r
    assert r["completed"] >= 1, r
    if r["abandoned"]:
        assert r["wall_seconds"] < 300, f"round {r['round']} waited for the abandoned task: {r['wall_seconds']} s"
' || fail "the abandoned tasks were not reported, or a round waited for one"
echo "PASS: a client that cannot finish its task ends it, and no round waits for it"

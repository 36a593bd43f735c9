#!/usr/bin/env bash
# deploy_gen_tokens: scripts/gen-tokens.sh N prints ids 0..N-1, each with a
# distinct 64-hex-digit token, and refuses a bad N.
set -euo pipefail
src=${LFL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("$src/scripts/gen-tokens.sh" 20)
[ "$(wc -l <<<"$out")" = 20 ] || fail "expected 20 lines"
[ "$(awk '{print $1}' <<<"$out" | tr '\n' ' ')" = "$(seq -s ' ' 0 19) " ] || fail "ids are not 0..19"
grep -Eqv '^[0-9]+ [0-9a-f]{64}$' <<<"$out" && fail "a line is not '<id> <64 hex>'"
[ "$(awk '{print $2}' <<<"$out" | sort -u | wc -l)" = 20 ] || fail "tokens repeat"
[ "$(awk '{print $2}' <<<"$("$src/scripts/gen-tokens.sh" 1)")" != "$(awk 'NR==1{print $2}' <<<"$out")" ] ||
  fail "two runs gave the same token"
for bad in 0 -3 x ""; do
  "$src/scripts/gen-tokens.sh" "$bad" >/dev/null 2>&1 && fail "accepted N='$bad'"
done
echo "PASS: gen-tokens.sh"

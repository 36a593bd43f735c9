#!/usr/bin/env bash
# deploy_gen_tokens: scripts/gen-tokens.sh N prints ids 0..N-1, each with a distinct
# 64-hex-digit token, and refuses a bad N. `gen-tokens.sh N HOSTS DIR` writes per-host
# bundles: contiguous id ranges covering 0..N-1 once, each host's tokens only in its own
# tokens.txt, and a server file holding each token's SHA-256 and its host's certificate CN.
set -euo pipefail
src=${LFL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
gen=$src/scripts/gen-tokens.sh
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("$gen" 20)
[ "$(wc -l <<<"$out")" = 20 ] || fail "expected 20 lines"
[ "$(awk '{print $1}' <<<"$out" | tr '\n' ' ')" = "$(seq -s ' ' 0 19) " ] || fail "ids are not 0..19"
grep -Eqv '^[0-9]+ [0-9a-f]{64}$' <<<"$out" && fail "a line is not '<id> <64 hex>'"
[ "$(awk '{print $2}' <<<"$out" | sort -u | wc -l)" = 20 ] || fail "tokens repeat"
[ "$(awk '{print $2}' <<<"$("$gen" 1)")" != "$(awk 'NR==1{print $2}' <<<"$out")" ] ||
  fail "two runs gave the same token"
for bad in 0 -3 x ""; do
  "$gen" "$bad" >/dev/null 2>&1 && fail "accepted N='$bad'"
done

# Bundles: 11 ids on 3 hosts -> 0-3, 4-7, 8-10.
"$gen" 11 3 "$dir/b" 2>/dev/null
b=$dir/b
[ "$(cat "$b"/host-{0,1,2}/client-ids | tr '\n' ' ')" = "0-3 4-7 8-10 " ] ||
  fail "ranges are $(cat "$b"/host-*/client-ids | tr '\n' ' ')"
[ ! -e "$b/host-3" ] || fail "a fourth bundle was written"
grep -Eqv '^[0-9]+ sha256:[0-9a-f]{64} lotteryfl-host-[0-9]+$' "$b/server-tokens.txt" &&
  fail "a server-tokens.txt line is not '<id> sha256:<64 hex> lotteryfl-host-<h>'"
[ "$(awk '{print $1}' "$b/server-tokens.txt" | tr '\n' ' ')" = "$(seq -s ' ' 0 10) " ] ||
  fail "server-tokens.txt does not list ids 0..10 once each"
for h in 0 1 2; do
  range=$(cat "$b/host-$h/client-ids")
  ids=$(seq -s ' ' "${range%-*}" "${range#*-}")
  [ "$(awk '{print $1}' "$b/host-$h/tokens.txt" | tr ' \n' '  ' | sed 's/ $//')" = "$ids" ] ||
    fail "host-$h/tokens.txt does not hold exactly ids $range"
  grep -Eqv '^[0-9]+ [0-9a-f]{64}$' "$b/host-$h/tokens.txt" && fail "host-$h/tokens.txt: bad line"
  while read -r id token; do
    want="$id sha256:$(printf '%s' "$token" | openssl dgst -sha256 -r | cut -d' ' -f1) lotteryfl-host-$h"
    grep -qxF "$want" "$b/server-tokens.txt" || fail "server line for id $id is not '$want'"
  done <"$b/host-$h/tokens.txt"
  for f in tokens.txt client-ids; do
    [ "$(stat -c %a "$b/host-$h/$f")" = 600 ] || fail "host-$h/$f is not mode 600"
  done
done
all_tokens=$(cat "$b"/host-*/tokens.txt | awk '{print $2}')
[ "$(sort -u <<<"$all_tokens" | wc -l)" = 11 ] || fail "tokens repeat across hosts"
grep -qF -f <(printf '%s\n' $all_tokens) "$b/server-tokens.txt" && fail "server-tokens.txt holds a plain token"
[ "$(stat -c %a "$b/server-tokens.txt")" = 600 ] || fail "server-tokens.txt is not mode 600"
KEY_MODE=0644 "$gen" 2 2 "$dir/m" 2>/dev/null
[ "$(stat -c %a "$dir/m/host-1/tokens.txt")" = 644 ] || fail "KEY_MODE=0644 was not applied"
for bad in "3 0 $dir/x" "3 4 $dir/x" "3 x $dir/x" "3 2" "3 2 $dir/x extra"; do
  # shellcheck disable=SC2086  # $bad is a list of arguments
  "$gen" $bad >/dev/null 2>&1 && fail "accepted arguments '$bad'"
done
echo "PASS: gen-tokens.sh"

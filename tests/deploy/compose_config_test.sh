#!/usr/bin/env bash
# deploy_compose_config: deploy/compose/docker-compose.yml with the committed clients.yml
# (and with a clients file from scripts/compose-clients.sh for 3 hosts) is valid for
# docker-compose (`config -q`) and its rendered form has the promised properties
# (check_compose.py) with credential bundles from gen-certs.sh / gen-tokens.sh: one bundle
# per client service. Broken renderings (a shared bundle, ids that do not add up, a fixed
# --client-ids, a client key on the server) are refused; clients.yml is what the generator
# prints for 2 hosts.
set -euo pipefail
src=${LFL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v docker-compose >/dev/null; then
  echo "SKIP: docker-compose is not installed (Debian package docker-compose)"
  exit 77
fi
if ! /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
  echo "SKIP: PyYAML is not installed (Debian package python3-yaml)"
  exit 77
fi
compose=$src/deploy/compose
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
bundles() { # bundles DIR N HOSTS
  HOSTS=$3 "$src/scripts/gen-certs.sh" "$1" 2>/dev/null
  "$src/scripts/gen-tokens.sh" "$2" "$3" "$1" 2>/dev/null
}
# render CLIENTS_FILE [VAR=value...]: docker-compose config of the server file + CLIENTS_FILE.
render() {
  local clients=$1
  shift
  env "$@" docker-compose --project-directory "$compose" -f "$compose/docker-compose.yml" \
    -f "$clients" config
}
check() { /usr/bin/python3 "$here/check_compose.py"; }

cmp -s <("$src/scripts/compose-clients.sh" 2) "$compose/clients.yml" ||
  fail "deploy/compose/clients.yml differs from scripts/compose-clients.sh 2 (regenerate it)"
bundles "$dir/two" 10 2
render "$compose/clients.yml" LFL_SECRETS_DIR="$dir/two" >/dev/null || fail "docker-compose config rejected the files"
render "$compose/clients.yml" LFL_SECRETS_DIR="$dir/two" | check || fail "default settings"
(cd "$compose" && LFL_SECRETS_DIR="$dir/two" docker-compose config -q) ||
  fail "COMPOSE_FILE in .env does not name both files"

bundles "$dir/three" 12 3
"$src/scripts/compose-clients.sh" 3 >"$dir/clients3.yml"
render "$dir/clients3.yml" LFL_SECRETS_DIR="$dir/three" LFL_CLIENTS=12 | check || fail "3 hosts, 12 clients"
render "$dir/clients3.yml" LFL_SECRETS_DIR="$dir/three" LFL_CLIENTS=12 |
  grep -c 'target: client.key' | grep -qx 3 || fail "3 hosts do not hold 3 client keys"

refused() { # refused WHAT CLIENTS_FILE VAR=value...: the checker rejects this rendering
  local what=$1 out
  shift
  out=$(render "$@" | check 2>&1) && fail "the checker accepted $what"
  echo "refused $what: $(head -n 1 <<<"$out")"
}
refused "ids that do not add up to --clients" "$dir/clients3.yml" LFL_SECRETS_DIR="$dir/three" LFL_CLIENTS=13
refused "3 services on 2 bundles" "$dir/clients3.yml" LFL_SECRETS_DIR="$dir/two" LFL_CLIENTS=10
sed 's|/host-1/|/host-0/|' "$dir/clients3.yml" >"$dir/shared.yml"
refused "two services sharing one bundle" "$dir/shared.yml" LFL_SECRETS_DIR="$dir/three" LFL_CLIENTS=12
sed 's|      - --tokens=/run/secrets/tokens.txt|&\n      - --client-ids=0-3|' "$dir/clients3.yml" >"$dir/fixed.yml"
refused "a fixed --client-ids" "$dir/fixed.yml" LFL_SECRETS_DIR="$dir/three" LFL_CLIENTS=12
cat >"$dir/leak.yml" <<'YML'
version: "3.8"
services:
  server:
    secrets: [host-0-client.key]
YML
sed -n '/^secrets:/,$p' "$dir/clients3.yml" >>"$dir/leak.yml"
render_leak() {
  LFL_SECRETS_DIR="$dir/three" LFL_CLIENTS=12 docker-compose --project-directory "$compose" \
    -f "$compose/docker-compose.yml" -f "$dir/clients3.yml" -f "$dir/leak.yml" config
}
out=$(render_leak | check 2>&1) && fail "the checker accepted a client key on the server"
echo "refused a client key on the server: $(head -n 1 <<<"$out")"
echo "PASS: docker-compose config (2 and 3 client hosts, one bundle each)"

#!/usr/bin/env bash
# deploy_compose_config: deploy/compose/docker-compose.yml is valid for docker-compose
# (`config -q`) and its rendered form has the promised properties (check_compose.py),
# with the defaults and with scaled-up settings; a broken rendering is refused.
set -euo pipefail
src=${LFL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
here=$(dirname "$0")
if ! command -v docker-compose >/dev/null; then
  echo "SKIP: docker-compose is not installed (Debian package docker-compose)"
  exit 77
fi
if ! /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
  echo "SKIP: PyYAML is not installed (Debian package python3-yaml)"
  exit 77
fi
file=$src/deploy/compose/docker-compose.yml
fail() { echo "FAIL: $*" >&2; exit 1; }

docker-compose -f "$file" config -q || fail "docker-compose config rejected $file"
docker-compose -f "$file" config | /usr/bin/python3 "$here/check_compose.py" ||
  fail "default settings"
LFL_CLIENTS=12 LFL_CLIENT_REPLICAS=4 LFL_CLIENTS_PER_REPLICA=3 docker-compose -f "$file" config |
  /usr/bin/python3 "$here/check_compose.py" || fail "scaled settings"
LFL_CLIENT_REPLICAS=4 docker-compose -f "$file" config | /usr/bin/python3 "$here/check_compose.py" \
  2>/dev/null && fail "the checker accepted replicas x ids != --clients"
echo "PASS: docker-compose config"

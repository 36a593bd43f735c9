#!/usr/bin/env bash
# deploy_gen_certs: scripts/gen-certs.sh makes a CA that verifies the server
# certificate for its names (and only as a server) and the client certificate
# as a TLS client; each key matches its certificate; a second run reuses the CA.
set -euo pipefail
src=${LFL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v openssl >/dev/null || { echo "SKIP: openssl is not installed"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$src/scripts/gen-certs.sh" "$dir/certs" lfl.example 10.99.0.1 2>/dev/null
c=$dir/certs
for f in ca.crt ca.key server.crt server.key client.crt client.key; do
  [ -s "$c/$f" ] || fail "missing $f"
done
[ "$(stat -c %a "$c/server.key")" = 600 ] || fail "server.key is not mode 600"

verify() { openssl verify -CAfile "$c/ca.crt" "$@" >/dev/null 2>&1; }
verify -purpose sslserver "$c/server.crt" || fail "server.crt does not verify as a server"
verify -purpose sslclient "$c/client.crt" || fail "client.crt does not verify as a client"
verify -purpose sslserver "$c/client.crt" && fail "client.crt must not pass as a server certificate"
for host in localhost server lfl.example; do
  verify -purpose sslserver -verify_hostname "$host" "$c/server.crt" || fail "no SAN for $host"
done
for ip in 127.0.0.1 10.99.0.1; do
  verify -purpose sslserver -verify_ip "$ip" "$c/server.crt" || fail "no IP SAN for $ip"
done
verify -purpose sslserver -verify_hostname evil.example "$c/server.crt" &&
  fail "server.crt verified for a name it was not issued for"

for n in server client; do
  [ "$(openssl pkey -pubout -in "$c/$n.key")" = "$(openssl x509 -pubkey -noout -in "$c/$n.crt")" ] ||
    fail "$n.key does not match $n.crt"
done

# A foreign CA must not verify our certificates.
"$src/scripts/gen-certs.sh" "$dir/other" 2>/dev/null
openssl verify -CAfile "$dir/other/ca.crt" "$c/server.crt" >/dev/null 2>&1 &&
  fail "a foreign CA verified server.crt"

# Re-running keeps the CA, so clients need not get a new ca.crt.
ca_before=$(sha256sum <"$c/ca.crt")
"$src/scripts/gen-certs.sh" "$c" 2>/dev/null
[ "$(sha256sum <"$c/ca.crt")" = "$ca_before" ] || fail "a second run replaced the CA"
verify -purpose sslserver "$c/server.crt" || fail "reissued server.crt does not verify"
echo "PASS: gen-certs.sh"

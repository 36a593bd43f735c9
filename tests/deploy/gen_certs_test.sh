#!/usr/bin/env bash
# deploy_gen_certs: scripts/gen-certs.sh makes a CA that verifies the server
# certificate for its names (as a server, and as a client for the server's own health
# probe) and one client certificate per host (HOSTS), each only as a TLS client, with
# CN lotteryfl-host-<h>; each key matches its certificate; a second run reuses the CA.
set -euo pipefail
src=${LFL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v openssl >/dev/null || { echo "SKIP: openssl is not installed"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

HOSTS=3 "$src/scripts/gen-certs.sh" "$dir/certs" lfl.example 10.99.0.1 2>/dev/null
c=$dir/certs
for f in ca.crt ca.key server.crt server.key host-{0,1,2}/{ca.crt,client.crt,client.key}; do
  [ -s "$c/$f" ] || fail "missing $f"
done
[ ! -e "$c/host-3" ] || fail "HOSTS=3 wrote a fourth bundle"
[ ! -e "$c/client.crt" ] || fail "a shared client.crt was written (each host has its own)"
for key in server.key host-0/client.key host-2/client.key; do
  [ "$(stat -c %a "$c/$key")" = 600 ] || fail "$key is not mode 600"
done
cmp -s "$c/ca.crt" "$c/host-1/ca.crt" || fail "host-1/ca.crt is not the CA"

verify() { openssl verify -CAfile "$c/ca.crt" "$@" >/dev/null 2>&1; }
verify -purpose sslserver "$c/server.crt" || fail "server.crt does not verify as a server"
verify -purpose sslclient "$c/server.crt" || fail "server.crt does not verify as a client (health probe)"
for h in 0 1 2; do
  crt=$c/host-$h/client.crt
  verify -purpose sslclient "$crt" || fail "host-$h/client.crt does not verify as a client"
  verify -purpose sslserver "$crt" && fail "host-$h/client.crt must not pass as a server certificate"
  [ "$(openssl x509 -in "$crt" -noout -subject -nameopt multiline | sed -n 's/ *commonName *= //p')" \
    = "lotteryfl-host-$h" ] || fail "host-$h/client.crt has not CN lotteryfl-host-$h"
done
for host in localhost server lfl.example; do
  verify -purpose sslserver -verify_hostname "$host" "$c/server.crt" || fail "no SAN for $host"
done
for ip in 127.0.0.1 10.99.0.1; do
  verify -purpose sslserver -verify_ip "$ip" "$c/server.crt" || fail "no IP SAN for $ip"
done
verify -purpose sslserver -verify_hostname evil.example "$c/server.crt" &&
  fail "server.crt verified for a name it was not issued for"

for n in server host-0/client host-2/client; do
  [ "$(openssl pkey -pubout -in "$c/$n.key")" = "$(openssl x509 -pubkey -noout -in "$c/$n.crt")" ] ||
    fail "$n.key does not match $n.crt"
done
[ "$(openssl x509 -pubkey -noout -in "$c/host-0/client.crt")" != \
  "$(openssl x509 -pubkey -noout -in "$c/host-1/client.crt")" ] || fail "two hosts share a key"

# A foreign CA must not verify our certificates; the default is one host bundle.
"$src/scripts/gen-certs.sh" "$dir/other" 2>/dev/null
openssl verify -CAfile "$dir/other/ca.crt" "$c/server.crt" >/dev/null 2>&1 &&
  fail "a foreign CA verified server.crt"
[ -s "$dir/other/host-0/client.crt" ] && [ ! -e "$dir/other/host-1" ] || fail "default is not HOSTS=1"
for bad in 0 x; do
  HOSTS=$bad "$src/scripts/gen-certs.sh" "$dir/bad" 2>/dev/null && fail "accepted HOSTS=$bad"
done

# Re-running keeps the CA, so clients need not get a new ca.crt.
ca_before=$(sha256sum <"$c/ca.crt")
"$src/scripts/gen-certs.sh" "$c" 2>/dev/null
[ "$(sha256sum <"$c/ca.crt")" = "$ca_before" ] || fail "a second run replaced the CA"
verify -purpose sslserver "$c/server.crt" || fail "reissued server.crt does not verify"
verify -purpose sslclient "$c/host-0/client.crt" || fail "reissued host-0/client.crt does not verify"
echo "PASS: gen-certs.sh"

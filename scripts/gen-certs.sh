#!/usr/bin/env bash
# Makes the TLS material for a lotteryfl deployment with openssl:
#   OUT_DIR/ca.crt ca.key             a private CA (reused if OUT_DIR already holds one)
#   OUT_DIR/server.crt server.key     server certificate; SANs: localhost, 127.0.0.1, ::1,
#                                     server, and every SERVER_NAME given (IPs become IP SANs).
#                                     It is also valid as a TLS client, so that the server's own
#                                     health probe can pass mutual TLS without a client's key.
#   OUT_DIR/host-<h>/ca.crt client.crt client.key   for each client host h in 0..HOSTS-1
#                                     (HOSTS=1 by default): the bundle that host alone holds;
#                                     client.crt has CN lotteryfl-host-<h> and extendedKeyUsage
#                                     clientAuth, the CN that server-tokens.txt binds to host h's
#                                     ids (scripts/gen-tokens.sh N HOSTS OUT_DIR).
# Keys are ECDSA P-256, mode 0600 unless KEY_MODE says otherwise (e.g. KEY_MODE=0644 when
# a container running as another user must read bind-mounted keys).
#
#   scripts/gen-certs.sh OUT_DIR [SERVER_NAME...]
#   HOSTS=3 scripts/gen-certs.sh deploy/certs/out lotteryfl-server lotteryfl-server.lotteryfl.svc 10.77.0.1
set -euo pipefail

if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
  echo "usage: $0 OUT_DIR [SERVER_NAME...]" >&2
  exit 2
fi
out=$1
shift
days=${DAYS:-825}
hosts=${HOSTS:-1}
if ! [[ $hosts =~ ^[0-9]+$ ]] || [ "$hosts" -lt 1 ]; then
  echo "gen-certs: HOSTS must be a number >= 1, not '$hosts'" >&2
  exit 2
fi
key_mode=${KEY_MODE:-0600}
mkdir -p "$out"
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

new_key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1"; }

is_ip() { [[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ || $1 == *:* ]]; }

if [ ! -s "$out/ca.key" ] || [ ! -s "$out/ca.crt" ]; then
  new_key "$out/ca.key"
  openssl req -x509 -new -key "$out/ca.key" -sha256 -days 3650 -subj "/CN=lotteryfl CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$out/ca.crt"
fi

sans="DNS:localhost,IP:127.0.0.1,IP:::1,DNS:server"
for name in "$@"; do
  if is_ip "$name"; then sans+=",IP:$name"; else sans+=",DNS:$name"; fi
done

# sign PATH CN EXTENSIONS: PATH.key + PATH.crt (PATH under OUT_DIR) signed by the CA.
sign() {
  local csr=$work/${1//\//_}
  new_key "$out/$1.key"
  openssl req -new -key "$out/$1.key" -subj "/CN=$2" -out "$csr.csr"
  printf '%s\n' "$3" >"$csr.ext"
  openssl x509 -req -in "$csr.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
    -CAcreateserial -CAserial "$work/ca.srl" -days "$days" -sha256 \
    -extfile "$csr.ext" -out "$out/$1.crt" 2>/dev/null
  chmod 0644 "$out/$1.crt"
  chmod "$key_mode" "$out/$1.key"
}

chmod 0644 "$out/ca.crt"
chmod 0600 "$out/ca.key"
sign server lotteryfl-server "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$sans"
for ((h = 0; h < hosts; h++)); do
  mkdir -p "$out/host-$h"
  install -m 0644 "$out/ca.crt" "$out/host-$h/ca.crt"
  sign "host-$h/client" "lotteryfl-host-$h" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
done
echo "gen-certs: wrote $out/{ca,server}.{crt,key} and host-{0..$((hosts - 1))}/{ca.crt,client.crt,client.key};" \
  "server SANs: $sans" >&2

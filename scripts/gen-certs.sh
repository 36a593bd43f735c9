#!/usr/bin/env bash
# Makes the TLS material for a lotteryfl deployment with openssl:
#   OUT_DIR/ca.crt ca.key             a private CA (reused if OUT_DIR already holds one)
#   OUT_DIR/server.crt server.key     server certificate; SANs: localhost, 127.0.0.1, ::1,
#                                     server, and every SERVER_NAME given (IPs become IP SANs)
#   OUT_DIR/client.crt client.key     client certificate (extendedKeyUsage clientAuth) for mutual TLS
# Keys are ECDSA P-256, mode 0600 unless KEY_MODE says otherwise (e.g. KEY_MODE=0644 when
# a container running as another user must read bind-mounted keys).
#
#   scripts/gen-certs.sh OUT_DIR [SERVER_NAME...]
#   scripts/gen-certs.sh deploy/certs/out lotteryfl-server lotteryfl-server.lotteryfl.svc 10.77.0.1
set -euo pipefail

if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
  echo "usage: $0 OUT_DIR [SERVER_NAME...]" >&2
  exit 2
fi
out=$1
shift
days=${DAYS:-825}
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

# sign NAME CN EXTENSIONS: NAME.key + NAME.crt signed by the CA.
sign() {
  new_key "$out/$1.key"
  openssl req -new -key "$out/$1.key" -subj "/CN=$2" -out "$work/$1.csr"
  printf '%s\n' "$3" >"$work/$1.ext"
  openssl x509 -req -in "$work/$1.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
    -CAcreateserial -CAserial "$work/ca.srl" -days "$days" -sha256 \
    -extfile "$work/$1.ext" -out "$out/$1.crt" 2>/dev/null
}

sign server lotteryfl-server "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$sans"
sign client lotteryfl-client "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

chmod 0644 "$out/ca.crt" "$out/server.crt" "$out/client.crt"
chmod "$key_mode" "$out/server.key" "$out/client.key"
chmod 0600 "$out/ca.key"
echo "gen-certs: wrote $out/{ca,server,client}.{crt,key}; server SANs: $sans" >&2

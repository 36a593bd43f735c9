#!/usr/bin/env bash
# Issue 18 acceptance figures for the transport, each measured side by side with the same run
# undisturbed, on real processes over loopback (fedavg, 4 clients, tokens, --insecure; the
# /metrics figures with TLS and a bearer token):
#   1. rounds per minute under a flood of 64 header-less upload streams vs undisturbed;
#   2. 1,100 idle TCP/HTTP2 connections against a server started at a 1024 open-files soft
#      limit (prlimit --nofile=1024:4096): newcomers' Polls and an honest run, vs undisturbed;
#   3. /metrics scrapes that succeed (40, one every 0.5 s) undisturbed, under 8 and under 100
#      slow connections.
#
#   bench/security/flood.sh [BUILD_DIR] [ROUNDS]      (defaults: build, 15)
#
# Needs python3-grpcio, python3-grpc-tools and Fashion-MNIST (the scripts skip otherwise).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-$src/build}
rounds=${2:-15}
py=/usr/bin/python3
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
echo "# machine: $(getconf _NPROCESSORS_ONLN) cores online, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg) at start, $(date -u +%FT%TZ)"
echo "# 1. header-less upload flood, $rounds rounds, seed 1, ${REPEAT:-3} pairs"
nice "$py" "$src/tests/security/transport_header_flood_test.py" "$build/bin" --measure "$rounds"
echo "# 2. idle connections at a 1024 open-files soft limit, 4 rounds, seed 1"
nice "$py" "$src/tests/security/transport_idle_connections_test.py" "$build/bin" --measure
echo "# 3. /metrics under slow connections"
nice "$py" "$src/tests/security/transport_metrics_test.py" "$build/bin" --measure
echo "# load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

"""Shared by the transport_* attack tests and bench/security/flood.sh: start a real
lotteryfl-server (fedavg, 4 clients, tokens, plaintext on loopback with --insecure unless TLS
files are given) and honest lotteryfl-client processes, generate the Python gRPC stubs, read
/metrics and metrics.jsonl.

Exit codes of the tests: 0 pass, 1 fail, 77 skip (no python3-grpcio / grpc_tools or
Fashion-MNIST).
"""
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

CLIENTS = 4
_work_dirs = []  # removed by passed(); kept for a look when a test fails
DATASET = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def skip(why):
    print(f"SKIP: {why}", flush=True)
    sys.exit(77)


def cleanup():
    for d in _work_dirs:
        shutil.rmtree(d, ignore_errors=True)


def passed():
    cleanup()
    print("PASS", flush=True)


def fail(why):
    print(f"FAIL: {why}", flush=True)
    sys.exit(1)


def require():
    try:
        import grpc  # noqa: F401
        from grpc_tools import protoc  # noqa: F401
    except ImportError:
        skip("python3-grpcio and python3-grpc-tools are needed")
    if not os.path.exists(DATASET):
        skip("Fashion-MNIST is not installed (dataset-fashion-mnist)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def src_dir():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_stubs(work):
    from grpc_tools import protoc
    proto_dir = os.path.join(src_dir(), "proto")
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={work}", f"--grpc_python_out={work}",
                      os.path.join(proto_dir, "lotteryfl.proto")])
    if rc != 0:
        fail("protoc could not compile proto/lotteryfl.proto")
    _work_dirs.append(work)
    sys.path.insert(0, work)
    import lotteryfl_pb2
    import lotteryfl_pb2_grpc
    return lotteryfl_pb2, lotteryfl_pb2_grpc


def run_flags(rounds, seed=1, round_timeout=30):
    """The issue-18 setup: fedavg, 4 clients, a tiny Fashion-MNIST partition."""
    return ["--dataset", "fashion-mnist", "--partition", "shards", "--clients", str(CLIENTS), "--fraction", "1",
            "--samples-per-class", "10", "--test-per-client", "20", "--local-epochs", "1", "--rounds", str(rounds),
            "--round-timeout", str(round_timeout), "--join-timeout", "60", "--algorithm", "fedavg",
            "--seed", str(seed)]


class Run:
    """One server (and optionally its honest clients) in a temporary directory."""

    def __init__(self, bin_dir, rounds, extra_server_flags=(), prefix=None, tls=False, seed=1):
        self.bin_dir = bin_dir
        self.work = tempfile.mkdtemp(prefix="lfl-transport-")
        _work_dirs.append(self.work)
        self.rounds = rounds
        self.port = free_port()
        self.metrics_port = free_port()
        self.tokens = {i: secrets.token_hex(32) for i in range(CLIENTS)}
        self.tokens_file = os.path.join(self.work, "tokens.txt")
        with open(self.tokens_file, "w") as f:
            for i, t in self.tokens.items():
                f.write(f"{i} {t}\n")
        self.tls = tls
        if tls:
            self.cert = os.path.join(self.work, "server.crt")
            self.key = os.path.join(self.work, "server.key")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                            "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext",
                            "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", self.key, "-out", self.cert],
                           check=True, capture_output=True)
        self.env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        self.out = os.path.join(self.work, "run")
        cmd = [os.path.join(bin_dir, "lotteryfl-server"), *run_flags(rounds, seed), "--listen",
               f"127.0.0.1:{self.port}", "--tokens", self.tokens_file, "--out", self.out,
               "--metrics-listen", str(self.metrics_port)]
        cmd += ["--tls-cert", self.cert, "--tls-key", self.key] if tls else ["--insecure"]
        cmd += list(extra_server_flags)
        self.server_log_path = os.path.join(self.work, "server.log")
        self.server_log = open(self.server_log_path, "w")
        self.procs = []
        self.server = subprocess.Popen((prefix or []) + cmd, stdout=self.server_log, stderr=subprocess.STDOUT,
                                       env=self.env)
        self.procs.append(self.server)
        self.started = time.monotonic()

    def target(self):
        return f"127.0.0.1:{self.port}" if not self.tls else f"localhost:{self.port}"

    def channel(self, separate=True):
        import grpc
        options = [("grpc.use_local_subchannel_pool", 1)] if separate else []
        if self.tls:
            creds = grpc.ssl_channel_credentials(root_certificates=open(self.cert, "rb").read())
            return grpc.secure_channel(self.target(), creds, options=options)
        return grpc.insecure_channel(self.target(), options=options)

    def wait_ready(self, timeout=60):
        import grpc
        ch = self.channel()
        try:
            grpc.channel_ready_future(ch).result(timeout=timeout)
        finally:
            ch.close()

    def start_clients(self, parallel=2):
        cmd = [os.path.join(self.bin_dir, "lotteryfl-client"), "--server", self.target(), "--client-ids",
               f"0-{CLIENTS - 1}", "--parallel", str(parallel), "--tokens", self.tokens_file]
        cmd += ["--tls-ca", self.cert] if self.tls else ["--insecure"]
        self.client_log_path = os.path.join(self.work, "client.log")
        self.clients_started = time.monotonic()
        self.procs.append(subprocess.Popen(cmd, stdout=open(self.client_log_path, "w"), stderr=subprocess.STDOUT,
                                           env=self.env))

    def wait_server(self, timeout):
        try:
            self.server.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.server.returncode

    def rows(self):
        path = os.path.join(self.out, "metrics.jsonl")
        if not os.path.exists(path):
            return []
        return [json.loads(line) for line in open(path).read().splitlines() if line.strip()]

    def scrape(self, timeout=5, token=None, context=None):
        scheme = "https" if context is not None else "http"
        host = "localhost" if context is not None else "127.0.0.1"
        req = urllib.request.Request(f"{scheme}://{host}:{self.metrics_port}/metrics")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
            return r.read().decode()

    def refusals(self, text):
        return {m.group(1): float(m.group(2))
                for m in re.finditer(r'^lotteryfl_refusals_total\{cause="([a-z_]+)"\} (\S+)$', text, re.M)}

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def tail(self, path, n=15):
        try:
            return "\n".join(open(path).read().splitlines()[-n:])
        except OSError:
            return ""


def bin_dir_arg():
    return sys.argv[1] if len(sys.argv) > 1 else "build/bin"

#!/usr/bin/python3
"""The two probes of issue 11, rerunnable against a real lotteryfl-server process.

  hostile_client_probe.py BIN_DIR

Starts lotteryfl-server (tokens from a generated file, plaintext on loopback: --insecure only
waives TLS) with a tiny Fashion-MNIST run, and honest clients (lotteryfl-client), then, as a
hostile client speaking the protocol with Python gRPC (stubs generated from
proto/lotteryfl.proto into a temporary directory):

1. upload flood: 8 concurrent SubmitUpdate streams with a wrong token, each declaring a
   200 MiB payload and sending 1 MiB chunks. Every one must be refused UNAUTHENTICATED, the
   refusal must come before the payload is read (the stream ends long before 200 MiB are
   sent), and the server's resident memory may grow by less than 64 MiB;
2. unauthenticated Leave for every client id, repeatedly, while the run goes on: every one is
   refused and the run finishes all its rounds.

Prints the measured figures. Exit 0 pass, 1 fail, 77 skip (no python3-grpcio, grpc_tools or
Fashion-MNIST).
"""
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROUNDS = 6
CLIENTS = 4
FLOOD_STREAMS = 8
FLOOD_DECLARED = 200 << 20
CHUNK = 1 << 20
RSS_BOUND = 64 << 20


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def fail(why):
    print(f"FAIL: {why}")
    sys.exit(1)


try:
    import grpc
    from grpc_tools import protoc
except ImportError:
    skip("python3-grpcio and python3-grpc-tools are needed")

if not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
    skip("Fashion-MNIST is not installed (dataset-fashion-mnist)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def load_stubs(src, work):
    proto_dir = os.path.join(src, "proto")
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={work}", f"--grpc_python_out={work}",
                      os.path.join(proto_dir, "lotteryfl.proto")])
    if rc != 0:
        fail("protoc could not compile proto/lotteryfl.proto")
    sys.path.insert(0, work)
    import lotteryfl_pb2
    import lotteryfl_pb2_grpc
    return lotteryfl_pb2, lotteryfl_pb2_grpc


def flood_stream(stub, pb, results, index):
    """One wrong-token upload declaring 200 MiB; counts the chunks the client got to send."""
    sent = [0]

    def chunks():
        header = pb.UpdateChunk()
        header.header.client.client_id = index % CLIENTS
        header.header.client.token = "wrong-" + secrets.token_hex(8)
        header.header.round = 1
        header.header.payload_bytes = FLOOD_DECLARED
        yield header
        data = b"\xa5" * CHUNK
        for _ in range(FLOOD_DECLARED // CHUNK):
            sent[0] += 1
            yield pb.UpdateChunk(data=data)

    t0 = time.monotonic()
    try:
        stub.SubmitUpdate(chunks(), timeout=60)
        results[index] = ("OK", sent[0], time.monotonic() - t0)
    except grpc.RpcError as e:
        results[index] = (e.code().name, sent[0], time.monotonic() - t0)


def main():
    bin_dir = sys.argv[1] if len(sys.argv) > 1 else "build/bin"
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    work = tempfile.mkdtemp(prefix="lfl-probe-")
    pb, pb_grpc = load_stubs(src, work)
    tokens = {i: secrets.token_hex(32) for i in range(CLIENTS)}
    with open(os.path.join(work, "tokens.txt"), "w") as f:
        for i, t in tokens.items():
            f.write(f"{i} {t}\n")
    port = free_port()
    run_flags = ["--dataset", "fashion-mnist", "--partition", "shards", "--clients", str(CLIENTS),
                 "--fraction", "0.5", "--samples-per-class", "10", "--test-per-client", "20",
                 "--local-epochs", "1", "--rounds", str(ROUNDS), "--round-timeout", "30",
                 "--join-timeout", "30", "--algorithm", "lotteryfl", "--seed", "3"]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    server_log = open(os.path.join(work, "server.log"), "w")
    server = subprocess.Popen([os.path.join(bin_dir, "lotteryfl-server"), *run_flags, "--listen",
                               f"127.0.0.1:{port}", "--insecure", "--tokens", os.path.join(work, "tokens.txt"),
                               "--out", os.path.join(work, "run")], stdout=server_log, stderr=subprocess.STDOUT,
                              env=env)
    procs = [server]
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=60)
        stub = pb_grpc.FederationStub(channel)
        time.sleep(1.0)
        rss_before = rss_bytes(server.pid)

        # Probe 1: the upload flood, before any honest client arrives.
        results = {}
        threads = [threading.Thread(target=flood_stream, args=(stub, pb, results, i)) for i in range(FLOOD_STREAMS)]
        peak = rss_before
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss_bytes(server.pid))
            time.sleep(0.05)
        peak = max(peak, rss_bytes(server.pid))
        growth = peak - rss_before
        codes = sorted({r[0] for r in results.values()})
        most_chunks = max(r[1] for r in results.values())
        print(f"flood: {FLOOD_STREAMS} streams x {FLOOD_DECLARED >> 20} MiB declared, wrong token: statuses {codes}, "
              f"at most {most_chunks} of {FLOOD_DECLARED // CHUNK} chunks sent before the refusal, "
              f"server RSS {rss_before / 2**20:.1f} MiB -> peak {peak / 2**20:.1f} MiB (+{growth / 2**20:.1f} MiB)")
        if codes != ["UNAUTHENTICATED"]:
            fail(f"the flood streams were answered {codes}, not UNAUTHENTICATED")
        if most_chunks >= FLOOD_DECLARED // CHUNK // 4:
            fail("the refusal came only after much of the payload had been sent")
        if growth >= RSS_BOUND:
            fail(f"the server's resident memory grew by {growth / 2**20:.1f} MiB (bound {RSS_BOUND >> 20} MiB)")

        # Honest clients, then probe 2: unauthenticated Leave for every id while the run goes on.
        with open(os.path.join(work, "client-tokens.txt"), "w") as f:
            for i, t in tokens.items():
                f.write(f"{i} {t}\n")
        client_log = open(os.path.join(work, "client.log"), "w")
        procs.append(subprocess.Popen([os.path.join(bin_dir, "lotteryfl-client"), "--server", f"127.0.0.1:{port}",
                                       "--client-ids", f"0-{CLIENTS - 1}", "--parallel", "2", "--insecure",
                                       "--tokens", os.path.join(work, "client-tokens.txt")],
                                      stdout=client_log, stderr=subprocess.STDOUT, env=env))
        refused, accepted = 0, 0
        deadline = time.monotonic() + 300
        while server.poll() is None and time.monotonic() < deadline:
            for token in ("", "guess"):
                req = pb.LeaveRequest(clients=[pb.Credential(client_id=i, token=token) for i in range(CLIENTS)])
                try:
                    stub.Leave(req, timeout=5)
                    accepted += 1
                except grpc.RpcError as e:
                    if e.code() == grpc.StatusCode.UNAUTHENTICATED:
                        refused += 1
                    elif e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):  # shutting down
                        fail(f"Leave answered {e.code().name}: {e.details()}")
            time.sleep(0.2)
        if server.poll() is None:
            fail("the run did not finish within 300 s")
        rows = open(os.path.join(work, "run", "metrics.jsonl")).read().splitlines()
        print(f"leave: {refused} unauthenticated Leave calls refused, {accepted} accepted; server exit "
              f"{server.returncode}; {len(rows)} of {ROUNDS} rounds recorded")
        if accepted:
            fail("an unauthenticated Leave was accepted")
        if server.returncode != 0 or len(rows) != ROUNDS:
            fail("the run did not finish all its rounds")
        print("PASS")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()

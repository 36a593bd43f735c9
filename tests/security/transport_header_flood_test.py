#!/usr/bin/python3
"""Issue 18, upload-slot flood: 64 header-less SubmitUpdate streams, held open and reopened
as soon as the server ends them, from 4 connections, with no credential, for a whole run.

  transport_header_flood_test.py BIN_DIR              the test: one flooded run
  transport_header_flood_test.py BIN_DIR --measure R  undisturbed, then flooded, R rounds each;
                                                      prints rounds per minute of both

Before the fix a stream took one of the 64 upload slots when it opened, and 64 silent streams
stalled the run (0 rounds in 150 s). Asserted here, for the honest clients: every round of the
run completes, no honest upload is refused for want of a slot (no_upload_slot stays 0), and the
attacker really held its streams (/metrics showed >= 48 of them pending at once) and was refused
with pre_header_timeout. Exit 0 pass, 1 fail, 77 skip.
"""
import os
import sys
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import transport_common as tc  # noqa: E402

STREAMS = 64
CONNECTIONS = 4


class Flood:
    """STREAMS header-less upload streams over CONNECTIONS connections, each reopened when it ends."""

    def __init__(self, run, pb_grpc):
        import grpc
        self.grpc = grpc
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.outcomes = Counter()
        self.channels = [run.channel(separate=True) for _ in range(CONNECTIONS)]
        self.stubs = [pb_grpc.FederationStub(c) for c in self.channels]
        self.threads = [threading.Thread(target=self.hold, args=(i,), daemon=True) for i in range(STREAMS)]

    def hold(self, i):
        stub = self.stubs[i % CONNECTIONS]
        while not self.stop.is_set():
            gate = threading.Event()

            def silence(gate=gate):
                gate.wait()  # sends nothing, ever: the stream stays open without a header
                return
                yield

            try:
                stub.SubmitUpdate(silence(), timeout=120)
                outcome = "OK"
            except self.grpc.RpcError as e:
                details = e.details() or ""
                outcome = f"{e.code().name}:{details.split(':')[0]}" if ":" in details else e.code().name
            gate.set()
            with self.lock:
                self.outcomes[outcome] += 1
            if outcome.startswith("UNAVAILABLE"):
                time.sleep(0.2)  # the server is gone or restarting: do not spin

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for c in self.channels:
            c.close()
        for t in self.threads:
            t.join(timeout=10)


def one_run(bin_dir, pb, pb_grpc, rounds, flooded, seed=1):
    run = tc.Run(bin_dir, rounds, seed=seed)
    flood = None
    peak_pending = 0
    last_scrape = ""
    try:
        run.wait_ready()
        if flooded:
            flood = Flood(run, pb_grpc)
            flood.start()
            time.sleep(1.0)  # the streams are open before the first honest client arrives
        run.start_clients()
        deadline = time.monotonic() + 60 + rounds * 20
        while run.server.poll() is None and time.monotonic() < deadline:
            try:
                text = run.scrape(timeout=2)
                for line in text.splitlines():
                    if line.startswith("lotteryfl_upload_streams_pending "):
                        peak_pending = max(peak_pending, float(line.split()[1]))
                last_scrape = text
            except OSError:
                pass
            time.sleep(0.25)
        finished_at = time.monotonic()
        code = run.wait_server(5)
        rows = run.rows()
        refusals = run.refusals(last_scrape)
        if flood:
            flood.finish()
        elapsed = finished_at - run.clients_started
        round_seconds = sum(r.get("wall_seconds", 0) for r in rows)
        return {"code": code, "rows": len(rows), "elapsed": elapsed, "round_seconds": round_seconds,
                "peak_pending": peak_pending, "refusals": refusals,
                "outcomes": dict(flood.outcomes) if flood else {}, "run": run,
                "accuracy": rows[-1].get("global_accuracy") if rows else None}
    finally:
        if flood and not flood.stop.is_set():
            flood.finish()
        run.stop()


def describe(label, r, rounds):
    per_min = r["rows"] * 60 / r["elapsed"] if r["elapsed"] > 0 else 0
    print(f"{label}: {r['rows']}/{rounds} rounds in {r['elapsed']:.1f} s from the clients' start "
          f"({per_min:.1f} rounds/min; rounds themselves {r['round_seconds']:.1f} s), server exit {r['code']}, "
          f"final global accuracy {r['accuracy']}, peak pending streams {r['peak_pending']:.0f}, "
          f"refusals {r['refusals']}, attacker outcomes {r['outcomes']}", flush=True)
    return per_min


def main():
    tc.require()
    bin_dir = tc.bin_dir_arg()
    import tempfile
    pb, pb_grpc = tc.load_stubs(tempfile.mkdtemp(prefix="lfl-stubs-"))
    if "--measure" in sys.argv:
        # Pairs (undisturbed, then flooded) REPEAT times: single pairs on a shared VM swing.
        rounds = int(sys.argv[sys.argv.index("--measure") + 1])
        repeat = int(os.environ.get("REPEAT", "3"))
        ratios, round_ratios = [], []
        for i in range(repeat):
            base = one_run(bin_dir, pb, pb_grpc, rounds, flooded=False)
            a = describe(f"pair {i + 1} undisturbed", base, rounds)
            hit = one_run(bin_dir, pb, pb_grpc, rounds, flooded=True)
            b = describe(f"pair {i + 1} flood of {STREAMS} header-less streams", hit, rounds)
            if a and base["round_seconds"] and hit["round_seconds"]:
                ratios.append(b / a)
                round_ratios.append(base["round_seconds"] / hit["round_seconds"])
                print(f"pair {i + 1}: rounds per minute under the flood {b:.1f} vs {a:.1f} undisturbed = "
                      f"{100 * b / a:.0f} % (from the clients' start); on the rounds' own wall time "
                      f"{100 * round_ratios[-1]:.0f} %", flush=True)
        if ratios:
            med = sorted(ratios)[len(ratios) // 2]
            med_r = sorted(round_ratios)[len(round_ratios) // 2]
            print(f"median of {len(ratios)} pairs: {100 * med:.0f} % of the undisturbed rounds per minute "
                  f"(from the clients' start), {100 * med_r:.0f} % on the rounds' own wall time", flush=True)
        tc.cleanup()
        return
    rounds = 6
    r = one_run(bin_dir, pb, pb_grpc, rounds, flooded=True)
    describe(f"flood of {STREAMS} header-less streams", r, rounds)
    run = r["run"]
    if r["code"] != 0 or r["rows"] != rounds:
        print(run.tail(run.server_log_path))
        tc.fail(f"the honest run under the flood recorded {r['rows']} of {rounds} rounds (server exit {r['code']})")
    if r["refusals"].get("no_upload_slot", 0) != 0:
        tc.fail(f"honest uploads were refused for want of a slot: {r['refusals']}")
    if r["peak_pending"] < STREAMS * 3 // 4:
        tc.fail(f"the flood never held its streams (peak {r['peak_pending']:.0f} pending): the test proves nothing")
    if r["refusals"].get("pre_header_timeout", 0) < STREAMS:
        tc.fail(f"the silent streams were not refused with pre_header_timeout: {r['refusals']}")
    if not any(k.startswith("DEADLINE_EXCEEDED:pre_header_timeout") for k in r["outcomes"]):
        tc.fail(f"the attacker's status did not name the cause: {r['outcomes']}")
    tc.passed()


if __name__ == "__main__":
    main()

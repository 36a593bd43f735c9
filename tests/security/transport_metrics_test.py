#!/usr/bin/python3
"""Issue 18, /metrics: a real lotteryfl-server serving /metrics over HTTPS (its own certificate)
with a bearer token, on 127.0.0.1 (the bare-port form of --metrics-listen), scraped while slow
connections (raw TCP that drips a byte a second, or sends nothing) keep coming.

  transport_metrics_test.py BIN_DIR              the test (100 slow connections)
  transport_metrics_test.py BIN_DIR --measure    40 scrapes undisturbed, under 8 and under 100 slow ones

Before the fix eight slow connections starved scrapes (7 of 40 succeeded in 20 s). Asserted:
every one of 40 scrapes (one every 0.5 s) succeeds under the slow connections; a scrape
without the token or with a wrong one is refused 401; plain HTTP gets no metrics; /healthz
answers without a token. Exit 0 pass, 1 fail, 77 skip.
"""
import os
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import transport_common as tc  # noqa: E402

SCRAPES = 40


class Slowloris:
    def __init__(self, port, n):
        self.port, self.n = port, n
        self.stop = threading.Event()
        self.reopened = 0
        self.threads = [threading.Thread(target=self.hold, args=(i,), daemon=True) for i in range(n)]

    def hold(self, i):
        while not self.stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            except OSError:
                time.sleep(0.1)
                continue
            try:
                # Half of them drip a request a byte a second, half send nothing at all.
                request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" if i % 2 == 0 else b""
                for b in request or [None] * 60:
                    if self.stop.is_set():
                        break
                    if b is not None:
                        s.sendall(bytes([b]))
                    if self.stop.wait(1.0):
                        break
                    s.setblocking(False)
                    try:
                        if s.recv(1) == b"":
                            break  # closed by the server
                    except BlockingIOError:
                        pass
                    except OSError:
                        break
                    s.setblocking(True)
            except OSError:
                pass
            finally:
                s.close()
            self.reopened += 1

    def start(self):
        for t in self.threads:
            t.start()
        time.sleep(1.0)

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=5)


def scrapes(run, token, context):
    ok, latencies = 0, []
    for _ in range(SCRAPES):
        t0 = time.monotonic()
        try:
            text = run.scrape(timeout=5, token=token, context=context)
            if "lotteryfl_round " in text:
                ok += 1
                latencies.append(time.monotonic() - t0)
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(max(0.0, 0.5 - (time.monotonic() - t0)))
    return ok, latencies


def status_of(url, token=None, context=None):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5, context=context) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, urllib.error.URLError):
        return None


def main():
    tc.require()
    bin_dir = tc.bin_dir_arg()
    import tempfile
    work = tempfile.mkdtemp(prefix="lfl-metrics-")
    tc._work_dirs.append(work)
    token = "scrape-" + os.urandom(16).hex()
    token_file = os.path.join(work, "metrics-token")
    with open(token_file, "w") as f:
        f.write(token + "\n")
    run = tc.Run(bin_dir, 3, tls=True, extra_server_flags=["--metrics-tls", "--metrics-token-file", token_file])
    context = ssl.create_default_context(cafile=run.cert)
    try:
        run.wait_ready()
        base = f"https://localhost:{run.metrics_port}"
        checks = {
            "no token": status_of(base + "/metrics", None, context),
            "wrong token": status_of(base + "/metrics", "x" * len(token), context),
            "token": status_of(base + "/metrics", token, context),
            "healthz without token": status_of(base + "/healthz", None, context),
            "plain http": status_of(f"http://127.0.0.1:{run.metrics_port}/metrics", token),
        }
        print(f"HTTPS /metrics statuses: {checks}", flush=True)
        measure = "--measure" in sys.argv
        results = {}
        for n in ([0, 8, 100] if measure else [100]):
            flood = Slowloris(run.metrics_port, n) if n else None
            if flood:
                flood.start()
            t0 = time.monotonic()
            ok, lat = scrapes(run, token, context)
            window = time.monotonic() - t0
            if flood:
                flood.close()
            results[n] = ok
            worst = max(lat) * 1000 if lat else float("nan")
            print(f"{n} slow connections: {ok}/{SCRAPES} scrapes succeeded in {window:.1f} s (worst {worst:.0f} ms)"
                  + (f"; slow connections reopened after the server dropped them: {flood.reopened}" if flood else ""),
                  flush=True)
        text = run.scrape(token=token, context=context)
        if "# TYPE lotteryfl_refusals_total counter" not in text:
            tc.fail("/metrics has no lotteryfl_refusals_total family")
        if checks["no token"] != 401 or checks["wrong token"] != 401:
            tc.fail(f"/metrics answered a scrape without the right token: {checks}")
        if checks["token"] != 200 or checks["healthz without token"] != 200:
            tc.fail(f"/metrics or /healthz refused an honest request: {checks}")
        if checks["plain http"] == 200:
            tc.fail("/metrics served plain HTTP on its TLS port")
        if measure:
            tc.cleanup()
            return
        if results[100] != SCRAPES:
            print(run.tail(run.server_log_path))
            tc.fail(f"only {results[100]} of {SCRAPES} scrapes succeeded under 100 slow connections")
        tc.passed()
    finally:
        run.stop()


if __name__ == "__main__":
    main()

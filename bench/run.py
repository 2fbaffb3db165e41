#!/usr/bin/env python3
"""Measures POST /predict of predict-host against two reference servers in one run, on
one machine, with one load generator (wrk), and reports ratios.

- ceiling: bench/ceiling, the same HTTP stack parsing the same basket, no model;
- incumbent: bench/incumbent, FastAPI + scikit-learn under uvicorn, one worker per core
  (bench/incumbent/serve.py: uvicorn's command line, with TCP_NODELAY on its connections);
- predict-host: serving its bundled plugin, as `serve` runs by default.

The full run builds both servers in the `dist` profile the container image ships (release
plus fat LTO; the first build takes a while); the smoke run uses `release`, which CI has
built already. `--profile` picks another.

Then, on predict-host alone: batch throughput (rows/s, and plugin time per call from its
own /metrics, at one connection and at 16), the cost of hot swaps (p99 while versions
swap in vs. steady state, and in the run after, while the last version is compiled again
with Cranelift), and the ONNX path: the example's scikit-learn pipeline packaged
(`predict-host package`) against the hand-written plugin, plugin time per call at each
batch size, package time, component size and load time. A rollout's cost: p99 at 16
connections while a candidate shadows every request, against steady state. Data capture's cost:
requests per second with every request captured, against capture off. And the Open Inference
Protocol: V2 REST with JSON tensors (wrk) beside gRPC `ModelInfer` with raw tensors, as
`tritonclient.grpc` sends it (h2load, the same request each time), on one host. The full
run then measures the servers users would pick instead (bench/peers.py): MLServer and
KServe on the same V2 request, every server's start to ready, and what each costs to run.

    bench/run.py            full run (about 9 minutes once built): writes target/bench/results.{json,md}
    bench/run.py --smoke    seconds per step, one concurrency level: keeps this from rotting
"""

import argparse
import glob
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import peers
from peers import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = {
    "BASKET_SIZE": "M", "BASKET_TYPE": "MIXED", "STORE_REGION": "LONDON", "STORE_FORMAT": "LS",
    "SPEND": 125.50, "QUANTITY": 3, "PROD_CODE_20": "FOOD", "PROD_CODE_30": "FRESH",
}
REPORT_SCRIPT = os.path.join(ROOT, "bench", "wrk-report.lua")
# The host's default TIER_UP_AFTER: a version swapped in with Winch is compiled again with
# Cranelift this long after its swap.
TIER_UP_AFTER_S = 3


def sh(*args, **kwargs):
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True, cwd=ROOT, **kwargs)


def wait_ready(url, process, body=SEED, timeout=120):
    """Waits for a 200 from `url`: a POST of `body`, or a GET when it is None."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the server exited with status {process.returncode} before answering")
        try:
            data = None if body is None else json.dumps(body).encode()
            request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
            if urllib.request.urlopen(request, timeout=2).status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} never answered")


def process_tree(pid):
    """`pid` and all its descendants (uvicorn runs one process per worker)."""
    pids, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        for path in glob.glob(f"/proc/{parent}/task/*/children"):
            with open(path) as f:
                children = [int(c) for c in f.read().split()]
            pids += children
            frontier += children
    return pids


def memory_kib(pid, field):
    """Sum of `field` (VmRSS, VmHWM) in KiB over the process tree of `pid`."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(l.split()[1]) for l in f if l.startswith(field + ":"))
        except (OSError, StopIteration):
            pass
    return total


class Server:
    """A server under test, used as a context manager: stopped on leaving it, however that
    happens. Its output goes to a temporary log (predict-host's request log runs to hundreds
    of MB in a full run), deleted when the server stopped cleanly and the step succeeded,
    and otherwise kept, with its path printed."""

    def __init__(self, name, args, port, env=None, cwd=ROOT, path="/predict", body=SEED):
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}{path}"
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            args, cwd=cwd, env={**os.environ, **(env or {})}, stdout=self.log, stderr=self.log
        )
        try:
            wait_ready(self.url, self.process, body)
        except BaseException:
            self.stop(failed=True)
            raise
        time.sleep(0.5)
        self.idle_rss_kib = memory_kib(self.process.pid, "VmRSS")

    def __enter__(self):
        return self

    def __exit__(self, error, *_):
        self.stop(failed=error is not None)

    def cpu_seconds(self):
        return peers.cpu_seconds(process_tree(self.process.pid))

    def peak_rss_kib(self):
        return memory_kib(self.process.pid, "VmHWM")

    def stop(self, failed=False):
        if self.log.closed:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        else:
            failed = True  # it exited before it was asked to
        self.log.close()
        # 0: a graceful shutdown; -SIGTERM: a server with no handler for it (the ceiling).
        if failed or self.process.returncode not in (0, -signal.SIGTERM):
            print(f"{self.name}: exited with status {self.process.returncode}; its output is in {self.log.name}",
                  file=sys.stderr, flush=True)
        else:
            os.unlink(self.log.name)


def wrk(url, body, connections, seconds):
    """One wrk run; returns its JSON report (latencies in µs) plus req/s."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(body, f)
    threads = 1 if connections == 1 else 2
    try:
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", REPORT_SCRIPT, url],
            env={**os.environ, "BENCH_BODY_FILE": f.name}, capture_output=True, text=True, check=True,
        ).stdout
    finally:
        os.unlink(f.name)
    report = json.loads(next(l for l in out.splitlines() if l.startswith("BENCH "))[6:])
    report["rps"] = report["requests"] / (report["duration_us"] / 1e6)
    return report


def plugin_seconds(port):
    """(sum, count) of plugin_call_duration_seconds over all versions, from /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("plugin_call_duration_seconds_sum"):
            total += float(line.split()[-1])
        elif line.startswith("plugin_call_duration_seconds_count"):
            count += float(line.split()[-1])
    return total, count


def build(profile):
    sh("rustup", "target", "add", "wasm32-wasip2")
    sh("cargo", "build", "--profile", profile, "--locked", "-p", "predict-host", "-p", "bench-ceiling")
    model_out = os.path.join(ROOT, "target", "bench", "model-out")
    sh("cargo", "run", "--release", "--locked", "-q", "-p", "price-sensitivity-model", "--features", "train",
       "--bin", "train-price-sensitivity", "--", model_out)
    requirements = os.path.join(ROOT, "bench", "incumbent", "requirements.txt")
    sh(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
       "--root-user-action=ignore", "-r", requirements,
       "-r", os.path.join(ROOT, "examples", "sklearn", "requirements.txt"))
    return os.path.join(model_out, "train.csv")


def fmt_us(us):
    return f"{us / 1000:.2f} ms"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few seconds per step, concurrency 16 only")
    parser.add_argument("--out", default=os.path.join(ROOT, "target", "bench"))
    parser.add_argument("--profile", help="cargo profile of both servers (default: dist; release with --smoke)")
    parser.add_argument("--spot-price", type=float, default=0.0125,
                        help="USD per hour of a t3.medium Spot node, for the cost table (default: 0.0125)")
    options = parser.parse_args()
    profile = options.profile or ("release" if options.smoke else "dist")
    built = os.path.join(ROOT, "target", profile)
    seconds, warmup = (2, 1) if options.smoke else (10, 3)
    concurrency = [16] if options.smoke else [1, 16, 64]
    batches = [1, 64] if options.smoke else [1, 64, 1024]
    cores = os.cpu_count() or 1
    os.makedirs(options.out, exist_ok=True)

    train_csv = build(profile)
    host_binary = os.path.join(built, "predict-host")
    host_env = {"LOG_FORMAT": "json", "RUST_LOG": "info"}
    results = {"machine": machine(), "mode": "smoke" if options.smoke else "full", "profile": profile,
               "seconds": seconds,
               "servers": {}, "batch": {}, "swap": {}, "packaged": {}, "protocol": {}, "shadow": {}, "capture": {},
               "peers": {}, "cold_start": {}}

    specs = [
        ("ceiling", [os.path.join(built, "bench-ceiling")], None, ROOT),
        ("incumbent", [sys.executable, "serve.py", "app:app", "--host", "127.0.0.1", "--workers",
                       str(cores), "--log-level", "warning"], {"TRAIN_CSV": train_csv},
         os.path.join(ROOT, "bench", "incumbent")),
        ("predict-host", [host_binary, "serve", "--bind", "127.0.0.1", "--grpc-port", "0"], host_env, ROOT),
    ]
    for name, args, env, cwd in specs:
        port = free_port()
        args = args + (["--port", str(port)] if name != "ceiling" else [str(port)])
        with Server(name, args, port, env, cwd) as server:
            wrk(server.url, SEED, 16, warmup)
            runs = {}
            for c in concurrency:
                cpu = server.cpu_seconds()
                runs[c] = wrk(server.url, SEED, c, seconds)
                runs[c]["cpu_s"] = server.cpu_seconds() - cpu
                print(f"{name:>12} c={c:<3} {runs[c]['rps']:>10.0f} req/s  p99 {fmt_us(runs[c]['p99_us'])}",
                      flush=True)
            results["servers"][name] = {"runs": runs, "idle_rss_kib": server.idle_rss_kib,
                                        "peak_rss_kib": server.peak_rss_kib()}

    # Batches and swaps, on predict-host serving a plugin directory.
    with tempfile.TemporaryDirectory(prefix="bench-plugins-") as plugins:
        batch_and_swap(results, built, host_binary, host_env, batches, seconds, warmup, plugins)
    with tempfile.TemporaryDirectory(prefix="bench-shadow-") as plugins:
        shadow_vs_steady(results, built, host_binary, host_env, seconds, warmup, plugins)
    with tempfile.TemporaryDirectory(prefix="bench-capture-") as capture_dir:
        capture_vs_off(results, host_binary, host_env, seconds, warmup, capture_dir)
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as scratch:
        packaged_vs_hand_written(results, built, host_binary, host_env, batches, seconds, warmup,
                                 os.path.dirname(train_csv), scratch)

    grpc_vs_rest(results, host_binary, host_env, [16] if options.smoke else [1, 16], seconds, warmup)
    if not options.smoke:
        against_peers(results, options, built, host_binary, host_env, train_csv, seconds, warmup, cores)

    write_reports(results, options.out, concurrency, options.spot_price)


def measure_peer(results, name, command, port, cwd, request, seconds, warmup):
    """A peer server's V2 REST infer at 1 and 16 connections, with its CPU time."""
    path = "/v2/models/price-sensitivity/infer"
    with Server(name, command, port, {}, cwd, path, request) as server:
        wrk(server.url, request, 16, warmup)
        runs = {}
        for c in (1, 16):
            cpu = server.cpu_seconds()
            runs[c] = wrk(server.url, request, c, seconds)
            runs[c]["cpu_s"] = server.cpu_seconds() - cpu
            print(f"{name:>12} c={c:<3} {runs[c]['rps']:>10.0f} req/s  p99 {fmt_us(runs[c]['p99_us'])}", flush=True)
        results["peers"][name] = {"runs": runs, "idle_rss_kib": server.idle_rss_kib,
                                  "peak_rss_kib": server.peak_rss_kib()}


def against_peers(results, options, built, host_binary, host_env, train_csv, seconds, warmup, cores):
    """MLServer and KServe on the same V2 request; cold starts of every server; cost
    (bench/peers.py)."""
    incumbent_dir = os.path.join(ROOT, "bench", "incumbent")
    cold = {}
    python = peers.mlserver_python(options.out)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-mlserver-") as models:
        command = peers.mlserver_repository(python, ROOT, train_csv, models, port, cores)
        measure_peer(results, "mlserver", command, port, models, peers.mlserver_request(SEED), seconds, warmup)
        ready = f"http://127.0.0.1:{port}/v2/health/ready"
        cold["mlserver"] = peers.time_to_ready(command, ready, cwd=models, runs=3)
    python = peers.kserve_python(options.out)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-kserve-") as scratch:
        command = peers.kserve_command(python, ROOT, train_csv, scratch, port, cores)
        measure_peer(results, "kserve", command, port, scratch, v2_tensors(SEED), seconds, warmup)
        ready = f"http://127.0.0.1:{port}/v2/models/price-sensitivity/ready"
        cold["kserve"] = peers.time_to_ready(command, ready, cwd=scratch, runs=3)
    host_port = free_port()
    cold["predict-host, bundled plugin"] = peers.time_to_ready(
        [host_binary, "serve", "--bind", "127.0.0.1", "--port", str(host_port), "--grpc-port", "0"],
        f"http://127.0.0.1:{host_port}/ready", host_env)
    metrics = os.path.join(os.path.dirname(train_csv), "metrics.json")
    registry_cold, registry_warm = peers.registry_cold_starts(host_binary, bundled_wasm(built), metrics)
    cold["predict-host, registry, empty cache"] = registry_cold
    cold["predict-host, registry, warm cache"] = registry_warm
    incumbent_port = free_port()
    cold["incumbent"] = peers.time_to_ready(
        [sys.executable, "serve.py", "app:app", "--host", "127.0.0.1", "--port", str(incumbent_port),
         "--workers", str(cores), "--log-level", "warning"],
        f"http://127.0.0.1:{incumbent_port}/predict", {"TRAIN_CSV": train_csv}, incumbent_dir, SEED, runs=3)
    results["cold_start"] = cold
    for name, c in cold.items():
        print(f"  start to ready, {name}: {c['median_s'] * 1000:.0f} ms (best {c['best_s'] * 1000:.0f})", flush=True)


def v2_tensors(row):
    """The V2 REST request for one row: one JSON tensor per field."""
    inputs = [{"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str) else "FP64", "data": [v]}
              for k, v in row.items()]
    return {"inputs": inputs}


def grpc_frame(row):
    """A gRPC ModelInfer call for one row as tritonclient.grpc sends it (raw tensors), framed
    for the wire: a flag byte, a big-endian length, the message."""
    from tritonclient.grpc import service_pb2
    request = service_pb2.ModelInferRequest(model_name="price-sensitivity")
    for name, value in row.items():
        text = isinstance(value, str)
        request.inputs.add(name=name, datatype="BYTES" if text else "FP64", shape=[1])
        raw = struct.pack("<I", len(value)) + value.encode() if text else struct.pack("<d", value)
        request.raw_input_contents.append(raw)
    message = request.SerializeToString()
    return b"\0" + struct.pack(">I", len(message)) + message


def grpc_ok(port):
    """ModelInfer calls answered OK so far, from /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    prefix = 'grpc_requests_total{rpc="ModelInfer",code="OK"} '
    return next((float(l[len(prefix):]) for l in text.splitlines() if l.startswith(prefix)), 0.0)


GRPC_HEADERS = ["content-type: application/grpc", "te: trailers"]


def h2load(url, body, connections, seconds, headers=GRPC_HEADERS):
    """One h2load run (HTTP/2, one stream per connection): req/s, and percentiles from its
    per-request log."""
    with tempfile.TemporaryDirectory(prefix="bench-h2load-") as scratch:
        path, log = os.path.join(scratch, "body"), os.path.join(scratch, "log.tsv")
        with open(path, "wb") as f:
            f.write(body)
        threads = 1 if connections == 1 else 2
        headers = [arg for header in headers for arg in ("-H", header)]
        subprocess.run(["h2load", "-c", str(connections), "-t", str(threads), "-m", "1", "-D", str(seconds),
                        *headers, "-d", path, "--log-file", log, url], capture_output=True, text=True, check=True)
        rows = [line.split("\t") for line in open(log) if line.strip()]
    latencies = sorted(int(r[2]) for r in rows if r[1] == "200")
    quantile = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    return {"requests": len(rows), "http_errors": len(rows) - len(latencies), "rps": len(latencies) / seconds,
            "p50_us": quantile(0.5), "p99_us": quantile(0.99), "p999_us": quantile(0.999)}


def grpc_vs_rest(results, host_binary, host_env, concurrency, seconds, warmup):
    """V2 REST with JSON tensors (wrk over HTTP/1.1, and h2load over HTTP/2, the transport
    gRPC rides on) against gRPC ModelInfer, one host, the same row."""
    port, grpc_port = free_port(), free_port()
    args = [host_binary, "serve", "--bind", "127.0.0.1", "--port", str(port), "--grpc-port", str(grpc_port)]
    rest_url = f"http://127.0.0.1:{port}/v2/models/price-sensitivity/infer"
    grpc_url = f"http://127.0.0.1:{grpc_port}/inference.GRPCInferenceService/ModelInfer"
    frame = grpc_frame(SEED)
    with Server("predict-host-v2", args, port, host_env) as server:
        wrk(rest_url, v2_tensors(SEED), 16, warmup)
        h2load(grpc_url, frame, 16, warmup)
        for c in concurrency:
            cpu = server.cpu_seconds()
            rest = wrk(rest_url, v2_tensors(SEED), c, seconds)
            rest["cpu_s"] = server.cpu_seconds() - cpu
            json_body = json.dumps(v2_tensors(SEED)).encode()
            rest_h2 = h2load(rest_url, json_body, c, seconds, ["content-type: application/json"])
            rest_h2["errors"] = 0
            ok_before = grpc_ok(server.port)
            grpc = h2load(grpc_url, frame, c, seconds)
            # h2load sees HTTP statuses; a gRPC error still answers 200: count those too (its
            # log leaves out the calls still running when the time is up, the count not).
            grpc["errors"] = max(0.0, grpc["requests"] - (grpc_ok(server.port) - ok_before))
            results["protocol"][c] = {"rest": rest, "rest_h2": rest_h2, "grpc": grpc,
                                      "grpc_over_rest": grpc["rps"] / rest["rps"]}
            print(f"{'v2 rest':>12} c={c:<3} {rest['rps']:>10.0f} req/s  p99 {fmt_us(rest['p99_us'])}", flush=True)
            print(f"{'v2 rest h2':>12} c={c:<3} {rest_h2['rps']:>10.0f} req/s  p99 {fmt_us(rest_h2['p99_us'])}",
                  flush=True)
            print(f"{'v2 grpc':>12} c={c:<3} {grpc['rps']:>10.0f} req/s  p99 {fmt_us(grpc['p99_us'])}", flush=True)


def bundled_wasm(built):
    return max(glob.glob(os.path.join(built, "build", "plugin-artifacts-*", "out",
                                      "price-sensitivity.wasm")), key=os.path.getmtime)


def plugin_us_per_call(host, body, connections, seconds):
    """A wrk run with the plugin's mean wall time per call over it, from /metrics."""
    before = plugin_seconds(host.port)
    run = wrk(host.url, body, connections, seconds)
    after = plugin_seconds(host.port)
    calls = after[1] - before[1]
    return run, (after[0] - before[0]) / calls * 1e6 if calls else None


def batch_and_swap(results, built, host_binary, host_env, batches, seconds, warmup, plugins):
    """Batch throughput and the cost of hot swaps, on predict-host serving `plugins`."""
    wasm = bundled_wasm(built)
    shutil.copy(wasm, os.path.join(plugins, "price-sensitivity-1.wasm"))
    port = free_port()
    with Server("predict-host-dir", [host_binary, "serve", "--bind", "127.0.0.1", "--grpc-port", "0", "--port", str(port),
                                     "--plugin-dir", plugins], port, host_env) as host:
        for size in batches:
            body = [SEED] * size
            wrk(host.url, body, 16, warmup)
            # At one connection a call has the machine to itself: its plugin time is the
            # cost of the call. At 16, calls share two cores and yield to each other.
            _, alone = plugin_us_per_call(host, body, 1, seconds)
            run, loaded = plugin_us_per_call(host, body, 16, seconds)
            run["rows_per_s"] = run["rps"] * size
            run["plugin_us_per_call"] = loaded
            run["plugin_us_per_call_alone"] = alone
            results["batch"][size] = run
            print(f"  batch {size:>5}: {run['rows_per_s']:>12.0f} rows/s, plugin {alone:.1f} µs/call alone, "
                  f"{loaded:.1f} under 16 connections", flush=True)

        steady = wrk(host.url, SEED, 16, seconds)
        swaps = []

        def publish_versions():
            time.sleep(0.5)
            version = 2
            while len(swaps) < max(2, seconds - 1):
                target = os.path.join(plugins, f"price-sensitivity-{version}.wasm")
                shutil.copy(wasm, target + ".tmp")
                os.rename(target + ".tmp", target)
                swaps.append(version)
                version += 1
                time.sleep(1)

        publisher = threading.Thread(target=publish_versions)
        publisher.start()
        swapping = wrk(host.url, SEED, 16, seconds)
        publisher.join()
        # Swaps compile with Winch; a version that has served TIER_UP_AFTER (3 s) is compiled
        # again with Cranelift, which the run above never reaches (a swap every second). The
        # last version's recompile falls in this run.
        after = wrk(host.url, SEED, 16, seconds)
        info = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/model/info").read())
        results["swap"] = {"steady": steady, "during_swaps": swapping, "swaps": len(swaps),
                           "p99_ratio": swapping["p99_us"] / steady["p99_us"],
                           "after_swaps": after, "after_p99_ratio": after["p99_us"] / steady["p99_us"],
                           "compiler_after": info.get("compiler")}


def rollout_figures(port):
    info = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/model/info").read())
    return info.get("rollout") or {}


def wait_for_shadow(port):
    deadline = time.monotonic() + 60
    while rollout_figures(port).get("phase") != "shadow":
        if time.monotonic() > deadline:
            raise SystemExit("the candidate never entered its shadow phase")
        time.sleep(0.1)


def shadow_vs_steady(results, built, host_binary, host_env, seconds, warmup, plugins):
    """p99 at 16 connections with no rollout, then while a candidate (the same plugin as
    version 2) shadows every request, never judged so it stays in shadow; one host."""
    wasm = bundled_wasm(built)
    shutil.copy(wasm, os.path.join(plugins, "price-sensitivity-1.wasm"))
    env = {**host_env, "ROLLOUT_STRATEGY": "phased", "ROLLOUT_SHADOW_PERCENT": "100",
           "ROLLOUT_MIN_REQUESTS": str(10**12)}
    def args(port):
        return [host_binary, "serve", "--bind", "127.0.0.1", "--grpc-port", "0", "--port", str(port),
                "--plugin-dir", plugins]
    target = os.path.join(plugins, "price-sensitivity-2.wasm")
    idle = {}
    port = free_port()
    with Server("predict-host-idle", args(port), port, env) as host:
        # Idle: loaded, never under load. One version, then a candidate beside it in shadow.
        idle["one"] = memory_kib(host.process.pid, "VmRSS")
        shutil.copy(wasm, target + ".tmp")
        os.rename(target + ".tmp", target)
        wait_for_shadow(port)
        time.sleep(0.5)
        idle["two"] = memory_kib(host.process.pid, "VmRSS")
    os.unlink(target)
    port = free_port()
    with Server("predict-host-shadow", args(port), port, env) as host:
        wrk(host.url, SEED, 16, warmup)
        steady = wrk(host.url, SEED, 16, seconds)
        shutil.copy(wasm, target + ".tmp")
        os.rename(target + ".tmp", target)
        wait_for_shadow(port)
        time.sleep(0.5)
        loaded_two_kib = memory_kib(host.process.pid, "VmRSS")
        wrk(host.url, SEED, 16, warmup)
        before = rollout_figures(port)["figures"]
        shadowing = wrk(host.url, SEED, 16, seconds)
        after = rollout_figures(port)["figures"]
        compared = after["compared_rows"] - before["compared_rows"]
        skipped = after["shadow_skipped"] - before["shadow_skipped"]
        results["shadow"] = {"steady": steady, "shadowing": shadowing,
                             "p99_ratio": shadowing["p99_us"] / steady["p99_us"],
                             "rps_ratio": shadowing["rps"] / steady["rps"],
                             "compared": compared, "skipped": skipped,
                             "agreement": after["agreement"],
                             "rss_one_version_kib": idle["one"], "rss_two_versions_kib": idle["two"],
                             "rss_two_versions_after_load_kib": loaded_two_kib}
        print(f"{'shadow 100%':>12} c=16  {shadowing['rps']:>10.0f} req/s  p99 {fmt_us(shadowing['p99_us'])} "
              f"(steady {steady['rps']:.0f} req/s, p99 {fmt_us(steady['p99_us'])}); "
              f"{compared} shadowed, {skipped} skipped", flush=True)


def capture_vs_off(results, host_binary, host_env, seconds, warmup, capture_dir):
    """Requests per second at 16 connections with data capture at 0% and at 100% (to a
    local directory), two hosts measured in turn, twice each; the means are compared."""
    def host(name, env):
        port = free_port()
        args = [host_binary, "serve", "--bind", "127.0.0.1", "--grpc-port", "0", "--port", str(port)]
        return Server(name, args, port, {**host_env, **env})
    on_env = {"DATA_CAPTURE_PERCENT": "100", "DATA_CAPTURE_DIR": capture_dir}
    runs = {"off": [], "on": []}
    with host("predict-host-capture-off", {}) as off, host("predict-host-capture-on", on_env) as on:
        for server in (off, on):
            wrk(server.url, SEED, 16, warmup)
        for _ in range(2):
            runs["off"].append(wrk(off.url, SEED, 16, seconds))
            runs["on"].append(wrk(on.url, SEED, 16, seconds))
        info = json.loads(urllib.request.urlopen(on.url.replace("/predict", "/model/info")).read())
    mean = {k: sum(r["rps"] for r in v) / len(v) for k, v in runs.items()}
    p99 = {k: max(r["p99_us"] for r in v) for k, v in runs.items()}
    errors = sum(r["errors"] + r["non_2xx"] for v in runs.values() for r in v)
    results["capture"] = {"rps_off": mean["off"], "rps_on": mean["on"], "rps_ratio": mean["on"] / mean["off"],
                          "p99_off_us": p99["off"], "p99_on_us": p99["on"], "errors": errors,
                          "counts": info["capture"]}
    print(f"{'capture 100%':>12} c=16  {mean['on']:>10.0f} req/s  vs {mean['off']:.0f} at 0% "
          f"({mean['on'] / mean['off']:.2f}×); captured {info['capture']['captured']}, "
          f"dropped {info['capture']['dropped']}", flush=True)


def packaged_vs_hand_written(results, built, host_binary, host_env, batches, seconds, warmup, data, scratch):
    """The example's scikit-learn pipeline packaged from ONNX, against the hand-written
    plugin of the same model family: plugin time per call at one connection for each
    batch size, package time, component size and load time, in this run."""
    model = os.path.join(scratch, "model")
    sh(sys.executable, os.path.join(ROOT, "examples", "sklearn", "train.py"), "--data", data, "--out", model)
    packaged = os.path.join(scratch, "packaged.wasm")
    package_times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([host_binary, "package", os.path.join(model, "model.onnx"), "--manifest",
                        os.path.join(model, "manifest.json"), "-o", packaged], check=True, stdout=subprocess.DEVNULL)
        package_times.append(time.perf_counter() - started)
    plugins = {"hand-written": bundled_wasm(built), "packaged": packaged}
    measured = {}
    for name, wasm in plugins.items():
        directory = os.path.join(scratch, name)
        os.makedirs(directory)
        shutil.copy(wasm, os.path.join(directory, "price-sensitivity-1.wasm"))
        port = free_port()
        with Server(f"predict-host-{name}", [host_binary, "serve", "--bind", "127.0.0.1", "--grpc-port", "0", "--port", str(port),
                                             "--plugin-dir", directory], port, host_env) as host:
            info = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/model/info").read())
            per_call = {}
            for size in batches:
                body = SEED if size == 1 else [SEED] * size
                wrk(host.url, body, 1, warmup)
                per_call[size] = plugin_us_per_call(host, body, 1, seconds)[1]
            measured[name] = {"bytes": os.path.getsize(wasm), "load_ms": info["load_ms"], "plugin_us_per_call": per_call}
            print(f"  {name:>12}: {os.path.getsize(wasm)} bytes, load {info['load_ms']:.0f} ms, plugin "
                  + ", ".join(f"{us:.1f} µs at {size}" for size, us in per_call.items()), flush=True)
    hand, onnx = measured["hand-written"], measured["packaged"]
    results["packaged"] = {
        "package_s": sorted(package_times)[1], "hand_written": hand, "packaged": onnx,
        "ratio": {size: onnx["plugin_us_per_call"][size] / hand["plugin_us_per_call"][size] for size in batches},
    }


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpus": os.cpu_count(), "cpu": model, "kernel": os.uname().release}


def peer_report(results, spot_price):
    """MLServer and KServe beside predict-host's V2 route, cold starts, and the cost table."""
    ml, ks = results["peers"]["mlserver"]["runs"], results["peers"]["kserve"]["runs"]
    v2 = results["protocol"][16]["rest"]
    lines = ["", "MLServer 1.7.1 + mlserver-sklearn and KServe 0.21's model server serving the incumbent's "
                 "pipeline (one worker per core) against predict-host's V2 route, the same input tensors, wrk:", "",
             "| server | connections | req/s | p50 | p99 | errors |", "|---|---|---|---|---|---|"]
    for name, runs in (("MLServer", ml), ("KServe", ks)):
        for c, r in runs.items():
            lines.append(f"| {name} | {c} | {r['rps']:.0f} | {fmt_us(r['p50_us'])} | {fmt_us(r['p99_us'])} | "
                         f"{r['errors'] + r['non_2xx']} |")
    lines.append(f"| predict-host V2 REST | 16 | {v2['rps']:.0f} | {fmt_us(v2['p50_us'])} | {fmt_us(v2['p99_us'])} | "
                 f"{v2['errors'] + v2['non_2xx']} |")
    lines.append(f"| predict-host / MLServer | 16 | {v2['rps'] / ml[16]['rps']:.0f}× | | | |")
    lines.append(f"| predict-host / KServe | 16 | {v2['rps'] / ks[16]['rps']:.0f}× | | | |")
    lines += ["", "Process start to the first ready answer (median of 5 starts, 3 for the Python servers; best "
                  "in brackets):", "", "| server | start to ready |", "|---|---|"]
    for name, c in results["cold_start"].items():
        lines.append(f"| {name} | {c['median_s'] * 1000:.0f} ms ({c['best_s'] * 1000:.0f} ms) |")
    servers = results["servers"]
    measured = [("predict-host /predict", servers["predict-host"]["runs"][16]), ("predict-host V2 REST", v2),
                ("incumbent (FastAPI)", servers["incumbent"]["runs"][16]), ("MLServer V2 REST", ml[16]),
                ("KServe V2 REST", ks[16])]
    lines += ["", f"Cost at 16 connections' requests per CPU-second: pods at the HPA's target ({peers.HPA_TARGET:.0%} "
                  f"of a {peers.CPU_REQUEST * 1000:.0f}m CPU request), t3.medium nodes by request "
                  f"({peers.NODE_CPU} vCPU allocatable), at ${spot_price}/hour Spot, {peers.HOURS_PER_MONTH} hours "
                  "a month.", "",
              "| server | req per CPU-second | pods for 1,000 req/s | $/month | pods for 10,000 req/s | $/month |",
              "|---|---|---|---|---|---|"]
    results["cost"] = {}
    for name, run in measured:
        per_cpu = run["requests"] / run["cpu_s"]
        small, large = (peers.pods_and_cost(per_cpu, load, spot_price) for load in (1000, 10000))
        results["cost"][name] = {"rps_per_cpu_s": per_cpu, "1000": small, "10000": large}
        lines.append(f"| {name} | {per_cpu:.0f} | {small['pods']} | {small['monthly_usd']:.0f} | {large['pods']} | "
                     f"{large['monthly_usd']:.0f} |")
    s = results["shadow"]
    lines += ["", f"Idle RSS of predict-host (loaded, never under load) with one version: "
                  f"{s['rss_one_version_kib'] / 1024:.1f} MiB; with two (the stable version and a candidate in "
                  f"shadow): {s['rss_two_versions_kib'] / 1024:.1f} MiB; with two on a host that has served 16 "
                  f"connections for {results['seconds'] + 3} s: {s['rss_two_versions_after_load_kib'] / 1024:.1f} MiB."]
    return lines


def write_reports(results, out, concurrency, spot_price):
    servers = results["servers"]
    host, ceiling, incumbent = servers["predict-host"], servers["ceiling"], servers["incumbent"]
    lines = [
        f"Machine: {results['machine']['cpus']} × {results['machine']['cpu']}; "
        f"{results['seconds']} s per run after warm-up; wrk on the same machine; "
        f"mode {results['mode']}, cargo profile {results['profile']}.",
        "",
        "| server | connections | req/s | p50 | p99 | p99.9 | errors | idle RSS | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, data in servers.items():
        for c, r in data["runs"].items():
            lines.append(
                f"| {name} | {c} | {r['rps']:.0f} | {fmt_us(r['p50_us'])} | {fmt_us(r['p99_us'])} | "
                f"{fmt_us(r['p999_us'])} | {r['errors'] + r['non_2xx']} | {data['idle_rss_kib'] / 1024:.1f} MiB | "
                f"{data['peak_rss_kib'] / 1024:.1f} MiB |"
            )
    lines += ["", "| connections | predict-host / ceiling | predict-host / incumbent |", "|---|---|---|"]
    ratios = {}
    for c in concurrency:
        h = host["runs"][c]["rps"]
        ratios[c] = {"vs_ceiling": h / ceiling["runs"][c]["rps"], "vs_incumbent": h / incumbent["runs"][c]["rps"]}
        lines.append(f"| {c} | {ratios[c]['vs_ceiling']:.2f} | {ratios[c]['vs_incumbent']:.0f}× |")
    results["ratios"] = ratios
    lines += ["", "Batches at 16 connections; plugin time per call also at one connection, where a call "
                  "has the machine to itself.", "",
              "| batch rows | requests/s | rows/s | p99 | plugin time per call, 1 connection | "
              "plugin time per call, 16 connections |", "|---|---|---|---|---|---|"]
    for size, r in results["batch"].items():
        lines.append(f"| {size} | {r['rps']:.0f} | {r['rows_per_s']:.0f} | {fmt_us(r['p99_us'])} | "
                     f"{r['plugin_us_per_call_alone']:.1f} µs | {r['plugin_us_per_call']:.1f} µs |")
    s = results["swap"]
    lines += ["", f"Hot swaps: {s['swaps']} versions swapped in during a {results['seconds']} s run at 16 "
                  f"connections: p99 {fmt_us(s['during_swaps']['p99_us'])} vs. {fmt_us(s['steady']['p99_us'])} "
                  f"steady ({s['p99_ratio']:.2f}×), errors {s['during_swaps']['errors'] + s['during_swaps']['non_2xx']}. "
                  f"The {results['seconds']} s after them: p99 {fmt_us(s['after_swaps']['p99_us'])} "
                  f"({s['after_p99_ratio']:.2f}×), errors {s['after_swaps']['errors'] + s['after_swaps']['non_2xx']}; "
                  + ("the last version had moved onto Cranelift's code by their end."
                     if s["compiler_after"] == "cranelift" else
                     f"the last version still ran {s['compiler_after']}'s code at their end (its recompile with "
                     f"Cranelift is due {TIER_UP_AFTER_S} s after its swap).")]
    w = results["shadow"]
    shadowed = w["compared"] / max(1, w["compared"] + w["skipped"])
    lines += ["", f"A phased rollout's cost: the same host at 16 connections with no rollout, then while a "
                  f"candidate shadows every request (its copies scored on a thread held to 15% of one core): "
                  f"p99 {fmt_us(w['shadowing']['p99_us'])} vs. {fmt_us(w['steady']['p99_us'])} steady "
                  f"({w['p99_ratio']:.2f}×), {w['shadowing']['rps']:.0f} vs. {w['steady']['rps']:.0f} req/s "
                  f"({w['rps_ratio']:.2f}×); {w['compared']} copies compared and {w['skipped']} skipped "
                  f"because shadow work was behind ({shadowed:.0%} shadowed), errors "
                  f"{w['shadowing']['errors'] + w['shadowing']['non_2xx']}."]
    cap = results["capture"]
    lines += ["", f"Data capture: two hosts at 16 connections, measured in turn twice each, one capturing "
                  f"every request to a local directory and one with capture off: {cap['rps_on']:.0f} vs. "
                  f"{cap['rps_off']:.0f} req/s ({cap['rps_ratio']:.2f}×), worst p99 {fmt_us(cap['p99_on_us'])} "
                  f"vs. {fmt_us(cap['p99_off_us'])}; {cap['counts']['captured']} records written, "
                  f"{cap['counts']['dropped']} dropped, {cap['counts']['failed']} failed; errors {cap['errors']}."]
    p = results["packaged"]
    hand, onnx = p["hand_written"], p["packaged"]
    lines += ["", "The example's scikit-learn pipeline packaged from ONNX (`predict-host package`, median of 3: "
                  f"{p['package_s']:.2f} s) against the hand-written plugin; plugin time per call at one "
                  "connection.", "",
              "| plugin | component | load (compile, checks, self-test) | "
              + " | ".join(f"{size} rows" for size in p["ratio"]) + " |",
              "|---|---|---|" + "---|" * len(p["ratio"])]
    for name, m in [("hand-written", hand), ("packaged ONNX", onnx)]:
        lines.append(f"| {name} | {m['bytes'] / 1024:.0f} KiB | {m['load_ms']:.0f} ms | "
                     + " | ".join(f"{us:.1f} µs" for us in m["plugin_us_per_call"].values()) + " |")
    lines.append("| packaged / hand-written | | | " + " | ".join(f"{r:.2f}×" for r in p["ratio"].values()) + " |")
    lines += ["", "The Open Inference Protocol on one host, the seed basket: V2 REST with JSON tensors "
                  "(wrk over HTTP/1.1, and h2load over HTTP/2) and gRPC ModelInfer with raw tensors as "
                  "tritonclient.grpc sends them (h2load, one stream per connection).", "",
              "| connections | transport | req/s | p50 | p99 | p99.9 | errors |", "|---|---|---|---|---|---|---|"]
    for c, r in results["protocol"].items():
        for name, label in (("rest", "REST JSON, HTTP/1.1"), ("rest_h2", "REST JSON, HTTP/2"), ("grpc", "gRPC")):
            m = r[name]
            errors = m["errors"] + m.get("non_2xx", 0) + m.get("http_errors", 0)
            lines.append(f"| {c} | {label} | {m['rps']:.0f} | "
                         f"{fmt_us(m['p50_us'])} | {fmt_us(m['p99_us'])} | {fmt_us(m['p999_us'])} | {errors:.0f} |")
        lines.append(f"| {c} | gRPC / REST over HTTP/1.1 | {r['grpc_over_rest']:.2f}× | | | | |")
    if results["peers"]:
        lines += peer_report(results, spot_price)
    markdown = "\n".join(lines) + "\n"
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(markdown)
    print()
    print(markdown)
    failed = [n for n, d in servers.items() for r in d["runs"].values() if r["errors"] + r["non_2xx"]]
    failed += [f"predict-host ({step})" for step, r in [("during swaps", s["during_swaps"]),
                                                         ("after swaps", s["after_swaps"]),
                                                         ("while shadowing", w["shadowing"])]
               + [("capture", {"errors": cap["errors"], "non_2xx": 0})]
               if r["errors"] + r["non_2xx"]]
    failed += [f"v2 {name} at {c} connections" for c, r in results["protocol"].items()
               for name in ("rest", "rest_h2", "grpc")
               if r[name]["errors"] + r[name].get("non_2xx", 0) + r[name].get("http_errors", 0)]
    if failed:
        raise SystemExit(f"requests failed against: {', '.join(sorted(set(failed)))}")


if __name__ == "__main__":
    main()

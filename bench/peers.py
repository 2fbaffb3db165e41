"""What `bench/run.py` measures beside predict-host's own figures, in the full run only:

- MLServer (Seldon's Open Inference Protocol server, with mlserver-sklearn) serving the
  incumbent's scikit-learn pipeline, one inference worker per core, driven with the same
  V2 REST request as predict-host's `/v2` route (the same input tensors; MLServer also
  needs its `content_type: pd` parameter to hand the pipeline a DataFrame);
- KServe's model server (the `kserve` package, what an InferenceService with a custom
  Python predictor runs: bench/kserve/serve.py) serving the same pipeline, one worker per
  core, driven with exactly predict-host's V2 request.
Each runs from a virtual environment of its own under `target/bench`, so their pins never
touch the Python packages the tests use (nor each other's).
- cold starts: process start to the first ready answer, for predict-host (bundled
  plugin; a registry version with an empty and with a warm `CACHE_DIR`, on a moto server
  on loopback), the incumbent and MLServer;
- cost: requests per CPU-second at 16 connections, turned into the pods each server needs
  at the HPA's target (60% of the Deployment's CPU request) and what their nodes cost.
"""

import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

MLSERVER = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1"]
KSERVE = ["kserve==0.21.0"]
# As bench/incumbent/requirements.txt pins it (whose FastAPI MLServer's pins exclude).
SCIKIT_LEARN = "scikit-learn==1.9.1"
# MLServer 1.7.1's inference workers call asyncio.get_event_loop() before they set a loop,
# which uvloop 0.22 turned into an error.
UVLOOP = "uvloop==0.21.0"
# The Deployment's CPU request (k8s/deployment.yaml), the HPA's target and its fewest
# replicas (k8s/hpa.yaml).
CPU_REQUEST = 0.25
HPA_TARGET = 0.60
HPA_MIN_REPLICAS = 2
# A t3.medium: 2 vCPU; about 1.9 allocatable once the kubelet and system reserve theirs.
NODE_CPU = 1.9
HOURS_PER_MONTH = 730


def peer_python(out, name, packages):
    """The virtual environment `name` under `out` a peer runs from, made on first use, with
    `packages` and the incumbent's scikit-learn (the pipeline is pickled by one and read by
    the other)."""
    venv = os.path.join(out, name)
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages,
                    SCIKIT_LEARN], check=True)
    return python


def mlserver_python(out):
    return peer_python(out, "mlserver-venv", [*MLSERVER, UVLOOP])


def kserve_python(out):
    return peer_python(out, "kserve-venv", KSERVE)


def save_pipeline(python, root, train_csv, path):
    """Fits the incumbent's pipeline with `python` and saves it (joblib) at `path`."""
    export = ("import joblib, sys; sys.path.insert(0, sys.argv[1]); from pipeline import fit; "
              "joblib.dump(fit(sys.argv[2]), sys.argv[3])")
    subprocess.run([python, "-c", export, os.path.join(root, "bench", "incumbent"), train_csv, path], check=True)


def kserve_command(python, root, train_csv, scratch, port, cores):
    """Saves the pipeline for bench/kserve/serve.py; returns the command that serves it."""
    path = os.path.join(scratch, "model.joblib")
    save_pipeline(python, root, train_csv, path)
    return [python, os.path.join(root, "bench", "kserve", "serve.py"), path, str(port), str(free_port()),
            str(cores)]


def mlserver_request(row):
    """The V2 request predict-host's /v2 route gets, plus what MLServer needs to read it."""
    inputs = [{"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str) else "FP64", "data": [v]}
              for k, v in row.items()]
    return {"parameters": {"content_type": "pd"}, "inputs": inputs, "outputs": [{"name": "predict_proba"}]}


def mlserver_repository(python, root, train_csv, models, port, cores):
    """Fits and saves the incumbent's pipeline for mlserver-sklearn; returns the command."""
    model_dir = os.path.join(models, "price-sensitivity")
    os.makedirs(model_dir, exist_ok=True)
    save_pipeline(python, root, train_csv, os.path.join(model_dir, "model.joblib"))
    with open(os.path.join(model_dir, "model-settings.json"), "w") as f:
        json.dump({"name": "price-sensitivity", "implementation": "mlserver_sklearn.SKLearnModel",
                   "parameters": {"uri": "./model.joblib", "version": "1"}}, f)
    with open(os.path.join(models, "settings.json"), "w") as f:
        json.dump({"http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
                   "parallel_workers": cores, "debug": False}, f)
    return [os.path.join(os.path.dirname(python), "mlserver"), "start", models]


def free_port():
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answered(url, body=None):
    """Whether `url` answers 200 now (POST with `body`, GET without)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        return urllib.request.urlopen(request, timeout=2).status == 200
    except OSError:
        return False


def time_to_ready(args, url, env=None, cwd=None, body=None, runs=5, prepare=None):
    """Median and best seconds from process start to a 200 from `url`, over `runs` starts
    (`prepare()` before each)."""
    times = []
    for _ in range(runs):
        if prepare:
            prepare()
        started = time.monotonic()
        process = subprocess.Popen(args, cwd=cwd, env={**os.environ, **(env or {})},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not answered(url, body):
                if process.poll() is not None:
                    raise SystemExit(f"{args[0]} exited with {process.returncode} before it was ready")
                if time.monotonic() - started > 180:
                    raise SystemExit(f"{args[0]} was not ready in 180 s")
                time.sleep(0.005)
            times.append(time.monotonic() - started)
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return {"median_s": statistics.median(times), "best_s": min(times), "runs": len(times)}


def registry_cold_starts(host_binary, bundled_wasm, metrics_json):
    """predict-host following a moto registry: start to ready with an empty cache (a new
    pod: download, compile) and with a warm one (a restarted pod)."""
    moto_port = free_port()
    moto = subprocess.Popen(["moto_server", "-p", str(moto_port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1", "S3_FORCE_PATH_STYLE": "true",
           "MODEL_PACKAGE_GROUP": "retail-price-sensitivity-models", "LOG_FORMAT": "json"}
    try:
        deadline = time.monotonic() + 60
        while not answered(f"http://127.0.0.1:{moto_port}/moto-api/"):
            if time.monotonic() > deadline:
                raise SystemExit("moto_server did not start")
            time.sleep(0.1)
        subprocess.run([host_binary, "publish", bundled_wasm, "--metrics", metrics_json, "--bucket", "bench-models",
                        "--create-bucket", "--create-group", "--approve"], env={**os.environ, **env}, check=True,
                       stdout=subprocess.DEVNULL)
        port = free_port()
        args = [host_binary, "serve", "--bind", "127.0.0.1", "--port", str(port), "--grpc-port", "0"]
        url = f"http://127.0.0.1:{port}/ready"
        with tempfile.TemporaryDirectory(prefix="bench-cache-") as scratch:
            cache = os.path.join(scratch, "cache")

            def empty():
                shutil.rmtree(cache, ignore_errors=True)

            cold = time_to_ready(args, url, {**env, "CACHE_DIR": cache}, prepare=empty)
            warm = time_to_ready(args, url, {**env, "CACHE_DIR": cache})
        return cold, warm
    finally:
        moto.terminate()
        moto.wait()


def cpu_seconds(pids):
    """User plus system CPU seconds used so far by `pids`."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError):
            pass
    return total


def pods_and_cost(rps_per_cpu_s, load, spot_per_hour):
    """Pods for `load` req/s with each pod held at the HPA's target of its CPU request (at
    least the HPA's minimum), the t3.medium nodes that fit them by request, and their
    monthly Spot cost."""
    per_pod = rps_per_cpu_s * CPU_REQUEST * HPA_TARGET
    pods = max(HPA_MIN_REPLICAS, math.ceil(load / per_pod))
    nodes = math.ceil(pods * CPU_REQUEST / NODE_CPU)
    return {"pods": pods, "nodes": nodes, "monthly_usd": nodes * spot_per_hour * HOURS_PER_MONTH}

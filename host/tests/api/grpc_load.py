"""Sends the seed basket over gRPC from THREADS threads for SECONDS seconds with
`tritonclient.grpc`, and prints what came back as JSON: requests, failures (with the
first few errors), and answers per model version.

Usage: grpc_load.py GRPC_HOST:PORT MODEL SECONDS THREADS"""

import json
import sys
import threading
import time
from collections import Counter

import numpy as np
import tritonclient.grpc as grpcclient

GRPC, MODEL, SECONDS, THREADS = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
SEED = [("BASKET_SIZE", "M"), ("BASKET_TYPE", "MIXED"), ("STORE_REGION", "LONDON"), ("STORE_FORMAT", "LS"),
        ("SPEND", 125.5), ("QUANTITY", 3.0), ("PROD_CODE_20", "FOOD"), ("PROD_CODE_30", "FRESH")]

lock = threading.Lock()
versions, errors = Counter(), []


def inputs():
    tensors = []
    for name, value in SEED:
        text = isinstance(value, str)
        tensor = grpcclient.InferInput(name, [1], "BYTES" if text else "FP64")
        tensor.set_data_from_numpy(np.array([value.encode() if text else value],
                                            dtype=np.object_ if text else np.float64))
        tensors.append(tensor)
    return tensors


def load(deadline):
    client = grpcclient.InferenceServerClient(url=GRPC)
    while time.monotonic() < deadline:
        try:
            result = client.infer(MODEL, inputs())
            version = result.get_response().model_version
            with lock:
                versions[version] += 1
        except Exception as error:  # every failure is what this counts
            with lock:
                errors.append(str(error))


deadline = time.monotonic() + SECONDS
threads = [threading.Thread(target=load, args=(deadline,)) for _ in range(THREADS)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"requests": sum(versions.values()) + len(errors), "failures": len(errors),
                  "errors": errors[:5], "versions": versions}))

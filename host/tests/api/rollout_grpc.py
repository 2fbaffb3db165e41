"""Keeps callers on one version during a canary over gRPC, with `tritonclient.grpc` as
its users call it: a routing key in the `x-routing-key` metadata, in the request's
`routing_key` parameter, or as the request id; each key must see one version on every
call, and the keys of each kind must spread over both versions. Prints how many keys
landed on each version.

Usage: rollout_grpc.py GRPC_HOST:PORT MODEL"""

import sys
from collections import defaultdict

import numpy as np
import tritonclient.grpc as grpcclient

GRPC, MODEL = sys.argv[1], sys.argv[2]
client = grpcclient.InferenceServerClient(GRPC)


def infer(how, key):
    tensor = grpcclient.InferInput("action", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"ok"], dtype=object))
    options = {
        "metadata": {"headers": {"x-routing-key": key}},
        "parameter": {"parameters": {"routing_key": key}},
        "id": {"request_id": key},
    }[how]
    return client.infer(MODEL, [tensor], **options).get_response().model_version


seen = defaultdict(set)
for how in ("metadata", "parameter", "id"):
    for key in range(100):
        for _ in range(3):
            seen[(how, key)].add(infer(how, f"{how}-caller-{key}"))
changed = {key: versions for key, versions in seen.items() if len(versions) > 1}
assert not changed, f"keys that changed version: {changed}"
for how in ("metadata", "parameter", "id"):
    versions = {next(iter(v)) for (h, _), v in seen.items() if h == how}
    assert len(versions) == 2, f"by {how}, every key got {versions}: the key did not route"
on = defaultdict(int)
for versions in seen.values():
    on[next(iter(versions))] += 1
print("keys per version:", dict(on))

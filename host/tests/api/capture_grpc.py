"""Sends rows to a running host's gRPC port with `tritonclient.grpc`, one request each,
with `x-request-id` metadata `grpc-<i>`, and prints what was sent and answered as JSON:
[{"id", "row", "prediction", "probabilities"}] (probabilities in the model's label order).

Usage: capture_grpc.py GRPC_HOST:PORT MODEL COUNT"""

import json
import sys

import tritonclient.grpc as grpcclient

from triton_clients import arrays_of

GRPC, MODEL, COUNT = sys.argv[1], sys.argv[2], int(sys.argv[3])

client = grpcclient.InferenceServerClient(GRPC)
metadata = client.get_model_metadata(MODEL, as_json=True)
fields = [(tensor["name"], tensor["datatype"]) for tensor in metadata["inputs"]]
seed = {
    "BASKET_SIZE": "M", "BASKET_TYPE": "MIXED", "STORE_REGION": "LONDON", "STORE_FORMAT": "LS",
    "SPEND": 125.5, "QUANTITY": 3, "PROD_CODE_20": "FOOD", "PROD_CODE_30": "FRESH",
}
sent = []
for i in range(COUNT):
    row = dict(seed, SPEND=5000 + i * 0.25)
    inputs = []
    for name, datatype, data in arrays_of(fields, [row]):
        tensor = grpcclient.InferInput(name, [1], datatype)
        tensor.set_data_from_numpy(data)
        inputs.append(tensor)
    result = client.infer(MODEL, inputs, headers={"x-request-id": f"grpc-{i}"})
    label = result.as_numpy("label")[0]
    sent.append({
        "id": f"grpc-{i}",
        "row": row,
        "prediction": label.decode() if isinstance(label, bytes) else str(label),
        "probabilities": [float(p) for p in result.as_numpy("probabilities")[0]],
    })
print(json.dumps(sent))

"""Drives a running host with Triton's own Python client, `tritonclient.http`, as its users
call it: liveness, readiness, server and model metadata, and `infer` for one row and a
batch of 256, with the client's defaults (binary tensors both ways, no extra headers) and
with JSON tensors. Every answer must equal `/predict`'s for the same rows.

Usage: triton_clients.py HOST:PORT MODEL (triton_grpc.py reuses its helpers)."""

import json
import sys
import urllib.request

import numpy as np
import tritonclient.http as httpclient

def predict(address, rows):
    request = urllib.request.Request(
        f"http://{address}/predict", data=json.dumps(rows).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def rows_of(info, count):
    """`count` rows that vary every field over its categories and a range of numbers."""
    rows = []
    for i in range(count):
        row = {}
        for j, field in enumerate(info["inputs"]):
            if field["type"] == "text":
                categories = field["categories"]
                row[field["name"]] = categories[(i + j) % len(categories)]
            else:
                row[field["name"]] = float(1 + (i * 7 + j * 13) % 400) / (2 if j % 2 else 1)
        rows.append(row)
    return rows


def arrays_of(fields, rows):
    """(name, datatype, numpy array) per input field, in order."""
    for name, datatype in fields:
        if datatype == "BYTES":
            yield name, datatype, np.array([row[name].encode() for row in rows], dtype=np.object_)
        else:
            yield name, datatype, np.array([row[name] for row in rows], dtype=np.float64)


def inputs_of(metadata, rows, binary):
    inputs = []
    fields = [(tensor["name"], tensor["datatype"]) for tensor in metadata["inputs"]]
    for name, datatype, data in arrays_of(fields, rows):
        tensor_input = httpclient.InferInput(name, [len(rows)], datatype)
        tensor_input.set_data_from_numpy(data, binary_data=binary)
        inputs.append(tensor_input)
    return inputs


def check(address, result, rows, labels, how):
    """`result` (anything with `as_numpy`) answers `rows` as /predict does."""
    expected = predict(address, rows)
    got_labels = result.as_numpy("label")
    got_probabilities = result.as_numpy("probabilities")
    assert got_labels.shape == (len(rows),), (how, got_labels.shape)
    assert got_probabilities.shape == (len(rows), len(labels)), (how, got_probabilities.shape)
    for i, answer in enumerate(expected):
        label = got_labels[i]
        label = label.decode() if isinstance(label, bytes) else str(label)
        assert label == answer["prediction"], (how, i, label, answer)
        for k, name in enumerate(labels):
            assert abs(got_probabilities[i][k] - answer["probabilities"][name]) <= 1e-12, (how, i, name)


def main(address, model):
    client = httpclient.InferenceServerClient(url=address)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(model)
    server = client.get_server_metadata()
    assert "binary_tensor_data" in server["extensions"], server
    metadata = client.get_model_metadata(model)
    assert metadata["name"] == model, metadata
    with urllib.request.urlopen(f"http://{address}/model/info") as response:
        info = json.load(response)
    labels = info["labels"]
    assert [t["name"] for t in metadata["inputs"]] == [f["name"] for f in info["inputs"]], metadata

    for count in (1, 256):
        rows = rows_of(info, count)
        # The client's defaults: binary inputs, and every output in binary.
        check(address, client.infer(model, inputs_of(metadata, rows, binary=True)), rows, labels, f"binary x{count}")
        # JSON tensors both ways.
        outputs = [httpclient.InferRequestedOutput(name, binary_data=False) for name in ("label", "probabilities")]
        result = client.infer(model, inputs_of(metadata, rows, binary=False), outputs=outputs)
        check(address, result, rows, labels, f"json x{count}")
        # Mixed: JSON inputs, one output in binary.
        outputs = [httpclient.InferRequestedOutput("label", binary_data=False),
                   httpclient.InferRequestedOutput("probabilities", binary_data=True)]
        result = client.infer(model, inputs_of(metadata, rows, binary=False), outputs=outputs,
                              model_version=metadata["versions"][0])
        check(address, result, rows, labels, f"mixed x{count}")
    print("tritonclient.http: every answer equals /predict's")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

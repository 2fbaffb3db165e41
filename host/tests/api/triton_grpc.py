"""Drives a running host's gRPC port with `tritonclient.grpc`, as its users call it:
liveness, readiness, server and model metadata, and `infer` for one row and a batch of
256 (raw tensors, the client's way), each equal to `/predict`'s answer; the same with
typed contents through the protocol's own stub; malformed requests, each with its
status code and message, after which the host still serves; the gRPC health service;
request ids; and the calls counted by RPC in `/metrics`.

Usage: triton_grpc.py HTTP_HOST:PORT GRPC_HOST:PORT MODEL MAX_BATCH_ROWS"""

import json
import sys
import urllib.request

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from triton_clients import arrays_of, check, rows_of

HTTP, GRPC, MODEL, MAX_ROWS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def inputs_of(fields, rows):
    inputs = []
    for name, datatype, data in arrays_of(fields, rows):
        tensor = grpcclient.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(data)
        inputs.append(tensor)
    return inputs


class Typed:
    """A ModelInferResponse with typed contents, read as `tritonclient` results are."""

    def __init__(self, response):
        self.outputs = {output.name: output for output in response.outputs}
        assert not response.raw_output_contents, "typed in, typed out"

    def as_numpy(self, name):
        output = self.outputs[name]
        if output.datatype == "BYTES":
            data = np.array(list(output.contents.bytes_contents), dtype=np.object_)
        else:
            data = np.array(list(output.contents.fp64_contents), dtype=np.float64)
        return data.reshape(list(output.shape))


def typed_request(fields, rows):
    request = service_pb2.ModelInferRequest(model_name=MODEL, id="typed")
    for name, datatype, data in arrays_of(fields, rows):
        tensor = request.inputs.add(name=name, datatype=datatype, shape=[len(rows)])
        if datatype == "BYTES":
            tensor.contents.bytes_contents.extend(list(data))
        else:
            tensor.contents.fp64_contents.extend(data.tolist())
    return request


def refused(call, code, message):
    try:
        call()
    except InferenceServerException as error:
        assert error.status() == f"StatusCode.{code}", (code, error.status(), error.message())
        assert message in error.message(), (message, error.message())
        return
    except grpc.RpcError as error:
        assert error.code().name == code, (code, error.code(), error.details())
        assert message in error.details(), (message, error.details())
        return
    raise AssertionError(f"not refused: expected {code} {message!r}")


def main():
    client = grpcclient.InferenceServerClient(url=GRPC)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(MODEL)
    refused(lambda: client.is_model_ready("no-such-model"), "NOT_FOUND", "no-such-model")
    assert client.get_server_metadata().name == "predict-host"
    metadata = client.get_model_metadata(MODEL, as_json=True)
    assert metadata["name"] == MODEL and metadata["platform"] == "wasm-component", metadata
    fields = [(tensor["name"], tensor["datatype"]) for tensor in metadata["inputs"]]
    with urllib.request.urlopen(f"http://{HTTP}/model/info") as response:
        info = json.load(response)
    labels = info["labels"]
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(GRPC))

    for count in (1, 256):
        rows = rows_of(info, count)
        check(HTTP, client.infer(MODEL, inputs_of(fields, rows)), rows, labels, f"raw x{count}")
        version = metadata["versions"][0]
        result = client.infer(MODEL, inputs_of(fields, rows), model_version=version)
        check(HTTP, result, rows, labels, f"raw, versioned, x{count}")
        check(HTTP, Typed(stub.ModelInfer(typed_request(fields, rows))), rows, labels, f"typed x{count}")

    # Malformed requests: each refused with its code and what is wrong, nothing else.
    rows = rows_of(info, 2)
    good = lambda: inputs_of(fields, rows)

    def with_input(name, change):
        inputs = good()
        for tensor in inputs:
            if tensor.name() == name:
                change(tensor)
        return inputs

    def short_raw(tensor):
        tensor._raw_content = tensor._raw_content[:-3]

    def as_bytes(tensor):
        tensor._input.datatype = "BYTES"

    refused(lambda: client.infer(MODEL, with_input("SPEND", short_raw)), "INVALID_ARGUMENT",
            "2 element(s) of 8 bytes, 16 bytes in all, but its binary data is 13 bytes")
    refused(lambda: client.infer(MODEL, with_input("BASKET_SIZE", short_raw)), "INVALID_ARGUMENT",
            "input \"BASKET_SIZE\" (BYTES): element 1")
    refused(lambda: client.infer(MODEL, with_input("SPEND", as_bytes)), "INVALID_ARGUMENT",
            "input \"SPEND\" is a number field: its datatype must be one of")
    refused(lambda: client.infer(MODEL, good()[:-1]), "INVALID_ARGUMENT", "missing required input(s)")
    refused(lambda: client.infer("no-such-model", good()), "NOT_FOUND", "no-such-model")
    refused(lambda: client.infer(MODEL, good(), model_version="0.0.0-nope"), "NOT_FOUND", "0.0.0-nope")
    big = rows_of(info, MAX_ROWS + 1)
    refused(lambda: client.infer(MODEL, inputs_of(fields, big)), "INVALID_ARGUMENT", "over the limit")
    huge = [dict(row, BASKET_SIZE="x" * (3 << 20)) for row in rows]
    # Past MAX_BODY_BYTES: refused by the gRPC layer before it is read (tonic's code for it).
    refused(lambda: client.infer(MODEL, inputs_of(fields, huge)), "OUT_OF_RANGE", "message length too large")
    unknown = [grpcclient.InferRequestedOutput("confidence")]
    refused(lambda: client.infer(MODEL, good(), outputs=unknown), "INVALID_ARGUMENT", "unknown output")
    request = typed_request(fields, rows)
    request.raw_input_contents.append(b"\0" * 8)
    refused(lambda: stub.ModelInfer(request), "INVALID_ARGUMENT", "raw_input_contents has 1 entries for 8 inputs")
    # Still serving.
    check(HTTP, client.infer(MODEL, good()), rows, labels, "after the refusals")

    # Request ids as over HTTP: one given is kept, otherwise one is made; either is returned.
    _, call = stub.ServerLive.with_call(service_pb2.ServerLiveRequest(), metadata=(("x-request-id", "grpc-1"),))
    assert ("x-request-id", "grpc-1") in call.initial_metadata(), call.initial_metadata()
    _, call = stub.ServerLive.with_call(service_pb2.ServerLiveRequest())
    assert any(key == "x-request-id" and len(value) == 36 for key, value in call.initial_metadata())

    # The health service Kubernetes' grpc probes call: SERVING (1) for the server.
    check_health = grpc.insecure_channel(GRPC).unary_unary("/grpc.health.v1.Health/Check")
    assert check_health(b"") == b"\x08\x01", "the health service does not say SERVING"

    with urllib.request.urlopen(f"http://{HTTP}/metrics") as response:
        text = response.read().decode()
    assert 'grpc_requests_total{rpc="ModelInfer",code="OK"}' in text, text
    assert 'grpc_requests_total{rpc="ModelInfer",code="INVALID_ARGUMENT"}' in text
    print("tritonclient.grpc: every answer equals /predict's")


main()

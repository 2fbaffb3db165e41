"""The incumbent's scikit-learn pipeline behind KServe's own model server (the `kserve`
package: what an InferenceService with a custom Python predictor runs), answering the
Open Inference Protocol's V2 REST request with predict-host's outputs: `label` (BYTES)
and `probabilities` (FP64, one row per input row).

Usage: serve.py PIPELINE_JOBLIB HTTP_PORT GRPC_PORT WORKERS"""

import sys

import joblib
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class PriceSensitivity(Model):
    def __init__(self, path):
        super().__init__("price-sensitivity")
        self.path = path
        self.pipeline = None

    def load(self):
        self.pipeline = joblib.load(self.path)
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        probabilities = self.pipeline.predict_proba(payload.as_dataframe())
        labels = [str(self.pipeline.classes_[i]) for i in probabilities.argmax(axis=1)]
        outputs = [
            InferOutput(name="label", shape=[len(labels)], datatype="BYTES", data=labels),
            InferOutput(name="probabilities", shape=list(probabilities.shape), datatype="FP64",
                        data=probabilities.ravel().tolist()),
        ]
        return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=outputs)


if __name__ == "__main__":
    path, http_port, grpc_port, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    model = PriceSensitivity(path)
    model.load()
    ModelServer(http_port=http_port, grpc_port=grpc_port, workers=workers).start([model])

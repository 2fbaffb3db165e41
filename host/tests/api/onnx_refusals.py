"""Writes ONNX models that `predict-host package` must refuse, into the directory named by
the first argument: an operator the runner lacks (a scikit-learn SVC's SVMClassifier), an
image input, a sequence input, raw scores that are not probabilities, and a regressor."""

import os
import sys

import warnings

import numpy as np
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.svm import SVC


def save(model, name):
    with open(os.path.join(sys.argv[1], name), "wb") as f:
        f.write(model.SerializeToString())


def graph_model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "refused", inputs, outputs, initializer=list(initializers))
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def classifier(inputs, outputs, **attrs):
    return helper.make_node("LinearClassifier", inputs, outputs, domain="ai.onnx.ml",
                            classlabels_strings=["LA", "MM", "UM"], **attrs)


# skl2onnx reads SVC attributes that scikit-learn 1.9 deprecates.
warnings.filterwarnings("ignore", category=FutureWarning)
x = np.random.default_rng(0).normal(size=(60, 2)).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int64)
save(to_onnx(SVC().fit(x, y), x[:1]), "unsupported.onnx")

labels = helper.make_tensor_value_info("label", TensorProto.STRING, [None])
scores = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])
save(graph_model(
    [helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3]),
     classifier(["mean"], ["label", "probabilities"], coefficients=[1.0, 0.0, -1.0], intercepts=[0.0] * 3,
                post_transform="SOFTMAX")],
    [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 3, 32, 32])], [labels, scores]), "image.onnx")

words = helper.make_tensor_sequence_value_info("words", TensorProto.STRING, None)
save(graph_model([helper.make_node("Identity", ["words"], ["same"])], [words],
                 [helper.make_tensor_sequence_value_info("same", TensorProto.STRING, None)]), "sequence.onnx")

amount = helper.make_tensor_value_info("SPEND", TensorProto.FLOAT, [None, 1])
save(graph_model([classifier(["SPEND"], ["label", "probabilities"], coefficients=[2.0, -1.0, 0.5],
                             intercepts=[0.0, 0.0, 0.0], post_transform="NONE")],
                 [amount], [labels, scores]), "raw_scores.onnx")

weights = helper.make_tensor("w", TensorProto.FLOAT, [1, 1], [3.0])
save(graph_model([helper.make_node("MatMul", ["SPEND", "w"], ["variable"])], [amount],
                 [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])], [weights]),
     "regressor.onnx")

"""Writes one small ONNX model per operator case, with inputs and onnxruntime's outputs,
for tests/operators.rs to run through the engine and compare.

Usage: operators.py OUT_DIR. For each case NAME it writes NAME.onnx and NAME.json:
{"inputs": [{"name", "dtype", "shape", "values"}], "outputs": [same, from onnxruntime]}.
NaN is written as the string "nan".
"""

import json
import math
import os
import sys

import numpy as np
import onnxruntime
from onnx import TensorProto, helper

ML = "ai.onnx.ml"
DTYPES = {
    np.dtype(np.float32): ("float", TensorProto.FLOAT),
    np.dtype(np.float64): ("double", TensorProto.DOUBLE),
    np.dtype(np.int64): ("int64", TensorProto.INT64),
    np.dtype(np.int32): ("int32", TensorProto.INT32),
    np.dtype(object): ("string", TensorProto.STRING),
}
rng = np.random.default_rng(20261201)
cases = {}


def case(name, nodes, inputs, outputs, opset=17, ml=3, initializers=()):
    """`inputs`: {name: array}; `outputs`: {name: TensorProto type}."""
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, DTYPES[a.dtype][1], list(a.shape)) for n, a in inputs.items()],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs.items()],
        initializer=list(initializers),
    )
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid(ML, ml)]
    cases[name] = (helper.make_model(graph, opset_imports=opsets, ir_version=8), inputs)


def floats(*shape):
    return rng.normal(size=shape).astype(np.float32)


def texts(values, *shape):
    return np.array(values, dtype=object).reshape(shape)


def ml(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, domain=ML, **attrs)


def op(op_type, inputs, outputs, **attrs):
    return helper.make_node(op_type, inputs, outputs, **attrs)


def const(name, values, dtype):
    array = np.asarray(values, dtype=dtype)
    return helper.make_tensor(name, DTYPES[array.dtype][1], array.shape, array.flatten().tolist())


F, D, I, S = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT64, TensorProto.STRING

# ONNX-ML feature operators.
cats = ["S", "M", "L"]
case("one_hot_strings", [ml("OneHotEncoder", ["x"], ["y"], cats_strings=cats)],
     {"x": texts(["M", "L", "XL", "S", "", "M"], 6, 1)}, {"y": F})
case("one_hot_ints", [ml("OneHotEncoder", ["x"], ["y"], cats_int64s=[3, 1, 4, 1], zeros=1)],
     {"x": np.array([[3.7], [1.0], [-0.5], [4.0], [9.0]], dtype=np.float32)}, {"y": F})
case("scaler_float", [ml("Scaler", ["x"], ["y"], offset=[0.5, -1.0, 2.0], scale=[2.0, 0.25, -1.5])],
     {"x": floats(5, 3)}, {"y": F})
case("scaler_double_one_value", [ml("Scaler", ["x"], ["y"], offset=[0.1], scale=[3.3])],
     {"x": rng.normal(size=(4, 3))}, {"y": F})
case("scaler_int64", [ml("Scaler", ["x"], ["y"], offset=[1.0, 2.0], scale=[0.5, 0.1])],
     {"x": np.array([[3, 4], [10, -7]], dtype=np.int64)}, {"y": F})
for norm in ["MAX", "L1", "L2"]:
    x = floats(4, 3)
    x[1] = 0.0
    x[2] = [-2.0, -1.0, -5.0]
    case(f"normalizer_{norm.lower()}", [ml("Normalizer", ["x"], ["y"], norm=norm)], {"x": x}, {"y": F})
x = floats(4, 3)
x[0, 1] = np.nan
x[2, 0] = np.nan
case("imputer_nan", [ml("Imputer", ["x"], ["y"], imputed_value_floats=[1.5, -2.0, 3.0],
                        replaced_value_float=float("nan"))], {"x": x}, {"y": F})
case("imputer_int64", [ml("Imputer", ["x"], ["y"], imputed_value_int64s=[7], replaced_value_int64=-1)],
     {"x": np.array([[1, -1], [-1, 5]], dtype=np.int64)}, {"y": I})
case("binarizer", [ml("Binarizer", ["x"], ["y"], threshold=0.2)], {"x": floats(3, 4)}, {"y": F})
case("array_feature_extractor_strings",
     [ml("ArrayFeatureExtractor", ["x", "i"], ["y"])],
     {"x": texts(["a", "b", "c", "d", "e", "f"], 2, 3)}, {"y": S}, initializers=[const("i", [2, 0], np.int64)])
case("array_feature_extractor_vector", [ml("ArrayFeatureExtractor", ["x", "i"], ["y"])],
     {"x": floats(5)}, {"y": F}, initializers=[const("i", [4, 1, 1], np.int64)])
case("feature_vectorizer", [ml("FeatureVectorizer", ["a", "b"], ["y"], inputdimensions=[2, 3])],
     {"a": floats(3, 2), "b": floats(3, 3)}, {"y": F})
case("label_encoder_strings_to_ints",
     [ml("LabelEncoder", ["x"], ["y"], keys_strings=["a", "b", "a"], values_int64s=[1, 2, 3], default_int64=-9)],
     {"x": texts(["a", "b", "z"], 3)}, {"y": I}, ml=2)
case("label_encoder_ints_to_strings",
     [ml("LabelEncoder", ["x"], ["y"], keys_int64s=[0, 1], values_strings=["no", "yes"])],
     {"x": np.array([1, 0, 5], dtype=np.int64)}, {"y": S}, ml=2)

# LinearClassifier: multi-class and the one-score binary layout, each post-transform.
for transform in ["NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO"]:
    case(f"linear_classifier_{transform.lower()}",
         [ml("LinearClassifier", ["x"], ["label", "scores"], coefficients=floats(3 * 4).tolist(),
             intercepts=[0.1, -0.2, 0.3], classlabels_strings=["LA", "MM", "UM"], post_transform=transform)],
         {"x": floats(6, 4)}, {"label": S, "scores": F})
for transform in ["NONE", "LOGISTIC"]:
    case(f"linear_classifier_binary_{transform.lower()}",
         [ml("LinearClassifier", ["x"], ["label", "scores"], coefficients=floats(4).tolist(), intercepts=[0.05],
             classlabels_ints=[0, 1], post_transform=transform)],
         {"x": floats(6, 4)}, {"label": I, "scores": F})


def forest(trees, classes, depth, features, modes=("BRANCH_LEQ",), single_class=None, positive=False):
    """A random complete-binary-tree ensemble as TreeEnsembleClassifier attributes."""
    attrs = {k: [] for k in ["nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values",
                             "nodes_modes", "nodes_truenodeids", "nodes_falsenodeids",
                             "nodes_missing_value_tracks_true", "class_treeids", "class_nodeids",
                             "class_ids", "class_weights"]}
    for tree in range(trees):
        for node in range(2 ** (depth + 1) - 1):
            leaf = node >= 2 ** depth - 1
            attrs["nodes_treeids"].append(tree)
            attrs["nodes_nodeids"].append(node)
            attrs["nodes_featureids"].append(0 if leaf else int(rng.integers(features)))
            attrs["nodes_values"].append(0.0 if leaf else float(np.round(rng.normal(), 1)))
            attrs["nodes_modes"].append("LEAF" if leaf else str(rng.choice(modes)))
            attrs["nodes_truenodeids"].append(0 if leaf else 2 * node + 1)
            attrs["nodes_falsenodeids"].append(0 if leaf else 2 * node + 2)
            attrs["nodes_missing_value_tracks_true"].append(int(rng.integers(2)))
            if leaf:
                for c in ([single_class] if single_class is not None else range(classes)):
                    attrs["class_treeids"].append(tree)
                    attrs["class_nodeids"].append(node)
                    attrs["class_ids"].append(c)
                    weight = float(rng.normal())
                    attrs["class_weights"].append(abs(weight) / trees if positive else weight)
    return attrs


x = floats(16, 4)
x[x > 1.2] = np.nan
x[3, 1] = 0.3  # on a threshold, for the equality modes
modes = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ")
case("trees_softmax_base_values",
     [ml("TreeEnsembleClassifier", ["x"], ["label", "scores"], post_transform="SOFTMAX",
         classlabels_strings=["LA", "MM", "UM"], base_values=[0.1, -0.2, 0.05],
         **forest(5, 3, 3, 4, modes=modes))], {"x": x}, {"label": S, "scores": F})
case("trees_votes", [ml("TreeEnsembleClassifier", ["x"], ["label", "scores"], post_transform="NONE",
                        classlabels_int64s=[0, 1, 2], **forest(6, 3, 2, 4, positive=True))],
     {"x": x}, {"label": I, "scores": F})
case("trees_binary_logistic", [ml("TreeEnsembleClassifier", ["x"], ["label", "scores"], post_transform="LOGISTIC",
                                  classlabels_int64s=[0, 1], **forest(4, 2, 3, 4, single_class=0))],
     {"x": x}, {"label": I, "scores": F})
case("trees_binary_positive", [ml("TreeEnsembleClassifier", ["x"], ["label", "scores"],
                                  classlabels_strings=["no", "yes"],
                                  **forest(4, 2, 2, 4, single_class=1, positive=True))],
     {"x": x}, {"label": S, "scores": F})
doubles = forest(3, 3, 3, 4)
thresholds = np.array(doubles.pop("nodes_values"), dtype=np.float64) + 1e-9
case("trees_double_input", [ml("TreeEnsembleClassifier", ["x"], ["label", "scores"], post_transform="SOFTMAX",
                               classlabels_int64s=[5, 6, 7],
                               nodes_values_as_tensor=helper.make_tensor("t", D, thresholds.shape, thresholds),
                               **doubles)],
     {"x": x.astype(np.float64)}, {"label": I, "scores": F})

# Standard operators.
case("concat_strings", [op("Concat", ["a", "b"], ["y"], axis=1)],
     {"a": texts(["a", "b"], 2, 1), "b": texts(["c", "d", "e", "f"], 2, 2)}, {"y": S})
case("concat_floats_negative_axis", [op("Concat", ["a", "b"], ["y"], axis=-1)],
     {"a": floats(3, 2), "b": floats(3, 1)}, {"y": F})
case("reshape_copy_and_infer", [op("Reshape", ["x", "s"], ["y"])], {"x": floats(2, 3, 4)}, {"y": F},
     initializers=[const("s", [0, -1], np.int64)])
case("flatten", [op("Flatten", ["x"], ["y"], axis=2)], {"x": floats(2, 3, 4)}, {"y": F})
case("squeeze_unsqueeze", [op("Squeeze", ["x", "a"], ["s"]), op("Unsqueeze", ["s", "b"], ["y"])],
     {"x": floats(3, 1, 2)}, {"y": F},
     initializers=[const("a", [1], np.int64), const("b", [0, 3], np.int64)])
case("squeeze_opset_11", [op("Squeeze", ["x"], ["y"], axes=[1])], {"x": floats(3, 1, 2)}, {"y": F}, opset=11)
case("cast_float_to_int64", [op("Cast", ["x"], ["y"], to=I)], {"x": floats(4, 2) * 10}, {"y": I})
case("cast_string_to_float", [op("Cast", ["x"], ["y"], to=F)], {"x": texts(["1.5", "-2", "3e2"], 3)}, {"y": F})
case("arithmetic_broadcast",
     [op("Add", ["a", "b"], ["s"]), op("Mul", ["s", "a"], ["m"]), op("Sub", ["m", "b"], ["d"]),
      op("Div", ["d", "c"], ["y"])],
     {"a": floats(3, 4), "b": floats(4), "c": floats(3, 1)}, {"y": F})
case("matmul_add_softmax_argmax",
     [op("MatMul", ["x", "w"], ["z"]), op("Add", ["z", "b"], ["l"]), op("Softmax", ["l"], ["p"], axis=-1),
      op("ArgMax", ["p"], ["y"], axis=1, keepdims=0)],
     {"x": rng.normal(size=(5, 6))}, {"p": D, "y": I},
     initializers=[const("w", rng.normal(size=(6, 3)), np.float64), const("b", rng.normal(size=(1, 3)), np.float64)])
case("gemm_transposed", [op("Gemm", ["a", "b", "c"], ["y"], alpha=0.5, beta=2.0, transB=1)],
     {"a": floats(3, 4), "b": floats(2, 4), "c": floats(2)}, {"y": F})
case("softmax_opset_11_matrix", [op("Softmax", ["x"], ["y"], axis=1)], {"x": floats(2, 3, 4)}, {"y": F}, opset=11)
case("softmax_axis_1", [op("Softmax", ["x"], ["y"], axis=1)], {"x": floats(2, 3, 4)}, {"y": F})
case("argmax_last_index", [op("ArgMax", ["x"], ["y"], axis=-1, keepdims=1, select_last_index=1)],
     {"x": np.array([[1, 3, 3], [2, 2, 0]], dtype=np.float32)}, {"y": I})
case("reduce_sum_axes_input", [op("ReduceSum", ["x", "a"], ["y"], keepdims=0)], {"x": floats(2, 3, 4)}, {"y": F},
     initializers=[const("a", [0, 2], np.int64)])
case("reduce_mean_attribute", [op("ReduceMean", ["x"], ["y"], axes=[1])], {"x": floats(2, 3)}, {"y": F})
case("gather_negative", [op("Gather", ["x", "i"], ["y"], axis=1)], {"x": floats(2, 4)}, {"y": F},
     initializers=[const("i", [[-1, 0], [2, 2]], np.int64)])
case("shape", [op("Shape", ["x"], ["y"])], {"x": floats(2, 5)}, {"y": I})
case("constant_identity", [op("Constant", [], ["c"], value_floats=[1.0, 2.0]), op("Add", ["x", "c"], ["s"]),
                           op("Identity", ["s"], ["y"])], {"x": floats(3, 2)}, {"y": F})
case("reduce_max_min_argmin", [op("ReduceMax", ["x"], ["a"], axes=[1]), op("ReduceMin", ["x"], ["b"], axes=[0]),
                               op("ArgMin", ["x"], ["c"], axis=1)], {"x": floats(3, 4)}, {"a": F, "b": F, "c": I})
case("rounding", [op("Floor", ["x"], ["a"]), op("Ceil", ["x"], ["b"]), op("Reciprocal", ["x"], ["c"])],
     {"x": floats(3, 3) * 4}, {"a": F, "b": F, "c": F})
case("unary", [op("Sigmoid", ["x"], ["a"]), op("Exp", ["a"], ["b"]), op("Log", ["b"], ["c"]),
               op("Tanh", ["c"], ["d"]), op("Abs", ["d"], ["e"]), op("Sqrt", ["e"], ["f"]), op("Neg", ["f"], ["y"])],
     {"x": floats(3, 3)}, {"y": F})


def encode(name, array):
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind in "US":
        values, dtype = [str(v) for v in array.flatten()], "string"
    else:
        dtype = DTYPES[array.dtype][0]
        values = [("nan" if math.isnan(v) else v) if isinstance(v, float) else v for v in array.flatten().tolist()]
    return {"name": name, "dtype": dtype, "shape": list(array.shape), "values": values}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, (model, inputs) in cases.items():
        path = os.path.join(out, f"{name}.onnx")
        with open(path, "wb") as f:
            f.write(model.SerializeToString())
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        results = session.run(names, inputs)
        operators = [f"{n.domain}:{n.op_type}" if n.domain else n.op_type for n in model.graph.node]
        document = {"operators": operators, "inputs": [encode(n, a) for n, a in inputs.items()],
                    "outputs": [encode(n, r) for n, r in zip(names, results)]}
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump(document, f)
    print(len(cases))


if __name__ == "__main__":
    main()

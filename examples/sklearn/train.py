"""Train the runbook's price-sensitivity classifier with scikit-learn (or LightGBM or
XGBoost) and export it to ONNX, ready for `predict-host package` or `publish`.

Reads train.csv and test.csv, the project's synthetic retail baskets (write them with
`cargo run --release -p price-sensitivity-model --features train --bin
train-price-sensitivity -- data/`), fits the chosen model on the training rows, and
writes into --out:

  model.onnx     the fitted pipeline, converted with skl2onnx (with onnxmltools'
                 converters for LightGBM and XGBoost)
  manifest.json  what the graph cannot say: name, version, description, a sample row,
                 and the class names where the model numbers its classes (XGBoost)
  metrics.json   accuracy, macro-F1, per-class precision/recall/F1, log loss and the
                 confusion matrix on the held-out rows

--predictions FILE also writes, for every held-out row, scikit-learn's answer and
onnxruntime's answer on model.onnx, to compare a served version against.
"""

import argparse
import json
import os

import numpy as np
import onnxruntime
import pandas as pd
from skl2onnx import convert_sklearn, update_registered_converter
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
from sklearn import metrics
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler

CATEGORICAL = ["BASKET_SIZE", "BASKET_TYPE", "STORE_REGION", "STORE_FORMAT", "PROD_CODE_20", "PROD_CODE_30"]
NUMERIC = ["SPEND", "QUANTITY"]
TARGET = "LABEL"
MODELS = ["logistic", "gradient-boosting", "random-forest", "lightgbm", "xgboost"]
# The runbook's seed basket: every host scores it before the version may serve.
SAMPLE = {
    "BASKET_SIZE": "M", "BASKET_TYPE": "MIXED", "STORE_REGION": "LONDON", "STORE_FORMAT": "LS",
    "SPEND": 125.50, "QUANTITY": 3, "PROD_CODE_20": "FOOD", "PROD_CODE_30": "FRESH",
}
# ai.onnx.ml 3 is the newest the LightGBM and XGBoost converters write.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def classifier(kind):
    if kind == "logistic":
        return LogisticRegression(max_iter=1000)
    if kind == "gradient-boosting":
        return GradientBoostingClassifier(n_estimators=100, random_state=0)
    if kind == "random-forest":
        return RandomForestClassifier(n_estimators=50, min_samples_leaf=5, random_state=0)
    if kind == "lightgbm":
        from lightgbm import LGBMClassifier
        return LGBMClassifier(n_estimators=100, random_state=0, verbose=-1)
    from xgboost import XGBClassifier
    return XGBClassifier(n_estimators=100, random_state=0)


def pipeline(kind):
    """One-hot categoricals and the numbers, then the classifier.

    A linear model gets standardised numbers. Trees split on raw values: scaling them
    first only adds float rounding next to split points (ONNX computes in float, scikit-
    learn in double). And the encoding is dense, since XGBoost reads the zeros a sparse
    matrix leaves out as missing values, which the exported graph does not.
    """
    if kind == "logistic":
        numbers = ("amounts", StandardScaler(), NUMERIC)
        categories = ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)
        encode = ColumnTransformer([categories, numbers])
    else:
        categories = ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL)
        encode = ColumnTransformer([categories, ("amounts", "passthrough", NUMERIC)], sparse_threshold=0)
    return Pipeline([("encode", encode), ("classify", classifier(kind))])


def register_converters(kind):
    """skl2onnx converts scikit-learn itself; LightGBM and XGBoost need onnxmltools'."""
    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    if kind == "lightgbm":
        from lightgbm import LGBMClassifier
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
        update_registered_converter(LGBMClassifier, "LightGbmLGBMClassifier",
                                    calculate_linear_classifier_output_shapes, convert_lightgbm, options=options)
    if kind == "xgboost":
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier
        update_registered_converter(XGBClassifier, "XGBoostXGBClassifier",
                                    calculate_linear_classifier_output_shapes, convert_xgboost, options=options)


def to_onnx(model, kind):
    """One ONNX input per column, so the served schema has the columns' names."""
    register_converters(kind)
    inputs = [(c, StringTensorType([None, 1])) for c in CATEGORICAL]
    inputs += [(c, FloatTensorType([None, 1])) for c in NUMERIC]
    return convert_sklearn(model, f"price-sensitivity-{kind}", initial_types=inputs, target_opset=TARGET_OPSET)


def onnx_answers(path, rows, labels):
    """onnxruntime's labels and probabilities (in `labels` order) for `rows`."""
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = {c: rows[c].to_numpy(dtype=object).reshape(-1, 1) for c in CATEGORICAL}
    feed.update({c: rows[c].to_numpy(dtype=np.float32).reshape(-1, 1) for c in NUMERIC})
    predicted, probabilities = session.run(None, feed)
    if isinstance(probabilities, list):  # a ZipMap: one {class: probability} per row
        probabilities = [[row[label] if label in row else row[i] for i, label in enumerate(labels)]
                         for row in probabilities]
    return [str(p) for p in predicted], np.asarray(probabilities, dtype=np.float64)


def held_out_metrics(kind, truth, predicted, probabilities, labels, n_train):
    report = metrics.classification_report(truth, predicted, labels=labels, output_dict=True, zero_division=0)
    return {
        "model": f"price-sensitivity-{kind}",
        "algorithm": kind,
        "n_train": n_train,
        "n_test": len(truth),
        "accuracy": metrics.accuracy_score(truth, predicted),
        "macro_f1": metrics.f1_score(truth, predicted, labels=labels, average="macro"),
        "log_loss": metrics.log_loss(truth, probabilities, labels=labels),
        "per_class": {label: {k: report[label][k] for k in ("precision", "recall", "f1-score", "support")}
                      for label in labels},
        "confusion_matrix": {"labels": labels,
                             "counts": metrics.confusion_matrix(truth, predicted, labels=labels).tolist()},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="directory holding train.csv and test.csv")
    parser.add_argument("--out", required=True, help="directory to write model.onnx, manifest.json, metrics.json")
    parser.add_argument("--model", choices=MODELS, default="logistic")
    parser.add_argument("--version", default="1.0.0", help="the version the plugin declares")
    parser.add_argument("--predictions", help="also write every held-out row's answers here (JSON)")
    options = parser.parse_args()

    train = pd.read_csv(os.path.join(options.data, "train.csv"))
    test = pd.read_csv(os.path.join(options.data, "test.csv"))
    model = pipeline(options.model)
    # XGBoost takes class numbers; the manifest gives the numbers their names back.
    encoder = LabelEncoder().fit(train[TARGET])
    target = encoder.transform(train[TARGET]) if options.model == "xgboost" else train[TARGET]
    model.fit(train[CATEGORICAL + NUMERIC], target)
    labels = [str(label) for label in encoder.classes_]

    os.makedirs(options.out, exist_ok=True)
    onnx_path = os.path.join(options.out, "model.onnx")
    with open(onnx_path, "wb") as f:
        f.write(to_onnx(model, options.model).SerializeToString())

    rows = test[CATEGORICAL + NUMERIC]
    predicted = [str(p) for p in encoder.inverse_transform(model.predict(rows))] \
        if options.model == "xgboost" else [str(p) for p in model.predict(rows)]
    probabilities = model.predict_proba(rows)
    onnx_predicted, onnx_probabilities = onnx_answers(onnx_path, rows, labels)
    if options.model == "xgboost":
        onnx_predicted = [labels[int(p)] for p in onnx_predicted]

    # The bundled model's name: Open Inference Protocol clients address the model by it,
    # so they keep working when this version replaces that one.
    manifest = {
        "name": "price-sensitivity",
        "version": options.version,
        "description": f"Retail basket price sensitivity (LA/MM/UM): scikit-learn pipeline, {options.model}",
        "sample": SAMPLE,
    }
    if options.model == "xgboost":
        manifest["labels"] = labels
    results = held_out_metrics(options.model, list(test[TARGET]), predicted, probabilities, labels, len(train))
    for name, document in (("manifest.json", manifest), ("metrics.json", results)):
        with open(os.path.join(options.out, name), "w") as f:
            json.dump(document, f, indent=2)
    if options.predictions:
        answers = {
            "labels": labels,
            "rows": json.loads(rows.to_json(orient="records")),
            "sklearn": {"labels": predicted, "probabilities": probabilities.tolist()},
            "onnxruntime": {"labels": onnx_predicted, "probabilities": onnx_probabilities.tolist()},
        }
        with open(options.predictions, "w") as f:
            json.dump(answers, f)
    gap = float(np.abs(probabilities - onnx_probabilities).max())
    print(json.dumps({"model": options.model, "onnx": onnx_path, "accuracy": results["accuracy"],
                      "macro_f1": results["macro_f1"], "onnxruntime_max_difference": gap}))


if __name__ == "__main__":
    main()

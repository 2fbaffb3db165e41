"""The incumbent's scikit-learn pipeline: one-hot categoricals, standardised log1p
numerics, multinomial logistic regression, fitted on the trainer's training split. The
incumbent (app.py) serves it; bench/peers.py saves it for MLServer."""

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

CATEGORICAL = ["BASKET_SIZE", "BASKET_TYPE", "STORE_REGION", "STORE_FORMAT", "PROD_CODE_20", "PROD_CODE_30"]
NUMERIC = ["SPEND", "QUANTITY"]


def fit(path):
    data = pd.read_csv(path)
    features = data[CATEGORICAL + NUMERIC]
    labels = data["LABEL"]
    encode = ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("amounts", Pipeline([("log", FunctionTransformer(np.log1p)), ("scale", StandardScaler())]), NUMERIC),
        ]
    )
    model = Pipeline([("encode", encode), ("classify", LogisticRegression(max_iter=1000))])
    model.fit(features, labels)
    return model

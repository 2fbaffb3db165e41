"""The incumbent predict-host is measured against: the runbook's stack, written the way
such services usually are. FastAPI parses the basket with pydantic, the row becomes a
one-row pandas DataFrame, and a scikit-learn pipeline (one-hot categoricals, standardised
log1p numerics, multinomial logistic regression) scores it.

The pipeline is fitted at start-up on the same synthetic training split the plugin was
trained on (TRAIN_CSV, written by the trainer). Run with uvicorn, one worker per core
(serve.py).
"""

import os

import numpy as np
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

from pipeline import fit

MODEL = fit(os.environ["TRAIN_CSV"])
app = FastAPI()


class Basket(BaseModel):
    BASKET_SIZE: str
    BASKET_TYPE: str
    STORE_REGION: str
    STORE_FORMAT: str
    SPEND: float
    QUANTITY: float
    PROD_CODE_20: str
    PROD_CODE_30: str


@app.post("/predict")
def predict(basket: Basket):
    row = pd.DataFrame([basket.model_dump()])
    probabilities = MODEL.predict_proba(row)[0]
    labels = [str(label) for label in MODEL.classes_]
    return {
        "prediction": labels[int(np.argmax(probabilities))],
        "probabilities": dict(zip(labels, map(float, probabilities))),
        "model_version": "incumbent",
    }

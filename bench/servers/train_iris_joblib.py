"""Train the benchmark's iris LogisticRegression and save it with joblib, in a peer's venv.

The same training as ``examples.sklearn_models.build_iris`` (so the same model), pickled by
the scikit-learn of the venv that loads it: ``python train_iris_joblib.py OUT.joblib``.
"""

from __future__ import annotations

import sys

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

if __name__ == "__main__":
    data = load_iris()
    joblib.dump(LogisticRegression(max_iter=1000).fit(data.data, data.target), sys.argv[1])

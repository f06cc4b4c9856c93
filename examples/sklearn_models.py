"""Example scikit-learn models, trained on data bundled with scikit-learn (no downloads).

Each builder writes ``models_dir/<model>/1/`` (``model.skops`` + ``metadata.json``, see
``clients.sklearn_artifacts.save_model``) and returns ``models_dir/<model>``, usable directly
as a model base path. A version is written into a hidden staging directory and then renamed
into place, so a server scanning the base path never sees a half-written version.

* ``iris`` -- LogisticRegression on the iris flowers: 4 features (``sepal_length``,
  ``sepal_width``, ``petal_length``, ``petal_width``, in cm), classes 0, 1, 2
  (setosa, versicolor, virginica). For :predict, :classify and the predict_proba signature.
* ``diabetes`` -- Ridge regression on the diabetes data set: 10 standardized features
  (``age``, ``sex``, ``bmi``, ``bp``, ``s1`` ... ``s6``) -> disease progression. For :regress.

Usage: ``python -m examples.sklearn_models MODELS_DIR``.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge

from clients.sklearn_artifacts import save_model

IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def build_iris(models_dir: Path) -> Path:
    """Train LogisticRegression on iris, save it as ``models_dir/iris/1``; return the base path."""
    data = load_iris()
    model = LogisticRegression(max_iter=1000).fit(data.data, data.target)
    return publish(model, models_dir / "iris", IRIS_FEATURES)


def build_diabetes_regressor(models_dir: Path) -> Path:
    """Train Ridge on the diabetes data and save it as ``models_dir/diabetes/1``."""
    data = load_diabetes()
    model = Ridge(alpha=0.1).fit(data.data, data.target)
    return publish(model, models_dir / "diabetes", tuple(data.feature_names))


def publish(estimator: Any, base_path: Path, feature_names: Sequence[str]) -> Path:
    """Save `estimator` as version 1 of `base_path`, replacing any earlier version 1."""
    base_path.mkdir(parents=True, exist_ok=True)
    staging = base_path / ".staging-1"
    shutil.rmtree(staging, ignore_errors=True)
    save_model(estimator, staging, fmt="skops", feature_names=feature_names)
    final = base_path / "1"
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    return base_path


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("models")
    for path in (build_iris(out), build_diabetes_regressor(out)):
        print(path)

"""KServe model server for the benchmark's iris model (run with the KServe venv's python).

A small ``kserve.Model`` doing what KServe's sklearnserver does for v1 requests:
``{"instances": [[...]]}`` -> ``{"predictions": [...]}``. KServe's own flags apply
(``--http_port``, ``--grpc_port``, ``--workers``, ...), plus ``--model_path`` (joblib file).
"""

from __future__ import annotations

import argparse
from typing import Any

import joblib
from kserve import Model, ModelServer, model_server
from kserve.utils.utils import get_predict_input, get_predict_response


class IrisModel(Model):  # type: ignore[misc]
    """The joblib LogisticRegression, predicting class ids."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self._path = path
        self._estimator: Any = None

    def load(self) -> bool:
        """Load the estimator."""
        self._estimator = joblib.load(self._path)
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """Predict every instance."""
        result = self._estimator.predict(get_predict_input(payload))
        return get_predict_response(payload, result, self.name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_path", required=True)
    args, _ = parser.parse_known_args()
    model = IrisModel(args.model_name, args.model_path)
    model.load()
    ModelServer().start([model])

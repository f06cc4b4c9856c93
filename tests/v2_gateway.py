"""The gateway process the Open Inference Protocol (v2) tests talk to over real HTTP.

`python -m gateway serve` (conftest.spawn_gateway) with two models: `half_plus_two` (the
project's TF stand-in, y = x/2 + 2, served over gRPC by the session's separate
tfserving_compat process, `compat_backend`, not an embedded one) and `iris` (scikit-learn,
in-process). `iris_estimator` loads the same model file in this process, so expected
answers are computed, not written down.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clients.embedded import EmbeddedTfServing
from clients.sklearn_artifacts import load_artifact
from tests.conftest import GatewayProcess, spawn_gateway, wait_until_ready

# Iris flowers (of every class) and half_plus_two inputs (sent as float32: 0.1 is rounded).
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [5.9, 3.0, 4.2, 1.5], [6.7, 3.0, 5.2, 2.3], [4.4, 2.9, 1.4, 0.2]]
HALF_PLUS_TWO_X = [1.0, 2.0, 5.0, -3.25, 0.1, 1e30]


def v2_gateway_config(
    compat_backend: EmbeddedTfServing, tf_test_models: Path, sklearn_models_dir: Path
) -> dict[str, Any]:
    """The config of a gateway serving half_plus_two (TF, remote backend) and iris."""
    return {
        "tf_serving_target": compat_backend.target,
        "metadata_ttl_seconds": 0,
        "models": [
            {
                "name": "half_plus_two",
                "platform": "tensorflow",
                "base_path": str(tf_test_models / "half_plus_two"),
            },
            {"name": "iris", "platform": "sklearn", "base_path": str(sklearn_models_dir / "iris")},
        ],
    }


@contextlib.contextmanager
def running_v2_gateway(
    compat_backend: EmbeddedTfServing,
    tf_test_models: Path,
    sklearn_models_dir: Path,
    workdir: Path,
) -> Iterator[GatewayProcess]:
    """The gateway process on `v2_gateway_config`, ready (its /readyz answers 200)."""
    config = v2_gateway_config(compat_backend, tf_test_models, sklearn_models_dir)
    with spawn_gateway(config, workdir) as gateway:
        wait_until_ready(gateway.url, gateway.process, gateway.log)
        yield gateway


def iris_estimator(sklearn_models_dir: Path) -> Any:
    """The iris estimator, loaded here from the file the gateway serves."""
    return load_artifact(sklearn_models_dir / "iris" / "1").estimator

"""Real Open Inference Protocol (v2) clients, unchanged, against a running gateway process.

`tritonclient[http]` (JSON, and binary tensor data for inputs and outputs) and the `kserve`
SDK's `InferenceRESTClient` (`RESTConfig(protocol="v2")`, its `InferRequest`/`InferInput`)
run in a virtualenv of their own, never in the project's environment: kserve pins
protobuf < 7 and psutil < 6, and tritonclient would move ml_dtypes below TensorFlow's.
The venv is built once and cached under pytest's cache directory
(`.pytest_cache/d/v2-clients-venv`, rebuilt when CLIENT_REQUIREMENTS change; about 50 s
from PyPI the first time), and tests/v2_client_driver.py runs every call in one process.

The gateway (tests/v2_gateway.py) serves half_plus_two over gRPC from the session's
separate tfserving_compat process and iris in-process. Expected values are computed
here: y = x/2 + 2 in float32, iris by the estimator loaded from the same model file,
metadata from the gateway's own /v1 metadata. No model takes FP16, so FP16 binary data
sent to half_plus_two (FP32) must be refused with a 400 that names both datatypes.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from clients.dtypes import BY_DTYPE
from clients.types import DType
from tests.conftest import GatewayProcess
from tests.test_python_client import OFFLINE_MARKERS
from tests.v2_gateway import HALF_PLUS_TWO_X, IRIS_ROWS, iris_estimator

DRIVER = Path(__file__).with_name("v2_client_driver.py")
# The clients under test, pinned so that a run is reproducible (and the cache key is exact).
CLIENT_REQUIREMENTS = ("tritonclient[http]==2.73.0", "kserve==0.21.0")
CLIENTS = ("triton", "kserve")


def _venv_is_current(python: Path, stamp: Path, wanted: str) -> bool:
    return python.exists() and stamp.exists() and stamp.read_text() == wanted


def _build_venv(root: Path) -> Path:
    """The python of the clients' venv under `root`, built unless its stamp matches."""
    venv, stamp = root / "venv", root / "requirements.txt"
    python = venv / "bin" / "python"
    wanted = "\n".join((sys.version, *CLIENT_REQUIREMENTS)) + "\n"
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest building the same venv: wait
        if _venv_is_current(python, stamp, wanted):
            return python
        stamp.unlink(missing_ok=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        result = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *CLIENT_REQUIREMENTS],
            capture_output=True,
            text=True,
            timeout=900,
            env=env,
            check=False,
        )
        if result.returncode != 0:
            output = result.stdout + result.stderr
            if any(marker in output for marker in OFFLINE_MARKERS):
                pytest.skip(f"the package index is unreachable:\n{output[-2000:]}")
            pytest.fail(f"pip install {' '.join(CLIENT_REQUIREMENTS)} failed:\n{output[-4000:]}")
        stamp.write_text(wanted)
    return python


@pytest.fixture(scope="module")
def clients_python(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of the venv holding tritonclient[http] and kserve (cached across runs)."""
    cache = pytestconfig.cache
    root = cache.mkdir("v2-clients-venv") if cache is not None else tmp_path_factory.mktemp("v2")
    return _build_venv(Path(root))


@pytest.fixture(scope="module")
def results(
    clients_python: Path, v2_gateway: GatewayProcess, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Every client call's result, from one run of the driver."""
    plan = tmp_path_factory.mktemp("v2-plan") / "plan.json"
    plan.write_text(
        json.dumps({"url": v2_gateway.url, "x": HALF_PLUS_TWO_X, "iris_rows": IRIS_ROWS})
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [str(clients_python), str(DRIVER), str(plan)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def value(result: dict[str, Any]) -> Any:
    """The value of a call that must have succeeded."""
    assert "value" in result, result
    return result["value"]


def array(encoded: dict[str, Any]) -> np.ndarray:
    """A driver-encoded numpy array back as numpy, with its dtype and shape."""
    return np.array(encoded["array"], dtype=encoded["dtype"]).reshape(encoded["shape"])


def assert_same(got: np.ndarray, expected: np.ndarray) -> None:
    """Same dtype, shape and values, bit for bit."""
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert got.tobytes() == expected.tobytes(), (got, expected)


def half_plus_two(x: list[float]) -> np.ndarray:
    """y = x/2 + 2 in float32, as the model computes it, shaped [n, 1]."""
    inputs = np.array(x, dtype=np.float32).reshape(-1, 1)
    return inputs * np.float32(0.5) + np.float32(2)


def test_client_versions(results: dict[str, Any]) -> None:
    """The venv holds the pinned clients (the report quotes these)."""
    pins = dict(requirement.split("==") for requirement in CLIENT_REQUIREMENTS)
    versions = results["versions"]
    assert versions["tritonclient"] == pins["tritonclient[http]"]
    assert versions["kserve"] == pins["kserve"]


@pytest.mark.parametrize("client", CLIENTS)
def test_server_live_and_ready(results: dict[str, Any], client: str) -> None:
    calls = results[client]
    assert value(calls["server_live"]) is True
    assert value(calls["server_ready"]) is True


@pytest.mark.parametrize("client", CLIENTS)
def test_model_ready(results: dict[str, Any], client: str) -> None:
    calls = results[client]
    assert value(calls["half_plus_two_ready"]) is True
    assert value(calls["iris_ready"]) is True
    assert value(calls["unknown_ready"]) is False  # both read a 4xx as "not ready"


def test_model_ready_by_version_with_tritonclient(results: dict[str, Any]) -> None:
    calls = results["triton"]
    assert value(calls["half_plus_two_123_ready"]) is True
    assert value(calls["half_plus_two_999_ready"]) is False


def test_server_metadata_with_tritonclient(results: dict[str, Any]) -> None:
    metadata = value(results["triton"]["server_metadata"])
    assert metadata["name"] == "tfs-gateway"
    assert "binary_tensor_data" in metadata["extensions"]
    assert isinstance(metadata["version"], str) and metadata["version"]


def _v1_metadata_as_v2(url: str, model: str, platform: str) -> dict[str, Any]:
    """What v2 metadata must say, from the gateway's /v1 metadata of the default signature."""
    response = httpx.get(f"{url}/v1/models/{model}/metadata", timeout=30)
    assert response.status_code == 200, response.text
    document = response.json()
    signature = document["metadata"]["signature_def"]["signature_def"]["serving_default"]

    def tensor(name: str, info: dict[str, Any]) -> dict[str, Any]:
        dims = [int(dim["size"]) for dim in info["tensor_shape"].get("dim", [])]
        datatype = BY_DTYPE[DType[info["dtype"]]].v2_name
        return {"name": name, "datatype": datatype, "shape": dims}

    outputs = {
        # scikit-learn outputs are named by method ("predict:0" -> "predict")
        (info["name"].split(":")[0] if platform == "sklearn" else alias): info
        for alias, info in signature["outputs"].items()
    }
    return {
        "name": model,
        "versions": [document["model_spec"]["version"]],
        "platform": platform,
        "inputs": [tensor(n, info) for n, info in sorted(signature["inputs"].items())],
        "outputs": [tensor(n, info) for n, info in sorted(outputs.items())],
    }


@pytest.mark.parametrize(
    ("model", "platform"), [("half_plus_two", "tensorflow_savedmodel"), ("iris", "sklearn")]
)
def test_model_metadata_with_tritonclient(
    results: dict[str, Any], v2_gateway: GatewayProcess, model: str, platform: str
) -> None:
    """tritonclient parses the metadata, and it says what /v1 metadata says."""
    metadata = value(results["triton"][f"{model}_metadata"])
    assert metadata == _v1_metadata_as_v2(v2_gateway.url, model, platform)


def test_unknown_model_metadata_is_a_404_with_tritonclient(results: dict[str, Any]) -> None:
    failure = results["triton"]["unknown_metadata"]
    assert failure["error"] == "InferenceServerException", failure
    assert failure["status"] == "404", failure
    assert "no_such_model" in failure["message"], failure


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("kind", ["json", "binary"])
def test_half_plus_two_infer(results: dict[str, Any], client: str, kind: str) -> None:
    outputs = value(results[client][f"half_plus_two_{kind}"])["outputs"]
    assert list(outputs) == ["y"]
    assert_same(array(outputs["y"]), half_plus_two(HALF_PLUS_TWO_X))


def test_tritonclient_gets_binary_outputs_when_asked(results: dict[str, Any]) -> None:
    """Output `binary_data` (and, with no outputs named, `binary_data_output`) is honoured."""
    calls = results["triton"]
    assert value(calls["half_plus_two_binary"])["binary"] == {"y": True}
    assert value(calls["half_plus_two_json"])["binary"] == {"y": False}
    default = value(calls["half_plus_two_default_outputs"])
    assert default["binary"] == {"y": True}
    assert_same(array(default["outputs"]["y"]), half_plus_two(HALF_PLUS_TWO_X))


def test_half_plus_two_by_version_with_tritonclient(results: dict[str, Any]) -> None:
    call = value(results["triton"]["half_plus_two_version_123"])
    assert call["model_version"] == "123"
    assert_same(array(call["outputs"]["y"]), half_plus_two(HALF_PLUS_TWO_X))
    failure = results["triton"]["half_plus_two_unknown_version"]
    assert failure["status"] == "404", failure


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("kind", ["json", "binary"])
def test_iris_predict_and_predict_proba(
    results: dict[str, Any], sklearn_models_dir: Path, client: str, kind: str
) -> None:
    """Default outputs are `predict`; output name `predict_proba` picks that method."""
    estimator = iris_estimator(sklearn_models_dir)
    rows = np.array(IRIS_ROWS, dtype=np.float64)
    predicted = value(results[client][f"iris_predict_{kind}"])["outputs"]
    assert list(predicted) == ["predict"]
    assert_same(array(predicted["predict"]), estimator.predict(rows).astype(np.int64))
    proba = value(results[client][f"iris_proba_{kind}"])["outputs"]
    assert list(proba) == ["predict_proba"]
    assert_same(array(proba["predict_proba"]), estimator.predict_proba(rows))


def test_iris_takes_fp32_rows_widened_to_fp64(
    results: dict[str, Any], sklearn_models_dir: Path
) -> None:
    """FP64 inputs accept any numeric datatype: float32 rows are predicted as their float64
    values (not as the decimal text they came from)."""
    rows = np.array(IRIS_ROWS, dtype=np.float32).astype(np.float64)
    outputs = value(results["triton"]["iris_fp32_rows"])["outputs"]
    expected = iris_estimator(sklearn_models_dir).predict(rows).astype(np.int64)
    assert_same(array(outputs["predict"]), expected)


@pytest.mark.parametrize("client", CLIENTS)
def test_fp16_binary_data_to_an_fp32_model_is_a_400_naming_both(
    results: dict[str, Any], client: str
) -> None:
    """No served model takes FP16; FP16 binary data reaches the gateway (kserve refuses FP16
    in JSON itself) and is refused with what the model expects."""
    failure = results[client]["half_plus_two_fp16"]
    assert "value" not in failure, failure
    assert str(failure["status"]) == "400", failure
    assert "Input 'x' is FP16, the model expects FP32" in failure["message"], failure


@pytest.mark.parametrize("client", CLIENTS)
def test_unknown_model_infer_is_a_404(results: dict[str, Any], client: str) -> None:
    failure = results[client]["unknown_model_infer"]
    assert str(failure["status"]) == "404", failure
    assert "no_such_model" in failure["message"], failure


def test_kserve_request_id_comes_back(results: dict[str, Any]) -> None:
    """kserve's InferRequest always sends an id (a uuid); the response carries it."""
    call = value(results["kserve"]["half_plus_two_json"])
    assert call["id_sent"] and call["id"] == call["id_sent"]

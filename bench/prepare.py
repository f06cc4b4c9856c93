"""Everything before the first timed run: venvs, models, request bodies, server configs.

The work dir holds ``models/`` (iris via the project's save_model, half_plus_two, image),
``gateway.yaml`` (iris) and ``gateway-tf.yaml`` (iris + TF models), ``mlserver/`` and
``kserve/`` (the iris model re-trained and pickled by each venv's own scikit-learn), and
``bodies/``. A step that fails marks the targets that need it as failed, with the reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.targets import IMAGE_V2_HEADER, Target
from bench.venvs import Venv, ensure_venv

REPO = Path(__file__).resolve().parent.parent
_TRAIN = REPO / "bench" / "servers" / "train_iris_joblib.py"
_GATEWAY_MODELS = {
    name: f"  - {{name: {name}, platform: {platform}, base_path: models/{name}}}\n"
    for name, platform in (
        ("iris", "sklearn"),
        ("half_plus_two", "tensorflow"),
        ("image", "tensorflow"),
    )
}
_MLSERVER_SETTINGS = {
    "name": "iris",
    "implementation": "mlserver_sklearn.SKLearnModel",
    "parameters": {"uri": "./model.joblib"},
}


def write_bodies(bodies: Path) -> None:
    """The request bodies: iris 1 and 64 rows (v1 and V2 JSON), half_plus_two, an image
    (v1 JSON, v2 JSON and v2 with binary tensor data)."""
    from sklearn.datasets import load_iris

    bodies.mkdir(parents=True, exist_ok=True)
    data = load_iris().data
    for count, rows in ((1, data[:1]), (64, data[::2][:64])):
        listed = rows.tolist()
        v2 = {"name": "predict", "shape": [count, 4], "datatype": "FP64"}
        v2["data"] = rows.ravel().tolist()
        (bodies / f"iris-{count}-v1.json").write_text(json.dumps({"instances": listed}))
        (bodies / f"iris-{count}-v2.json").write_text(json.dumps({"inputs": [v2]}))
    (bodies / "hpt-1.json").write_text(json.dumps({"instances": [[1.0]]}))
    image = np.round(np.random.default_rng(0).random((224, 224, 3)), 4)
    (bodies / "image-1.json").write_text(json.dumps({"instances": [image.tolist()]}))
    v2_image = {"name": "image", "shape": [1, 224, 224, 3], "datatype": "FP32"}
    v2_image["data"] = image.ravel().tolist()
    (bodies / "image-1-v2.json").write_text(json.dumps({"inputs": [v2_image]}))
    binary = IMAGE_V2_HEADER + image.astype("<f4").tobytes()
    (bodies / "image-1-v2.bin").write_bytes(binary)


def write_gateway_configs(work: Path) -> None:
    """gateway.yaml (iris only) and gateway-tf.yaml (iris, half_plus_two, image)."""
    (work / "gateway.yaml").write_text("models:\n" + _GATEWAY_MODELS["iris"])
    (work / "gateway-tf.yaml").write_text("models:\n" + "".join(_GATEWAY_MODELS.values()))


def build_models(work: Path, log: Path) -> str | None:
    """Build the gateway's models in a child process; the failure reason, or None."""
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "bench.build_models", str(work / "models")],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    return None if done.returncode == 0 else f"model build failed (see {log.name})"


def peer_model(venv: Venv, model_dir: Path, log: Path) -> str | None:
    """Train and pickle iris with `venv`'s python into `model_dir`; the failure reason or None."""
    assert venv.python is not None
    model_dir.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        done = subprocess.run(
            [str(venv.python), str(_TRAIN), str(model_dir / "model.joblib")],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        return f"iris training in the {venv.name} venv failed (see {log.name})"
    if venv.name == "mlserver":
        (model_dir / "model-settings.json").write_text(json.dumps(_MLSERVER_SETTINGS, indent=2))
    return None


def prepare(
    targets: list[Target], work: Path, venv_dir: Path, logs: Path
) -> tuple[dict[str, Venv], dict[str, str]]:
    """Get everything `targets` need; return the venvs and {target name: failure reason}."""
    logs.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    failed: dict[str, str] = {}
    write_bodies(work / "bodies")
    write_gateway_configs(work)
    if any(t.name.startswith("gateway") for t in targets):
        print("building models ...", flush=True)
        reason = build_models(work, logs / "build-models.log")
        if reason:
            failed.update({t.name: reason for t in targets if t.name.startswith("gateway")})
    venvs: dict[str, Venv] = {}
    for name in sorted({t.venv for t in targets if t.venv}):
        print(f"venv {name} ...", flush=True)
        venv = ensure_venv(name, venv_dir, logs)
        model_dir = work / name / "iris"  # MLServer wants the folder named like the model
        reason = venv.error or peer_model(venv, model_dir, logs / f"model-{name}.log")
        venvs[name] = venv
        if reason:
            failed.update({t.name: reason for t in targets if t.venv == name})
    return venvs, failed

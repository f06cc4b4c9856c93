"""Per-model OpenAPI paths (routers/model_openapi.py), over HTTP to a running gateway process.

The gateway serves the TF test models (on the separate TF-Serving-compatible process),
scikit-learn iris and diabetes, "evolving" (a copy of iris whose base path a test adds a
version to), and two models that cannot answer: bad_half_plus_two (no version loads) and
"unreachable" (its TF Serving target listens nowhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]  # (schemathesis depends on it)
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from clients.embedded import EmbeddedTfServing, free_port
from clients.types import (
    CLASSIFY_METHOD,
    PREDICT_METHOD,
    Code,
    DType,
    ModelMetadata,
    ModelSpec,
    ServingError,
    Signature,
    TensorSpec,
)
from gateway.settings import ModelConfig, Settings
from routers import model_openapi
from routers.model_openapi import PathItems, tf_serving_v1_paths
from tests.conftest import gateway_client, spawn_gateway

AVAILABLE = ("half_plus_two", "two_versions", "iris", "diabetes", "evolving")
UNAVAILABLE = ("bad_half_plus_two", "unreachable")
STABLE = ("half_plus_two", "two_versions", "iris", "diabetes")  # "evolving" changes below
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def evolving_base(sklearn_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of iris's base path, served as "evolving"."""
    base = tmp_path_factory.mktemp("model-openapi") / "evolving"
    shutil.copytree(sklearn_models_dir / "iris", base)
    return base


@pytest.fixture(scope="module")
def gateway(
    compat_backend: EmbeddedTfServing,
    tf_test_models: Path,
    sklearn_models_dir: Path,
    evolving_base: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The URL of a `python -m gateway serve` on every model above, once they all answer."""
    tf_names = ("half_plus_two", "two_versions", "bad_half_plus_two")
    models: list[dict[str, Any]] = [
        {"name": name, "platform": "tensorflow", "base_path": str(tf_test_models / name)}
        for name in tf_names
    ]
    models += [
        {
            "name": "unreachable",
            "platform": "tensorflow",
            "base_path": str(tf_test_models / "half_plus_two"),
            "target": f"127.0.0.1:{free_port()}",
        },
        {"name": "iris", "platform": "sklearn", "base_path": str(sklearn_models_dir / "iris")},
        {
            "name": "diabetes",
            "platform": "sklearn",
            "base_path": str(sklearn_models_dir / "diabetes"),
        },
        {"name": "evolving", "platform": "sklearn", "base_path": str(evolving_base)},
    ]
    config = {
        "tf_serving_target": compat_backend.target,
        "metadata_ttl_seconds": 0,
        "sklearn_poll_seconds": 0.2,
        "models": models,
    }
    with spawn_gateway(config, tmp_path_factory.mktemp("model-openapi-gateway")) as process:
        deadline = time.monotonic() + 240
        waiting = set(AVAILABLE)
        while waiting:
            if process.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gateway: {waiting} not available:\n{process.log.read_text()[-4000:]}")
            with contextlib.suppress(httpx.HTTPError):
                waiting = {n for n in waiting if not _available(process.url, n)}
            time.sleep(0.3)
        yield process.url


def _available(url: str, name: str) -> bool:
    response = httpx.get(f"{url}/v1/models/{name}", timeout=5)
    return response.status_code == 200 and any(
        status["state"] == "AVAILABLE" for status in response.json()["model_version_status"]
    )


def _spec(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/openapi.json", timeout=30)
    assert response.status_code == 200, response.text
    spec: dict[str, Any] = response.json()
    return spec


@pytest.fixture(scope="module")
def spec(gateway: str) -> dict[str, Any]:
    """The gateway's /openapi.json once every available model answers."""
    return _spec(gateway)


def _request_schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["paths"][path]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    return schema


def _variant(spec: dict[str, Any], path: str, signature: str, form: str) -> dict[str, Any]:
    """The request schema's variant for one signature in one format ("instances"/"inputs")."""
    for variant in _request_schema(spec, path)["oneOf"]:
        if (
            variant["properties"]["signature_name"]["enum"] == [signature]
            and form in (variant["properties"])
        ):
            return dict(variant["properties"][form])
    raise AssertionError(f"no {signature} {form} variant in {path}")


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """The plain form of a single input (the first of its anyOf: plain or named)."""
    return dict(schema["anyOf"][0])


def _signatures(spec: dict[str, Any], path: str) -> set[str]:
    return {
        name
        for variant in _request_schema(spec, path)["oneOf"]
        for name in variant["properties"]["signature_name"]["enum"]
    }


def _per_model_paths(spec: dict[str, Any], name: str) -> set[str]:
    base = f"/v1/models/{name}"
    return {
        path for path in spec["paths"] if path == base or path.startswith((base + ":", base + "/"))
    }


# ---- The schema of each model -----------------------------------------------------------


def test_each_available_model_has_its_own_paths(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    for name in AVAILABLE:
        assert f"/v1/models/{name}:predict" in paths, name
        assert "get" in paths[f"/v1/models/{name}"], name
        assert "get" in paths[f"/v1/models/{name}/metadata"], name
        assert paths[f"/v1/models/{name}:predict"]["post"]["tags"] == [f"Model {name}"]
    # the generic templated paths are still there, beside them
    assert "/v1/models/{model_name}:predict" in paths
    assert "/v1/models/{model_name}/labels/{label}/metadata" in paths
    tags = {tag["name"]: tag["description"] for tag in spec["tags"]}
    assert "Version 124" in tags["Model two_versions"]  # the newest version of "all"


def test_iris_schema_from_its_signatures(spec: dict[str, Any]) -> None:
    path = "/v1/models/iris:predict"
    assert _signatures(spec, path) == {
        "serving_default",
        "predict",
        "predict_proba",
        "predict_log_proba",
        "decision_function",
    }
    rows = _variant(spec, path, "serving_default", "instances")
    plain_rows = rows["anyOf"][0]
    assert plain_rows["minItems"] == 1 and "maxItems" not in plain_rows  # -1: any batch
    row = plain_rows["items"]  # all rows plain (or all named)
    assert (row["type"], row["minItems"], row["maxItems"]) == ("array", 4, 4)
    assert row["items"] == {"type": "number", "format": "double"}  # DT_DOUBLE
    columns = _plain(_variant(spec, path, "predict_proba", "inputs"))
    assert (columns["type"], columns["minItems"]) == ("array", 1)
    assert (columns["items"]["minItems"], columns["items"]["maxItems"]) == (4, 4)
    # classify for a classifier, with its feature names; no regress
    assert "/v1/models/iris:regress" not in spec["paths"]
    examples = _request_schema(spec, "/v1/models/iris:classify")["properties"]["examples"]
    assert examples["items"]["required"] == sorted(IRIS_FEATURES)
    assert "/v1/models/diabetes:classify" not in spec["paths"]
    regress = _request_schema(spec, "/v1/models/diabetes:regress")["properties"]["examples"]
    assert len(regress["items"]["required"]) == 10


def test_half_plus_two_schema_from_its_signatures(spec: dict[str, Any]) -> None:
    path = "/v1/models/half_plus_two:predict"
    assert _signatures(spec, path) == {"serving_default"}  # the only predict signature
    row = _variant(spec, path, "serving_default", "instances")["anyOf"][0]["items"]
    assert (row["minItems"], row["maxItems"]) == (1, 1)  # x is DT_FLOAT [-1, 1]
    assert row["items"]["type"] == "number" and row["items"]["maximum"] == pytest.approx(
        3.4e38, rel=1e-2
    )
    named = _variant(spec, path, "serving_default", "inputs")["anyOf"][1]
    assert named["required"] == ["x"]
    classify = _request_schema(spec, "/v1/models/half_plus_two:classify")
    assert classify["properties"]["signature_name"]["enum"] == ["classify_x_to_y"]
    assert classify["required"] == ["signature_name", "examples"]  # default is predict
    regress = _request_schema(spec, "/v1/models/half_plus_two:regress")
    assert set(regress["properties"]["signature_name"]["enum"]) == {
        "regress_x_to_y",
        "regress_x_to_y2",
        "regress_x2_to_y3",
    }


def test_unavailable_models_are_left_out_and_named(gateway: str) -> None:
    started = time.monotonic()
    spec = _spec(gateway)
    assert time.monotonic() - started < 10
    description = spec["info"]["description"]
    for name in UNAVAILABLE:
        assert not _per_model_paths(spec, name), name
    listed = description.split("so not shown per model: ")[1].split(" (")[0]
    assert sorted(listed.split(", ")) == sorted(UNAVAILABLE), description


# ---- Requests from the schema -----------------------------------------------------------


def test_every_example_works_verbatim(gateway: str, spec: dict[str, Any]) -> None:
    tried: dict[str, int] = {}
    for name in AVAILABLE:
        for path in sorted(_per_model_paths(spec, name)):
            for method, operation in spec["paths"][path].items():
                if method == "get":
                    response = httpx.get(gateway + path, timeout=30)
                    assert response.status_code == 200, (path, response.text)
                    continue
                media = operation["requestBody"]["content"]["application/json"]
                for title, example in media.get("examples", {}).items():
                    body = json.dumps(example["value"])
                    response = httpx.post(gateway + path, content=body, timeout=30)
                    assert response.status_code == 200, (path, title, body, response.text)
                    jsonschema.validate(example["value"], media["schema"])
                    tried[name] = tried.get(name, 0) + 1
    # every model: serving_default in both formats at least; iris: each signature too
    assert all(tried.get(name, 0) >= 2 for name in AVAILABLE), tried
    assert tried["iris"] >= 2 + 4 + 1, tried  # + predict, predict_proba, ... + classify


POSITIVE = settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("name", STABLE)
def test_schemathesis_positive_cases_of_each_predict_path_get_200(
    gateway: str, spec: dict[str, Any], name: str
) -> None:
    path = f"/v1/models/{name}:predict"
    operation = schemathesis.openapi.from_dict(spec)[path]["POST"]
    answer = spec["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]

    @POSITIVE
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
        body = json.dumps(case.body)
        response = httpx.post(gateway + path, content=body, timeout=30)
        assert response.status_code == 200, (body, response.text)
        # TF Serving writes NaN and Infinity as bare tokens: read them as numbers
        jsonschema.validate(json.loads(response.text, parse_constant=float), answer["schema"])

    run()


# ---- The spec follows the models --------------------------------------------------------


def test_a_new_version_with_other_signatures_shows_up(
    gateway: str, evolving_base: Path, sklearn_models_dir: Path
) -> None:
    before = _spec(gateway)
    assert "/v1/models/evolving:classify" in before["paths"]
    # version 2 of "evolving" is the diabetes regressor: 10 features, no predict_proba
    staging = evolving_base / ".staging-2"
    shutil.copytree(sklearn_models_dir / "diabetes" / "1", staging)
    staging.rename(evolving_base / "2")
    deadline = time.monotonic() + 60
    while "/v1/models/evolving:regress" not in (after := _spec(gateway))["paths"]:
        assert time.monotonic() < deadline, "version 2 of evolving never showed up"
        time.sleep(0.3)
    assert "/v1/models/evolving:classify" not in after["paths"]
    path = "/v1/models/evolving:predict"
    assert "predict_proba" not in _signatures(after, path)
    row = _variant(after, path, "serving_default", "instances")["anyOf"][0]["items"]
    assert (row["minItems"], row["maxItems"]) == (10, 10)
    tags = {tag["name"]: tag["description"] for tag in after["tags"]}
    assert "Version 2;" in tags["Model evolving"]
    media = after["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    for example in media["examples"].values():
        response = httpx.post(gateway + path, json=example["value"], timeout=30)
        assert response.status_code == 200, response.text


# ---- The generator on its own -----------------------------------------------------------

_DOUBLE_ROWS = TensorSpec("x:0", DType.DT_DOUBLE, (-1, 3))


def _metadata(**signatures: Signature) -> ModelMetadata:
    return ModelMetadata("m", 7, signatures)


def _predict(inputs: dict[str, TensorSpec], method: str = PREDICT_METHOD) -> Signature:
    return Signature(inputs, {"y": TensorSpec("y:0", DType.DT_FLOAT, (-1,))}, method)


def _examples_fit_their_schema(paths: PathItems) -> int:
    """Validate every example of `paths` against its own request schema; count them."""
    count = 0
    for item in paths.values():
        for operation in item.values():
            media = operation.get("requestBody", {}).get("content", {}).get("application/json")
            for example in (media or {}).get("examples", {}).values():
                jsonschema.Draft202012Validator(media["schema"]).validate(example["value"])
                count += 1
    return count


def test_dtypes_and_shapes_become_json_schema() -> None:
    signatures = {
        "serving_default": _predict(
            {
                "ids": TensorSpec("ids:0", DType.DT_INT8, (-1, 2)),
                "text": TensorSpec("text:0", DType.DT_STRING, (-1,)),
                "flag": TensorSpec("flag:0", DType.DT_BOOL, (-1,)),
            }
        ),
        "scalar": _predict({"k": TensorSpec("k:0", DType.DT_UINT32, ())}),
        "any_rank": _predict({"v": TensorSpec("v:0", DType.DT_INT64, None)}),
        "pairs": _predict({"p": TensorSpec("p:0", DType.DT_DOUBLE, (2, -1))}),
        "complex": _predict({"c": TensorSpec("c:0", DType.DT_COMPLEX64, (-1,))}),
        "classify": _predict({"inputs": TensorSpec("t:0", DType.DT_STRING, None)}, CLASSIFY_METHOD),
    }
    paths = tf_serving_v1_paths("m", _metadata(**signatures))
    assert set(paths) == {
        "/v1/models/m:predict",
        "/v1/models/m:classify",
        "/v1/models/m",
        "/v1/models/m/metadata",
    }
    spec = {"paths": paths}
    path = "/v1/models/m:predict"
    assert _signatures(spec, path) == {"serving_default", "scalar", "any_rank", "pairs"}
    assert "complex" in paths[path]["post"]["description"]  # left out, and said so
    rows = _variant(spec, path, "serving_default", "instances")
    (named,) = [rows["items"]]  # several inputs: objects naming each, in every row
    assert named["required"] == ["flag", "ids", "text"]
    ids = named["properties"]["ids"]
    assert ids["items"] == {"type": "integer", "minimum": -128, "maximum": 127}
    assert named["properties"]["flag"] == {"type": "boolean"}
    text = named["properties"]["text"]["anyOf"]
    assert text[0] == {"type": "string"} and text[1]["required"] == ["b64"]
    # a scalar input has no batch dimension: the columnar format only
    assert {v["title"] for v in _request_schema(spec, path)["oneOf"] if "scalar" in v["title"]} == {
        "scalar, columnar format"
    }
    scalar = _plain(_variant(spec, path, "scalar", "inputs"))
    assert scalar == {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
    pairs = _variant(spec, path, "pairs", "instances")["anyOf"][0]
    assert (pairs["minItems"], pairs["maxItems"]) == (2, 2)  # a fixed batch of 2
    assert _examples_fit_their_schema(paths) >= 4
    examples = paths[path]["post"]["requestBody"]["content"]["application/json"]["examples"]
    default = examples["serving_default (row)"]["value"]
    assert default == {"instances": [{"flag": True, "ids": [1, 1], "text": "text"}]}
    assert examples["pairs (row)"]["value"] == {
        "signature_name": "pairs",
        "instances": [[1.0], [1.0]],
    }
    # TF classify: the features are inside the graph, so no example is claimed to work
    classify = paths["/v1/models/m:classify"]["post"]["requestBody"]["content"]["application/json"]
    assert "examples" not in classify


def test_a_model_with_no_json_signature_has_no_predict_path() -> None:
    metadata = _metadata(serving_default=_predict({"c": TensorSpec("c:0", DType.DT_HALF, (-1,))}))
    assert set(tf_serving_v1_paths("m", metadata)) == {"/v1/models/m", "/v1/models/m/metadata"}


@pytest.mark.asyncio(loop_scope="session")
async def test_a_second_protocol_adds_its_paths(
    sklearn_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_openapi, "_BUILDERS", list(model_openapi._BUILDERS))

    def v2_paths(name: str, metadata: ModelMetadata) -> PathItems:
        operation = {
            "tags": [model_openapi.model_tag(name)],
            "responses": {"200": {"description": "ok"}},
        }
        return {f"/v2/models/{name}/versions/{metadata.version}/infer": {"post": operation}}

    def broken(name: str, metadata: ModelMetadata) -> PathItems:
        raise RuntimeError("a bug in one protocol's builder")

    model_openapi.register_model_paths(v2_paths)
    model_openapi.register_model_paths(broken)
    model_openapi.register_model_paths(v2_paths)  # twice: once
    config = ModelConfig(
        name="iris", platform="sklearn", base_path=str(sklearn_models_dir / "iris")
    )
    async with gateway_client(Settings(models=[config])) as http:
        spec = (await http.get("/openapi.json")).json()
    assert "/v2/models/iris/versions/1/infer" in spec["paths"]
    assert "/v1/models/iris:predict" in spec["paths"]  # the broken builder took only its own
    assert spec["paths"]["/v2/models/iris/versions/1/infer"]["post"]["tags"] == ["Model iris"]


class _FakeEntry:
    def __init__(self, name: str) -> None:
        self.name = name


class _FakeRegistry:
    def __init__(self, names: list[str]) -> None:
        self.entries = [_FakeEntry(name) for name in names]


class _FakeDataPlane:
    """Models that answer, fail, hang or are known unready, as `model_openapi` sees them."""

    def __init__(self) -> None:
        self.registry = _FakeRegistry(["ok", "failing", "buggy", "hanging", "unready"])
        self.asked: list[str] = []

    def unready_models(self) -> dict[str, str]:
        return {"unready": "no AVAILABLE version"}

    async def metadata(self, spec: ModelSpec) -> ModelMetadata:
        self.asked.append(spec.name)
        if spec.name == "failing":
            raise ServingError(Code.UNAVAILABLE, "backend down")
        if spec.name == "buggy":
            raise RuntimeError("a backend bug")
        if spec.name == "hanging":
            await asyncio.sleep(60)
        row = TensorSpec("x:0", DType.DT_FLOAT, (-1, 1))
        return ModelMetadata(spec.name, 3, {"serving_default": _predict({"x": row})})


@pytest.mark.asyncio(loop_scope="session")
async def test_failing_slow_and_unready_backends_leave_only_their_model_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(model_openapi, "METADATA_TIMEOUT_SECONDS", 0.2)
    app = FastAPI(title="t")
    dataplane = _FakeDataPlane()
    app.state.dataplane = dataplane
    started = time.monotonic()
    spec = await model_openapi.model_openapi(app)
    assert time.monotonic() - started < 5
    assert "/v1/models/ok:predict" in spec["paths"]
    assert [tag["name"] for tag in spec["tags"]] == ["Model ok"]
    listed = spec["info"]["description"].split("so not shown per model: ")[1].split(" (")[0]
    assert listed.split(", ") == ["failing", "buggy", "hanging", "unready"]
    assert "unready" not in dataplane.asked  # known without a backend call

"""The servers the benchmark starts, each with the requests (workloads) it is driven with.

Command lines and environments may name ``{port}``, ``{grpc_port}``, ``{metrics_port}``,
``{embedded_port}`` (fresh free ports at every start) and ``{work}`` (the work dir).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Workloads: TF Serving v1 JSON (gateway, echoes, KServe) or V2 JSON (MLServer).
IRIS_1 = "iris 1 row"
IRIS_64 = "iris 64 rows"
TF_HPT = "TF half_plus_two"
TF_IMAGE = "TF image 1x224x224x3"
TF_IMAGE_V2_JSON = "TF image v2 JSON"
TF_IMAGE_V2_BINARY = "TF image v2 binary"
GRPC_HPT = "gRPC direct half_plus_two"

IMAGE_SHAPE = (1, 224, 224, 3)
# The JSON part of the binary v2 image body (bench/prepare.py appends the float32 bytes).
IMAGE_V2_HEADER = json.dumps(
    {
        "inputs": [
            {
                "name": "image",
                "shape": list(IMAGE_SHAPE),
                "datatype": "FP32",
                "parameters": {"binary_data_size": 4 * 224 * 224 * 3},
            }
        ]
    }
).encode()

V1_PATH = "/v1/models/iris:predict"
V2_PATH = "/v2/models/iris/infer"


@dataclass(frozen=True)
class Request:
    """A POST: URL path, the body file's name in the work dir's bodies/, extra headers."""

    path: str
    body: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """One server configuration."""

    name: str
    argv: list[str]
    workloads: dict[str, Request]
    env: dict[str, str] = field(default_factory=dict)
    venv: str | None = None  # name of the venv whose python runs it (bench/venvs.py)
    ready: Request | None = None  # first 200 here means "started"; None: the iris 1-row one
    also_ready: Request | None = None  # a second start-up time to record (gateway-tf: iris)
    grpc_direct: bool = False  # also drive its embedded TF backend with bench/grpc_load.py
    min_processes: int = 1  # fewer in its tree after start = the config did not apply
    note: str = ""
    cwd: Path | None = None  # runs from this source tree (run.py --base-tree); None: ours

    @property
    def ready_request(self) -> Request:
        """The request polled until its first 200 after start."""
        return self.ready or self.workloads[IRIS_1]


_V1 = {IRIS_1: Request(V1_PATH, "iris-1-v1.json"), IRIS_64: Request(V1_PATH, "iris-64-v1.json")}
_V2 = {IRIS_1: Request(V2_PATH, "iris-1-v2.json"), IRIS_64: Request(V2_PATH, "iris-64-v2.json")}
_TF = {
    TF_HPT: Request("/v1/models/half_plus_two:predict", "hpt-1.json"),
    TF_IMAGE: Request("/v1/models/image:predict", "image-1.json"),
    TF_IMAGE_V2_JSON: Request("/v2/models/image/infer", "image-1-v2.json"),
    TF_IMAGE_V2_BINARY: Request(
        "/v2/models/image/infer",
        "image-1-v2.bin",
        {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(IMAGE_V2_HEADER)),
        },
    ),
}
_UVICORN = ["-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1"]
_UVICORN += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
_GATEWAY_ENV = {"GATEWAY_ACCESS_LOG": "false", "GATEWAY_LOG_LEVEL": "warning"}
_MLSERVER_ENV = {
    "MLSERVER_HOST": "127.0.0.1",
    "MLSERVER_HTTP_PORT": "{port}",
    "MLSERVER_GRPC_PORT": "{grpc_port}",
    "MLSERVER_METRICS_PORT": "{metrics_port}",
}


def _echo(name: str, module: str) -> Target:
    return Target(
        name,
        [sys.executable, *_UVICORN, f"bench.servers.{module}:app"],
        {IRIS_1: _V1[IRIS_1]},
        note="uvicorn, uvloop+httptools, access log off, 1 worker",
    )


def _gateway(name: str, config: str, workers_flag: bool, **env: str) -> Target:
    argv = [sys.executable, "-m", "gateway", "serve", "--config", "{work}/" + config]
    argv += ["--port", "{port}"]
    workers = int(env.get("GATEWAY_WORKERS", "1"))
    if workers > 1 and workers_flag:
        argv += ["--workers", str(workers)]
    notes = ", ".join(
        f"{key.removeprefix('GATEWAY_').lower()}={value}" for key, value in env.items()
    )
    return Target(
        name,
        argv,
        dict(_V1),
        env={**_GATEWAY_ENV, **env},
        min_processes=workers + 1 if workers > 1 else 1,
        note=notes,
    )


def all_targets(workers_flag: bool) -> list[Target]:
    """Every server configuration, in round order. `workers_flag`: the CLI has --workers."""
    gateway_tf = Target(
        "gateway-tf",
        [sys.executable, "-m", "gateway", "serve", "--config", "{work}/gateway-tf.yaml"],
        dict(_TF),
        env={**_GATEWAY_ENV, "GATEWAY_EMBEDDED_PORT": "{embedded_port}"},
        ready=_TF[TF_HPT],
        also_ready=_V1[IRIS_1],
        grpc_direct=True,
        note="iris + half_plus_two + image; embedded TF backend (child process)",
    )
    gateway_tf.argv.extend(["--port", "{port}"])
    # The same, with gRPC's older iomgr TCP client instead of the EventEngine one: the
    # completion-queue poller thread reads the socket itself, one thread hop fewer per call.
    gateway_tf_iomgr = dataclasses.replace(
        gateway_tf,
        name="gateway-tf-iomgr",
        env={**gateway_tf.env, "GRPC_EXPERIMENTS": "-event_engine_client"},
        workloads={TF_HPT: _TF[TF_HPT]},
        note="gateway-tf with GRPC_EXPERIMENTS=-event_engine_client (half_plus_two only)",
    )
    kserve_argv = ["{venv_python}", "bench/servers/kserve_iris.py", "--model_name", "iris"]
    kserve_argv += ["--model_path", "{work}/kserve/iris/model.joblib"]
    kserve_argv += ["--http_port", "{port}", "--grpc_port", "{grpc_port}"]
    mlserver_argv = ["{venv_bin}/mlserver", "start", "{work}/mlserver"]
    return [
        _echo("asgi-echo", "asgi_echo"),
        _echo("starlette-echo", "starlette_echo"),
        _echo("fastapi-echo", "fastapi_echo"),
        _gateway("gateway", "gateway.yaml", workers_flag, GATEWAY_BATCHING_ENABLED="true"),
        _gateway("gateway-nobatch", "gateway.yaml", workers_flag, GATEWAY_BATCHING_ENABLED="false"),
        _gateway("gateway-workers2", "gateway.yaml", workers_flag, GATEWAY_WORKERS="2"),
        _gateway("gateway-accesslog", "gateway.yaml", workers_flag, GATEWAY_ACCESS_LOG="true"),
        _gateway(
            "gateway-inline", "gateway.yaml", workers_flag, GATEWAY_BATCH_INLINE_BELOW_MS="1000"
        ),
        _gateway("gateway-pool", "gateway.yaml", workers_flag, GATEWAY_BATCH_INLINE_BELOW_MS="0"),
        dataclasses.replace(
            _gateway("gateway-v2", "gateway.yaml", workers_flag, GATEWAY_BATCHING_ENABLED="true"),
            workloads=dict(_V2),
            note="the gateway on the Open Inference Protocol (MLServer's V2 bodies)",
        ),
        gateway_tf,
        gateway_tf_iomgr,
        Target(
            "mlserver",
            mlserver_argv,
            dict(_V2),
            env=dict(_MLSERVER_ENV),
            venv="mlserver",
            note="MLServer 1.7.1 defaults (parallel_workers=1, debug=true: access log on)",
        ),
        Target(
            "mlserver-tuned",
            mlserver_argv,
            dict(_V2),
            env={**_MLSERVER_ENV, "MLSERVER_PARALLEL_WORKERS": "0", "MLSERVER_DEBUG": "false"},
            venv="mlserver",
            note="parallel_workers=0 (inference in the server process), debug=false "
            "(no access log)",
        ),
        Target(
            "kserve",
            kserve_argv,
            dict(_V1),
            venv="kserve",
            note="KServe 0.21 defaults (1 worker, gRPC on, latency logging on)",
        ),
    ]

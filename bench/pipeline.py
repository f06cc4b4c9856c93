"""The wine pipeline through the gateway against a client calling its three steps itself.

Both in the same run, against the same gateway process (its embedded TF-Serving-compatible
backend serving the Keras step over gRPC, the scikit-learn steps in-process), with wrk and
the same number of connections: `post.lua` POSTs to /v1/models/wine_pipeline:predict,
`chain.lua` POSTs to the scaler, then the classifier with the scaler's answer, then the
segments with the classifier's, over HTTP. Reports pipelines per second of each and their
ratio (goal: the gateway's pipeline at least 2x), and the TF step alone: the bound on
any chain of these steps.

python bench/pipeline.py [--seconds 10] [--connections 4] [--rows 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loadgen import BENCH_DIR, WRK, run_wrk
from bench.procs import Server
from clients.embedded import free_port

STEP_PATHS = [
    "/v1/models/wine_scaler:predict",
    "/v1/models/wine_classifier:predict",
    "/v1/models/wine_segments:predict",
]
PIPELINE_PATH = "/v1/models/wine_pipeline:predict"


def _config(models: Path) -> dict[str, object]:
    example = yaml.safe_load((BENCH_DIR.parent / "examples" / "config.yaml").read_text())
    wine = [m for m in example["models"] if m["name"].startswith("wine_")]
    for model in wine:
        if "base_path" in model:
            model["base_path"] = str(models / Path(model["base_path"]).name)
    return {"access_log": False, "models": wine}


def _chain(url: str, body: Path, connections: int, seconds: int) -> tuple[float, int]:
    """Chains per second of `chain.lua`, and its failed requests."""
    argv = [WRK, f"-t{connections}", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s"]
    argv += ["-s", str(BENCH_DIR / "chain.lua"), url, "--", str(body), *STEP_PATHS]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON "))
    data = json.loads(line.removeprefix("BENCH_JSON "))
    errors = sum(int(data[k]) for k in ("failed", "connect", "read", "write", "timeout"))
    return data["chains"] / (data["duration_us"] / 1e6), errors


def main() -> None:
    """Build the models, start the gateway, run both loads, print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rows", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    models = work / "models"
    build = "from examples.pipeline_models import build_wine_pipeline as b; import sys; "
    build += "from pathlib import Path; b(Path(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", build, str(models)], check=True, capture_output=True)
    (work / "config.yaml").write_text(yaml.safe_dump(_config(models)))
    from sklearn.datasets import load_wine

    body = work / "body.json"
    body.write_text(json.dumps({"instances": load_wine().data[: args.rows].tolist()}))
    port = free_port()
    argv = [sys.executable, "-m", "gateway", "serve", "--config", "config.yaml"]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(BENCH_DIR.parent)}
    server = Server([*argv, "--port", str(port)], env, work / "gateway.log", work)
    try:
        server.wait_for_200(port, PIPELINE_PATH, body.read_bytes(), timeout=300)
        url = f"http://127.0.0.1:{port}"
        run_wrk(url + PIPELINE_PATH, body, args.connections, 2)  # warm-up
        _chain(url, body, args.connections, 2)
        gateway = run_wrk(url + PIPELINE_PATH, body, args.connections, args.seconds)
        chained, chain_errors = _chain(url, body, args.connections, args.seconds)
        # The TF step alone (the classifier fed the scaler's answer): no pipeline of these
        # steps can go faster than its slowest step does by itself.
        scaled = httpx.post(url + STEP_PATHS[0], content=body.read_bytes()).json()
        tf_body = work / "tf-body.json"
        tf_body.write_text(json.dumps({"instances": scaled["predictions"]}))
        tf_alone = run_wrk(url + STEP_PATHS[1], tf_body, args.connections, args.seconds)
    finally:
        server.stop()
    print(f"rows per request: {args.rows}, connections: {args.connections}, {args.seconds} s each")
    print(
        f"gateway pipeline : {gateway.rps:8.1f} pipelines/s  p50 {gateway.p50_ms:.2f} ms  "
        f"p99 {gateway.p99_ms:.2f} ms  errors {gateway.errors}"
    )
    print(f"client-chained   : {chained:8.1f} pipelines/s  errors {chain_errors}")
    print(f"TF step alone    : {tf_alone.rps:8.1f} requests/s  errors {tf_alone.errors}")
    print(f"ratio            : {gateway.rps / chained:.2f}x")
    print(f"pipeline / TF step alone: {gateway.rps / tf_alone.rps:.0%}")


if __name__ == "__main__":
    main()

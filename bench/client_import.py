"""Import time and memory of the Python client (client/) beside tensorflow-serving-api's.

Run from the repository root: ``python3 bench/client_import.py [--runs 7]``. It makes a
fresh virtualenv with only the client (and httpx and numpy from PyPI) unless
``--client-python`` names one, then runs, in fresh processes, interleaved:

- ``import tfs_gateway_client`` with that virtualenv's python;
- ``from tensorflow_serving.apis import prediction_service_pb2_grpc`` (what a
  tensorflow-serving-api client imports first) with this python, which has it installed;
- an empty ``pass`` in each, for the interpreter's own share.

Each process times its import statement with ``time.perf_counter`` and reports its peak
RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and its CPU time (user + system, less
skewed than wall time when other processes compete for the cores); the process's wall
time, start to exit, is timed from outside. One warm-up round is dropped; the medians are
printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import json, resource, sys, time
started = time.perf_counter()
exec(sys.argv[1])
took = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "grpc", "google"})
cpu_s = usage.ru_utime + usage.ru_stime
rss_mb = usage.ru_maxrss / 1024
print(json.dumps({"import_s": took, "cpu_s": cpu_s, "rss_mb": rss_mb, "heavy": heavy}))
"""
CLIENT = "import tfs_gateway_client"
TF_SERVING_API = "from tensorflow_serving.apis import prediction_service_pb2_grpc"


def make_client_venv(root: Path) -> Path:
    """A fresh virtualenv with the client installed from a copy of client/."""
    source = root / "src"
    ignore = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__")
    shutil.copytree(REPO / "client", source, ignore=ignore)
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(source)], check=True)
    return python


def probe(python: Path | str, statement: str) -> dict[str, Any]:
    """One fresh process running `statement`: its import time, peak RSS and wall time."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(python), "-c", PROBE, statement], capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - started
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--client-python", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="client-import-") as tmp:
        client_python = args.client_python or make_client_venv(Path(tmp))
        cases = {
            "tfs-gateway-client: `import tfs_gateway_client`": (client_python, CLIENT),
            "tensorflow-serving-api: `from tensorflow_serving.apis import "
            "prediction_service_pb2_grpc`": (sys.executable, TF_SERVING_API),
            "empty interpreter, client venv": (client_python, "pass"),
            "empty interpreter, this environment": (sys.executable, "pass"),
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
        for round_number in range(args.runs + 1):  # round 0 warms the page cache
            for name, (python, statement) in cases.items():
                result = probe(python, statement)
                if round_number:
                    runs[name].append(result)
        versions = subprocess.run(
            [
                str(client_python),
                "-c",
                "import httpx, numpy; print(httpx.__version__, numpy.__version__)",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{args.runs} runs each, medians; client venv: httpx {versions[0]}, numpy {versions[1]}")
    print(f"load average at the end: {load}")
    print()
    print("| what | import s | process wall s | process CPU s | peak RSS MB | heavy modules |")
    print("|---|--:|--:|--:|--:|---|")
    for name, results in runs.items():
        imp = statistics.median(r["import_s"] for r in results)
        wall = statistics.median(r["wall_s"] for r in results)
        cpu = statistics.median(r["cpu_s"] for r in results)
        rss = statistics.median(r["rss_mb"] for r in results)
        heavy = ", ".join(results[-1]["heavy"]) or "none"
        print(f"| {name} | {imp:.3f} | {wall:.3f} | {cpu:.3f} | {rss:.0f} | {heavy} |")


if __name__ == "__main__":
    main()

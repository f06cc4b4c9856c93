"""In-process throughput of the scikit-learn backend: batching off vs on (ratios, no thresholds).

Run from the repository root: ``python3 bench/sklearn_inprocess.py [--rounds N]``. It builds
the example iris model (LogisticRegression) in a temporary directory and has 1 and 64
asyncio tasks call ``SklearnBackend.predict`` on one-row requests, back to back, for each
configuration:

- ``off``: batching off, one pool job per request (the old path);
- ``pool``: batching on (the default: merged calls in the thread pool, one at a time);
- ``pool x2``: batching on, two merged calls of the model at once;
- ``inline``: batching on, merged calls run on the event loop (not the default).

``--model forest`` serves a 200-tree RandomForestClassifier on iris instead, whose trees
run without the GIL (where two merged calls at once can use two cores).
``--loop-work-us N`` adds N us of Python work on the event loop to every request (JSON
round trips, standing in for the HTTP side): it shows what the thread pool's hand-offs cost
when the loop is busy and a worker must wait for the GIL, which the idle loop here hides.

Configurations run interleaved, ``--rounds`` times; each keeps its best round, so CPU
contention from other processes skews the ratios little. It prints requests/s (= rows/s),
us per request, p50/p99 latency and the mean rows per merged call, then the cost of one
estimator call with and without the skipped finiteness check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clients.inprocess.batching import BatchingOptions
from clients.sklearn_backend import SklearnBackend, save_model
from clients.sklearn_model import LoadedModel
from clients.types import ModelSource, ModelSpec
from examples.sklearn_models import build_iris

CONFIGS = {
    "off": BatchingOptions(enabled=False),
    "pool": BatchingOptions(),
    "pool x2": BatchingOptions(max_concurrent=2),
    "inline": BatchingOptions(inline=True),
}
ROW = {"inputs": np.array([[5.1, 3.5, 1.4, 0.2]])}
SPEC = ModelSpec("iris", 1)
BODY = '{"instances": [[5.1, 3.5, 1.4, 0.2]], "signature_name": "serving_default"}'


def loop_work(repeats: int) -> None:
    """Python work standing in for HTTP parsing and JSON encoding."""
    for _ in range(repeats):
        json.dumps(json.loads(BODY))


def repeats_for(us: float) -> int:
    """How many `loop_work` repeats take about `us` microseconds on this machine now."""
    if us <= 0:
        return 0
    start = time.perf_counter()
    loop_work(2000)
    return max(1, round(us / ((time.perf_counter() - start) / 2000 * 1e6)))


@dataclass
class Result:
    """One configuration at one concurrency: its best round."""

    rate: float = 0.0
    us_per_request: float = float("inf")
    cpu_us_per_request: float = float("inf")
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    rows_per_call: float = 0.0


async def one_round(
    models: Path, options: BatchingOptions, tasks: int, total: int, work: int
) -> Result:
    """`tasks` callers sharing `total` requests; requests/s, latencies, rows per merged call."""
    backend = SklearnBackend([ModelSource("iris", str(models / "iris"))], batching=options)
    await backend.start()
    latencies: list[float] = []

    async def caller(count: int) -> None:
        for _ in range(count):
            start = time.perf_counter()
            loop_work(work)
            await backend.predict(SPEC, ROW)
            latencies.append(time.perf_counter() - start)

    try:
        await caller(50)  # warm up the pool threads and the estimator
        latencies.clear()
        stats = backend.batch_stats
        stats.rows = stats.batches = 0
        start, cpu_start = time.perf_counter(), time.process_time()
        await asyncio.gather(*(caller(total // tasks) for _ in range(tasks)))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    finally:
        await backend.close()
    latencies.sort()
    n = len(latencies)
    return Result(
        rate=n / elapsed,
        us_per_request=elapsed / n * 1e6,
        cpu_us_per_request=cpu / n * 1e6,
        p50_ms=latencies[n // 2] * 1e3,
        p99_ms=latencies[min(n - 1, int(n * 0.99))] * 1e3,
        rows_per_call=stats.rows / stats.batches if stats.batches else 1.0,
    )


def build_forest(models: Path) -> None:
    """A 200-tree forest on iris, saved as model "iris" version 1 (replacing the example)."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=200, random_state=0).fit(x, y)
    save_model(forest, models / "iris" / "1")


def call_costs(models: Path, repeat: int) -> dict[str, float]:
    """us per direct `LoadedModel.predict` of one row and of 64 rows, finiteness check on/off."""
    from clients.sklearn_artifacts import LoadOptions, load_artifact

    artifact = load_artifact(models / "iris" / "1", LoadOptions(base_path=models / "iris"))
    fast = LoadedModel.build("iris", 1, artifact)
    checked = replace(fast, assume_finite=False)
    rows64 = {"inputs": np.repeat(ROW["inputs"], 64, axis=0)}
    runs = {
        "1 row, sklearn checks finiteness": (checked, ROW),
        "1 row, we check (assume_finite)": (fast, ROW),
        "64 rows, sklearn checks finiteness": (checked, rows64),
        "64 rows, we check (assume_finite)": (fast, rows64),
    }
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for name, (model, inputs) in runs.items():
            start = time.perf_counter()
            for _ in range(200):
                model.predict("", inputs)
            best[name] = min(best[name], (time.perf_counter() - start) / 200 * 1e6)
    return best


async def main() -> None:
    """Run every configuration at 1 and 64 callers, interleaved; print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=6400, help="requests per round")
    parser.add_argument("--loop-work-us", type=float, default=0.0)
    parser.add_argument("--model", choices=("iris", "forest"), default="iris")
    args = parser.parse_args()
    work = repeats_for(args.loop_work_us)
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp)
        build_iris(models)
        if args.model == "forest":
            build_forest(models)
        results: dict[tuple[str, int], Result] = {}
        for _ in range(args.rounds):
            for tasks in (1, 64):
                for name, options in CONFIGS.items():
                    total = args.requests // 2 if tasks == 1 else args.requests
                    got = await one_round(models, options, tasks, total, work)
                    best = results.setdefault((name, tasks), got)
                    best.rate = max(best.rate, got.rate)
                    best.us_per_request = min(best.us_per_request, got.us_per_request)
                    if got.cpu_us_per_request < best.cpu_us_per_request:
                        best.cpu_us_per_request = got.cpu_us_per_request
                        best.p50_ms, best.p99_ms = got.p50_ms, got.p99_ms
                        best.rows_per_call = got.rows_per_call
        costs = call_costs(models, repeat=max(5, args.rounds * 3))
    model = "iris LogisticRegression" if args.model == "iris" else "200-tree forest on iris"
    print(f"{model}, one-row :predict requests, in-process (best round), "
          f"{work} JSON round trips of loop work per request")  # fmt: skip
    print("req/s and us/req: wall clock; cpu us/req: CPU time of all threads per request;")
    print("p50/p99 from the round with the least CPU per request; 'vs off' = CPU ratio")
    print(f"{'callers':>7} {'config':>8} {'req/s':>8} {'us/req':>7} {'cpu us/req':>10} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'rows/call':>9} {'vs off':>6}")  # fmt: skip
    for tasks in (1, 64):
        base = results[("off", tasks)].cpu_us_per_request
        for name in CONFIGS:
            r = results[(name, tasks)]
            print(
                f"{tasks:>7} {name:>8} {r.rate:>8.0f} {r.us_per_request:>7.1f} "
                f"{r.cpu_us_per_request:>10.1f} {r.p50_ms:>7.3f} {r.p99_ms:>7.3f} "
                f"{r.rows_per_call:>9.1f} {base / r.cpu_us_per_request:>5.2f}x"
            )
    print("\none LoadedModel.predict call (best of runs, us)")
    for name, us in costs.items():
        print(f"  {name:<36} {us:7.1f}")


if __name__ == "__main__":
    asyncio.run(main())

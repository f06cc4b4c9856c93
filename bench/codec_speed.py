"""Rough timing of the codec against plain JSON libraries (no thresholds, just ratios).

Run from the repository root: ``python bench/codec_speed.py``. Cases: a 1x224x224x3
float image sent as columnar JSON, and a 32-row batch of 1x28x28 float rows. "codec" is
parse_body + decode_predict; the baselines are ``json.loads`` + ``np.array`` and
``orjson.loads`` alone. The response side times encode_predict of the same tensor against
``orjson.dumps`` of the array.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import numpy as np
import orjson

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from clients.types import DType, TensorSpec
from gateway.codec import RequestFormat, decode_predict, encode_predict, parse_body


def best_ms(run: Callable[[], object], repeat: int = 7) -> float:
    """The fastest of `repeat` runs, in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def report(label: str, body: bytes, key: str, fmt: RequestFormat) -> None:
    """Print the codec's time for one body and its ratios to the baselines."""
    spec = {"x": TensorSpec("x:0", DType.DT_FLOAT, None)}
    tensors, _ = decode_predict(parse_body(body), spec)
    codec = best_ms(lambda: decode_predict(parse_body(body), spec))
    stdlib = best_ms(lambda: np.array(json.loads(body)[key], dtype=np.float32))
    fast_json = best_ms(lambda: orjson.loads(body))
    encode = best_ms(lambda: encode_predict(tensors, fmt))
    dumps = best_ms(lambda: orjson.dumps(tensors["x"], option=orjson.OPT_SERIALIZE_NUMPY))
    print(f"{label} ({len(body) / 1e6:.1f} MB)")
    print(
        f"  decode: codec {codec:.1f} ms | json.loads+np.array {stdlib:.1f} ms "
        f"({stdlib / codec:.1f}x faster) | orjson.loads {fast_json:.1f} ms "
        f"(codec = {codec / fast_json:.2f}x orjson)"
    )
    print(
        f"  encode: codec {encode:.1f} ms | orjson.dumps(numpy) {dumps:.1f} ms "
        f"(codec = {encode / dumps:.2f}x orjson)"
    )


def main() -> None:
    """Time the image and batch cases."""
    rng = np.random.default_rng(0)
    image = rng.random((1, 224, 224, 3), dtype=np.float32)
    report(
        "image 1x224x224x3 columnar",
        orjson.dumps({"inputs": image.tolist()}),
        "inputs",
        RequestFormat.COLUMNAR,
    )
    batch = rng.random((32, 1, 28, 28), dtype=np.float32)
    report(
        "batch 32x1x28x28 rows",
        orjson.dumps({"instances": batch.tolist()}),
        "instances",
        RequestFormat.ROW,
    )


if __name__ == "__main__":
    main()

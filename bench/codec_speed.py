"""Timing of the codec against plain JSON libraries and TensorFlow (ratios, no thresholds).

Run from the repository root: ``python bench/codec_speed.py [--repeat N]``. Two request
bodies: a 1x224x224x3 float image sent as columnar JSON (~150k numbers) and a batch of 32
rows of 1x28x28 floats. For each body:

- (a) ``orjson.loads`` alone;
- (b) ``json.loads`` + ``tf.make_tensor_proto``, the obvious way to do it;
- (c) the gateway: ``parse_body`` + ``decode_predict`` + ``clients.tf_proto`` packing
  into TensorProtos (numeric tensors go as packed ``tensor_content``).

It prints c/a (the goal: at most 2) and b/c (the goal: at least 10). The response side
times ``encode_predict`` of the same tensor against ``orjson.dumps`` of the array, which
does not format floats as TF Serving does. Times are this process's CPU time
(``time.process_time``); the decoders run interleaved and each keeps its best run, so
other processes competing for the CPU skew the ratios little.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from clients import tf_proto
from clients.types import DType, TensorSpec
from gateway.codec import RequestFormat, decode_predict, encode_predict, parse_body

Timed = Callable[[], object]


def best_ms(runs: dict[str, Timed], repeat: int) -> dict[str, float]:
    """Run every callable `repeat` times, interleaved; the fastest run of each, in CPU ms."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - start)
    return {name: seconds * 1e3 for name, seconds in best.items()}


def report(label: str, body: bytes, key: str, fmt: RequestFormat, repeat: int) -> None:
    """Print the three decoders' times and ratios, then the encoder's."""
    import tensorflow as tf

    spec = {"x": TensorSpec("x:0", DType.DT_FLOAT, None)}

    def gateway() -> object:
        tensors, _ = decode_predict(parse_body(body), spec)
        return tf_proto.tensors_to_protos(tensors)

    def baseline() -> object:
        return tf.make_tensor_proto(json.loads(body)[key], dtype=tf.float32)

    expected = tf.make_ndarray(baseline())
    got = tf_proto.make_ndarray(gateway()["x"])  # type: ignore[index]
    assert expected.shape == got.shape and np.array_equal(expected, got)
    times = best_ms(
        {"orjson": lambda: orjson.loads(body), "tf": baseline, "gateway": gateway}, repeat
    )
    tensors, _ = decode_predict(parse_body(body), spec)
    array = tensors["x"]
    out = best_ms(
        {
            "encode": lambda: encode_predict(tensors, fmt),
            "dumps": lambda: orjson.dumps(array, option=orjson.OPT_SERIALIZE_NUMPY),
        },
        repeat,
    )
    a, b, c = times["orjson"], times["tf"], times["gateway"]
    print(f"{label} ({len(body) / 1e6:.2f} MB)")
    print(f"  (a) orjson.loads                      {a:8.2f} ms")
    print(f"  (b) json.loads + tf.make_tensor_proto {b:8.2f} ms")
    print(f"  (c) parse + decode + TensorProto      {c:8.2f} ms")
    print(f"  c/a = {c / a:.2f} (goal <= 2)   b/c = {b / c:.1f} (goal >= 10)")
    print(
        f"  encode_predict {out['encode']:.2f} ms | orjson.dumps(numpy) {out['dumps']:.2f} ms "
        f"(encode = {out['encode'] / out['dumps']:.1f}x orjson, which formats floats differently)"
    )


def main() -> None:
    """Time the image and batch cases."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    repeat = parser.parse_args().repeat
    rng = np.random.default_rng(0)
    image = rng.random((1, 224, 224, 3), dtype=np.float32)
    report(
        "image 1x224x224x3, columnar",
        orjson.dumps({"inputs": image.tolist()}),
        "inputs",
        RequestFormat.COLUMNAR,
        repeat,
    )
    batch = rng.random((32, 1, 28, 28), dtype=np.float32)
    report(
        "batch of 32 rows of 1x28x28, row format",
        orjson.dumps({"instances": batch.tolist()}),
        "instances",
        RequestFormat.ROW,
        repeat,
    )


if __name__ == "__main__":
    main()

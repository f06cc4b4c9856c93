"""Timing of the codec against plain JSON libraries and TensorFlow (ratios against goals).

Run from the repository root: ``python bench/codec_speed.py [--repeat N]``. A 1x224x224x3
float32 image (~150k numbers, 3 MB of JSON as ``tolist()`` writes it) sent in three
layouts (columnar ``{"inputs": {"x": ...}}``, columnar ``{"inputs": [...]}``, row
``{"instances": [...]}``), and a batch of 32 rows of 1x28x28. For each body:

- (a) ``orjson.loads`` alone;
- (b) ``json.loads`` + ``tf.make_tensor_proto``, the obvious way to do it;
- (c) the gateway's request decode: ``parse_predict`` + ``decode_predict_document``
  (the request tensor, numpy);
- (d) the same plus packing into TensorProtos (``clients.tf_proto``), and (e) the exact
  path it replaces for big numeric bodies: ``parse_body`` + ``decode_predict``.

It prints c/a (goal: below 1.0) and b/c (goal: at least 20). The response side times
``encode_predict`` of the same float32 tensor (TF Serving's number text, in the request's
format) against ``orjson.dumps(array, option=OPT_SERIALIZE_NUMPY)`` (goal: at most 2.0x),
and the per-element template it replaces for float32 (`template_texts`). Times are this
process's CPU time (``time.process_time``); the runs are interleaved and each keeps its
best, so other processes competing for the CPU skew the ratios little.
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
import numpy.typing as npt
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from clients import tf_proto
from clients.types import DType, TensorSpec
from gateway.codec import (
    RequestFormat,
    decode_predict,
    decode_predict_document,
    encode_predict,
    parse_body,
    parse_predict,
)
from gateway.codec.encode_numbers import float32_decimals
from gateway.codec.encode_text import template_texts

Timed = Callable[[], object]
SPEC = {"x": TensorSpec("x:0", DType.DT_FLOAT, None)}


def best_ms(runs: dict[str, Timed], repeat: int) -> dict[str, float]:
    """Run every callable `repeat` times, interleaved; the fastest run of each, in CPU ms."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - start)
    return {name: seconds * 1e3 for name, seconds in best.items()}


def verdict(ratio: float, goal: float, below: bool) -> str:
    met = ratio < goal if below else ratio >= goal
    return "met" if met else "NOT met"


def report_decode(label: str, body: bytes, path: tuple[str, ...], repeat: int) -> None:
    """Print the decoders' times and the two decode ratios."""
    import tensorflow as tf

    def decode() -> object:
        return decode_predict_document(parse_predict(body), SPEC)[0]

    def decode_and_pack() -> object:
        return tf_proto.tensors_to_protos(decode_predict_document(parse_predict(body), SPEC)[0])

    def exact() -> object:
        return decode_predict(parse_body(body), SPEC)[0]

    def baseline() -> object:
        value = json.loads(body)
        for key in path:
            value = value[key]
        return tf.make_tensor_proto(value, dtype=tf.float32)

    expected = tf.make_ndarray(baseline())
    got = decode()["x"]  # type: ignore[index]
    assert expected.shape == got.shape and expected.tobytes() == got.tobytes()
    assert parse_predict(body).numeric is not None, "the fast path was not taken"
    times = best_ms(
        {
            "orjson": lambda: orjson.loads(body),
            "tf": baseline,
            "decode": decode,
            "pack": decode_and_pack,
            "exact": exact,
        },
        repeat,
    )
    a, b, c = times["orjson"], times["tf"], times["decode"]
    print(f"{label} ({len(body) / 1e6:.2f} MB)")
    print(f"  (a) orjson.loads                          {a:8.2f} ms")
    print(f"  (b) json.loads + tf.make_tensor_proto     {b:8.2f} ms")
    print(f"  (c) parse_predict + decode_predict_doc.   {c:8.2f} ms")
    print(f"  (d) (c) + TensorProto packing             {times['pack']:8.2f} ms")
    print(f"  (e) parse_body + decode_predict (before)  {times['exact']:8.2f} ms")
    print(
        f"  c/a = {c / a:.2f} (goal < 1.0: {verdict(c / a, 1.0, True)})   "
        f"b/c = {b / c:.1f} (goal >= 20: {verdict(b / c, 20, False)})   "
        f"e/c = {times['exact'] / c:.1f}"
    )


def report_decode_parts(body: bytes, repeat: int) -> None:
    """Where (c) goes: the simdjson parse, the regularity proof, and the rest."""
    from gateway.codec.decode_body import _parser_for

    parser = _parser_for(len(body))  # the decoder's own (reused) parser, warm as it is
    not_marks = bytes(sorted(set(range(256)) - set(b"[],")))  # as gateway.codec.decode_body

    def parse() -> None:
        document = parser.parse(body)
        del document  # the parser is reused: its document must go first

    parts = best_ms(
        {
            "decode": lambda: decode_predict_document(parse_predict(body), SPEC),
            "parse": parse,
            "marks": lambda: body.translate(None, not_marks),
        },
        repeat,
    )
    rest = parts["decode"] - parts["parse"] - parts["marks"]
    print(
        f"  (c) in parts: simdjson parse {parts['parse']:.2f} ms, [ ] , marks (bytes.translate) "
        f"{parts['marks']:.2f} ms, buffers, float32 cast and the rest {rest:.2f} ms"
    )


def report_encode(
    label: str, array: npt.NDArray[np.float32], fmt: RequestFormat, repeat: int
) -> None:
    """Print the encoder's time against orjson's and against the template it replaces."""
    out = best_ms(
        {
            "encode": lambda: encode_predict({"x": array}, fmt),
            "dumps": lambda: orjson.dumps(array, option=orjson.OPT_SERIALIZE_NUMPY),
            "template": lambda: template_texts(array, split_rows=fmt is RequestFormat.ROW),
        },
        repeat,
    )
    ratio = out["encode"] / out["dumps"]
    print(f"{label}, {fmt.name.lower()} response")
    print(
        f"  encode_predict {out['encode']:.2f} ms | orjson.dumps(numpy) {out['dumps']:.2f} ms | "
        f"template (before) {out['template']:.2f} ms"
    )
    print(
        f"  encode / orjson = {ratio:.2f} (goal <= 2.0: {verdict(ratio, 2.0, True)}; orjson "
        f"writes shortest float32 text, not TF Serving's)   template / encode = "
        f"{out['template'] / out['encode']:.1f}"
    )


def report_encode_parts(array: npt.NDArray[np.float32], repeat: int) -> None:
    """Where the columnar encode goes: the O5 decimals, orjson writing them, and the rest."""
    flat = array.reshape(-1)
    decimals = float32_decimals(flat)[0].reshape(array.shape)
    parts = best_ms(
        {
            "encode": lambda: encode_predict({"x": array}, RequestFormat.COLUMNAR),
            "decimals": lambda: float32_decimals(flat),
            "write": lambda: orjson.dumps(decimals, option=orjson.OPT_SERIALIZE_NUMPY),
        },
        repeat,
    )
    rest = parts["encode"] - parts["decimals"] - parts["write"]
    print(
        f"  in parts: float32_decimals {parts['decimals']:.2f} ms, orjson.dumps of those "
        f"float64 decimals {parts['write']:.2f} ms, splicing and the body {rest:.2f} ms"
    )


def main() -> None:
    """Time the image layouts, the batch, and the responses."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    repeat = parser.parse_args().repeat
    rng = np.random.default_rng(0)
    image = rng.random((1, 224, 224, 3), dtype=np.float32)
    batch = rng.random((32, 1, 28, 28), dtype=np.float32)
    pixels, rows = image.tolist(), batch.tolist()
    bodies: list[tuple[str, object, tuple[str, ...]]] = [
        (
            'image 1x224x224x3, columnar {"inputs": {"x": ...}}',
            {"inputs": {"x": pixels}},
            ("inputs", "x"),
        ),
        ('image 1x224x224x3, columnar {"inputs": [...]}', {"inputs": pixels}, ("inputs",)),
        ('image 1x224x224x3, row {"instances": [...]}', {"instances": pixels}, ("instances",)),
        ("batch of 32 rows of 1x28x28, row format", {"instances": rows}, ("instances",)),
    ]
    for index, (label, document, path) in enumerate(bodies):
        report_decode(label, orjson.dumps(document), path, repeat)
        if index == 0:
            report_decode_parts(orjson.dumps(document), repeat)
    report_encode("image 1x224x224x3 float32", image, RequestFormat.COLUMNAR, repeat)
    report_encode_parts(image, repeat)
    report_encode("image 1x224x224x3 float32", image, RequestFormat.ROW, repeat)
    report_encode("batch of 32 rows of 1x28x28 float32", batch, RequestFormat.ROW, repeat)
    softmax = np.exp(-rng.exponential(8.0, (196, 768))).astype(np.float32)
    report_encode("150k softmax-like float32 (1e-30..1)", softmax, RequestFormat.COLUMNAR, repeat)


if __name__ == "__main__":
    main()

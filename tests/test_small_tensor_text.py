"""The per-element text of small tensors (`float_text`, `SMALL_TENSOR`) agrees with the
literal O5 rule and with the vectorised path it stands in for."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt
import pytest

from gateway.codec import encode_text
from gateway.codec.encode_numbers import float_text, parse_float32
from gateway.codec.encode_text import tensor_texts


def _literal(value: float, double: bool) -> str:
    """O5 written out: %.6g, else %.9g / %.17g when it does not parse back; '.0' if bare."""
    if np.isnan(value):
        return "NaN"
    if np.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:.6g}"
    same = float(text) == value if double else parse_float32(text) == np.float32(value)
    if not same:
        text = f"{value:.17g}" if double else f"{value:.9g}"
    return text if "." in text or "e" in text else text + ".0"


def _float32_values(rng: np.random.Generator, count: int) -> npt.NDArray[np.float32]:
    bits = rng.integers(0, 2**32, size=count, dtype=np.uint64).astype(np.uint32)
    decimals = np.round(rng.random(count) * 10.0 ** rng.integers(-8, 9, count), 5)
    powers = np.float32(2.0) ** rng.integers(-149, 128, count).astype(np.float32)
    # float32 values next to ones whose six digits are exact: near-ties of the round trip
    near = np.nextafter(decimals.astype(np.float32), np.float32(np.inf))
    return np.concatenate(
        [bits.view(np.float32), decimals.astype(np.float32), powers, near]
    ).astype(np.float32)


def test_float_text_follows_the_literal_rule_float32() -> None:
    for value in _float32_values(np.random.default_rng(3), 3000).tolist():
        assert float_text(value, double=False) == _literal(value, double=False), value


def test_float_text_follows_the_literal_rule_float64() -> None:
    rng = np.random.default_rng(5)
    values = np.concatenate(
        [
            rng.integers(0, 2**64, size=3000, dtype=np.uint64).view(np.float64),
            np.round(rng.random(3000) * 10.0 ** rng.integers(-12, 15, 3000), 6),
            [0.0, -0.0, np.nan, np.inf, -np.inf, 2.0**-1074, 1e17, 12345678901234567.0],
        ]
    )
    for value in values.tolist():
        assert float_text(value, double=True) == _literal(value, double=True), value


@contextmanager
def _vectorised_only() -> Iterator[None]:
    saved = encode_text.SMALL_TENSOR
    encode_text.SMALL_TENSOR = -1
    try:
        yield
    finally:
        encode_text.SMALL_TENSOR = saved


SHAPES = [(), (1,), (1, 1), (3,), (2, 3), (3, 1, 2), (2, 2, 2, 2), (1, 32)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_small_float_tensors_match_the_vectorised_text(shape: tuple[int, ...], dtype: type) -> None:
    rng = np.random.default_rng(len(shape))
    magnitudes = 10.0 ** rng.integers(-8, 9, shape)
    with np.errstate(over="ignore"):
        array: npt.NDArray[np.floating] = np.asarray(
            rng.standard_normal(shape) * magnitudes
        ).astype(dtype)
    for split_rows in (False, True) if array.ndim else (False,):
        small = tensor_texts(array, split_rows=split_rows)
        with _vectorised_only():
            assert small == tensor_texts(array, split_rows=split_rows)


@pytest.mark.parametrize("b64", [False, True])
def test_small_string_tensors_match_the_vectorised_text(b64: bool) -> None:
    array = np.array([[b"ab", b"\xff"], [b'c"d', b""]], dtype=object)
    for split_rows in (False, True):
        small = tensor_texts(array, b64=b64, split_rows=split_rows)
        with _vectorised_only():
            assert small == tensor_texts(array, b64=b64, split_rows=split_rows)


def test_special_values_in_a_small_tensor() -> None:
    array = np.array([[np.nan, np.inf, -np.inf, -0.0, 2.5, 1 / 3]], dtype=np.float32)
    assert tensor_texts(array, split_rows=True) == ["[NaN,Infinity,-Infinity,-0.0,2.5,0.333333343]"]

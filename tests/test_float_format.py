"""O5 float formatting: TF Serving's expectations (json_tensor_test.cc) and a brute-force check."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.codec import format_float
from gateway.codec.encode_numbers import parse_float32, rapidjson_double_text
from gateway.codec.encode_text import tensor_texts

FLOAT_CASES = [
    (9000000.0, "9e+06"),
    (999999.0, "999999.0"),
    (0.5, "0.5"),
    (0.0003, "0.0003"),
    (0.00003, "3e-05"),
    (555557.5, "555557.5"),
    (0.1, "0.1"),
    (3.0, "3.0"),
    (-0.0, "-0.0"),
    (0.0, "0.0"),
    (1435774380.0, "1.43577434e+09"),  # rounds to float32 1435774336 first
    (1 / 3, "0.333333343"),
    (100000.0, "100000.0"),
    (1e6, "1e+06"),
    (16777216.0, "16777216.0"),
    (123456789.0, "123456792.0"),
    (3.4028234663852886e38, "3.40282347e+38"),
    (1e-45, "1.4013e-45"),
    (float("nan"), "NaN"),
    (float("inf"), "Infinity"),
    (float("-inf"), "-Infinity"),
    (1e39, "Infinity"),  # float32 overflow
]
DOUBLE_CASES = [
    (1 / 3, "0.33333333333333331"),
    (0.1 + 0.2, "0.30000000000000004"),
    (0.1, "0.1"),
    (9000000.0, "9e+06"),
    (3.0, "3.0"),
    (1435774380.0, "1435774380.0"),
    (12345678901234567.0, "12345678901234568.0"),
    (1e17, "1e+17"),
    (2.0**-1074, "4.94066e-324"),
    (float("-inf"), "-Infinity"),
]


@pytest.mark.parametrize(("value", "text"), FLOAT_CASES)
def test_float_formatting(value: float, text: str) -> None:
    assert format_float(value, double=False) == text


@pytest.mark.parametrize(("value", "text"), DOUBLE_CASES)
def test_double_formatting(value: float, text: str) -> None:
    assert format_float(value, double=True) == text


def _reference(value: float, double: bool) -> str:
    """The O5 rule written out literally, one value at a time."""
    if np.isnan(value):
        return "NaN"
    if np.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:.6g}"
    same = float(text) == value if double else parse_float32(text) == np.float32(value)
    if not same:
        text = f"{value:.17g}" if double else f"{value:.9g}"
    return text if "." in text or "e" in text else text + ".0"


def _interesting_floats(rng: np.random.Generator, count: int) -> np.ndarray:
    bits = rng.integers(0, 2**32, size=count, dtype=np.uint64).astype(np.uint32)
    random_bits = bits.view(np.float32)
    decimals = np.round(rng.random(count) * 10.0 ** rng.integers(-8, 9, count), 5)
    integers = rng.integers(-(2**25), 2**25, count).astype(np.float32)
    powers = np.float32(2.0) ** rng.integers(-149, 128, count).astype(np.float32)
    return np.concatenate([random_bits, decimals.astype(np.float32), integers, powers])


def test_vectorised_formatting_matches_the_literal_rule_float32() -> None:
    values = _interesting_floats(np.random.default_rng(7), 1500)
    texts = tensor_texts(values, split_rows=True)
    expected = [_reference(float(v), double=False) for v in values]
    assert texts == expected


def test_vectorised_formatting_matches_the_literal_rule_float64() -> None:
    rng = np.random.default_rng(11)
    values = np.concatenate(
        [
            rng.integers(0, 2**64, size=1500, dtype=np.uint64).view(np.float64),
            np.round(rng.random(1500) * 10.0 ** rng.integers(-12, 15, 1500), 6),
            rng.integers(-(2**54), 2**54, 500).astype(np.float64),
        ]
    )
    texts = tensor_texts(values, split_rows=True)
    assert texts == [_reference(float(v), double=True) for v in values]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1, "0.1"),
        (1e-7, "1e-7"),
        (1e21, "1e21"),
        (1e20, "100000000000000000000.0"),
        (123.456, "123.456"),
        (1.5e300, "1.5e300"),
        (-2.5e-300, "-2.5e-300"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (0.001234, "0.001234"),
    ],
)
def test_rapidjson_writer_double(value: float, text: str) -> None:
    assert rapidjson_double_text(value) == text


@pytest.mark.parametrize("subnormal", [False, True])
def test_decimal_exponents_are_exact_away_from_powers_of_ten(subnormal: bool) -> None:
    """The exponent read off the binary exponent is floor(log10(x)) (checked exactly, with
    Decimal) for doubles over the whole range, except right next to a power of ten, where
    `round_to_digits` flags the value as suspect; a subnormal takes the frexp branch."""
    from decimal import Decimal

    from gateway.codec.encode_numbers import decimal_exponents

    rng = np.random.default_rng(7)
    values = rng.integers(1, 0x7FF0000000000000, 20_000, dtype=np.int64).view(np.float64)
    powers = 10.0 ** np.arange(-300, 300)
    values = np.concatenate([values, powers, np.nextafter(powers, 0), np.nextafter(powers, 1e309)])
    if subnormal:
        values = np.append(values, [5e-324, 1e-310])
    got = decimal_exponents(values)
    for value, exponent in zip(values.tolist(), got.tolist(), strict=True):
        exact = Decimal(value).adjusted()
        if exponent != exact:  # one off, and within a rounding of the power between them
            power = float(Decimal(10) ** max(exponent, exact))
            assert abs(exponent - exact) == 1 and abs(value / power - 1) < 1e-15

"""Number text exactly as TF Serving writes it (spec O5) and as rapidjson's Writer does.

TF Serving formats a finite float with ``%.6g``; if that text does not parse back to the
same value in the same type (float32 for DT_FLOAT, float64 for DT_DOUBLE) it uses
``%.9g`` / ``%.17g`` instead, and it appends ``.0`` when the text has neither ``.`` nor
``e``. NaN and infinities are the bare tokens ``NaN``, ``Infinity`` and ``-Infinity``.

Two implementations of the same rule: `float_text` writes one value in plain Python
(cheapest for a few values: a one-row predict answers one float), and, for whole tensors,
`float_format_codes` classifies an array with numpy arithmetic, where only the rare values
whose six-digit round trip cannot be decided exactly in float64 arithmetic are checked one
by one with exact rational arithmetic; the caller then formats every element with one
``str % tuple``. The tests hold both to the literal rule.
"""

from __future__ import annotations

import math
import struct
from decimal import Decimal
from fractions import Fraction

import numpy as np
import numpy.typing as npt

# Per-element format codes; FORMATS[code] is the printf-style piece for that element.
SIX_DIGITS, WHOLE, FULL_FLOAT, FULL_DOUBLE, NAN, POS_INF, NEG_INF = range(7)
FORMATS: tuple[str, ...] = ("%.6g", "%.1f", "%.9g", "%.17g", "NaN", "Infinity", "-Infinity")
CONSUMES_VALUE = np.array([True, True, True, True, False, False, False])

_F32_NORMAL_MIN = 2.0**-126
_LOW_BITS = np.uint64((1 << 29) - 1)  # float64 mantissa bits below float32 precision
_HALF_LOW = np.uint64(1 << 28)
_LOW_MASK, _HALF_WAY = int(_LOW_BITS), int(_HALF_LOW)
_FLOAT32 = struct.Struct("<f")
_DOUBLE = struct.Struct("<d")
_BITS = struct.Struct("<Q")


def format_float(value: float, *, double: bool) -> str:
    """Format one DT_FLOAT (double=False) or DT_DOUBLE value as TF Serving does (O5)."""
    return float_text(value if double else to_float32(value), double)


def to_float32(value: float) -> float:
    """`value` rounded to float32 (to nearest, ties to even); beyond its range +-inf."""
    try:
        rounded: float = _FLOAT32.unpack(_FLOAT32.pack(value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)
    return rounded


def float_text(value: float, double: bool) -> str:
    """The O5 text of one value that is already of its type (a float32 value if not `double`).

    ``%.6g``, unless that text does not parse back to `value` in its type: then ``%.17g``
    (double) or ``%.9g``; ``.0`` appended to text with neither ``.`` nor ``e``.
    """
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    text = f"{value:.6g}"
    same = float(text) == value if double else _parses_to_float32(text, value)
    if not same:
        text = f"{value:.17g}" if double else f"{value:.9g}"
    return text if "." in text or "e" in text else text + ".0"


def _parses_to_float32(text: str, value: float) -> bool:
    """Whether decimal `text` rounds straight to the float32 `value`.

    `float(text)` rounds to float64 first; rounding that to float32 gives the direct
    result unless it landed exactly halfway between two float32 values (or in float32's
    subnormal range, where halfway points sit elsewhere): then the exact check decides.
    """
    parsed = float(text)
    if parsed == value:
        return True  # the text is within half a float64 step of `value`: far from a tie
    bits: int = _BITS.unpack(_DOUBLE.pack(parsed))[0]
    if bits & _LOW_MASK == _HALF_WAY or 0 < abs(parsed) < _F32_NORMAL_MIN:
        return _exact_round_trip(value, double=False)
    return to_float32(parsed) == value


def float_format_codes(values: npt.NDArray[np.generic]) -> npt.NDArray[np.int8]:
    """Return one code from FORMATS for each element of a 1-D float32/float64 array."""
    double = values.dtype == np.float64
    codes = np.empty(values.shape, dtype=np.int8)
    finite = np.isfinite(values)
    codes[np.isnan(values)] = NAN
    codes[values == np.inf] = POS_INF
    codes[values == -np.inf] = NEG_INF
    fin = values[finite].astype(np.float64)
    six_ok = _six_digits_round_trip(fin, double)
    whole = fin == np.floor(fin)
    limit = np.where(six_ok, 1e6, 1e17 if double else 1e9)
    full = FULL_DOUBLE if double else FULL_FLOAT
    codes[finite] = np.where(
        whole & (np.abs(fin) < limit), WHOLE, np.where(six_ok, SIX_DIGITS, full)
    )
    return codes


def _six_digits_round_trip(fin: npt.NDArray[np.float64], double: bool) -> npt.NDArray[np.bool_]:
    """For finite values: does their ``%.6g`` text parse back to the same value?"""
    ok = np.ones(fin.shape, dtype=bool)
    nonzero = np.flatnonzero(fin != 0)
    if nonzero.size == 0:
        return ok
    mag = np.abs(fin[nonzero])
    with np.errstate(all="ignore"):
        exp10 = np.floor(np.log10(mag)).astype(np.int64)
        shift = 5 - exp10
        scale = 10.0 ** np.abs(shift).astype(np.float64)
        scaled = np.where(shift >= 0, mag * scale, mag / scale)
        digits = np.rint(scaled)
        decoded = np.where(shift >= 0, digits / scale, digits * scale)
        suspect = (
            (np.abs(shift) > 22)
            | (scaled < 1e5)
            | (scaled >= 1e6)
            | (np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6)
        )
    if double:
        same = decoded == mag
    else:
        same = decoded.astype(np.float32) == mag.astype(np.float32)
        suspect |= _is_float32_tie(decoded)
    ok[nonzero] = same
    for index in nonzero[suspect]:
        ok[index] = _exact_round_trip(float(fin[index]), double)
    return ok


def _is_float32_tie(values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """True where converting float64 -> float32 could differ from a direct decimal parse."""
    bits = np.abs(values).view(np.uint64)
    halfway = (bits & _LOW_BITS) == _HALF_LOW
    tie: npt.NDArray[np.bool_] = halfway | (np.abs(values) < _F32_NORMAL_MIN)
    return tie


def _exact_round_trip(value: float, double: bool) -> bool:
    """Slow exact check: ``%.6g`` text parsed back (correctly rounded) equals value."""
    text = f"{value:.6g}"
    if double:
        return float(text) == value
    return bool(parse_float32(text) == np.float32(value))


def parse_float32(text: str) -> np.float32:
    """Parse decimal text straight to the nearest float32 (ties to even), like from_chars."""
    exact = Fraction(Decimal(text))
    guess = np.float32(float(exact))
    if not np.isfinite(guess):
        return guess
    below = np.nextafter(guess, np.float32(-np.inf))
    above = np.nextafter(guess, np.float32(np.inf))
    candidates = [c for c in (below, guess, above) if np.isfinite(c)]
    best = min(candidates, key=lambda c: (abs(Fraction(float(c)) - exact), _odd_mantissa(c)))
    return np.float32(best)


def _odd_mantissa(value: np.float32) -> int:
    return int(np.array([value], dtype=np.float32).view(np.uint32)[0] & 1)


def rapidjson_double_text(value: float) -> str:
    """A finite double as rapidjson's Writer::Double writes it (shortest digits, Prettify)."""
    if value == 0:
        return "-0.0" if np.signbit(value) else "0.0"
    _sign, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    assert isinstance(exponent, int)
    return ("-" if value < 0 else "") + _prettify(digits, exponent)


def _prettify(digits: str, k: int) -> str:
    """rapidjson's internal::Prettify for value = digits * 10**k (maxDecimalPlaces 324)."""
    length = len(digits)
    kk = length + k
    if k >= 0 and kk <= 21:
        return digits + "0" * k + ".0"
    if 0 < kk <= 21:
        return digits[:kk] + "." + digits[kk:]
    if -6 < kk <= 0:
        return "0." + "0" * -kk + digits
    if kk < -324:
        return "0.0"
    mantissa = digits if length == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{kk - 1}"

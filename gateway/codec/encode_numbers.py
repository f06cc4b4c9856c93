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
from dataclasses import dataclass
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
_BLOCK = 16384  # elements per block of `float32_decimals` (8192 and 24576 measured 35 % slower)
_EXACT_POWERS = 22  # 10**22 is the largest power of ten a double holds exactly
_EXPONENTS = np.arange(-330, 311)  # decimal exponents of every finite nonzero double
with np.errstate(over="ignore", under="ignore"):
    _TEN_TO = np.append(10.0 ** _EXPONENTS.astype(np.float64), np.inf)  # 10**k, k in _EXPONENTS


def _power_tables(digits: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per decimal exponent of a value: (up, down) with ``value / up * down`` holding
    `digits` digits before the point; NaN where that power of ten is not exact."""
    shift = _EXPONENTS - (digits - 1)
    exact = np.abs(shift) <= _EXACT_POWERS
    power = np.where(exact, 10.0 ** np.minimum(np.abs(shift), _EXACT_POWERS), np.nan)
    one = np.where(exact, 1.0, np.nan)
    return np.where(shift > 0, power, one), np.where(shift < 0, power, one)


_POWERS = {digits: _power_tables(digits) for digits in (6, 9)}


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
        return bool(parse_float32(text) == np.float32(value))
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
        six = round_to_digits(mag, decimal_exponents(mag), 6)
    if double:
        same = six.decimals == mag
        suspect = six.suspect
    else:
        same = six.decimals.astype(np.float32) == mag.astype(np.float32)
        suspect = six.suspect | _is_float32_tie(six.decimals)
    ok[nonzero] = same
    for index in nonzero[suspect]:
        ok[index] = _exact_round_trip(float(fin[index]), double)
    return ok


@dataclass(frozen=True)
class Rounded:
    """Positive values rounded to a number of significant decimal digits (`round_to_digits`)."""

    decimals: npt.NDArray[np.float64]  # the double nearest to each rounded decimal
    suspect: npt.NDArray[np.bool_]  # float64 arithmetic cannot vouch for these


def decimal_exponents(mag: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """floor(log10(x)) of positive doubles; it may be one off next to a power of ten,
    which `round_to_digits` then reports as suspect.

    Read off the binary exponent instead of computing a logarithm (a third of the time):
    for ``2**e <= x < 2**(e + 1)`` the answer is ``floor(e * log10(2))`` (``e * 78913 >> 18``,
    exact for |e| < 1650) or one more, when x reaches the next power of ten.
    """
    exp2 = (mag.view(np.intp) >> 52) - 1023  # the exponent field of a normal double
    if exp2.size and exp2.min() == -1023:  # a subnormal: frexp reads its exponent
        exp2 = np.frexp(mag)[1].astype(np.intp) - 1
    exp2 *= 78913
    exp2 >>= 18
    exp2 += mag >= _TEN_TO.take(exp2 + (1 - _EXPONENTS[0]))
    return exp2


def round_to_digits(
    mag: npt.NDArray[np.float64], exponents: npt.NDArray[np.intp], digits: int
) -> Rounded:
    """Round finite positive doubles to 6 or 9 significant digits (ties to even, as printf).

    Scaling by an exact power of ten (at most 1e22) is off by at most one rounding, so the
    integer nearest to the scaled value is right unless it lies within 1e-6 of a half, and
    dividing (or multiplying) that integer back by the power is correctly rounded: the
    nearest double to the decimal. Values whose scale is not exact, whose power of ten
    (`exponents`, from `decimal_exponents`) was misjudged, or that lie near a half are
    `suspect`. Written with few temporaries, in place: each costs time on a big tensor.
    """
    up_table, down_table = _POWERS[digits]
    index = exponents - _EXPONENTS[0]
    np.clip(index, 0, _EXPONENTS.size - 1, out=index)
    down = down_table.take(index)  # where it is not 1.0, up is
    scaled = mag * down
    # Values below 10**digits (most model outputs) are never scaled down: skip that half.
    up = up_table.take(index) if exponents.max() >= digits else None
    if up is not None:
        scaled /= up
    integers = np.rint(scaled)
    suspect = scaled < 10.0 ** (digits - 1)
    suspect |= ~(scaled < 10.0**digits)  # NaN (no exact power of ten) included
    np.subtract(scaled, integers, out=scaled)
    np.abs(scaled, out=scaled)
    suspect |= scaled > 0.5 - 1e-6  # as close to a tie as the scaling's error
    if up is not None:
        integers *= up
    integers /= down
    return Rounded(integers, suspect)


def float32_decimals(
    values: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Each float32's O5 decimal as the nearest double, and where that double's shortest
    text (orjson's) is not the O5 text: there the double is NaN (orjson writes ``null``)
    and the caller writes the text by `FORMATS`.

    The O5 decimal (``%.6g``, or ``%.9g`` when that does not round trip) has at most 9
    digits, and no other decimal of at most 9 digits lies within half a float64 step of
    it, so the shortest text of its nearest double spells exactly its digits. orjson
    writes those digits in fixed notation for 1e-5 <= |x| < 1e16, else as ``1.5e-7``,
    ``1e+16``; printf's ``%g`` writes fixed notation for 1e-4 <= |x| < 10**digits, else
    ``1.5e-07``. They agree, ``.0`` of whole numbers included, except for exponents -9 to
    -5 and `digits` to 15. Those, NaN and infinities, subnormals and what
    `round_to_digits` calls suspect are left to the caller (bench/RESULTS.md, "Big tensors
    in the JSON codec", has the check of every class against `float_text`).

    Worked in blocks: a temporary as big as the tensor costs more in page faults than
    its arithmetic.
    """
    decimals = np.empty(values.shape, dtype=np.float64)
    exact = np.empty(values.shape, dtype=np.bool_)
    with np.errstate(all="ignore"):
        for start in range(0, values.size, _BLOCK):
            block = slice(start, start + _BLOCK)
            _float32_block(values[block], decimals[block], exact[block])
    return decimals, exact


def _float32_block(
    values: npt.NDArray[np.float32], decimals: npt.NDArray[np.float64], exact: npt.NDArray[np.bool_]
) -> None:
    """`float32_decimals` of one block, into `decimals` and `exact`."""
    mag = values.astype(np.float64)
    np.abs(mag, out=mag)
    special: npt.NDArray[np.bool_] | None = None
    if not (np.isfinite(mag).all() and mag.min() >= _F32_NORMAL_MIN):
        special = ~np.isfinite(mag) | (mag < _F32_NORMAL_MIN)  # zeros included, for now
        mag[special] = 1.0  # a placeholder
    exponents = decimal_exponents(mag)
    six = round_to_digits(mag, exponents, 6)
    six_ok = six.decimals.astype(np.float32) == mag
    np.logical_or(six.suspect, _is_float32_tie(six.decimals), out=exact)
    nine = round_to_digits(mag, exponents, 9)
    exact |= nine.suspect & ~six_ok
    chosen = np.where(six_ok, six.decimals, nine.decimals)
    if np.fmin.reduce(chosen) < 1e-4 or np.fmax.reduce(chosen) >= 1e6:  # NaN-blind
        exact |= (chosen >= 1e-9) & (chosen < 1e-4)  # exponents -9 to -5
        exact |= (chosen >= np.where(six_ok, 1e6, 1e9)) & (chosen < 1e16)
    np.copysign(chosen, values, out=decimals)
    if special is not None:
        exact |= special
        zeros = values == 0  # "0.0" and "-0.0" either way
        exact &= ~zeros
        decimals[zeros] = values[zeros]
    decimals[exact] = np.nan


def _is_float32_tie(values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """True where converting a positive double to float32 could differ from a direct
    decimal parse."""
    halfway = (values.view(np.uint64) & _LOW_BITS) == _HALF_LOW
    tie: npt.NDArray[np.bool_] = halfway | (values < _F32_NORMAL_MIN)
    return tie


def _exact_round_trip(value: float, double: bool) -> bool:
    """Exact check, one value: ``%.6g`` text parsed back (correctly rounded) equals value.

    For float32 the rational arithmetic of `parse_float32` runs only where parsing via
    float64 could round differently (`_parses_to_float32`): ~1 µs instead of ~50 µs.
    """
    text = f"{value:.6g}"
    return float(text) == value if double else _parses_to_float32(text, value)


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

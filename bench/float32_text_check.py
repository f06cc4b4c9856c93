"""Check the orjson-based float32 writer against the printf template, class by class.

Run from the repository root: ``python bench/float32_text_check.py [--quick]``.
`gateway.codec.encode_text.tensor_texts` writes big float32 tensors through orjson
(`gateway.codec.encode_numbers.float32_decimals`); `template_texts` is the per-element
printf path it replaces, which tests/test_float_format.py holds to the literal
``%.6g``-then-``%.9g`` rule. This script compares the two, element by element, on:

- whole binades: [0.5, 1), [1, 2) and [2**-14, 2**-13) (about 6e-5, where orjson's and
  printf's notations differ): every positive float32 in them;
- every float32 within 2048 steps of each power of ten, of each ``x.99999 5 * 10**k`` (the
  six-digit rounding edge), of 2**-126 (the smallest normal) and 3.4e38;
- every 997th bit pattern of all 2**32, and 2 million random ones;
- both signs of each value, except in the binades.

Each element is counted in its class: the O5 digits (6 or 9), fixed or exponent notation,
and whether orjson wrote it or it was spliced in from the template. Any difference is
printed and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.codec.encode_numbers import SIX_DIGITS, WHOLE, float32_decimals, float_format_codes
from gateway.codec.encode_text import template_texts, tensor_texts

CHUNK = 1 << 20


def binade(low: float) -> npt.NDArray[np.float32]:
    """Every float32 in [low, 2 * low), for a power of two `low`."""
    start = int(np.array([low], dtype=np.float32).view(np.uint32)[0])
    return np.arange(start, start + (1 << 23), dtype=np.uint32).view(np.float32)


def around(centres: npt.NDArray[np.float32], steps: int = 2048) -> npt.NDArray[np.float32]:
    """Every float32 within `steps` of each positive centre."""
    bits = centres.astype(np.float32).view(np.uint32).astype(np.int64)
    near = (bits[:, None] + np.arange(-steps, steps + 1)[None, :]).ravel()
    return np.clip(near, 1, 0x7F7FFFFF).astype(np.uint32).view(np.float32)


def samples(quick: bool) -> Iterator[tuple[str, npt.NDArray[np.float32]]]:
    powers = np.array([10.0**k for k in range(-45, 39)])
    edges = np.array([9.999995 * 10.0**k for k in range(-45, 38)])
    yield "around powers of ten", around(powers.astype(np.float32))
    yield "around six-digit edges", around(edges.astype(np.float32))
    yield "around 2**-126 and 3.4e38", around(np.array([2.0**-126, 3.4e38], dtype=np.float32))
    rng = np.random.default_rng(0)
    yield (
        "random bit patterns",
        rng.integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
    )
    if quick:
        return
    yield (
        "every 997th bit pattern",
        np.arange(0, 2**32, 997, dtype=np.uint64).astype(np.uint32).view(np.float32),
    )
    for low in (0.5, 1.0, 2.0**-14):
        yield f"binade [{low:g}, {2 * low:g})", binade(low)


def classes(values: npt.NDArray[np.float32], spliced: npt.NDArray[np.bool_]) -> list[str]:
    """One label per element: its O5 digits and notation, and who wrote it."""
    codes = float_format_codes(values)
    digits = np.where((codes == SIX_DIGITS) | (codes == WHOLE), 6, 9)
    with np.errstate(all="ignore"):  # signalling NaN bit patterns
        mag = np.abs(values.astype(np.float64))
        fixed = (mag >= 1e-4) & (mag < 10.0**digits)
    labels = np.where(
        ~np.isfinite(values),
        "non-finite",
        np.where(
            values == 0,
            "zero",
            np.char.add(
                np.char.add(
                    np.where(digits == 6, "%.6g ", "%.9g "), np.where(fixed, "fixed", "exp")
                ),
                np.where(spliced, ", spliced", ", orjson"),
            ),
        ),
    )
    return labels.tolist()  # type: ignore[no-any-return]


def main() -> int:
    """Compare every sample; print the per-class counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the binades and the sweep")
    quick = parser.parse_args().quick
    counts: Counter[str] = Counter()
    differences = 0
    for name, values in samples(quick):
        signs = 1 if name.startswith("binade") else 2  # the sign is one branch of both paths
        for start in range(0, values.size, CHUNK):
            chunk = values[start : start + CHUNK]
            both = np.concatenate([chunk, -chunk]) if signs == 2 else chunk
            new = tensor_texts(both, split_rows=True)
            old = template_texts(both, split_rows=True)
            if new != old:
                bad = [i for i, (a, b) in enumerate(zip(new, old, strict=True)) if a != b]
                differences += len(bad)
                for i in bad[:5]:
                    print(f"  DIFFERENT {name}: {both[i]!r} orjson path {new[i]} template {old[i]}")
            _, spliced = float32_decimals(both)
            counts.update(classes(both, spliced))
        print(f"{name}: {values.size * signs:,} values checked", flush=True)
    print("per class (elements, all identical to the template):")
    for label, count in sorted(counts.items()):
        print(f"  {label:28s} {count:>12,}")
    print(f"{differences} differences")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())

"""Build every example model from data that ships inside installed packages.

python -m examples.build --out examples/models
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from examples.sklearn_models import build_diabetes_regressor, build_iris
from examples.tf_models import build_digits_classifier, build_half_plus_two


def build_all(models_dir: Path) -> None:
    """half_plus_two and digits (TensorFlow SavedModels), iris and diabetes (scikit-learn)."""
    models_dir.mkdir(parents=True, exist_ok=True)
    build_iris(models_dir)
    build_diabetes_regressor(models_dir)
    build_half_plus_two(models_dir)
    build_digits_classifier(models_dir)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "models")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build_all(args.out)


if __name__ == "__main__":
    main()

"""Build every example model from data that ships inside installed packages.

python -m examples.build --out examples/models [--log-format json]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def build_all(models_dir: Path) -> None:
    """half_plus_two and digits (TensorFlow SavedModels), iris and diabetes (scikit-learn),
    and the wine pipeline's scaler, Keras classifier and KMeans segments."""
    from examples.pipeline_models import build_wine_pipeline
    from examples.sklearn_models import build_diabetes_regressor, build_iris
    from examples.tf_models import build_digits_classifier, build_half_plus_two

    models_dir.mkdir(parents=True, exist_ok=True)
    build_iris(models_dir)
    build_diabetes_regressor(models_dir)
    build_half_plus_two(models_dir)
    build_digits_classifier(models_dir)
    build_wine_pipeline(models_dir)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "models")
    parser.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="json: the gateway's"
    )
    args = parser.parse_args(argv)
    # Before TensorFlow is imported: with a root handler in place TF adds none of its own
    # (which would print each of its records twice).
    handler = logging.StreamHandler(sys.stderr)
    if args.log_format == "json":
        from gateway.logs import json_formatter

        handler.setFormatter(json_formatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # "Assets written to: ..."
    build_all(args.out)


if __name__ == "__main__":
    main()

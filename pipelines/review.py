"""Evaluate and optimize in ONE process, so a review pays the library imports and the container once.

    python -m pipelines.review --spec SPEC.json --out OUT.json [--scratch DIR] [--no-optimize]

Writes one ReviewReport ({"evaluation": ..., "optimization": ...}) to OUT.json and the variant files
under variants/ next to it. Importing scikit-learn, skops and skl2onnx costs seconds; running the two
steps as separate containers would pay that twice, and train the model twice.
"""

from __future__ import annotations

import argparse
import tempfile
from typing import cast

from contract.schema import SCHEMA_VERSION, OptimizeSpec, ReviewReport
from pipelines.errors import PipelineError
from pipelines.evaluate import cli_args, evaluate, exit_now, write_json
from pipelines.optimize import optimize
from pipelines.spec import read_spec


def main(argv: list[str] | None = None) -> int:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--no-optimize", action="store_true")
    extra, rest = flags.parse_known_args(argv)
    args = cli_args(rest, "python -m pipelines.review")
    tempfile.tempdir = str(args.scratch)  # the quantizer's calibration writes temporary models
    try:
        spec = read_spec(args.spec)
    except PipelineError as exc:
        failed: ReviewReport = {
            "schema_version": SCHEMA_VERSION,
            "evaluation": {"schema_version": SCHEMA_VERSION, "models": [], "error": exc.info()},
            "optimization": None,
        }
        write_json(failed, args.out)
        return 2
    report: ReviewReport = {
        "schema_version": SCHEMA_VERSION,
        "evaluation": evaluate(spec, args.scratch),
        "optimization": None
        if extra.no_optimize
        else optimize(cast(OptimizeSpec, spec), args.out.parent, args.scratch),
    }
    write_json(report, args.out)
    return 0


if __name__ == "__main__":
    exit_now(main())

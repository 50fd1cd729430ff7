"""Evaluate and optimize in ONE process, so a review pays the library imports and the container once.

    python -m pipelines.review --spec SPEC.json --out-dir DIR [--scratch DIR] [--no-optimize]

Writes DIR/evaluation.json (EvaluationReport), DIR/optimization.json (OptimizationReport) and the
variant files under DIR/variants/. Importing scikit-learn, skops and skl2onnx costs seconds; running
the two steps as separate containers would pay it twice.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import cast

from pipelines.errors import PipelineError
from pipelines.evaluate import evaluate, write_json
from pipelines.optimize import optimize
from pipelines.schema import SCHEMA_VERSION, OptimizeSpec
from pipelines.spec import read_spec

EVALUATION = "evaluation.json"
OPTIMIZATION = "optimization.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.review")
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--scratch", type=Path, default=None, help="writable directory (default: $TMPDIR)")
    parser.add_argument("--no-optimize", action="store_true")
    args = parser.parse_args(argv)
    scratch: Path = args.scratch or Path(os.environ.get("TMPDIR") or tempfile.gettempdir())
    tempfile.tempdir = str(scratch)
    out: Path = args.out_dir
    try:
        spec = read_spec(args.spec)
    except PipelineError as exc:
        write_json({"schema_version": SCHEMA_VERSION, "models": [], "error": exc.info()}, out / EVALUATION)
        return 2
    write_json(evaluate(spec, scratch), out / EVALUATION)
    if not args.no_optimize:
        write_json(optimize(cast(OptimizeSpec, spec), out, scratch), out / OPTIMIZATION)
    return 0


if __name__ == "__main__":
    sys.exit(main())

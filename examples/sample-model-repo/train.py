"""Train the sample model: a random forest on scikit-learn's bundled breast-cancer dataset.

    python train.py [--trees 100] [--depth 8]

Writes models/churn.skops and data/eval.csv (the held-out 30 %). Deterministic for given flags, so a PR
that changes the flags changes the model and nothing else.
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import skops.io as sio
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--depth", type=int, default=8)
    args = parser.parse_args()

    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "label"})
    train, evaluation = train_test_split(frame, test_size=0.3, random_state=0, stratify=frame["label"])
    features = [c for c in frame.columns if c != "label"]
    model = RandomForestClassifier(n_estimators=args.trees, max_depth=args.depth, random_state=0)
    model.fit(train[features].to_numpy(), train["label"].to_numpy())

    (HERE / "models").mkdir(exist_ok=True)
    (HERE / "data").mkdir(exist_ok=True)
    # Deflate keeps the sample repository small (trees compress about 10x).
    sio.dump(model, HERE / "models" / "churn.skops", compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    evaluation.to_csv(HERE / "data" / "eval.csv", index=False, float_format="%.6g")
    print(f"accuracy on eval: {model.score(evaluation[features].to_numpy(), evaluation['label']):.4f}")


if __name__ == "__main__":
    main()

"""Train the sample model: a random forest on scikit-learn's bundled breast-cancer dataset.

    python train.py [--trees 100] [--depth 8]

Writes models/churn.skops and data/eval.csv (the held-out 30 %). Deterministic for given flags, so a PR
that changes the flags changes the model and nothing else.
"""

from __future__ import annotations

import argparse
import io
import re
import zipfile
from pathlib import Path

import skops.io as sio
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent


def reproducible_skops(model: object) -> bytes:
    """skops bytes that depend only on the model, so the same flags give the same file and sha256.

    skops names objects and array members after id() and stamps the zip with the clock; renumber
    them in schema order and fix the timestamps. Deflate keeps the repository small (trees ~10x).
    """
    source = zipfile.ZipFile(io.BytesIO(sio.dumps(model)))
    schema = source.read("schema.json").decode()
    ids = re.compile(r'(?<="__id__": )\d+|\d+(?=\.npy)')
    number = {old: str(i) for i, old in enumerate(dict.fromkeys(ids.findall(schema)))}
    schema = ids.sub(lambda m: number[m.group(0)], schema)
    renamed = {f"{old}.npy": f"{new}.npy" for old, new in number.items()}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        members = {"schema.json": schema.encode()} | {
            renamed.get(name, name): source.read(name) for name in source.namelist() if name != "schema.json"
        }
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            target.writestr(info, members[name], compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return out.getvalue()


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
    (HERE / "models" / "churn.skops").write_bytes(reproducible_skops(model))
    evaluation.to_csv(HERE / "data" / "eval.csv", index=False, float_format="%.6g")
    print(f"accuracy on eval: {model.score(evaluation[features].to_numpy(), evaluation['label']):.4f}")


if __name__ == "__main__":
    main()

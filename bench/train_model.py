"""Train a benchmark model and write what the checks need: `python bench/train_model.py iris|forest DIR`.

- iris: the example's LogisticRegression (examples/iris/train.py), 4 features, 3 classes.
- forest: a RandomForestClassifier of 100 trees on sklearn's make_classification (5000 rows, 20 features,
  2 classes), random_state 0 everywhere, so every venv trains the same forest.

Writes DIR/model.joblib and DIR/expected.json: {"rows": [...], "labels": [...]}, rows of the data set rounded to
float32 (what an FP32 request carries) and the model's own predict for those rows. Run it with each server's
own Python, so that no pickle crosses scikit-learn versions and the expected labels come from that model.
"""

import json
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_iris, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

CHECK_ROWS = 2048  # enough for 64 concurrent requests of 32 rows


def train(kind: str):
    if kind == "iris":
        features, labels = load_iris(return_X_y=True)
        return LogisticRegression(max_iter=1000).fit(features, labels), features
    if kind == "forest":
        features, labels = make_classification(
            n_samples=5000, n_features=20, n_informative=10, n_classes=2, random_state=0
        )
        return RandomForestClassifier(n_estimators=100, random_state=0).fit(features, labels), features
    sys.exit(f"train_model.py: unknown model '{kind}' (known: iris, forest)")


def main(kind: str, directory: Path) -> None:
    model, features = train(kind)
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, directory / "model.joblib")
    rows = features[:CHECK_ROWS].astype(np.float32)
    expected = {"rows": rows.tolist(), "labels": model.predict(rows).tolist()}
    (directory / "expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))

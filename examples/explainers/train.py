"""Train the models of the explainer examples (scikit-learn) into examples/explainers/models/:

- iris-forest.joblib: a RandomForestClassifier on iris, explained by tree SHAP (examples/isvc/explainer-shap.yaml),
  and iris-background.csv: its background rows, with the feature names as the header;
- digits.joblib: a LogisticRegression on scikit-learn's 8x8 digits (values 0-16), attacked by ART's SquareAttack
  (examples/isvc/explainer-art.yaml).

python examples/explainers/train.py [OUT_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_digits, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    iris = load_iris()
    forest = RandomForestClassifier(50, max_depth=5, random_state=0).fit(iris.data, iris.target)
    joblib.dump(forest, out / "iris-forest.joblib")
    header = ",".join(name.removesuffix(" (cm)").replace(" ", "_") for name in iris.feature_names)
    np.savetxt(out / "iris-background.csv", iris.data, delimiter=",", header=header, comments="", fmt="%.1f")
    digits = load_digits()
    joblib.dump(LogisticRegression(max_iter=5000).fit(digits.data, digits.target), out / "digits.joblib")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "models")

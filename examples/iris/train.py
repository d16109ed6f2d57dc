"""Train the bundled example: a LogisticRegression on the iris data set, saved with joblib."""

import sys

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def main(path: str) -> None:
    features, labels = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=1000).fit(features, labels), path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "model.joblib")

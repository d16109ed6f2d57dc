"""Train the XGBoost example: an XGBClassifier on the iris data set, saved in XGBoost's UBJSON format."""

import sys

from sklearn.datasets import load_iris
from xgboost import XGBClassifier


def main(path: str) -> None:
    features, labels = load_iris(return_X_y=True)
    XGBClassifier(n_estimators=20, max_depth=3).fit(features, labels).save_model(path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "model.ubj")

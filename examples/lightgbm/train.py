"""Train the LightGBM example: a multiclass Booster on the iris data set, saved as LightGBM's text model."""

import sys

import lightgbm
from sklearn.datasets import load_iris


def main(path: str) -> None:
    features, labels = load_iris(return_X_y=True)
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 7, "verbose": -1}
    lightgbm.train(params, lightgbm.Dataset(features, labels), num_boost_round=20).save_model(path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "model.lgb")

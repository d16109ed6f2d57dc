"""Train the ONNX example: a scikit-learn LogisticRegression on the iris data set, converted with skl2onnx."""

import sys

import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def main(path: str) -> None:
    features, labels = load_iris(return_X_y=True)
    estimator = LogisticRegression(max_iter=1000).fit(features, labels)
    # the graph's input is named "X" and takes FP32 [-1, 4]; its outputs are output_label and output_probability
    graph = to_onnx(estimator, features[:1].astype(np.float32))
    with open(path, "wb") as f:
        f.write(graph.SerializeToString())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "model.onnx")

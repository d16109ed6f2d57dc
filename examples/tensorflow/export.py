"""Export a small Keras regressor (4 features -> 1 value) as a TensorFlow SavedModel directory."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402


def main(path: str) -> None:
    keras.utils.set_random_seed(0)
    features = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(16, activation="relu")(features)
    model = keras.Model(features, keras.layers.Dense(1, name="value")(hidden))
    model.export(path)  # a SavedModel with the signature `serving_default`


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "regressor")

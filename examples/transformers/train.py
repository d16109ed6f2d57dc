"""Train the two predictors of the transformer examples (scikit-learn) into examples/transformers/models/.

python examples/transformers/train.py
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import joblib
from reviews import featurize
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

GOOD = ["great", "wonderful", "excellent", "brilliant", "moving", "delightful", "superb", "funny"]
BAD = ["terrible", "boring", "awful", "dull", "tedious", "clumsy", "poor", "disappointing"]
TEMPLATES = ["the film was {}", "a {} story", "{} acting and a {} plot", "what a {} movie", "simply {}"]


def reviews() -> tuple[list[str], list[int]]:
    """Short reviews made from the word lists: label 1 for good words, 0 for bad."""
    texts, labels = [], []
    for label, words in ((0, BAD), (1, GOOD)):
        for template, (a, b) in itertools.product(TEMPLATES, itertools.permutations(words, 2)):
            texts.append(template.format(a, b))
            labels.append(label)
    return texts, labels


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    texts, labels = reviews()
    joblib.dump(LogisticRegression(max_iter=1000).fit(featurize(texts), labels), out / "reviews.joblib")
    digits = load_digits()
    joblib.dump(LogisticRegression(max_iter=5000).fit(digits.data, digits.target), out / "digits.joblib")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "models")

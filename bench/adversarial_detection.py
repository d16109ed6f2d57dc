"""Adversarial detection by feature squeezing, measured on scikit-learn's digits (8x8 images, pixels 0..16):
the detection rate on adversarial examples made with the adversarial-robustness-toolbox (ART) and the false-positive
rate on clean images, at a threshold fitted on clean images for a target false-positive rate.

    .venv/bin/python bench/adversarial_detection.py [--images 300] [--attack square|hopskipjump] [--eps 2]
        [--max-iter 200] [--fpr 0.05] [--seeds 10] [--model mlp|logistic]

In process, no servers: the detector (`wharf.monitor.detectors.AdversarialDetector`) calls the classifier through an
async `predict` as it calls a predictor through the gateway. Each seed (0..seeds-1) makes its own split, classifier
and attack (ART draws from numpy's global random state, seeded), so a run repeats its numbers; the last line pools
the seeds' counts.

1. The images are split, stratified: half to train the classifier, a quarter of validation (halved again: one half
   to choose the squeezers, one to fit the threshold), a quarter of test. The classifier is a multi-layer
   perceptron (two hidden layers of 64) on pixels scaled to [0, 1]: confident on clean images and with sharp
   decision boundaries, so that an adversarial example, left just past a boundary, changes its answer when
   squeezed while a clean image keeps it (a logistic regression, less confident on clean digits, is the weaker
   case: `--model logistic`).
2. The attack (ART's SquareAttack, L-inf at most `--eps` of 16 levels, or HopSkipJump, L2, decision-based) runs on
   the classifier as a black box, on up to `--images` images of the choosing half and `--images` test images. An
   adversarial example counts where the attack changed the answer on an image the classifier got right.
3. The squeezers are chosen on the choosing half only: every candidate set (one or two of bit-depth reductions to
   2..8 levels and 2x2 or 3x3 median smoothing) gets its threshold from that half's clean images at `--fpr` and
   its detection rate on that half's adversarial examples; the best set is kept.
4. The detector is fitted with those squeezers on the other half's clean images (`AdversarialDetector.fit`) and
   measured on the test split: its false-positive rate on every clean test image and its detection rate on the test
   adversarial examples.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from art.attacks.evasion import HopSkipJump, SquareAttack
from art.estimators.classification import BlackBoxClassifierNeuralNetwork
from sklearn.base import ClassifierMixin
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from wharf.monitor.detectors import AdversarialDetector, MedianSmoothing, Quantize, Squeezer, threshold_at
from wharf.monitor.detectors.adversarial import squeezing_distances

SHAPE = (8, 8)
HIGH = 16.0  # digits' pixels are 0..16
CLASSES = 10
Attack = Literal["square", "hopskipjump"]
Model = Literal["mlp", "logistic"]


@dataclass(frozen=True)
class Measurement:
    model: str
    accuracy: float  # on the test split
    attack: str
    attacked: int  # test images attacked
    adversarial: int  # test adversarial examples (the attack changed a right answer)
    mean_l2: float  # of their perturbations, in pixel levels
    mean_linf: float
    squeezers: tuple[str, ...]  # the set chosen on the selection half
    threshold: float
    selection_adversarial: int  # adversarial examples the squeezers were chosen on
    selection_detection: float
    fpr: float  # on clean test images
    detection: float  # on test adversarial examples
    clean_test: int
    seconds: dict[str, float]


def squeezer_pool() -> list[Squeezer]:
    return [
        *(Quantize(levels, 0.0, HIGH) for levels in (2, 3, 4, 5, 6, 8)),
        *(MedianSmoothing(k, SHAPE) for k in (2, 3)),
    ]


def classifier(kind: Model, seed: int) -> ClassifierMixin:
    if kind == "logistic":
        return LogisticRegression(max_iter=5000)
    return MLPClassifier((64, 64), max_iter=2000, random_state=seed)


def adversarial_examples(
    probabilities: Callable[[np.ndarray], np.ndarray], images: np.ndarray, attack: Attack, eps: float, max_iter: int
) -> np.ndarray:
    """The attack's output for `images` [n, 64] (ART draws from numpy's global random state: seed it first)."""
    art_model = BlackBoxClassifierNeuralNetwork(
        probabilities, (*SHAPE, 1), CLASSES, channels_first=False, clip_values=(0.0, HIGH)
    )
    if attack == "square":
        method = SquareAttack(art_model, norm=np.inf, eps=eps, max_iter=max_iter, verbose=False)
    else:
        method = HopSkipJump(art_model, max_iter=max_iter, max_eval=1000, init_eval=100, verbose=False)
    return method.generate(images.reshape(-1, *SHAPE, 1)).reshape(len(images), -1)


async def measure(
    images: int = 300,
    attack: Attack = "square",
    eps: float = 2.0,
    max_iter: int = 200,
    fpr: float = 0.05,
    seed: int = 0,
    model_kind: Model = "mlp",
) -> Measurement:
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    x, y = load_digits(return_X_y=True)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.5, random_state=seed, stratify=y)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, random_state=seed, stratify=y_rest)
    x_select, x_calibrate, y_select, _ = train_test_split(
        x_val, y_val, test_size=0.5, random_state=seed, stratify=y_val
    )
    model = classifier(model_kind, seed).fit(x_train / HIGH, y_train)
    seconds["train"] = time.perf_counter() - began

    def probabilities(rows: np.ndarray) -> np.ndarray:
        return model.predict_proba(np.asarray(rows).reshape(len(rows), -1) / HIGH)

    async def predict(rows: np.ndarray) -> np.ndarray:
        return probabilities(rows)

    def attacked(rows: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The adversarial examples that succeeded, and the images they came from."""
        np.random.seed(seed)
        found = adversarial_examples(probabilities, rows, attack, eps, max_iter)
        before = probabilities(rows).argmax(axis=1)
        kept = (before == labels) & (probabilities(found).argmax(axis=1) != before)
        return found[kept], rows[kept]

    began = time.perf_counter()
    select_adversarial, _ = attacked(x_select[:images], y_select[:images])
    test_adversarial, test_originals = attacked(x_test[:images], y_test[:images])
    seconds["attack"] = time.perf_counter() - began

    began = time.perf_counter()
    pool = squeezer_pool()
    clean_distances = await squeezing_distances(predict, pool, x_select)
    adversarial_distances = await squeezing_distances(predict, pool, select_adversarial)
    best: tuple[float, int, tuple[int, ...]] = (-1.0, 0, ())
    for size in (1, 2):
        for chosen in itertools.combinations(range(len(pool)), size):
            threshold = threshold_at(clean_distances[:, chosen].max(axis=1), fpr)
            rate = float((adversarial_distances[:, chosen].max(axis=1) > threshold).mean())
            best = max(best, (rate, -size, chosen))
    squeezers = [pool[i] for i in best[2]]
    detector = await AdversarialDetector.fit(predict, squeezers, x_calibrate, fpr)
    false_positives = (await detector.score(x_test)).is_adversarial
    detected = (await detector.score(test_adversarial)).is_adversarial
    seconds["detect"] = time.perf_counter() - began

    perturbation = test_adversarial - test_originals
    return Measurement(
        model=f"{type(model).__name__}",
        accuracy=float(model.score(x_test / HIGH, y_test)),
        attack=attack,
        attacked=min(images, len(x_test)),
        adversarial=len(test_adversarial),
        mean_l2=float(np.linalg.norm(perturbation, axis=1).mean()) if len(perturbation) else 0.0,
        mean_linf=float(np.abs(perturbation).max(axis=1).mean()) if len(perturbation) else 0.0,
        squeezers=tuple(s.name for s in squeezers),
        threshold=detector.threshold,
        selection_adversarial=len(select_adversarial),
        selection_detection=best[0],
        fpr=float(false_positives.mean()),
        detection=float(detected.mean()) if len(detected) else 0.0,
        clean_test=len(x_test),
        seconds=seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300, help="test images attacked (and up to as many validation)")
    parser.add_argument("--attack", choices=["square", "hopskipjump"], default="square")
    parser.add_argument("--eps", type=float, default=2.0, help="SquareAttack's L-inf bound, in pixel levels (of 16)")
    parser.add_argument("--max-iter", type=int, default=None, help="the attack's iterations (square 200, hsj 20)")
    parser.add_argument("--fpr", type=float, default=0.05, help="the target false-positive rate")
    parser.add_argument("--seeds", type=int, default=10, help="runs, with seeds 0..seeds-1 (each its own split)")
    parser.add_argument("--model", choices=["mlp", "logistic"], default="mlp")
    args = parser.parse_args()
    max_iter = args.max_iter or (200 if args.attack == "square" else 20)
    bound = f"L-inf <= {args.eps:g} of 16" if args.attack == "square" else "L2"
    print(
        f"{args.model}, {args.attack} ({bound}, {max_iter} iterations), {args.images} test images, target FPR {args.fpr:g}"
    )
    print("seed  accuracy  adversarial  mean L2  squeezers            threshold  FPR     detection  seconds")
    results = []
    for seed in range(args.seeds):
        r = asyncio.run(measure(args.images, args.attack, args.eps, max_iter, args.fpr, seed, args.model))
        results.append(r)
        print(
            f"{seed:<4d}  {r.accuracy:<8.3f}  {r.adversarial:<11d}  {r.mean_l2:<7.2f}  {', '.join(r.squeezers):<19s}  "
            f"{r.threshold:<9.4f}  {r.fpr:<6.3f}  {r.detection:<9.3f}  {sum(r.seconds.values()):.1f}"
        )
    false_positives = sum(round(r.fpr * r.clean_test) for r in results)
    clean = sum(r.clean_test for r in results)
    detected = sum(round(r.detection * r.adversarial) for r in results)
    adversarial = sum(r.adversarial for r in results)
    print(
        f"all   false positives {false_positives}/{clean} = {false_positives / clean:.3f}, "
        f"detected {detected}/{adversarial} = {detected / adversarial:.3f}"
    )


if __name__ == "__main__":
    main()

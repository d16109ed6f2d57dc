"""Adversarial examples, as KServe's ART explainer makes them: a black-box attack of the adversarial-robustness-
toolbox (SquareAttack, HopSkipJump) on the predictor, called over the protocol, one call per prediction ART asks
for (all its rows at once).

Requests: KServe's V1 body `{"instances": [image, label]}` (one example, with or without its batch axis; `label` is
its true class), or rows of examples (V1 `instances`, a V2 tensor [rows, ...], with an optional V2 input `label`
[rows]); without labels the attack starts from the predictor's own predictions. SquareAttack perturbs squares of
images: rows [rows, height, width] or [rows, height, width, channels] (channels last, as KServe's); HopSkipJump
takes any rows. The predictor is sent each example flattened, [rows, values], as KServe's explainer sends it, and
answers class probabilities (`predict_proba` where it has it) or class indices 0..nb_classes-1, taken as certain.

The answer, as KServe's: V1 `{"explanations": {"adversarial_example": [...], "L2 error": 1.5,
"adversarial_prediction": 2, "prediction": 1}}` (for one example; lists, one item per row, for several), V2 tensors
`adversarial_example` FP64 (the rows' shape), `l2_error` FP64 [rows], `adversarial_prediction` and `prediction`
INT64 [rows]. The attacks draw from numpy's global random state, seeded with `SEED` for each explanation, so an
explanation is reproducible; one attack runs at a time in the process (`seeding`), other explanations wait.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from art.attacks.evasion import HopSkipJump, SquareAttack
from art.estimators.classification import BlackBoxClassifierNeuralNetwork

from wharf.errors import ConfigurationError, InvalidInput
from wharf.explain.predictor import INPUT, Predictor
from wharf.explain.seeding import seeded
from wharf.explain.settings import AttackOptions
from wharf.protocol.explanation import Explanation
from wharf.protocol.v2 import InferRequest, Tensor

LABEL = "label"
SEED = 0
#: ART's batch size for the predictions it asks for: every row of a prediction in one call.
_ONE_CALL = 2**31 - 1
_ATTACKS = {"SquareAttack": SquareAttack, "HopSkipJump": HopSkipJump}


class Adversarial:
    """The `attack` (SquareAttack, HopSkipJump) with `options`, on the predictor."""

    def __init__(self, explainer: str, predictor: Predictor, attack: str, options: AttackOptions) -> None:
        self.explainer = explainer
        self.predictor = predictor
        self.attack = attack
        self.options = options
        self.method = f"art.{attack}"
        try:  # ART checks its options when an attack is made: refuse bad ones at load time
            self._attack(BlackBoxClassifierNeuralNetwork(np.asarray, (1,), options.nb_classes), (0.0, 1.0))
        except ValueError as e:
            raise ConfigurationError(f"{self.method}: {e}") from None

    def explain(self, request: InferRequest) -> Explanation:
        rows, labels = self._instances(request)
        view = _image_view(rows) if self.attack == "SquareAttack" else rows
        if view is None:
            raise InvalidInput(
                f"explainer '{self.explainer}': SquareAttack perturbs images, rows [rows, height, width(, channels)]; "
                f"got shape {list(rows.shape)} (HopSkipJump takes rows of features)"
            )
        clip = self._clip(rows)
        classifier = BlackBoxClassifierNeuralNetwork(
            self._probabilities, view.shape[1:], self.options.nb_classes, channels_first=False, clip_values=clip
        )
        with seeded(SEED):
            predictions = np.argmax(classifier.predict(view, batch_size=_ONE_CALL), axis=1)
            found = self._attack(classifier, clip).generate(view, y=predictions if labels is None else labels)
            adversarial_predictions = np.argmax(classifier.predict(found, batch_size=_ONE_CALL), axis=1)
        examples = found.reshape(rows.shape).astype(np.float64)
        l2 = np.linalg.norm((examples - rows).reshape(len(rows), -1), axis=1)
        return self._answer(examples, l2, adversarial_predictions, predictions)

    def _attack(self, classifier: BlackBoxClassifierNeuralNetwork, clip: tuple[float, float]) -> Any:
        options = self.options
        chosen: dict[str, Any] = {"max_iter": options.max_iter, "batch_size": _ONE_CALL, "verbose": False}
        if options.norm is not None:
            chosen["norm"] = np.inf if options.norm == "inf" else int(options.norm)
        return _ATTACKS[self.attack](classifier, **chosen, **options.given())

    def _clip(self, rows: np.ndarray) -> tuple[float, float]:
        """The bounds of an example's values: configured, else none for SquareAttack, else the rows' own range
        (HopSkipJump's steps are relative to the bounds, which must be finite)."""
        low, high = self.options.clip_min, self.options.clip_max
        if self.attack == "SquareAttack":
            return (-np.inf if low is None else low, np.inf if high is None else high)
        low = float(rows.min()) if low is None else low
        high = float(rows.max()) if high is None else high
        return (low, high if high > low else low + 1.0)

    def _probabilities(self, rows: np.ndarray) -> np.ndarray:
        """The predictor's class probabilities for `rows` [rows, nb_classes] (class indices become certainties)."""
        answer = self.predictor(rows)
        classes = self.options.nb_classes
        if answer.ndim == 2 and answer.shape[1] == classes:
            return answer
        if answer.ndim == 1 and np.all(np.isin(answer, np.arange(classes))):
            return np.eye(classes)[answer.astype(np.intp)]
        raise InvalidInput(
            f"predictor '{self.predictor.model}' answers output '{self.predictor.output or 'its own'}' of shape "
            f"{list(answer.shape)}; the attack needs class probabilities [rows, {classes}] or class indices "
            f"0..{classes - 1} (nb_classes {classes})"
        )

    def _instances(self, request: InferRequest) -> tuple[np.ndarray, np.ndarray | None]:
        """The request's rows (FP64) and true labels, if it gives them."""
        given = {t.name: t for t in request.inputs}
        label = given.pop(LABEL, None)
        if len(given) != 1:
            raise InvalidInput(
                f"explainer '{self.explainer}' takes one input of rows [rows, ...] (and '{LABEL}' [rows]), "
                f"got {sorted(t.name for t in request.inputs)}"
            )
        tensor = next(iter(given.values()))
        rows = tensor.data.reshape(1, -1) if tensor.data.ndim == 1 else tensor.data
        if rows.dtype.kind not in "biuf" or not rows.size:
            raise InvalidInput(f"explainer '{self.explainer}' takes rows of numbers, got {tensor.datatype}")
        if label is None:
            return rows.astype(np.float64), None
        labels = label.data.reshape(-1)
        classes = self.options.nb_classes
        if (
            len(labels) != len(rows)
            or labels.dtype.kind not in "iuf"
            or not np.all(np.isin(labels, np.arange(classes)))
        ):
            raise InvalidInput(
                f"explainer '{self.explainer}': '{LABEL}' must hold one class index 0..{classes - 1} per row "
                f"({len(rows)}), got {labels.tolist()}"
            )
        return rows.astype(np.float64), labels.astype(np.int64)

    def _answer(
        self, examples: np.ndarray, l2: np.ndarray, adversarial: np.ndarray, predictions: np.ndarray
    ) -> Explanation:
        one = len(examples) == 1
        v1 = {
            "explanations": {
                "adversarial_example": examples,
                "L2 error": float(l2[0]) if one else l2,
                "adversarial_prediction": int(adversarial[0]) if one else adversarial,
                "prediction": int(predictions[0]) if one else predictions,
            }
        }
        outputs = (
            Tensor("adversarial_example", examples, "FP64"),
            Tensor("l2_error", l2.astype(np.float64), "FP64"),
            Tensor("adversarial_prediction", adversarial.astype(np.int64), "INT64"),
            Tensor("prediction", predictions.astype(np.int64), "INT64"),
        )
        return Explanation(self.method, outputs, v1)


def kserve_request(document: dict[str, Any]) -> InferRequest | None:
    """KServe's ART request `{"instances": [image, label]}` as rows and labels; None for any other body."""
    instances = document.get("instances")
    if not (isinstance(instances, list) and len(instances) == 2 and isinstance(instances[0], list)):
        return None
    label = instances[1]
    if isinstance(label, bool) or not isinstance(label, int | float) or label != int(label):
        return None
    image = np.asarray(instances[0], dtype=np.float64)  # ragged: ValueError, a 400
    rows = image if image.ndim >= 2 and image.shape[0] == 1 else image[np.newaxis]
    return InferRequest(inputs=[Tensor(INPUT, rows, "FP64"), Tensor(LABEL, np.array([int(label)]), "INT64")])


def _image_view(rows: np.ndarray) -> np.ndarray | None:
    """Rows of images as SquareAttack takes them, [rows, height, width, channels]; None for rows of features."""
    if rows.ndim == 3:
        return rows[..., np.newaxis]
    return rows if rows.ndim == 4 else None

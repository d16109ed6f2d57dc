"""The explainer: a model whose `explain` answers with an explanation of its predictor's predictions.

An InferenceService's `spec.explainer` runs as `wharf serve wharf.explain.model:Explainer --name SERVICE`, told
its method by WHARF_EXPLAINER_CONFIG (`settings`) and where its predictor is by WHARF_PREDICTOR_* (as a
transformer is; the model called is WHARF_PREDICTOR_MODEL, else the explainer's own name). `load` reads the
background data, loads the predictor's artifact where the method needs it and calls the predictor; whatever does
not fit (a background whose columns are not the model's inputs, a predictor answering otherwise than the artifact)
fails the load, and so the replica's readiness, with a message that says so. A predictor whose outputs the method
cannot use (text labels, for SHAP) does not: each explain request is then refused (400) with that reason.

`explain` runs in the model server's explanation threads (DataPlane.explain), within the request's deadline.
Each method's library is imported when the method is loaded (shap takes 2 s to import, ART 4 s).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from wharf.errors import ConfigurationError, InvalidInput, ModelLoadError, PredictorFailed
from wharf.explain import background as backgrounds
from wharf.explain.features import feature_names
from wharf.explain.predictor import INPUT, Predictor
from wharf.explain.settings import ArtConfig, ExplainerSettings, ShapConfig
from wharf.model.base import Model
from wharf.protocol import v1, v2
from wharf.protocol.explanation import Explanation
from wharf.protocol.v2 import InferRequest
from wharf.storage.uri import redact
from wharf.transformer import PredictorSettings

log = logging.getLogger(__name__)
for _library in ("shap", "art"):  # they log each explanation's steps at INFO
    logging.getLogger(_library).setLevel(logging.WARNING)


class Method(Protocol):
    def explain(self, request: InferRequest) -> Explanation: ...


V1Reader = Callable[[dict[str, Any]], InferRequest | None]


class Explainer(Model):
    """Explains its predictor's predictions with the configured method (SHAP tree or kernel, ART)."""

    platform = "explainer"
    strict_inputs = False
    supports_batching = False

    def __init__(
        self,
        name: str,
        version: str | None = None,
        settings: ExplainerSettings | None = None,
        predictor: PredictorSettings | None = None,
    ) -> None:
        super().__init__(name, version)
        self.settings = settings or ExplainerSettings()
        self.predictor_settings = predictor or PredictorSettings()
        self.method: Method | None = None
        self._predictor: Predictor | None = None
        self._unusable: str | None = None  # why the predictor's outputs cannot be explained, if they cannot
        self._v1_reader: V1Reader | None = None  # the method's own reading of V1 bodies (None where it has none)

    def load(self) -> None:
        config = self.settings.method()
        self.predictor_settings.check(f"explainer {self.name!r}")
        output = config.output if isinstance(config, ShapConfig) else None
        self._predictor = Predictor(self.predictor_settings, self.predictor_settings.model or self.name, output)
        try:
            self.method = self._shap(config) if isinstance(config, ShapConfig) else self._art(config)
        except InvalidInput as e:  # the predictor's outputs: each request is told
            log.warning("explainer cannot use its predictor's outputs", extra={"reason": e.message})
            self._unusable = e.message

    def explain(self, payload: InferRequest) -> Explanation:
        if self.method is None:
            raise InvalidInput(self._unusable or f"explainer '{self.name}' is not loaded")
        return self.method.explain(payload)

    def v1_explain_request(self, document: dict[str, Any]) -> InferRequest:
        """KServe's ART body `{"instances": [image, label]}`, else a V1 body read as `:predict` reads it."""
        if self._v1_reader is not None and (found := self._v1_reader(document)) is not None:
            return found
        return v1.decode_request(v2.dumps(document), INPUT)

    def unload(self) -> None:
        if self._predictor is not None:
            self._predictor.close()

    def _shap(self, config: ShapConfig) -> Method:
        from wharf.explain.shap_kernel import KernelShap
        from wharf.explain.shap_tree import TREE_FORMATS, TreeUnsupported, load_model

        assert self._predictor is not None
        background = (
            backgrounds.load(config.storage_uri, config.sample_size, config.seed) if config.storage_uri else None
        )
        source = config.model
        tree_format = source is not None and (source.format or "").lower() in ("", *TREE_FORMATS)
        no_tree = "no model.storageUri for tree SHAP" if source is None else f"model format {source.format}"
        if source is not None and (config.type == "Tree" or (config.type == "Auto" and tree_format)):
            try:
                return self._tree(config, load_model(source, self.name), background)
            except TreeUnsupported as e:
                if config.type == "Tree":
                    raise
                log.info("explaining with Kernel SHAP", extra={"reason": e.message})
                no_tree = e.message
        if background is None:
            raise ConfigurationError(
                f"Kernel SHAP needs background rows ({no_tree}): give storageUri (a CSV, Parquet or NPY file)"
            )
        names = feature_names(background.rows.shape[1], config.feature_names, background.feature_names)
        try:
            return KernelShap(self.name, self._predictor, background.rows, names, config.n_samples, config.seed)
        except PredictorFailed as e:
            raise ModelLoadError(
                f"the predictor refused the background rows of {redact(config.storage_uri or '')}: {e.message}"
            ) from None

    def _tree(self, config: ShapConfig, model: Any, background: backgrounds.Background | None) -> Method:
        from wharf.explain.shap_tree import TreeShap, TreeUnsupported, background_in_model_order

        assert self._predictor is not None and config.model is not None
        rows = None
        if background is not None:
            rows = background_in_model_order(background.rows, background.feature_names, model, config.storage_uri or "")
        count = model.n_features if model.n_features is not None else (rows.shape[1] if rows is not None else None)
        if count is None:
            raise TreeUnsupported("the model does not say how many features it takes, and there is no background")
        header = background.feature_names if background is not None else None
        names = feature_names(count, config.feature_names, model.columns, header)
        tree = TreeShap(self.name, model, rows, names, config.seed)
        tree.check_predictor(self._predictor)
        return tree

    def _art(self, config: ArtConfig) -> Method:
        from wharf.explain.adversarial import Adversarial, kserve_request

        assert self._predictor is not None
        self._v1_reader = kserve_request
        return Adversarial(self.name, self._predictor, config.type, config.options())

"""Hugging Face runtime: transformers models saved in a local directory (`save_pretrained`) or a GGUF file, on text.

The task is the setting `task` (environment `WHARF_HF_TASK`, `wharf serve --task`, or `task` in model-settings.json;
KServe's names such as `text_generation` or `text_embedding` are taken too) when set, else it comes from the model:
a GGUF file, or an architecture ending in `ForCausalLM`, is `text-generation` (served through the OpenAI API with
continuous batching: see `huggingface_generation`); `ForSequenceClassification` is `text-classification`,
`ForTokenClassification` is `token-classification`, `ForMaskedLM` is `fill-mask`, and a bare encoder (e.g.
`BertModel`, or any sentence-transformers directory) is `feature-extraction` (also the OpenAI embeddings endpoint).
Nothing is downloaded: all files come from the directory. The model runs on CUDA when a GPU is available, else on
the CPU, in `dtype` (KServe's `--dtype`: `auto` is float16 on a GPU, float32 on the CPU).

The input is one BYTES tensor of shape [N] holding N texts (V1: `{"instances": ["text", ...]}`). Outputs:

- text-classification: `label` (BYTES [N]) and `score` (FP32 [N]), the most likely class of each text.
- token-classification: `entities` (BYTES [N]), per text a JSON array of the entities found, each an object with
  `entity_group`, `score`, `word`, `start` and `end` (adjacent tokens of one entity are grouped).
- fill-mask: `token` (BYTES [N, K]) and `score` (FP32 [N, K]), the K most likely tokens for the one mask token
  each text must hold; K is the request parameter `top_k` (default 5).
- feature-extraction: `embedding` (FP32 [N, dim]), the mean of the token embeddings, scaled to unit length when
  the model is a sentence-transformers model with a `Normalize` module or the request parameter `normalize` is
  true (false turns it off).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import transformers
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from wharf.errors import ConfigurationError, InvalidInput, ModelLoadError
from wharf.model.base import Model
from wharf.model.generation.generator import TextGenerator
from wharf.model.runtimes.huggingface_generation import TextGeneration
from wharf.protocol.v2 import InferRequest, TensorSpec, dumps

#: Texts run through the model together.
BATCH_SIZE = 16
DEFAULT_TOP_K = 5

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
# from_pretrained patches torch globally while it builds a model (on the meta device): one load at a time
_LOADING = threading.Lock()


class HuggingFaceSettings(BaseSettings):
    """Settings of the Hugging Face runtime (environment prefix `WHARF_HF_`)."""

    model_config = SettingsConfigDict(env_prefix="WHARF_HF_", extra="forbid")

    task: str | None = Field(None, description="the task of every model served; default: from its config.json")
    max_model_len: int | None = Field(
        None, ge=2, description="context of a text-generation model in tokens; default: its max_position_embeddings"
    )
    dtype: Literal["auto", "float16", "half", "bfloat16", "float32", "float"] = Field(
        "auto", description="the weights' type; auto: float16 on a GPU, float32 on the CPU"
    )
    max_batch_sequences: int = Field(16, ge=1, description="sequences a text-generation model decodes together")
    max_batch_tokens: int = Field(
        65536, ge=2, description="tokens (prompts + most new tokens) the sequences decoded together may hold"
    )


class Task:
    """A task: the transformers class that loads the model, what it produces, and how texts become outputs."""

    name: ClassVar[str]
    auto_class: ClassVar[str]

    def __init__(self, directory: Path, device: torch.device, dtype: torch.dtype) -> None:
        self.device = device
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
        self.model = getattr(transformers, self.auto_class).from_pretrained(
            directory, local_files_only=True, dtype=dtype
        )
        self.model.to(device).eval()
        self.tokenizer.model_max_length = _max_length(directory, self.tokenizer, self.model.config)

    def outputs(self) -> list[TensorSpec]:
        raise NotImplementedError

    def __call__(self, texts: list[str], parameters: dict[str, Any]) -> dict[str, np.ndarray]:
        raise NotImplementedError


class PipelineTask(Task):
    """A task run by the transformers pipeline of the same name."""

    def __init__(self, directory: Path, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__(directory, device, dtype)
        self.pipeline = transformers.pipeline(
            self.name, model=self.model, tokenizer=self.tokenizer, device=device, **self.pipeline_options()
        )

    def pipeline_options(self) -> dict[str, Any]:
        return {}


class TextClassification(PipelineTask):
    name = "text-classification"
    auto_class = "AutoModelForSequenceClassification"

    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec("label", "BYTES", [-1]), TensorSpec("score", "FP32", [-1])]

    def __call__(self, texts: list[str], parameters: dict[str, Any]) -> dict[str, np.ndarray]:
        results = self.pipeline(texts, batch_size=BATCH_SIZE, truncation=True)
        return {
            "label": _bytes([r["label"] for r in results]),
            "score": np.array([r["score"] for r in results], dtype=np.float32),
        }


class TokenClassification(PipelineTask):
    name = "token-classification"
    auto_class = "AutoModelForTokenClassification"

    def pipeline_options(self) -> dict[str, Any]:
        return {"aggregation_strategy": "simple"}

    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec("entities", "BYTES", [-1])]

    def __call__(self, texts: list[str], parameters: dict[str, Any]) -> dict[str, np.ndarray]:
        results = self.pipeline(texts, batch_size=BATCH_SIZE)
        return {"entities": _bytes([dumps(found) for found in results])}


class FillMask(PipelineTask):
    name = "fill-mask"
    auto_class = "AutoModelForMaskedLM"

    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec("token", "BYTES", [-1, -1]), TensorSpec("score", "FP32", [-1, -1])]

    def __call__(self, texts: list[str], parameters: dict[str, Any]) -> dict[str, np.ndarray]:
        top_k = parameters.get("top_k", DEFAULT_TOP_K)
        if type(top_k) is not int or top_k < 1:
            raise InvalidInput(f"parameter 'top_k' must be a positive integer, got {top_k!r}")
        mask = self.tokenizer.mask_token
        for text in texts:
            if text.count(mask) != 1:
                raise InvalidInput(f"each text must hold the mask token {mask} exactly once: {text!r}")
        results = self.pipeline(texts, batch_size=BATCH_SIZE, top_k=top_k, tokenizer_kwargs={"truncation": True})
        if len(texts) == 1:  # the pipeline unwraps the answer to a single text
            results = [results]
        return {
            "token": _bytes([[r["token_str"] for r in found] for found in results]),
            "score": np.array([[r["score"] for r in found] for found in results], dtype=np.float32),
        }


class FeatureExtraction(Task):
    name = "feature-extraction"
    auto_class = "AutoModel"

    def __init__(self, directory: Path, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__(directory, device, dtype)
        self.normalize = _has_normalize_module(directory)

    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec("embedding", "FP32", [-1, self.model.config.hidden_size])]

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """The embeddings of `texts` (as `__call__` makes them, normalized as the model says) and their tokens."""
        tokens = sum(len(ids) for ids in self.tokenizer(texts, truncation=True)["input_ids"])
        return self(texts, {})["embedding"], tokens

    def __call__(self, texts: list[str], parameters: dict[str, Any]) -> dict[str, np.ndarray]:
        normalize = parameters.get("normalize", self.normalize)
        if not isinstance(normalize, bool):
            raise InvalidInput(f"parameter 'normalize' must be true or false, got {normalize!r}")
        chunks = [self._embed(texts[i : i + BATCH_SIZE], normalize) for i in range(0, len(texts), BATCH_SIZE)]
        return {"embedding": np.concatenate(chunks)}

    def _embed(self, texts: list[str], normalize: bool) -> np.ndarray:
        encoded = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            tokens = self.model(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        if normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.float().cpu().numpy()


TASKS: dict[str, type[Task] | type[TextGeneration]] = {
    t.name: t for t in (TextClassification, TokenClassification, FillMask, FeatureExtraction, TextGeneration)
}
#: KServe's task names (huggingfaceserver's `--task`) -> Wharf's.
KSERVE_TASKS = {
    "sequence_classification": TextClassification.name,
    "token_classification": TokenClassification.name,
    "fill_mask": FillMask.name,
    "text_embedding": FeatureExtraction.name,
    "text_generation": TextGeneration.name,
}
DTYPES = {"float16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16}
#: Architecture name suffix -> task.
HEADS = {
    "ForCausalLM": TextGeneration.name,
    "ForSequenceClassification": TextClassification.name,
    "ForTokenClassification": TokenClassification.name,
    "ForMaskedLM": FillMask.name,
}


class HuggingFaceModel(Model):
    platform = "huggingface"
    strict_inputs = False

    def __init__(
        self, name: str, artifact: Path, version: str | None = None, settings: HuggingFaceSettings | None = None
    ) -> None:
        super().__init__(name, version)
        self.gguf_file = artifact.name if artifact.is_file() else None
        self.directory = artifact.parent if self.gguf_file else artifact
        self.settings = settings or HuggingFaceSettings()
        self.task_name = self.settings.task
        self.task: Task | TextGeneration | None = None

    def configure_runtime(self, **options: Any) -> None:
        """Take the runtime settings a model-settings.json gives (`task`, `max_model_len`, `dtype`) before load."""
        self.settings = _settings(**{**self.settings.model_dump(exclude_unset=True), **options})
        self.task_name = self.settings.task

    @property
    def generator(self) -> TextGenerator | None:
        """The OpenAI API's completions and chat, for a text-generation model."""
        return self.task.generator if isinstance(self.task, TextGeneration) else None

    @property
    def embedder(self) -> FeatureExtraction | None:
        """The OpenAI API's embeddings, for a feature-extraction model."""
        return self.task if isinstance(self.task, FeatureExtraction) else None

    def load(self) -> None:
        name = self.task_name or (TextGeneration.name if self.gguf_file else _task_from_config(self.directory))
        name = KSERVE_TASKS.get(name, name)
        if name not in TASKS:
            known = ", ".join([*TASKS, *KSERVE_TASKS])
            raise ModelLoadError(f"unknown Hugging Face task {name!r} (WHARF_HF_TASK); known: {known}")
        if self.gguf_file and name != TextGeneration.name:
            raise ModelLoadError(f"{self.gguf_file}: a GGUF file is served as text-generation, not {name}")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        settings = self.settings
        dtype = DTYPES.get(
            settings.dtype, torch.float16 if settings.dtype == "auto" and device.type == "cuda" else torch.float32
        )
        try:
            with _LOADING:
                if name == TextGeneration.name:
                    self.task = TextGeneration(
                        self.directory,
                        device,
                        dtype,
                        self.gguf_file,
                        settings.max_model_len,
                        settings.max_batch_sequences,
                        settings.max_batch_tokens,
                    )
                else:
                    self.task = TASKS[name](self.directory, device, dtype)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"cannot load the {name} model in {self.directory}: {e}") from e
        self.task_name = name

    def unload(self) -> None:
        if isinstance(self.task, TextGeneration):
            self.task.close()
        self.task = None

    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec("text", "BYTES", [-1])]

    def outputs(self) -> list[TensorSpec]:
        return self.task.outputs() if self.task else []

    def predict(self, payload: InferRequest) -> dict[str, np.ndarray]:
        assert self.task is not None, "predict() before load()"
        texts = self._texts(payload)
        try:
            return self.task(texts, payload.parameters)
        except (InvalidInput, transformers.pipelines.PipelineException) as e:
            reason = e.message if isinstance(e, InvalidInput) else str(e)
            raise InvalidInput(f"model '{self.name}' rejected the input: {reason}") from e

    def _texts(self, request: InferRequest) -> list[str]:
        if len(request.inputs) != 1:
            raise InvalidInput(f"model '{self.name}' takes one input tensor of texts, got {len(request.inputs)}")
        tensor = request.inputs[0]
        if tensor.datatype != "BYTES" or tensor.data.ndim != 1 or not tensor.data.size:
            raise InvalidInput(
                f"input '{tensor.name}' of model '{self.name}' must be BYTES of shape [N] (N >= 1 texts), "
                f"got {tensor.datatype} {tensor.shape}"
            )
        try:
            return [item.decode() if isinstance(item, bytes) else str(item) for item in tensor.data]
        except UnicodeDecodeError:
            raise InvalidInput(f"input '{tensor.name}' of model '{self.name}' holds text that is not UTF-8") from None


def _task_from_config(directory: Path) -> str:
    if (directory / "modules.json").exists():  # a sentence-transformers model
        return FeatureExtraction.name
    config = _read_json(directory / "config.json")
    for architecture in config.get("architectures") or []:
        for suffix, task in HEADS.items():
            if architecture.endswith(suffix):
                return task
        if architecture.endswith("Model") and "Head" not in architecture:  # a bare encoder, e.g. BertModel
            return FeatureExtraction.name
    raise ModelLoadError(
        f"cannot tell the task of {directory} from its config.json architectures "
        f"{config.get('architectures')}; set WHARF_HF_TASK to one of {', '.join(TASKS)}"
    )


def _max_length(directory: Path, tokenizer: Any, config: Any) -> int:
    """Tokens per text: the sentence-transformers setting, else the tokenizer's, within the model's positions."""
    configured = _read_json(directory / "sentence_bert_config.json").get("max_seq_length")
    positions = getattr(config, "max_position_embeddings", None) or tokenizer.model_max_length
    return min(configured or tokenizer.model_max_length, positions)


def _has_normalize_module(directory: Path) -> bool:
    modules = _read_json(directory / "modules.json") or []
    return any(str(m.get("type", "")).endswith(".Normalize") for m in modules)


def _read_json(path: Path) -> Any:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot read {path}: {e}") from e


def _bytes(values: list[Any]) -> np.ndarray:
    """An object array of UTF-8 bytes in the nesting of `values` (lists of str or bytes)."""
    array = np.array(values, dtype=object)
    return np.vectorize(lambda v: v if isinstance(v, bytes) else str(v).encode(), otypes=[object])(array)


def _settings(**options: Any) -> HuggingFaceSettings:
    """The runtime's settings: `options` over the WHARF_HF_* environment; a ConfigurationError names a bad one."""
    try:
        return HuggingFaceSettings(**options)
    except ValidationError as e:
        error = e.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "settings"
        raise ConfigurationError(f"Hugging Face setting {name} (WHARF_HF_{name.upper()}): {error['msg']}") from None


def create(name: str, artifact: Path, version: str | None = None) -> HuggingFaceModel:
    return HuggingFaceModel(name, artifact, version, _settings())

"""KServe's Hugging Face server arguments, which a predictor of model format `huggingface` may give in `args`.

They pass unchanged to the replica's `wharf serve`, which takes the same names:
- `--task`: the model's task, in KServe's names (`text_generation`, `text_embedding`, `sequence_classification`,
  `token_classification`, `fill_mask`) or transformers' (`text-generation`...); the runtime checks the name when it
  loads the model (default: from the model's architecture, or text generation for a GGUF file);
- `--max_model_len`: a generative model's context in tokens (at least 2);
- `--dtype`: the weights' type (`auto`, `float16`, `half`, `bfloat16`, `float32`, `float`);
- `--model_name`: the name the model is served under (OpenAI's `model` field, the V1/V2 paths); without it, the
  InferenceService's name, as in KServe.

Each is written `--option=value` or `--option value`, at most once. KServe's `--model_id` (a download from the
Hugging Face Hub) and `--backend` (vLLM) have no Wharf equivalent and are refused with the reason: Wharf loads the
model from `storageUri` and runs it with transformers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from wharf.control.spec.common import Problem

FORMAT = "huggingface"
OPTIONS = ("--task", "--max_model_len", "--dtype", "--model_name")
DTYPES = ("auto", "float16", "half", "bfloat16", "float32", "float")
_TASK = re.compile(r"[a-z][a-z_-]*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
_REFUSED = {
    "--model_id": "Wharf loads the model from storageUri, never from the Hugging Face Hub: give storageUri instead",
    "--backend": "Wharf runs Hugging Face models with transformers (its continuous-batching engine): leave it out",
}


def options(args: Sequence[str]) -> Iterator[tuple[int, str, str | None]]:
    """Each option of `args` with its position and value (None where none follows), in order; arguments that are
    not options come as (position, argument, None)."""
    i = 0
    while i < len(args):
        option, equals, value = args[i].partition("=")
        if equals:
            yield i, option, value
        elif option.startswith("--") and i + 1 < len(args) and not args[i + 1].startswith("--"):
            yield i, option, args[i + 1]
            i += 1
        else:
            yield i, option, None
        i += 1


def argument_problems(args: Sequence[str]) -> Iterator[Problem]:
    """What is wrong with the Hugging Face options among `args` (other options are the policy's to judge)."""
    seen: set[str] = set()
    for i, option, value in options(args):
        at = ("args", i)
        if option in _REFUSED:
            yield at, f"{option}: {_REFUSED[option]}"
            continue
        if option not in OPTIONS:
            continue
        if option in seen:
            yield at, f"{option} is given twice"
        seen.add(option)
        if value is None:
            yield at, f"{option} needs a value ({option}=VALUE)"
        elif option == "--task" and not _TASK.fullmatch(value):
            yield at, f"--task {value!r} is no task name (such as text_generation or text_embedding)"
        elif option == "--max_model_len" and not (value.isdigit() and int(value) >= 2):
            yield at, f"--max_model_len {value!r} must be a whole number of tokens, at least 2"
        elif option == "--dtype" and value not in DTYPES:
            yield at, f"--dtype {value!r} must be one of {', '.join(DTYPES)}"
        elif option == "--model_name" and not _NAME.fullmatch(value):
            yield (
                at,
                f"--model_name {value!r} must be letters, digits, '.', '_' or '-', beginning with a letter or digit",
            )


def served_name(args: Sequence[str]) -> str | None:
    """The `--model_name` that `args` give, if any."""
    return next((value for _, option, value in options(args) if option == "--model_name" and value), None)

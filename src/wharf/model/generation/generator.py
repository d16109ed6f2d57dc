"""What a generative model offers the OpenAI API: prompts from text or chat messages, and streamed generations.

A request is refused (400) when its prompt leaves no room for a new token in the model's context
(`max_model_len`), or when its prompt plus `max_tokens` exceed it; both lengths are named. Without `max_tokens`,
generation may go on to the end of the context.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from wharf.errors import InvalidInput
from wharf.model.generation.params import SamplingParams

if TYPE_CHECKING:  # the engine imports torch: this module stays importable without it
    from wharf.model.generation.engine import Engine, Generation


class PromptTooLong(InvalidInput):
    """The prompt (with the tokens asked for) does not fit the model's context."""


class TextGenerator:
    """A causal LM's tokenizer and generation engine, within a context of `max_model_len` tokens."""

    def __init__(self, tokenizer: Any, engine: Engine, max_model_len: int) -> None:
        self.tokenizer, self.engine, self.max_model_len = tokenizer, engine, max_model_len

    def chat_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """The prompt of a chat: the tokenizer's chat template, ending where the assistant's answer begins."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise InvalidInput("this model has no chat template; use the completions endpoint")
        from jinja2 import TemplateError  # transformers' templating; only where a tokenizer exists

        try:
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        except TemplateError as e:  # e.g. a template that wants user and assistant turns to alternate
            raise InvalidInput(f"messages: the model's chat template refused them: {e}") from None
        return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)

    def text_ids(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt)["input_ids"]

    def count(self, text: str) -> int:
        return len(self.text_ids(text))

    def generate(self, prompt: list[int], params: SamplingParams, max_tokens_given: bool) -> Generation:
        """Start generating after `prompt` (call from the event loop); the tokens come through the `Generation`."""
        room = self.max_model_len - len(prompt)
        if room < 1:
            raise PromptTooLong(
                f"this model's maximum context length is {self.max_model_len} tokens, "
                f"but the prompt has {len(prompt)} tokens"
            )
        if max_tokens_given and params.max_tokens > room:
            raise PromptTooLong(
                f"this model's maximum context length is {self.max_model_len} tokens, but {len(prompt) + params.max_tokens} "
                f"were asked for ({len(prompt)} in the prompt, {params.max_tokens} for the completion)"
            )
        params = replace(params, max_tokens=min(params.max_tokens, room))
        if not self.engine.fits(len(prompt) + params.max_tokens):
            raise PromptTooLong(
                f"the prompt's {len(prompt)} tokens and {params.max_tokens} new ones exceed the "
                f"{self.engine.schedule.max_tokens} tokens a batch may hold (max_batch_tokens)"
            )
        return self.engine.submit(prompt, params)

    def close(self) -> None:
        self.engine.close()

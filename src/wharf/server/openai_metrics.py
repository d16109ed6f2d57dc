"""Prometheus metrics of generative models (the OpenAI API), in the model server's registry.

- `wharf_generation_time_to_first_token_seconds{model}`: from a request's arrival to its first text.
- `wharf_generation_inter_token_latency_seconds{model}`: between two pieces of text of one sequence.
- `wharf_generation_tokens_total{model,kind}`: prompt and completion tokens (counted by the engine as each
  sequence ends: finished, cancelled or failed); `rate(...{kind="completion"}[1m])` is tokens/s.
- `wharf_generation_batch_size{model}`: sequences in each decode step (the batch's occupancy, observed by the
  engine's thread: one histogram observation per step).
- `wharf_generation_running_sequences{model}`, `wharf_generation_waiting_sequences{model}`: the batch and the queue
  now, read from each engine at every scrape.

With several worker processes (PROMETHEUS_MULTIPROC_DIR) the two gauges are not aggregated (they are read at
scrape, from the process scraped); the histograms and counter are.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from wharf.model.base import Model

if TYPE_CHECKING:  # the engine imports torch, which a server of other models never loads
    from wharf.model.generation.engine import Engine

_TOKEN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, 256)


class GenerationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.engines: dict[str, Engine] = {}
        self.first_token = Histogram(
            "wharf_generation_time_to_first_token_seconds",
            "Time from a generation request's arrival to its first text.",
            ["model"],
            buckets=_TOKEN_BUCKETS,
            registry=registry,
        )
        self.inter_token = Histogram(
            "wharf_generation_inter_token_latency_seconds",
            "Time between two pieces of text of one generated sequence.",
            ["model"],
            buckets=_TOKEN_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "wharf_generation_tokens",
            "Tokens read (prompt) and generated (completion).",
            ["model", "kind"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "wharf_generation_batch_size",
            "Sequences decoded together in one step.",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        registry.register(_EngineCollector(self.engines))

    def loaded(self, model: Model) -> None:
        """Watch `model`'s engine, if it generates text: its steps' batch sizes, its batch and queue."""
        generator = getattr(model, "generator", None)
        if generator is not None:
            self.engines[model.name] = generator.engine
            generator.engine.on_step = self.batch_size.labels(model.name).observe
            prompt, completion = self.tokens.labels(model.name, "prompt"), self.tokens.labels(model.name, "completion")

            def counted(prompt_tokens: int, completion_tokens: int) -> None:
                prompt.inc(prompt_tokens)
                completion.inc(completion_tokens)

            generator.engine.on_end = counted

    def embedded(self, model: str, tokens: int) -> None:
        self.tokens.labels(model, "prompt").inc(tokens)


class _EngineCollector(Collector):
    def __init__(self, engines: dict[str, Engine]) -> None:
        self.engines = engines

    def collect(self) -> Iterator[Metric]:
        running = GaugeMetricFamily(
            "wharf_generation_running_sequences", "Sequences in the running batch.", labels=["model"]
        )
        waiting = GaugeMetricFamily(
            "wharf_generation_waiting_sequences", "Sequences queued for the running batch.", labels=["model"]
        )
        for name, engine in list(self.engines.items()):
            running.add_metric([name], engine.running)
            waiting.add_metric([name], engine.waiting)
        yield running
        yield waiting

    def describe(self) -> Iterator[Metric]:
        return iter(())

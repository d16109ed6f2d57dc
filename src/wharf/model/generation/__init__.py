"""Text generation with continuous batching: a pure scheduler, per-sequence KV caches joined into one decode batch,
sampling, stop sequences, and the engine thread that runs them for one model."""

"""Telemetry: traces, Prometheus discovery, cost and utilisation figures; a leaf the other packages use."""

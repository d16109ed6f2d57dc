"""The monitor: a CloudEvents sink for payload logs that stores them and answers TrustyAI's metrics API (drift,
fairness), scores outliers and adversarial inputs, and exports scheduled metrics to Prometheus. It imports neither
`wharf.server` nor `wharf.control`."""

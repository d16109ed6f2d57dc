"""Kafka sources: a consumer process that feeds topics to an inference service and answers to topics."""

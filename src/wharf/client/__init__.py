"""Wharf's Python SDK."""

from wharf.client.control import ControlClient, ControlError

__all__ = ["ControlClient", "ControlError"]

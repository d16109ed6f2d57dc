"""Payload logging: inference requests and responses sent as CloudEvents to a sink, off the request path."""

from wharf.logger.events import REQUEST_TYPE, RESPONSE_TYPE, LogTarget, PayloadEvent
from wharf.logger.sink import HttpxPost, PayloadLogger, Post

__all__ = ["REQUEST_TYPE", "RESPONSE_TYPE", "HttpxPost", "LogTarget", "PayloadEvent", "PayloadLogger", "Post"]

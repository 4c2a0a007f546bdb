"""The retention rule under the name ``retention.planner`` imports it by; every model lives in its
file's module (``config.<file>``, ``catalog.models``)."""

from lifecycle.config.retention import RetentionRule

__all__ = ["RetentionRule"]

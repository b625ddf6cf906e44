"""The errors both providers raise for the same reasons, so callers and tests catch one type."""

from __future__ import annotations


class ConfigError(ValueError):
    """The cloud-config file is unreadable, incomplete or has a bad value; the message names file and key."""


class NotOwned(RuntimeError):
    """A resource with our name exists but is not this cluster's (or this scope's); we refuse to touch it."""

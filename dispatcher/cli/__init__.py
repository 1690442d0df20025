"""The ``dispatcher`` command: one module per group of commands, registered on ``app``."""

from __future__ import annotations

# isort: off
# Imported for their commands, in the order the help lists them.
from . import server, deliveries, prune, subscriptions, keys, tenants, secrets  # noqa: F401
# isort: on
from ..vocabulary import DeliveryStatus
from .groups import app
from .server import run_loop

__all__ = ["DeliveryStatus", "app", "run_loop"]

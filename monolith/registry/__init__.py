"""The registry owns provider lifecycles (load, fallback, swap, close) and their health."""

from monolith.registry.registry import Registry
from monolith.registry.slot import Slot

__all__ = ["Registry", "Slot"]

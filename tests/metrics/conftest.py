from __future__ import annotations

from .harness import harness_factory

__all__ = ["harness_factory"]

from __future__ import annotations

from support.harness import harness_factory

__all__ = ["harness_factory"]

"""Celery Monitor: a real-time monitor and control plane for Celery clusters."""

from __future__ import annotations

__version__ = "0.1.0"

"""Kubernetes operator for Celery Monitor.

A ``CeleryMonitor`` custom resource describes one monitor for one Celery cluster; the
operator renders the children it needs (pure functions in :mod:`.renderers`), applies them
idempotently (:mod:`.apply`) and reports conditions (:mod:`.status`). The kopf handlers in
:mod:`.handlers` only wire these together.
"""

from __future__ import annotations

"""Kubernetes operator for Celery Monitor.

A ``CeleryMonitor`` custom resource describes one monitor for one Celery cluster. The operator
reads it into a typed model (:mod:`.spec_parser` into :mod:`.spec`), decides which children it
needs and which to prune (:mod:`.reconcile`, a pure function over the renderers of
:mod:`.renderers`), then applies that decision idempotently and reports conditions
(:mod:`.converge`, through :mod:`.apply` and the client seam :mod:`.kube`). The kopf handlers in
:mod:`.handlers` only wire these together.
"""

from __future__ import annotations

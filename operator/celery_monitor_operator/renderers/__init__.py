"""Pure functions from a validated CeleryMonitor to the Kubernetes objects it needs.

Nothing here talks to a cluster: each renderer takes typed input and returns plain dicts,
so the same code feeds the running operator, ``manifests/`` and the Helm chart.
"""

from __future__ import annotations

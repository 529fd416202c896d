"""The API's error answers are the shared HTTP vocabulary's (:mod:`celery_monitor.http.errors`).

Only app.py and api/openapi.py still import them from here; once they import from
``celery_monitor.http.errors`` this module can go.
"""

from celery_monitor.http.errors import EXCEPTION_HANDLERS, ApiError, json_response

__all__ = ["EXCEPTION_HANDLERS", "ApiError", "json_response"]

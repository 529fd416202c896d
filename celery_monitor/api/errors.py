"""The API's error answers are the shared HTTP vocabulary's (:mod:`celery_monitor.http.errors`).

Only app.py still imports them from here; once it imports from
``celery_monitor.http.errors`` this module can go.
"""

from celery_monitor.http.errors import EXCEPTION_HANDLERS, ApiError, json_response

__all__ = ["EXCEPTION_HANDLERS", "ApiError", "json_response"]

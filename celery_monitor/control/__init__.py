"""Remote control: worker and task actions through Celery's control bus, bulk actions, the audit trail.

Nothing here runs on the event loop: every call may wait on the broker, the workers or the result
backend, so the API hands it to :class:`~celery_monitor.control.plane.ControlPlane`'s threads.
"""

"""What the API and the pages share over HTTP: the request's monitor, parameters, errors and reads.

Below both :mod:`celery_monitor.api` and :mod:`celery_monitor.web`, which stay independent of
each other: a parameter is parsed, a task query built, an unknown task or worker answered, the
same way on /api and on /ui.
"""

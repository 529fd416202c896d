"""Why talking to the broker failed: the few reasons :mod:`celery_monitor.broker.faults` classifies into.

Apart from the classifier, which needs the broker clients' exception classes: the reader process
counts failures by these reasons and imports this alone, not redis-py and py-amqp (about 20 MB).
"""

from __future__ import annotations

# The reasons, in the order they are exported.
UNREACHABLE = "unreachable"  # nothing answers: refused, no route, unknown host, connect timeout
TLS = "tls"  # the TLS handshake failed: a certificate not trusted, a port that does not speak TLS
AUTH = "auth"  # the broker refused the login
HANDSHAKE = "handshake"  # the broker answered but refused or broke off the session (vhost, protocol)
LOST = "lost"  # an established event stream ended
ERROR = "error"  # not a broker fault: an unexpected exception of ours
REASONS = (UNREACHABLE, TLS, AUTH, HANDSHAKE, LOST, ERROR)

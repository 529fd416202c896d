"""Why a control action failed, as an HTTP status and a one-line reason."""

from __future__ import annotations


class ControlError(Exception):
    """A control action that cannot be done; ``status`` follows Flower's codes (400/403/404/503/504)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def bad_request(reason: str) -> ControlError:
    return ControlError(400, reason)


def forbidden(reason: str) -> ControlError:
    return ControlError(403, reason)


def not_found(reason: str) -> ControlError:
    return ControlError(404, reason)


def unavailable(reason: str) -> ControlError:
    return ControlError(503, reason)


def no_reply(reason: str) -> ControlError:
    return ControlError(504, reason)

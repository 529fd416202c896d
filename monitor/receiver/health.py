"""The receiver's own health, read by the API and the metrics without locks (plain counters)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ReceiverHealth:
    transport: str = ""
    connected: bool = False
    messages_received: int = 0
    events_received: int = 0
    messages_dropped: int = 0
    broker_disconnects: int = 0
    reconnects: int = 0
    last_event_time: float | None = None
    last_error: str | None = None
    connected_since: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]

"""Why a request was refused: the HTTP status, a metrics reason and a message for the sender."""

from __future__ import annotations


class RejectedError(Exception):
    """Raised by the request-checking functions; the app turns it into the answer.

    ``reason`` labels ``radix_collector_events_rejected_total``; ``events`` is how many
    events the request carried (1 when the body could not be read as events)."""

    def __init__(self, status: int, reason: str, message: str, *,
                 headers: dict[str, str] | None = None, events: int = 1) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.headers = headers or {}
        self.events = events


def malformed(message: str) -> RejectedError:
    return RejectedError(400, "malformed", message)


def too_large(message: str, events: int = 1) -> RejectedError:
    return RejectedError(413, "too_large", message, events=events)

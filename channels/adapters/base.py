"""The adapter interface: submit a refund leg, query it, parse and verify an inbound notification.

Results are normalised; the channel's raw code and message are kept beside them.
"""

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    PROCESSING = "PROCESSING"  # accepted, the answer comes later
    NOT_FOUND = "NOT_FOUND"  # the channel has no such refund: only then may it be submitted again
    UNKNOWN = "UNKNOWN"  # no answer (timeout, connection lost): query, never resubmit


class FailureReason(StrEnum):
    ACCOUNT_CLOSED = "ACCOUNT_CLOSED"
    WINDOW_EXPIRED = "WINDOW_EXPIRED"
    CHANNEL_REJECTED = "CHANNEL_REJECTED"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class SubmitRequest:
    refund_no: str  # our serial number for this leg at the channel; stable across attempts
    attempt_id: str
    amount: int
    currency: str
    channel_txn_id: str
    payment_amount: int
    notify_url: str


@dataclass(frozen=True)
class ChannelResult:
    outcome: Outcome
    failure_reason: str = ""
    channel_refund_id: str = ""
    raw_code: str = ""
    raw_message: str = ""


@dataclass(frozen=True)
class Notification:
    refund_no: str
    result: ChannelResult
    notification_id: str = ""


class ChannelError(Exception):
    """A call to a channel went wrong. `permanent` says whether trying again could help."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class InvalidNotification(Exception):
    """An inbound notification that is forged, malformed or unsigned."""


class Adapter:
    def __init__(self, channel):
        self.channel = channel

    def submit(self, request: SubmitRequest) -> ChannelResult:
        raise NotImplementedError

    def query(self, refund_no: str) -> ChannelResult:
        raise NotImplementedError

    def parse_notification(self, body: bytes, headers) -> Notification:
        raise NotImplementedError

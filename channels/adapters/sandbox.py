"""Sandbox channels that behave like their real counterparts (API.md, "Sandbox channels").

The outcome comes from the leg amount's last two digits: 50 fails (account closed), 51 gives
no answer but a later query finds it paid, 52 notifies three times, anything else succeeds.
Notifications are real HTTP POSTs to our own notification endpoint, signed, sent a moment
later from a background thread, as a channel's servers would.
"""

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid

import requests
from django.conf import settings

from ..models import SandboxPayout
from .base import (
    Adapter,
    ChannelError,
    ChannelResult,
    FailureReason,
    InvalidNotification,
    Notification,
    Outcome,
    SubmitRequest,
)

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Sandbox-Signature"


def _secret() -> bytes:
    return settings.SANDBOX_CHANNEL_SECRET.encode()


def sign(body: bytes) -> str:
    return hmac.new(_secret(), body, hashlib.sha256).hexdigest()


class SandboxAdapter(Adapter):
    notify_delay_seconds = 0.3

    def submit(self, request: SubmitRequest) -> ChannelResult:
        if self.channel.dedupes_by_refund_no:
            existing = SandboxPayout.objects.filter(channel_code=self.channel.code, refund_no=request.refund_no).first()
            if existing is not None:
                return self._result(existing, processing=True)
        last_two = request.amount % 100
        failed = last_two == 50
        payout = SandboxPayout.objects.create(
            channel_code=self.channel.code, refund_no=request.refund_no, attempt_id=request.attempt_id,
            channel_refund_id=f"{self.channel.code[:2].upper()}{uuid.uuid4().hex[:20]}", amount=request.amount,
            currency=request.currency, succeeded=not failed, code="ACCOUNT_CLOSED" if failed else "SUCCESS",
        )
        if settings.SANDBOX_SUBMIT_DELAY:
            time.sleep(settings.SANDBOX_SUBMIT_DELAY)  # paid already; the answer is slow to come back
        if last_two == 51:
            # Paid, but the answer is lost on the way back: only a query will tell.
            raise ChannelError(f"{self.channel.code} sandbox: timed out waiting for the answer")
        self._notify_later(request.notify_url, payout, times=3 if last_two == 52 else 1)
        return self._result(payout, processing=True)

    def query(self, refund_no: str) -> ChannelResult:
        payout = SandboxPayout.objects.filter(channel_code=self.channel.code, refund_no=refund_no).order_by("-id").first()
        if payout is None:
            return ChannelResult(outcome=Outcome.NOT_FOUND, raw_code="REFUND_NOT_EXIST", raw_message="no such refund")
        return self._result(payout)

    def parse_notification(self, body: bytes, headers) -> Notification:
        signature = headers.get(SIGNATURE_HEADER, "")
        if not signature or not hmac.compare_digest(signature, sign(body)):
            raise InvalidNotification("bad or missing signature")
        try:
            data = json.loads(body)
            refund_no = str(data["refund_no"])
            status = data["status"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidNotification(f"malformed notification: {exc}") from None
        if status == "SUCCESS":
            result = ChannelResult(Outcome.SUCCEEDED, channel_refund_id=data.get("channel_refund_id", ""),
                                   raw_code="SUCCESS", raw_message=data.get("message", ""))
        elif status == "FAIL":
            code = data.get("code", "")
            reason = code if code in FailureReason.__members__ else FailureReason.CHANNEL_REJECTED
            result = ChannelResult(Outcome.FAILED, failure_reason=reason, channel_refund_id=data.get("channel_refund_id", ""),
                                   raw_code=code, raw_message=data.get("message", ""))
        elif status == "PROCESSING":
            result = ChannelResult(Outcome.PROCESSING, raw_code="PROCESSING")
        else:
            raise InvalidNotification(f"unknown status {status!r}")
        return Notification(refund_no=refund_no, result=result, notification_id=str(data.get("notification_id", "")))

    def _result(self, payout: SandboxPayout, *, processing: bool = False) -> ChannelResult:
        if processing:
            return ChannelResult(Outcome.PROCESSING, channel_refund_id=payout.channel_refund_id, raw_code="ACCEPTED",
                                 raw_message="refund accepted, result will be notified")
        if payout.succeeded:
            return ChannelResult(Outcome.SUCCEEDED, channel_refund_id=payout.channel_refund_id, raw_code="SUCCESS")
        return ChannelResult(Outcome.FAILED, failure_reason=FailureReason.ACCOUNT_CLOSED,
                             channel_refund_id=payout.channel_refund_id, raw_code=payout.code,
                             raw_message="the user's account is closed")

    def _notify_later(self, url: str, payout: SandboxPayout, *, times: int) -> None:
        body = json.dumps({
            "notification_id": uuid.uuid4().hex,
            "refund_no": payout.refund_no,
            "channel_refund_id": payout.channel_refund_id,
            "status": "SUCCESS" if payout.succeeded else "FAIL",
            "code": payout.code,
            "message": "" if payout.succeeded else "the user's account is closed",
            "amount": payout.amount,
        }).encode()
        thread = threading.Thread(target=_deliver, args=(url, body, times, self.notify_delay_seconds), daemon=True)
        thread.start()


def _deliver(url: str, body: bytes, times: int, delay: float) -> None:
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body)}
    time.sleep(delay)
    for _ in range(times):
        for attempt in range(5):  # like a channel, try again a few times if we are unreachable
            try:
                response = requests.post(url, data=body, headers=headers, timeout=10)
                if response.status_code < 500:
                    break
            except requests.RequestException as exc:
                log.info("sandbox notification to %s failed: %s", url, exc)
            time.sleep(0.5 * (attempt + 1))


def adapter_for(channel) -> SandboxAdapter:
    return SandboxAdapter(channel)

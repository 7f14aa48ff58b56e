"""Outbound notifications: the outbox, its signed delivery, retries with backoff, and the sweep.

`webhook_enqueue` writes a WebhookDelivery row inside the caller's transaction, so a notice
exists exactly when the change it reports has committed; the POST happens afterwards in a task,
never inside a transaction (STYLE.md 4). A worker claims a due row with a conditional UPDATE
and checks the row count, so two workers never send it at the same time. Delivery is still at
least once (a worker that dies between the POST and recording it leaves a claim that lapses
and is sent again): receivers de-duplicate on the body's `id`.
"""

import datetime
import hashlib
import hmac
import json
import logging
import time
from functools import partial
from typing import Any

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .models import BalanceShortfall, Merchant, WebhookAttempt, WebhookDelivery

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Refund-Signature"
EXCERPT_CHARS = 500
# A claim lapses after this long. It must outlast the delivery task's hard time limit
# (merchants.tasks.deliver_webhook, 60 s), so the worker that claimed a row is certainly gone
# before the sweep hands the row to another.
CLAIM_LEASE = datetime.timedelta(seconds=120)
SHORTFALL_EVENT = "merchant.insufficient_balance"
# Every event this system sends (refunds/notifications.py writes the refund and coupon ones); the
# admin filters by these instead of a DISTINCT over a big table.
EVENTS = (
    "refund.succeeded", "refund.failed", "refund.rejected", "refund.manual_payout", "coupon.refund", SHORTFALL_EVENT,
)


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, as API.md and the README's receiver say."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def encode_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(dt: datetime.datetime) -> str:
    return timezone.localtime(dt).isoformat()


def webhook_enqueue(
    *,
    merchant: Merchant,
    event: str,
    data: dict[str, Any],
    url: str,
    audience: str = WebhookDelivery.Audience.MERCHANT,
    reference: str = "",
    dedupe_key: str = "",
    schedule: bool = True,
    now: datetime.datetime | None = None,
) -> WebhookDelivery | None:
    """Write a notice to send once the caller's transaction commits (and send it then).

    The body is `{"id", "event", "created_at", "data"}`. Returns None when there is nowhere to
    send it, or when `dedupe_key` was used before: such a notice goes at most once. With
    `schedule=False` the caller sends it (or the sweep will).
    """
    if not url:
        return None
    now = now or timezone.now()
    delivery = WebhookDelivery(
        merchant=merchant, event=event, audience=audience, reference=reference, url=url, dedupe_key=dedupe_key,
        next_attempt_at=now, created_at=now,
    )
    delivery.payload = {"id": str(delivery.event_id), "event": event, "created_at": _iso(now), "data": data}
    if dedupe_key:
        try:
            with transaction.atomic():  # a savepoint: a duplicate must not break the caller's transaction
                delivery.save(force_insert=True)
        except IntegrityError:
            if WebhookDelivery.objects.filter(dedupe_key=dedupe_key).exists():
                return None
            raise
    else:
        delivery.save(force_insert=True)
    if schedule:
        webhook_schedule_on_commit(delivery.pk)
    return delivery


def webhook_schedule_on_commit(delivery_id: int) -> None:
    # robust: the change has committed by then; a broker that is down must not turn it into an
    # error for the caller. The sweep sends what was not scheduled.
    transaction.on_commit(partial(webhook_schedule, delivery_id), robust=True)


def webhook_schedule(delivery_id: int) -> None:
    """Hand a delivery to a worker now (a hint: the row decides whether it is still due)."""
    from .tasks import deliver_webhook

    deliver_webhook.delay(delivery_id)


def _signing_secret(delivery: WebhookDelivery) -> str:
    if delivery.audience == WebhookDelivery.Audience.MARKETING:
        return settings.MARKETING_WEBHOOK_SECRET
    return delivery.merchant.webhook_secret


def _read_excerpt(response: requests.Response, deadline: float) -> str:
    """The start of the answer, for operators: never the whole of a large or endless body."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= EXCERPT_CHARS * 4 or time.monotonic() > deadline:
            break
    return b"".join(chunks).decode("utf-8", errors="replace")[:EXCERPT_CHARS]


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str, str]:
    """POST once, with the timeout; returns (status code or None, response excerpt, error)."""
    timeout = settings.WEBHOOK_TIMEOUT
    deadline = time.monotonic() + timeout
    try:
        # No redirects (a 3xx is a failure, as with the well-known payment webhooks) and a
        # streamed answer, so a huge body is never read.
        with requests.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False,
                           stream=True) as response:
            return response.status_code, _read_excerpt(response, deadline), ""
    except requests.Timeout:
        return None, "", f"no answer within {timeout:g} s"
    except requests.RequestException as exc:
        return None, "", f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - whatever broke (a soft time limit too), record it and retry
        log.exception("webhook POST to %s", url)
        return None, "", f"{type(exc).__name__}: {exc}"


def webhook_deliver(*, delivery_id: int, now: datetime.datetime | None = None) -> str:
    """Send one due delivery once and record the attempt. Returns what happened (for logs, tests).

    Not due, already delivered, or claimed by another worker: nothing happens ("not-due").
    """
    now = now or timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status__in=WebhookDelivery.DUE, next_attempt_at__lte=now
    ).update(status=WebhookDelivery.Status.SENDING, next_attempt_at=now + CLAIM_LEASE, updated_at=timezone.now())
    if claimed != 1:
        return "not-due"
    delivery = WebhookDelivery.objects.select_related("merchant").get(pk=delivery_id)

    secret = _signing_secret(delivery)
    body = encode_body(delivery.payload)
    started = time.monotonic()
    if not secret:
        status_code, excerpt, error = None, "", "no signing secret configured: not sent"
    else:
        # The signature's time is the wall clock (receivers compare it with theirs); `now` only
        # drives the schedule.
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "refund-backoffice-webhooks/1",
            SIGNATURE_HEADER: signature(secret, body, int(time.time())),
            "X-Refund-Event": delivery.event,
            "X-Refund-Event-Id": str(delivery.event_id),
        }
        status_code, excerpt, error = _post(delivery.url, body, headers)
    latency_ms = int((time.monotonic() - started) * 1000)

    delivered = status_code is not None and 200 <= status_code < 300
    if not delivered and not error:
        error = f"HTTP {status_code}"
    attempts = delivery.attempts + 1
    delays = settings.WEBHOOK_RETRY_DELAYS
    if delivered:
        outcome, changes = "delivered", {"status": WebhookDelivery.Status.DELIVERED, "delivered_at": now, "last_error": ""}
    elif attempts > len(delays):
        outcome, changes = "dead", {"status": WebhookDelivery.Status.DEAD, "last_error": error[:500]}
        log.warning("webhook %s (%s) to %s is dead after %s attempts: %s", delivery.pk, delivery.event, delivery.url,
                    attempts, error)
    else:
        outcome = "failed"
        changes = {
            "status": WebhookDelivery.Status.FAILED, "last_error": error[:500],
            "next_attempt_at": now + datetime.timedelta(seconds=delays[attempts - 1]),
        }
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery, attempted_at=now, status_code=status_code, latency_ms=latency_ms,
            response_excerpt=excerpt[:EXCERPT_CHARS], error=error[:500],
        )
        WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.Status.SENDING).update(
            attempts=F("attempts") + 1, updated_at=timezone.now(), **changes
        )
    return outcome


def webhook_redeliver(*, delivery_id: int, by: str, now: datetime.datetime | None = None) -> bool:
    """An operator sends a delivery again, whatever its state (dead, delivered, waiting), with a
    fresh set of retries. One being sent right now is left alone. Returns whether it was reset."""
    now = now or timezone.now()
    with transaction.atomic():
        reset = (
            WebhookDelivery.objects.filter(pk=delivery_id)
            .exclude(status=WebhookDelivery.Status.SENDING)
            .update(status=WebhookDelivery.Status.PENDING, attempts=0, next_attempt_at=now, delivered_at=None,
                    updated_at=timezone.now())
        )
        if reset:
            log.info("webhook %s redelivered by %s", delivery_id, by)
            webhook_schedule_on_commit(delivery_id)
    return bool(reset)


def webhook_sweep(*, now: datetime.datetime | None = None, limit: int = 500) -> int:
    """Send again what a lost message left behind: due retries, and claims whose worker died."""
    now = now or timezone.now()
    lapsed = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.SENDING, next_attempt_at__lte=now).update(
        status=WebhookDelivery.Status.FAILED, next_attempt_at=now, updated_at=timezone.now(),
        last_error="the worker stopped during an attempt; the receiver may have had it",
    )
    if lapsed:
        log.warning("%s webhook claim(s) lapsed: sending again", lapsed)
    due = list(
        WebhookDelivery.objects.filter(status__in=WebhookDelivery.DUE, next_attempt_at__lte=now)
        .order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
    )
    for pk in due:
        webhook_schedule(pk)
    return len(due)


def shortfall_notify(shortfall: BalanceShortfall) -> WebhookDelivery | None:
    """Tell a merchant its refund source cannot cover refunds (S21): at most once a day per
    merchant, however many refunds are refused (the dedupe key is unique in the database)."""
    merchant = shortfall.merchant
    day = timezone.localdate(shortfall.created_at)
    return webhook_enqueue(
        merchant=merchant, event=SHORTFALL_EVENT, url=merchant.webhook_url, reference=f"merchant:{merchant.code}",
        dedupe_key=f"{SHORTFALL_EVENT}:{merchant.pk}:{day.isoformat()}",
        data={
            "merchant": merchant.code,
            "account_kind": shortfall.account_kind,
            "currency": shortfall.currency,
            "amount_needed": shortfall.amount,
            "available": shortfall.available,
            "out_refund_no": shortfall.out_refund_no,
            "day": day.isoformat(),
            "message": "Refunds are being refused for insufficient balance: top up the account.",
        },
    )

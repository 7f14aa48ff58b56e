"""What refunds tell the outside world: merchants of outcomes (API.md), marketing of coupons (S17, S22).

Called from refunds/signals.py inside the transaction that made the change, so a notice exists
exactly when the change commits; merchants.webhooks sends it afterwards.
"""

from functools import partial

from django.conf import settings
from django.db import transaction

from merchants import webhooks
from merchants.models import WebhookDelivery

from .models import PaymentPart, Refund, RefundLeg
from .selectors import refund_as_dict

OUTCOME_EVENTS = {
    Refund.Status.SUCCEEDED: "refund.succeeded",
    Refund.Status.FAILED: "refund.failed",
    Refund.Status.REJECTED: "refund.rejected",
    Refund.Status.MANUAL_PAYOUT: "refund.manual_payout",
}
COUPON_EVENT = "coupon.refund"
ACCEPTED = (Refund.Status.APPROVED, Refund.Status.PENDING_REVIEW)


def refund_object(refund: Refund) -> dict:
    """The refund object as the transaction will commit it (the `data` of a refund event)."""
    data = refund_as_dict(refund)
    if refund.status in Refund.RELEASED:
        # refund_reject and refund_cancel cancel the legs still waiting just after the
        # transition, in the same transaction: show them as the commit leaves them.
        waiting = (RefundLeg.Status.PENDING, RefundLeg.Status.QUEUED)
        for leg in data["legs"]:
            if leg["status"] in waiting:
                leg["status"] = RefundLeg.Status.CANCELLED
    return data


def refund_notify_outcome(refund: Refund, status: str, *, schedule: bool = True) -> WebhookDelivery | None:
    """The merchant hears of a refund reaching SUCCEEDED, FAILED, REJECTED or MANUAL_PAYOUT, at the
    refund's notify_url or else the merchant's webhook URL (neither: no notice)."""
    event = OUTCOME_EVENTS.get(status)
    url = refund.notify_url or refund.merchant.webhook_url
    if event is None or not url:
        return None
    return webhooks.webhook_enqueue(
        merchant=refund.merchant, event=event, data=refund_object(refund), url=url,
        reference=f"refund:{refund.pk}", schedule=schedule,
    )


def refund_notify_created(refund: Refund) -> None:
    """A new refund, from post_save (creation goes through no transition).

    Risk may block a refund at once: the merchant hears of the REJECTED as of any other. Its
    legs are inserted after the refund row, so the body is rendered again once committed (a
    rejected refund never changes again, so that is exactly its state at creation) and only
    then is the notice sent.
    An accepted refund that takes a coupon's share tells marketing (S17, S22).
    """
    if refund.status == Refund.Status.REJECTED:
        delivery = refund_notify_outcome(refund, refund.status, schedule=False)
        if delivery is not None:
            transaction.on_commit(partial(_render_then_send, delivery.pk, refund.pk), robust=True)
    elif refund.status in ACCEPTED:
        refund_notify_coupon(refund)


def _render_then_send(delivery_id: int, refund_id) -> None:
    refund = Refund.objects.select_related("payment", "merchant").get(pk=refund_id)
    payload = WebhookDelivery.objects.get(pk=delivery_id).payload
    WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING, attempts=0).update(
        payload={**payload, "data": refund_object(refund)}
    )
    webhooks.webhook_schedule(delivery_id)


def refund_notify_coupon(refund: Refund) -> list[WebhookDelivery]:
    """Marketing owns coupons: it hears that a refund took a coupon's share, which is not given
    back (a used coupon is not returned, S17). Nothing when MARKETING_WEBHOOK_URL is empty."""
    url = settings.MARKETING_WEBHOOK_URL
    shares = {int(part_id): share for part_id, share in (refund.allocation or {}).items() if share}
    if not url or not shares:
        return []
    coupons = PaymentPart.objects.filter(payment_id=refund.payment_id, kind=PaymentPart.Kind.COUPON, pk__in=shares)
    sent = []
    for part in coupons.order_by("position"):
        delivery = webhooks.webhook_enqueue(
            merchant=refund.merchant, event=COUPON_EVENT, url=url, audience=WebhookDelivery.Audience.MARKETING,
            reference=f"refund:{refund.pk}", dedupe_key=f"{COUPON_EVENT}:{refund.pk}:{part.pk}",
            data={
                "coupon_id": part.coupon_id,
                "coupon_share": shares[part.pk],
                "currency": refund.currency,
                "returned": False,
                "merchant": refund.merchant.code,
                "user_id": refund.payment.user_id,
                "out_trade_no": refund.payment.out_trade_no,
                "refund_id": str(refund.pk),
                "out_refund_no": refund.out_refund_no,
                "refund_amount": refund.amount,
                "refund_status": refund.status,
            },
        )
        if delivery is not None:
            sent.append(delivery)
    return sent

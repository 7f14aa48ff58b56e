"""Reads: the refund object as merchants see it (API.md), shared by the API and notifications."""

from django.db.models import Q
from django.utils import timezone

from .models import Payment, Refund, RefundLeg


def _iso(dt):
    return timezone.localtime(dt).isoformat() if dt else None


def leg_as_dict(leg: RefundLeg) -> dict:
    data = {"route": leg.route, "amount": leg.amount, "status": leg.status}
    if leg.is_channel or leg.channel_refund_id:
        data["channel_refund_id"] = leg.channel_refund_id or None
    if leg.failure_reason:
        data["failure_reason"] = leg.failure_reason
    if leg.fallback_reason:
        data["fallback_reason"] = leg.fallback_reason
    return data


def refund_as_dict(refund: Refund, legs: list[RefundLeg] | None = None) -> dict:
    """The public refund object. Pass `legs` when already loaded to save a query."""
    from .services import breakdown

    if legs is None:
        legs = list(refund.legs.all())
    shown = [leg for leg in legs if leg.status != RefundLeg.Status.CANCELLED or refund.status in Refund.RELEASED]
    return {
        "id": str(refund.pk),
        "out_refund_no": refund.out_refund_no,
        "out_trade_no": refund.payment.out_trade_no,
        "amount": refund.amount,
        "currency": refund.currency,
        "direction": refund.direction,
        "source": refund.source,
        "reason": refund.reason,
        "status": refund.status,
        "failure_reason": refund.failure_reason or None,
        "estimated_arrival": refund.estimated_arrival.isoformat() if refund.estimated_arrival else None,
        "breakdown": breakdown(refund, legs),
        "legs": [leg_as_dict(leg) for leg in shown],
        "created_at": _iso(refund.created_at),
        "completed_at": _iso(refund.completed_at),
    }


def payment_as_dict(payment: Payment) -> dict:
    """The public payment object (API.md): what was reported, with what is refunded and refundable."""
    parts = list(payment.parts.select_related("channel"))
    return {
        "merchant": payment.merchant.code,
        "out_trade_no": payment.out_trade_no,
        "amount": payment.amount,
        "currency": payment.currency,
        "user_id": payment.user_id,
        "paid_at": _iso(payment.paid_at),
        "parts": [
            {
                "kind": part.kind,
                "amount": part.amount,
                "channel": part.channel.code if part.channel_id else None,
                "channel_txn_id": part.channel_txn_id or None,
                "coupon_id": part.coupon_id or None,
                "refunded_amount": part.refunded_amount,
                "refundable_amount": part.remaining,
            }
            for part in parts
        ],
        "settlement": {"currency": payment.settlement_currency, "amount": payment.settlement_amount},
        "expires_at": _iso(payment.expires_at),
        "auto_refund_on_expiry": payment.auto_refund_on_expiry,
        "refunded_amount": payment.refunded_amount,
        "refundable_amount": payment.refundable_amount,
        "created_at": _iso(payment.created_at),
    }


def payment_get(*, merchant, out_trade_no: str) -> Payment | None:
    return Payment.objects.select_related("merchant").filter(merchant=merchant, out_trade_no=out_trade_no).first()


def refund_get(*, merchant, refund_id=None, out_refund_no: str | None = None) -> Refund | None:
    """One of the merchant's refunds, by id or by out_refund_no; None when it has no such refund."""
    refunds = Refund.objects.select_related("payment").prefetch_related("legs").filter(merchant=merchant)
    if refund_id is not None:
        refunds = refunds.filter(pk=refund_id)
    if out_refund_no is not None:
        refunds = refunds.filter(out_refund_no=out_refund_no)
    return refunds.first()


def refund_page(
    *, merchant, limit: int, starting_after: Refund | None = None, out_trade_no: str | None = None
) -> tuple[list[Refund], bool]:
    """A page of the merchant's refunds, newest first: (refunds, whether more follow).

    Keyset pagination on (created_at, id), so pages stay stable while refunds are added.
    """
    refunds = Refund.objects.select_related("payment").prefetch_related("legs").filter(merchant=merchant)
    if out_trade_no is not None:
        refunds = refunds.filter(payment__out_trade_no=out_trade_no)
    if starting_after is not None:
        refunds = refunds.filter(
            Q(created_at__lt=starting_after.created_at)
            | Q(created_at=starting_after.created_at, id__lt=starting_after.pk)
        )
    page = list(refunds.order_by("-created_at", "-id")[: limit + 1])
    return page[:limit], len(page) > limit

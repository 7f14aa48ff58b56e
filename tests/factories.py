"""Factories and builders for tests: real rows through the real services."""

import datetime
import itertools

from django.utils import timezone

from channels.models import Channel
from merchants import services as merchant_services
from merchants.models import Account, Merchant
from refunds import services as refund_services
from refunds.services import PartInput

_seq = itertools.count(1)


def merchant(code=None, *, funded: int = 0, currency="CNY", **kwargs) -> Merchant:
    m = merchant_services.merchant_create(code=code or f"M{next(_seq):04d}", name=kwargs.pop("name", "Test merchant"), **kwargs)
    if funded:
        merchant_services.merchant_fund(merchant=m, account_kind=m.refund_source, amount=funded, currency=currency)
    return m


def channel(code="wechat", **kwargs) -> Channel:
    defaults = {
        "wechat": dict(name="WeChat Pay", refund_window_days=365, max_refunds_per_payment=50, dedupes_by_refund_no=True, typical_days_to_arrive=1),
        "alipay": dict(name="Alipay", refund_window_days=365, dedupes_by_refund_no=True, typical_days_to_arrive=1),
        "bank": dict(name="Bank card", refund_window_days=180, dedupes_by_refund_no=False, typical_days_to_arrive=5),
    }.get(code, dict(name=code))
    defaults.update(adapter="sandbox")
    defaults.update(kwargs)
    ch, _ = Channel.objects.update_or_create(code=code, defaults=defaults)
    return ch


def payment(m: Merchant, *, amount=10000, parts=None, out_trade_no=None, paid_at=None, user_id="u-1", **kwargs):
    """A payment, by default all through WeChat. `parts` as (kind, amount[, channel]) tuples."""
    if parts is None:
        channel("wechat")
        parts = [("channel", amount, "wechat")]
    inputs = []
    for p in parts:
        kind, part_amount = p[0], p[1]
        ch = p[2] if len(p) > 2 else ""
        if ch:
            channel(ch) if not Channel.objects.filter(code=ch).exists() else None
        inputs.append(PartInput(kind=kind, amount=part_amount, channel=ch, channel_txn_id=f"txn-{next(_seq)}" if ch else "",
                                coupon_id="C-1" if kind == "coupon" else ""))
    p, _ = refund_services.payment_ingest(
        merchant=m, out_trade_no=out_trade_no or f"T{next(_seq):06d}", amount=amount, user_id=user_id,
        paid_at=paid_at or timezone.now() - datetime.timedelta(days=1), parts=inputs, **kwargs,
    )
    return p


def refund(m: Merchant, p, amount, *, out_refund_no=None, **kwargs):
    r, _ = refund_services.refund_create(
        merchant=m, out_trade_no=p.out_trade_no, out_refund_no=out_refund_no or f"R{next(_seq):06d}",
        amount=amount, actor=f"api:{m.code}", **kwargs,
    )
    return r


def balance(m: Merchant, kind: str, currency="CNY") -> int:
    return Account.objects.filter(merchant=m, kind=kind, currency=currency).values_list("balance", flat=True).first() or 0

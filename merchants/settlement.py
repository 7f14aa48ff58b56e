"""T+1 settlement (S19, S20) and the daily list of merchants short of money (S21)."""

import datetime
import logging

from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from . import services as money
from .models import (
    Account,
    BalanceShortfall,
    LedgerEntry,
    LedgerTransaction,
    Merchant,
    Settlement,
    ShortfallDigest,
)

log = logging.getLogger(__name__)


def _day_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    tz = timezone.get_current_timezone()
    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=tz)
    return start, start + datetime.timedelta(days=1)


def settle_day(*, day: datetime.date) -> list[Settlement]:
    """Move each merchant's collections of `day` from pending settlement to cash.

    Refunds held from pending settlement since then have already taken their share, so at
    most the current pending balance moves. Runs once per merchant, currency and day.
    """
    start, end = _day_bounds(day)
    collected = (
        LedgerEntry.objects.filter(
            transaction__kind=LedgerTransaction.Kind.PAYMENT, transaction__created_at__gte=start,
            transaction__created_at__lt=end, account__kind=Account.Kind.PENDING_SETTLEMENT, amount__gt=0,
        )
        .values("account_id", "account__merchant_id", "currency").annotate(total=Sum("amount"))
    )
    done = []
    for row in collected:
        try:
            done.append(_settle_one(day=day, account_id=row["account_id"], merchant_id=row["account__merchant_id"],
                                    currency=row["currency"], collected=row["total"]))
        except IntegrityError:
            log.info("settlement of merchant %s %s for %s already done", row["account__merchant_id"], row["currency"], day)
    return [s for s in done if s is not None]


@transaction.atomic
def _settle_one(*, day, account_id, merchant_id, currency, collected) -> Settlement | None:
    merchant = Merchant.objects.get(pk=merchant_id)
    pending = Account.objects.select_for_update().get(pk=account_id)
    amount = min(collected, pending.balance)
    settlement = Settlement.objects.create(merchant=merchant, currency=currency, day=day, collected=collected, settled=amount)
    if amount > 0:
        cash = money.merchant_accounts(merchant, currency, [Account.Kind.CASH])[Account.Kind.CASH]
        money.ledger_post(
            kind=LedgerTransaction.Kind.SETTLEMENT,
            lines=[money.Line(pending, -amount), money.Line(cash, amount)],
            reference=f"settlement:{settlement.pk}", description=f"T+1 settlement of {day}", created_by="task:settlement",
        )
    return settlement


def shortfall_digest(*, day: datetime.date) -> list[ShortfallDigest]:
    """Which merchants had refunds refused for insufficient balance on `day`, for operations to chase."""
    start, end = _day_bounds(day)
    rows = (
        BalanceShortfall.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("merchant_id", "currency").annotate(n=Count("id"), total=Sum("amount"))
    )
    digests = []
    for row in rows:
        digest, _ = ShortfallDigest.objects.update_or_create(
            day=day, merchant_id=row["merchant_id"], currency=row["currency"],
            defaults={"refusals": row["n"], "amount_refused": row["total"]},
        )
        digests.append(digest)
    return digests

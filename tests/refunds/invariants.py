"""The ledger's and the refunds' invariants, checked against the database (a fixed number of queries)."""

from collections import defaultdict

from django.db.models import F, Q, Sum

from merchants.models import Account, LedgerEntry, LedgerTransaction
from refunds.models import Payment, PaymentPart, Refund, RefundLeg


def assert_ledger_balanced() -> None:
    """Every transaction sums to zero per currency; every balance is the sum of its entries;
    no merchant (or user) account is below zero."""
    unbalanced = list(
        LedgerEntry.objects.values("transaction_id", "currency").annotate(s=Sum("amount")).exclude(s=0)
    )
    assert not unbalanced, f"unbalanced ledger transactions: {unbalanced}"
    assert not LedgerTransaction.objects.filter(entries__isnull=True).exists(), "a transaction without entries"
    assert not LedgerEntry.objects.exclude(currency=F("account__currency")).exists(), "entry currency != its account's"

    sums = dict(LedgerEntry.objects.values("account_id").annotate(s=Sum("amount")).values_list("account_id", "s"))
    for account in Account.objects.select_related("merchant"):
        entries = sums.get(account.pk, 0)
        assert account.balance == entries, f"{account}: balance {account.balance} != its entries {entries}"
        if account.merchant_id is not None or not account.may_go_negative:
            assert account.balance >= 0, f"{account} is below zero: {account.balance}"


def hold_left(refund: Refund) -> int:
    """What is still held in the merchant's refund_hold account for this refund, per the ledger."""
    return (
        LedgerEntry.objects.filter(
            transaction__reference=f"refund:{refund.pk}", account__kind=Account.Kind.REFUND_HOLD
        ).aggregate(s=Sum("amount"))["s"]
        or 0
    )


def assert_refunds_consistent() -> None:
    """Refunds never sum past a payment; holds are exactly what unfinished refunds still owe."""
    counted = dict(
        Refund.objects.exclude(status__in=Refund.RELEASED)
        .values("payment_id").annotate(s=Sum("amount")).values_list("payment_id", "s")
    )
    for pk, amount, refunded in Payment.objects.values_list("pk", "amount", "refunded_amount"):
        total = counted.get(pk, 0)
        assert total <= amount, f"payment {pk}: refunds {total} > paid {amount}"
        assert refunded == total, f"payment {pk}: refunded_amount {refunded} != its counted refunds {total}"
    parts_refunded = dict(
        PaymentPart.objects.values("payment_id").annotate(s=Sum("refunded_amount")).values_list("payment_id", "s")
    )
    coupon_and_legs = defaultdict(int)
    for payment_id, amount in Refund.objects.exclude(status__in=Refund.RELEASED).values_list("payment_id", "amount"):
        coupon_and_legs[payment_id] += amount
    assert parts_refunded == {pk: coupon_and_legs.get(pk, 0) for pk in parts_refunded}, "parts out of step with refunds"
    assert not PaymentPart.objects.filter(Q(refunded_amount__lt=0) | Q(refunded_amount__gt=F("amount"))).exists()

    held = dict(
        LedgerEntry.objects.filter(account__kind=Account.Kind.REFUND_HOLD)
        .values("transaction__reference").annotate(s=Sum("amount")).values_list("transaction__reference", "s")
    )
    owed = dict(
        RefundLeg.objects.exclude(status__in=[RefundLeg.Status.SUCCEEDED, RefundLeg.Status.CANCELLED])
        .values("refund_id").annotate(s=Sum("hold_amount")).values_list("refund_id", "s")
    )
    expected_hold: dict[tuple[int, str], int] = defaultdict(int)
    for pk, status, merchant_id, currency in Refund.objects.values_list("pk", "status", "merchant_id", "hold_currency"):
        left = held.get(f"refund:{pk}", 0)
        if status in Refund.FINISHED:
            assert left == 0, f"refund {pk} is {status} but {left} is still held"
            continue
        assert left == owed.get(pk, 0), f"refund {pk} ({status}): held {left}, its unpaid legs owe {owed.get(pk, 0)}"
        expected_hold[(merchant_id, currency)] += left
    for account in Account.objects.filter(kind=Account.Kind.REFUND_HOLD):
        expected = expected_hold.get((account.merchant_id, account.currency), 0)
        assert account.balance == expected, f"{account}: {account.balance} held, unfinished refunds owe {expected}"

    # A refund's amount is its legs plus the coupon share that is not returned as money.
    mismatched = [
        (pk, amount, coupon, legs_total)
        for pk, amount, coupon, legs_total in Refund.objects.values_list("pk", "amount", "coupon_not_returned")
        .annotate(legs_total=Sum("legs__amount"))
        if amount != coupon + (legs_total or 0)
    ]
    assert not mismatched, f"refunds whose legs and coupon share do not add up: {mismatched}"


def assert_all_invariants() -> None:
    assert_ledger_balanced()
    assert_refunds_consistent()

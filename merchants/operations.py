"""Merchant operations' use cases: settings changed with a reason, top-ups with a reason.

Every change of a merchant's settings is kept with who, when, before and after: the saving
transaction writes it (refunds/config_audit.py listens to Merchant saves; this app sets the
author and the reason on the instance, as it may not import refunds).
"""

from django.db import transaction

from . import services
from .models import Account, LedgerTransaction, Merchant

# What merchant operations may change on the screen (the rest is the admin's).
SETTINGS_FIELDS = ("status", "refund_source", "fallback_route", "allocation_strategy", "review_threshold")


class OperationRefused(ValueError):
    """The change is not allowed as asked; the message says why."""


def _actor(user) -> str:
    return f"user:{user.get_username()}"


@transaction.atomic
def merchant_settings_update(*, merchant_id, changes: dict, note: str, user) -> Merchant:
    """Change a merchant's refund settings; `note` (why) is required and kept in the history."""
    note = (note or "").strip()
    if not note:
        raise OperationRefused("a note saying why is required for every configuration change")
    unknown = set(changes) - set(SETTINGS_FIELDS)
    if unknown:
        raise OperationRefused(f"not changeable here: {', '.join(sorted(unknown))}")
    merchant = Merchant.objects.select_for_update().get(pk=merchant_id)
    for name, value in changes.items():
        setattr(merchant, name, value)
    merchant.full_clean()
    merchant._config_user, merchant._config_note = user, note
    merchant.save()
    return merchant


@transaction.atomic
def merchant_top_up(
    *, merchant_id, account_kind: str, amount: int, reason: str, user, currency: str = "CNY"
) -> LedgerTransaction:
    """Credit money the merchant sent in (S21) through merchant_fund, with who and why on the entry."""
    reason = (reason or "").strip()
    if not reason:
        raise OperationRefused("a reason is required for a top-up")
    if not isinstance(amount, int) or amount <= 0:
        raise OperationRefused("a top-up is a positive amount")
    if account_kind not in (Account.Kind.CASH, Account.Kind.PENDING_SETTLEMENT):
        raise OperationRefused("a top-up goes to the cash or the pending-settlement account")
    merchant = Merchant.objects.get(pk=merchant_id)
    txn = services.merchant_fund(
        merchant=merchant, account_kind=account_kind, amount=amount, currency=currency, by=_actor(user)
    )
    # merchant_fund writes a generic description; the reason belongs on the same ledger row.
    txn.description = f"top-up of {account_kind}: {reason}"[:255]
    LedgerTransaction.objects.filter(pk=txn.pk).update(description=txn.description)
    return txn

"""Use cases of the merchants app: accounts, the ledger, top-ups, API keys."""

import secrets
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from . import sql
from .models import Account, ApiKey, BalanceShortfall, LedgerEntry, LedgerTransaction, Merchant


class LedgerError(Exception):
    """A posting that would break the ledger's rules (unbalanced, zero line)."""


class InsufficientBalance(Exception):
    """The account cannot cover the debit; the caller's transaction must roll back."""

    def __init__(self, account: Account, needed: int):
        self.account = account
        self.needed = needed
        super().__init__(f"{account} cannot cover {needed}")


@dataclass(frozen=True)
class Line:
    account: Account
    amount: int


def merchant_create(
    *,
    code: str,
    name: str,
    refund_source: str = Merchant.RefundSource.PENDING_SETTLEMENT,
    fallback_route: str = Merchant.FallbackRoute.MANUAL,
    allocation_strategy: str = Merchant.Allocation.PROPORTIONAL,
    webhook_url: str = "",
    review_threshold: int | None = None,
) -> Merchant:
    merchant = Merchant(
        code=code,
        name=name,
        refund_source=refund_source,
        fallback_route=fallback_route,
        allocation_strategy=allocation_strategy,
        webhook_url=webhook_url,
        review_threshold=review_threshold,
    )
    merchant.full_clean()
    merchant.save()
    return merchant


def merchant_accounts(merchant: Merchant, currency: str, kinds: Iterable[str]) -> dict[str, Account]:
    """The merchant's accounts of these kinds in this currency, created when missing."""
    kinds = list(kinds)
    rows = sql.fetch(
        Account,
        f"SELECT {sql.columns(Account)} FROM {sql.table(Account)} WHERE merchant_id = %s AND currency = %s "
        f"AND kind IN ({', '.join(['%s'] * len(kinds))})",
        [merchant.pk, currency, *kinds],
    )
    found = {account.kind: account for account, _ in rows}
    for kind in kinds:
        if kind not in found:
            found[kind] = _get_or_create_account(merchant=merchant, kind=kind, currency=currency)
    return found


def platform_account(kind: str, currency: str, *, user_id: str = "", sub_ledger: str = "") -> Account:
    # The user's platform balance belongs to the user and can never go negative either.
    may_go_negative = kind != Account.Kind.USER_BALANCE
    return _get_or_create_account(
        merchant=None, kind=kind, currency=currency, user_id=user_id, sub_ledger=sub_ledger,
        may_go_negative=may_go_negative,
    )


def _get_or_create_account(*, merchant, kind, currency, user_id="", sub_ledger="", may_go_negative=False) -> Account:
    lookup = {"merchant": merchant, "kind": kind, "currency": currency, "user_id": user_id, "sub_ledger": sub_ledger}
    try:
        with transaction.atomic():
            account, _ = Account.objects.get_or_create(**lookup, defaults={"may_go_negative": may_go_negative})
    except IntegrityError:  # created by a concurrent transaction in between
        account = Account.objects.get(**lookup)
    return account


@dataclass(frozen=True)
class Posting:
    """One balanced ledger transaction to write, for `ledger_post_many`."""

    kind: str
    lines: list[Line]
    reference: str = ""
    description: str = ""
    created_by: str = ""


def ledger_post(
    *, kind: str, lines: list[Line], reference: str = "", description: str = "", created_by: str = ""
) -> LedgerTransaction:
    """Post one balanced transaction and move the account balances with it (see ledger_post_many)."""
    posting = Posting(kind=kind, lines=lines, reference=reference, description=description, created_by=created_by)
    return ledger_post_many([posting])[0]


_MOVE = f"UPDATE {sql.table(Account)} SET balance = balance + %s WHERE id = %s"
# A debit of an account that may not go negative moves it only if it covers the amount.
_DEBIT_COVERED = _MOVE + " AND balance >= %s"


def ledger_post_many(postings: list[Posting]) -> list[LedgerTransaction]:
    """Post balanced transactions and move the account balances with them, each account once.

    Debits of accounts that may not go negative are conditional UPDATEs (`balance >= amount`),
    sent last, after the ledger rows: when one cannot be covered, InsufficientBalance is raised
    and the caller's transaction must roll back (every caller runs this inside one). Accounts
    are updated in primary-key order, each by its net change over all the postings, so a use
    case that books several movements (a hold, and at once its payment to the user's balance)
    still takes each row lock once and in the same order as every other posting: two
    transactions can never deadlock on accounts.
    """
    per_account: dict[int, int] = defaultdict(int)
    accounts: dict[int, Account] = {}
    for posting in postings:
        totals: dict[str, int] = defaultdict(int)
        for line in posting.lines:
            if line.amount == 0:
                raise LedgerError("a ledger line cannot be zero")
            totals[line.account.currency] += line.amount
            per_account[line.account.pk] += line.amount
            accounts[line.account.pk] = line.account
        unbalanced = {c: t for c, t in totals.items() if t != 0}
        if unbalanced:
            raise LedgerError(f"unbalanced posting: {unbalanced}")

    # The ledger rows first, the balances last: a merchant's account rows are shared by all its
    # refunds, so their row locks (taken by the UPDATEs below) are held from those UPDATEs to
    # COMMIT only, not also while the ledger INSERTs are built and sent. If a debit cannot be
    # covered these rows are already written: the caller's transaction rolls back.
    txns = [
        LedgerTransaction(
            kind=p.kind, reference=p.reference, description=p.description[:255], created_by=p.created_by[:100]
        )
        for p in postings
    ]
    sql.insert(txns)
    sql.insert([
        LedgerEntry(transaction=txn, account=ln.account, amount=ln.amount, currency=ln.account.currency)
        for txn, p in zip(txns, postings, strict=True)
        for ln in p.lines
    ])
    for pk in sorted(per_account):
        delta = per_account[pk]
        if delta == 0:
            continue
        account = accounts[pk]
        if delta < 0 and not account.may_go_negative:
            moved = sql.execute(_DEBIT_COVERED, [delta, pk, -delta])
        else:
            moved = sql.execute(_MOVE, [delta, pk])
        if moved != 1:
            raise InsufficientBalance(account, -delta)
    return txns


@transaction.atomic
def merchant_fund(*, merchant: Merchant, account_kind: str, amount: int, currency: str = "CNY", by: str = "") -> LedgerTransaction:
    """A top-up: money the merchant sends in, credited to its cash or pending-settlement account."""
    if amount <= 0:
        raise ValueError("a top-up must be a positive amount")
    if account_kind not in (Account.Kind.CASH, Account.Kind.PENDING_SETTLEMENT):
        raise ValueError("a top-up goes to the cash or the pending-settlement account")
    target = merchant_accounts(merchant, currency, [account_kind])[account_kind]
    source = platform_account(Account.Kind.TOP_UPS, currency)
    return ledger_post(
        kind=LedgerTransaction.Kind.TOP_UP,
        lines=[Line(source, -amount), Line(target, amount)],
        reference=f"merchant:{merchant.code}",
        description=f"top-up of {account_kind}",
        created_by=by,
    )


def shortfall_record(*, merchant: Merchant, account: Account, amount: int, out_refund_no: str = "") -> BalanceShortfall:
    """Remember a refusal for insufficient balance, outside the refused transaction (S21)."""
    available = Account.objects.filter(pk=account.pk).values_list("balance", flat=True).first() or 0
    return BalanceShortfall.objects.create(
        merchant=merchant, account_kind=account.kind, currency=account.currency, amount=amount,
        available=available, out_refund_no=out_refund_no,
    )


def api_key_create(*, merchant: Merchant, scope: str, name: str = "") -> tuple[ApiKey, str]:
    """Create a key; returns the row and the raw key, which is never stored and shown once."""
    if scope not in ApiKey.Scope.values:
        raise ValueError(f"unknown scope {scope!r}")
    raw = f"rk_{'live' if scope == ApiKey.Scope.REFUNDS else 'pay'}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        merchant=merchant, scope=scope, prefix=raw[:16], key_hash=ApiKey.hash_key(raw), name=name
    )
    return key, raw

"""`fund_merchant CODE --account cash|pending_settlement --amount N [--currency CNY]`: a top-up."""

import getpass

from django.core.management.base import BaseCommand, CommandError

from merchants import services
from merchants.models import Account, Merchant
from merchants.money import format_money

FUNDABLE = (Account.Kind.CASH, Account.Kind.PENDING_SETTLEMENT)


class Command(BaseCommand):
    help = "Credit a merchant's cash or pending-settlement account through the ledger (a top-up)."

    def add_arguments(self, parser):
        parser.add_argument("code", help="The merchant's code.")
        parser.add_argument("--account", required=True, choices=[str(k) for k in FUNDABLE])
        parser.add_argument("--amount", required=True, type=int, help="Minor units (fen, cents), e.g. 100000 = 1,000.00.")
        parser.add_argument("--currency", default="CNY", help="ISO 4217 code (default CNY).")

    def handle(self, *args, **options):
        merchant = Merchant.objects.filter(code=options["code"]).first()
        if merchant is None:
            raise CommandError(f"no merchant with code {options['code']!r}")
        account_kind, amount = options["account"], options["amount"]
        if account_kind not in FUNDABLE:
            raise CommandError(f"--account must be one of {', '.join(FUNDABLE)}")
        if amount <= 0:
            raise CommandError("--amount must be a positive integer of minor units")
        currency = options["currency"].strip().upper()
        if len(currency) != 3 or not currency.isalpha():
            raise CommandError(f"--currency must be an ISO 4217 code, not {options['currency']!r}")
        try:
            txn = services.merchant_fund(
                merchant=merchant, account_kind=account_kind, amount=amount, currency=currency,
                by=f"command:fund_merchant:{_operator()}",
            )
        except ValueError as refused:
            raise CommandError(str(refused)) from None
        balance = Account.objects.get(merchant=merchant, kind=account_kind, currency=currency).balance
        self.stdout.write(
            f"Credited {format_money(amount, currency)} to {merchant.code}'s {account_kind} account "
            f"(ledger transaction #{txn.pk})."
        )
        self.stdout.write(f"New balance: {format_money(balance, currency)} ({balance} minor units)")


def _operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers: the top-up still goes through
        return "unknown"

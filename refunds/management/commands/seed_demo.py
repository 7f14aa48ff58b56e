"""`seed_demo`: demo merchants, the sandbox channels, payments of every shape, refunds in every
status and one login per role. Idempotent: a second run finds everything in place and changes nothing.

Everything goes through the services, so the ledger, the holds and the timelines are the
real thing. Numbers are stable ("DEMO-T-001", "DEMO-R-001") and the services are idempotent
on them; a state change (submit, fail, reject, cancel) is made only while the refund is still
in the state it starts from.
"""

import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from channels.models import Channel
from merchants import services as merchant_services
from merchants.models import Account, ApiKey, FxRate, LedgerTransaction, Merchant
from merchants.money import format_money
from refunds import roles, services
from refunds.models import Payment, PaymentPart, Refund, RefundLeg
from refunds.services import PartInput

PASSWORD = "demo"

CHANNELS = {
    "wechat": dict(name="WeChat Pay", adapter="sandbox", refund_window_days=365, max_refunds_per_payment=50,
                   dedupes_by_refund_no=True, typical_days_to_arrive=1),
    "alipay": dict(name="Alipay", adapter="sandbox", refund_window_days=365, dedupes_by_refund_no=True,
                   typical_days_to_arrive=1),
    "bank": dict(name="Bank card", adapter="sandbox", refund_window_days=180, dedupes_by_refund_no=False,
                 typical_days_to_arrive=5),
}

MERCHANTS = {
    "DEMO1": dict(name="Demo Coffee", refund_source=Merchant.RefundSource.PENDING_SETTLEMENT,
                  fallback_route=Merchant.FallbackRoute.MANUAL, allocation_strategy=Merchant.Allocation.PROPORTIONAL,
                  review_threshold=50000),
    "DEMO2": dict(name="Demo Books", refund_source=Merchant.RefundSource.CASH,
                  fallback_route=Merchant.FallbackRoute.BALANCE, allocation_strategy=Merchant.Allocation.COUPON_FIRST),
}
FUNDING = 1_000_000  # CNY 10,000.00 into each merchant's refund source

# username -> group; the groups and their permissions are refunds/roles.py's matrix (made by
# the roles migration), so the demo logins get exactly what a real member of the role gets.
ROLES: dict[str, str] = roles.DEMO_USERS


class Command(BaseCommand):
    help = "Idempotent demo data: merchants, sandbox channels, payments, refunds in every status, one login per role."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force", action="store_true",
            help=f"Run even though DEBUG is off. The demo logins' password is {PASSWORD!r}: never on a real installation.",
        )

    def handle(self, *args, **options):
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "seed_demo refused: DEBUG is off, so this may be a real installation, and seed_demo adds staff "
                f"logins whose password is {PASSWORD!r}. Run it with DEBUG=1, or add --force if this is a demo."
            )
        self.now = timezone.now()
        with transaction.atomic():
            users = self._roles()
            self._channels()
            demo1, demo2 = self._merchants()
            self._fx_rates()
            self._demo1(demo1, users)
            self._demo2(demo2)
            new_keys = self._api_keys(demo1, demo2)
        self._summary([demo1, demo2], new_keys)

    # -- logins and groups

    def _roles(self) -> dict:
        roles.sync()  # adds what is missing; never takes away what an admin granted
        User = get_user_model()
        users = {}
        for username, group_name in ROLES.items():
            group = Group.objects.get(name=group_name)
            user, created = User.objects.get_or_create(
                username=username,
                defaults={"is_staff": group_name in roles.STAFF_ROLES, "is_superuser": username == "admin",
                          "email": f"{username}@demo.invalid"},
            )
            if created:
                user.set_password(PASSWORD)
                user.save(update_fields=["password"])
            user.groups.add(group)
            users[username] = user
        return users

    # -- configuration

    def _channels(self) -> None:
        for code, config in CHANNELS.items():
            # get_or_create: an operator's later change to a demo channel survives a rerun.
            Channel.objects.get_or_create(code=code, defaults=config)

    def _merchants(self) -> list[Merchant]:
        merchants = []
        for code, config in MERCHANTS.items():
            merchant = Merchant.objects.filter(code=code).first()
            if merchant is None:
                merchant = merchant_services.merchant_create(code=code, **config)
            funded = LedgerTransaction.objects.filter(
                kind=LedgerTransaction.Kind.TOP_UP, reference=f"merchant:{code}"
            ).exists()
            if not funded:
                merchant_services.merchant_fund(
                    merchant=merchant, account_kind=merchant.refund_source, amount=FUNDING, by="seed_demo"
                )
            merchants.append(merchant)
        return merchants

    def _fx_rates(self) -> None:
        FxRate.objects.get_or_create(
            day=timezone.localdate(self.now), base="USD", quote="CNY", defaults={"rate": Decimal("7.10000000")}
        )

    # -- payments and refunds

    def _payment(self, merchant: Merchant, out_trade_no: str, parts: list[PartInput], *, days_ago: int = 2,
                 user_id: str = "demo-user-1", **kwargs) -> Payment:
        existing = Payment.objects.filter(merchant=merchant, out_trade_no=out_trade_no).first()
        if existing is not None:
            # paid_at is relative to the first run: reporting it again would be a different payment.
            return existing
        payment, _ = services.payment_ingest(
            merchant=merchant, out_trade_no=out_trade_no, amount=sum(p.amount for p in parts), user_id=user_id,
            paid_at=self.now - datetime.timedelta(days=days_ago), parts=parts, **kwargs,
        )
        return payment

    def _refund(self, merchant: Merchant, payment: Payment, out_refund_no: str, amount: int, *, reason: str,
                user=None, **kwargs) -> Refund:
        actor = f"user:{user.get_username()}" if user is not None else f"api:{merchant.code}"
        refund, _ = services.refund_create(
            merchant=merchant, out_trade_no=payment.out_trade_no, out_refund_no=out_refund_no, amount=amount,
            actor=actor, reason=reason, user=user, **kwargs,
        )
        return refund

    @staticmethod
    def _status(refund: Refund) -> str:
        return Refund.objects.values_list("status", flat=True).get(pk=refund.pk)

    def _submit(self, refund: Refund) -> None:
        """Hand the queued channel legs to their channel, as dispatch would."""
        if self._status(refund) != Refund.Status.APPROVED:
            return
        legs = refund.legs.filter(status=RefundLeg.Status.QUEUED).exclude(route__in=RefundLeg.INTERNAL_ROUTES)
        for leg_id in legs.values_list("pk", flat=True):
            services.leg_submit(leg_id=leg_id, by="task:seed_demo", reason="submitted to the sandbox channel")

    def _fail(self, refund: Refund, failure_reason: str) -> None:
        if self._status(refund) != Refund.Status.PROCESSING:
            return
        for leg_id in refund.legs.filter(status=RefundLeg.Status.PROCESSING).values_list("pk", flat=True):
            services.leg_record_failure(
                leg_id=leg_id, by="channel:sandbox", failure_reason=failure_reason, reason="the channel refused the refund"
            )

    def _demo1(self, m: Merchant, users: dict) -> None:
        """Pending settlement, manual fallback, proportional, review above CNY 500.00."""
        channel = PaymentPart.Kind.CHANNEL
        wechat = self._payment(m, "DEMO-T-001", [PartInput(channel, 10000, "wechat", "DEMO-WX-001")])
        alipay = self._payment(m, "DEMO-T-002", [PartInput(channel, 20000, "alipay", "DEMO-ALI-002")])
        bank = self._payment(m, "DEMO-T-003", [PartInput(channel, 30000, "bank", "DEMO-BANK-003")], user_id="demo-user-2")
        mixed = self._payment(m, "DEMO-T-004", [
            PartInput(channel, 80000, "wechat", "DEMO-WX-004"),
            PartInput(PaymentPart.Kind.BALANCE, 10000),
            PartInput(PaymentPart.Kind.COUPON, 10000, coupon_id="DEMO-COUPON-10"),
        ], user_id="demo-user-3")
        existing = Payment.objects.filter(merchant=m, out_trade_no="DEMO-T-005").first()
        legacy = existing or services.payment_import_legacy(
            merchant=m, out_trade_no="DEMO-T-005", amount_yuan=Decimal("128.80"), channel="wechat",
            channel_txn_id="DEMO-WX-LEGACY-005", user_id="demo-user-4", paid_at=self.now - datetime.timedelta(days=60),
        )[0]
        old = self._payment(m, "DEMO-T-006", [PartInput(channel, 15000, "wechat", "DEMO-WX-006")], days_ago=400,
                            user_id="demo-user-5")
        self._payment(
            m, "DEMO-T-007", [PartInput(channel, 9900, "wechat", "DEMO-WX-007")], days_ago=30, user_id="demo-user-6",
            expires_at=self.now - datetime.timedelta(days=1), auto_refund_on_expiry=True,
        )
        usd = self._payment(
            m, "DEMO-T-008", [PartInput(channel, 5000, "wechat", "DEMO-WX-008")], user_id="demo-user-7",
            currency="USD", settlement_currency="CNY", settlement_amount=35500,
        )
        to_reject = self._payment(m, "DEMO-T-009", [PartInput(channel, 80000, "alipay", "DEMO-ALI-009")],
                                  user_id="demo-user-8")
        four_eyes = self._payment(m, "DEMO-T-010", [PartInput(channel, 70000, "alipay", "DEMO-ALI-010")],
                                  user_id="demo-user-9")

        self._refund(m, wechat, "DEMO-R-001", 3000, reason="one item out of stock")  # APPROVED
        self._submit(self._refund(m, alipay, "DEMO-R-002", 20000, reason="order cancelled"))  # PROCESSING
        failed = self._refund(m, bank, "DEMO-R-003", 12350, reason="damaged in transit")
        self._submit(failed)
        self._fail(failed, "ACCOUNT_CLOSED")  # FAILED (a sandbox leg ending in 50: account closed)
        # PENDING_REVIEW: above the threshold, asked by an agent, so the supervisor may approve it.
        self._refund(m, mixed, "DEMO-R-004", 60000, reason="customer complaint: wrong size",
                     user=users["agent"], source=Refund.Source.CUSTOMER_SERVICE)
        cancelled = self._refund(m, legacy, "DEMO-R-005", 2880, reason="customer changed their mind")
        if self._status(cancelled) == Refund.Status.APPROVED:
            services.refund_cancel(refund_id=cancelled.pk, by=f"api:{m.code}", reason="the customer kept the item")
        # MANUAL_PAYOUT: WeChat's 365-day window has passed and this merchant falls back to manual payout.
        self._refund(m, old, "DEMO-R-006", 15000, reason="warranty return")
        self._refund(m, usd, "DEMO-R-007", 2000, reason="partial refund, paid in USD")  # APPROVED, held in CNY
        rejected = self._refund(m, to_reject, "DEMO-R-008", 60000, reason="goods not received",
                                user=users["agent"], source=Refund.Source.CUSTOMER_SERVICE)
        if self._status(rejected) == Refund.Status.PENDING_REVIEW:
            services.refund_reject(refund_id=rejected.pk, by="user:supervisor", user=users["supervisor"],
                                   reason="the courier confirms delivery")
        # PENDING_REVIEW asked by the supervisor: four eyes, so the supervisor cannot approve it.
        self._refund(m, four_eyes, "DEMO-R-009", 55000, reason="goodwill gesture", user=users["supervisor"],
                     source=Refund.Source.CUSTOMER_SERVICE)

    def _demo2(self, m: Merchant) -> None:
        """Cash account, balance fallback, coupon first."""
        channel = PaymentPart.Kind.CHANNEL
        mixed = self._payment(m, "DEMO-T-101", [
            PartInput(channel, 7000, "wechat", "DEMO-WX-101"),
            PartInput(PaymentPart.Kind.BALANCE, 2000),
            PartInput(PaymentPart.Kind.COUPON, 1000, coupon_id="DEMO-COUPON-5"),
        ], user_id="demo-user-21")
        alipay = self._payment(m, "DEMO-T-102", [PartInput(channel, 4200, "alipay", "DEMO-ALI-102")], user_id="demo-user-22")
        old = self._payment(m, "DEMO-T-103", [PartInput(channel, 6600, "wechat", "DEMO-WX-103")], days_ago=400,
                            user_id="demo-user-23")
        self._payment(m, "DEMO-T-104", [PartInput(channel, 18800, "bank", "DEMO-BANK-104")], user_id="demo-user-24")

        # SUCCEEDED at once: to the user's platform balance (the coupon share is not returned as money).
        self._refund(m, mixed, "DEMO-R-101", 4000, reason="late delivery", direction=Refund.Direction.BALANCE)
        self._refund(m, alipay, "DEMO-R-102", 4200, reason="duplicate order")  # APPROVED
        # SUCCEEDED: the window has passed and this merchant falls back to the user's balance.
        self._refund(m, old, "DEMO-R-103", 6600, reason="return after a year")

    def _api_keys(self, demo1: Merchant, demo2: Merchant) -> list[tuple[Merchant, ApiKey, str]]:
        wanted = [(demo1, ApiKey.Scope.REFUNDS), (demo1, ApiKey.Scope.PAYMENTS), (demo2, ApiKey.Scope.REFUNDS)]
        created = []
        for merchant, scope in wanted:
            if ApiKey.objects.filter(merchant=merchant, scope=scope, name="demo").exists():
                continue
            key, raw = merchant_services.api_key_create(merchant=merchant, scope=scope, name="demo")
            created.append((merchant, key, raw))
        return created

    # -- what there is now

    def _summary(self, merchants: list[Merchant], new_keys: list) -> None:
        out = self.stdout.write
        out("Demo data is in place.")
        out("")
        out("Merchants:")
        for m in merchants:
            balances = Account.objects.filter(merchant=m).order_by("currency", "kind")
            money = ", ".join(f"{a.kind} {format_money(a.balance, a.currency)}" for a in balances)
            out(f"  {m.code} {m.name} (source {m.refund_source}, fallback {m.fallback_route}, "
                f"{m.allocation_strategy}): {money}")
        counts = dict(
            Refund.objects.filter(merchant__in=merchants).values_list("status").annotate(n=Count("pk")).order_by()
        )
        out("Refunds: " + ", ".join(f"{status} {counts.get(status, 0)}" for status in Refund.Status.values))
        out("Channels: " + ", ".join(Channel.objects.filter(code__in=CHANNELS).values_list("code", flat=True)))
        if new_keys:
            out("")
            out("API keys, shown only now (only their hashes are stored):")
            for merchant, key, raw in new_keys:
                out(f"  {merchant.code} {key.scope}: {raw}")
        else:
            out("API keys: the demo keys exist already (make another with create_api_key CODE --scope ...).")
        out("")
        out(f"Demo logins at {settings.PUBLIC_BASE_URL}/ (password {PASSWORD!r}):")
        for username, group in ROLES.items():
            out(f"  {username:<11} {group}")

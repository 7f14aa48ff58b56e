import datetime
import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db.models import Sum
from django.utils import timezone

from channels.models import Channel
from merchants.models import Account, ApiKey, FxRate, LedgerEntry, LedgerTransaction, Merchant
from refunds.models import Payment, PaymentPart, Refund, RefundEvent, RefundLeg

pytestmark = pytest.mark.django_db

User = get_user_model()
ROLES = {
    "agent": "Customer service agent",
    "supervisor": "Customer service supervisor",
    "finance": "Finance",
    "ops": "Merchant operations",
    "auditor": "Auditor",
    "admin": "Admin",
}


def seed(**options) -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out, **options)
    return out.getvalue()


def snapshot() -> dict:
    models = [
        Merchant, Account, LedgerTransaction, LedgerEntry, ApiKey, FxRate, Channel, Payment, PaymentPart, Refund,
        RefundLeg, RefundEvent, User, Group,
    ]
    return {
        "counts": {m.__name__: m.objects.count() for m in models},
        "statuses": dict(Refund.objects.values_list("out_refund_no", "status")),
        "legs": sorted(RefundLeg.objects.values_list("refund__out_refund_no", "route", "status")),
        "balances": sorted(Account.objects.values_list("kind", "currency", "user_id", "sub_ledger", "balance")),
        "refunded": dict(Payment.objects.values_list("out_trade_no", "refunded_amount")),
        "passwords": dict(User.objects.values_list("username", "password")),
        "group_permissions": {g.name: g.permissions.count() for g in Group.objects.all()},
    }


def test_refused_when_debug_is_off():
    with pytest.raises(CommandError, match="DEBUG is off"):
        seed()
    assert not Merchant.objects.exists()
    assert not User.objects.exists()


def test_runs_when_debug_is_on(settings):
    settings.DEBUG = True
    assert "Demo data is in place." in seed()
    assert Merchant.objects.filter(code__startswith="DEMO").count() >= 2


def test_force_runs_it_with_debug_off():
    output = seed(force=True)
    assert Refund.objects.exists()
    # the demo logins close the summary
    assert output.rstrip().splitlines()[-len(ROLES):] == [
        f"  {username:<11} {group}" for username, group in ROLES.items()
    ]


def test_second_run_changes_nothing():
    seed(force=True)
    before = snapshot()

    output = seed(force=True)

    assert snapshot() == before
    assert "the demo keys exist already" in output


def test_refunds_in_every_public_status():
    seed(force=True)

    statuses = set(Refund.objects.values_list("status", flat=True))
    assert statuses == set(Refund.Status.values)
    assert Refund.objects.get(out_refund_no="DEMO-R-003").failure_reason == "ACCOUNT_CLOSED"
    manual = Refund.objects.get(status=Refund.Status.MANUAL_PAYOUT)
    assert manual.legs.get().fallback_reason == "WINDOW_EXPIRED"
    succeeded_by_balance = Refund.objects.get(out_refund_no="DEMO-R-101")
    assert succeeded_by_balance.status == Refund.Status.SUCCEEDED
    assert succeeded_by_balance.direction == Refund.Direction.BALANCE


def test_every_refund_is_balanced_in_the_ledger():
    seed(force=True)

    sums = LedgerEntry.objects.values("transaction_id", "currency").annotate(total=Sum("amount"))
    assert all(row["total"] == 0 for row in sums)
    for account in Account.objects.all():
        assert account.balance == (account.entries.aggregate(s=Sum("amount"))["s"] or 0)


def test_payments_of_every_shape():
    seed(force=True)
    now = timezone.now()

    for code in ("wechat", "alipay", "bank"):
        assert Payment.objects.filter(parts__channel__code=code).exists()
    mixed = Payment.objects.get(out_trade_no="DEMO-T-004")
    assert sorted(mixed.parts.values_list("kind", flat=True)) == ["balance", "channel", "coupon"]
    assert Payment.objects.get(out_trade_no="DEMO-T-005").record_version == Payment.RecordVersion.LEGACY_V1
    assert Payment.objects.get(out_trade_no="DEMO-T-006").paid_at < now - datetime.timedelta(days=400)
    voucher = Payment.objects.get(out_trade_no="DEMO-T-007")
    assert voucher.auto_refund_on_expiry and voucher.expires_at < now
    usd = Payment.objects.get(out_trade_no="DEMO-T-008")
    assert (usd.currency, usd.settlement_currency) == ("USD", "CNY")
    assert FxRate.objects.filter(day=timezone.localdate(), base="USD", quote="CNY").exists()


def test_sandbox_channels_are_configured():
    seed(force=True)

    config = {
        c.code: (c.adapter, c.refund_window_days, c.max_refunds_per_payment, c.dedupes_by_refund_no,
                 c.typical_days_to_arrive)
        for c in Channel.objects.all()
    }
    assert config == {
        "wechat": ("sandbox", 365, 50, True, 1),
        "alipay": ("sandbox", 365, None, True, 1),
        "bank": ("sandbox", 180, None, False, 5),
    }


def test_one_login_per_role_with_the_demo_password():
    seed(force=True)

    for username, group in ROLES.items():
        user = User.objects.get(username=username)
        assert user.check_password("demo")
        # the model admin is for configuration and auditing (refunds/roles.py STAFF_ROLES)
        assert user.is_staff == (group in {"Finance", "Merchant operations", "Auditor", "Admin"})
        assert user.is_superuser == (username == "admin")
        assert list(user.groups.values_list("name", flat=True)) == [group]


def test_auditor_may_only_view():
    seed(force=True)

    codenames = set(Group.objects.get(name="Auditor").permissions.values_list("codename", flat=True))
    assert codenames
    assert all(c.startswith("view_") for c in codenames)
    assert {"view_refund", "view_ledgerentry", "view_channel"} <= codenames


def test_customer_service_reviews():
    seed(force=True)

    may_review = {u.username for u in User.objects.all() if u.has_perm("refunds.review_refund")}
    assert may_review == {"agent", "supervisor", "admin"}
    # nobody edits a refund in a form: every change is a transition through a service
    assert {u.username for u in User.objects.all() if u.has_perm("refunds.change_refund")} == {"admin"}

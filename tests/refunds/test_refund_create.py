"""refund_create (the issue's create_refund) and the use cases around it, rule by rule, to the fen."""

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from merchants import services as money
from merchants.models import Account, BalanceShortfall, FxRate, LedgerEntry, LedgerTransaction, Merchant
from refunds import errors
from refunds import services as svc
from refunds.models import Payment, PaymentPart, Refund, RefundEvent, RefundLeg
from tests import factories as f
from tests.refunds.invariants import assert_all_invariants, hold_left

pytestmark = pytest.mark.django_db

PENDING = Account.Kind.PENDING_SETTLEMENT
CASH = Account.Kind.CASH
HOLD = Account.Kind.REFUND_HOLD
MIXED = [("channel", 8000, "wechat"), ("balance", 1000), ("coupon", 1000)]  # 10000 paid, the API's example


@pytest.fixture(autouse=True)
def _channels(db):
    f.channel("wechat")
    f.channel("alipay")


@pytest.fixture(autouse=True)
def _invariants_hold_after_each_test(db):
    yield
    assert_all_invariants()


def create(m: Merchant, p: Payment, amount, out_refund_no="R1", **kwargs) -> tuple[Refund, bool]:
    return svc.refund_create(
        merchant=m, out_trade_no=p.out_trade_no, out_refund_no=out_refund_no, amount=amount, actor=f"api:{m.code}",
        **kwargs,
    )


def legs(refund: Refund) -> list[tuple[str, int, str]]:
    return [(leg.route, leg.amount, leg.status) for leg in refund.legs.order_by("id")]


def leg_on(refund: Refund, route: str) -> RefundLeg:
    return refund.legs.get(route=route)


def reload(obj):
    return type(obj).objects.get(pk=obj.pk)


def platform_balance(kind: str, currency="CNY", **lookup) -> int:
    return Account.objects.filter(merchant=None, kind=kind, currency=currency, **lookup).values_list(
        "balance", flat=True
    ).first() or 0


def user_balance(user_id="u-1", currency="CNY") -> int:
    return platform_balance(Account.Kind.USER_BALANCE, currency, user_id=user_id)


def settle(m: Merchant, amount: int, currency="CNY") -> None:
    """Move collections to the cash account, as T+1 settlement does (S19)."""
    accounts = money.merchant_accounts(m, currency, [PENDING, CASH])
    money.ledger_post(
        kind=LedgerTransaction.Kind.SETTLEMENT, lines=[money.Line(accounts[PENDING], -amount), money.Line(accounts[CASH], amount)]
    )


def breakdown(refund: Refund) -> dict[str, int]:
    return svc.breakdown(refund, list(refund.legs.all()))


# --- amount ------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [0, -1, -3000, 12.5, 3000.0, "3000", Decimal("30.00"), True, None])
def test_amount_that_is_not_a_positive_integer_is_invalid(amount):
    m = f.merchant()
    p = f.payment(m, amount=10000)
    with pytest.raises(errors.InvalidAmount) as exc:
        create(m, p, amount)
    assert exc.value.code == "INVALID_AMOUNT"
    assert not Refund.objects.exists()
    assert reload(p).refundable_amount == 10000
    assert f.balance(m, PENDING) == 10000


def test_one_fen_is_a_valid_refund():
    m = f.merchant()
    p = f.payment(m, amount=10000)
    refund, created = create(m, p, 1)
    assert created and refund.amount == 1
    assert legs(refund) == [("wechat", 1, "QUEUED")]
    assert f.balance(m, PENDING) == 9999
    assert f.balance(m, HOLD) == 1


# --- never past the refundable amount ----------------------------------------------------------


def test_refunds_up_to_exactly_the_paid_amount_are_allowed():
    m = f.merchant()
    p = f.payment(m, amount=10000)
    create(m, p, 6000, "R1")
    refund, created = create(m, p, 4000, "R2")
    assert created and refund.status == Refund.Status.APPROVED
    p = reload(p)
    assert (p.refunded_amount, p.refundable_amount) == (10000, 0)
    assert f.balance(m, PENDING) == 0
    assert f.balance(m, HOLD) == 10000


def test_second_refund_past_paid_amount_is_refused():
    m = f.merchant()
    p = f.payment(m, amount=10000)
    create(m, p, 6000, "R1")
    entries = LedgerEntry.objects.count()
    with pytest.raises(errors.AmountExceedsRefundable) as exc:
        create(m, p, 4001, "R2")
    assert exc.value.code == "AMOUNT_EXCEEDS_REFUNDABLE"
    assert list(Refund.objects.values_list("out_refund_no", flat=True)) == ["R1"]
    assert reload(p).refundable_amount == 4000
    assert LedgerEntry.objects.count() == entries
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (4000, 6000)


def test_single_refund_past_paid_amount_is_refused():
    m = f.merchant()
    p = f.payment(m, amount=10000)
    with pytest.raises(errors.AmountExceedsRefundable):
        create(m, p, 10001)
    assert reload(p).refundable_amount == 10000


def test_refund_of_another_merchants_payment_is_not_found():
    m, other = f.merchant(), f.merchant()
    p = f.payment(other, amount=10000)
    with pytest.raises(errors.PaymentNotFound) as exc:
        create(m, p, 100)
    assert exc.value.code == "PAYMENT_NOT_FOUND"
    assert not Refund.objects.exists()


# --- idempotency on (merchant, out_refund_no) --------------------------------------------------


def test_same_request_again_returns_the_same_refund_and_holds_nothing_twice():
    m = f.merchant()
    p = f.payment(m, amount=10000)
    first, created = create(m, p, 3000, "R1", reason="out of stock")
    again, created_again = create(m, p, 3000, "R1", reason="out of stock")
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert Refund.objects.count() == 1
    assert RefundLeg.objects.count() == 1
    assert LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.REFUND_HOLD).count() == 1
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (7000, 3000)
    assert reload(p).refundable_amount == 7000


def test_replay_of_a_refund_that_used_up_the_payment_is_still_a_replay():
    m = f.merchant()
    p = f.payment(m, amount=10000)
    first, _ = create(m, p, 10000, "R1")
    again, created = create(m, p, 10000, "R1")
    assert (again.pk, created) == (first.pk, False)


@pytest.mark.parametrize(
    "change", [{"amount": 3001}, {"reason": "other"}, {"direction": "balance"}, {"source": "user"}, {"notify_url": "http://x/"}]
)
def test_same_out_refund_no_with_a_different_body_is_a_conflict(change):
    m = f.merchant()
    p = f.payment(m, amount=10000)
    create(m, p, 3000, "R1", reason="out of stock")
    body = {"amount": 3000, "reason": "out of stock", **change}
    with pytest.raises(errors.OutRefundNoConflict) as exc:
        create(m, p, out_refund_no="R1", **body)
    assert exc.value.code == "OUT_REFUND_NO_CONFLICT"
    assert Refund.objects.count() == 1
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (7000, 3000)


def test_same_out_refund_no_for_another_payment_is_a_conflict():
    m = f.merchant()
    p1, p2 = f.payment(m, amount=10000), f.payment(m, amount=10000)
    create(m, p1, 3000, "R1")
    with pytest.raises(errors.OutRefundNoConflict):
        create(m, p2, 3000, "R1")
    assert reload(p2).refundable_amount == 10000


def test_same_out_refund_no_at_another_merchant_is_independent():
    a, b = f.merchant(), f.merchant()
    pa, pb = f.payment(a, amount=10000), f.payment(b, amount=5000)
    ra, created_a = create(a, pa, 3000, "R1")
    rb, created_b = create(b, pb, 2000, "R1")
    assert created_a and created_b and ra.pk != rb.pk
    assert (f.balance(a, PENDING), f.balance(a, HOLD)) == (7000, 3000)
    assert (f.balance(b, PENDING), f.balance(b, HOLD)) == (3000, 2000)


# --- allocation (S17, S22) ---------------------------------------------------------------------


def test_proportional_split_of_a_discounted_payment():
    m = f.merchant(allocation_strategy=Merchant.Allocation.PROPORTIONAL)
    p = f.payment(m, amount=10000, parts=MIXED)
    refund, _ = create(m, p, 3000)
    assert breakdown(refund) == {"channel": 2400, "balance": 300, "coupon_not_returned": 300}
    assert legs(refund) == [("wechat", 2400, "QUEUED"), ("balance", 300, "SUCCEEDED")]
    assert refund.coupon_not_returned == 300
    assert refund.hold_amount == 2700
    # The balance part is paid at once out of the hold; the channel part stays held until it lands.
    assert user_balance() == 300
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (7300, 2400)
    assert refund.status == Refund.Status.PROCESSING
    assert [part.refunded_amount for part in p.parts.order_by("position")] == [2400, 300, 300]


def test_coupon_first_consumes_the_coupon_then_the_channel():
    m = f.merchant(allocation_strategy=Merchant.Allocation.COUPON_FIRST)
    p = f.payment(m, amount=10000, parts=MIXED)
    refund, _ = create(m, p, 3000, "R1")
    assert breakdown(refund) == {"channel": 2000, "coupon_not_returned": 1000}
    assert legs(refund) == [("wechat", 2000, "QUEUED")]
    assert (refund.hold_amount, f.balance(m, PENDING), f.balance(m, HOLD)) == (2000, 8000, 2000)
    # The coupon is used up: the next refund is all money, channel first.
    second, _ = create(m, p, 6500, "R2")
    assert breakdown(second) == {"channel": 6000, "balance": 500}
    assert user_balance() == 500


def test_a_coupon_is_never_returned_as_money():
    for strategy in Merchant.Allocation.values:
        m = f.merchant(allocation_strategy=strategy)
        p = f.payment(m, amount=10000, parts=[("coupon", 4000), ("channel", 6000, "wechat")])
        refund, _ = create(m, p, 10000, f"R-{strategy}")
        assert refund.coupon_not_returned == 4000
        assert sum(leg.amount for leg in refund.legs.all()) == 6000
        assert not refund.legs.exclude(route="wechat").exists()
        assert refund.hold_amount == 6000


def test_a_refund_of_only_the_coupon_moves_no_money_and_succeeds():
    m = f.merchant(allocation_strategy=Merchant.Allocation.COUPON_FIRST)
    p = f.payment(m, amount=10000, parts=MIXED)
    refund, _ = create(m, p, 1000)
    assert refund.status == Refund.Status.SUCCEEDED
    assert (legs(refund), refund.coupon_not_returned, refund.hold_amount) == ([], 1000, 0)
    assert f.balance(m, PENDING) == 10000


def test_full_refund_after_odd_partial_refunds_returns_exactly_what_the_user_paid():
    m = f.merchant()
    p = f.payment(m, amount=10000, parts=MIXED)
    r1, _ = create(m, p, 3333, "R1")
    r2, _ = create(m, p, 3333, "R2")
    r3, _ = create(m, p, 3334, "R3")
    assert breakdown(r1) == {"channel": 2667, "balance": 333, "coupon_not_returned": 333}
    assert breakdown(r2) == {"channel": 2666, "balance": 334, "coupon_not_returned": 333}
    assert breakdown(r3) == {"channel": 2667, "balance": 333, "coupon_not_returned": 334}
    channel = sum(leg.amount for leg in RefundLeg.objects.filter(route="wechat"))
    balance = sum(leg.amount for leg in RefundLeg.objects.filter(route="balance"))
    coupon = sum(r.coupon_not_returned for r in (r1, r2, r3))
    assert (channel, balance, coupon) == (8000, 1000, 1000)
    assert user_balance() == 1000
    assert [part.remaining for part in p.parts.order_by("position")] == [0, 0, 0]
    assert reload(p).refundable_amount == 0
    # The merchant gave up exactly the money returned: 9000 out of the 10000 collected.
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (1000, 8000)
    with pytest.raises(errors.AmountExceedsRefundable):
        create(m, p, 1, "R4")


def test_full_refund_after_one_fen_refunds_is_exact():
    m = f.merchant()
    p = f.payment(m, amount=10000, parts=MIXED)
    for i in range(3):
        create(m, p, 1, f"R{i}")
    last, _ = create(m, p, 9997, "R-last")
    assert breakdown(last) == {"channel": 7997, "balance": 1000, "coupon_not_returned": 1000}
    assert sum(leg.amount for leg in RefundLeg.objects.filter(route="wechat")) == 8000


# --- direction: the user's platform balance (S4) -----------------------------------------------


def test_direction_balance_sends_all_money_to_one_balance_leg_credited_at_once():
    m = f.merchant()
    p = f.payment(m, amount=10000, parts=MIXED)
    refund, _ = create(m, p, 3000, direction=Refund.Direction.BALANCE)
    assert legs(refund) == [("balance", 2700, "SUCCEEDED")]
    assert breakdown(refund) == {"balance": 2700, "coupon_not_returned": 300}
    assert refund.status == Refund.Status.SUCCEEDED
    assert refund.completed_at is not None
    assert user_balance() == 2700
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (7300, 0)
    assert hold_left(refund) == 0


def test_direction_balance_waiting_for_review_credits_the_user_only_on_approval():
    m = f.merchant(review_threshold=1000)
    p = f.payment(m, amount=10000)
    refund, _ = create(m, p, 3000, direction=Refund.Direction.BALANCE)
    assert refund.status == Refund.Status.PENDING_REVIEW
    assert legs(refund) == [("balance", 3000, "PENDING")]
    assert user_balance() == 0
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (7000, 3000)
    svc.refund_approve(refund_id=refund.pk, by="user:supervisor")
    refund = reload(refund)
    assert refund.status == Refund.Status.SUCCEEDED
    assert legs(refund) == [("balance", 3000, "SUCCEEDED")]
    assert user_balance() == 3000
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (7000, 0)


# --- a channel that cannot take the refund (S10, S11, S16) -------------------------------------


def test_expired_window_takes_the_manual_fallback_and_never_the_channel():
    m = f.merchant(fallback_route=Merchant.FallbackRoute.MANUAL)
    p = f.payment(m, amount=10000, paid_at=timezone.now() - datetime.timedelta(days=400))
    refund, _ = create(m, p, 3000)
    assert legs(refund) == [("manual", 3000, "MANUAL_PAYOUT")]
    leg = refund.legs.get()
    assert (leg.fallback_reason, leg.channel_id) == ("WINDOW_EXPIRED", None)
    assert refund.status == Refund.Status.MANUAL_PAYOUT
    assert breakdown(refund) == {"manual": 3000}
    assert not RefundLeg.objects.filter(route="wechat").exists()
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (7000, 3000)
    assert refund.estimated_arrival == timezone.localdate() + datetime.timedelta(days=svc.MANUAL_PAYOUT_DAYS)

    svc.leg_record_success(leg_id=leg.pk, by="user:finance", reason="paid to card ****1234")
    refund = reload(refund)
    assert refund.status == Refund.Status.SUCCEEDED
    assert (f.balance(m, HOLD), platform_balance(Account.Kind.MANUAL_PAYOUTS)) == (0, 3000)
    assert platform_balance(Account.Kind.CHANNEL_REFUNDS, sub_ledger="wechat") == 0


def test_expired_window_takes_the_balance_fallback_and_credits_the_user():
    m = f.merchant(fallback_route=Merchant.FallbackRoute.BALANCE)
    p = f.payment(m, amount=10000, paid_at=timezone.now() - datetime.timedelta(days=366))
    refund, _ = create(m, p, 3000)
    assert legs(refund) == [("balance", 3000, "SUCCEEDED")]
    assert refund.legs.get().fallback_reason == "WINDOW_EXPIRED"
    assert refund.status == Refund.Status.SUCCEEDED
    assert user_balance() == 3000
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (7000, 0)


def test_only_the_part_whose_window_passed_falls_back():
    m = f.merchant()
    f.channel("bank")  # 180 days
    p = f.payment(m, amount=10000, parts=[("channel", 6000, "wechat"), ("channel", 4000, "bank")],
                  paid_at=timezone.now() - datetime.timedelta(days=200))
    refund, _ = create(m, p, 5000)
    assert legs(refund) == [("wechat", 3000, "QUEUED"), ("manual", 2000, "MANUAL_PAYOUT")]
    assert refund.status == Refund.Status.PROCESSING


def test_window_is_checked_at_the_refund_time():
    m = f.merchant()
    paid_at = timezone.now() - datetime.timedelta(days=10)
    p = f.payment(m, amount=10000, paid_at=paid_at)
    inside, _ = create(m, p, 100, "R1", now=paid_at + datetime.timedelta(days=365) - datetime.timedelta(seconds=1))
    outside, _ = create(m, p, 100, "R2", now=paid_at + datetime.timedelta(days=365))
    assert legs(inside) == [("wechat", 100, "QUEUED")]
    assert legs(outside) == [("manual", 100, "MANUAL_PAYOUT")]


def test_past_the_channels_refund_count_the_part_takes_the_fallback():
    m = f.merchant()
    p = f.payment(m, amount=10000)
    for i in range(50):
        refund, _ = create(m, p, 10, f"R{i:02d}")
        assert legs(refund) == [("wechat", 10, "QUEUED")]
    refund, _ = create(m, p, 10, "R50")
    assert legs(refund) == [("manual", 10, "MANUAL_PAYOUT")]
    assert refund.legs.get().fallback_reason == "MAX_REFUNDS_REACHED"
    assert RefundLeg.objects.filter(route="wechat").count() == 50
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (10000 - 510, 510)


def test_a_rejected_refund_does_not_count_against_the_channels_limit():
    m = f.merchant(review_threshold=100)
    p = f.payment(m, amount=10000)
    for i in range(49):
        create(m, p, 10, f"R{i:02d}")
    flagged, _ = create(m, p, 200, "BIG")
    svc.refund_reject(refund_id=flagged.pk, by="user:agent", reason="duplicate request")
    refund, _ = create(m, p, 10, "R49")
    assert legs(refund) == [("wechat", 10, "QUEUED")]
    refund, _ = create(m, p, 10, "R50")
    assert refund.legs.get().fallback_reason == "MAX_REFUNDS_REACHED"


# --- the refund source must cover it (S19, S21) ------------------------------------------------


def test_pending_settlement_source_too_short_is_refused_and_nothing_is_written():
    m = f.merchant(refund_source=Merchant.RefundSource.PENDING_SETTLEMENT)
    p = f.payment(m, amount=10000)
    settle(m, 9000)
    entries, txns = LedgerEntry.objects.count(), LedgerTransaction.objects.count()
    with pytest.raises(errors.InsufficientBalance) as exc:
        create(m, p, 3000, "R1")
    assert exc.value.code == "INSUFFICIENT_BALANCE"
    assert not Refund.objects.exists() and not RefundLeg.objects.exists() and not RefundEvent.objects.exists()
    assert (LedgerEntry.objects.count(), LedgerTransaction.objects.count()) == (entries, txns)
    assert reload(p).refundable_amount == 10000
    assert [part.refunded_amount for part in p.parts.all()] == [0]
    assert (f.balance(m, PENDING), f.balance(m, CASH), f.balance(m, HOLD)) == (1000, 9000, 0)
    shortfall = BalanceShortfall.objects.get()
    assert (shortfall.merchant_id, shortfall.account_kind, shortfall.currency) == (m.pk, PENDING, "CNY")
    assert (shortfall.amount, shortfall.available, shortfall.out_refund_no) == (3000, 1000, "R1")
    # Exactly what is there can still be refunded.
    refund, _ = create(m, p, 1000, "R2")
    assert (refund.hold_amount, f.balance(m, PENDING), f.balance(m, HOLD)) == (1000, 0, 1000)


def test_cash_source_too_short_is_refused_until_topped_up():
    m = f.merchant(refund_source=Merchant.RefundSource.CASH, funded=2000)
    p = f.payment(m, amount=10000)
    assert (f.balance(m, CASH), f.balance(m, PENDING)) == (2000, 10000)
    with pytest.raises(errors.InsufficientBalance):
        create(m, p, 3000, "R1")
    assert not Refund.objects.exists()
    assert reload(p).refundable_amount == 10000
    assert (f.balance(m, CASH), f.balance(m, PENDING), f.balance(m, HOLD)) == (2000, 10000, 0)
    shortfall = BalanceShortfall.objects.get()
    assert (shortfall.account_kind, shortfall.amount, shortfall.available) == (CASH, 3000, 2000)

    money.merchant_fund(merchant=m, account_kind=CASH, amount=1000)
    refund, _ = create(m, p, 3000, "R1")  # the same request, now covered
    assert refund.hold_account_kind == CASH
    assert (f.balance(m, CASH), f.balance(m, PENDING), f.balance(m, HOLD)) == (0, 10000, 3000)


def test_a_refund_waiting_for_review_holds_the_money_at_once():
    m = f.merchant(refund_source=Merchant.RefundSource.CASH, funded=5000, review_threshold=1000)
    p1, p2 = f.payment(m, amount=10000), f.payment(m, amount=10000)
    flagged, _ = create(m, p1, 4000, "R1")
    assert flagged.status == Refund.Status.PENDING_REVIEW
    assert (f.balance(m, CASH), f.balance(m, HOLD)) == (1000, 4000)
    with pytest.raises(errors.InsufficientBalance):
        create(m, p2, 1001, "R2")
    create(m, p2, 1000, "R3")
    assert (f.balance(m, CASH), f.balance(m, HOLD)) == (0, 5000)


# --- cross-border (S23) ------------------------------------------------------------------------


def usd_payment(m, *, amount=10000, settlement=70000, **kwargs):
    return f.payment(m, amount=amount, currency="USD", settlement_currency="CNY", settlement_amount=settlement, **kwargs)


def set_rate(rate: str, *, base="USD", quote="CNY", day=None):
    FxRate.objects.create(day=day or timezone.localdate(), base=base, quote=quote, rate=Decimal(rate))


def test_fx_merchant_is_debited_at_todays_rate_when_it_is_cheaper():
    m = f.merchant()
    p = usd_payment(m)  # $100.00 settled as 700.00 CNY
    assert (f.balance(m, PENDING, "CNY"), f.balance(m, PENDING, "USD")) == (70000, 0)
    set_rate("6.80000000")
    refund, _ = create(m, p, 3000)  # $30.00 at 6.8 = 204.00 CNY < the 210.00 share of the settlement
    assert (refund.currency, refund.hold_currency, refund.hold_amount) == ("USD", "CNY", 20400)
    assert legs(refund) == [("wechat", 3000, "QUEUED")]
    assert refund.legs.get().hold_amount == 20400
    assert (f.balance(m, PENDING, "CNY"), f.balance(m, HOLD, "CNY")) == (49600, 20400)


def test_fx_is_capped_at_the_share_of_the_original_settlement_when_the_rate_moved_against_the_merchant():
    m = f.merchant()
    p = usd_payment(m)
    set_rate("7.20000000")
    refund, _ = create(m, p, 3000)  # $30.00 at 7.2 = 216.00 CNY, capped at 700.00 * 3000/10000 = 210.00
    assert refund.hold_amount == 21000
    rest, _ = create(m, p, 7000, "R2")
    assert rest.hold_amount == 49000
    assert (f.balance(m, PENDING, "CNY"), f.balance(m, HOLD, "CNY")) == (0, 70000)


def test_fx_uses_the_inverse_rate_when_only_it_is_set():
    m = f.merchant()
    p = usd_payment(m)
    set_rate("0.16000000", base="CNY", quote="USD")  # 1 USD = 6.25 CNY
    refund, _ = create(m, p, 3000)
    assert refund.hold_amount == 18750


def test_fx_without_a_rate_is_refused_and_nothing_is_written():
    m = f.merchant()
    p = usd_payment(m)
    entries = LedgerEntry.objects.count()
    with pytest.raises(errors.FxRateUnavailable) as exc:
        create(m, p, 3000)
    assert exc.value.code == "FX_RATE_UNAVAILABLE"
    assert not Refund.objects.exists()
    assert LedgerEntry.objects.count() == entries
    assert reload(p).refundable_amount == 10000


def test_fx_rate_set_only_for_a_later_day_is_not_used():
    m = f.merchant()
    p = usd_payment(m)
    set_rate("7.00000000", day=timezone.localdate() + datetime.timedelta(days=1))
    with pytest.raises(errors.FxRateUnavailable):
        create(m, p, 3000)


def test_fx_leg_success_books_both_currencies_balanced():
    m = f.merchant()
    p = usd_payment(m)
    set_rate("6.80000000")
    refund, _ = create(m, p, 3000)
    svc.leg_record_success(leg_id=refund.legs.get().pk, by="channel:notify", channel_refund_id="5000001")
    assert reload(refund).status == Refund.Status.SUCCEEDED
    assert f.balance(m, HOLD, "CNY") == 0
    assert platform_balance(Account.Kind.CHANNEL_REFUNDS, "USD", sub_ledger="wechat") == 3000
    assert (platform_balance(Account.Kind.FX, "USD"), platform_balance(Account.Kind.FX, "CNY")) == (-3000, 20400)


def test_same_currency_settlement_needs_no_rate():
    m = f.merchant()
    p = f.payment(m, amount=10000, currency="USD")
    refund, _ = create(m, p, 3000)
    assert (refund.hold_currency, refund.hold_amount, f.balance(m, PENDING, "USD")) == ("USD", 3000, 7000)


# --- the review decision (S14, S18) ------------------------------------------------------------


def test_above_the_review_threshold_waits_for_review_with_its_reasons():
    m = f.merchant(review_threshold=5000)
    p = f.payment(m, amount=10000)
    refund, _ = create(m, p, 5001)
    assert refund.status == Refund.Status.PENDING_REVIEW
    assert refund.risk_outcome == "review"
    assert refund.risk_reasons == ["amount 5001 above the merchant's review threshold 5000"]
    assert reload(refund).risk_reasons == refund.risk_reasons
    assert legs(refund) == [("wechat", 5001, "PENDING")]
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (4999, 5001)
    risk_event = refund.events.get(kind=RefundEvent.Kind.RISK)
    assert (risk_event.actor, risk_event.to_status, risk_event.data["outcome"]) == ("risk", "PENDING_REVIEW", "review")


def test_at_the_review_threshold_is_approved():
    m = f.merchant(review_threshold=5000)
    p = f.payment(m, amount=10000)
    refund, _ = create(m, p, 5000)
    assert (refund.status, refund.risk_reasons) == (Refund.Status.APPROVED, [])
    assert legs(refund) == [("wechat", 5000, "QUEUED")]


def test_without_a_threshold_everything_is_approved():
    m = f.merchant(review_threshold=None)
    p = f.payment(m, amount=10000)
    refund, _ = create(m, p, 10000)
    assert refund.status == Refund.Status.APPROVED


# --- legacy v1 payments (S12) ------------------------------------------------------------------


def test_legacy_payment_in_yuan_refunds_exactly_like_a_current_one():
    m = f.merchant()
    legacy, created = svc.payment_import_legacy(
        merchant=m, out_trade_no="OLD-1", amount_yuan=Decimal("88.88"), channel="wechat", channel_txn_id="4200",
        user_id="u-1", paid_at=timezone.now() - datetime.timedelta(days=30),
    )
    assert created
    assert (legacy.amount, legacy.record_version, legacy.legacy_amount_yuan) == (8888, 1, Decimal("88.88"))
    assert [(pt.kind, pt.amount, pt.channel.code) for pt in legacy.parts.all()] == [("channel", 8888, "wechat")]
    assert f.balance(m, PENDING) == 8888
    current = f.payment(m, amount=8888)

    for p in (legacy, current):
        r1, _ = create(m, p, 3333, f"{p.out_trade_no}-1")
        r2, _ = create(m, p, 5555, f"{p.out_trade_no}-2")
        assert legs(r1) == [("wechat", 3333, "QUEUED")] and legs(r2) == [("wechat", 5555, "QUEUED")]
        assert (r1.hold_amount, r2.hold_amount) == (3333, 5555)
        assert reload(p).refundable_amount == 0
        with pytest.raises(errors.AmountExceedsRefundable):
            create(m, p, 1, f"{p.out_trade_no}-3")
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (0, 2 * 8888)


def test_legacy_import_is_idempotent():
    m = f.merchant()
    kwargs = dict(merchant=m, out_trade_no="OLD-2", amount_yuan=Decimal("0.01"), channel="wechat",
                  channel_txn_id="1", user_id="u-1", paid_at=timezone.now())
    first, _ = svc.payment_import_legacy(**kwargs)
    again, created = svc.payment_import_legacy(**kwargs)
    assert (again.pk, created, again.amount, f.balance(m, PENDING)) == (first.pk, False, 1, 1)


# --- approve, reject, cancel -------------------------------------------------------------------


def test_reject_releases_the_hold_to_the_source_and_restores_the_refundable_amount():
    m = f.merchant(review_threshold=1000)
    p = f.payment(m, amount=10000, parts=MIXED)
    refund, _ = create(m, p, 5000)
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (5500, 4500)
    svc.refund_reject(refund_id=refund.pk, by="user:agent", reason="merchant withdrew consent")
    refund = reload(refund)
    assert (refund.status, refund.failure_reason) == (Refund.Status.REJECTED, "REJECTED")
    assert {leg.status for leg in refund.legs.all()} == {RefundLeg.Status.CANCELLED}
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (10000, 0)
    assert reload(p).refundable_amount == 10000
    assert [part.refunded_amount for part in p.parts.all()] == [0, 0, 0]
    assert user_balance() == 0
    again, _ = create(m, p, 1000, "R2")  # the whole amount is refundable again
    assert breakdown(again) == {"channel": 800, "balance": 100, "coupon_not_returned": 100}


def test_reject_needs_a_reason_and_a_pending_review():
    m = f.merchant(review_threshold=1000)
    p = f.payment(m, amount=10000)
    flagged, _ = create(m, p, 5000, "R1")
    with pytest.raises(errors.InvalidRequest):
        svc.refund_reject(refund_id=flagged.pk, by="user:agent", reason="  ")
    approved, _ = create(m, p, 500, "R2")
    with pytest.raises(errors.InvalidState):
        svc.refund_reject(refund_id=approved.pk, by="user:agent", reason="no")
    assert reload(approved).status == Refund.Status.APPROVED


def test_approve_queues_the_legs_and_another_person_must_do_it():
    users = get_user_model().objects
    alice, bob = users.create_user("alice"), users.create_user("bob")
    m = f.merchant(review_threshold=1000)
    p = f.payment(m, amount=10000)
    refund, _ = create(m, p, 5000, user=alice)
    with pytest.raises(errors.FourEyesViolation):
        svc.refund_approve(refund_id=refund.pk, by="user:alice", user=alice)
    assert reload(refund).status == Refund.Status.PENDING_REVIEW
    svc.refund_approve(refund_id=refund.pk, by="user:bob", user=bob, reason="customer called")
    refund = reload(refund)
    assert refund.status == Refund.Status.APPROVED
    assert legs(refund) == [("wechat", 5000, "QUEUED")]
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (5000, 5000)
    with pytest.raises(errors.InvalidState):
        svc.refund_approve(refund_id=refund.pk, by="user:bob")


def test_cancel_of_an_approved_refund_releases_the_hold():
    m = f.merchant()
    p = f.payment(m, amount=10000)
    refund, _ = create(m, p, 3000)
    svc.refund_cancel(refund_id=refund.pk, by="api:M", reason="order restored")
    refund = reload(refund)
    assert refund.status == Refund.Status.CANCELLED
    assert legs(refund) == [("wechat", 3000, "CANCELLED")]
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (10000, 0)
    assert reload(p).refundable_amount == 10000


def test_cancel_is_refused_once_a_leg_has_been_paid():
    m = f.merchant()
    p = f.payment(m, amount=10000, parts=MIXED)
    refund, _ = create(m, p, 3000)  # its balance leg is paid at once
    with pytest.raises(errors.InvalidState):
        svc.refund_cancel(refund_id=refund.pk, by="api:M", reason="too late")
    assert (f.balance(m, PENDING), f.balance(m, HOLD), user_balance()) == (7300, 2400, 300)


# --- leg results -------------------------------------------------------------------------------


def test_leg_success_consumes_the_hold_into_the_channels_account():
    m = f.merchant()
    p = f.payment(m, amount=10000)
    refund, _ = create(m, p, 3000)
    leg = refund.legs.get()
    svc.leg_submit(leg_id=leg.pk, by="task:dispatch")
    assert reload(refund).status == Refund.Status.PROCESSING
    svc.leg_record_success(leg_id=leg.pk, by="channel:notify", channel_refund_id="5000001")
    refund, leg = reload(refund), reload(leg)
    assert (refund.status, leg.status, leg.channel_refund_id) == ("SUCCEEDED", "SUCCEEDED", "5000001")
    assert refund.completed_at is not None
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (7000, 0)
    assert platform_balance(Account.Kind.CHANNEL_REFUNDS, sub_ledger="wechat") == 3000
    # A duplicate notification books nothing more.
    svc.leg_record_success(leg_id=leg.pk, by="channel:notify")
    assert platform_balance(Account.Kind.CHANNEL_REFUNDS, sub_ledger="wechat") == 3000
    assert LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.REFUND_PAID).count() == 1


def test_leg_failure_keeps_the_money_held_then_a_confirmed_failure_is_paid_by_hand():
    m = f.merchant()
    p = f.payment(m, amount=10000)
    refund, _ = create(m, p, 3050)
    leg = refund.legs.get()
    svc.leg_submit(leg_id=leg.pk, by="task:dispatch")
    svc.leg_record_failure(leg_id=leg.pk, by="channel:notify", failure_reason="ACCOUNT_CLOSED", reason="card closed")
    refund, leg = reload(refund), reload(leg)
    assert (refund.status, refund.failure_reason) == (Refund.Status.FAILED, "ACCOUNT_CLOSED")
    assert (leg.status, leg.failure_reason) == (RefundLeg.Status.FAILED, "ACCOUNT_CLOSED")
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (6950, 3050)
    assert reload(p).refundable_amount == 6950
    # Pre-failure rule (S14): a failed leg cannot simply be marked paid before the failure is confirmed.
    with pytest.raises(TransitionNotAllowed):
        svc.leg_record_success(leg_id=leg.pk, by="user:finance")
    assert f.balance(m, HOLD) == 3050

    svc.leg_confirm_failure(leg_id=leg.pk, by="user:finance", reason="statement of 2026-11-21 confirms it")
    refund, leg = reload(refund), reload(leg)
    assert (refund.status, leg.status) == (Refund.Status.MANUAL_PAYOUT, RefundLeg.Status.MANUAL_PAYOUT)
    assert f.balance(m, HOLD) == 3050

    svc.leg_record_success(leg_id=leg.pk, by="user:finance", reason="paid to the collected card")
    refund, leg = reload(refund), reload(leg)
    assert (refund.status, leg.status) == (Refund.Status.SUCCEEDED, RefundLeg.Status.SUCCEEDED)
    assert (f.balance(m, PENDING), f.balance(m, HOLD)) == (6950, 0)
    assert platform_balance(Account.Kind.MANUAL_PAYOUTS) == 3050
    assert platform_balance(Account.Kind.CHANNEL_REFUNDS, sub_ledger="wechat") == 0


def test_confirmed_failure_while_another_leg_is_still_with_its_channel():
    m = f.merchant()
    p = f.payment(m, amount=10000, parts=[("channel", 6000, "wechat"), ("channel", 4000, "alipay")])
    refund, _ = create(m, p, 10000)
    wechat, alipay = leg_on(refund, "wechat"), leg_on(refund, "alipay")
    svc.leg_submit(leg_id=wechat.pk, by="task:dispatch")
    svc.leg_submit(leg_id=alipay.pk, by="task:dispatch")
    svc.leg_record_failure(leg_id=wechat.pk, by="channel:notify", failure_reason="ACCOUNT_CLOSED")
    assert reload(refund).status == Refund.Status.FAILED
    svc.leg_confirm_failure(leg_id=wechat.pk, by="user:finance", reason="confirmed by the statement")
    assert reload(refund).status == Refund.Status.PROCESSING  # alipay has not answered yet
    svc.leg_record_success(leg_id=alipay.pk, by="channel:notify")
    assert reload(refund).status == Refund.Status.MANUAL_PAYOUT
    assert f.balance(m, HOLD) == 6000
    svc.leg_record_success(leg_id=wechat.pk, by="user:finance", reason="paid by hand")
    assert reload(refund).status == Refund.Status.SUCCEEDED
    assert (f.balance(m, HOLD), platform_balance(Account.Kind.MANUAL_PAYOUTS)) == (0, 6000)
    assert platform_balance(Account.Kind.CHANNEL_REFUNDS, sub_ledger="alipay") == 4000


def test_confirming_needs_a_failed_leg_and_a_reason():
    m = f.merchant()
    p = f.payment(m, amount=10000)
    refund, _ = create(m, p, 3000)
    leg = refund.legs.get()
    with pytest.raises(errors.InvalidState):
        svc.leg_confirm_failure(leg_id=leg.pk, by="user:finance", reason="no")
    with pytest.raises(errors.InvalidRequest):
        svc.leg_confirm_failure(leg_id=leg.pk, by="user:finance", reason="")


# --- the timeline ------------------------------------------------------------------------------


def test_every_transition_writes_an_event_with_actor_from_to_and_reason():
    users = get_user_model().objects
    m = f.merchant(review_threshold=1000)
    p = f.payment(m, amount=10000)
    refund, _ = create(m, p, 3000, reason="item out of stock")
    leg = refund.legs.get()
    svc.refund_approve(refund_id=refund.pk, by="user:bob", user=users.create_user("bob"), reason="looks fine")
    svc.leg_submit(leg_id=leg.pk, by="task:dispatch", reason="attempt 1")
    svc.leg_record_failure(leg_id=leg.pk, by="channel:notify", failure_reason="ACCOUNT_CLOSED", reason="closed")
    svc.leg_confirm_failure(leg_id=leg.pk, by="user:finance", reason="statement confirms")
    svc.leg_record_success(leg_id=leg.pk, by="user:finance", reason="paid by hand")

    refund_events = [
        (e.kind, e.actor, e.from_status, e.to_status, e.reason)
        for e in RefundEvent.objects.filter(refund=refund, leg=None).order_by("id")
    ]
    assert refund_events == [
        ("created", "api:" + m.code, "", "PENDING_REVIEW", "item out of stock"),
        ("risk", "risk", "", "PENDING_REVIEW", "amount 3000 above the merchant's review threshold 1000"),
        ("transition", "user:bob", "PENDING_REVIEW", "APPROVED", "looks fine"),
        ("transition", "task:dispatch", "APPROVED", "PROCESSING", ""),
        ("transition", "channel:notify", "PROCESSING", "FAILED", "leg via wechat failed"),
        ("transition", "user:finance", "FAILED", "MANUAL_PAYOUT", "waiting for a manual payout"),
        ("transition", "user:finance", "MANUAL_PAYOUT", "SUCCEEDED", "every leg succeeded"),
    ]
    leg_events = [(e.actor, e.from_status, e.to_status, e.reason) for e in leg.events.order_by("id")]
    assert leg_events == [
        ("user:bob", "PENDING", "QUEUED", ""),
        ("task:dispatch", "QUEUED", "PROCESSING", "attempt 1"),
        ("channel:notify", "PROCESSING", "FAILED", "closed"),
        ("user:finance", "FAILED", "MANUAL_PAYOUT", "failure confirmed: statement confirms"),
        ("user:finance", "MANUAL_PAYOUT", "SUCCEEDED", "paid by hand"),
    ]
    failed = leg.events.get(to_status="FAILED")
    assert failed.data["failure_reason"] == "ACCOUNT_CLOSED"


def test_reject_and_cancel_are_on_the_timeline():
    m = f.merchant(review_threshold=1000)
    p = f.payment(m, amount=10000)
    flagged, _ = create(m, p, 3000, "R1")
    svc.refund_reject(refund_id=flagged.pk, by="user:agent", reason="fraud suspected")
    ok, _ = create(m, p, 500, "R2")
    svc.refund_cancel(refund_id=ok.pk, by="api:merchant", reason="order restored")
    assert RefundEvent.objects.filter(
        refund=flagged, leg=None, kind="transition", actor="user:agent", from_status="PENDING_REVIEW",
        to_status="REJECTED", reason="fraud suspected",
    ).exists()
    assert RefundEvent.objects.filter(
        refund=ok, leg=None, kind="transition", actor="api:merchant", from_status="APPROVED",
        to_status="CANCELLED", reason="order restored",
    ).exists()
    assert flagged.legs.get().events.filter(from_status="PENDING", to_status="CANCELLED", actor="user:agent").exists()


# --- payment ingestion -------------------------------------------------------------------------


def ingest(m, out_trade_no="T1", amount=10000, parts=None, **kwargs):
    parts = parts or [svc.PartInput(kind="channel", amount=8000, channel="wechat", channel_txn_id="42000001"),
                      svc.PartInput(kind="balance", amount=1000),
                      svc.PartInput(kind="coupon", amount=1000, coupon_id="C-9")]
    defaults = dict(user_id="u-42", paid_at=datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC))
    return svc.payment_ingest(merchant=m, out_trade_no=out_trade_no, amount=amount, parts=parts, **{**defaults, **kwargs})


def test_payment_is_recorded_with_its_parts_and_credits_pending_settlement():
    m = f.merchant()
    p, created = ingest(m)
    assert created
    assert (p.amount, p.currency, p.settlement_currency, p.settlement_amount, p.refunded_amount) == (10000, "CNY", "CNY", 10000, 0)
    assert [(pt.kind, pt.amount) for pt in p.parts.order_by("position")] == [("channel", 8000), ("balance", 1000), ("coupon", 1000)]
    assert f.balance(m, PENDING) == 10000
    assert platform_balance(Account.Kind.COLLECTIONS) == -10000


def test_payment_report_again_returns_the_stored_payment_and_credits_once():
    m = f.merchant()
    first, _ = ingest(m)
    again, created = ingest(m)
    assert (again.pk, created) == (first.pk, False)
    assert Payment.objects.count() == 1 and PaymentPart.objects.count() == 3
    assert f.balance(m, PENDING) == 10000


@pytest.mark.parametrize("change", [{"user_id": "u-43"}, {"paid_at": timezone.now()}, {"settlement_amount": 9000}])
def test_payment_report_with_different_content_is_a_conflict(change):
    m = f.merchant()
    ingest(m)
    with pytest.raises(errors.OutTradeNoConflict) as exc:
        ingest(m, **change)
    assert exc.value.code == "OUT_TRADE_NO_CONFLICT"
    assert f.balance(m, PENDING) == 10000


def test_same_out_trade_no_at_another_merchant_is_another_payment():
    a, b = f.merchant(), f.merchant()
    pa, _ = ingest(a)
    pb, created = ingest(b)
    assert created and pa.pk != pb.pk
    assert (f.balance(a, PENDING), f.balance(b, PENDING)) == (10000, 10000)


@pytest.mark.parametrize(
    "amount, parts, error",
    [
        (10000, [svc.PartInput(kind="channel", amount=9999, channel="wechat")], errors.InvalidRequest),
        (10000, [svc.PartInput(kind="channel", amount=10001, channel="wechat")], errors.InvalidRequest),
        (10000, [], errors.InvalidRequest),
        (10000, [svc.PartInput(kind="channel", amount=10000, channel="nope")], errors.InvalidRequest),
        (10000, [svc.PartInput(kind="channel", amount=10000)], errors.InvalidRequest),
        (10000, [svc.PartInput(kind="cash", amount=10000)], errors.InvalidRequest),
        (10000, [svc.PartInput(kind="coupon", amount=10001), svc.PartInput(kind="balance", amount=-1)], errors.InvalidAmount),
        (0, [svc.PartInput(kind="balance", amount=0)], errors.InvalidAmount),
        (100.0, [svc.PartInput(kind="balance", amount=100)], errors.InvalidAmount),
    ],
)
def test_payment_whose_parts_do_not_add_up_or_are_malformed_is_refused(amount, parts, error):
    m = f.merchant()
    with pytest.raises(error):
        svc.payment_ingest(merchant=m, out_trade_no="T1", amount=amount, user_id="u", paid_at=timezone.now(), parts=parts)
    assert not Payment.objects.exists()
    assert not LedgerEntry.objects.exists()


def test_payment_settled_in_another_currency_needs_the_settlement_amount():
    m = f.merchant()
    with pytest.raises(errors.InvalidRequest):
        ingest(m, currency="USD", settlement_currency="CNY")
    p, _ = ingest(m, currency="USD", settlement_currency="CNY", settlement_amount=71234)
    assert (f.balance(m, PENDING, "CNY"), f.balance(m, PENDING, "USD")) == (71234, 0)


# --- cost --------------------------------------------------------------------------------------

# Measured: 13 statements for a one-part channel refund (the payment's lock with the hold accounts
# and the out_refund_no check, the parts with their leg counts, 3 INSERTs, 2 UPDATEs, the ledger's
# 2 INSERTs and 2 account UPDATEs; savepoints included), 22 when a balance leg is also paid at once
# (its transition, the user's balance account). Pinned with a small margin.
CREATE_QUERIES_CHANNEL = 13 + 1
CREATE_QUERIES_MIXED = 22 + 2


def test_create_refund_runs_a_small_bounded_number_of_queries(django_assert_max_num_queries):
    m = f.merchant()
    p = f.payment(m, amount=10000)
    create(m, p, 10, "warm-up")  # the merchant's hold account exists from now on
    with django_assert_max_num_queries(CREATE_QUERIES_CHANNEL):
        create(m, p, 3000, "R1")
    for i in range(30):
        create(m, p, 10, f"more-{i}")
    with django_assert_max_num_queries(CREATE_QUERIES_CHANNEL):
        create(m, p, 3000, "R2")  # as many after 30 earlier refunds


def test_create_refund_with_a_balance_leg_runs_a_bounded_number_of_queries(django_assert_max_num_queries):
    m = f.merchant()
    p = f.payment(m, amount=10000, parts=MIXED)
    create(m, p, 10, "warm-up")
    with django_assert_max_num_queries(CREATE_QUERIES_MIXED):
        create(m, p, 3000, "R1")
    with django_assert_max_num_queries(CREATE_QUERIES_MIXED):
        create(m, p, 3000, "R2", direction=Refund.Direction.BALANCE)


def test_a_replay_writes_nothing_and_reads_twice():
    # The payment's lock query also says whether the out_refund_no is taken; the stored refund
    # is then read once. Nothing is written, so nothing can be booked twice.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    m = f.merchant()
    p = f.payment(m, amount=10000)
    first, _ = create(m, p, 3000, "R1")
    with CaptureQueriesContext(connection) as queries:
        again, created = create(m, p, 3000, "R1")
    assert (again.pk, created) == (first.pk, False)
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    assert [s for s in statements if s not in ("SAVEPOINT", "RELEASE", "ROLLBACK")] == ["SELECT", "SELECT"]


def test_the_merchants_account_rows_are_the_last_statements_before_commit():
    # ARCHITECTURE.md (Concurrency): the account rows are shared by every refund of the merchant,
    # so their row locks are taken last, after the ledger rows, and held only until COMMIT.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    m = f.merchant()
    p = f.payment(m, amount=10000)
    create(m, p, 10, "warm-up")
    with CaptureQueriesContext(connection) as queries:
        create(m, p, 3000, "R1")
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert [s.split()[:2] for s in statements[-2:]] == [["UPDATE", '"merchants_account"']] * 2
    assert statements[-3].startswith('INSERT INTO "merchants_ledgerentry"')

"""Property: whatever happens, in whatever order, the books stay right.

Hypothesis draws sequences of operations (payments of every shape, refunds of random amounts
and directions with reused out_refund_no, approvals, rejections, cancellations, channel
answers, confirmed failures and manual payouts, top-ups and settlements) and after each one
checks the invariants of tests/refunds/invariants.py. Each example runs in its own
rolled-back transaction (hypothesis.extra.django.TestCase).
"""

import datetime
from decimal import Decimal

from django.utils import timezone
from django_fsm import TransitionNotAllowed
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from merchants import services as money
from merchants.models import Account, BalanceShortfall, FxRate, LedgerEntry, LedgerTransaction, Merchant
from refunds import errors
from refunds import services as svc
from refunds.models import Payment, Refund, RefundLeg
from tests import factories as f
from tests.refunds.invariants import assert_all_invariants

MERCHANTS = [
    dict(refund_source=Merchant.RefundSource.PENDING_SETTLEMENT, fallback_route=Merchant.FallbackRoute.MANUAL,
         allocation_strategy=Merchant.Allocation.PROPORTIONAL, review_threshold=3000),
    dict(refund_source=Merchant.RefundSource.CASH, fallback_route=Merchant.FallbackRoute.BALANCE,
         allocation_strategy=Merchant.Allocation.COUPON_FIRST, review_threshold=None),
    dict(refund_source=Merchant.RefundSource.PENDING_SETTLEMENT, fallback_route=Merchant.FallbackRoute.BALANCE,
         allocation_strategy=Merchant.Allocation.COUPON_FIRST, review_threshold=200),
]
merchant_idx = st.integers(0, len(MERCHANTS) - 1)
positive = st.integers(1, 6000)


@st.composite
def payments(draw):
    shape = draw(st.sampled_from(["wechat", "mixed", "two_channels", "balance_coupon", "expired", "bank_old", "usd"]))
    a, b, c = draw(positive), draw(positive), draw(positive)
    parts = {
        "wechat": [("channel", a, "wechat")],
        "mixed": [("channel", a, "wechat"), ("balance", b), ("coupon", c)],
        "two_channels": [("channel", a, "wechat"), ("channel", b, "alipay")],
        "balance_coupon": [("coupon", a), ("balance", b)],
        "expired": [("channel", a, "wechat"), ("coupon", c)],
        "bank_old": [("channel", a, "wechat"), ("channel", b, "bank")],
        "usd": [("channel", a, "wechat"), ("balance", b)],
    }[shape]
    days_ago = {"expired": 400, "bank_old": 200}.get(shape, 1)
    amount = sum(p[1] for p in parts)
    extra = {}
    if shape == "usd":
        # Settled at some rate between 6 and 8 CNY to the dollar.
        extra = dict(currency="USD", settlement_currency="CNY", settlement_amount=draw(st.integers(amount * 6, amount * 8)))
    return ("pay", draw(merchant_idx), parts, amount, days_ago, extra)


def pay(m_idx, parts, *, days_ago=1, settlement=None):
    """A payment operation, as `payments()` draws them (for the explicit examples)."""
    extra = {}
    if settlement is not None:
        extra = dict(currency="USD", settlement_currency="CNY", settlement_amount=settlement)
    return ("pay", m_idx, parts, sum(p[1] for p in parts), days_ago, extra)


def refund(p_idx, amount, out_refund_no="R1", direction=Refund.Direction.ORIGINAL, reason=""):
    return ("refund", p_idx, amount, direction, out_refund_no, reason)


amounts = st.one_of(
    st.tuples(st.just("tenths"), st.integers(1, 10)),  # n/10 of what is still refundable, 10/10 the rest
    st.tuples(st.just("past"), st.integers(1, 100)),  # just past what is refundable
    st.tuples(st.just("fen"), st.integers(1, 400)),
)
refunds = st.tuples(
    st.just("refund"),
    st.integers(0, 50),  # which payment
    amounts,
    st.sampled_from(Refund.Direction.values),
    st.sampled_from([f"R{i}" for i in range(8)]),  # few serial numbers: replays and conflicts
    st.sampled_from(["", "out of stock"]),
)
# `aimed`: pick among the refunds or legs the operation applies to; otherwise any (mostly refused).
aimed = st.booleans()
on_refund = st.tuples(st.sampled_from(["approve", "reject", "cancel"]), st.integers(0, 50), aimed)
on_leg = st.tuples(
    st.sampled_from(["submit", "success", "failure", "confirm", "confirm_and_pay"]), st.integers(0, 80), aimed
)
REFUND_TARGETS = {
    "approve": [Refund.Status.PENDING_REVIEW], "reject": [Refund.Status.PENDING_REVIEW], "cancel": [Refund.Status.APPROVED],
}
S = RefundLeg.Status
LEG_TARGETS = {
    "submit": [S.QUEUED], "success": [S.QUEUED, S.PROCESSING, S.MANUAL_PAYOUT], "failure": [S.QUEUED, S.PROCESSING],
    "confirm": [S.FAILED], "confirm_and_pay": [S.QUEUED, S.PROCESSING, S.FAILED],
}
funding = st.tuples(st.sampled_from(["top_up", "settle"]), merchant_idx, st.integers(1, 20000))
operations = st.lists(st.one_of(refunds, on_leg, on_refund, refunds, on_leg, funding, payments()), min_size=10, max_size=30)

EXPECTED_REFUSALS = (errors.RefundError, TransitionNotAllowed)


class Skipped(Exception):
    """The operation has nothing to apply to yet."""


class LedgerProperties(TestCase):
    def _setup(self, rate: Decimal):
        for code in ("wechat", "alipay", "bank"):
            f.channel(code)
        FxRate.objects.create(day=timezone.localdate(), base="USD", quote="CNY", rate=rate)
        self.merchants = [f.merchant(**config) for config in MERCHANTS]
        money.merchant_fund(merchant=self.merchants[1], account_kind=Account.Kind.CASH, amount=20000)
        self.payments: list[Payment] = []

    # The paths worth seeing every run, whatever hypothesis draws besides.
    @example(  # cancel an approved refund, refund the rest, pay it
        first=[pay(1, [("channel", 5000, "wechat")])],
        ops=[refund(0, ("tenths", 5)), ("cancel", 0, True), refund(0, ("tenths", 10), "R2"), ("success", 0, True)],
        rate=Decimal("7.0"),
    )
    @example(  # review: reject one, approve another to the user's balance; coupon first
        first=[pay(2, [("channel", 3000, "wechat"), ("balance", 500), ("coupon", 700)])],
        ops=[refund(0, ("tenths", 5)), ("reject", 0, True), refund(0, ("tenths", 10), "R2", "balance"),
             ("approve", 0, True)],
        rate=Decimal("7.0"),
    )
    @example(  # one of two channel legs fails, is confirmed and paid by hand while the other is in flight
        first=[pay(0, [("channel", 1500, "wechat"), ("channel", 1000, "alipay")])],
        ops=[refund(0, ("tenths", 10)), ("submit", 0, True), ("submit", 0, True), ("failure", 0, True),
             ("confirm", 0, True), ("success", 0, True), ("success", 0, True)],
        rate=Decimal("7.0"),
    )
    @example(  # cross-border, the rate moved against the merchant; then a payment whose window has passed
        first=[pay(0, [("channel", 1999, "wechat"), ("balance", 1)], settlement=13000),
               pay(2, [("channel", 700, "wechat"), ("coupon", 300)], days_ago=400)],
        ops=[refund(0, ("tenths", 3)), ("success", 0, True), refund(0, ("tenths", 10), "R2"),
             ("confirm_and_pay", 0, True), refund(1, ("tenths", 10), "R3")],
        rate=Decimal("7.5"),
    )
    @example(  # the refund source runs dry after settlement, then a top-up covers it
        first=[pay(0, [("channel", 2000, "wechat")])],
        ops=[("settle", 0, 1900), refund(0, ("fen", 150)), ("top_up", 0, 100), refund(0, ("fen", 150))],
        rate=Decimal("7.0"),
    )
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(
        first=st.lists(payments(), min_size=1, max_size=3),
        ops=operations,
        rate=st.sampled_from([Decimal("6.5"), Decimal("7.0"), Decimal("7.5")]),
    )
    def test_any_sequence_of_operations_keeps_the_books_right(self, first, ops, rate):
        self._setup(rate)
        for op in [*first, *ops]:
            if self._apply(op):
                assert_all_invariants()
        assert_all_invariants()

    # ------------------------------------------------------------------------------------------

    def _apply(self, op) -> bool:
        """Run one operation; False when it was refused (and so, being atomic, changed nothing)."""
        kind = op[0]
        try:
            if kind == "pay":
                self._pay(*op[1:])
            elif kind == "refund":
                self._refund(*op[1:])
            elif kind in REFUND_TARGETS:
                self._decide(kind, *op[1:])
            elif kind in ("top_up", "settle"):
                self._fund(kind, *op[1:])
            else:
                self._leg(kind, *op[1:])
        except Skipped:
            event(f"{kind}: nothing to apply it to")
            return False
        except EXPECTED_REFUSALS as refused:
            event(f"{kind}: {getattr(refused, 'code', type(refused).__name__)}")
            return False
        event(f"{kind}: done")
        return True

    def _pay(self, m_idx, parts, amount, days_ago, extra):
        p = f.payment(self.merchants[m_idx], amount=amount, parts=parts,
                      paid_at=timezone.now() - datetime.timedelta(days=days_ago), **extra)
        self.payments.append(p)

    def _refund(self, p_idx, amount_spec, direction, out_refund_no, reason):
        if not self.payments:
            return
        payment = self.payments[p_idx % len(self.payments)]
        m = payment.merchant
        before = Payment.objects.get(pk=payment.pk).refundable_amount
        how, n = amount_spec
        amount = {"tenths": max(1, before * n // 10), "past": before + n, "fen": n}[how]
        existing = Refund.objects.filter(merchant=m, out_refund_no=out_refund_no).first()
        refunds, entries = Refund.objects.count(), LedgerEntry.objects.count()
        try:
            refund, created = svc.refund_create(
                merchant=m, out_trade_no=payment.out_trade_no, out_refund_no=out_refund_no, amount=amount,
                actor=f"api:{m.code}", reason=reason, direction=direction,
            )
        except errors.OutRefundNoConflict:
            assert existing is not None
            raise
        except errors.AmountExceedsRefundable:
            assert existing is None and amount > before
            raise
        except errors.InsufficientBalance:
            assert existing is None
            assert (Refund.objects.count(), LedgerEntry.objects.count()) == (refunds, entries)
            assert Payment.objects.get(pk=payment.pk).refundable_amount == before
            # Refused only because the merchant's refund source really is short.
            shortfall = BalanceShortfall.objects.filter(merchant=m, out_refund_no=out_refund_no).latest("id")
            source = f.balance(m, m.refund_source, payment.settlement_currency)
            assert shortfall.account_kind == m.refund_source, shortfall.account_kind
            assert shortfall.available == source < shortfall.amount
            raise
        after = Payment.objects.get(pk=payment.pk).refundable_amount
        if not created:
            assert existing is not None and refund.pk == existing.pk and after == before
            event("refund: replayed")
            return
        event(f"refund: {refund.status}")
        assert existing is None and amount <= before and after == before - amount
        assert not refund.legs.filter(route="coupon").exists()
        if direction == Refund.Direction.BALANCE:
            assert set(refund.legs.values_list("route", flat=True)) <= {RefundLeg.Route.BALANCE}
        # A channel whose window has passed is never asked.
        for leg in refund.legs.select_related("channel"):
            if leg.is_channel:
                assert leg.channel.accepts_refund_of(payment.paid_at, timezone.now())

    def _decide(self, kind, r_idx, aimed):
        refunds = Refund.objects.order_by("created_at", "pk")
        if aimed:
            refunds = refunds.filter(status__in=REFUND_TARGETS[kind])
        refund_ids = list(refunds.values_list("pk", flat=True))
        if not refund_ids:
            raise Skipped
        refund_id = refund_ids[r_idx % len(refund_ids)]
        if kind == "approve":
            svc.refund_approve(refund_id=refund_id, by="user:reviewer")
        elif kind == "reject":
            svc.refund_reject(refund_id=refund_id, by="user:reviewer", reason="not justified")
        else:
            svc.refund_cancel(refund_id=refund_id, by="api:merchant", reason="order restored")

    def _leg(self, kind, l_idx, aimed):
        legs = RefundLeg.objects.order_by("id")
        if aimed:
            legs = legs.filter(status__in=LEG_TARGETS[kind])
        leg_ids = list(legs.values_list("id", flat=True))
        if not leg_ids:
            raise Skipped
        leg_id = leg_ids[l_idx % len(leg_ids)]
        if kind == "submit":
            svc.leg_submit(leg_id=leg_id, by="task:dispatch")
        elif kind == "success":
            svc.leg_record_success(leg_id=leg_id, by="channel:notify", channel_refund_id=f"ch-{leg_id}")
        elif kind == "failure":
            svc.leg_record_failure(leg_id=leg_id, by="channel:notify", failure_reason="ACCOUNT_CLOSED")
        elif kind == "confirm":
            svc.leg_confirm_failure(leg_id=leg_id, by="user:finance", reason="statement confirms")
        else:
            svc.leg_record_failure(leg_id=leg_id, by="channel:notify", failure_reason="ACCOUNT_CLOSED")
            svc.leg_confirm_failure(leg_id=leg_id, by="user:finance", reason="statement confirms")
            svc.leg_record_success(leg_id=leg_id, by="user:finance", reason="paid by hand")
            assert RefundLeg.objects.get(pk=leg_id).status == RefundLeg.Status.SUCCEEDED

    def _fund(self, kind, m_idx, amount):
        m = self.merchants[m_idx]
        if kind == "top_up":
            money.merchant_fund(merchant=m, account_kind=m.refund_source, amount=amount)
            return
        # T+1 settlement: collections move from pending settlement to cash.
        accounts = money.merchant_accounts(m, "CNY", [Account.Kind.PENDING_SETTLEMENT, Account.Kind.CASH])
        amount = min(amount, Account.objects.get(pk=accounts[Account.Kind.PENDING_SETTLEMENT].pk).balance)
        if amount:
            money.ledger_post(
                kind=LedgerTransaction.Kind.SETTLEMENT,
                lines=[money.Line(accounts[Account.Kind.PENDING_SETTLEMENT], -amount),
                       money.Line(accounts[Account.Kind.CASH], amount)],
            )

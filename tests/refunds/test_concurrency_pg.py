"""Refunds under real concurrency, on PostgreSQL (row locks): nothing is refunded or held twice.

Each thread has its own database connection and closes it at the end; a barrier starts them
together. Run with DATABASE_URL=postgres://... (skipped on SQLite).
"""

import threading
from collections import Counter

import pytest
from django.db import connection, transaction

from merchants.models import Account, BalanceShortfall, Merchant
from refunds import dispatch, errors, tasks
from refunds import services as svc
from refunds.models import Refund, RefundLeg
from tests import factories as f
from tests.refunds.invariants import assert_all_invariants

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def dispatched(monkeypatch):
    """Channel legs the dispatch relay hands to the workers (recorded here, sent nowhere)."""
    leg_ids: list[int] = []
    lock = threading.Lock()

    def record(leg_id):
        with lock:
            leg_ids.append(leg_id)

    monkeypatch.setattr(tasks.dispatch_leg, "delay", record)
    f.channel("wechat")
    return leg_ids


def run_together(calls) -> list:
    """Run each zero-argument callable in its own thread, all released at once; their results
    (or the exception each raised), in order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def worker(i, call):
        try:
            barrier.wait(timeout=30)
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - reported to the test, which checks every one
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    return results


def outcome(result) -> str:
    if isinstance(result, errors.RefundError):
        return result.code
    if isinstance(result, Exception):
        return f"unexpected {type(result).__name__}: {result}"
    refund, created = result
    return "created" if created else "replayed"


def create_call(m, p, out_refund_no, amount, **kwargs):
    return lambda: svc.refund_create(
        merchant=m, out_trade_no=p.out_trade_no, out_refund_no=out_refund_no, amount=amount, actor="api:test", **kwargs
    )


def test_32_concurrent_refunds_of_one_payment_never_sum_past_what_was_paid(dispatched):
    m = f.merchant()
    p = f.payment(m, amount=10000)
    results = run_together([create_call(m, p, f"R{i:02d}", 500) for i in range(32)])

    assert Counter(map(outcome, results)) == {"created": 20, "AMOUNT_EXCEEDS_REFUNDABLE": 12}
    p.refresh_from_db()
    assert (p.refunded_amount, p.refundable_amount) == (10000, 0)
    assert Refund.objects.filter(payment=p).count() == 20
    assert sum(Refund.objects.filter(payment=p).values_list("amount", flat=True)) == 10000
    assert (f.balance(m, Account.Kind.PENDING_SETTLEMENT), f.balance(m, Account.Kind.REFUND_HOLD)) == (0, 10000)
    assert dispatch.sweep() == 20
    assert sorted(dispatched) == sorted(RefundLeg.objects.values_list("id", flat=True))  # only committed legs
    assert_all_invariants()


def test_32_concurrent_refunds_against_one_short_cash_account_accept_exactly_what_it_covers(dispatched):
    covered, amount = 11, 700
    m = f.merchant(refund_source=Merchant.RefundSource.CASH, funded=covered * amount)
    payments = [f.payment(m, amount=1000) for _ in range(32)]
    results = run_together([create_call(m, p, f"R{i:02d}", amount) for i, p in enumerate(payments)])

    assert Counter(map(outcome, results)) == {"created": covered, "INSUFFICIENT_BALANCE": 32 - covered}
    assert f.balance(m, Account.Kind.CASH) == 0
    assert f.balance(m, Account.Kind.REFUND_HOLD) == covered * amount
    assert f.balance(m, Account.Kind.PENDING_SETTLEMENT) == 32 * 1000  # untouched: not the refund source
    assert Refund.objects.count() == covered
    assert BalanceShortfall.objects.filter(merchant=m, account_kind=Account.Kind.CASH).count() == 32 - covered
    refused = {p.pk for p, r in zip(payments, results, strict=True) if isinstance(r, errors.InsufficientBalance)}
    for p in payments:
        p.refresh_from_db()
        assert p.refunded_amount == (0 if p.pk in refused else amount)
    assert_all_invariants()


def test_same_out_refund_no_from_8_threads_is_one_refund(dispatched):
    m = f.merchant()
    p = f.payment(m, amount=10000)
    # The whole amount: every thread but the first must be answered as a replay, not as
    # "exceeds refundable", even though it waited for the first on the payment's lock.
    results = run_together([create_call(m, p, "SAME", 10000, reason="out of stock") for _ in range(8)])

    assert Counter(map(outcome, results)) == {"created": 1, "replayed": 7}
    assert len({r[0].pk for r in results}) == 1
    assert Refund.objects.count() == 1
    p.refresh_from_db()
    assert p.refunded_amount == 10000
    assert (f.balance(m, Account.Kind.PENDING_SETTLEMENT), f.balance(m, Account.Kind.REFUND_HOLD)) == (0, 10000)
    dispatch.sweep()
    assert len(dispatched) == 1
    assert_all_invariants()


def test_same_out_refund_no_with_different_bodies_from_8_threads_is_one_refund_and_conflicts(dispatched):
    m = f.merchant()
    p = f.payment(m, amount=10000)
    results = run_together([create_call(m, p, "SAME", 1000 + i) for i in range(8)])

    assert Counter(map(outcome, results)) == {"created": 1, "OUT_REFUND_NO_CONFLICT": 7}
    assert Refund.objects.count() == 1
    assert_all_invariants()


def test_creates_approvals_rejections_and_leg_results_of_one_merchant_and_user_never_deadlock(dispatched):
    """Every use case here touches the same merchant's hold account and the same user's balance
    account, in different combinations: they must queue on the locks, never deadlock."""
    m = f.merchant(review_threshold=1000)
    payments = [f.payment(m, amount=5000, user_id="u-1") for _ in range(40)]
    flagged = [
        svc.refund_create(merchant=m, out_trade_no=p.out_trade_no, out_refund_no=f"F{i}", amount=2000,
                          actor="api:test", direction=Refund.Direction.BALANCE)[0]
        for i, p in enumerate(payments[:12])
    ]
    in_flight = [
        svc.refund_create(merchant=m, out_trade_no=p.out_trade_no, out_refund_no=f"C{i}", amount=900, actor="api:test")[0]
        for i, p in enumerate(payments[12:20])
    ]
    assert {r.status for r in flagged} == {Refund.Status.PENDING_REVIEW}
    legs = [r.legs.get() for r in in_flight]

    calls = []
    calls += [lambda r=r: svc.refund_approve(refund_id=r.pk, by="user:bob") for r in flagged[:8]]
    calls += [lambda r=r: svc.refund_reject(refund_id=r.pk, by="user:bob", reason="no") for r in flagged[8:]]
    calls += [lambda leg=leg: svc.leg_record_success(leg_id=leg.pk, by="channel:notify") for leg in legs[:4]]
    calls += [
        lambda leg=leg: svc.leg_record_failure(leg_id=leg.pk, by="channel:notify", failure_reason="ACCOUNT_CLOSED")
        for leg in legs[4:]
    ]
    calls += [
        create_call(m, p, f"N{i}", 800, direction=Refund.Direction.BALANCE if i % 2 else Refund.Direction.ORIGINAL)
        for i, p in enumerate(payments[20:36])
    ]
    results = run_together(calls)

    unexpected = [r for r in results if isinstance(r, Exception)]
    assert not unexpected, unexpected
    assert Counter(r.status for r in Refund.objects.all()) == {
        "SUCCEEDED": 8 + 4 + 8, "REJECTED": 4, "FAILED": 4, "APPROVED": 8,
    }
    user_balance = Account.objects.get(kind=Account.Kind.USER_BALANCE, user_id="u-1", currency="CNY").balance
    assert user_balance == 8 * 2000 + 8 * 800
    assert f.balance(m, Account.Kind.REFUND_HOLD) == 4 * 900 + 8 * 800
    assert f.balance(m, Account.Kind.PENDING_SETTLEMENT) == 40 * 5000 - (8 * 2000 + 8 * 900 + 16 * 800)
    assert_all_invariants()


def test_relays_running_at_once_hand_each_leg_to_the_workers_once(dispatched):
    m = f.merchant()
    for i in range(60):
        svc.refund_create(merchant=m, out_trade_no=f.payment(m, amount=1000).out_trade_no, out_refund_no=f"R{i}",
                          amount=100, actor="t")
    # A beat that fell behind, or two beats by mistake: the relays skip each other's rows.
    counts = run_together([lambda: dispatch.sweep(limit=25) for _ in range(4)])
    assert sum(counts) == 60 and max(counts) <= 25
    assert sorted(dispatched) == sorted(RefundLeg.objects.values_list("id", flat=True))


def test_a_locked_refund_does_not_block_new_refunds_of_the_same_merchant_and_channel(dispatched):
    """Leg results lock their refund and legs only: the merchant and channel rows read with them
    are shared by every refund (a FOR UPDATE on them would queue every new refund behind it)."""
    m = f.merchant()
    p1, p2 = f.payment(m, amount=10000), f.payment(m, amount=10000)
    busy, _ = svc.refund_create(merchant=m, out_trade_no=p1.out_trade_no, out_refund_no="BUSY", amount=100, actor="t")
    locked, created = threading.Event(), threading.Event()

    def hold_the_refund_locked():
        with transaction.atomic():
            svc._lock_refund(busy.pk)
            locked.set()
            return created.wait(timeout=10)  # True: the other refund was created meanwhile

    def create_another():
        assert locked.wait(timeout=10)
        result = svc.refund_create(merchant=m, out_trade_no=p2.out_trade_no, out_refund_no="NEW", amount=100, actor="t")
        created.set()
        return result

    holder, creator = run_together([hold_the_refund_locked, create_another])
    assert holder is True, "creating a refund waited for another refund's lock"
    assert outcome(creator) == "created"

"""The scheduled jobs, each run by hand with a controllable clock: auto-refund of expired vouchers,
T+1 settlement, the dispatch sweep and the unknown-result janitor, the shortfall digest, and the
beat schedule rows that run them.

No worker: what a job hands to Celery is read back from the in-process memory broker (this
module points the Celery app at memory:// whatever CELERY_BROKER_URL says) and run as a worker
would run it, by the task's name and arguments.
"""

import datetime
import importlib
from collections import defaultdict

import pytest
from django.db.models import Sum
from django.utils import timezone

from channels.adapters.sandbox import SandboxAdapter
from channels.models import SandboxPayout
from config import celery_app
from merchants import settlement
from merchants.models import (
    Account,
    BalanceShortfall,
    LedgerEntry,
    LedgerTransaction,
    Settlement,
    ShortfallDigest,
)
from merchants.tasks import settle_t1, shortfall_daily_list
from refunds import dispatch, errors, services
from refunds.models import Refund, RefundLeg, SubmissionAttempt
from tests import factories as f
from tests.brokers import use_broker

pytestmark = pytest.mark.django_db

QUEUES = ("celery", "dispatch")


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture
def broker():
    """The app's messages go to kombu's in-process memory transport; `broker.take()` drains them
    as [(task name, args)], as a worker would receive them."""
    class Broker:
        @staticmethod
        def take() -> list[tuple[str, list]]:
            taken = []
            with celery_app.connection_for_read() as conn:
                for name in QUEUES:
                    queue = conn.SimpleQueue(name)
                    while True:
                        try:
                            message = queue.get(timeout=0.05)
                        except queue.Empty:
                            break
                        taken.append((message.headers["task"], message.payload[0]))
                        message.ack()
                    queue.close()
            return taken

        @staticmethod
        def run(task_name: str, args: list):
            return celery_app.tasks[task_name](*args)

    before = use_broker("memory://")
    assert celery_app.connection_for_write().transport_cls == "memory"
    Broker.take()  # whatever earlier tests of this process left behind
    yield Broker
    Broker.take()
    use_broker(before)


@pytest.fixture
def no_notifications(monkeypatch):
    """The sandbox's HTTP notifications are test_dispatch.py's business: here they are only counted."""
    sent = []
    monkeypatch.setattr(SandboxAdapter, "_notify_later", lambda self, url, payout, times: sent.append((payout, times)))
    return sent


@pytest.fixture(autouse=True)
def default_timings(settings):
    settings.CHANNEL_QUERY_BACKOFF = [60, 300, 1800, 3600]
    settings.CHANNEL_RESUBMIT_GRACE = 120


def local_noon(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(12), tzinfo=timezone.get_current_timezone())


def collected_on(payment, day: datetime.date) -> None:
    """The payment core reported this collection on `day` (the ledger row's timestamp is the clock)."""
    LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.PAYMENT, reference=f"payment:{payment.pk}").update(
        created_at=local_noon(day)
    )


def assert_ledger_balanced():
    per_txn = defaultdict(int)
    for txn_id, currency, amount in LedgerEntry.objects.values_list("transaction_id", "currency", "amount"):
        per_txn[(txn_id, currency)] += amount
    assert not {k: v for k, v in per_txn.items() if v}, "unbalanced ledger transactions"
    for account in Account.objects.all():
        total = account.entries.aggregate(s=Sum("amount"))["s"] or 0
        assert account.balance == total, f"{account}: balance {account.balance} != entries {total}"


def voucher(m, *, paid_at, expires_at, auto=True, amount=10000, channel="wechat"):
    f.channel(channel)
    return f.payment(m, amount=amount, parts=[("channel", amount, channel)], paid_at=paid_at, expires_at=expires_at,
                     auto_refund_on_expiry=auto)


# ---------------------------------------------------------------------------------------------
# Auto-refund of expired, unused vouchers (S6)


def test_expired_voucher_is_refunded_in_full_once_and_only_after_expiry(broker, django_capture_on_commit_callbacks):
    clock = timezone.now()
    m = f.merchant()
    p = voucher(m, paid_at=clock - datetime.timedelta(days=30), expires_at=clock + datetime.timedelta(days=1))

    assert dispatch.auto_refund_expired_vouchers(now=clock) == {"refunded": 0, "refused": 0}  # not expired yet
    assert not Refund.objects.exists()

    later = clock + datetime.timedelta(days=2)
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch.auto_refund_expired_vouchers(now=later) == {"refunded": 1, "refused": 0}
    r = Refund.objects.get()
    assert (r.payment_id, r.amount, r.source, r.out_refund_no) == (p.pk, 10000, Refund.Source.AUTO, f"AUTO-{p.pk}")
    assert r.status == Refund.Status.APPROVED
    leg = r.legs.get()
    assert (leg.route, leg.amount, leg.status) == ("wechat", 10000, RefundLeg.Status.QUEUED)
    assert broker.take() == []  # the leg is the outbox: the relay hands it to the dispatcher
    assert dispatch.sweep(now=later) == 1
    assert broker.take() == [("refunds.tasks.dispatch_leg", [leg.pk])]

    for day in (3, 4):
        with django_capture_on_commit_callbacks(execute=True):
            assert dispatch.auto_refund_expired_vouchers(now=clock + datetime.timedelta(days=day))["refunded"] == 0
    assert Refund.objects.count() == 1
    assert broker.take() == []
    p.refresh_from_db()
    assert p.refunded_amount == p.amount


@pytest.mark.parametrize("fallback", ["manual", "balance"])
def test_expired_voucher_past_the_channel_window_takes_the_fallback_never_the_channel(
    broker, django_capture_on_commit_callbacks, no_notifications, fallback
):
    clock = timezone.now()
    m = f.merchant(fallback_route=fallback)
    p = voucher(m, paid_at=clock - datetime.timedelta(days=400), expires_at=clock - datetime.timedelta(days=1))

    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch.auto_refund_expired_vouchers(now=clock) == {"refunded": 1, "refused": 0}
    r = Refund.objects.get(payment=p)
    assert (r.amount, r.source) == (10000, Refund.Source.AUTO)
    leg = r.legs.get()
    assert (leg.route, leg.channel_id, leg.fallback_reason) == (fallback, None, "WINDOW_EXPIRED")
    if fallback == "balance":
        assert (leg.status, r.status) == (RefundLeg.Status.SUCCEEDED, Refund.Status.SUCCEEDED)
    else:
        assert (leg.status, r.status) == (RefundLeg.Status.MANUAL_PAYOUT, Refund.Status.MANUAL_PAYOUT)
    # Never the channel: nothing for the dispatcher, and the sweep finds nothing either.
    assert broker.take() == []
    assert dispatch.sweep(now=clock + datetime.timedelta(days=1)) == 0
    assert broker.take() == []
    assert not SubmissionAttempt.objects.exists() and not SandboxPayout.objects.exists() and not no_notifications
    assert dispatch.auto_refund_expired_vouchers(now=clock + datetime.timedelta(days=1))["refunded"] == 0
    assert Refund.objects.count() == 1


def test_unexpired_voucher_or_one_without_the_flag_is_untouched():
    clock = timezone.now()
    m = f.merchant()
    unexpired = voucher(m, paid_at=clock - datetime.timedelta(days=3), expires_at=clock + datetime.timedelta(minutes=1))
    no_flag = voucher(m, paid_at=clock - datetime.timedelta(days=3), expires_at=clock - datetime.timedelta(days=1),
                      auto=False)
    plain = f.payment(m, amount=5000)  # no expiry at all
    assert dispatch.auto_refund_expired_vouchers(now=clock) == {"refunded": 0, "refused": 0}
    assert not Refund.objects.exists()
    for p in (unexpired, no_flag, plain):
        p.refresh_from_db()
        assert p.refunded_amount == 0


def test_partly_refunded_voucher_is_not_unused_and_is_left_alone():
    clock = timezone.now()
    m = f.merchant()
    p = voucher(m, paid_at=clock - datetime.timedelta(days=3), expires_at=clock - datetime.timedelta(days=1))
    f.refund(m, p, 1000)
    assert dispatch.auto_refund_expired_vouchers(now=clock) == {"refunded": 0, "refused": 0}
    assert Refund.objects.count() == 1


def test_an_auto_refund_rejected_in_review_is_not_retried_and_does_not_block_the_next():
    clock = timezone.now()
    m = f.merchant(review_threshold=0)  # every refund waits for a person
    first = voucher(m, paid_at=clock - datetime.timedelta(days=30), expires_at=clock - datetime.timedelta(days=2))
    second = voucher(m, paid_at=clock - datetime.timedelta(days=30), expires_at=clock - datetime.timedelta(days=1))
    assert dispatch.auto_refund_expired_vouchers(now=clock, limit=1) == {"refunded": 1, "refused": 0}
    r = Refund.objects.get(payment=first)
    assert r.status == Refund.Status.PENDING_REVIEW
    services.refund_reject(refund_id=r.pk, by="user:reviewer", reason="the voucher was used at the till")
    first.refresh_from_db()
    assert first.refunded_amount == 0  # refundable again, but a person said no: not the job's to retry

    assert dispatch.auto_refund_expired_vouchers(now=clock, limit=1) == {"refunded": 1, "refused": 0}
    assert Refund.objects.get(payment=second).source == Refund.Source.AUTO
    assert dispatch.auto_refund_expired_vouchers(now=clock, limit=1) == {"refunded": 0, "refused": 0}
    assert list(Refund.objects.filter(payment=first).values_list("status", flat=True)) == [Refund.Status.REJECTED]


# ---------------------------------------------------------------------------------------------
# T+1 settlement (S19, S20)


def test_settlement_moves_yesterdays_collections_to_cash_once():
    today = timezone.localdate()
    yesterday = today - datetime.timedelta(days=1)
    m = f.merchant()
    for amount in (10000, 5000):
        collected_on(f.payment(m, amount=amount), yesterday)
    collected_on(f.payment(m, amount=2000), yesterday - datetime.timedelta(days=1))  # the day before: not this run
    f.payment(m, amount=700)  # today's: tomorrow's run
    assert f.balance(m, Account.Kind.PENDING_SETTLEMENT) == 17700

    done = settlement.settle_day(day=yesterday)
    assert [(s.merchant_id, s.day, s.collected, s.settled) for s in done] == [(m.pk, yesterday, 15000, 15000)]
    assert f.balance(m, Account.Kind.PENDING_SETTLEMENT) == 2700
    assert f.balance(m, Account.Kind.CASH) == 15000

    assert settlement.settle_day(day=yesterday) == []  # a rerun moves nothing more
    assert settle_t1(day=yesterday.isoformat()) == 0  # nor does the task, however often beat sends it
    assert f.balance(m, Account.Kind.PENDING_SETTLEMENT) == 2700
    assert f.balance(m, Account.Kind.CASH) == 15000
    assert Settlement.objects.count() == 1
    assert LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.SETTLEMENT).count() == 1
    assert_ledger_balanced()


def test_the_daily_task_settles_yesterday_by_default():
    yesterday = timezone.localdate() - datetime.timedelta(days=1)
    m = f.merchant()
    collected_on(f.payment(m, amount=4200), yesterday)
    assert settle_t1() == 1
    assert Settlement.objects.get().day == yesterday
    assert f.balance(m, Account.Kind.CASH) == 4200
    assert settle_t1() == 0


def test_refunds_held_from_pending_settlement_in_between_reduce_what_moves():
    yesterday = timezone.localdate() - datetime.timedelta(days=1)
    m = f.merchant()  # refunds are held from pending settlement
    p = f.payment(m, amount=10000)
    collected_on(p, yesterday)
    f.refund(m, p, 3000)  # this morning, before the run
    assert f.balance(m, Account.Kind.PENDING_SETTLEMENT) == 7000
    other = f.merchant()
    collected_on(f.payment(other, amount=8000), yesterday)

    done = {s.merchant_id: s for s in settlement.settle_day(day=yesterday)}
    assert (done[m.pk].collected, done[m.pk].settled) == (10000, 7000)
    assert (done[other.pk].collected, done[other.pk].settled) == (8000, 8000)
    assert f.balance(m, Account.Kind.PENDING_SETTLEMENT) == 0
    assert f.balance(m, Account.Kind.CASH) == 7000
    assert f.balance(m, Account.Kind.REFUND_HOLD) == 3000  # still owed to the user, never settled
    assert f.balance(other, Account.Kind.CASH) == 8000

    assert settlement.settle_day(day=yesterday) == []
    assert f.balance(m, Account.Kind.CASH) == 7000
    assert_ledger_balanced()


# ---------------------------------------------------------------------------------------------
# The dispatch relay (dispatch.sweep) and the janitor


def queued_leg(amount, *, channel="wechat"):
    """A refund approved and committed: its QUEUED leg waits for the relay."""
    f.channel(channel)
    m = f.merchant()
    p = f.payment(m, amount=10000, parts=[("channel", 10000, channel)])
    r = f.refund(m, p, amount)
    leg = r.legs.get()
    assert leg.status == RefundLeg.Status.QUEUED
    return r, leg


def test_the_relay_hands_a_committed_queued_leg_to_the_workers_once(broker, no_notifications):
    r, leg = queued_leg(3000)
    assert broker.take() == []  # creating the refund talked to no broker

    assert dispatch.sweep() == 1
    messages = broker.take()
    assert messages == [("refunds.tasks.dispatch_leg", [leg.pk])]
    assert broker.run(*messages[0]) == "submitted:PROCESSING"  # as the worker would
    leg.refresh_from_db()
    assert leg.status == RefundLeg.Status.PROCESSING
    assert SubmissionAttempt.objects.filter(leg=leg).count() == 1
    assert SandboxPayout.objects.filter(refund_no=leg.submission_no).count() == 1
    assert len(no_notifications) == 1

    # Sent: the relay leaves it alone now, and a duplicate message changes nothing.
    assert dispatch.sweep() == 0
    assert broker.take() == []
    assert broker.run(*messages[0]) == "not-queued"
    assert SandboxPayout.objects.filter(refund_no=leg.submission_no).count() == 1


def test_the_relay_sends_a_leg_again_only_once_its_message_may_be_lost(broker, settings):
    settings.DISPATCH_RELAY_GRACE = 120
    r, leg = queued_leg(3000)
    clock = timezone.now()
    assert dispatch.sweep(now=clock) == 1
    assert broker.take() == [("refunds.tasks.dispatch_leg", [leg.pk])]
    # Its message waits in a busy queue: every second's relay leaves it alone...
    for seconds in (1, 2, 60, 119):
        assert dispatch.sweep(now=clock + datetime.timedelta(seconds=seconds)) == 0
    assert broker.take() == []
    # ...until the grace has passed with the leg still QUEUED: the message was lost, send it again.
    assert dispatch.sweep(now=clock + datetime.timedelta(seconds=120)) == 1
    assert broker.take() == [("refunds.tasks.dispatch_leg", [leg.pk])]


def test_beats_relay_drains_a_backlog_batch_after_batch(broker):
    legs = [queued_leg(3000 + i)[1] for i in range(5)]
    assert dispatch.relay(batch=2) == 5  # batches of 2, 2, then 1: not full, done
    assert sorted(args[0] for _, args in broker.take()) == sorted(leg.pk for leg in legs)
    assert dispatch.relay(batch=2) == 0


def test_the_relay_leaves_a_leg_held_back_until_it_is_due(broker):
    r, leg = queued_leg(3000)
    clock = timezone.now()
    RefundLeg.objects.filter(pk=leg.pk).update(next_action_at=clock + datetime.timedelta(minutes=5))  # rate-limited
    assert dispatch.sweep(now=clock) == 0
    assert dispatch.sweep(now=clock + datetime.timedelta(minutes=5)) == 1
    assert broker.take() == [("refunds.tasks.dispatch_leg", [leg.pk])]


def test_janitor_queries_a_processing_leg_with_no_answer_only_when_due(broker):
    r, leg = queued_leg(3051)  # the channel pays but its answer is lost
    clock = timezone.now()
    assert dispatch.leg_dispatch(leg_id=leg.pk, now=clock) == "submitted:UNKNOWN"
    leg.refresh_from_db()
    assert leg.status == RefundLeg.Status.PROCESSING
    assert leg.next_action_at == clock + datetime.timedelta(seconds=60)

    assert dispatch.janitor(now=clock) == 0  # not due: the channel is asked after a minute
    assert dispatch.janitor(now=clock + datetime.timedelta(seconds=59)) == 0
    assert broker.take() == []
    due = clock + datetime.timedelta(seconds=61)
    assert dispatch.janitor(now=due) == 1
    messages = broker.take()
    assert messages == [("refunds.tasks.query_leg", [leg.pk])]
    assert dispatch.leg_query(leg_id=leg.pk, now=due) == "queried:SUCCEEDED"
    assert Refund.objects.get(pk=r.pk).status == Refund.Status.SUCCEEDED
    assert broker.run(*messages[0]) == "not-processing"  # a second look changes nothing

    assert dispatch.janitor(now=due + datetime.timedelta(hours=2)) == 0
    assert SubmissionAttempt.objects.filter(leg=leg).count() == 1
    assert SandboxPayout.objects.filter(refund_no=leg.submission_no).count() == 1


def test_janitor_backs_off_after_each_unanswered_query(broker, monkeypatch):
    r, leg = queued_leg(3051)
    clock = timezone.now()
    dispatch.leg_dispatch(leg_id=leg.pk, now=clock)
    from channels.adapters import ChannelError

    def silent(self, refund_no):
        raise ChannelError("no answer")

    monkeypatch.setattr(SandboxAdapter, "query", silent)
    t = clock + datetime.timedelta(seconds=60)
    assert dispatch.leg_query(leg_id=leg.pk, now=t) == "queried:UNKNOWN"
    leg.refresh_from_db()
    assert (leg.check_count, leg.next_action_at) == (1, t + datetime.timedelta(seconds=300))
    assert dispatch.janitor(now=t + datetime.timedelta(seconds=299)) == 0
    assert dispatch.janitor(now=t + datetime.timedelta(seconds=300)) == 1
    broker.take()


# ---------------------------------------------------------------------------------------------
# The daily list of merchants short of money (S21)


def test_shortfall_digest_lists_a_merchant_refused_for_insufficient_balance_yesterday():
    today = timezone.localdate()
    yesterday = today - datetime.timedelta(days=1)
    short = f.merchant(refund_source="cash")  # refunds come out of cash, and it holds nothing
    p = f.payment(short, amount=10000)
    for amount in (3000, 2000):
        with pytest.raises(errors.InsufficientBalance):
            f.refund(short, p, amount)
    assert not Refund.objects.filter(merchant=short).exists()
    BalanceShortfall.objects.filter(merchant=short).update(created_at=local_noon(yesterday))
    fine = f.merchant(refund_source="cash", funded=50000)
    f.refund(fine, f.payment(fine, amount=10000), 3000)
    late = f.merchant(refund_source="cash")  # refused today: tomorrow's list
    with pytest.raises(errors.InsufficientBalance):
        f.refund(late, f.payment(late, amount=10000), 1000)

    digests = settlement.shortfall_digest(day=yesterday)
    assert [(d.merchant_id, d.currency, d.refusals, d.amount_refused) for d in digests] == [(short.pk, "CNY", 2, 5000)]
    assert shortfall_daily_list() == 1  # the daily task: yesterday by default
    assert ShortfallDigest.objects.filter(day=yesterday).count() == 1  # a rerun rewrites, never duplicates
    assert [d.merchant_id for d in settlement.shortfall_digest(day=today)] == [late.pk]


# ---------------------------------------------------------------------------------------------
# The beat schedule


def test_beat_schedule_rows_exist_after_migrate():
    from django_celery_beat.models import PeriodicTask

    jobs = importlib.import_module("refunds.migrations.0003_periodic_jobs")
    relay = importlib.import_module("refunds.migrations.0007_dispatch_relay_every_second")
    rows = {t.name: t for t in PeriodicTask.objects.select_related("interval", "crontab")}
    rows[relay.OLD_NAME] = rows.pop(relay.NEW_NAME)
    for name, task, seconds in jobs.INTERVALS:
        row = rows[name]
        if task == "refunds.tasks.dispatch_sweep":
            seconds = 1  # 0007: the relay runs every second
        assert (row.task, row.enabled, row.interval.every, row.interval.period) == (task, True, seconds, "seconds")
        assert task in celery_app.tasks
    for name, task, minute, hour in jobs.CRONTABS:
        row = rows[name]
        assert (row.task, row.enabled, row.crontab.minute, row.crontab.hour) == (task, True, minute, hour)
        assert task in celery_app.tasks
    assert {task for _, task, *_ in jobs.INTERVALS + jobs.CRONTABS} == {
        "refunds.tasks.dispatch_sweep", "refunds.tasks.unknown_result_janitor", "refunds.tasks.auto_refund_expired_vouchers",
        "merchants.tasks.settle_t1", "merchants.tasks.shortfall_daily_list",
    }

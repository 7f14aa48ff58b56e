"""Merchant and marketing notifications: the outbox, signed delivery to real HTTP receivers on
127.0.0.1, retries with backoff, slow receivers, the once-a-day shortfall notice, and redelivery."""

import datetime
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from merchants import tasks, webhooks
from merchants.models import Account, BalanceShortfall, Merchant, WebhookAttempt, WebhookDelivery
from refunds import errors, risk
from refunds import services as svc
from refunds.models import Refund, RefundLeg
from refunds.selectors import refund_as_dict
from tests import factories as f

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_verify():
    """The receiver snippet of the README's "Verifying notifications", run as it is printed."""
    match = re.search(r"<!-- receiver:start -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert match, "README.md lost its receiver snippet"
    code = match.group(1)
    assert len(code.strip().splitlines()) <= 10
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - our own README
    return namespace["verify"]


VERIFY = readme_verify()


class Receiver:
    """An HTTP endpoint on an ephemeral port that checks each request with the README's code.

    `status` is an int or a callable of the request's number (1-based); `delay` seconds pass
    before it answers. A request whose signature does not verify gets 401."""

    def __init__(self, *, status=200, delay: float = 0.0, secret: str = ""):
        self.secret = secret
        self.status = status
        self.delay = delay
        self.received: list[dict] = []
        self.got_request = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                verified = VERIFY(receiver.secret, self.headers.get("X-Refund-Signature", ""), body)
                receiver.received.append({"headers": dict(self.headers), "body": body, "verified": verified,
                                          "json": json.loads(body)})
                receiver.got_request.set()
                time.sleep(receiver.delay)
                status = receiver.status(len(receiver.received)) if callable(receiver.status) else receiver.status
                answer = b"ok" if 200 <= status < 300 else b"boom: " + b"x" * 2000
                if not verified:
                    status, answer = 401, b"bad signature"
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the sender gave up waiting (the slow receiver)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[str]:
        return [r["json"]["event"] for r in self.received]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def make_receiver():
    started: list[Receiver] = []

    def make(**kwargs) -> Receiver:
        started.append(Receiver(**kwargs))
        return started[-1]

    yield make
    for receiver in started:
        receiver.close()


@pytest.fixture
def scheduled(monkeypatch) -> list[int]:
    """Delivery task messages, recorded instead of sent to the broker."""
    sent: list[int] = []
    monkeypatch.setattr(tasks.deliver_webhook, "delay", sent.append)
    return sent


@pytest.fixture(autouse=True)
def _channels(db):
    f.channel("wechat")


def deliveries(event: str | None = None):
    rows = WebhookDelivery.objects.order_by("id")
    return rows.filter(event=event) if event else rows


def reload(obj):
    return type(obj).objects.get(pk=obj.pk)


# --- merchant notices: the four outcomes, exactly once each, signed -------------------------------


def test_each_outcome_reaches_a_real_receiver_once_with_a_signature_the_readme_verifies(
    make_receiver, scheduled, django_capture_on_commit_callbacks
):
    rx = make_receiver()
    m = f.merchant(webhook_url=rx.url, review_threshold=5000)
    rx.secret = m.webhook_secret
    p = f.payment(m, amount=10000)
    r = f.refund(m, p, 3000)
    leg = r.legs.get()
    assert r.status == Refund.Status.APPROVED and not deliveries().exists()  # accepted: no outcome yet

    svc.leg_submit(leg_id=leg.pk, by="task:dispatch")
    assert not deliveries().exists()  # PROCESSING is not an outcome
    with django_capture_on_commit_callbacks(execute=True):
        svc.leg_record_failure(leg_id=leg.pk, by="channel:notify", failure_reason="ACCOUNT_CLOSED")
    with django_capture_on_commit_callbacks(execute=True):
        svc.leg_confirm_failure(leg_id=leg.pk, by="user:finance", reason="the statement confirms it")
    with django_capture_on_commit_callbacks(execute=True):
        svc.leg_record_success(leg_id=leg.pk, by="user:finance", reason="paid to the card")
    flagged = f.refund(m, p, 6000)
    assert flagged.status == Refund.Status.PENDING_REVIEW
    with django_capture_on_commit_callbacks(execute=True):
        svc.refund_reject(refund_id=flagged.pk, by="user:supervisor", reason="order brushing")

    rows = list(deliveries())
    assert [d.event for d in rows] == ["refund.failed", "refund.manual_payout", "refund.succeeded", "refund.rejected"]
    assert scheduled == [d.pk for d in rows]  # each handed to a worker once, after its commit
    assert {d.url for d in rows} == {rx.url}
    assert [d.reference for d in rows] == [f"refund:{r.pk}"] * 3 + [f"refund:{flagged.pk}"]

    for pk in scheduled:
        assert webhooks.webhook_deliver(delivery_id=pk) == "delivered"
    # A duplicate message and the sweep send nothing again.
    for pk in scheduled:
        assert webhooks.webhook_deliver(delivery_id=pk) == "not-due"
    assert webhooks.webhook_sweep() == 0

    assert rx.events() == ["refund.failed", "refund.manual_payout", "refund.succeeded", "refund.rejected"]
    assert all(req["verified"] for req in rx.received)
    assert all(req["headers"]["Content-Type"] == "application/json" for req in rx.received)
    assert [req["json"]["data"]["status"] for req in rx.received] == ["FAILED", "MANUAL_PAYOUT", "SUCCEEDED", "REJECTED"]
    assert rx.received[0]["json"]["data"]["failure_reason"] == "ACCOUNT_CLOSED"
    assert len({req["json"]["id"] for req in rx.received}) == 4
    # The body's data is the refund object exactly as GET /refunds/{id} shows the final states.
    assert rx.received[2]["json"]["data"] == refund_as_dict(reload(r))
    rejected = rx.received[3]["json"]["data"]
    assert rejected == refund_as_dict(reload(flagged))
    assert [leg["status"] for leg in rejected["legs"]] == [RefundLeg.Status.CANCELLED]
    for d in deliveries():
        assert (d.status, d.attempts, d.delivered_at is not None) == (WebhookDelivery.Status.DELIVERED, 1, True)
        assert d.attempt_log.get().status_code == 200


def test_refund_notify_url_wins_over_the_merchants_and_no_url_means_no_notice(make_receiver):
    default, own = make_receiver(), make_receiver()
    m = f.merchant(webhook_url=default.url)
    p = f.payment(m, amount=10000)
    f.refund(m, p, 1000, direction="balance", notify_url=own.url)  # credited at once: SUCCEEDED
    assert deliveries().get().url == own.url

    quiet = f.merchant()
    f.refund(quiet, f.payment(quiet, amount=10000), 1000, direction="balance")
    assert Refund.objects.filter(merchant=quiet, status=Refund.Status.SUCCEEDED).exists()
    assert deliveries().count() == 1


def test_a_refund_blocked_by_risk_at_creation_is_announced_with_its_cancelled_legs(
    make_receiver, scheduled, django_capture_on_commit_callbacks
):
    # Creation goes through no transition; its legs are inserted after the refund row, so the
    # body is rendered again once committed, and only then sent.
    m = f.merchant(webhook_url=make_receiver().url)
    p = f.payment(m, amount=10000)
    blocked = risk.Decision(outcome=risk.REJECT, reasons=["stolen account"])
    with mock.patch("refunds.risk.assess_refund", return_value=blocked):
        with django_capture_on_commit_callbacks(execute=True):
            r = f.refund(m, p, 3000)
            d = deliveries().get()
            assert d.payload["data"]["legs"] == [] and scheduled == []  # not yet committed
    assert r.status == Refund.Status.REJECTED
    d = reload(d)
    assert d.event == "refund.rejected" and scheduled == [d.pk]
    assert d.payload["data"] == refund_as_dict(reload(r))
    assert [leg["status"] for leg in d.payload["data"]["legs"]] == [RefundLeg.Status.CANCELLED]
    assert d.payload["data"]["failure_reason"] == "RISK_REJECTED"


def test_the_sweep_is_scheduled_every_30_seconds():
    from django_celery_beat.models import PeriodicTask

    job = PeriodicTask.objects.get(task="merchants.tasks.webhook_sweep")
    assert job.enabled and (job.interval.every, job.interval.period) == (30, "seconds")


def test_the_delivery_task_runs_on_the_notifications_queue():
    from config.celery import app

    route = app.amqp.router.route({}, "merchants.tasks.deliver_webhook", args=(1,), kwargs={})
    assert route["queue"].name == "notifications"


# --- the outbox row lives and dies with the change --------------------------------------------------


def test_a_rolled_back_refund_leaves_no_notice(make_receiver, django_capture_on_commit_callbacks, scheduled):
    m = f.merchant(webhook_url=make_receiver().url)
    p = f.payment(m, amount=10000)
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError):
        with transaction.atomic():
            r = f.refund(m, p, 1000, direction="balance")
            assert r.status == Refund.Status.SUCCEEDED
            assert deliveries("refund.succeeded").count() == 1  # written in the same transaction
            raise RuntimeError("the caller fails after the refund")
    assert not Refund.objects.exists()
    assert not deliveries().exists()
    assert callbacks == [] and scheduled == []


def test_a_success_undone_by_insufficient_balance_is_never_announced(make_receiver):
    # The balance leg succeeds (a transition) before the hold is posted; the hold then fails
    # and takes the whole transaction, notice included, with it. Only the shortfall remains.
    m = f.merchant(webhook_url=make_receiver().url, refund_source=Merchant.RefundSource.CASH)
    p = f.payment(m, amount=10000)
    with pytest.raises(errors.InsufficientBalance):
        f.refund(m, p, 1000, direction="balance")
    assert not Refund.objects.exists()
    assert [d.event for d in deliveries()] == ["merchant.insufficient_balance"]


# --- retries --------------------------------------------------------------------------------------


def test_a_failing_receiver_is_retried_with_backoff_for_more_than_a_day_then_dead(make_receiver):
    rx = make_receiver(status=500, delay=0.05)
    m = f.merchant(webhook_url=rx.url)
    rx.secret = m.webhook_secret
    f.refund(m, f.payment(m, amount=10000), 1000, direction="balance")
    d = deliveries().get()
    due, outcomes = d.next_attempt_at, []
    for i in range(10):
        if i:
            assert webhooks.webhook_deliver(delivery_id=d.pk, now=due - datetime.timedelta(seconds=1)) == "not-due"
        outcomes.append(webhooks.webhook_deliver(delivery_id=d.pk, now=due))
        due = reload(d).next_attempt_at
    assert outcomes == ["failed"] * 9 + ["dead"]

    d = reload(d)
    assert (d.status, d.attempts, d.last_error) == (WebhookDelivery.Status.DEAD, 10, "HTTP 500")
    attempts = list(d.attempt_log.order_by("id"))
    gaps = [(b.attempted_at - a.attempted_at).total_seconds() for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps == [60, 300, 900, 3600, 7200, 14400, 28800, 28800, 28800]
    assert sum(gaps) >= 24 * 3600
    for attempt in attempts:
        assert attempt.status_code == 500 and attempt.error == "HTTP 500"
        assert 50 <= attempt.latency_ms < 5000
        assert attempt.response_excerpt.startswith("boom: ") and len(attempt.response_excerpt) == 500
    assert len(rx.received) == 10 and all(req["verified"] for req in rx.received)
    assert len({req["json"]["id"] for req in rx.received}) == 1  # the same event every time
    # Dead is dead: neither time nor the sweep sends it again.
    later = due + datetime.timedelta(days=30)
    assert webhooks.webhook_deliver(delivery_id=d.pk, now=later) == "not-due"
    assert webhooks.webhook_sweep(now=later) == 0


def test_a_receiver_that_recovers_gets_it_on_the_next_due_attempt(make_receiver, scheduled):
    rx = make_receiver(status=lambda n: 503 if n < 3 else 204)
    m = f.merchant(webhook_url=rx.url)
    rx.secret = m.webhook_secret
    f.refund(m, f.payment(m, amount=10000), 1000, direction="balance")
    d = deliveries().get()
    now = timezone.now()
    assert webhooks.webhook_deliver(delivery_id=d.pk, now=now) == "failed"
    # The sweep hands a retry to a worker only once it is due.
    assert webhooks.webhook_sweep(now=now + datetime.timedelta(seconds=59)) == 0
    assert webhooks.webhook_sweep(now=now + datetime.timedelta(seconds=60)) == 1 and scheduled[-1] == d.pk
    assert webhooks.webhook_deliver(delivery_id=d.pk, now=now + datetime.timedelta(seconds=60)) == "failed"
    assert webhooks.webhook_deliver(delivery_id=d.pk, now=now + datetime.timedelta(seconds=360)) == "delivered"
    d = reload(d)
    assert (d.status, d.attempts, d.last_error) == (WebhookDelivery.Status.DELIVERED, 3, "")
    assert [a.status_code for a in d.attempt_log.order_by("id")] == [503, 503, 204]


def test_two_workers_never_both_send_and_a_lapsed_claim_is_sent_again(make_receiver, scheduled):
    rx = make_receiver()
    m = f.merchant(webhook_url=rx.url)
    rx.secret = m.webhook_secret
    d = webhooks.webhook_enqueue(merchant=m, event="refund.succeeded", data={"id": "x"}, url=rx.url)
    now = timezone.now()
    # A worker claimed it and died before recording anything: the row is "sending".
    WebhookDelivery.objects.filter(pk=d.pk).update(status=WebhookDelivery.Status.SENDING,
                                                   next_attempt_at=now + webhooks.CLAIM_LEASE)
    assert webhooks.webhook_deliver(delivery_id=d.pk, now=now) == "not-due"  # claimed: another worker keeps off
    assert webhooks.webhook_sweep(now=now + datetime.timedelta(seconds=60)) == 0  # the claim still holds
    lapse = now + webhooks.CLAIM_LEASE
    assert webhooks.webhook_sweep(now=lapse) == 1
    assert reload(d).status == WebhookDelivery.Status.FAILED and "worker stopped" in reload(d).last_error
    assert webhooks.webhook_deliver(delivery_id=d.pk, now=lapse) == "delivered"
    assert len(rx.received) == 1


# --- a slow receiver ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_slow_receiver_does_not_hold_up_another(make_receiver, scheduled, settings):
    settings.WEBHOOK_TIMEOUT = 1.5
    slow, fast = make_receiver(delay=5), make_receiver()
    m_slow, m_fast = f.merchant(webhook_url=slow.url), f.merchant(webhook_url=fast.url)
    slow.secret, fast.secret = m_slow.webhook_secret, m_fast.webhook_secret
    d_slow = webhooks.webhook_enqueue(merchant=m_slow, event="refund.succeeded", data={"n": 1}, url=slow.url)
    d_fast = webhooks.webhook_enqueue(merchant=m_fast, event="refund.succeeded", data={"n": 2}, url=fast.url)
    assert scheduled == [d_slow.pk, d_fast.pk]  # one task each: separate workers take them

    outcome = {}

    def worker():
        try:
            outcome["slow"] = webhooks.webhook_deliver(delivery_id=d_slow.pk)
        finally:
            connection.close()

    started = time.monotonic()
    thread = threading.Thread(target=worker)
    thread.start()
    assert slow.got_request.wait(5)  # the slow POST is in flight, no transaction held meanwhile
    assert webhooks.webhook_deliver(delivery_id=d_fast.pk) == "delivered"
    fast_done = time.monotonic() - started
    assert thread.is_alive() and fast_done < 1.5
    thread.join(10)

    assert outcome["slow"] == "failed"
    elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 4.5  # the timeout was honoured, not the receiver's 5 s
    attempt = WebhookAttempt.objects.get(delivery_id=d_slow.pk)
    assert attempt.status_code is None and attempt.error == "no answer within 1.5 s"
    assert 1400 <= attempt.latency_ms < 4500
    assert reload(d_slow).status == WebhookDelivery.Status.FAILED
    assert reload(d_fast).status == WebhookDelivery.Status.DELIVERED and len(fast.received) == 1


# --- marketing (S17, S22) -------------------------------------------------------------------------

MIXED = [("channel", 8000, "wechat"), ("balance", 1000), ("coupon", 1000)]


@pytest.fixture
def marketing(make_receiver, settings):
    rx = make_receiver(secret="mk_test_secret")
    settings.MARKETING_WEBHOOK_URL = rx.url
    settings.MARKETING_WEBHOOK_SECRET = "mk_test_secret"
    return rx


def test_marketing_hears_that_a_refund_took_a_coupons_share(marketing, scheduled, django_capture_on_commit_callbacks):
    m = f.merchant()  # no webhook URL of its own: marketing's notice does not depend on it
    p = f.payment(m, amount=10000, parts=MIXED)
    with django_capture_on_commit_callbacks(execute=True):
        r = f.refund(m, p, 5000)
    assert r.coupon_not_returned == 500
    d = deliveries().get()
    assert (d.event, d.audience, d.url, d.merchant_id) == ("coupon.refund", "marketing", marketing.url, m.pk)
    assert scheduled == [d.pk]
    assert webhooks.webhook_deliver(delivery_id=d.pk) == "delivered"
    body = marketing.received[0]["json"]
    assert marketing.received[0]["verified"]  # signed with MARKETING_WEBHOOK_SECRET, not the merchant's
    assert body["event"] == "coupon.refund"
    data = body["data"]
    assert (data["coupon_id"], data["coupon_share"], data["currency"], data["returned"]) == ("C-1", 500, "CNY", False)
    assert (data["refund_id"], data["out_trade_no"], data["merchant"]) == (str(r.pk), p.out_trade_no, m.code)


def test_a_refund_waiting_for_review_also_tells_marketing_and_a_coupon_first_one_its_whole_share(marketing):
    m = f.merchant(review_threshold=100, allocation_strategy=Merchant.Allocation.COUPON_FIRST)
    p = f.payment(m, amount=10000, parts=MIXED)
    r = f.refund(m, p, 1500)
    assert r.status == Refund.Status.PENDING_REVIEW
    assert deliveries("coupon.refund").get().payload["data"]["coupon_share"] == 1000


def test_no_marketing_notice_without_a_coupon_or_without_a_marketing_url(marketing, settings):
    m = f.merchant()
    f.refund(m, f.payment(m, amount=10000), 5000)  # channel only
    settings.MARKETING_WEBHOOK_URL = ""
    f.refund(m, f.payment(m, amount=10000, parts=MIXED), 5000)
    assert not deliveries().exists()


# --- insufficient balance (S21) -------------------------------------------------------------------


def test_insufficient_balance_notice_goes_at_most_once_a_day_per_merchant(
    make_receiver, scheduled, django_capture_on_commit_callbacks
):
    rx = make_receiver()
    m = f.merchant(webhook_url=rx.url, refund_source=Merchant.RefundSource.CASH, funded=200)
    rx.secret = m.webhook_secret
    p = f.payment(m, amount=10000)
    for out_refund_no in ("R1", "R2", "R3"):
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(errors.InsufficientBalance):
            f.refund(m, p, 3000, out_refund_no=out_refund_no)
    assert BalanceShortfall.objects.filter(merchant=m).count() == 3
    d = deliveries().get()
    assert d.event == "merchant.insufficient_balance" and scheduled == [d.pk]
    data = d.payload["data"]
    assert (data["account_kind"], data["currency"], data["amount_needed"], data["available"]) == (
        Account.Kind.CASH, "CNY", 3000, 200)
    assert webhooks.webhook_deliver(delivery_id=d.pk) == "delivered" and rx.received[0]["verified"]

    other = f.merchant(webhook_url=rx.url, refund_source=Merchant.RefundSource.CASH)
    with pytest.raises(errors.InsufficientBalance):
        f.refund(other, f.payment(other, amount=10000), 3000)
    assert deliveries("merchant.insufficient_balance").count() == 2  # per merchant

    tomorrow = timezone.now() + datetime.timedelta(days=1)
    with mock.patch("django.utils.timezone.now", return_value=tomorrow):
        with pytest.raises(errors.InsufficientBalance):
            f.refund(m, p, 3000, out_refund_no="R4")
    assert deliveries("merchant.insufficient_balance").filter(merchant=m).count() == 2  # a new day


# --- operators: the admin ------------------------------------------------------------------------


@pytest.fixture
def dead_delivery(make_receiver):
    rx = make_receiver()
    m = f.merchant(webhook_url=rx.url)
    rx.secret = m.webhook_secret
    f.refund(m, f.payment(m, amount=10000), 1000, direction="balance")
    d = deliveries().get()
    WebhookDelivery.objects.filter(pk=d.pk).update(status=WebhookDelivery.Status.DEAD, attempts=10,
                                                   last_error="HTTP 500")
    WebhookAttempt.objects.create(delivery=d, attempted_at=timezone.now(), status_code=500, latency_ms=12,
                                  error="HTTP 500", response_excerpt="boom")
    d.rx = rx
    return d


def test_redeliver_admin_action_resets_a_dead_delivery_and_schedules_it(
    admin_client, dead_delivery, scheduled, django_capture_on_commit_callbacks
):
    url = reverse("admin:merchants_webhookdelivery_changelist")
    page = admin_client.get(url)
    assert page.status_code == 200 and b"redeliver_selected" in page.content
    filtered = admin_client.get(url, {"event": "refund.succeeded", "status": "dead", "q": str(dead_delivery.reference)})
    assert filtered.status_code == 200 and filtered.context["cl"].result_count == 1
    by_refund_id = admin_client.get(url, {"q": dead_delivery.reference.removeprefix("refund:")})
    assert by_refund_id.context["cl"].result_count == 1
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"action": "redeliver_selected", "_selected_action": [dead_delivery.pk]})
    assert response.status_code == 302
    d = reload(dead_delivery)
    assert (d.status, d.attempts) == (WebhookDelivery.Status.PENDING, 0)
    assert d.next_attempt_at <= timezone.now()
    assert scheduled == [d.pk]
    assert LogEntry.objects.filter(object_id=str(d.pk), change_message="Redelivered").exists()
    assert webhooks.webhook_deliver(delivery_id=d.pk) == "delivered"
    assert len(dead_delivery.rx.received) == 1 and dead_delivery.rx.received[0]["verified"]


def test_the_change_page_shows_the_attempts_and_a_redeliver_button(
    admin_client, dead_delivery, scheduled, django_capture_on_commit_callbacks
):
    page = admin_client.get(reverse("admin:merchants_webhookdelivery_change", args=[dead_delivery.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    button = reverse("admin:merchants_webhookdelivery_redeliver", args=[dead_delivery.pk])
    assert button in html and "boom" in html and "refund.succeeded" in html
    assert admin_client.get(button).status_code == 405
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(button).status_code == 302
    assert reload(dead_delivery).status == WebhookDelivery.Status.PENDING and scheduled == [dead_delivery.pk]


def test_a_viewer_sees_deliveries_but_cannot_redeliver(client, dead_delivery, scheduled):
    viewer = get_user_model().objects.create_user("auditor", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_webhookdelivery"))
    client.force_login(viewer)
    page = client.get(reverse("admin:merchants_webhookdelivery_change", args=[dead_delivery.pk]))
    assert page.status_code == 200 and b"Redeliver" not in page.content
    button = reverse("admin:merchants_webhookdelivery_redeliver", args=[dead_delivery.pk])
    assert client.post(button).status_code == 403
    changelist = reverse("admin:merchants_webhookdelivery_changelist")
    client.post(changelist, {"action": "redeliver_selected", "_selected_action": [dead_delivery.pk]})
    assert reload(dead_delivery).status == WebhookDelivery.Status.DEAD and scheduled == []

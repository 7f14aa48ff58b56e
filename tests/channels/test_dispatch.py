"""Dispatch and results through the sandbox channels, in-process, with real HTTP notifications
from the sandbox to the live server's notification endpoint."""

import datetime
import json
import time

import pytest
import requests
from django.utils import timezone

from channels.adapters import sandbox
from channels.models import ChannelNotification, SandboxPayout
from merchants.models import Account, LedgerTransaction
from refunds import dispatch
from refunds.models import Alert, Refund, RefundLeg, SubmissionAttempt
from tests import factories as f

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def public_url(live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    return live_server.url


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def refund_through(channel_code, amount, *, paid=10000):
    f.channel(channel_code)
    m = f.merchant()
    p = f.payment(m, amount=paid, parts=[("channel", paid, channel_code)])
    r = f.refund(m, p, amount)
    return m, r, r.legs.get()


def status_of(refund):
    return Refund.objects.get(pk=refund.pk).status


@pytest.mark.parametrize("code", ["wechat", "alipay", "bank"])
def test_refund_through_each_sandbox_channel_succeeds_by_notification(public_url, code):
    m, r, leg = refund_through(code, 3000)
    assert dispatch.leg_dispatch(leg_id=leg.pk) == "submitted:PROCESSING"
    assert status_of(r) == Refund.Status.PROCESSING
    assert wait_for(lambda: status_of(r) == Refund.Status.SUCCEEDED)
    assert f.balance(m, Account.Kind.REFUND_HOLD) == 0
    leg = RefundLeg.objects.get(pk=leg.pk)
    assert leg.channel_refund_id
    assert SandboxPayout.objects.filter(refund_no=leg.submission_no).count() == 1


def test_amount_ending_50_fails_with_account_closed_and_stays_held(public_url):
    m, r, leg = refund_through("wechat", 3050)
    dispatch.leg_dispatch(leg_id=leg.pk)
    assert wait_for(lambda: status_of(r) == Refund.Status.FAILED)
    r.refresh_from_db()
    assert r.failure_reason == "ACCOUNT_CLOSED"
    assert f.balance(m, Account.Kind.REFUND_HOLD) == 3050  # the user is still owed it
    assert r.events.filter(to_status=Refund.Status.FAILED).exists()


def test_amount_ending_51_times_out_and_is_found_by_query_submitted_once(public_url):
    m, r, leg = refund_through("bank", 3051)
    assert dispatch.leg_dispatch(leg_id=leg.pk) == "submitted:UNKNOWN"
    assert status_of(r) == Refund.Status.PROCESSING
    attempt = SubmissionAttempt.objects.get(leg=leg)
    assert attempt.status == SubmissionAttempt.Status.UNKNOWN
    # Not due yet: the janitor waits a minute before asking.
    assert dispatch.leg_query(leg_id=leg.pk) == "not-due"
    later = timezone.now() + datetime.timedelta(minutes=2)
    assert dispatch.leg_query(leg_id=leg.pk, now=later) == "queried:SUCCEEDED"
    assert status_of(r) == Refund.Status.SUCCEEDED
    assert SandboxPayout.objects.filter(channel_code="bank").count() == 1
    assert SubmissionAttempt.objects.filter(leg=leg).count() == 1


def test_amount_ending_52_is_notified_three_times_and_booked_once(public_url):
    m, r, leg = refund_through("alipay", 3052)
    dispatch.leg_dispatch(leg_id=leg.pk)
    assert wait_for(lambda: ChannelNotification.objects.filter(channel_code="alipay").count() == 3)
    statuses = sorted(ChannelNotification.objects.values_list("status", flat=True))
    assert statuses == ["applied", "duplicate", "duplicate"]
    assert status_of(r) == Refund.Status.SUCCEEDED
    paid = LedgerTransaction.objects.filter(reference=f"refund:{r.pk}", kind=LedgerTransaction.Kind.REFUND_PAID)
    assert paid.count() == 1


def _post(url, payload, *, sign=True):
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if sign:
        headers[sandbox.SIGNATURE_HEADER] = sandbox.sign(body)
    return requests.post(url, data=body, headers=headers, timeout=10)


def test_forged_notification_is_refused_and_changes_nothing(public_url):
    m, r, leg = refund_through("bank", 3051)
    dispatch.leg_dispatch(leg_id=leg.pk)
    url = f"{public_url}/api/v1/channels/bank/notify"
    forged = {"refund_no": leg.submission_no, "status": "SUCCESS"}
    response = _post(url, forged, sign=False)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "INVALID_SIGNATURE"
    body = json.dumps(forged).encode()
    bad = requests.post(url, data=body, headers={sandbox.SIGNATURE_HEADER: "0" * 64}, timeout=10)
    assert bad.status_code == 401
    assert status_of(r) == Refund.Status.PROCESSING
    assert ChannelNotification.objects.filter(status="rejected").count() == 2


def test_replayed_and_out_of_order_notifications_change_nothing_twice(public_url):
    m, r, leg = refund_through("bank", 3051)  # no notification of its own: we play the channel
    dispatch.leg_dispatch(leg_id=leg.pk)
    url = f"{public_url}/api/v1/channels/bank/notify"
    success = {"refund_no": leg.submission_no, "status": "SUCCESS", "channel_refund_id": "B1"}
    assert _post(url, success).json()["result"] == "applied"
    assert _post(url, success).json()["result"] == "duplicate"  # replayed
    assert _post(url, {"refund_no": leg.submission_no, "status": "PROCESSING"}).json()["result"] == "ignored"
    assert status_of(r) == Refund.Status.SUCCEEDED
    assert LedgerTransaction.objects.filter(reference=f"refund:{r.pk}", kind="refund_paid").count() == 1


def test_failure_after_success_raises_an_alert_and_stops_for_a_person(public_url):
    m, r, leg = refund_through("bank", 3051)
    dispatch.leg_dispatch(leg_id=leg.pk)
    url = f"{public_url}/api/v1/channels/bank/notify"
    _post(url, {"refund_no": leg.submission_no, "status": "SUCCESS"})
    response = _post(url, {"refund_no": leg.submission_no, "status": "FAIL", "code": "ACCOUNT_CLOSED"})
    assert response.json()["result"] == "conflict"
    assert status_of(r) == Refund.Status.SUCCEEDED  # nothing guessed
    assert Alert.objects.filter(leg=leg, kind="CHANNEL_CONTRADICTION").count() == 1
    assert RefundLeg.objects.get(pk=leg.pk).needs_attention


def test_notification_for_an_unknown_refund_is_kept_and_answered_404(public_url):
    f.channel("wechat")
    response = _post(f"{public_url}/api/v1/channels/wechat/notify", {"refund_no": "RL999999999999", "status": "SUCCESS"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "REFUND_NOT_FOUND"
    assert ChannelNotification.objects.get().status == "unknown_refund"


def test_window_passed_while_queued_takes_the_fallback_and_never_reaches_the_channel(public_url):
    f.channel("bank")
    m = f.merchant(fallback_route="balance")
    paid_at = timezone.now() - datetime.timedelta(days=179, hours=23)
    p = f.payment(m, amount=10000, parts=[("channel", 10000, "bank")], paid_at=paid_at)
    r = f.refund(m, p, 4000)
    leg = r.legs.get()
    assert leg.route == "bank"
    assert dispatch.leg_dispatch(leg_id=leg.pk, now=timezone.now() + datetime.timedelta(days=1)) == "rerouted"
    leg.refresh_from_db()
    assert leg.route == "balance" and leg.fallback_reason == "WINDOW_EXPIRED"
    assert status_of(r) == Refund.Status.SUCCEEDED
    assert not SandboxPayout.objects.exists()


def test_not_found_is_trusted_only_after_the_grace_and_then_resubmits_once(public_url):
    m, r, leg = refund_through("bank", 3000)
    # The attempt was recorded, then the worker died before calling the channel.
    from django.db import transaction

    from refunds import services

    with transaction.atomic():
        SubmissionAttempt.objects.create(leg=leg, channel_code="bank")
        services.leg_submit(leg_id=leg.pk, by="task:dispatch")
    soon = timezone.now() + datetime.timedelta(seconds=61)
    RefundLeg.objects.filter(pk=leg.pk).update(next_action_at=timezone.now())
    assert dispatch.leg_query(leg_id=leg.pk, now=soon) == "queried:NOT_FOUND"
    assert RefundLeg.objects.get(pk=leg.pk).status == RefundLeg.Status.PROCESSING  # too early to trust
    RefundLeg.objects.filter(pk=leg.pk).update(next_action_at=timezone.now())
    later = timezone.now() + datetime.timedelta(minutes=6)
    assert dispatch.leg_query(leg_id=leg.pk, now=later) == "queried:NOT_FOUND"
    assert RefundLeg.objects.get(pk=leg.pk).status == RefundLeg.Status.QUEUED
    dispatch.leg_dispatch(leg_id=leg.pk)
    assert wait_for(lambda: status_of(r) == Refund.Status.SUCCEEDED)
    assert SandboxPayout.objects.filter(channel_code="bank").count() == 1


def test_rate_limit_and_processing_hours_hold_legs_back(public_url):
    m, r, leg = refund_through("wechat", 3000)
    ch = leg.channel
    ch.rate_limit_per_minute = 1
    ch.save()
    SubmissionAttempt.objects.create(leg=leg, channel_code="wechat")  # one already this minute
    assert dispatch.leg_dispatch(leg_id=leg.pk) == "rate-limited"
    SubmissionAttempt.objects.all().delete()
    ch.rate_limit_per_minute = None
    now_local = timezone.localtime()
    ch.processing_start = (now_local + datetime.timedelta(hours=1)).time()
    ch.processing_end = (now_local + datetime.timedelta(hours=2)).time()
    ch.save()
    assert dispatch.leg_dispatch(leg_id=leg.pk) == "outside-hours"
    assert RefundLeg.objects.get(pk=leg.pk).status == RefundLeg.Status.QUEUED
    assert not SandboxPayout.objects.exists()

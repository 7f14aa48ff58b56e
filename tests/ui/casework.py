"""Helpers of the complaint, payout and operations screen tests: users in their roles, legs in
the states a payout starts from."""

import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from refunds import roles, services
from refunds.models import RefundLeg
from tests import factories as f

# A valid (Luhn) 16-digit UnionPay-style number, and the same with its last digit wrong.
CARD = "6212345678901232"
BAD_CARD = "6212345678901234"


def user(username: str, role: str, **extra):
    u = get_user_model().objects.create_user(username=username, password="pw", **extra)
    u.groups.add(Group.objects.get(name=role))
    return u


def agent(name="agent1"):
    return user(name, roles.AGENT)


def finance(name="finance1"):
    return user(name, roles.FINANCE)


def ops(name="ops1"):
    return user(name, roles.OPERATIONS)


def auditor(name="auditor1"):
    return user(name, roles.AUDITOR)


def failed_channel_leg(merchant=None, *, amount=3050):
    """A refund whose WeChat leg the channel refused (account closed): FAILED, not confirmed."""
    m = merchant or f.merchant()
    p = f.payment(m, amount=10000)
    r = f.refund(m, p, amount)
    leg = r.legs.get()
    services.leg_submit(leg_id=leg.pk, by="task:dispatch")
    services.leg_record_failure(leg_id=leg.pk, by="channel:wechat", failure_reason="ACCOUNT_CLOSED")
    leg = RefundLeg.objects.get(pk=leg.pk)
    assert leg.status == RefundLeg.Status.FAILED
    return m, r, leg


def manual_leg_from_the_start(merchant=None, *, amount=4000):
    """A refund of a 400-day-old WeChat payment: past the channel's window, routed to manual payout."""
    m = merchant or f.merchant()
    p = f.payment(m, amount=10000, paid_at=timezone.now() - datetime.timedelta(days=400))
    r = f.refund(m, p, amount)
    leg = r.legs.get()
    assert leg.status == RefundLeg.Status.MANUAL_PAYOUT and leg.fallback_reason == "WINDOW_EXPIRED"
    return m, r, leg

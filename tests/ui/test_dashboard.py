"""The dashboard (S14's core monitoring report): the figures match the rows behind them, the
chart's bars match the refunds of each day, only the monitoring roles open it, and it stays cheap."""

import datetime
import re

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from merchants.models import Account, BalanceShortfall, ShortfallDigest, WebhookDelivery
from refunds import dashboard, payouts, roles
from refunds.models import Alert, Refund, RefundLeg
from tests import factories as f

from . import casework

pytestmark = pytest.mark.django_db

S = Refund.Status
L = RefundLeg.Status


def _local_day_at(days_ago: int, now: datetime.datetime) -> datetime.datetime:
    """A moment `days_ago` local days back: noon, or for today a moment already past."""
    tz = timezone.get_current_timezone()
    today = timezone.localdate(now)
    if days_ago == 0:
        midnight = datetime.datetime.combine(today, datetime.time.min, tzinfo=tz)
        return midnight + (now - midnight) / 2
    day = today - datetime.timedelta(days=days_ago)
    return datetime.datetime.combine(day, datetime.time(12), tzinfo=tz)


class Seed:
    """Refunds of a funded merchant forced into the states a dashboard shows, on chosen days."""

    def __init__(self):
        self.now = timezone.now()
        self.merchant = f.merchant("DASH", name="Dash Coffee", funded=50_000_000)
        self.wechat = f.channel("wechat")
        self.alipay = f.channel("alipay")

    def refund(self, status, days_ago=0, *, at=None, leg_status=None, channel=None, amount=1000, **leg_fields) -> Refund:
        channel = channel or self.wechat
        p = f.payment(self.merchant, amount=10_000, parts=[("channel", 10_000, channel.code)])
        r = f.refund(self.merchant, p, amount)
        created = at or _local_day_at(days_ago, self.now)
        Refund.objects.filter(pk=r.pk).update(status=status, created_at=created)
        if leg_status or leg_fields:
            RefundLeg.objects.filter(refund=r).update(status=leg_status or L.QUEUED, **leg_fields)
        r.refresh_from_db()
        return r


@pytest.fixture
def seed(db):
    cache.clear()
    return Seed()


def _body(client) -> str:
    response = client.get(reverse("dashboard"))
    assert response.status_code == 200
    return response.content.decode()


def _tile(body: str, key: str) -> str:
    match = re.search(rf'data-tile="{key}".*?data-value="(\d+)"', body, re.S)
    assert match, key
    return match[1]


def _bars(body: str) -> dict[str, dict]:
    """{day: {"total": n, outcome: n}} read back from the SVG."""
    out = {}
    for day, total, inner in re.findall(r'<g class="bar" data-day="([\d-]+)" data-total="(\d+)">(.*?)</g>', body, re.S):
        segments = dict(re.findall(r'data-outcome="(\w+)" data-n="(\d+)"', inner))
        out[day] = {"total": int(total), **{k: int(v) for k, v in segments.items()}}
    return out


def test_the_chart_counts_each_days_refunds_by_outcome(as_role, seed):
    today = timezone.localdate(seed.now)
    for status in (S.SUCCEEDED, S.SUCCEEDED, S.SUCCEEDED, S.FAILED, S.MANUAL_PAYOUT, S.REJECTED, S.PENDING_REVIEW):
        seed.refund(status, 0)
    for status in (S.SUCCEEDED, S.SUCCEEDED, S.CANCELLED, S.PROCESSING, S.APPROVED):
        seed.refund(status, 3)
    seed.refund(S.SUCCEEDED, 13)  # the oldest day shown
    seed.refund(S.SUCCEEDED, 14)  # one day too old
    seed.refund(S.SUCCEEDED, 30)

    body = _body(as_role(roles.SUPERVISOR))

    bars = _bars(body)
    assert len(bars) == dashboard.CHART_DAYS
    assert bars[today.isoformat()] == {"total": 7, "succeeded": 3, "failed": 2, "closed": 1, "inflight": 1}
    three = (today - datetime.timedelta(days=3)).isoformat()
    assert bars[three] == {"total": 5, "succeeded": 2, "closed": 1, "inflight": 2}
    assert bars[(today - datetime.timedelta(days=13)).isoformat()] == {"total": 1, "succeeded": 1}
    assert (today - datetime.timedelta(days=14)).isoformat() not in bars
    assert sum(b["total"] for b in bars.values()) == 13
    # Accessible: a titled image, every segment titled, and the same numbers in a table.
    assert 'role="img" aria-labelledby="chart-title chart-desc"' in body
    assert "13 refunds: 6 succeeded, 2 failed or paid by hand, 2 rejected or cancelled, 3 still in flight." in body
    table = body[body.index('data-testid="chart-table"'):]
    row = re.search(rf'<tr data-day="{today.isoformat()}">(.*?)</tr>', table, re.S)[1]
    assert re.findall(r'<td class="num">(?:<strong>)?(\d+)', row) == ["3", "2", "1", "1", "7"]


def test_tiles_count_the_work_waiting(as_role, seed):
    now = seed.now
    # Review: two waiting, the older three days old.
    seed.refund(S.PENDING_REVIEW, at=now - datetime.timedelta(days=3, hours=1))
    seed.refund(S.PENDING_REVIEW, 0)
    seed.refund(S.REJECTED, 0)
    # The janitor's backlog: processing legs past their next check (not those due later, not flagged ones).
    late = now - datetime.timedelta(minutes=30)
    seed.refund(S.PROCESSING, 0, leg_status=L.PROCESSING, next_action_at=late, submitted_at=late)
    seed.refund(S.PROCESSING, 0, leg_status=L.PROCESSING, next_action_at=now - datetime.timedelta(hours=2))
    seed.refund(S.PROCESSING, 0, leg_status=L.PROCESSING, next_action_at=now + datetime.timedelta(minutes=5))
    flagged = seed.refund(S.PROCESSING, 0, leg_status=L.PROCESSING, next_action_at=late, needs_attention=True)
    # Attention: the flagged leg's open alert, and an alert already resolved.
    leg = flagged.legs.get()
    Alert.objects.create(kind="CHANNEL_CONTRADICTION", refund=flagged, leg=leg, message="channel wechat contradicted itself")
    Alert.objects.create(kind="CHANNEL_CONTRADICTION", refund=flagged, leg=leg, message="old", resolved_at=now)
    # Payouts: a failure to confirm; two legs waiting for a card, one of which gets its card.
    casework.failed_channel_leg(seed.merchant)
    casework.manual_leg_from_the_start(seed.merchant)
    _m, _r, carded = casework.manual_leg_from_the_start(seed.merchant)
    payouts.payout_record_card(leg_id=carded.pk, user=casework.agent(), holder_name="Li Lei", card_number=casework.CARD,
                               bank_name="ICBC", account_type="personal", phone="13800000000")
    # Webhooks: two retrying, one dead, one delivered.
    for status in ("failed", "failed", "dead", "delivered"):
        WebhookDelivery.objects.create(event="refund.succeeded", merchant=seed.merchant, url="http://merchant.invalid/",
                                       payload={}, status=status)

    body = _body(as_role(roles.FINANCE))

    assert _tile(body, "review") == "2"
    assert "oldest 3 days ago" in body
    assert _tile(body, "overdue") == "2"
    assert "due since 2 h ago" in body
    assert _tile(body, "attention") == "1"
    assert "1 alert unresolved" in body
    assert "channel wechat contradicted itself" in body
    assert _tile(body, "failed") == "1"
    assert _tile(body, "card") == "1"
    assert _tile(body, "finance") == "1"
    assert _tile(body, "webhooks") == "3"
    assert "2 retrying, 1 dead" in body
    # Finance acts on these: the tiles lead to the payouts tabs.
    assert 'href="/payouts/?state=failed"' in body and 'href="/payouts/?state=approval"' in body
    # Money held for refunds in progress, per currency, as the refund-hold accounts have it.
    held = sum(Account.objects.filter(kind=Account.Kind.REFUND_HOLD, currency="CNY").values_list("balance", flat=True))
    assert held > 0
    assert f'data-currency="CNY" data-amount="{held}"' in body


def test_approved_legs_not_yet_with_their_channel_show_the_dispatch_relays_backlog(as_role, seed):
    now = seed.now
    # Beat stopped half an hour ago: this leg has been QUEUED since.
    seed.refund(S.APPROVED, 0, leg_status=L.QUEUED, updated_at=now - datetime.timedelta(minutes=30))
    seed.refund(S.APPROVED, 0, leg_status=L.QUEUED, updated_at=now - datetime.timedelta(minutes=5))
    seed.refund(S.APPROVED, 0)  # approved just now: the relay has not had its second yet
    seed.refund(S.PROCESSING, 0, leg_status=L.PROCESSING, updated_at=now - datetime.timedelta(hours=1))  # with the channel
    seed.refund(S.APPROVED, 0, leg_status=L.QUEUED, needs_attention=True, updated_at=now - datetime.timedelta(hours=1))

    body = _body(as_role(roles.SUPERVISOR))
    assert _tile(body, "undispatched") == "2"
    assert "oldest approved 30 min ago" in body


def test_counts_stop_at_the_cap(as_role, seed, monkeypatch):
    monkeypatch.setattr(dashboard, "COUNT_CAP", 2)
    for _ in range(4):
        seed.refund(S.PENDING_REVIEW, 1)

    body = _body(as_role(roles.AUDITOR))

    assert _tile(body, "review") == "3"  # counted to cap + 1, no further
    assert re.search(r'data-tile="review".*?>2\+<', body, re.S)


def test_per_channel_results_of_the_week(as_role, seed):
    sent = seed.now - datetime.timedelta(hours=3)

    def leg(status, channel, seconds=None, **kw):
        done = sent + datetime.timedelta(seconds=seconds) if seconds is not None else None
        return seed.refund(S.SUCCEEDED if status == L.SUCCEEDED else S.PROCESSING, 1, leg_status=status,
                           channel=channel, submitted_at=sent, completed_at=done, **kw)

    for seconds in (60, 120, 600):
        leg(L.SUCCEEDED, seed.wechat, seconds)
    leg(L.FAILED, seed.wechat)
    leg(L.PROCESSING, seed.wechat)
    leg(L.SUCCEEDED, seed.alipay, 30)
    seed.refund(S.APPROVED, 1, leg_status=L.QUEUED)  # not submitted yet: not counted
    seed.refund(S.SUCCEEDED, 9, leg_status=L.SUCCEEDED, submitted_at=sent, completed_at=sent)  # refund too old

    body = _body(as_role(roles.OPERATIONS))

    rows = {code: re.findall(r'<td class="num">([^<]*)</td>', row)
            for code, row in re.findall(r'<tr data-channel="(\w+)">(.*?)</tr>', body, re.S)}
    # submitted, succeeded, failed, awaiting, success rate, median
    assert rows["wechat"] == ["5", "3", "1", "1", "75.0 %", "2 min"]
    assert rows["alipay"] == ["1", "1", "0", "0", "100.0 %", "30 s"]
    assert list(rows) == ["wechat", "alipay"]  # busiest first
    assert 'aria-label="3 succeeded, 1 failed, 1 awaiting an answer"' in body


def test_yesterdays_shortfalls_from_the_digest_or_the_refusals(as_role, seed):
    tz = dashboard.business_zone()
    yesterday = timezone.localdate(seed.now, timezone=tz) - datetime.timedelta(days=1)
    broke = f.merchant("BROKE", name="Broke Books")
    ShortfallDigest.objects.create(day=yesterday, merchant=broke, refusals=3, amount_refused=12_345, currency="CNY")
    ShortfallDigest.objects.create(day=yesterday - datetime.timedelta(days=1), merchant=seed.merchant, refusals=9,
                                   amount_refused=99_999, currency="CNY")
    client = as_role(roles.OPERATIONS)

    body = _body(client)

    table = body[body.index('data-testid="shortfalls"'):]
    assert re.findall(r'<tr data-merchant="(\w+)">', table) == ["BROKE"]
    assert "CNY 123.45" in table and ">3<" in table
    assert 'href="/merchants/BROKE/"' in table
    assert "1 merchant had refunds refused" in body

    # Before the morning's digest: the refusals themselves, for the business day.
    ShortfallDigest.objects.all().delete()
    noon = datetime.datetime.combine(yesterday, datetime.time(12), tzinfo=tz)
    for amount in (500, 700):
        s = BalanceShortfall.objects.create(merchant=broke, account_kind="cash", currency="CNY", amount=amount,
                                            available=0, out_refund_no="R-x")
        BalanceShortfall.objects.filter(pk=s.pk).update(created_at=noon)
    BalanceShortfall.objects.create(merchant=seed.merchant, account_kind="cash", currency="CNY", amount=1, available=0)
    cache.clear()

    body = _body(client)

    table = body[body.index('data-testid="shortfalls"'):]
    assert re.findall(r'<tr data-merchant="(\w+)">', table) == ["BROKE"]  # today's refusal is not yesterday's
    assert "CNY 12.00" in table
    assert "the daily digest has not run yet" in body


def test_nothing_to_show(as_role, db):
    body = _body(as_role(roles.SUPERVISOR))

    assert _tile(body, "undispatched") == "0" and "the dispatch relay keeps up" in body
    assert 'data-testid="shortfalls-none"' in body
    assert "No refund went to a channel in this period." in body
    assert len(_bars(body)) == dashboard.CHART_DAYS
    assert all(b == {"total": 0} for b in _bars(body).values())


def test_figures_are_cached_for_a_minute_and_say_when(as_role, seed):
    client = as_role(roles.SUPERVISOR)
    seed.refund(S.PENDING_REVIEW, 0)
    body = _body(client)
    assert _tile(body, "review") == "1"
    assert 'data-testid="as-of"' in body

    seed.refund(S.PENDING_REVIEW, 0)
    assert _tile(_body(client), "review") == "1"  # the cached figures

    cache.clear()
    assert _tile(_body(client), "review") == "2"


def test_the_figures_take_a_fixed_number_of_queries(seed, django_assert_max_num_queries):
    for status in (S.SUCCEEDED, S.FAILED, S.PENDING_REVIEW):
        seed.refund(status, 2, leg_status=L.SUCCEEDED, submitted_at=seed.now, completed_at=seed.now)
    with django_assert_max_num_queries(25):
        data = dashboard.compute()
    assert sum(d["total"] for d in data["days"]) == 3


@pytest.mark.parametrize("role", [roles.SUPERVISOR, roles.FINANCE, roles.OPERATIONS, roles.AUDITOR, roles.ADMIN])
def test_monitoring_roles_open_it(as_role, role):
    response = as_role(role).get("/dashboard/")
    assert response.status_code == 200
    assert 'data-nav="dashboard"' in response.content.decode()


def test_agents_do_not(as_role):
    assert as_role(roles.AGENT).get(reverse("dashboard")).status_code == 403


def test_anonymous_goes_to_the_login_page(client, db):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_in_chinese(as_role, db):
    client = as_role(roles.SUPERVISOR)
    client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})

    body = _body(client)

    assert "看板" in body
    assert "等待审核" in body


def test_tile_links_follow_what_the_role_opens(as_role, db):
    body = _body(as_role(roles.OPERATIONS))
    assert 'href="/review/"' not in body  # operations do not review refunds
    assert 'href="/payouts/' not in body

"""In a real browser (Debian's chromium): the dashboard a supervisor opens, at 1366x768, in English
and in Chinese, with two weeks of refunds behind it. Screenshots go to test-artifacts/."""

import datetime
import os
import random
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from merchants.models import ShortfallDigest, WebhookDelivery
from refunds import dashboard, roles
from refunds.models import Alert, Refund, RefundLeg
from tests import factories as f

from .conftest import make_user

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"

if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed at /usr/bin/chromium", allow_module_level=True)

S, L = Refund.Status, RefundLeg.Status
# (refund status, leg status) and how often, out of 100.
MIX = [((S.SUCCEEDED, L.SUCCEEDED), 78), ((S.FAILED, L.FAILED), 4), ((S.MANUAL_PAYOUT, L.MANUAL_PAYOUT), 3),
       ((S.REJECTED, L.CANCELLED), 6), ((S.CANCELLED, L.CANCELLED), 2), ((S.PROCESSING, L.PROCESSING), 4),
       ((S.PENDING_REVIEW, L.PENDING), 3)]


def _seed(rng: random.Random) -> None:
    now = timezone.now()
    tz = timezone.get_current_timezone()
    coffee = f.merchant("COFFEE", name="Demo Coffee", funded=90_000_000)
    books = f.merchant("BOOKS", name="Demo Books")
    shoes = f.merchant("SHOES", name="Demo Shoes")
    channels = [f.channel("wechat"), f.channel("alipay"), f.channel("bank")]
    statuses = [pair for pair, weight in MIX for _ in range(weight)]
    today = timezone.localdate(now)
    for days_ago in range(dashboard.CHART_DAYS):
        day = today - datetime.timedelta(days=days_ago)
        for _ in range(rng.randint(4, 11) if days_ago else 6):
            channel = rng.choices(channels, weights=[6, 3, 1])[0]
            p = f.payment(coffee, amount=20_000, parts=[("channel", 20_000, channel.code)])
            r = f.refund(coffee, p, rng.randint(1, 199) * 100)
            status, leg_status = rng.choice(statuses)
            start = datetime.datetime.combine(day, datetime.time(8), tzinfo=tz)
            created = min(start + datetime.timedelta(minutes=rng.randint(0, 720)), now - datetime.timedelta(minutes=5))
            if days_ago == 0:
                created = now - datetime.timedelta(minutes=rng.randint(5, 300))
            sent = created + datetime.timedelta(minutes=1)
            took = datetime.timedelta(seconds=rng.randint(20, 900) * (5 if channel.code == "bank" else 1))
            Refund.objects.filter(pk=r.pk).update(status=status, created_at=created)
            RefundLeg.objects.filter(refund=r).update(
                status=leg_status,
                submitted_at=sent if leg_status not in (L.PENDING, L.CANCELLED) else None,
                completed_at=sent + took if leg_status == L.SUCCEEDED else None,
                next_action_at=now - datetime.timedelta(minutes=rng.randint(3, 90)) if leg_status == L.PROCESSING else None,
            )
    leg = RefundLeg.objects.filter(status=L.PROCESSING).first()
    RefundLeg.objects.filter(pk=leg.pk).update(needs_attention=True)
    Alert.objects.create(kind="CHANNEL_CONTRADICTION", refund=leg.refund, leg=leg,
                         message=f"channel {leg.route} reported SUCCEEDED via query for a leg already FAILED: "
                                 "stopped for a person to decide")
    for status in ("failed", "failed", "dead", "delivered"):
        WebhookDelivery.objects.create(event="refund.succeeded", merchant=coffee, url="http://merchant.invalid/",
                                       payload={}, status=status)
    yesterday = timezone.localdate(now, timezone=dashboard.business_zone()) - datetime.timedelta(days=1)
    ShortfallDigest.objects.create(day=yesterday, merchant=books, refusals=7, amount_refused=1_284_500, currency="CNY")
    ShortfallDigest.objects.create(day=yesterday, merchant=shoes, refusals=2, amount_refused=39_900, currency="CNY")


@pytest.fixture
def page_as(browser, live_server):
    contexts = []

    def open_as(user, language="en"):
        django_client = Client()
        django_client.force_login(user)
        context = browser.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 768})
        cookies = [{"name": settings.SESSION_COOKIE_NAME,
                    "value": django_client.cookies[settings.SESSION_COOKIE_NAME].value, "url": live_server.url}]
        cookies.append({"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url})
        context.add_cookies(cookies)
        contexts.append(context)
        return context.new_page()

    yield open_as
    for context in contexts:
        context.close()


def _shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_supervisor_reads_the_dashboard(page_as):
    roles.sync()  # groups survive the flush of earlier transactional tests
    cache.clear()
    _seed(random.Random(14))
    supervisor = make_user(roles.SUPERVISOR, "supervisor")

    page = page_as(supervisor)
    page.goto("/dashboard/")

    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator("svg.chart g.bar")).to_have_count(dashboard.CHART_DAYS)
    expect(page.locator("[data-tile=review] .tile-value")).not_to_have_text("0")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366  # no horizontal scroll
    _shot(page, "dashboard")

    page.get_by_text("Show the numbers").click()
    expect(page.locator("[data-testid=chart-table]")).to_be_visible()
    _shot(page, "dashboard-numbers")

    zh = page_as(supervisor, language="zh-hans")
    zh.goto("/dashboard/")
    expect(zh.locator("h1")).to_have_text("看板")
    assert zh.evaluate("document.documentElement.scrollWidth") <= 1366
    _shot(zh, "dashboard-zh")

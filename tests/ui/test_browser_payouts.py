"""In a real browser (Debian's chromium): an agent opens a complaint and starts a refund from it;
a failed channel leg's failure is confirmed by finance, the agent records the user's bank card
(the Luhn check answers as they type), and another person from finance approves the payout.
Each user has their own browser context. Screenshots go to test-artifacts/."""

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from refunds import roles
from refunds.models import Complaint, ManualPayout, Refund, RefundLeg
from tests import factories as f
from tests.ui import casework as cw

# pytest-django's live_server runs in a thread while Playwright's sync API runs an event loop.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"  # tests/ui/conftest.py points Playwright at it
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"

if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed at /usr/bin/chromium", allow_module_level=True)


@pytest.fixture
def login(browser, live_server):
    """A browser context signed in as `user` (the session cookie of a Django login)."""
    contexts = []

    def open_as(user):
        django_client = Client()
        django_client.force_login(user)
        context = browser.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 768})
        context.add_cookies([{
            "name": settings.SESSION_COOKIE_NAME, "value": django_client.cookies[settings.SESSION_COOKIE_NAME].value,
            "url": live_server.url,
        }])
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        return page

    yield open_as
    for context in contexts:
        context.close()


def _shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_agent_opens_a_complaint_and_starts_a_refund_from_it(login):
    roles.sync()  # groups survive the flush of earlier transactional tests
    m = f.merchant("M-BRW")
    p = f.payment(m, amount=10000, out_trade_no="T-BRW-1")
    agent = cw.agent()
    page = login(agent)

    page.goto(reverse("complaint-new") + f"?payment={p.pk}")
    page.fill("#id_customer_contact", "+86 138 0000 0001")
    page.select_option("#id_category", "wants_refund")
    page.fill("#id_description", "Never received the goods.")
    page.click("button:has-text('Open complaint')")
    page.wait_for_url("**/complaints/*/")
    complaint = Complaint.objects.get()

    # A note lands in place (htmx): the page does not reload.
    page.evaluate("window.__same_page = true")
    page.fill("#id_body", "Customer sent a photo of the empty box.")
    page.click("button:has-text('Add note')")
    page.wait_for_selector("#complaint-events li:has-text('empty box')")
    assert page.evaluate("window.__same_page") is True

    page.fill("#id_amount", "20.00")
    page.fill("#id_reason", "goods not delivered")
    page.click("button:has-text('Start refund')")
    page.wait_for_selector("#started-refunds")
    refund = Refund.objects.get(source=Refund.Source.CUSTOMER_SERVICE)
    assert refund.amount == 2000 and refund.origin_complaint.complaint_id == complaint.pk
    assert refund.out_refund_no in page.inner_text("#started-refunds")
    _shot(page, "complaint-refund-started")


def test_failed_leg_card_recorded_by_an_agent_and_paid_by_another_person(login):
    roles.sync()
    m, refund, leg = cw.failed_channel_leg(amount=3050)
    agent, confirmer, payer = cw.agent(), cw.finance("finance1"), cw.finance("finance2")
    agent_page = login(agent)
    leg_url = reverse("payout-leg", args=[leg.pk])

    agent_page.goto(leg_url)
    assert agent_page.is_visible("text=Confirm the failure first")
    assert not agent_page.is_visible("#card-form")
    _shot(agent_page, "payout-failure-unconfirmed")

    finance_page = login(confirmer)
    finance_page.goto(leg_url)
    finance_page.fill("#id_reason", "statement shows the refund failed: account closed")
    finance_page.click("button:has-text('Confirm the failure')")
    finance_page.wait_for_selector("text=Failure confirmed")
    assert RefundLeg.objects.get(pk=leg.pk).status == RefundLeg.Status.MANUAL_PAYOUT

    agent_page.goto(leg_url)
    agent_page.fill("#id_holder_name", "Li Si")
    agent_page.type("#id_card_number", cw.BAD_CARD)
    agent_page.wait_for_selector("#card-check[data-state='bad']")
    assert "check digit is wrong" in agent_page.inner_text("#card-check")
    _shot(agent_page, "payout-card-luhn-refused")
    agent_page.fill("#id_card_number", "")
    agent_page.type("#id_card_number", cw.CARD)
    agent_page.wait_for_selector("#card-check[data-state='ok']")
    agent_page.fill("#id_bank_name", "Bank of China")
    agent_page.check("input[name='account_type'][value='personal']")
    agent_page.fill("#id_phone", "13800138000")
    agent_page.click("button:has-text('Record card')")
    agent_page.wait_for_selector("#card-mask")
    assert agent_page.inner_text("#card-mask") == "621234******1232"
    assert cw.CARD not in agent_page.content()
    _shot(agent_page, "payout-card-recorded")

    payer_page = login(payer)
    payer_page.goto(leg_url)
    payer_page.fill("#id_transfer_reference", "BOC-20261126-0001")
    _shot(payer_page, "payout-finance-approval")
    payer_page.click("button:has-text('Approve and record the transfer')")
    payer_page.wait_for_selector("text=Payout approved")
    assert "BOC-20261126-0001" in payer_page.inner_text("#payout-card")
    _shot(payer_page, "payout-paid")

    payout = ManualPayout.objects.get(leg=leg)
    assert (payout.status, payout.recorded_by, payout.approved_by) == ("paid", agent, payer)
    assert RefundLeg.objects.get(pk=leg.pk).status == RefundLeg.Status.SUCCEEDED
    assert Refund.objects.get(pk=refund.pk).status == Refund.Status.SUCCEEDED

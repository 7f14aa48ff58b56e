"""In a real browser (Debian chromium, RECIPES.md): an agent works the review queue from the keyboard.

Screenshots go to test-artifacts/ (not committed); docs/review-queue.png is a copy of one.
"""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from playwright.sync_api import expect

from refunds import roles
from refunds.models import Refund
from tests import factories as f

from .conftest import make_user

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y chromium"),
]


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def queue(transactional_db):
    """Three refunds flagged for review (above the merchant's review threshold), oldest first."""
    coffee = f.merchant("COFFEE", name="Demo Coffee", funded=10_000_000, review_threshold=50_000)
    books = f.merchant("BOOKS", name="Demo Books", funded=10_000_000, review_threshold=20_000)
    to_balance = f.refund(coffee, f.payment(coffee, amount=80_000, user_id="u-1001"), 60_000,
                          out_refund_no="R-1001", direction=Refund.Direction.BALANCE, reason="damaged on arrival")
    brushing = f.refund(books, f.payment(books, amount=50_000, user_id="u-2002"), 45_000, out_refund_no="R-2002",
                        source=Refund.Source.USER)
    later = f.refund(coffee, f.payment(coffee, amount=120_000, user_id="u-3003"), 99_000, out_refund_no="R-3003")
    assert {r.status for r in (to_balance, brushing, later)} == {Refund.Status.PENDING_REVIEW}
    return to_balance, brushing, later


def test_agent_approves_and_rejects_from_the_keyboard(live_server, page, queue):
    to_balance, brushing, _later = queue
    make_user(roles.AGENT, "agent", password="agent-pw")

    page.goto(live_server.url + reverse("login"))
    shot(page, "login")
    page.fill("#id_username", "agent")
    page.fill("#id_password", "agent-pw")
    page.click("button[type=submit]")

    expect(page).to_have_url(re.compile(r"/review/$"))
    expect(page.locator("[data-nav=review-queue] .badge")).to_have_text("3")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366  # no horizontal scroll at 1366x768
    row = page.locator(f"#row-{to_balance.pk}")
    expect(row).to_have_class(re.compile("selected"))  # the oldest row is selected
    expect(row).to_contain_text("above the merchant's review threshold")
    shot(page, "review-queue")

    # `a` asks for the reason and says what will happen, then the row changes in place
    page.keyboard.press("a")
    dialog = page.locator("dialog#decide")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Refund CNY 600.00 to the user's platform balance, arrives by")
    page.keyboard.type("customer sent photos of the damage")
    shot(page, "review-approve-dialog")
    page.keyboard.press("Control+Enter")

    expect(row.locator(".chip")).to_have_text("Succeeded")  # a balance refund is paid on approval
    expect(page.locator("#outcome")).to_contain_text("Approved 1 refund.")
    to_balance.refresh_from_db()
    assert to_balance.status == Refund.Status.SUCCEEDED

    # the selection moved on to the next refund waiting: `r` rejects it with a reason
    other = page.locator(f"#row-{brushing.pk}")
    expect(other).to_have_class(re.compile("selected"))
    page.keyboard.press("r")
    expect(dialog).to_be_visible()
    page.keyboard.type("order brushing: fifth refund this week")
    dialog.locator("[data-confirm]").click()
    expect(other.locator(".chip")).to_have_text("Rejected")
    expect(page.locator("#nav-count-review-queue")).to_have_text("1")  # the badge follows, no reload
    shot(page, "review-queue-after")

    # Enter opens the refund page
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/refunds/{to_balance.pk}/$"))
    expect(page.get_by_test_id("refund-status")).to_have_text("Succeeded")
    expect(page.get_by_test_id("refund-amount")).to_have_text("CNY 600.00")
    expect(page.get_by_test_id("timeline")).to_contain_text("customer sent photos of the damage")
    expect(page.get_by_test_id("timeline")).to_contain_text("user:agent")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366
    shot(page, "refund-page")

    # `/` jumps to the search box; an out_refund_no goes straight to its refund
    page.keyboard.press("/")
    page.keyboard.type("R-2002")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/refunds/{brushing.pk}/$"))
    expect(page.get_by_test_id("refund-status")).to_have_text("Rejected")


def test_agent_is_refused_a_finance_action(live_server, page, queue):
    make_user(roles.AGENT, "agent", password="agent-pw")
    page.goto(live_server.url + reverse("login"))
    page.fill("#id_username", "agent")
    page.fill("#id_password", "agent-pw")
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/review/$"))

    # no finance screens in the agent's navigation
    expect(page.locator("[data-nav=reconciliation]")).to_have_count(0)
    expect(page.locator("[data-nav=merchant-list]")).to_have_count(0)

    # approving a manual payout is finance's: the server refuses the agent
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        live_server.url + reverse("payout-approve", args=[1]),
        form={"transfer_reference": "BANK-1"}, headers={"X-CSRFToken": csrf, "Referer": live_server.url + "/"},
    )
    assert response.status == 403

    # and a finance screen typed into the address bar says why, in the same frame
    page.goto(live_server.url + reverse("merchant-list"))
    expect(page.locator("h1")).to_have_text("Not allowed")
    shot(page, "agent-refused")


def test_chinese_screens(live_server, page, queue):
    make_user(roles.AGENT, "agent", password="agent-pw")
    page.goto(live_server.url + reverse("login"))
    page.select_option("form.lang select", "zh-hans")  # the switcher submits itself
    expect(page.locator("h1")).to_have_text("退款管理后台")
    page.fill("#id_username", "agent")
    page.fill("#id_password", "agent-pw")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("审核队列")  # the choice stuck across the login
    expect(page.locator(f"#row-{queue[0].pk} td.num")).to_have_text("¥600.00")
    shot(page, "review-queue-zh")

"""The role x screen / action matrix, walked with the test client.

refunds/roles.py is the matrix the code and the migration use; EXPECTED below says the same
thing in a reader's words, so that a change to either one shows up here.
"""

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import NoReverseMatch, reverse

from refunds import roles
from refunds.models import Refund

from .conftest import flagged_refund, make_user

pytestmark = pytest.mark.django_db

AGENT, SUPERVISOR, FINANCE, OPS, AUDITOR, ADMIN = (
    roles.AGENT, roles.SUPERVISOR, roles.FINANCE, roles.OPERATIONS, roles.AUDITOR, roles.ADMIN,
)
ALL_SCREENS = set(roles.SCREENS)

# Which screens each role opens (everything else: 403).
EXPECTED = {
    AGENT: {"review-queue", "refund-list", "complaints", "payouts"},
    SUPERVISOR: {"review-queue", "refund-list", "complaints", "payouts", "dashboard"},
    FINANCE: {"refund-list", "payouts", "reconciliation", "merchant-list", "dashboard", "admin:index"},
    OPS: {"refund-list", "merchant-list", "channel-list", "dashboard", "admin:index"},
    AUDITOR: {"refund-list", "complaints", "payouts", "reconciliation", "merchant-list", "channel-list", "dashboard",
              "admin:index"},
    ADMIN: ALL_SCREENS,
}

# Actions: who may approve or reject a refund under review, who sees the ledger.
REVIEWERS = {AGENT, SUPERVISOR, ADMIN}
LEDGER_READERS = {FINANCE, AUDITOR, ADMIN}


# Screens that are built: their cells must run, never skip.
BUILT = {"review-queue", "refund-list", "complaints", "payouts", "merchant-list", "channel-list", "dashboard",
         "admin:index"}


def _url(screen):
    try:
        return reverse(screen)
    except NoReverseMatch:
        if screen in BUILT:
            raise
        pytest.skip(f"screen {screen!r} is not built")


def test_every_role_exists_with_the_matrix_permissions():
    available = [f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.select_related("content_type")]
    for role, patterns in roles.ROLE_PERMISSIONS.items():
        assert not roles.missing(patterns, available), role
        group = Group.objects.get(name=role)
        have = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
        assert have == roles.expand(patterns, available), role


def test_custom_permissions_exist():
    for app_label, _model, codename, _name in roles.CUSTOM_PERMISSIONS:
        assert Permission.objects.filter(content_type__app_label=app_label, codename=codename).exists()


def test_auditor_only_views():
    codenames = set(Group.objects.get(name=AUDITOR).permissions.values_list("codename", flat=True))
    assert codenames and all(c.startswith("view_") for c in codenames)
    assert {"view_refund", "view_ledgerentry", "view_channel", "view_merchant"} <= codenames


def test_expected_table_agrees_with_the_matrix():
    for role, screens in EXPECTED.items():
        user = make_user(role, username=f"check-{role}".replace(" ", "-").lower())
        opens = {s for s in roles.SCREENS if roles.may_open(user, s)}
        assert opens == screens, role


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("screen", sorted(ALL_SCREENS))
def test_role_opens_exactly_its_screens(as_role, role, screen):
    url = _url(screen)
    client = as_role(role)

    response = client.get(url)

    if screen in EXPECTED[role]:
        assert response.status_code == 200, (role, screen, response.status_code)
    elif screen == "admin:index":
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    else:
        assert response.status_code == 403, (role, screen, response.status_code)


@pytest.mark.parametrize("role", list(EXPECTED))
def test_navigation_shows_only_what_the_role_opens(as_role, role):
    client = as_role(role)
    body = client.get(reverse("preferences")).content.decode()
    for screen in ALL_SCREENS:
        try:
            reverse(screen)
        except NoReverseMatch:
            continue
        assert (f'data-nav="{screen}"' in body) == (screen in EXPECTED[role]), (role, screen)


@pytest.mark.parametrize("screen", ["review-queue", "refund-list", "complaints", "merchant-list", "search"])
def test_anonymous_goes_to_the_login_page(client, screen):
    response = client.get(_url(screen))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("action", ["approve", "reject"])
def test_who_may_decide_a_refund_under_review(as_role, flagged_merchant, role, action):
    refund = flagged_refund(flagged_merchant)
    client = as_role(role)

    response = client.post(reverse("review-decide"), {"action": action, "ids": [refund.pk], "reason": "checked"})

    refund.refresh_from_db()
    if role in REVIEWERS:
        assert response.status_code == 302
        assert refund.status == (Refund.Status.REJECTED if action == "reject" else Refund.Status.APPROVED)
    else:
        assert response.status_code == 403
        assert refund.status == Refund.Status.PENDING_REVIEW


@pytest.mark.parametrize("role", list(EXPECTED))
def test_ledger_entries_only_for_finance_and_auditors(as_role, flagged_merchant, role):
    refund = flagged_refund(flagged_merchant)
    client = as_role(role)

    body = client.get(reverse("refund-detail", args=[refund.pk])).content.decode()

    assert ('data-testid="ledger"' in body) == (role in LEDGER_READERS)


@pytest.mark.parametrize("role", list(EXPECTED))
def test_finance_actions_refuse_everyone_else(as_role, role):
    try:
        url = reverse("payout-approve", args=[999999])
    except NoReverseMatch:
        pytest.skip("payout screens not built")
    client = as_role(role)

    response = client.post(url, {"transfer_reference": "T-1"})

    if client.user.has_perm("refunds.approve_payout"):
        assert response.status_code == 404  # allowed in, but there is no such payout
    else:
        assert response.status_code == 403
    assert client.user.has_perm("refunds.approve_payout") == (role in {FINANCE, ADMIN})

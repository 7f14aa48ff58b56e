import os

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache

from refunds import roles
from tests import factories as f

# pytest-django's live_server with Playwright's sync page (RECIPES.md).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # playwright cannot download its own browser here: always the Debian one.
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1366, "height": 768}}


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_nav_counts():
    cache.clear()  # the navigation's badges are cached for a few seconds
    yield
    cache.clear()


def make_user(role: str, username: str | None = None, password: str = "pw-for-tests"):
    user = get_user_model().objects.create_user(
        username=username or role.lower().replace(" ", "-"), password=password,
        is_staff=role in roles.STAFF_ROLES, is_superuser=False,
    )
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def as_role(client):
    """as_role(role) -> a logged-in test client for a fresh member of that role."""

    def login(role: str, username: str | None = None):
        user = make_user(role, username)
        client.force_login(user)
        client.user = user
        return client

    return login


@pytest.fixture
def flagged_merchant(db):
    """A funded merchant whose refunds above CNY 500.00 wait for review."""
    return f.merchant(funded=10_000_000, review_threshold=50_000)


def flagged_refund(merchant, amount=60_000, **kwargs):
    payment = f.payment(merchant, amount=max(amount, 100_000))
    return f.refund(merchant, payment, amount, **kwargs)

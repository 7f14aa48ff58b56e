import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # seed_demo sets six passwords: the production hasher takes half a second each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def seeded(db):
    call_command("seed_demo", force=True, stdout=io.StringIO())


@pytest.fixture
def login(client, seeded):
    """A test client logged in as one of the demo logins."""

    def as_user(username: str):
        client.force_login(get_user_model().objects.get(username=username))
        return client

    return as_user

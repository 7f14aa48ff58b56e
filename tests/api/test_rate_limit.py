import pytest

from merchants.models import ApiKey
from merchants.services import api_key_create
from refunds.api.models import RateLimitWindow
from refunds.api.throttling import rate_limit_hit

from .conftest import Api, error_of

pytestmark = pytest.mark.django_db

WINDOW_START = 1_800_000_000.0  # divisible by 60


@pytest.fixture
def clock(monkeypatch):
    """Frozen in the middle of a window, so that a test never straddles two."""
    now = [WINDOW_START + 30]
    monkeypatch.setattr("refunds.api.throttling.time.time", lambda: now[0])
    return now


def test_past_the_limit_is_429_with_retry_after(api, settings, clock):
    settings.API_RATE_LIMIT = 3
    assert [api.get("/api/v1/refunds").status_code for _ in range(3)] == [200, 200, 200]
    r = api.get("/api/v1/refunds")
    assert r.status_code == 429
    assert error_of(r)["code"] == "RATE_LIMITED"
    assert r.headers["Retry-After"] == "30"
    clock[0] += 30  # the next minute
    assert api.get("/api/v1/refunds").status_code == 200


def test_the_limit_is_per_key(api, merchant, settings, clock):
    settings.API_RATE_LIMIT = 1
    assert api.get("/api/v1/refunds").status_code == 200
    assert api.get("/api/v1/refunds").status_code == 429
    second = Api(api_key_create(merchant=merchant, scope=ApiKey.Scope.REFUNDS)[1])
    assert second.get("/api/v1/refunds").status_code == 200


def test_a_zero_limit_turns_it_off(api, settings):
    settings.API_RATE_LIMIT = 0
    assert all(api.get("/api/v1/refunds").status_code == 200 for _ in range(5))
    assert not RateLimitWindow.objects.exists()


def test_window_counts_and_resets(merchant):
    key, _ = api_key_create(merchant=merchant, scope=ApiKey.Scope.REFUNDS)
    t = WINDOW_START
    assert rate_limit_hit(api_key=key, limit=2, period=60, now=t) == (True, 60)
    assert rate_limit_hit(api_key=key, limit=2, period=60, now=t + 10) == (True, 50)
    assert rate_limit_hit(api_key=key, limit=2, period=60, now=t + 59.5) == (False, 1)
    # Refused requests are not counted, and the next window starts afresh.
    assert RateLimitWindow.objects.get().count == 2
    assert rate_limit_hit(api_key=key, limit=2, period=60, now=t + 60) == (True, 60)
    assert list(RateLimitWindow.objects.values_list("count", flat=True)) == [1]  # the old window is gone

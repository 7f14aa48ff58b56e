"""Pointing this process's Celery app at another broker for one test, and back."""

from kombu import pools

from config import celery_app

KEYS = ("broker_write_url", "broker_read_url")


def use_broker(url_or_urls) -> dict:
    """Send (and read) this process's Celery messages through another broker; returns the previous
    settings, to pass back afterwards. Pooled connections to the old broker are closed and forgotten.

    Setting conf.broker_url alone would not do: Celery reads the CELERY_BROKER_URL environment
    variable first (bin/test sets it to memory://); the read and write URLs win over both."""
    urls = url_or_urls if isinstance(url_or_urls, dict) else dict.fromkeys(KEYS, url_or_urls)
    before = {key: celery_app.conf.get(key) for key in urls}
    pools.reset()  # kombu keeps pools per broker URL, process-wide: close them, or a closed one is reused
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    celery_app.conf.update(urls)
    return before

"""The API's own table: per-key request counters for the rate limit (see throttling.py)."""

from django.db import models

from merchants.models import ApiKey


class RateLimitWindow(models.Model):
    """How many requests one API key made in one fixed window of API_RATE_WINDOW_SECONDS.

    A row in the database rather than a cache entry so that every web process (gunicorn
    workers, hosts) counts the same requests on SQLite and PostgreSQL alike; one row per key
    is kept, the previous windows are deleted when a new one starts.
    """

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    window = models.BigIntegerField(help_text="Unix time divided by the window's length.")
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "window"], name="ratelimit_one_row_per_key_window"),
        ]

    def __str__(self):
        return f"key {self.api_key_id} window {self.window}: {self.count}"

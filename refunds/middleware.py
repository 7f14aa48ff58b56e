"""Activates the viewer's time zone (a per-user choice kept in the session)."""

import zoneinfo

from django.utils import timezone

SESSION_KEY = "tz"


def viewer_timezone(request) -> str | None:
    name = request.session.get(SESSION_KEY) if hasattr(request, "session") else None
    if name:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return None
    return name


class TimezoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        name = viewer_timezone(request)
        if name:
            timezone.activate(zoneinfo.ZoneInfo(name))
        else:
            timezone.deactivate()  # settings.TIME_ZONE
        return self.get_response(request)

"""Configuration history: every save of a merchant's settings, a channel or an FX rate writes a
ConfigChange row in the saving transaction, with who, when, the fields before and after, and why.

Receivers rather than calls in each screen, so that a change made anywhere (these screens, the
model admin, a shell) is kept. Who: the request's user (ConfigAuditMiddleware), or the
`_config_user` a service sets on the instance. Why: `_config_note` on the instance, or
`config_note()` around the save. merchants and channels set the two attributes without
importing this app (they must not import refunds).

Bulk writes (`QuerySet.update`, `bulk_create`) send no signals and are not recorded: nothing
writes configuration that way.
"""

import contextvars
import datetime
import hashlib
from contextlib import contextmanager
from decimal import Decimal

from django.db.models.signals import post_delete, post_save, pre_save

from channels.models import Channel
from merchants.models import FxRate, Merchant

from .models import ConfigChange

# Model -> fields kept in the history. A channel's `note` is the reason of its last change:
# it becomes the change's note rather than a changed field.
TRACKED: dict[type, list[str]] = {
    Merchant: [
        "code", "name", "status", "refund_source", "fallback_route", "allocation_strategy", "review_threshold",
        "webhook_url",
    ],
    Channel: [
        "code", "name", "adapter", "enabled", "refund_window_days", "max_refunds_per_payment", "dedupes_by_refund_no",
        "processing_start", "processing_end", "rate_limit_per_minute", "typical_days_to_arrive",
    ],
    FxRate: ["day", "base", "quote", "rate"],
}
# Secrets are kept as a fingerprint: an auditor sees that one changed, never the value.
SECRETS: dict[type, list[str]] = {Merchant: ["webhook_secret"]}

_user = contextvars.ContextVar("config_audit_user", default=None)
_note = contextvars.ContextVar("config_audit_note", default="")
_request = contextvars.ContextVar("config_audit_request", default=None)


@contextmanager
def config_note(note: str, *, user=None):
    """Attach a reason (and a user, outside a request) to the configuration saves inside."""
    note_token = _note.set(note)
    user_token = _user.set(user) if user is not None else None
    try:
        yield
    finally:
        _note.reset(note_token)
        if user_token is not None:
            _user.reset(user_token)


class ConfigAuditMiddleware:
    """Makes the request's user the author of the configuration changes it saves."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # The request, not its user: the user (a session read) is resolved only if a change is saved.
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    return value


def _fingerprint(secret: str) -> str:
    return "sha256:" + hashlib.sha256((secret or "").encode()).hexdigest()[:12] if secret else ""


def snapshot(instance) -> dict:
    model = type(instance)
    data = {}
    for name in TRACKED[model]:
        field = model._meta.get_field(name)
        data[name] = _plain(getattr(instance, field.attname))
    for name in SECRETS.get(model, []):
        data[name] = _fingerprint(getattr(instance, name))
    return data


def _snapshot_in_db(model, pk) -> dict | None:
    names = TRACKED[model] + SECRETS.get(model, [])
    row = model._default_manager.filter(pk=pk).values(*[model._meta.get_field(n).attname for n in names]).first()
    if row is None:
        return None
    data = {}
    for name in names:
        value = row[model._meta.get_field(name).attname]
        data[name] = _fingerprint(value) if name in SECRETS.get(model, []) else _plain(value)
    return data


def _author(instance):
    request = _request.get()
    user = getattr(instance, "_config_user", None) or _user.get() or getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return user, f"user:{user.get_username()}"
    return None, getattr(instance, "_config_actor", "") or "system"


def _record(instance, action: str, before: dict, after: dict) -> None:
    user, actor = _author(instance)
    note = getattr(instance, "_config_note", "") or _note.get()
    if not note and isinstance(instance, Channel):
        note = instance.note
    ConfigChange.objects.create(
        model=instance._meta.label_lower, object_id=str(instance.pk), object_repr=str(instance)[:200],
        action=action, before=before, after=after, note=note, changed_by=user, actor=actor[:100],
    )


def _before_save(sender, instance, raw=False, **kwargs):
    if raw:  # loading fixtures
        return
    instance._config_before = _snapshot_in_db(sender, instance.pk) if instance.pk else None


def _after_save(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    before = getattr(instance, "_config_before", None)
    after = snapshot(instance)
    if created or before is None:
        _record(instance, ConfigChange.Action.CREATED, {}, after)
    elif before != after:
        _record(instance, ConfigChange.Action.UPDATED, before, after)
    instance._config_before = after


def _after_delete(sender, instance, **kwargs):
    _record(instance, ConfigChange.Action.DELETED, snapshot(instance), {})


def connect() -> None:
    for model in TRACKED:
        uid = f"config_audit.{model._meta.label_lower}"
        pre_save.connect(_before_save, sender=model, dispatch_uid=uid + ".pre")
        post_save.connect(_after_save, sender=model, dispatch_uid=uid + ".post")
        post_delete.connect(_after_delete, sender=model, dispatch_uid=uid + ".delete")
